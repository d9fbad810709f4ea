from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hotpatch_core.testing import make_pki
from hotpatch_server.settings import ConfigurationError, Settings
from hotpatch_server.testing import free_port, wait_until_serving

COMMAND = str(Path(sys.executable).with_name("hotpatch-server"))


def _run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HOTPATCH_DATA_DIR": str(data_dir)}
    environment.pop("DATABASE_URL", None)
    environment.update(env)
    return subprocess.run(
        [COMMAND, *args], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def test_bootstrap_commands(tmp_path: Path) -> None:
    """create-app, create-key, list-keys and revoke-key work without a database shell."""
    root = tmp_path / "root.json"
    root.write_bytes(make_pki().root_bytes)
    created = _run(["create-app", "com.acme.shop", "--trust-root", str(root), "--create"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert "created app com.acme.shop (trust root v1)" in created.stdout
    again = _run(["create-app", "com.acme.shop", "--trust-root", str(root)], tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    key = _run(
        ["create-key", "--name", "ci", "--role", "publisher", "--app", "com.acme.shop"], tmp_path
    )
    assert key.returncode == 0, key.stderr
    plaintext = key.stdout.strip().splitlines()[-1]
    assert plaintext.startswith("hp_")
    listing = _run(["list-keys"], tmp_path)
    key_id = listing.stdout.split()[0]
    assert "publisher" in listing.stdout
    assert "active" in listing.stdout
    assert _run(["revoke-key", key_id], tmp_path).returncode == 0
    assert "revoked" in _run(["list-keys"], tmp_path).stdout


def test_admin_commands_refuse_to_start_a_database_by_accident(tmp_path: Path) -> None:
    """Run from a folder with no server data, admin commands say so and create nothing."""
    root = tmp_path / "root.json"
    root.write_bytes(make_pki().root_bytes)
    data = tmp_path / "elsewhere" / "hotpatch-data"
    for args in (
        ["create-key", "--name", "ci", "--role", "publisher", "--app", "*"],
        ["create-app", "com.acme.shop", "--trust-root", str(root)],
        ["list-keys"],
        ["revoke-key", "k"],
    ):
        refused = _run(args, data)
        assert refused.returncode == 2, refused.stdout
        assert f"no HotPatch database at {data / 'hotpatch.db'}" in refused.stderr
        assert refused.stderr.count("\n") == 1
    assert not data.exists()  # no database, no data directory, no secret
    created = _run(["create-app", "com.acme.shop", "--trust-root", str(root), "--create"], data)
    assert created.returncode == 0, created.stderr
    assert (data / "hotpatch.db").is_file()


def test_the_printed_first_steps_work_when_pasted_in_another_folder(
    tmp_path: Path, rn_builds: dict[str, dict[str, bytes]]
) -> None:
    """`hotpatch-server` prints the steps to a first publish; pasted elsewhere, each one works."""
    server_dir, user_dir = tmp_path / "server", tmp_path / "user"
    server_dir.mkdir()
    user_dir.mkdir()
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTPATCH_")}
    environment.pop("DATABASE_URL", None)
    environment.update(PORT=str(port), HOME=str(tmp_path / "home"))
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [COMMAND], cwd=server_dir, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/health", process)
        printed = log.read_text().splitlines()
        start = next(i for i, line in enumerate(printed) if line.startswith("First steps"))
        commands = [
            line.strip() for line in printed[start:] if line.startswith("     ") and line.strip()
        ]
        tools = [
            c.split()[1] if c.startswith("HOTPATCH_DATA_DIR") else c.split()[0] for c in commands
        ]
        assert tools == (
            ["hotpatch"] * 3 + ["hotpatch-server"] + ["hotpatch"] + ["hotpatch-server"] * 2
            + ["hotpatch"] * 2
        )  # fmt: skip
        assert any(c.endswith("timestamp-key --out timestamp.pub") for c in commands)
        assert all("com.example.app" in c for c in commands if " create-" in c or " login " in c)
        bundle = user_dir / "build"
        for path, data in rn_builds["v1"].items():
            (bundle / path).parent.mkdir(parents=True, exist_ok=True)
            (bundle / path).write_bytes(data)
        token = ""
        bash = shutil.which("bash") or "/bin/bash"
        for printed_command in commands:
            command = printed_command
            if " release " in command:
                command += f" --bundle-dir {bundle}"  # the app's Metro build, made beforehand
            done = subprocess.run(
                [bash, "-c", command], cwd=user_dir, capture_output=True, text=True,
                env={**environment, "HOTPATCH_TOKEN": token}, timeout=300, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            if " create-key " in command:
                token = done.stdout.strip().splitlines()[-1]
        assert "1.0.1" in done.stdout
        assert not (user_dir / "hotpatch-data").exists()  # the server's data was used
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_bad_trust_root_is_one_clear_line(tmp_path: Path) -> None:
    """A tampered trust root is refused with one line and exit 2, no traceback."""
    root = tmp_path / "root.json"
    root.write_bytes(make_pki().root_bytes.replace(b'"sig":"', b'"sig":"AAAA', 1))
    result = _run(["create-app", "com.acme.shop", "--trust-root", str(root), "--create"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "signature" in result.stderr or "trust root" in result.stderr
    assert "Traceback" not in result.stderr
    missing = _run(
        ["create-app", "x", "--trust-root", str(tmp_path / "nope"), "--create"], tmp_path
    )
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def test_server_starts_with_zero_configuration(tmp_path: Path) -> None:
    """`hotpatch-server` serves /health on SQLite + local disk with no settings at all."""
    port = free_port()
    data = tmp_path / "data"  # made by the server: pytest's own directories are 0700 already
    environment = {**os.environ, "HOTPATCH_DATA_DIR": str(data), "PORT": str(port)}
    environment.pop("DATABASE_URL", None)
    environment.pop("JWT_SECRET", None)
    process = subprocess.Popen(
        [COMMAND], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        response = wait_until_serving(f"http://127.0.0.1:{port}/health", process)
        assert response.json() == {"status": "ok", "database": "ok", "cache": "not configured"}
        # Private to the server's user: the directory, the secret and the database.
        assert data.stat().st_mode & 0o777 == 0o700
        assert (data / "jwt-secret").stat().st_mode & 0o777 == 0o600
        assert (data / "hotpatch.db").stat().st_mode & 0o777 == 0o600
        assert (data / "timestamp-key.pem").stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert f"HotPatch server on http://127.0.0.1:{port}" in output


def test_the_timestamp_key_is_made_once_when_embedded_and_named_elsewhere(tmp_path: Path) -> None:
    """The embedded default makes one key and keeps it; other setups name theirs or serve no head.

    Several processes must sign with one key, so a server on another database
    never makes one up; a key file that is missing or not a key stops startup.
    """
    first = Settings.from_env({"HOTPATCH_DATA_DIR": str(tmp_path / "embedded")})
    again = Settings.from_env({"HOTPATCH_DATA_DIR": str(tmp_path / "embedded")})
    assert first.timestamp_key is not None
    assert again.timestamp_key == first.timestamp_key
    base = {
        "HOTPATCH_DATA_DIR": str(tmp_path / "shared"),
        "DATABASE_URL": "postgresql://db/hotpatch",
        "JWT_SECRET": "s" * 32,
    }
    assert Settings.from_env(base).timestamp_key is None
    named = tmp_path / "timestamp.pem"
    named.write_bytes(first.timestamp_key.to_pem())
    settings = Settings.from_env({**base, "HOTPATCH_TIMESTAMP_KEY_FILE": str(named)})
    assert settings.timestamp_key == first.timestamp_key
    for bad, message in [(tmp_path / "missing.pem", "cannot read"), (tmp_path, "cannot read")]:
        with pytest.raises(ConfigurationError, match=message):
            Settings.from_env({**base, "HOTPATCH_TIMESTAMP_KEY_FILE": str(bad)})
    public = tmp_path / "public.pem"
    public.write_bytes(first.timestamp_key.public_key.to_pem())
    with pytest.raises(ConfigurationError, match="not an Ed25519 private key"):
        Settings.from_env({**base, "HOTPATCH_TIMESTAMP_KEY_FILE": str(public)})
    with pytest.raises(ConfigurationError, match="HOTPATCH_HEAD_LIFETIME"):
        Settings.from_env({**base, "HOTPATCH_HEAD_LIFETIME": "0"})


def test_timestamp_key_prints_the_public_half(tmp_path: Path) -> None:
    """`hotpatch-server timestamp-key` gives what `trust-root create --timestamp-key` takes."""
    printed = _run(["timestamp-key"], tmp_path)
    assert printed.returncode == 0, printed.stderr
    key = Settings.from_env({"HOTPATCH_DATA_DIR": str(tmp_path)}).timestamp_key
    assert key is not None
    assert printed.stdout.encode() == key.public_key.to_pem()
    written = _run(["timestamp-key", "--out", str(tmp_path / "ts.pub")], tmp_path)
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "ts.pub").read_bytes() == key.public_key.to_pem()
    assert key.key_id in written.stdout
    none = _run(
        ["timestamp-key"], tmp_path, DATABASE_URL="postgresql://db/hotpatch", JWT_SECRET="s" * 32
    )
    assert none.returncode == 2
    assert "HOTPATCH_TIMESTAMP_KEY_FILE" in none.stderr


def test_missing_or_weak_jwt_secret_is_a_startup_error(tmp_path: Path) -> None:
    """Outside the embedded default, JWT_SECRET must be set and at least 32 bytes."""
    base = {"HOTPATCH_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://db/hotpatch"}
    with pytest.raises(ConfigurationError, match="JWT_SECRET is required"):
        Settings.from_env(base)
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        Settings.from_env({**base, "JWT_SECRET": "short"})
    settings = Settings.from_env({**base, "JWT_SECRET": "s" * 32})
    assert settings.database_url == "postgresql+asyncpg://db/hotpatch"
    result = _run(["migrate"], tmp_path, DATABASE_URL="postgresql://db/hotpatch", JWT_SECRET="")
    assert result.returncode == 2
    assert "JWT_SECRET is required" in result.stderr


def test_settings_come_from_the_seed_variable_names(tmp_path: Path) -> None:
    """The seed's environment variable names configure the server."""
    settings = Settings.from_env(
        {
            "HOTPATCH_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql+asyncpg://u@h/db",
            "JWT_SECRET": "k" * 40,
            "S3_BUCKET": "bundles",
            "S3_ENDPOINT": "https://r2.example",
            "AWS_ACCESS_KEY_ID": "id",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "REDIS_URL": "redis://localhost:6379/0",
            "PORT": "9000",
        }
    )
    assert (settings.s3_bucket, settings.s3_endpoint, settings.redis_url, settings.port) == (
        "bundles",
        "https://r2.example",
        "redis://localhost:6379/0",
        9000,
    )
    assert "secret" not in repr(settings)
    with pytest.raises(ConfigurationError, match="PORT"):
        Settings.from_env({"HOTPATCH_DATA_DIR": str(tmp_path), "PORT": "http"})


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "ten"])
@pytest.mark.parametrize(
    "name",
    [
        "HOTPATCH_HEADER_TIMEOUT",
        "HOTPATCH_BODY_TIMEOUT",
        "HOTPATCH_MAX_CONNECTIONS",
        "HOTPATCH_MAX_EXPANDED_BYTES",
    ],
)
def test_limits_must_be_finite_positive_numbers(tmp_path: Path, name: str, value: str) -> None:
    """A NaN or infinite deadline would disable it silently: each is a startup error."""
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({"HOTPATCH_DATA_DIR": str(tmp_path), name: value})


def test_slow_client_limits_have_safe_defaults_and_can_be_set(tmp_path: Path) -> None:
    """Deadlines and the connection cap default to 10 s, 600 s and 1,000."""
    default = Settings.from_env({"HOTPATCH_DATA_DIR": str(tmp_path)})
    assert (default.header_timeout, default.body_timeout, default.max_connections) == (
        10.0,
        600.0,
        1000,
    )
    assert default.max_expanded_bytes == 128 * 1024 * 1024
    tuned = Settings.from_env(
        {
            "HOTPATCH_DATA_DIR": str(tmp_path),
            "HOTPATCH_HEADER_TIMEOUT": "2.5",
            "HOTPATCH_BODY_TIMEOUT": "60",
            "HOTPATCH_MAX_CONNECTIONS": "200",
        }
    )
    assert (tuned.header_timeout, tuned.body_timeout, tuned.max_connections) == (2.5, 60.0, 200)
