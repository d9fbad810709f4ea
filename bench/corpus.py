"""Where the benchmark corpus is: real bundle pairs kept outside the repository.

The corpus (about 20 MB of React Native bundles, Hermes bytecode and npm
library builds) is for benchmarks only; tests and the demo use the small
fixtures in ``fixtures/``. Point ``HOTPATCH_CORPUS`` at it, or keep it at
``../shared/corpus`` beside the checkout, where the project's machines have it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def corpus_dir() -> Path:
    """Return the corpus directory, or exit with a clear message saying where it was looked for."""
    configured = os.environ.get("HOTPATCH_CORPUS")
    path = Path(configured) if configured else DEFAULT
    if not (path / "rn").is_dir():
        where = f"HOTPATCH_CORPUS={configured}" if configured else f"{DEFAULT} (the default)"
        sys.exit(
            f"benchmark corpus not found at {where}: this benchmark needs the corpus of real "
            "bundle pairs; set HOTPATCH_CORPUS to its directory (the one holding rn/ and npm/)"
        )
    return path
