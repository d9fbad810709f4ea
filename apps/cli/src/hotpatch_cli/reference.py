"""The committed CLI reference page: ``docs/reference/cli.md``, written from the parser.

``python -m hotpatch_cli.reference PAGE`` rewrites the generated part of
``PAGE`` (everything after :data:`MARKER`); :func:`render` returns the page
as it should be, so a test can compare it with the committed one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

from hotpatch_cli.main import reference_markdown

__all__ = ["MARKER", "render"]

MARKER: Final = "<!-- Generated from the command's definitions below this line: do not edit. -->"


def render(page: str) -> str:
    """Return ``page`` with everything after :data:`MARKER` replaced by the current reference."""
    head, found, _ = page.partition(MARKER)
    if not found:
        raise ValueError(f"the page has no generated part: add the line {MARKER!r}")
    return f"{head}{MARKER}\n\n{reference_markdown()}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the page named on the command line; print what was done."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m hotpatch_cli.reference docs/reference/cli.md\n")
        return 1
    path = Path(args[0])
    current = path.read_text()
    updated = render(current)
    if updated != current:
        path.write_text(updated)
        sys.stdout.write(f"rewrote {path}\n")
    else:
        sys.stdout.write(f"{path} is current\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
