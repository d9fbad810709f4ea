"""The packages install the way Python tools are installed: built wheels in a clean virtualenv.

A React Native developer installs ``hotpatch`` once and runs it from the
app's folder; a team installs ``hotpatch-server`` on a host. Both come from
the wheels ``uv build`` makes, with nothing from this checkout on the path.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from hotpatch_server.testing import free_port, wait_until_serving

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["hotpatch-core", "hotpatch-diff", "hotpatch-client", "hotpatch-server", "hotpatch-cli"]


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed: the README's bootstrap installs it (pip install uv)")
    return uv


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.network
def test_wheels_install_into_a_clean_virtualenv_and_run(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Each package builds a wheel and an sdist; the CLI and server run from the wheels."""
    uv = _uv()
    dist = tmp_path / "dist"
    _run(uv, "build", "--all-packages", "--out-dir", str(dist), cwd=REPO)
    for name in PACKAGES:
        stem = name.replace("-", "_")
        (wheel,) = dist.glob(f"{stem}-*-py3-none-any.whl")
        assert list(dist.glob(f"{stem}-*.tar.gz")), f"no sdist for {name}"
        with zipfile.ZipFile(wheel) as archive:
            (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            metadata = email.parser.Parser().parsestr(archive.read(meta).decode())
            assert any(n.endswith("/py.typed") for n in archive.namelist()), name
        assert metadata["Name"] == name
        for field in ("Version", "Summary", "License-Expression", "Requires-Python"):
            assert metadata[field], f"{name} has no {field}"
        assert name in metadata.get_payload(), f"{name}'s README is not its description"

    venv = tmp_path / "venv"
    env = user_env
    _run(uv, "venv", "--quiet", str(venv), env=env)
    python = str(venv / "bin" / "python")
    _run(uv, "pip", "install", "--quiet", "--python", python, "--find-links", str(dist),
         "hotpatch-cli", "hotpatch-server", env=env)  # fmt: skip
    where = _run(python, "-c", "import hotpatch_cli, hotpatch_server; print(hotpatch_cli.__file__)")
    assert str(venv) in where  # installed, not this checkout's sources

    app = tmp_path / "my-rn-app"
    app.mkdir()
    home = {**env, "HOME": str(tmp_path / "home"), "PATH": f"{venv / 'bin'}:{env['PATH']}"}
    assert _run("hotpatch", "--version", cwd=app, env=home).startswith("hotpatch 0.")
    _run("hotpatch", "keys", "generate", "--scope-app", "com.acme.shop", cwd=app, env=home)
    assert (tmp_path / "home" / ".hotpatch" / "signing_key.pem").is_file()

    data = tmp_path / "server-data"
    server_env = {**home, "HOTPATCH_DATA_DIR": str(data), "PORT": str(free_port())}
    _run("hotpatch-server", "migrate", env=server_env)
    process = subprocess.Popen(
        [str(venv / "bin" / "hotpatch-server")], env=server_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        health = wait_until_serving(f"http://127.0.0.1:{server_env['PORT']}/health", process)
        assert health.json() == {"status": "ok", "database": "ok", "cache": "not configured"}
    finally:
        process.terminate()
        process.wait(timeout=30)
