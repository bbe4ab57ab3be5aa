"""Sphinx configuration for the realtime_pubsub documentation."""

from __future__ import annotations

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
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
