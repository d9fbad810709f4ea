"""The CLI's failures and the exit code each one maps to.

Every failure the command reports is one of these (or a core
:class:`~hotpatch_core.errors.HotPatchError`, exit 1): the top level prints
its message as one line and exits with its code, never a traceback unless
``--verbose``.
"""

from __future__ import annotations

import enum

__all__ = [
    "AuthError",
    "BuildError",
    "CliError",
    "ConflictError",
    "ExitCode",
    "NotFoundError",
    "ServerError",
    "TooLargeUploadError",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """The documented exit codes."""

    OK = 0
    USAGE = 1  # bad flags, invalid input, missing key or config
    AUTH = 2  # the server refused the credentials (401 / 403)
    CONFLICT = 3  # the version or sequence exists already (409)
    SERVER = 4  # the server is unreachable or failed (5xx, network)
    BUILD = 5  # the bundle command or hermesc failed
    NOT_FOUND = 6  # no such app, release or version (404)
    TOO_LARGE = 7  # the server's upload cap (413)


class CliError(Exception):
    """A failure with a one-line message and an exit code."""

    code = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str = "") -> None:
        """``message`` says what failed; ``hint`` what to do."""
        super().__init__(message)
        self.hint = hint

    def line(self) -> str:
        """Return the one line the user sees."""
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(CliError):
    """Invalid flags or input."""


class AuthError(CliError):
    """The server refused the credentials."""

    code = ExitCode.AUTH


class ConflictError(CliError):
    """The server already has that version or sequence."""

    code = ExitCode.CONFLICT


class ServerError(CliError):
    """The server is unreachable or failed."""

    code = ExitCode.SERVER


class BuildError(CliError):
    """The bundle command or the Hermes compiler failed."""

    code = ExitCode.BUILD


class NotFoundError(CliError):
    """No such app, release or version."""

    code = ExitCode.NOT_FOUND


class TooLargeUploadError(CliError):
    """The archive exceeds the server's upload cap."""

    code = ExitCode.TOO_LARGE
