"""The Android core of the React Native SDK, built and tested on the plain JVM.

``packages/hotpatch-react-native/android/core/run_tests.py`` compiles the
pure-Kotlin core with the Kotlin compiler of its pinned npm package against
BouncyCastle, and runs its JUnit 5 tests (golden vectors, a differential
Ed25519 test against JDK 17). Skipped, with the reason, where Java, JUnit 5 or
BouncyCastle are missing (``.ci/run`` installs them: ``junit5``,
``libbcprov-java``). ``nox -s sdk-jvm`` runs the same by hand.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CORE = (
    Path(__file__).resolve().parents[2] / "packages" / "hotpatch-react-native" / "android" / "core"
)
CANNOT_BUILD = 3  # run_tests.py's exit status when a tool is missing


def test_the_android_core_compiles_and_passes_its_tests(tmp_path: Path) -> None:
    """A compile error or a failing JUnit test fails here, with the build's output."""
    ran = subprocess.run(
        [sys.executable, str(CORE / "run_tests.py"), "--build", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if ran.returncode == CANNOT_BUILD:
        pytest.skip(ran.stdout.strip())
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    counted = re.search(r"^([0-9]+) passed, ([0-9]+) failed$", ran.stdout, re.MULTILINE)
    assert counted is not None, ran.stdout[-2000:]
    assert (int(counted.group(1)) >= 69, int(counted.group(2))) == (True, 0), ran.stdout[-2000:]
