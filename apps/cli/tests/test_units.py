"""In-process checks of the CLI's pieces: settings precedence, packing, the generated reference."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from hotpatch_cli.config import load_settings, save_login
from hotpatch_cli.errors import UsageError
from hotpatch_cli.main import build_parser, reference_markdown
from hotpatch_cli.pack import collect_files, pack_directory


def test_settings_precedence_and_the_seed_config(tmp_path: Path) -> None:
    """Flags beat the environment, which beats ~/.hotpatch, which beats the seed's ~/.rn-ota."""
    home = tmp_path / "user"
    (home / ".rn-ota").mkdir(parents=True)
    (home / ".rn-ota" / "config.toml").write_text(
        'apiUrl = "https://seed.example"\ntoken = "seed-token"\nappId = "com.seed.app"\n'
    )
    env = {"HOME": str(home)}
    seed = load_settings(env, api_url=None, token=None, app=None)
    assert (seed.api_url, seed.token, seed.app) == (
        "https://seed.example",
        "seed-token",
        "com.seed.app",
    )
    path = save_login(home / ".hotpatch", api_url="https://mine.example", token="t1", app=None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    mine = load_settings(env, api_url=None, token=None, app=None)
    assert (mine.api_url, mine.token, mine.app) == ("https://mine.example", "t1", "com.seed.app")
    env["HOTPATCH_TOKEN"] = "from-env"
    assert load_settings(env, api_url=None, token=None, app=None).token == "from-env"
    assert load_settings(env, api_url=None, token="flag", app=None).token == "flag"


def test_config_values_are_quoted_safely(tmp_path: Path) -> None:
    """Quotes and backslashes survive a round trip; control characters are refused."""
    path = save_login(tmp_path, api_url='https://x.example/a"b\\c', token="t", app="com.a.b")
    settings = load_settings({"HOTPATCH_HOME": str(tmp_path), "HOME": str(tmp_path)},
                             api_url=None, token=None, app=None)  # fmt: skip
    assert settings.api_url == 'https://x.example/a"b\\c'
    assert path.read_text().count("\n") == 4
    with pytest.raises(UsageError):
        save_login(tmp_path, api_url="https://x\n[evil]", token="t", app=None)


def test_login_never_writes_the_token_through_a_planted_file(tmp_path: Path) -> None:
    """A symlink planted at the temporary name is replaced, not followed; the directory is 0700."""
    directory = tmp_path / ".hotpatch"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    victim = tmp_path / "world-readable.txt"
    victim.write_text("before")
    (directory / "config.toml.tmp").symlink_to(victim)
    path = save_login(directory, api_url="https://mine.example", token="secret-token", app=None)
    assert victim.read_text() == "before"
    assert "secret-token" in path.read_text()
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not (directory / "config.toml.tmp").exists()


def test_packing_is_deterministic_and_refuses_symlinks(tmp_path: Path) -> None:
    """The same directory packs to the same bytes; a symlink is refused, not followed."""
    build = tmp_path / "build"
    (build / "assets").mkdir(parents=True)
    (build / "index.android.bundle").write_text("x" * 1000)
    (build / "assets" / "a.png").write_bytes(bytes(100))
    first = pack_directory(collect_files(build), tmp_path / "1.zip")
    os.utime(build / "index.android.bundle", (0, 0))  # timestamps never matter
    second = pack_directory(collect_files(build), tmp_path / "2.zip")
    assert first.info == second.info
    (build / "link").symlink_to(build / "index.android.bundle")
    with pytest.raises(UsageError, match="symlink"):
        collect_files(build)
    with pytest.raises(UsageError, match="not a directory"):
        collect_files(tmp_path / "missing")


def test_reference_covers_every_command() -> None:
    """The generated reference documents every command and the exit codes."""
    text = reference_markdown()
    for command in (
        "login", "keys generate", "keys show", "keys export-public", "trust-root create",
        "trust-root rotate", "release", "rollback", "promote", "rollout", "releases list",
        "patch", "embedded register",
    ):  # fmt: skip
        assert f"## `hotpatch {command}`" in text
    assert "| 7 |" in text
    commands = next(
        a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert "patch" in commands  # shown now that the diff engine exists
