"""Every task of the HotPatch workspace: tests, lint, typecheck, docs.

Each session installs the whole workspace from ``uv.lock`` into its own
virtual environment (``uv sync --locked``), so what runs here is exactly what
the lockfile pins. Run ``nox -l`` to list the sessions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
MEMBERS = {
    "hotpatch_core": "packages/hotpatch-core",
    "hotpatch_diff": "packages/hotpatch-diff",
    "hotpatch_client": "packages/hotpatch-client",
    "hotpatch_server": "apps/server",
    "hotpatch_cli": "apps/cli",
}


def _sync(session: nox.Session, *groups: str) -> None:
    """Install every workspace member plus ``groups`` exactly as ``uv.lock`` pins them.

    Dependencies are installed compiled (``--compile-bytecode``): where
    ``PYTHONDONTWRITEBYTECODE`` is set, as on the project's machines, Python
    otherwise recompiles Litestar, SQLAlchemy and redis from source in every
    process, which made each ``hotpatch`` or ``hotpatch-server`` command the
    tests run take about 8 s to start.
    """
    args = ["uv", "sync", "--locked", "--all-packages", "--no-default-groups", "--compile-bytecode"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """Run the whole loop: server, keys, rollout, a crashing release, rollback."""
    _sync(session)
    session.run("python", "demo/run.py", *session.posargs)


BENCH_PARTS = {
    "server": "bench/server_check.py",
    "client": "bench/client_update.py",
    "cli": "bench/cli_publish.py",
    "diff": "bench/diff_corpus.py",
}


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the whole test suite (PostgreSQL / Redis tests run where their URLs are set)."""
    _sync(session, "test")
    workers = os.environ.get("HOTPATCH_TEST_WORKERS", "auto")
    session.run("pytest", "-n", workers, *session.posargs)


@nox.session(python="3.11")
def coverage(session: nox.Session) -> None:
    """Run the whole suite under coverage, subprocesses included; print the report.

    The CLI and server commands the tests start as real processes are
    measured too (coverage's ``patch = subprocess``, see pyproject.toml), so
    the figure counts what the end-to-end tests run. Data goes to
    ``.coverage-data/``; ``coverage html`` there gives the annotated source.
    """
    _sync(session, "coverage")
    data = ROOT / ".coverage-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    env = {"COVERAGE_FILE": str(data / "coverage")}
    workers = os.environ.get("HOTPATCH_TEST_WORKERS", "auto")
    session.run("coverage", "run", "-m", "pytest", "-n", workers, *session.posargs, env=env)
    session.run("coverage", "combine", "--quiet", env=env)
    session.run("coverage", "report", env=env)


#: How far the wall clock is moved for ``nox -s clock``: a year forward and a year back.
CLOCK_SHIFTS = ("+365d", "-365d")


@nox.session(python="3.11")
def clock(session: nox.Session) -> None:
    """Run the whole suite with the wall clock a year ahead, then a year behind (libfaketime).

    Proves no test depends on the day it runs: every harness keeps its own
    clock, and what runs on the real clock (server and CLI processes) must not
    care which day it is. Needs ``faketime`` (Debian's package of that name).
    """
    if shutil.which("faketime") is None:
        session.error("the clock session needs faketime: apt-get install faketime")
    _sync(session, "test")
    workers = os.environ.get("HOTPATCH_TEST_WORKERS", "auto")
    for shift in CLOCK_SHIFTS:
        session.log(f"wall clock moved {shift}")
        session.run(
            "faketime", "-f", shift, "pytest", "-n", workers, "-p", "no:cacheprovider",
            "-m", "not network", *session.posargs, external=True,
        )  # fmt: skip


@nox.session(python="3.11")
def faults(session: nox.Session) -> None:
    """Inject faults into real server processes under a fleet; print the table (issue 18).

    PostgreSQL restarts and dropped connections, Redis down, the object store
    answering 503 or hanging, SIGKILL, a full disk; ``--only "s3 hang"`` runs
    some, ``--seconds 5`` makes each last longer. Exits 1 if a goal is missed.
    """
    _sync(session, "test")
    session.run("python", "faults/inject.py", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Ruff (lint + format check) and import-linter (the dependency rule)."""
    _sync(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """Mypy --strict on each member's sources and tests."""
    _sync(session, "typecheck")
    for package, path in MEMBERS.items():
        targets = [f"{path}/src/{package}"]
        if (ROOT / path / "tests").is_dir():
            targets.append(f"{path}/tests")
        session.run("mypy", *targets)
    # Scripts, end-to-end tests, and the SDK's build scripts (the Android and the iOS
    # side each have a run_tests.py: one mypy run per side, or the names clash).
    ios = [s for s in SDK_SCRIPTS if s.startswith(f"{SDK_IOS}/")]
    android = [s for s in SDK_SCRIPTS if s not in ios]
    session.run("mypy", "bench", "demo", "faults", "tests/e2e", *android)
    session.run("mypy", *ios)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the Sphinx + MyST docs with warnings as errors, and run their doctests."""
    _sync(session, "docs")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    # The pages' code examples run as doctests.
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "doctest", "docs", "docs/_build/doctest"
    )


@nox.session(python="3.11")
def serve(session: nox.Session) -> None:
    """Run the server on its embedded default (SQLite + ./hotpatch-data); args go to it."""
    _sync(session)
    session.run("hotpatch-server", *session.posargs)


@nox.session(python="3.11")
def cli_reference(session: nox.Session) -> None:
    """Rewrite the generated part of docs/reference/cli.md after changing a command."""
    _sync(session)
    session.run("python", "-m", "hotpatch_cli.reference", "docs/reference/cli.md")


SDK_JS = ROOT / "packages" / "hotpatch-react-native"


@nox.session(name="sdk-js", python=False)
def sdk_js(session: nox.Session) -> None:
    """Check the SDK's JS layer: tsc (strict, real RN types), node --test, Metro + Hermes smoke."""
    session.chdir(SDK_JS)
    session.run("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", external=True)
    session.run("npx", "tsc", "-p", ".", external=True)
    tests = sorted(str(p) for p in (SDK_JS / "dist" / "test").glob("*.test.js"))
    session.run("node", "--test", *tests, external=True)
    session.chdir(SDK_JS / "example")
    session.run("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", external=True)
    session.run("node", "smoke.js", external=True)


SDK_IOS = "packages/hotpatch-react-native/ios"
SDK_SCRIPTS = [
    "packages/hotpatch-react-native/android/core/run_tests.py",
    "packages/hotpatch-react-native/android/core/gen_casefold.py",
    "packages/hotpatch-react-native/android/check_stubs.py",
    f"{SDK_IOS}/run_tests.py",
    f"{SDK_IOS}/check_bridge.py",
]


@nox.session(name="sdk-jvm", python=False)
def sdk_jvm(session: nox.Session) -> None:
    """Build and test the SDK's Android core on the JVM (kotlinc from npm, JUnit 5 from Debian)."""
    session.run("python3", str(SDK_JS / "android" / "core" / "run_tests.py"), external=True)


@nox.session(name="sdk-swift", python=False)
def sdk_swift(session: nox.Session) -> None:
    """Build and test the SDK's Swift side (Swift 6 in a Debian 13 chroot); check the iOS bridge.

    Needs root, ``debootstrap`` and the network the first time (about a minute,
    3.3 GB under ``~/.cache/hotpatch``); later runs reuse the chroot.
    """
    runner = str(SDK_JS / "ios" / "run_tests.py")
    session.run("python3", runner, "--prepare", external=True)
    session.run("python3", runner, external=True)
    # The bridge's declarations against React Native's headers (clang and GNUstep).
    session.chdir(SDK_JS)
    session.run("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", external=True)
    session.run("python3", str(SDK_JS / "ios" / "check_bridge.py"), external=True)


@nox.session(python="3.11")
def vectors(session: nox.Session) -> None:
    """Regenerate the golden vectors and the device conformance scenarios (docs/spec/)."""
    _sync(session)
    session.run("python", "packages/hotpatch-core/tests/golden.py")
    session.run("python", "packages/hotpatch-diff/tests/golden_patches.py")
    session.run("python", "packages/hotpatch-core/tests/conformance_gen.py")
    # The Android core's case-folding table, from the vector just written.
    session.run("python", "packages/hotpatch-react-native/android/core/gen_casefold.py")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks (timings never live in tests); ``nox -s bench -- cli`` runs one part.

    server: the update check vs a bare Litestar route (needs wrk and PostgreSQL);
    client: a full device update vs download + sha256 + unzip, and peak memory;
    cli: pack + hash + sign of a build directory vs zip -9 + sha256sum;
    diff: patch sizes on the corpus vs bsdiff4, zstd, xdelta3 and HDiffPatch.
    """
    _sync(session)
    parts = [p for p in session.posargs if p in BENCH_PARTS] or list(BENCH_PARTS)
    extra = [p for p in session.posargs if p not in BENCH_PARTS]
    if "server" in parts and shutil.which("wrk") is None:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            session.run("apt-get", "install", "-y", "-q", "wrk", external=True)
        else:
            session.error("the server benchmark needs wrk: apt-get install wrk")
    if "diff" in parts and shutil.which("xdelta3") is None:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            session.run("apt-get", "install", "-y", "-q", "xdelta3", "zstd", external=True)
        else:
            session.error("the diff benchmark needs xdelta3 and zstd: apt-get install xdelta3 zstd")
    if extra and len(parts) > 1:
        session.error("options go to one part: nox -s bench -- client --runs 9")
    for part in parts:
        session.run("python", BENCH_PARTS[part], *extra)
