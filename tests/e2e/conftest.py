"""Fixtures of the end-to-end tests: a bare clone of this repository, a user's environment."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import attrs
import pytest

from hotpatch_server.testing import free_port, serving

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "tests" / "clients"


def load_script(path: Path, name: str) -> ModuleType:
    """Import one of the repository's scripts (an SDK runner or check) as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _npm_installed(harness: Path) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the JavaScript client tests need Node.js and npm on PATH")
    with (harness / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = harness / "node_modules" / ".package-lock.json"
        lockfile = harness / "package-lock.json"
        if not stamp.exists() or stamp.stat().st_mtime < lockfile.stat().st_mtime:
            subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=harness,
                check=True,
                timeout=600,
            )
    return harness


@pytest.fixture(scope="session")
def npm_installed() -> Callable[[str], Path]:
    """Return a function that installs a harness of tests/clients (``npm ci``, once per lock).

    It skips the test where Node.js or npm is missing. Test workers share one
    install: the first takes a file lock, the others wait for it.
    """
    return lambda name: _npm_installed(CLIENTS / name)


@pytest.fixture(scope="session")
def npm_project() -> Callable[[str], Path]:
    """Return a function that installs an npm project of this repository by its path."""
    return lambda path: _npm_installed(REPO / path)


#: What the test runner's virtualenv (nox with uv) sets, which would point a
#: user's ``uv`` and ``pip`` at the runner's environment instead of their own.
_RUNNER_VARIABLES = frozenset(
    {"VIRTUAL_ENV", "CONDA_PREFIX", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH"}
)


@pytest.fixture
def user_env() -> dict[str, str]:
    """Return the environment of a user's shell: no HOTPATCH_ settings, no runner virtualenv.

    The runner's ``bin`` leaves ``PATH`` too, so ``python3`` is the machine's
    (the one the README's bootstrap installed nox and uv into).
    """
    runner_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _RUNNER_VARIABLES and not k.startswith("HOTPATCH_")
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != runner_bin
    )
    return env


@pytest.fixture
def bare_clone(tmp_path: Path) -> Path:
    """Clone this checkout into an empty temporary directory, with the working tree's changes.

    Nothing is beside the clone, so whatever runs there can only use what the
    repository carries. Uncommitted changes are applied on top, so the test
    checks what is being developed.
    """
    clone = tmp_path / "hotpatch"
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the bare-clone tests clone the repository")
    subprocess.run(
        [git, "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    diff = subprocess.run(
        [git, "diff", "HEAD", "--binary"], cwd=REPO, check=True, capture_output=True, timeout=60
    ).stdout
    if diff:
        subprocess.run(
            [git, "apply", "--whitespace=nowarn"], cwd=clone, input=diff, check=True, timeout=60
        )
    untracked = subprocess.run(
        [git, "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    for name in filter(None, untracked.decode().split("\0")):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name)
    return clone


BIN = Path(sys.executable).parent
LIVE_APP = "com.example.live"


def _run(env: dict[str, str], tool: str, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / tool), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{tool} {args}: {done.stderr[-2000:]}"
    return done.stdout


@attrs.frozen
class LiveServer:
    """A running ``hotpatch-server`` with one app, and a logged-in ``hotpatch`` CLI.

    ``root`` is the app's trust root file (what a binary embeds); ``env`` runs
    the CLI tools against the server; ``token`` is a publisher key's secret.
    """

    url: str
    app: str
    root: Path
    env: dict[str, str]
    token: str

    def cli(self, *args: str) -> str:
        """Run ``hotpatch`` (or ``hotpatch-server`` as ``args[0]``) and return its output."""
        if args and args[0] == "hotpatch-server":
            return _run(self.env, *args)
        return _run(self.env, "hotpatch", *args)


@contextmanager
def live_server(tmp_path: Path, app: str) -> Iterator[LiveServer]:
    """Start a server with ``app``, a trust root naming its timestamp key, and a publisher key."""
    tmp_path.mkdir(parents=True, exist_ok=True)
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
        _run(env, "hotpatch", "keys", "generate", "--scope-app", app)
        _run(env, "hotpatch", "keys", "generate", "--root", "--out", str(tmp_path / "root.pem"))
        _run(env, "hotpatch", "keys", "export-public", "--out", str(tmp_path / "publisher.pub"))
        _run(env, "hotpatch-server", "timestamp-key", "--out", str(tmp_path / "stamp.pub"))
        root = tmp_path / "trust-root.json"
        _run(env, "hotpatch", "trust-root", "create", "--root-key", str(tmp_path / "root.pem"),
             "--publisher", f"{tmp_path / 'publisher.pub'}:ci", "--scope-app", app,
             "--timestamp-key", str(tmp_path / "stamp.pub"), "--out", str(root))  # fmt: skip
        _run(env, "hotpatch-server", "create-app", app, "--trust-root", str(root))
        token = _run(env, "hotpatch-server", "create-key", "--name", "ci", "--role", "publisher",
                     "--app", app).strip().splitlines()[-1]  # fmt: skip
        _run(env, "hotpatch", "login", "--api-url", url, "--token", token, "--app", app)
        yield LiveServer(url, app, root, env, token)


@pytest.fixture
def live_release(tmp_path: Path) -> Iterator[list[str]]:
    """A running server with app LIVE_APP, a trust root naming its timestamp key, and release 1.0.1.

    Yields the ``--live`` settings of the SDK cores' test runners: url, app,
    root (the trust root file) and native (the device's native version).
    """
    with live_server(tmp_path, LIVE_APP) as live:
        bundle = tmp_path / "bundle"
        (bundle / "assets").mkdir(parents=True)
        (bundle / "index.android.bundle").write_text("__d(function(){console.log('live')});\n")
        (bundle / "assets" / "logo.png").write_bytes(bytes(range(256)) * 8)
        release = ["release", "--platform", "android", "--version", "1.0.1", "--json",
                   "--binary-range", "1.0.x", "--rollout", "100",
                   "--bundle-dir", str(bundle)]  # fmt: skip
        published = json.loads(live.cli(*release))
        assert published["sequence"] == 1
        yield [f"url={live.url}", f"app={LIVE_APP}", f"root={live.root}", "native=1.0.0"]


#: The SDK test runners' exit status when a tool is missing (they say which).
CANNOT_BUILD = 3


@pytest.fixture
def sdk_suite(live_release: list[str]) -> Callable[[list[str], int], str]:
    """Return a function that runs an SDK core's test runner against the live server.

    It skips, with the runner's reason, where a tool is missing; otherwise the
    runner must pass with at least ``minimum`` tests, none failed or skipped,
    and its live test must have confirmed release 1.0.1. It returns the output.
    """

    def run(command: list[str], minimum: int) -> str:
        live = [arg for item in live_release for arg in ("--live", item)]
        ran = subprocess.run(
            [*command, *live], capture_output=True, text=True, timeout=1800, check=False
        )
        if ran.returncode == CANNOT_BUILD:
            pytest.skip(ran.stdout.strip())
        # The failures themselves first: the tail of a long run may not hold them.
        failures = "\n".join(line for line in ran.stdout.splitlines() if "error" in line.lower())
        report = f"{failures[-3000:]}\n{ran.stdout[-2000:]}\n{ran.stderr[-2000:]}"
        assert ran.returncode == 0, report
        counted = re.search(
            r"^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$", ran.stdout, re.M
        )
        assert counted is not None, ran.stdout[-2000:]
        passed, failed, skipped = (int(n) for n in counted.groups())
        assert (passed >= minimum, failed, skipped) == (True, 0, 0), report
        assert "live: confirmed 1.0.1" in ran.stdout, ran.stdout[-3000:]
        return ran.stdout

    return run
