"""Reading code out of reStructuredText, for the tests that run the code our README and
docs show."""

from __future__ import annotations

import re
import textwrap


def code_blocks(text: str, language: str) -> list[str]:
    """The contents of the ``.. code-block:: <language>`` directives in ``text``."""
    blocks = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        directive = re.fullmatch(r"( *)\.\. code-block:: *(\S+) *", line)
        if directive is None or directive.group(2) != language:
            continue
        indent = len(directive.group(1))
        body = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        # Directive options (":caption: ...") come before the first blank line.
        while body and body[0].strip().startswith(":"):
            body.pop(0)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


def section(text: str, title: str) -> str:
    """The text of the section ``title`` of ``text`` (up to the next title of any level)."""
    lines = text.splitlines()
    assert title in lines, f"README.rst has no section {title!r}"
    start = lines.index(title) + 2
    end = start
    while end < len(lines) and not (
        end + 1 < len(lines) and lines[end] and re.fullmatch(r"([-=~^])\1{2,}", lines[end + 1])
    ):
        end += 1
    return "\n".join(lines[start:end])
