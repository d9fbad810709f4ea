"""The SDK's JavaScript in a real bundle: Metro with react-native 0.82.1, run in a Hermes VM.

``packages/hotpatch-react-native/example`` is a minimal entry that uses the
SDK. ``smoke.js`` bundles it with Metro (the SDK's TypeScript sources and
React Native's own JavaScript, as an app build would) and runs the bundle in
the Hermes VM of ``hermes-engine-cli`` behind ``platform.js`` (React Native's
native side: inert stand-ins for the modules it needs at start) and
``smoke-native.js`` (a scripted HotPatch module that records each call and
emits progress events through React Native's event emitter). That Hermes is 0.12, older
than the one react-native 0.82 ships, so this proves the bundle runs in a
Hermes VM, not in the exact engine of a release build.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

EXAMPLE = "packages/hotpatch-react-native/example"
EXPECTED = [
    "hotpatch-smoke: hook function",
    "hotpatch-smoke: sync update-installed 1.0.1 mode=on-next-restart progress=download,install",
    "hotpatch-smoke: snapshot update-installed",
    "hotpatch-smoke: refused true RollbackError",
    (
        "hotpatch-smoke: calls configure:com.example.app@production,checkForUpdate,"
        "downloadUpdate,notifyAppReady,checkForUpdate"
    ),
    "hotpatch-smoke: done",
]


def test_the_sdk_runs_in_a_metro_bundle_in_hermes(
    npm_project: Callable[[str], Path], tmp_path: Path
) -> None:
    """configure, sync with progress, notifyAppReady and a typed refusal, through real RN JS."""
    example = npm_project(EXAMPLE)
    node = shutil.which("node")
    assert node is not None
    ran = subprocess.run(
        [node, str(example / "smoke.js"), str(tmp_path)],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    lines = [line for line in ran.stdout.splitlines() if line.startswith("hotpatch-smoke:")]
    assert lines == EXPECTED, ran.stdout[-3000:] + ran.stderr[-3000:]
