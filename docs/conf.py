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
exclude_patterns = ["_build", "_generated/**"]
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


def _api_table() -> str:
    """Render the server's routes from its OpenAPI schema as a Markdown table."""
    import tempfile  # noqa: PLC0415 - only the docs build needs these

    from hotpatch_server import Settings, create_app  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings.from_env({"HOTPATCH_DATA_DIR": data_dir}))
        schema = app.openapi_schema.to_schema()
    rows = ["| method | path | what it does |", "|---|---|---|"]
    for path, item in sorted(schema["paths"].items()):
        for method in ("get", "post", "put", "patch", "delete"):
            operation = item.get(method)
            if operation:
                summary = operation.get("summary", "")
                rows.append(f"| `{method.upper()}` | `{path}` | {summary} |")
    return "\n".join(rows) + "\n"


(_generated / "api.md").write_text(_api_table())

# The CLI reference is committed in docs/reference/cli.md (so it reads on the
# repository host too); apps/cli/tests/test_reference.py keeps it current.
