"""The newcomer's demo runs end to end, from a bare clone, and tells the story it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_whole_loop_from_a_bare_clone(bare_clone: Path) -> None:
    """The demo script, in a clone with nothing beside it: rollout, crash, revert, rollback."""
    clone = bare_clone
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPATCH_")}
    done = subprocess.run(
        [sys.executable, str(clone / "demo" / "run.py"), "--devices", "30"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in ("1. hotpatch-server is running", "3. published 1.0.1", "5. published 1.0.2",
                 "6. `hotpatch rollback --version 1.0.1`", "7. Summary"):  # fmt: skip
        assert step in out
    assert "fixtures/rn-build/v1" in out
    assert "30 of 30 devices reverted on their own" in out
    assert "received 30 rolled_back reports" in out
    assert "{'1.0.1': 30}" in out
    assert "30 devices, 6 of them react-native-code-push apps" in out
    assert "the temporary directory and the server are gone" in out
