"""What every command gets: settings, output, the environment, and the clock."""

from __future__ import annotations

import getpass
import io
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import attrs
import httpx

from hotpatch_cli.api import Api
from hotpatch_cli.config import Settings
from hotpatch_cli.errors import UsageError
from hotpatch_cli.keys import load_signing_key
from hotpatch_cli.output import Output
from hotpatch_core.keys import SigningKey

__all__ = ["Context", "now", "stdin_is_tty"]


def now() -> datetime:
    """Return this machine's time in whole seconds (what signing times are)."""
    return datetime.now(UTC).replace(microsecond=0)


def stdin_is_tty() -> bool:
    """Whether stdin is a terminal a prompt may wait on."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


@attrs.define
class Context:
    """What every command gets: settings, output and the environment."""

    settings: Settings
    output: Output
    env: Mapping[str, str]
    stdin_is_tty: bool
    #: How requests reach the server: the network (None), or in-process in tests.
    transport: httpx.BaseTransport | None = None

    def connect(self, api_url: str, token: str | None) -> Api:
        """Return a client of ``api_url`` with ``token``, over this context's transport."""
        return Api(api_url, token, transport=self.transport)

    def api(self) -> Api:
        """Return a client of the configured server, or explain how to configure one."""
        if not self.settings.api_url:
            raise UsageError(
                "no API URL", hint="run `hotpatch login`, pass --api-url or set HOTPATCH_API_URL"
            )
        return self.connect(self.settings.api_url, self.settings.token)

    def app(self) -> str:
        """Return the app id from --app, HOTPATCH_APP or the config."""
        if not self.settings.app:
            raise UsageError(
                "no app", hint="pass --app, set HOTPATCH_APP, or `hotpatch login --app`"
            )
        return self.settings.app

    def signing_key(self, path: Path | None) -> SigningKey:
        """Return the signing key: HOTPATCH_SIGNING_KEY, else --key, else the default file."""
        file = path or Path(
            self.env.get("HOTPATCH_SIGNING_KEY_FILE") or self.settings.default_key_path
        )
        return load_signing_key(None if path else self.settings.signing_key_pem, file)

    def ask(self, prompt: str, *, secret: bool = False) -> str:
        """Prompt on a terminal; never when stdin is not one."""
        if not self.stdin_is_tty:
            raise UsageError(f"{prompt.rstrip(': ')} is required and stdin is not a terminal")
        answer = getpass.getpass(prompt) if secret else input(prompt)
        if not answer.strip():
            raise UsageError(f"{prompt.rstrip(': ')} is required")
        return answer.strip()
