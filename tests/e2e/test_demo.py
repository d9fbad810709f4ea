"""The newcomer's demo runs end to end and tells the story it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hotpatch_server.testing import shared_dir

DEMO = Path(__file__).resolve().parents[2] / "demo" / "run.py"


def test_demo_runs_the_whole_loop() -> None:
    """`nox -s demo`'s script: rollout, crash, automatic revert, CLI rollback, clean up."""
    if shared_dir() is None:
        pytest.skip("the shared corpus is not here: set HOTPATCH_SHARED_DIR")
    done = subprocess.run(
        [sys.executable, str(DEMO), "--devices", "30", "--prebuilt"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in ("1. hotpatch-server is running", "3. published 1.0.1", "5. published 1.0.2",
                 "6. `hotpatch rollback --version 1.0.1`", "7. Summary"):  # fmt: skip
        assert step in out
    assert "30 of 30 devices reverted on their own" in out
    assert "received 30 rolled_back reports" in out
    assert "{'1.0.1': 30}" in out
    assert "the temporary directory and the server are gone" in out
