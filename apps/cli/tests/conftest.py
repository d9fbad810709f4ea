"""CLI tests run the installed ``hotpatch`` command against a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from hotpatch_server.testing import ServerProcess, server_process

COMMAND = str(Path(sys.executable).with_name("hotpatch"))
APP = "com.cli.app"


@attrs.define
class Cli:
    """Runs ``hotpatch`` as a subprocess with its own home directory and environment."""

    home: Path
    env: dict[str, str]
    cwd: Path

    def run(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``hotpatch ARGS``; with ``check``, fail the test on a non-zero exit."""
        done = subprocess.run(
            [COMMAND, *args],
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            input=stdin,
        )
        if check and done.returncode != 0:
            pytest.fail(f"hotpatch {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run with ``--json`` and parse stdout."""
        return json.loads(self.run(*args, "--json", env=env).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The command with an empty ``HOTPATCH_HOME`` and no inherited HotPatch settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPATCH_")}
    env["HOTPATCH_HOME"] = str(tmp_path / "home")
    env["HOME"] = str(tmp_path / "user")  # no real ~/.rn-ota or ~/.hotpatch leaks in
    work = tmp_path / "work"
    work.mkdir()
    return Cli(tmp_path / "home", env, work)


@attrs.frozen
class Stage:
    """A server with app com.cli.app whose trust root certifies the CLI's generated key."""

    server: ServerProcess
    publisher_key: str
    admin_key: str
    root_key: Path


@pytest.fixture
def stage(cli: Cli, tmp_path: Path) -> Iterator[Stage]:
    """Generate keys and a trust root with the CLI, create the app on a real server."""
    # No background patches: the workflow test uploads one with `hotpatch patch`.
    with server_process(tmp_path / "server", HOTPATCH_AUTO_PATCHES="0") as server:
        cli.run("keys", "generate")
        root_key = tmp_path / "root.pem"
        cli.run("keys", "generate", "--out", str(root_key))
        public = tmp_path / "publisher.pub"
        cli.run("keys", "export-public", "--out", str(public))
        root = tmp_path / "trust-root.json"
        cli.run(
            "trust-root", "create", "--root-key", str(root_key), "--publisher", f"{public}:ci",
            "--scope-app", APP, "--out", str(root),
        )  # fmt: skip
        server.admin("create-app", APP, "--trust-root", str(root))
        publisher = (
            server.admin("create-key", "--name", "cli", "--role", "publisher", "--app", APP)
            .strip()
            .splitlines()[-1]
        )
        admin = server.admin("create-key", "--name", "adm", "--role", "admin", "--app", APP)
        yield Stage(server, publisher, admin.strip().splitlines()[-1], root_key)
