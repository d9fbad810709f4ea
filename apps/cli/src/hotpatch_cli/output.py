"""What the CLI prints: results on stdout (text or ``--json``), progress and steps on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["Output", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as an aligned plain-text table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


class Output:
    """Prints for humans or machines.

    With ``as_json`` the only thing on stdout is one JSON document per
    command; steps and progress still go to stderr (quietly, without a
    terminal), so CI logs stay readable and stdout stays parseable.
    """

    def __init__(
        self,
        *,
        as_json: bool,
        verbose: bool,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        """Write to ``out`` / ``err`` (default the process's stdout / stderr)."""
        self.as_json = as_json
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._bar_shown = False
        self._last_draw = 0.0

    @property
    def interactive(self) -> bool:
        """Whether stderr is a terminal (progress bars are drawn only then)."""
        return self.err.isatty()

    def step(self, text: str) -> None:
        """Announce a step of long work."""
        self._end_bar()
        self.err.write(f"{text}\n")
        self.err.flush()

    def detail(self, text: str) -> None:
        """Print only with ``--verbose``."""
        if self.verbose:
            self.step(text)

    def progress(self, label: str, done: int, total: int) -> None:
        """Draw a progress bar on a terminal (at most 10 times a second)."""
        if not self.interactive or total <= 0:
            return
        now = time.monotonic()
        if done < total and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = 30
        filled = min(width, width * done // total)
        bar = "#" * filled + "-" * (width - filled)
        self.err.write(f"\r{label} [{bar}] {100 * done // total:3d}% {_size(done)}/{_size(total)}")
        self.err.flush()
        self._bar_shown = True
        if done >= total:
            self._end_bar()

    def _end_bar(self) -> None:
        if self._bar_shown:
            self.err.write("\n")
            self._bar_shown = False

    def result(self, document: Any, text: str) -> None:
        """Print a command's result: ``document`` as JSON, or ``text``."""
        self._end_bar()
        if self.as_json:
            self.out.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        else:
            self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """Print one error line."""
        self._end_bar()
        self.err.write(f"hotpatch: error: {text}\n")
        self.err.flush()


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return f"{count} B"  # pragma: no cover - the loop returns
