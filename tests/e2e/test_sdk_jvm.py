"""The Android core of the React Native SDK, built and tested on the plain JVM.

``packages/hotpatch-react-native/android/core/run_tests.py`` compiles the
pure-Kotlin core with the Kotlin compiler of its pinned npm package against
BouncyCastle, and runs its JUnit 5 tests (golden vectors, the conformance
scenarios, a differential Ed25519 test against JDK 17). Here it also gets a
real ``hotpatch-server`` process with a release that the ``hotpatch`` CLI
signed and published, so ``LiveServerTest`` runs the Kotlin agent against it:
a device receives, installs, confirms and reports a signed update. Skipped,
with the reason, where Java, JUnit 5, BouncyCastle or the patch decoders are
missing (``.ci/run`` installs them: ``junit5``, ``libbcprov-java``,
``libzstd-jni-java``, ``libzstd-jni1``, ``libcommons-compress-java``,
``libxz-java``). ``nox -s sdk-jvm`` runs the
JUnit suite by hand (without the live part).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import load_script

CORE = (
    Path(__file__).resolve().parents[2] / "packages" / "hotpatch-react-native" / "android" / "core"
)
ANDROID = CORE.parent


def test_the_android_core_compiles_and_passes_its_tests(
    tmp_path: Path, sdk_suite: Callable[[list[str], int], str]
) -> None:
    """A compile error or a failing JUnit test fails here; the live test must run, not skip."""
    out = sdk_suite(
        [sys.executable, str(CORE / "run_tests.py"), "--build", str(tmp_path / "build")], 80
    )
    assert "stubs: 30 members checked against ReactAndroid.api, 0 differ" in out


def test_a_stub_that_drifts_from_react_native_fails_the_check(tmp_path: Path) -> None:
    """The adapter's React Native stubs are checked, not trusted: a changed signature is caught."""
    if shutil.which("javac") is None or shutil.which("npm") is None:
        pytest.skip("needs a JDK (javac) and npm")
    runner = load_script(CORE / "run_tests.py", "hotpatch_run_tests")
    api = runner._react_native() / "ReactAndroid" / "api" / "ReactAndroid.api"
    stubs = tmp_path / "stubs"
    shutil.copytree(ANDROID / "stubs", stubs)
    promise = stubs / "react" / "com" / "facebook" / "react" / "bridge" / "Promise.java"
    promise.write_text(
        promise.read_text().replace("void resolve(Object value);", "void resolve(String value);")
    )
    classes = tmp_path / "classes"
    runner._javac([stubs], [], classes)
    check = load_script(ANDROID / "check_stubs.py", "hotpatch_check_stubs")
    checked, problems = check.check(classes, api)
    assert checked == 30
    assert len(problems) == 1, problems
    assert problems[0].startswith("com.facebook.react.bridge.Promise.resolve(Ljava/lang/String;)V")
    assert "not in the API (it has [('resolve', '(Ljava/lang/Object;)V'" in problems[0]
