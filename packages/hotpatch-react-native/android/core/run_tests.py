"""Build and test the SDK's Android side on the plain JVM (kotlinc from npm, JUnit 5 from Debian).

There is no Android SDK or modern Gradle on these machines
(docs/howto/react-native-sdk.md), so the pure-Kotlin core is compiled with the
Kotlin compiler of its pinned npm package (``npm ci`` here) against BouncyCastle.
Then the adapter (``android/src/main/java``): React Native's codegen writes
its TurboModule spec from ``src/NativeHotPatch.ts`` (with the pinned
react-native of the SDK package, ``npm ci`` there), the project's compile
stubs are compiled and checked against ``ReactAndroid.api``
(``android/check_stubs.py``), and the adapter is compiled against them. The
core and the adapter are compiled once more against the Java 8 API, which
fails on a Java 9+ method that older Android lacks. The tests of both run
with the JUnit Platform console launcher. Prints ``N passed, N failed, N
skipped`` (each skip with its reason) and exits non-zero on any failure or
missing tool.

Compiled classes are kept under ``~/.cache/hotpatch/jvm`` (``HOTPATCH_JVM_CACHE``
moves it), each under a hash of everything that made it: the compiler, its
options, every source file and every class path entry. A run whose inputs
match an earlier one copies those classes instead of compiling again; any
change to a source, a library or the compiler compiles afresh. ``--no-cache``
compiles everything.

    python run_tests.py [--build DIR] [--no-cache]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANDROID = HERE.parent
PACKAGE = ANDROID.parent
SPEC = HERE.parents[3] / "docs" / "spec"
JARS = Path("/usr/share/java")
#: Debian packages: junit5 (JUnit 5.9), libbcprov-java (BouncyCastle 1.72), and the patch
#: decoders: libzstd-jni-java with libzstd-jni1 (zstd-jni 1.5.2), libcommons-compress-java
#: (bzip2, commons-compress 1.22) and libxz-java (raw LZMA2, xz-java 1.9).
LIBRARIES = ("bcprov.jar", "zstd-jni.jar", "commons-compress.jar", "xz.jar")
#: The native half of zstd-jni, which it loads from the system's library path.
NATIVE = tuple(Path(f"/usr/lib/{arch}-linux-gnu/libzstd-jni.so") for arch in ("x86_64", "aarch64"))
APT = "junit5 libbcprov-java libzstd-jni-java libzstd-jni1 libcommons-compress-java libxz-java"
TEST_LIBRARIES = (
    "junit-jupiter-api.jar",
    "junit-jupiter-params.jar",
    "apiguardian-api.jar",
    "opentest4j.jar",
    "junit-platform-commons.jar",
)
LAUNCHER = JARS / "junit-platform-console-standalone.jar"
#: How many compiled outputs the cache keeps (the least recently used go first).
CACHE_ENTRIES = 48


def _cache_root() -> Path | None:
    """Return where compiled classes are kept, or None when caching is off."""
    if os.environ.get("HOTPATCH_JVM_CACHE") == "off":
        return None
    configured = os.environ.get("HOTPATCH_JVM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "hotpatch" / "jvm"


def _fingerprint(paths: Iterable[Path]) -> str:
    """Hash every file under ``paths`` by its place, its path within its entry, and its bytes."""
    digest = hashlib.sha256()
    for index, path in enumerate(paths):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        digest.update(f"entry {index} {len(files)}\n".encode())
        for file in files:
            data = file.read_bytes()
            name = file.name if file == path else file.relative_to(path).as_posix()
            digest.update(f"{name} {len(data)}\n".encode())
            digest.update(data)
    return digest.hexdigest()


def _cached(
    kind: str, tool: list[str], inputs: list[Path], out: Path, make: Callable[[Path], None]
) -> None:
    """Fill ``out`` with what ``make`` writes, reusing a cached copy made from the same inputs.

    ``tool`` names the compiler and its options; ``inputs`` are the sources and
    the class path. The key hashes their content, never their dates or where
    they lie, so a fresh checkout of the same sources hits. An output is stored
    under its key only once complete (a rename), so a failed or concurrent
    build never leaves half of one.
    """
    root = _cache_root()
    if root is None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        make(out)
        return
    key = hashlib.sha256("\n".join([kind, *tool, _fingerprint(inputs)]).encode()).hexdigest()
    entry = root / f"{kind}-{key[:32]}"
    if not entry.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=root))
        try:
            make(fresh)
            # Another run may have stored the same output first: the same classes, kept.
            with contextlib.suppress(OSError):
                fresh.rename(entry)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        _prune(root)
    os.utime(entry)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(entry, out)


def _prune(root: Path) -> None:
    """Keep the ``CACHE_ENTRIES`` most recently used outputs."""
    entries = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in entries[CACHE_ENTRIES:]:
        shutil.rmtree(stale, ignore_errors=True)


def _missing() -> list[str]:
    wanted = [JARS / name for name in (*LIBRARIES, *TEST_LIBRARIES)] + [LAUNCHER]
    missing = [f"{path} (apt-get install {APT})" for path in wanted if not path.is_file()]
    if not any(path.is_file() for path in NATIVE):
        missing.append(f"libzstd-jni.so (apt-get install {APT})")
    jdk = [t for t in ("java", "javac", "javap") if shutil.which(t) is None]
    missing += [f"{t} (apt-get install openjdk-17-jdk-headless)" for t in jdk]
    missing += [f"{t} (Node.js)" for t in ("npm", "node") if shutil.which(t) is None]
    return missing


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not on PATH")
    return found


def _npm_installed(folder: Path, wanted: Path) -> Path:
    """Return ``wanted``, after ``npm ci`` in ``folder`` if it is missing or older than the lock.

    ``npm ci`` first deletes ``node_modules``, so two at once in one folder break
    each other and whatever reads it meanwhile. Every install here takes the
    folder's ``.install.lock`` (as the test suite's own installs do) and looks
    again once it holds it.
    """
    stamp = folder / "node_modules" / ".package-lock.json"
    with (folder / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        locked = (folder / "package-lock.json").stat().st_mtime
        if not wanted.exists() or not stamp.is_file() or stamp.stat().st_mtime < locked:
            npm_ci = ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
            subprocess.run([_tool("npm"), *npm_ci], cwd=folder, check=True, timeout=900)  # noqa: S603
    return wanted


def _kotlinc() -> Path:
    """Return the pinned Kotlin compiler (npm ``kotlin-compiler``)."""
    return _npm_installed(HERE, HERE / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc")


def _react_native() -> Path:
    """Return the SDK package's pinned react-native."""
    return _npm_installed(PACKAGE, PACKAGE / "node_modules" / "react-native")


def _codegen(react_native: Path, out: Path) -> Path:
    """Generate the TurboModule spec as the Gradle plugin does; return its Java sources."""
    config = json.loads((PACKAGE / "package.json").read_text(encoding="utf-8"))["codegenConfig"]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    schema = out / "schema.json"
    combine = react_native.parent / "@react-native" / "codegen" / "lib" / "cli" / "combine"
    node = _tool("node")
    subprocess.run(  # noqa: S603 - react-native's own codegen on our spec
        [node, str(combine / "combine-js-to-schema-cli.js"), str(schema),
         "--libraryName", config["name"], str(PACKAGE / config["jsSrcsDir"])],
        check=True, timeout=300,
    )  # fmt: skip
    subprocess.run(  # noqa: S603
        [node, str(react_native / "scripts" / "generate-specs-cli.js"), "-p", "android",
         "-s", str(schema), "-o", str(out), "-n", config["name"],
         "-j", config["android"]["javaPackageName"], "-t", config["type"]],
        check=True, timeout=300, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return out / "java"


def _javac(sources: list[Path], classpath: list[Path], out: Path) -> None:
    javac = _tool("javac")
    options = ["--release", "17", "-nowarn"]

    def make(into: Path) -> None:
        files = sorted(str(f) for source in sources for f in source.rglob("*.java"))
        command = [javac, *options, "-d", str(into),
                   "-classpath", ":".join(str(p) for p in classpath), *files]  # fmt: skip
        subprocess.run(command, check=True, timeout=600)  # noqa: S603 - this repository's sources

    _cached("javac", [_jdk(), *options], [*sources, *classpath], out, make)


def _adapter(kotlinc: Path, core: Path, build: Path) -> tuple[list[Path], Path]:
    """Build the adapter; return its run classpath and its compiled tests."""
    react_native = _react_native()
    stubs, spec, main, tests = (build / n for n in ("stubs", "spec", "adapter", "adapter-test"))
    for folder in (stubs, spec, main, tests):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    _javac([ANDROID / "stubs"], [], stubs)
    checked = subprocess.run(  # noqa: S603 - this repository's check
        [sys.executable, str(ANDROID / "check_stubs.py"), str(stubs),
         str(react_native / "ReactAndroid" / "api" / "ReactAndroid.api")],
        check=False, timeout=600,
    )  # fmt: skip
    if checked.returncode != 0:
        raise SystemExit("the React Native stubs differ from ReactAndroid.api (see above)")
    _javac([_codegen(react_native, build / "codegen")], [stubs], spec)
    libraries = [JARS / name for name in LIBRARIES]
    adapter_path = [core, stubs, spec, *libraries]
    _compile(kotlinc, ANDROID / "src" / "main" / "java", adapter_path, main)
    _check_java8(kotlinc, ANDROID / "src" / "main" / "java", adapter_path, build / "java8-adapter")
    test_path = [main, core, stubs, spec, *libraries, *(JARS / name for name in TEST_LIBRARIES)]
    _compile(kotlinc, ANDROID / "src" / "test" / "kotlin", test_path, tests, friend=main)
    return [main, spec, stubs], tests


def _compile(  # noqa: PLR0913 - a compiler's inputs
    kotlinc: Path,
    sources: Path,
    classpath: list[Path],
    out: Path,
    friend: Path | None = None,
    *,
    java8: bool = False,
) -> None:
    """Compile Kotlin; tests name their ``friend``, whose ``internal`` they may use."""
    options = ["-Xjdk-release=1.8", "-Werror"] if java8 else ["-jvm-target", "17", "-Werror"]
    friends = [f"-Xfriend-paths={friend}"] if friend is not None else []

    def make(into: Path) -> None:
        files = sorted(str(p) for p in sources.rglob("*.kt"))
        command = [str(kotlinc), *options, *friends, "-classpath",
                   ":".join(str(p) for p in classpath), "-d", str(into), *files]  # fmt: skip
        subprocess.run(command, check=True, timeout=900)  # noqa: S603 - this repository's sources

    # The compiler is named by its pinned package and the JDK it runs on.
    lock = (HERE / "package-lock.json").read_text(encoding="utf-8")
    compiler = [lock, _jdk(), *options, "friend" if friend is not None else "alone"]
    _cached("kotlinc", compiler, [sources, *classpath], out, make)


def _check_java8(kotlinc: Path, sources: Path, classpath: list[Path], out: Path) -> None:
    """Compile what ships in the app (the core, the module) against the Java 8 API.

    A Java 9+ method that older Android lacks (``InputStream.nullInputStream`` is API 33)
    then fails the build here. Android API 26, the module's minimum, has most of Java 8:
    this catches the newer methods, not every gap. The classes are not used (the tests
    run the Java 17 build, whose sealed classes they inspect).
    """
    _compile(kotlinc, sources, classpath, out, java8=True)


def _jdk() -> str:
    """Name the JDK that runs the compilers: its folder and its exact version."""
    home = Path(os.path.realpath(_tool("javac"))).parent.parent
    release = home / "release"
    return f"{home}\n{release.read_text(encoding='utf-8') if release.is_file() else ''}"


def _count(reports: Path) -> tuple[int, int, list[str]]:
    """Count passed and failed tests; list the skipped ones with their reasons."""
    passed = failed = 0
    skipped: list[str] = []
    for report in reports.glob("*.xml"):
        # The reports the launcher just wrote, not input from elsewhere.
        for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
            skip = case.find("skipped")
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif skip is not None:
                reason = (skip.get("message") or skip.text or "").strip()
                skipped.append(f"{case.get('classname')}.{case.get('name')}: {reason}")
            else:
                passed += 1
    return passed, failed, skipped


def _stdlib() -> Path:
    return HERE / "node_modules" / "kotlin-compiler" / "lib" / "kotlin-stdlib.jar"


def _build_adapter(build: Path) -> tuple[Path, Path, list[Path], Path]:
    """Compile the core and the adapter with its tests: (kotlinc, core, adapter, adapter tests)."""
    kotlinc = _kotlinc()
    core = build / "main"
    shutil.rmtree(core, ignore_errors=True)
    core.mkdir(parents=True)
    libraries = [JARS / name for name in LIBRARIES]
    _compile(kotlinc, HERE / "src" / "main" / "kotlin", libraries, core)
    _check_java8(kotlinc, HERE / "src" / "main" / "kotlin", libraries, build / "java8-core")
    adapter, adapter_tests = _adapter(kotlinc, core, build)
    return kotlinc, core, adapter, adapter_tests


def build_device_host(build: Path) -> list[Path]:
    """Compile the core and the adapter with its tests; return the class path of ``DeviceHostKt``.

    ``dev.hotpatch.reactnative.DeviceHostKt`` (in the adapter's tests) runs
    ``HotPatch.onLaunch`` and ``HotPatchModule`` over fakes of Android and
    React Native for tests/e2e/test_sdk_app_hermes.py. Raises SystemExit,
    saying what is missing, where a tool is.
    """
    missing = _missing()
    if missing:
        raise SystemExit("cannot build the Android side here; missing:\n  " + "\n  ".join(missing))
    _, core, adapter, adapter_tests = _build_adapter(build)
    return [adapter_tests, *adapter, core, _stdlib(), *(JARS / name for name in LIBRARIES)]


def main(argv: list[str] | None = None) -> int:
    """Compile the core and its tests, run them, print the count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--build", type=Path, help="where classes and reports go (default: a temp dir)"
    )
    parser.add_argument(
        "--live",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="run LiveServerTest against a running hotpatch-server: url=, app=, root= (the "
        "trust root file), native= (the device's native version); skipped without them",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="compile everything, ignoring compiled classes kept"
    )
    args = parser.parse_args(argv)
    if args.no_cache:
        os.environ["HOTPATCH_JVM_CACHE"] = "off"
    live = [f"-Dhotpatch.live.{item}" for item in args.live]
    missing = _missing()
    if missing:
        print("cannot build the Android core here; missing:\n  " + "\n  ".join(missing))  # noqa: T201
        return 3
    build = args.build or Path(tempfile.mkdtemp(prefix="hotpatch-jvm-"))
    test_classes, reports = build / "test", build / "reports"
    for folder in (test_classes, reports):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    kotlinc, main_classes, adapter, adapter_tests = _build_adapter(build)
    libraries = [JARS / name for name in LIBRARIES]
    test_path = [main_classes, *libraries, *(JARS / name for name in TEST_LIBRARIES)]
    _compile(kotlinc, HERE / "src" / "test" / "kotlin", test_path, test_classes)
    run_path = [test_classes, adapter_tests, main_classes, *adapter, _stdlib(), *libraries]
    launch = [_tool("java"), f"-Dhotpatch.spec={SPEC}", *live, "-jar", str(LAUNCHER),
              "--class-path", ":".join(str(p) for p in run_path),
              "--scan-class-path", f"{test_classes}:{adapter_tests}", "--reports-dir", str(reports),
              "--fail-if-no-tests", "--disable-banner", "--details=summary"]  # fmt: skip
    subprocess.run(launch, check=False, timeout=900)  # noqa: S603 - the compiled tests
    passed, failed, skipped = _count(reports)
    for line in skipped:
        print(f"skipped {line}")  # noqa: T201
    print(f"{passed} passed, {failed} failed, {len(skipped)} skipped")  # noqa: T201 - what CI reads
    return 0 if passed and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
