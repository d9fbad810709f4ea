"""Build and test the Android core on the plain JVM (kotlinc from npm, JUnit 5 from Debian).

There is no Android SDK or modern Gradle on these machines
(docs/howto/react-native-sdk.md), so the pure-Kotlin core is compiled with the
Kotlin compiler of its pinned npm package (``npm ci`` here) against BouncyCastle,
and its tests run with the JUnit Platform console launcher. Prints
``N passed, N failed, N skipped`` (each skip with its reason) and exits
non-zero on any failure or missing tool.

    python run_tests.py [--build DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[3] / "docs" / "spec"
JARS = Path("/usr/share/java")
#: Debian packages: junit5 (JUnit 5.9) and libbcprov-java (BouncyCastle 1.72).
LIBRARIES = ("bcprov.jar",)
TEST_LIBRARIES = (
    "junit-jupiter-api.jar",
    "junit-jupiter-params.jar",
    "apiguardian-api.jar",
    "opentest4j.jar",
    "junit-platform-commons.jar",
)
LAUNCHER = JARS / "junit-platform-console-standalone.jar"


def _missing() -> list[str]:
    wanted = [JARS / name for name in (*LIBRARIES, *TEST_LIBRARIES)] + [LAUNCHER]
    missing = [
        f"{path} (apt-get install junit5 libbcprov-java)" for path in wanted if not path.is_file()
    ]
    if shutil.which("java") is None:
        missing.append("java (apt-get install openjdk-17-jdk-headless)")
    if shutil.which("npm") is None:
        missing.append("npm (Node.js)")
    return missing


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not on PATH")
    return found


def _kotlinc() -> Path:
    """Return the pinned compiler, installed by ``npm ci`` when missing or older than the lock."""
    kotlinc = HERE / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"
    stamp = HERE / "node_modules" / ".package-lock.json"
    locked = (HERE / "package-lock.json").stat().st_mtime
    if not kotlinc.is_file() or not stamp.is_file() or stamp.stat().st_mtime < locked:
        npm_ci = ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run([_tool("npm"), *npm_ci], cwd=HERE, check=True, timeout=600)  # noqa: S603
    return kotlinc


def _compile(kotlinc: Path, sources: Path, classpath: list[Path], out: Path) -> None:
    files = sorted(str(p) for p in sources.rglob("*.kt"))
    command = [str(kotlinc), "-jvm-target", "17", "-Werror", "-classpath",
               ":".join(str(p) for p in classpath), "-d", str(out), *files]  # fmt: skip
    subprocess.run(command, check=True, timeout=900)  # noqa: S603 - this repository's sources


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
    args = parser.parse_args(argv)
    live = [f"-Dhotpatch.live.{item}" for item in args.live]
    missing = _missing()
    if missing:
        print("cannot build the Android core here; missing:\n  " + "\n  ".join(missing))  # noqa: T201
        return 3
    build = args.build or Path(tempfile.mkdtemp(prefix="hotpatch-jvm-"))
    kotlinc = _kotlinc()
    stdlib = HERE / "node_modules" / "kotlin-compiler" / "lib" / "kotlin-stdlib.jar"
    main_classes, test_classes, reports = build / "main", build / "test", build / "reports"
    for folder in (main_classes, test_classes, reports):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    libraries = [JARS / name for name in LIBRARIES]
    _compile(kotlinc, HERE / "src" / "main" / "kotlin", libraries, main_classes)
    test_path = [main_classes, *libraries, *(JARS / name for name in TEST_LIBRARIES)]
    _compile(kotlinc, HERE / "src" / "test" / "kotlin", test_path, test_classes)
    run_path = [test_classes, main_classes, stdlib, *libraries]
    launch = [_tool("java"), f"-Dhotpatch.spec={SPEC}", *live, "-jar", str(LAUNCHER),
              "--class-path", ":".join(str(p) for p in run_path),
              "--scan-class-path", str(test_classes), "--reports-dir", str(reports),
              "--fail-if-no-tests", "--disable-banner", "--details=summary"]  # fmt: skip
    subprocess.run(launch, check=False, timeout=900)  # noqa: S603 - the compiled tests
    passed, failed, skipped = _count(reports)
    for line in skipped:
        print(f"skipped {line}")  # noqa: T201
    print(f"{passed} passed, {failed} failed, {len(skipped)} skipped")  # noqa: T201 - what CI reads
    return 0 if passed and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
