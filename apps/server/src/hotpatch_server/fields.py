"""Validation of the names and ids admins send, equal to the columns that store them.

Every check is a full match over ASCII (or, for display names, over text
with no control character), and every length is the column's: a value that
passes is one the database can store on SQLite and PostgreSQL alike (NUL
is refused by PostgreSQL text columns; an over-long value by VARCHAR).
Bad input is a 422 naming the field, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

from hotpatch_server.errors import DeviceInputError, InvalidInputError

__all__ = [
    "APP_ID",
    "APP_ID_CHARS",
    "NAME_CHARS",
    "app_id",
    "app_scope",
    "base64_bytes",
    "device_value",
    "display_name",
    "required_device_value",
]

#: apps.id is VARCHAR(128); the same names trust-root scopes sign (hotpatch_core.trust).
APP_ID_CHARS: Final = 128
APP_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: apps.name and api_keys.name are VARCHAR(200).
NAME_CHARS: Final = 200


def app_id(value: str, field: str) -> str:
    """Return ``value`` if it is a valid app id, else raise a 422 naming ``field``."""
    if not APP_ID.fullmatch(value):
        raise InvalidInputError(
            f"{field} must be 1-{APP_ID_CHARS} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field=field,
        )
    return value


def app_scope(values: list[str], field: str) -> list[str]:
    """Return ``values`` if each is an app id or ``*`` and there is at least one."""
    if not values:
        raise InvalidInputError("list at least one app, or '*'", field=field)
    return [value if value == "*" else app_id(value, field) for value in values]


def display_name(value: str, field: str) -> str:
    """Return ``value`` if it has at most NAME_CHARS characters and no control character."""
    if len(value) > NAME_CHARS:
        raise InvalidInputError(f"{field} is longer than {NAME_CHARS}", field=field)
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in value):
        raise InvalidInputError(f"{field} contains a control character", field=field)
    return value


# --- what devices of other protocols send: a query, a JSON body or headers ---------
# Those protocols answer bad input with 400 (their clients show it as is).


def device_value(
    values: Mapping[str, Any],
    name: str,
    pattern: re.Pattern[str] | None = None,
    *,
    kind: str = "",
) -> str | None:
    """Return what a device sent as ``name`` (None if absent or empty); 400 if it is not valid.

    ``kind`` prefixes the name in messages (``"header "`` for request headers).
    """
    value = values.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DeviceInputError(f"{kind}{name} must be a string", field=name)
    if pattern is not None and not pattern.fullmatch(value):
        raise DeviceInputError(f"{kind}{name} {value[:40]!r} is not valid", field=name)
    return value


def required_device_value(
    values: Mapping[str, Any], name: str, pattern: re.Pattern[str], *, kind: str = ""
) -> str:
    """Return what a device sent as ``name``; 400 if it is absent, empty or not valid."""
    value = device_value(values, name, pattern, kind=kind)
    if value is None:
        raise DeviceInputError(f"{kind}{name} is required", field=name)
    return value


def base64_bytes(text: str, field: str, what: str = "base64") -> bytes:
    """Decode a standard-base64 request field, or refuse it as not being ``what``."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidInputError(f"{field} must be {what}", field=field) from None
