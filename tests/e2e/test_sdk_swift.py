"""The Swift core of the React Native SDK, built and tested on Linux.

``packages/hotpatch-react-native/ios/run_tests.py`` runs ``swift test`` on the
``HotPatchCore`` package in a Debian 13 chroot that has Swift 6 (Debian 12 has
no Swift), with libsodium standing in for CryptoKit: the golden vectors, and every
device conformance scenario replayed through the Swift state machine; and a
real ``hotpatch-server`` with a release the ``hotpatch`` CLI signed, from which
the Swift agent receives, installs and confirms it (``LiveServerTests``). Skipped,
with the reason, where the chroot has not been made (``.ci/run`` makes it with
``run_tests.py --prepare``, as ``nox -s sdk-swift`` does) or where the run is
not root.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = (
    Path(__file__).resolve().parents[2]
    / "packages"
    / "hotpatch-react-native"
    / "ios"
    / "run_tests.py"
)
CANNOT_BUILD = 3  # run_tests.py's exit status when the toolchain is missing


def test_the_swift_core_builds_and_passes_its_tests(live_release: list[str]) -> None:
    """A compile error or a failing XCTest fails here; the live test must run, not skip."""
    live = [arg for item in live_release for arg in ("--live", item)]
    ran = subprocess.run(
        [sys.executable, str(RUNNER), *live],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if ran.returncode == CANNOT_BUILD:
        pytest.skip(ran.stdout.strip())
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    counted = re.search(r"^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$", ran.stdout, re.M)
    assert counted is not None, ran.stdout[-2000:]
    passed, failed, skipped = (int(n) for n in counted.groups())
    assert (passed >= 53, failed, skipped) == (True, 0, 0), ran.stdout[-3000:]
    assert "live: confirmed 1.0.1" in ran.stdout, ran.stdout[-3000:]
