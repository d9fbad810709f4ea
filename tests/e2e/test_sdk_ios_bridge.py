"""The iOS bridge's declarations, checked against React Native, its Swift class and the spec.

Swift's ``@objc`` cannot be compiled on Linux, so the bridge itself is not
built here. ``packages/hotpatch-react-native/ios/check_bridge.py`` compiles
``HotPatchModule.m`` with clang and GNUstep against the real headers of the
pinned react-native, loads it in GNUstep's Objective-C runtime, and compares
what React Native would read (the module's name, each exported method) with
the ``@objc`` selectors of ``HotPatchModule.swift`` and the methods of
``src/NativeHotPatch.ts``. Skipped, with the reason, where clang or GNUstep is
missing (``.ci/run`` installs ``clang gnustep-devel``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import load_script

IOS = Path(__file__).resolve().parents[2] / "packages" / "hotpatch-react-native" / "ios"
CANNOT_CHECK = 3


@pytest.fixture
def checker(npm_project: Callable[[str], Path]) -> ModuleType:
    """check_bridge.py as a module, with the SDK package's react-native installed."""
    npm_project("packages/hotpatch-react-native")
    module = load_script(IOS / "check_bridge.py", "hotpatch_check_bridge")
    if module._missing():
        pytest.skip("cannot check the iOS bridge here: " + "; ".join(module._missing()))
    return module


@pytest.mark.usefixtures("checker")
def test_the_bridge_declares_what_the_swift_class_and_the_spec_have() -> None:
    """Every method of the spec is exported with the Swift class's selector; nothing else is."""
    ran = subprocess.run(
        [sys.executable, str(IOS / "check_bridge.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (
        "bridge: 6 methods checked against HotPatchModule.swift and src/NativeHotPatch.ts, 0 differ"
        in ran.stdout
    )


def test_a_bridge_that_drifts_is_caught(checker: ModuleType, tmp_path: Path) -> None:
    """A renamed method, a lost promise and a selector the Swift class lacks are each reported."""
    source = (IOS / "HotPatchModule.m").read_text()
    drifted = tmp_path / "HotPatchModule.m"
    promised = (
        "RCT_EXTERN_METHOD(getStatus:(RCTPromiseResolveBlock)resolve\n"
        "                  reject:(RCTPromiseRejectBlock)reject)"
    )
    assert promised in source
    renamed = source.replace("RCT_EXTERN_METHOD(notifyAppReady:", "RCT_EXTERN_METHOD(notifyReady:")
    drifted.write_text(renamed.replace(promised, "RCT_EXTERN_METHOD(getStatus)"))
    swift = "HotPatchModule.swift"
    count, problems = checker.check(drifted, IOS / "HotPatchModule.swift", checker.SPEC)
    assert count == 6
    assert sorted(problems) == sorted(
        [
            "notifyReady: exported, not in NativeHotPatch.ts",
            f"notifyReady: selector notifyReady:reject: is not an @objc selector of {swift}",
            "notifyAppReady: in NativeHotPatch.ts, not exported by HotPatchModule.m",
            (
                "getStatus: returns a Promise in NativeHotPatch.ts, "
                "'getStatus' ends in no resolve/reject blocks"
            ),
            f"getStatus: selector getStatus is not an @objc selector of {swift}",
        ]
    ), problems
