"""Where the CLI keeps its settings: ``~/.hotpatch/config.toml`` (0600), flags and environment.

Precedence, highest first: command-line flags, environment variables
(``HOTPATCH_API_URL``, ``HOTPATCH_TOKEN``, ``HOTPATCH_APP``,
``HOTPATCH_SIGNING_KEY`` / ``HOTPATCH_SIGNING_KEY_FILE``), the config file,
and then ``~/.rn-ota/config.toml`` (the file ``rn-ota`` setups keep) if present. ``HOTPATCH_HOME``
moves ``~/.hotpatch`` (tests and CI use it).
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs

from hotpatch_cli.errors import UsageError

__all__ = ["Settings", "home", "load_settings", "save_login"]

CONFIG_NAME: Final = "config.toml"
KEY_NAME: Final = "signing_key.pem"


def home(env: Mapping[str, str]) -> Path:
    """Return the CLI's directory (``$HOTPATCH_HOME`` or ``~/.hotpatch``)."""
    return Path(env.get("HOTPATCH_HOME") or Path(env.get("HOME") or Path.home()) / ".hotpatch")


@attrs.frozen
class Settings:
    """What a command runs with, after flags, environment and files are merged."""

    api_url: str | None
    token: str | None
    app: str | None
    home: Path
    signing_key_pem: str | None  # from HOTPATCH_SIGNING_KEY: never written to disk

    @property
    def default_key_path(self) -> Path:
        """Where ``keys generate`` writes and ``release`` reads the signing key."""
        return self.home / KEY_NAME


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint="fix or delete the file") from None


def _text(document: Mapping[str, object], *names: str) -> str | None:
    for name in names:
        value = document.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def load_settings(
    env: Mapping[str, str], *, api_url: str | None, token: str | None, app: str | None
) -> Settings:
    """Merge flags, environment and config files."""
    directory = home(env)
    mine = _read_toml(directory / CONFIG_NAME)
    user_home = Path(env.get("HOME") or Path.home())
    legacy = _read_toml(user_home / ".rn-ota" / CONFIG_NAME)
    key_pem = env.get("HOTPATCH_SIGNING_KEY") or None
    return Settings(
        api_url=api_url
        or env.get("HOTPATCH_API_URL")
        or _text(mine, "api_url")
        or _text(legacy, "api_url", "apiUrl", "endpoint"),
        token=token
        or env.get("HOTPATCH_TOKEN")
        or _text(mine, "token")
        or _text(legacy, "token", "apiToken", "api_token"),
        app=app or env.get("HOTPATCH_APP") or _text(mine, "app") or _text(legacy, "app", "appId"),
        home=directory,
        signing_key_pem=key_pem,
    )


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(c) < 0x20 for c in escaped):
        raise UsageError("config values may not contain control characters")
    return f'"{escaped}"'


def save_login(directory: Path, *, api_url: str, token: str, app: str | None) -> Path:
    """Write the config file (0600, in a 0700 directory), replacing it atomically.

    The directory is made 0700 even if it existed. The temporary file is
    created afresh (``O_EXCL | O_NOFOLLOW``): a file or symlink planted at its
    name is removed, never written through, so the token cannot be steered
    into a file someone else can read.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    lines = [f"api_url = {_quote(api_url)}", f"token = {_quote(token)}"]
    if app:
        lines.append(f"app = {_quote(app)}")
    target = directory / CONFIG_NAME
    temporary = directory / (CONFIG_NAME + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # a leftover, or a planted symlink: unlink removes the link itself
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(temporary, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# Written by `hotpatch login`.\n" + "\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(target)
    return target
