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

import sys
from collections.abc import Callable
from pathlib import Path

RUNNER = (
    Path(__file__).resolve().parents[2]
    / "packages"
    / "hotpatch-react-native"
    / "ios"
    / "run_tests.py"
)


def test_the_swift_core_builds_and_passes_its_tests(
    sdk_suite: Callable[[list[str], int], str],
) -> None:
    """A compile error or a failing XCTest fails here; the live test must run, not skip."""
    sdk_suite([sys.executable, str(RUNNER)], 55)
