"""Bad input gets one clear line and a documented exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import attrs
import pytest

from hotpatch_core.keys import SigningKey
from hotpatch_core.trust import load_trust_root, rotate_trust_root, sign_trust_root
from hotpatch_server.testing import free_port, server_process

from .conftest import APP, Cli, Stage


def _bundle(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "index.android.bundle").write_text("console.log('x');\n" * 100)
    return directory


def _env(stage: Stage) -> dict[str, str]:
    return {
        "HOTPATCH_API_URL": stage.server.base_url,
        "HOTPATCH_TOKEN": stage.publisher_key,
        "HOTPATCH_APP": APP,
    }


def _fails(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("hotpatch: error:")]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_release_errors(cli: Cli, stage: Stage, tmp_path: Path) -> None:
    """Missing key, wrong key, invalid version or channel, failing bundle command, 409."""
    env = _env(stage)
    bundle = str(_bundle(tmp_path / "b"))
    release = ["release", "--platform", "android", "--bundle-dir", bundle]

    done = cli.run(
        *release, "--version", "1.0.0", "--key", str(tmp_path / "nope.pem"), check=False, env=env
    )
    _fails(done, 1, "no signing key", "keys generate")

    other = tmp_path / "other.pem"
    cli.run("keys", "generate", "--out", str(other))
    done = cli.run(*release, "--version", "1.0.0", "--key", str(other), check=False, env=env)
    _fails(done, 2, "not a publisher key", APP)

    done = cli.run(*release, "--version", "1.x", check=False, env=env)
    _fails(done, 1, "invalid --version")

    done = cli.run(
        *release, "--version", "1.0.0", "--channel", "no such channel!", check=False, env=env
    )
    _fails(done, 1, "channel")

    build = [
        "release",
        "--platform",
        "android",
        "--version",
        "1.0.0",
        "--build-dir",
        str(tmp_path / "build"),
    ]
    failing = (
        "python3 -c \"import sys; print('metro: cannot resolve ./App', file=sys.stderr); "
        'sys.exit(3)"'
    )
    done = cli.run(*build, "--bundle-command", failing, check=False, env=env)
    _fails(done, 5, "exited with 3", "cannot resolve ./App")

    cli.run(*release, "--version", "1.0.0", env=env)
    done = cli.run(*release, "--version", "1.0.0", check=False, env=env)
    _fails(done, 3, "1.0.0 is already published", "bump --version")
    done = cli.run("rollback", "--platform", "android", "--version", "9.9.9", check=False, env=env)
    _fails(done, 6, "no release 9.9.9")


def test_server_down_and_bad_token(cli: Cli, stage: Stage) -> None:
    """An unreachable server is exit 4; a refused token is exit 2."""
    down = f"http://127.0.0.1:{free_port()}"
    done = cli.run("releases", "list", "--api-url", down, "--token", "x", "--app", APP, check=False)
    _fails(done, 4, "cannot reach")
    done = cli.run("login", "--api-url", stage.server.base_url, "--token", "hp_wrong", check=False)
    _fails(done, 2, "refused the token", "hotpatch login")
    assert not (cli.home / "config.toml").exists()


def test_a_wrong_api_path_names_the_url_and_what_to_check(cli: Cli, stage: Stage) -> None:
    """An --api-url with a path the server lacks: the 404 names the URL and the /health check."""
    wrong = f"{stage.server.base_url}/api/v1"
    done = cli.run("releases", "list", "--api-url", wrong, "--token", stage.publisher_key,
                   "--app", APP, check=False)  # fmt: skip
    _fails(done, 6, f"{wrong}/releases", "404")
    assert f"{wrong}/health should answer" in done.stderr
    missing = cli.run("rollback", "--platform", "android", "--version", "9.9.9",
                      env=_env(stage), check=False)  # fmt: skip
    assert missing.returncode == 6  # the server's own 404 keeps its own words
    assert "/health" not in missing.stderr


def test_no_prompt_without_a_terminal(cli: Cli) -> None:
    """Login asks only on a terminal; in CI it says which flag is missing."""
    done = cli.run("login", check=False, stdin="")
    _fails(done, 1, "API endpoint", "not a terminal")


def test_key_files_are_private_and_never_overwritten(cli: Cli) -> None:
    """Keys generate writes 0600 and refuses to overwrite without --force."""
    first = cli.json("keys", "generate")
    path = Path(first["path"])
    assert path.stat().st_mode & 0o777 == 0o600
    done = cli.run("keys", "generate", check=False)
    _fails(done, 1, "exists already", "--force")
    assert cli.json("keys", "show")["keyId"] == first["keyId"]
    again = cli.json("keys", "generate", "--force")
    assert again["keyId"] != first["keyId"]
    assert "BEGIN PUBLIC KEY" in cli.run("keys", "export-public").stdout


@pytest.mark.parametrize(
    "usage", [["release"], ["rollout", "--platform", "android", "--version", "1.0.0"]]
)
def test_usage_errors_exit_1(cli: Cli, usage: list[str]) -> None:
    """Missing required flags are usage errors (exit 1)."""
    assert cli.run(*usage, check=False).returncode == 1


def test_upload_over_the_server_cap_is_413(cli: Cli, tmp_path: Path) -> None:
    """A server with a 1 KB cap refuses the upload: exit 7, one line."""
    with server_process(tmp_path / "small", HOTPATCH_MAX_ARCHIVE_BYTES="1024") as small:
        root_key, public, root = tmp_path / "root.pem", tmp_path / "pub.pem", tmp_path / "root.json"
        cli.run("keys", "generate")
        cli.run("keys", "generate", "--out", str(root_key))
        cli.run("keys", "export-public", "--out", str(public))
        cli.run("trust-root", "create", "--root-key", str(root_key), "--publisher", str(public),
                "--out", str(root))  # fmt: skip
        small.admin("create-app", APP, "--trust-root", str(root))
        key = small.admin("create-key", "--name", "p", "--role", "publisher", "--app", APP)
        big = tmp_path / "big"
        big.mkdir()
        (big / "index.android.bundle").write_bytes(os.urandom(64 * 1024))
        done = cli.run(
            "release", "--platform", "android", "--version", "1.0.0", "--bundle-dir", str(big),
            "--api-url", small.base_url, "--token", key.strip().splitlines()[-1], "--app", APP,
            check=False,
        )  # fmt: skip
        _fails(done, 7, "too large")


def test_trust_root_rotation_chains_from_the_current_root(cli: Cli, tmp_path: Path) -> None:
    """trust-root rotate signs v2 with the old and new root keys; the core accepts the chain."""
    old, new, pub = tmp_path / "old.pem", tmp_path / "new.pem", tmp_path / "pub.pem"
    cli.run("keys", "generate")
    cli.run("keys", "generate", "--out", str(old))
    cli.run("keys", "generate", "--out", str(new))
    cli.run("keys", "export-public", "--out", str(pub))
    v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
    cli.run("trust-root", "create", "--root-key", str(old), "--publisher", str(pub),
            "--out", str(v1))  # fmt: skip
    rotated = cli.json(
        "trust-root", "rotate", "--current", str(v1), "--old-root-key", str(old),
        "--root-key", str(new), "--bump-epoch", "--out", str(v2),
    )  # fmt: skip
    assert (rotated["version"], rotated["epoch"]) == (2, 2)
    accepted = rotate_trust_root(load_trust_root(v1.read_bytes()), v2.read_bytes())
    assert accepted.epoch == 2
    done = cli.run(
        "trust-root", "rotate", "--current", str(v1), "--old-root-key", str(new),
        "--out", str(tmp_path / "bad.json"), check=False,
    )  # fmt: skip
    _fails(done, 1, "would not be accepted")


def test_trust_roots_name_timestamp_keys_and_rotation_keeps_what_it_is_not_told_to_change(
    cli: Cli, tmp_path: Path
) -> None:
    """--timestamp-key makes devices require heads; rotate keeps, replaces or drops it.

    Rotation also keeps the root's release thresholds: it dropped them before.
    """
    root, pub, stamp, other = (tmp_path / f"{n}.pem" for n in ("root", "pub", "ts", "ts2"))
    cli.run("keys", "generate")
    for path in (root, stamp, other):
        cli.run("keys", "generate", "--out", str(path))
    cli.run("keys", "export-public", "--out", str(pub))
    v1, v2, v3, v4 = (tmp_path / f"v{n}.json" for n in range(1, 5))
    created = cli.json(
        "trust-root", "create", "--root-key", str(root), "--publisher", str(pub),
        "--timestamp-key", str(stamp), "--out", str(v1),
    )  # fmt: skip
    first = load_trust_root(v1.read_bytes())
    assert first.timestamp is not None
    assert created["timestampKeys"] == [first.timestamp.keys[0].key_id]
    # A root with a production threshold, as a team may have signed by hand.
    with_threshold = attrs.evolve(first, release_thresholds={"production": 1})
    v1.write_bytes(sign_trust_root(with_threshold, [SigningKey.from_pem(root.read_bytes())]))
    rotate = ("trust-root", "rotate", "--old-root-key", str(root), "--force")
    cli.json(*rotate, "--current", str(v1), "--out", str(v2))
    kept = load_trust_root(v2.read_bytes())
    assert kept.timestamp == first.timestamp
    assert kept.release_thresholds == {"production": 1}
    cli.json(*rotate, "--current", str(v2), "--timestamp-key", str(other), "--out", str(v3))
    replaced = load_trust_root(v3.read_bytes())
    assert replaced.timestamp is not None
    assert replaced.timestamp != first.timestamp
    cli.json(*rotate, "--current", str(v3), "--no-timestamp-key", "--out", str(v4))
    assert load_trust_root(v4.read_bytes()).timestamp is None
    same = cli.run(
        "trust-root", "create", "--root-key", str(root), "--publisher", str(pub),
        "--timestamp-key", str(pub), "--out", str(tmp_path / "bad.json"), check=False,
    )  # fmt: skip
    _fails(same, 1, "timestamp key may not also be")
