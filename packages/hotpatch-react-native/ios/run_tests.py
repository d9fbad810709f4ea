r"""Build and test the SDK's Swift core on Linux, in a Debian 13 chroot that has Swift 6.

Debian 12 has no Swift compiler, and Debian 13's ``swiftlang`` needs a newer C
library than Debian 12 has; so the toolchain lives in a Debian 13 (trixie)
chroot made with ``debootstrap`` (docs/howto/react-native-sdk.md). ``--prepare``
makes it once (about a minute, 3.3 GB) under ``~/.cache/hotpatch/swift-trixie``
(``HOTPATCH_SWIFT_ROOT`` moves it); later runs reuse it. Each run mounts this
repository read-only into the chroot, in a private mount namespace that
disappears with the run, and runs ``swift test`` on the ``HotPatchCore``
package with the golden vectors of ``docs/spec``. Prints ``N passed, N failed,
N skipped`` (each skip with its reason) and exits non-zero on a failure;
exits 3, saying what is missing, where the toolchain is not there.

    python run_tests.py --prepare     # make the chroot (root, debootstrap, network)
    python run_tests.py               # build and test
    python run_tests.py --live url=http://127.0.0.1:8000 --live app=com.acme.shop \
        --live root=trust-root.json --live native=1.0.0   # and LiveServerTests against a server

Needs root (chroot and mount), as CI has.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PACKAGE = HERE / "HotPatchCore"
MIRROR = "http://deb.debian.org/debian"
SUITE = "trixie"
#: What the chroot installs: Swift 6 (with Foundation and XCTest), libsodium for Ed25519,
#: zlib for archives, and zstd, bzip2 and LZMA2 for patches.
PACKAGES = (
    "swiftlang", "libsodium-dev", "zlib1g-dev", "libc6-dev", "pkg-config",
    "libzstd-dev", "libbz2-dev", "liblzma-dev",
)  # fmt: skip
READY = ".hotpatch-ready"
CANNOT_BUILD = 3
INSIDE = "/work/hotpatch"  # where the repository appears inside the chroot


def _root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hotpatch"
    return Path(os.environ.get("HOTPATCH_SWIFT_ROOT") or default / "swift-trixie")


def _missing(root: Path) -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (chroot and mount need it)")
    tools = ("unshare", "mount", "chroot")
    missing += [f"{tool} (util-linux, coreutils)" for tool in tools if shutil.which(tool) is None]
    if not (root / READY).is_file():
        missing.append(f"the Swift chroot at {root} (python {Path(__file__).name} --prepare)")
    elif _stamp_packages(root) != PACKAGES:
        missing.append(f"{', '.join(PACKAGES)} in {root} (python {Path(__file__).name} --prepare)")
    return missing


def _stamp_packages(root: Path) -> tuple[str, ...]:
    """Return the packages the chroot's stamp says it has."""
    for line in (root / READY).read_text().splitlines():
        if line.startswith("packages: "):
            return tuple(line.removeprefix("packages: ").split())
    return ()


def _install(root: Path) -> None:
    """Install PACKAGES in the chroot and write its stamp."""
    _step(f"installing {' '.join(PACKAGES)} (about 500 MB to download the first time)")
    install = (
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        f"--no-install-recommends {' '.join(PACKAGES)} >/dev/null && apt-get clean"
    )
    _in_chroot(root, ["sh", "-c", install], timeout=1800)
    version = _in_chroot(root, ["swift", "--version"], capture=True).splitlines()[0]
    (root / READY).write_text(f"{version}\npackages: {' '.join(PACKAGES)}\n")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not on PATH")
    return found


def _step(message: str) -> None:
    print(f"swift: {message}", flush=True)  # noqa: T201 - progress of a long step


def prepare(root: Path) -> None:
    """Make the chroot: debootstrap Debian 13, then install Swift and its libraries in it."""
    if os.geteuid() != 0:
        raise SystemExit("--prepare needs root (debootstrap and chroot)")
    if (root / READY).is_file():
        if _stamp_packages(root) != PACKAGES:
            _install(root)  # a chroot of an earlier version of this list: add what it lacks
        version = (root / READY).read_text().splitlines()[0]
        _step(f"the chroot at {root} is ready ({version})")
        return
    if shutil.which("debootstrap") is None:
        raise SystemExit("--prepare needs debootstrap: apt-get install debootstrap")
    root.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the final place and rename at the end: a half-made chroot is never "ready".
    work = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
    work.chmod(0o755)  # the root of a system: apt's own user must read it
    started = time.monotonic()
    try:
        _step(f"debootstrap {SUITE} into {work} (about 30 s)")
        subprocess.run(  # noqa: S603 - fixed arguments
            [_tool("debootstrap"), "--variant=minbase", SUITE, str(work), MIRROR],
            check=True, stdout=subprocess.DEVNULL, timeout=1800,
        )  # fmt: skip
        _install(work)
        shutil.rmtree(root, ignore_errors=True)
        work.rename(root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    version = (root / READY).read_text().splitlines()[0]
    _step(f"ready in {time.monotonic() - started:.0f} s: {version}")


def chroot_argv(root: Path, command: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Return the argv that runs ``command`` in the chroot, with /proc and the repository mounted.

    The mounts live in a private mount namespace: they end with the command,
    whatever happens to it, and no other process sees them.
    """
    clean = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",  # noqa: S108 - the chroot's own /tmp
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    inside = root / INSIDE.lstrip("/")
    inside.mkdir(parents=True, exist_ok=True)
    script = (
        'set -e; mount -t proc proc "$1/proc"; '
        'mount --bind "$2" "$1$3"; mount -o remount,bind,ro "$1$3"; '
        'root="$1"; shift 3; exec chroot "$root" env -i "$@"'
    )
    variables = [f"{k}={v}" for k, v in clean.items()]
    return [_tool("unshare"), "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(root), str(REPO), INSIDE, *variables, *command]  # fmt: skip


def _in_chroot(
    root: Path,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    capture: bool = False,
    timeout: float = 900,
) -> str:
    """Run ``command`` in the chroot (:func:`chroot_argv`); return its output if captured."""
    done = subprocess.run(  # noqa: S603 - this repository's tools in its own chroot
        chroot_argv(root, command, env), check=False, timeout=timeout, text=True,
        stdout=subprocess.PIPE if capture else None,
    )  # fmt: skip
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout)
    return done.stdout or ""


def _scratch() -> str:
    """One build folder per checkout, kept in the chroot: the next run builds only what changed."""
    return "/var/cache/hotpatch-build/" + hashlib.sha256(str(REPO).encode()).hexdigest()[:16]


def build_device_host() -> tuple[Path, str]:
    """Build ``HotPatchDeviceHost``; return the chroot and the program's path inside it.

    The program runs ``HotPatch.onLaunch`` and ``ModuleCore`` as one app
    process for tests/e2e/test_sdk_app_hermes.py; run it with
    :func:`chroot_argv`. Raises SystemExit, saying what is missing, where the
    toolchain is not there.
    """
    root = _root()
    missing = _missing(root)
    if missing:
        raise SystemExit("cannot build the Swift side here; missing:\n  " + "\n  ".join(missing))
    package = f"{INSIDE}/{PACKAGE.relative_to(REPO)}"
    command = ["swift", "build", "--package-path", package, "--scratch-path", _scratch(),
               "--product", "HotPatchDeviceHost"]  # fmt: skip
    _in_chroot(root, command, capture=True, timeout=1800)
    return root, f"{_scratch()}/debug/HotPatchDeviceHost"


CASE = re.compile(r"^Test Case '([^']+)' (passed|failed|skipped) \(")
SKIP = re.compile(r"^.*?: (\S+) : Test skipped(?: - (.*))?$")


def _count(output: str) -> tuple[int, int, list[str]]:
    """Count passed and failed tests in XCTest's output; list the skipped ones with reasons."""
    passed = failed = 0
    skipped: list[str] = []
    reasons = {m[1]: (m[2] or "").strip() for m in map(SKIP.match, output.splitlines()) if m}
    for match in map(CASE.match, output.splitlines()):
        if match is None:
            continue
        name, outcome = match.groups()
        if outcome == "passed":
            passed += 1
        elif outcome == "failed":
            failed += 1
        else:
            skipped.append(f"{name}: {reasons.get(name, '')}")
    return passed, failed, skipped


def _live_environment(settings: list[str]) -> dict[str, str]:
    """Return the ``--live`` settings as the tests' environment (the trust root file read in)."""
    environment: dict[str, str] = {}
    for item in settings:
        key, _, value = item.partition("=")
        if key not in {"url", "app", "root", "native"} or not value:
            raise SystemExit(f"--live takes url=, app=, root= or native=, not {item!r}")
        if key == "root":
            value = base64.b64encode(Path(value).read_bytes()).decode()
        environment[f"HOTPATCH_LIVE_{key.upper()}"] = value
    if environment:
        # The harness's clock, which may be moved (libfaketime does not reach into the chroot):
        # the device must judge the server's signed times by the clock the server signs with.
        environment["HOTPATCH_LIVE_NOW"] = str(int(time.time()))
    return environment


def test(root: Path, live: dict[str, str]) -> int:
    """Build the package and run its tests; print the count."""
    scratch = _scratch()
    package = f"{INSIDE}/{PACKAGE.relative_to(REPO)}"
    command = ["swift", "test", "--package-path", package, "--scratch-path", scratch,
               "--disable-swift-testing"]  # fmt: skip
    status = 0
    try:
        output = _in_chroot(root, command, env={"HOTPATCH_SPEC": f"{INSIDE}/docs/spec", **live},
                            capture=True, timeout=1800)  # fmt: skip
    except subprocess.CalledProcessError as error:
        output = error.output or ""
        status = error.returncode
    print(output, end="")  # noqa: T201 - the build's and the tests' own lines
    passed, failed, skipped = _count(output)
    for line in skipped:
        print(f"skipped {line}")  # noqa: T201
    if status and not failed:
        # A test process that crashed reports no failure for the test it was in.
        print(f"swift test exited with status {status} and no failed test: a crash")  # noqa: T201
        failed = 1
    print(f"{passed} passed, {failed} failed, {len(skipped)} skipped")  # noqa: T201 - what CI reads
    return 0 if passed and not failed else 1


def main(argv: list[str] | None = None) -> int:
    """Prepare the toolchain, or build and test the Swift core."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--prepare", action="store_true", help="make the Debian 13 chroot with Swift, then stop"
    )
    parser.add_argument(
        "--live",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="run LiveServerTests against a running hotpatch-server: url=, app=, root= (the "
        "trust root file), native= (the device's native version); skipped without them",
    )
    args = parser.parse_args(argv)
    live = _live_environment(args.live)
    root = _root()
    if args.prepare:
        prepare(root)
        return 0
    missing = _missing(root)
    if missing:
        print("cannot build the Swift core here; missing:\n  " + "\n  ".join(missing))  # noqa: T201
        return CANNOT_BUILD
    return test(root, live)


if __name__ == "__main__":
    sys.exit(main())
