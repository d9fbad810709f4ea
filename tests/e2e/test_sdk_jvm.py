"""The Android core of the React Native SDK, built and tested on the plain JVM.

``packages/hotpatch-react-native/android/core/run_tests.py`` compiles the
pure-Kotlin core with the Kotlin compiler of its pinned npm package against
BouncyCastle, and runs its JUnit 5 tests (golden vectors, the conformance
scenarios, a differential Ed25519 test against JDK 17). Here it also gets a
real ``hotpatch-server`` process with a release that the ``hotpatch`` CLI
signed and published, so ``LiveServerTest`` runs the Kotlin agent against it:
a device receives, installs, confirms and reports a signed update. Skipped,
with the reason, where Java, JUnit 5 or BouncyCastle are missing (``.ci/run``
installs them: ``junit5``, ``libbcprov-java``). ``nox -s sdk-jvm`` runs the
JUnit suite by hand (without the live part).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from hotpatch_server.testing import free_port, serving

CORE = (
    Path(__file__).resolve().parents[2] / "packages" / "hotpatch-react-native" / "android" / "core"
)
ANDROID = CORE.parent
CANNOT_BUILD = 3  # run_tests.py's exit status when a tool is missing
BIN = Path(sys.executable).parent
APP = "com.example.jvm"


def _run(env: dict[str, str], tool: str, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / tool), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{tool} {args}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture
def live_release(tmp_path: Path) -> Iterator[list[str]]:
    """A running server with app APP, a trust root naming its timestamp key, and release 1.0.1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPATCH_")}
    env.update(
        HOTPATCH_HOME=str(tmp_path / "cli"),
        HOTPATCH_DATA_DIR=str(tmp_path / "server"),
        HOME=str(tmp_path),
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env["HOTPATCH_PUBLIC_URL"] = url
    with (tmp_path / "server.log").open("w") as log, serving(env, port, log):
        _run(env, "hotpatch", "keys", "generate", "--scope-app", APP)
        _run(env, "hotpatch", "keys", "generate", "--root", "--out", str(tmp_path / "root.pem"))
        _run(env, "hotpatch", "keys", "export-public", "--out", str(tmp_path / "publisher.pub"))
        _run(env, "hotpatch-server", "timestamp-key", "--out", str(tmp_path / "stamp.pub"))
        root = tmp_path / "trust-root.json"
        _run(env, "hotpatch", "trust-root", "create", "--root-key", str(tmp_path / "root.pem"),
             "--publisher", f"{tmp_path / 'publisher.pub'}:ci", "--scope-app", APP,
             "--timestamp-key", str(tmp_path / "stamp.pub"), "--out", str(root))  # fmt: skip
        _run(env, "hotpatch-server", "create-app", APP, "--trust-root", str(root))
        token = _run(env, "hotpatch-server", "create-key", "--name", "ci", "--role", "publisher",
                     "--app", APP).strip().splitlines()[-1]  # fmt: skip
        _run(env, "hotpatch", "login", "--api-url", url, "--token", token, "--app", APP)
        bundle = tmp_path / "bundle"
        (bundle / "assets").mkdir(parents=True)
        (bundle / "index.android.bundle").write_text("__d(function(){console.log('live')});\n")
        (bundle / "assets" / "logo.png").write_bytes(bytes(range(256)) * 8)
        release = ["release", "--platform", "android", "--version", "1.0.1", "--json",
                   "--binary-range", "1.0.x", "--rollout", "100",
                   "--bundle-dir", str(bundle)]  # fmt: skip
        published = json.loads(_run(env, "hotpatch", *release))
        assert published["sequence"] == 1
        yield [f"url={url}", f"app={APP}", f"root={root}", "native=1.0.0"]


def test_the_android_core_compiles_and_passes_its_tests(
    tmp_path: Path, live_release: list[str]
) -> None:
    """A compile error or a failing JUnit test fails here; the live test must run, not skip."""
    live = [arg for item in live_release for arg in ("--live", item)]
    ran = subprocess.run(
        [sys.executable, str(CORE / "run_tests.py"), "--build", str(tmp_path / "build"), *live],
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
    assert (passed >= 79, failed, skipped) == (True, 0, 0), ran.stdout[-3000:]
    assert "live: confirmed 1.0.1" in ran.stdout, ran.stdout[-3000:]
    assert "stubs: 30 members checked against ReactAndroid.api, 0 differ" in ran.stdout


def test_a_stub_that_drifts_from_react_native_fails_the_check(tmp_path: Path) -> None:
    """The adapter's React Native stubs are checked, not trusted: a changed signature is caught."""
    if shutil.which("javac") is None or shutil.which("npm") is None:
        pytest.skip("needs a JDK (javac) and npm")
    runner = _load(CORE / "run_tests.py", "hotpatch_run_tests")
    api = runner._react_native() / "ReactAndroid" / "api" / "ReactAndroid.api"
    stubs = tmp_path / "stubs"
    shutil.copytree(ANDROID / "stubs", stubs)
    promise = stubs / "react" / "com" / "facebook" / "react" / "bridge" / "Promise.java"
    promise.write_text(
        promise.read_text().replace("void resolve(Object value);", "void resolve(String value);")
    )
    classes = tmp_path / "classes"
    runner._javac([stubs], [], classes)
    check = _load(ANDROID / "check_stubs.py", "hotpatch_check_stubs")
    checked, problems = check.check(classes, api)
    assert checked == 30
    assert len(problems) == 1, problems
    assert problems[0].startswith("com.facebook.react.bridge.Promise.resolve(Ljava/lang/String;)V")
    assert "not in the API (it has [('resolve', '(Ljava/lang/Object;)V'" in problems[0]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
