"""The committed CLI reference page matches the command's definitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotpatch_cli.reference import MARKER, render

PAGE = Path(__file__).resolve().parents[3] / "docs" / "reference" / "cli.md"


def test_the_committed_cli_reference_is_current() -> None:
    """docs/reference/cli.md is what `nox -s cli_reference` would write today."""
    committed = PAGE.read_text()
    assert committed == render(committed), "run: python3 -m nox -s cli_reference"


def test_a_page_without_the_marker_is_refused() -> None:
    """Rendering needs the marker line, so hand-written text is never overwritten."""
    with pytest.raises(ValueError, match="no generated part"):
        render("# The hotpatch command\n")
    assert MARKER.startswith("<!--")
