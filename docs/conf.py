"""Sphinx configuration for the realtime_pubsub documentation."""

from __future__ import annotations

from typing import Any

import attrs
from sphinx.application import Sphinx

import realtime_pubsub

project = "realtime_pubsub"
author = "realtime_pubsub developers"
copyright = "2026, realtime_pubsub developers"
release = realtime_pubsub.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
templates_path: list[str] = []
exclude_patterns = ["_build", "*.inc"]
html_theme = "furo"
html_title = f"realtime_pubsub {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Types only for the parameters a docstring documents, so that a class whose constructor
# takes private parameters (Receipt's slot and table) does not list them; return types
# always ("documented" would drop them from every function without a Returns section).
autodoc_typehints_description_target = "documented_params"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False


def _attrs_factory_defaults(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """attrs classes' signatures give a default made by a factory as ``NOTHING``
    (``raw=NOTHING``): show what the factory makes instead (``raw={}``)."""
    if signature is None or not (isinstance(obj, type) and attrs.has(obj)):
        return None
    for field in attrs.fields(obj):
        default = field.default
        if isinstance(default, attrs.Factory) and not default.takes_self:  # type: ignore[arg-type]
            made = default.factory()
            signature = signature.replace(f"{field.alias}=NOTHING", f"{field.alias}={made!r}")
    return signature, return_annotation


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-signature", _attrs_factory_defaults)
