"""Sphinx configuration for the HotPatch documentation."""

from __future__ import annotations

from pathlib import Path

from hotpatch_core.machine import mermaid_diagram

project = "HotPatch"
author = "The HotPatch authors"
copyright = "2026, The HotPatch authors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinxcontrib.mermaid",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
myst_fence_as_directive = ["mermaid"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_generated/README.md"]
html_theme = "furo"
html_title = "HotPatch"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
# No intersphinx: the build must not need the network.

# The device state diagram is generated from the transition table on every
# build, so the docs can never drift from the code.
_generated = Path(__file__).parent / "_generated"
_generated.mkdir(exist_ok=True)
(_generated / "machine.mmd").write_text(mermaid_diagram())
