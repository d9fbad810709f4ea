"""An update check's parameters, validated the same way for every device protocol."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final

import attrs

from hotpatch_core.errors import VersionSyntaxError
from hotpatch_core.protocol import CHANNEL, MANIFEST_ID, NAME, NATIVE_TEXT
from hotpatch_core.versions import Version
from hotpatch_core.wire import parse_decimal
from hotpatch_server.errors import InvalidInputError

__all__ = [
    "CHANNEL",
    "DEVICE_ID",
    "MANIFEST_ID",
    "NATIVE_TEXT",
    "PLATFORM",
    "CheckQuery",
    "native_version",
    "parse_check",
]

# Every pattern is used with fullmatch: a bare ``$`` would let a trailing newline through.
# They are the device API's, shared by every device protocol; tests/test_validation.py
# checks each against the columns it lands in.
#: App ids and device ids as devices send them (the same rule as in their reports).
DEVICE_ID: Final = NAME
PLATFORM: Final = re.compile(r"android|ios")


@attrs.frozen
class CheckQuery:
    """A validated update check."""

    app_id: str
    platform: str
    channel: str
    device_id: str
    #: None when the caller offers only candidates that fit the binary already
    #: (an Expo runtime version is matched exactly, not by range).
    native_version: Version | None
    native_text: str
    current_manifest_id: str | None
    current_position: tuple[int, int] | None


def _field(params: Mapping[str, object], *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if value is not None and value != "":
            return str(value)
    return None


def _required(params: Mapping[str, object], pattern: re.Pattern[str], *names: str) -> str:
    value = _field(params, *names)
    if value is None:
        raise InvalidInputError(f"{names[0]} is required", field=names[0])
    if not pattern.fullmatch(value):
        raise InvalidInputError(f"{names[0]} {value[:40]!r} is not valid", field=names[0])
    return value


@functools.lru_cache(maxsize=4096)
def native_version(text: str) -> Version:
    """Parse a native version (a fleet reports a handful: each is parsed once per process)."""
    return Version.parse_native(text)


def parse_check(params: Mapping[str, object]) -> CheckQuery:
    """Validate check parameters: a query string, or a JSON body.

    Both are :class:`~hotpatch_core.protocol.CheckRequest` on the wire.

    ``appVersion`` and ``binaryVersion`` are accepted as names of ``nativeVersion``.
    """
    platform = _required(params, PLATFORM, "platform")
    native_text = _required(params, NATIVE_TEXT, "nativeVersion", "appVersion", "binaryVersion")
    try:
        native = native_version(native_text)
    except VersionSyntaxError as exc:
        raise InvalidInputError(str(exc), field="nativeVersion") from None
    current = _field(params, "currentManifestId", "currentReleaseId")
    if current is not None and not MANIFEST_ID.fullmatch(current):
        raise InvalidInputError("currentManifestId is a 64-digit hex id", field="currentManifestId")
    channel = _field(params, "channel") or "production"
    if not CHANNEL.fullmatch(channel):
        raise InvalidInputError(f"channel {channel[:40]!r} is not valid", field="channel")
    position: tuple[int, int] | None = None
    epoch, sequence = _field(params, "currentEpoch"), _field(params, "currentSequence")
    if sequence is not None:
        number, epoch_number = parse_decimal(sequence), parse_decimal(epoch or "1")
        if number is None or epoch_number is None:
            raise InvalidInputError("currentSequence must be a number", field="currentSequence")
        position = (epoch_number, number)
    return CheckQuery(
        app_id=_required(params, DEVICE_ID, "appId"),
        platform=platform,
        channel=channel,
        device_id=_required(params, DEVICE_ID, "deviceId"),
        native_version=native,
        native_text=native_text,
        current_manifest_id=current,
        current_position=position,
    )
