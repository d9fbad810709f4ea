"""The React Native SDK's JavaScript layer: type-checked against the pinned react-native, tested.

``packages/hotpatch-react-native`` is installed with ``npm ci`` from its
lock file; ``tsc`` (strict) compiles it and its tests against the real
react-native 0.82 and React types, and ``node --test`` runs the tests (a
scripted native module, AppState and clock). ``nox -s sdk-js`` does the same
by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

SDK = "packages/hotpatch-react-native"


def test_the_js_layer_type_checks_and_its_tests_pass(
    npm_project: Callable[[str], Path], tmp_path: Path
) -> None:
    """A type error or a failing test fails here, with the tool's own output."""
    project = npm_project(SDK)
    node = shutil.which("node")
    assert node is not None
    tsc = project / "node_modules" / "typescript" / "bin" / "tsc"
    compiled = subprocess.run(
        [node, str(tsc), "-p", str(project), "--outDir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    tests = sorted(str(path) for path in (tmp_path / "test").glob("*.test.js"))
    assert tests, "no compiled tests"
    ran = subprocess.run(
        [node, "--test", *tests],
        # Compiled outside the project, the tests find react and the rest in its node_modules.
        env={**os.environ, "NODE_PATH": str(project / "node_modules")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr
    passed = re.search(r"^# pass ([0-9]+)$", ran.stdout, re.MULTILINE)
    failed = re.search(r"^# fail ([0-9]+)$", ran.stdout, re.MULTILINE)
    assert passed is not None, ran.stdout[-2000:]
    assert failed is not None, ran.stdout[-2000:]
    assert (int(passed.group(1)) >= 19, int(failed.group(1))) == (True, 0), ran.stdout[-2000:]
