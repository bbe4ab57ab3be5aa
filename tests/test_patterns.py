"""Pattern matching: ``*`` one segment, ``**`` any number, checked against a reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime_pubsub._patterns import PatternIndex, matches, validate_pattern


def reference(pattern: str, event: str) -> bool:
    """The obvious, slow implementation: recursion over the segments."""

    def match(p: list[str], e: list[str]) -> bool:
        if not p:
            return not e
        if p[0] == "**":
            return any(match(p[1:], e[i:]) for i in range(len(e) + 1))
        if not e:
            return False
        return (p[0] in ("*", e[0])) and match(p[1:], e[1:])

    return match(pattern.split("."), event.split("."))


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ("chat.text", "chat.text", True),
        ("chat.*", "chat.text", True),
        ("chat.*", "chat", False),
        ("chat.*", "chat.a.b", False),
        ("*.presence", "secure/inbound.presence", True),
        ("**", "a.b.c", True),
        ("**", "a", True),
        ("chat.**", "chat", True),
        ("chat.**", "chat.a.b", True),
        ("**.response", "priv/x.response", True),
        ("a.**.z", "a.z", True),
        ("a.**.z", "a.b.c.z", True),
        ("a.**.z", "a.b.c", False),
        ("chat", "chat.text", False),
        ("chat*", "chat.text", False),
    ],
)
def test_matches(pattern: str, event: str, expected: bool) -> None:
    assert matches(pattern, event) is expected
    assert reference(pattern, event) is expected


@pytest.mark.parametrize("bad", ["", ".", "a..b", "a.", None, 3])
def test_bad_patterns_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError, match="pattern"):
        validate_pattern(bad)


segments = st.sampled_from(["a", "b", "chat", "x/y"])
pattern_segments = st.sampled_from(["a", "b", "chat", "x/y", "*", "**"])


@given(
    st.lists(pattern_segments, min_size=1, max_size=5),
    st.lists(segments, min_size=1, max_size=6),
)
def test_index_agrees_with_the_reference(pattern: list[str], event: list[str]) -> None:
    p, e = ".".join(pattern), ".".join(event)
    assert matches(p, e) == reference(p, e)


def test_index_returns_each_value_once_in_registration_order() -> None:
    index: PatternIndex[str] = PatternIndex()
    for name, pattern in [("first", "**"), ("second", "chat.*"), ("third", "chat.**")]:
        index.add(pattern, name)
    assert index.match("chat.text") == ["first", "second", "third"]
    index.remove("chat.*", "second")
    assert index.match("chat.text") == ["first", "third"]
    assert len(index) == 2
    assert sorted(index) == ["first", "third"]
