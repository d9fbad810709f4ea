"""Check the iOS bridge's declarations against its Swift class and the JavaScript spec.

Swift on Linux has no Objective-C interoperability and there is no Xcode here,
so the bridge (``HotPatchModule.swift`` with ``@objc`` selectors, declared to
React Native by ``HotPatchModule.m``) cannot be built. This check does what can
be done: it compiles ``HotPatchModule.m`` with clang and GNUstep against the
real React Native headers of the pinned ``react-native`` npm package (with a
stand-in for what they take from UIKit, ``bridge-check/UIKit/UIKit.h``), loads
it in GNUstep's Objective-C runtime, and reads what React Native would read:
the module's name and each exported method. Then each method must be in the
TurboModule spec (``src/NativeHotPatch.ts``), every method of the spec must be
exported, promise methods must end in resolve/reject blocks, and each selector
must be one the Swift class declares with ``@objc``. Prints ``bridge: N methods
checked against HotPatchModule.swift and src/NativeHotPatch.ts, M differ``;
exits 1 on a difference, 3 where clang or GNUstep is missing.

    python check_bridge.py [--module HotPatchModule.m] [--swift HotPatchModule.swift]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
REACT_NATIVE = PACKAGE / "node_modules" / "react-native"
SPEC = PACKAGE / "src" / "NativeHotPatch.ts"
CANNOT_CHECK = 3
#: What RCTEventEmitter itself gives the module (NativeEventEmitter's plumbing).
EMITTER_METHODS = frozenset({"addListener", "removeListeners"})
_SPEC_METHOD = re.compile(
    r"^  (?P<name>[a-zA-Z]+)\((?P<args>[^)]*)\): (?P<returns>[A-Za-z]+)", re.M
)
_OBJC_SELECTOR = re.compile(
    r"@objc\((?P<selector>[A-Za-z:]+)\)|@objc\s+func (?P<bare>[A-Za-z]+)\(\)"
)
_TYPES = re.compile(r"\((?P<type>[^)]*)\)")
PROMISE_BLOCKS = ("RCTPromiseResolveBlock", "RCTPromiseRejectBlock")
_PART = re.compile(r"(?:^| )(?P<label>[A-Za-z]+):")


def _missing() -> list[str]:
    tools = ("clang", "gnustep-config")
    missing = [f"{t} (apt-get install clang gnustep-devel)" for t in tools if not shutil.which(t)]
    if not (REACT_NATIVE / "React").is_dir():
        missing.append(f"{REACT_NATIVE} (npm ci in {PACKAGE})")
    return missing


def _includes(into: Path) -> None:
    """Lay out React Native's headers as CocoaPods does (``<React/...>``), plus the stand-ins."""
    react = into / "React"
    react.mkdir(parents=True)
    for header in sorted((REACT_NATIVE / "React").rglob("*.h")):
        link = react / header.name
        if not link.exists():
            link.symlink_to(header)
    deprecation = next(REACT_NATIVE.rglob("RCTDeprecation.h"))
    (into / "RCTDeprecation").mkdir()
    (into / "RCTDeprecation" / "RCTDeprecation.h").symlink_to(deprecation)
    shutil.copytree(HERE / "bridge-check" / "UIKit", into / "UIKit")
    shutil.copytree(HERE / "bridge-check" / "objc", into / "objc")


def _gnustep(option: str) -> list[str]:
    """Return the compiler or linker flags ``gnustep-config`` gives for ``option``."""
    done = subprocess.run(  # noqa: S603 - GNUstep's own configuration tool
        [shutil.which("gnustep-config") or "gnustep-config", option],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.split()


def exported(module: Path) -> tuple[str, list[tuple[str, str, bool]]]:
    """Compile and load ``module``; return the module's JavaScript name and its methods."""
    with tempfile.TemporaryDirectory(prefix="hotpatch-bridge-") as scratch:
        work = Path(scratch)
        _includes(work / "include")
        driver = work / "driver.m"
        driver.write_text(
            f'#include "{module}"\n'
            + (HERE / "bridge-check" / "driver.m").read_text(encoding="utf-8"),
            encoding="utf-8",
        )
        flags, libraries = _gnustep("--objc-flags"), _gnustep("--base-libs")
        # GCC's own headers hold objc/objc.h, which GNUstep's Foundation includes.
        gcc_include = sorted(Path("/usr/lib/gcc").glob("*/*/include"))
        binary = work / "driver"
        command = [shutil.which("clang") or "clang", "-fblocks", "-fobjc-runtime=gcc", *flags, "-w",
                   *(f"-I{path}" for path in gcc_include[-1:]), f"-I{work / 'include'}",
                   "-include", str(work / "include" / "UIKit" / "UIKit.h"),
                   str(driver), "-o", str(binary), *libraries]  # fmt: skip
        built = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)  # noqa: S603
        if built.returncode != 0:
            raise SystemExit(
                f"{module.name} does not compile against React Native's headers:\n{built.stderr}"
            )
        ran = subprocess.run([str(binary)], capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
        if ran.returncode != 0:
            raise SystemExit(f"the bridge did not load: {ran.stdout}{ran.stderr}")
    lines = ran.stdout.splitlines()
    fields = dict(line.split(" ", 1) for line in lines if line.startswith(("class ", "module ")))
    # React Native names a module by its class when RCT_EXTERN_MODULE gives no name.
    name = fields.get("module", "").strip() or fields["class"].removeprefix("RCT")
    methods = []
    for line in lines:
        if line.startswith("method "):
            js_name, signature, sync = line.removeprefix("method ").split("|")
            methods.append((js_name, signature, sync == "1"))
    return name, methods


def selector(signature: str) -> str:
    """Return the selector of an exported method's signature (``a:(T)x b:(U)y`` -> ``a:b:``)."""
    labels = [m["label"] for m in _PART.finditer(signature)]
    return "".join(f"{label}:" for label in labels) if labels else signature.strip()


def check(module: Path, swift: Path, spec: Path) -> tuple[int, list[str]]:
    """Return how many methods were checked and every difference found."""
    name, methods = exported(module)
    problems: list[str] = []
    spec_text = spec.read_text(encoding="utf-8")
    registry = re.search(r"TurboModuleRegistry\.get<Spec>\('(?P<name>[A-Za-z]+)'\)", spec_text)
    if registry is None or registry["name"] != name:
        problems.append(
            f"the module is named {name!r}, the spec asks for {registry and registry['name']!r}"
        )
    wanted = {m["name"]: m["returns"] for m in _SPEC_METHOD.finditer(spec_text)}
    swift_selectors = {
        m["selector"] or m["bare"] for m in _OBJC_SELECTOR.finditer(swift.read_text())
    }
    seen = set()
    for js_name, signature, _sync in methods:
        sel = selector(signature)
        method = js_name or sel.split(":", 1)[0]
        seen.add(method)
        if method not in wanted:
            problems.append(f"{method}: exported, not in {spec.name}")
        elif wanted[method] == "Promise" and _TYPES.findall(signature)[-2:] != list(PROMISE_BLOCKS):
            problems.append(
                f"{method}: returns a Promise in {spec.name}, "
                f"{signature!r} ends in no resolve/reject blocks"
            )
        if sel not in swift_selectors:
            problems.append(f"{method}: selector {sel} is not an @objc selector of {swift.name}")
    problems += [
        f"{method}: in {spec.name}, not exported by {module.name}"
        for method in sorted(set(wanted) - seen - EMITTER_METHODS)
    ]
    return len(methods), problems


def main(argv: list[str] | None = None) -> int:
    """Run the check; print its line (CI reads it) and the differences."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--module", type=Path, default=HERE / "HotPatchModule.m")
    parser.add_argument("--swift", type=Path, default=HERE / "HotPatchModule.swift")
    args = parser.parse_args(argv)
    missing = _missing()
    if missing:
        print("cannot check the iOS bridge here; missing:\n  " + "\n  ".join(missing))  # noqa: T201
        return CANNOT_CHECK
    count, problems = check(args.module.resolve(), args.swift.resolve(), SPEC)
    for problem in problems:
        print(problem)  # noqa: T201
    print(f"bridge: {count} methods checked against {args.swift.name} and src/{SPEC.name}, "  # noqa: T201
          f"{len(problems)} differ")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
