"""The quickstart, followed literally, takes a bare clone to a device running a signed update.

The test reads every ``$`` command of docs/quickstart.md's console blocks, in
order, and runs them as one shell script from a clone in an empty temporary
directory, with ``HOME`` there too. Only two things are changed: the port
(8080 may be taken on a test machine) and a wait for the server to answer
after it is started in the background.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hotpatch_server.testing import free_port

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"


def quickstart_commands(text: str) -> list[str]:
    """Return the ``$`` commands of the page's console blocks, in order."""
    commands: list[str] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.DOTALL):
        lines = block.splitlines()
        for index, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            command = line[2:]
            following = index + 1
            while command.endswith("\\") and following < len(lines):  # continued lines
                command = command[:-1] + lines[following].strip()
                following += 1
            commands.append(command)
    return commands


@pytest.mark.network
def test_the_quickstart_run_literally_reaches_a_device_update(
    bare_clone: Path, user_env: dict[str, str]
) -> None:
    """Install, server, keys, trust root, app, key, login, release, and a device on 1.0.1."""
    if shutil.which("uv") is None:
        pytest.skip("uv is not installed: the quickstart's first step installs it with pip")
    port = str(free_port())
    script = ["set -euo pipefail"]
    for command in quickstart_commands(QUICKSTART.read_text()):
        script.append(command.replace("8080", port))
        if command.startswith("hotpatch-server") and command.endswith("&"):
            probe = (
                f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health')"
            )
            wait = f'python3 -c "{probe}" 2>/dev/null && break; sleep 0.5'
            script.append(f"for _ in $(seq 120); do {wait}; done")
    script.append("kill %1")
    home = bare_clone.parent / "home"
    home.mkdir()
    env = {**user_env, "HOME": str(home), "PORT": port}
    before = _status(bare_clone)
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", "\n".join(script)],
        cwd=bare_clone, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (
        "\n".join(script) + "\n" + done.stdout[-3000:] + done.stderr[-3000:]
    )
    assert "release 1: com.example.app android/production 1.0.1" in done.stdout
    assert "round 2: 1 devices ran [1.0.1: 1]" in done.stdout
    work = bare_clone.parent / "hotpatch-quickstart"
    assert (work / "trust-root.json").is_file()
    assert not list(work.glob("*.pem"))  # the root key stays out of the working folder
    assert (home / "hotpatch-offline" / "root.pem").stat().st_mode & 0o777 == 0o600
    assert _status(bare_clone) == before  # the quickstart wrote nothing into the checkout


def _status(clone: Path) -> str:
    git = shutil.which("git") or "git"
    return subprocess.run(
        [git, "status", "--porcelain", "--ignored"], cwd=clone, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
