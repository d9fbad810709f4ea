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
import subprocess
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


def test_compiled_classes_are_reused_only_for_the_same_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build cache keys on content: a copy elsewhere hits, one changed byte compiles again."""
    monkeypatch.setenv("HOTPATCH_JVM_CACHE", str(tmp_path / "cache"))
    runner = load_script(CORE / "run_tests.py", "hotpatch_run_tests")
    made: list[Path] = []

    def make(into: Path) -> None:
        made.append(into)
        (into / "pkg").mkdir()
        (into / "pkg" / "A.class").write_bytes(b"compiled %d" % len(made))

    first, second = tmp_path / "checkout-1", tmp_path / "checkout-2"
    for checkout in (first, second):
        (checkout / "src").mkdir(parents=True)
        (checkout / "src" / "A.kt").write_text("class A\n")
        (checkout / "lib.jar").write_bytes(b"a library")

    def build(checkout: Path, tool: str = "kotlinc 2.1.20") -> bytes:
        out = checkout / "out"
        runner._cached("kotlinc", [tool], [checkout / "src", checkout / "lib.jar"], out, make)
        return bytes((out / "pkg" / "A.class").read_bytes())

    assert build(first) == b"compiled 1"
    assert build(second) == b"compiled 1"  # the same sources in another folder: reused
    assert len(made) == 1
    (second / "src" / "A.kt").write_text("class A { }\n")
    assert build(second) == b"compiled 2"  # a changed source compiles again
    (second / "lib.jar").write_bytes(b"a library, updated")
    assert build(second) == b"compiled 3"  # so does a changed class path entry
    assert build(second, "kotlinc 2.2.0") == b"compiled 4"  # and another compiler
    (second / "src" / "B.kt").write_text("class B\n")
    assert build(second) == b"compiled 5"  # and a new file

    def broken(into: Path) -> None:
        (into / "half.class").write_bytes(b"")
        raise subprocess.CalledProcessError(1, "kotlinc")

    (first / "src" / "A.kt").write_text("class A {\n")
    with pytest.raises(subprocess.CalledProcessError):
        runner._cached("kotlinc", ["kotlinc 2.1.20"], [first / "src"], first / "out", broken)
    # A failed compile stores nothing, not even its half: the next run compiles (and fails) again.
    entries = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(entries) == 5, entries
    assert all(name.startswith("kotlinc-") for name in entries), entries

    monkeypatch.setenv("HOTPATCH_JVM_CACHE", "off")
    assert build(first) == b"compiled 6"  # caching off: always compiled
