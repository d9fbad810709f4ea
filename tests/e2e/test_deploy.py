"""The deployment recipe is well-formed and matches the server's settings.

No Docker engine or systemd runs on the machines that test this project, so
these tests check syntax and consistency: the compose file parses and its
environment is one the server accepts, the Dockerfile's instructions are
valid, the systemd unit parses with the keys systemd needs. Where the
``docker`` or ``systemd-analyze`` binaries exist, their own checks run too.
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotpatch_server.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS_SOURCE = (
    Path(__file__).resolve().parents[2] / "apps" / "server" / "src" / "hotpatch_server"
) / "settings.py"


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return document


def _substitute(value: str) -> str:
    """Resolve ${VAR:-default} and ${VAR:?msg} the way compose does, with VAR unset."""
    if value.startswith("${") and value.endswith("}"):
        name, _, rest = value[2:-1].partition(":")
        return {"JWT_SECRET": "s" * 48}.get(name, rest[1:] if rest.startswith("-") else "")
    return value


def test_compose_services_and_dependencies() -> None:
    """Api + PostgreSQL + Redis + an S3-compatible store, started in a healthy order."""
    services = _compose()["services"]
    assert {"api", "postgres", "redis", "minio", "minio-setup"} <= services.keys()
    api = services["api"]
    assert (DEPLOY / api["build"]["context"] / api["build"]["dockerfile"]).is_file()
    allowed = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in allowed
        if name in {"postgres", "redis", "minio"}:
            assert service["healthcheck"]["test"], f"{name} needs a healthcheck"
    declared = set(_compose()["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in declared


def test_compose_environment_is_accepted_by_the_server(tmp_path: Path) -> None:
    """Every variable the api gets is one the server reads, and Settings accepts the values."""
    environment = {
        k: _substitute(str(v)) for k, v in _compose()["services"]["api"]["environment"].items()
    }
    source = SETTINGS_SOURCE.read_text()
    for name in environment:
        assert f'"{name}"' in source, f"the server does not read {name}"
    settings = Settings.from_env({**environment, "HOTPATCH_DATA_DIR": str(tmp_path)})
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.s3_bucket == "hotpatch-archives"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.host == "0.0.0.0"  # noqa: S104 - inside its container


def test_dockerfile_instructions() -> None:
    """Known instructions only, a FROM first, exec-form CMD, the stage it copies from exists."""
    known = {"FROM", "RUN", "WORKDIR", "COPY", "ENV", "USER", "EXPOSE", "HEALTHCHECK", "CMD", "ARG"}
    lines = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [
        line.split(None, 1) for line in lines if line.strip() and not line.startswith("#")
    ]
    assert instructions[0][0] == "FROM"
    stages = {
        parts[1].split()[-1] for parts in instructions if parts[0] == "FROM" and " AS " in parts[1]
    }
    for keyword, rest in instructions:
        assert keyword in known, keyword
        if keyword == "COPY" and rest.startswith("--from="):
            assert rest.split()[0].removeprefix("--from=") in stages
    cmd = next(rest for keyword, rest in instructions if keyword == "CMD")
    assert json.loads(cmd) == ["hotpatch-server", "serve"]


def test_systemd_unit() -> None:
    """The unit parses, runs migrations first, serves, restarts, and is hardened."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "hotpatch-server.service")
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    assert service["ExecStart"].startswith("/")
    assert service["ExecStart"].endswith("serve")
    assert service["ExecStartPre"].endswith("migrate")
    assert service["Type"] in {"simple", "exec", "notify"}
    assert service["NoNewPrivileges"] == "yes"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_tools_own_checks_where_installed(tmp_path: Path) -> None:
    """`docker compose config` and `systemd-analyze verify`, when the binaries exist."""
    ran = []
    docker = shutil.which("docker")
    compose = (
        docker is not None
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    )
    if docker and compose:
        done = subprocess.run(
            [docker, "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
            env={"JWT_SECRET": "s" * 48, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        ran.append("docker")
    analyze = shutil.which("systemd-analyze")
    if analyze:
        copy = tmp_path / "hotpatch-server.service"
        copy.write_text((DEPLOY / "hotpatch-server.service").read_text())
        done = subprocess.run(
            [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
        )
        # The binaries live on the target machine, not here: only that may be missing.
        problems = [
            line
            for line in done.stderr.splitlines()
            if line.strip() and "is not executable: No such file or directory" not in line
        ]
        assert problems == [], problems
        ran.append("systemd-analyze")
    if not ran:
        pytest.skip("neither docker nor systemd-analyze is installed; syntax checked above")
