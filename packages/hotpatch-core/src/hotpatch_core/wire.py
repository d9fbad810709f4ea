"""The wire converter: attrs documents <-> JSON-ready values.

Every HotPatch document is a frozen attrs class; serialisation happens only
here, at the edge, through the converter :func:`make_converter` builds (the
cattrs way: no ``to_json()`` methods on models). Its rules:

- field names travel in camelCase (``app_id`` <-> ``appId``), as the HTTP API
  spells them;
- primitives are strict: ``"1"`` is not an int, ``1`` is not a bool or a str, and a
  float field takes a JSON number only;
- bytes travel as standard base64;
- timestamps are RFC 3339 UTC with second precision (``2026-11-29T10:00:00Z``);
- optional fields whose value is ``None`` are left out when writing;
- unknown fields are tolerated when reading, so a newer writer can add fields
  without breaking older readers; a document's ``format`` number is what
  announces incompatible change.

:func:`structure` wraps the converter so that any shape or value error comes
out as :class:`~hotpatch_core.errors.SchemaError` naming the field at fault.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from hotpatch_core.errors import HotPatchError, SchemaError
from hotpatch_core.keys import PublicKey

__all__ = [
    "camel",
    "format_time",
    "make_converter",
    "matches",
    "parse_decimal",
    "parse_time",
    "structure",
    "unstructure",
]

T = TypeVar("T")
_DECIMAL: Final = re.compile(r"[0-9]+")
_TIME: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")


def camel(name: str) -> str:
    """Return the camelCase wire name of a snake_case field name."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def matches(
    pattern: re.Pattern[str], what: str
) -> Callable[[object, attrs.Attribute[Any], str], None]:
    """Return an attrs validator: the whole value must match ``pattern``.

    A mismatch is a :class:`SchemaError` saying the value is not ``what``,
    naming the field as it travels (camelCase).
    """

    def check(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if not pattern.fullmatch(value):
            raise SchemaError(f"{value[:80]!r} is not {what}", camel(attribute.name))

    return check


def format_time(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with second precision."""
    if moment.tzinfo is None:
        msg = "HotPatch times must be timezone-aware"
        raise ValueError(msg)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_decimal(text: str | None, max_digits: int = 18) -> int | None:
    """Return ``text`` as a non-negative int if it is 1 to ``max_digits`` ASCII digits, else None.

    For numbers in headers and query strings (``Content-Length``, an expiry):
    ``str.isdigit`` accepts superscripts and other scripts' digits, and
    ``int`` refuses more than a few thousand digits, so neither may see
    untrusted text first. 18 digits always fit a signed 64-bit column.
    """
    if text is None or not 1 <= len(text) <= max_digits or not _DECIMAL.fullmatch(text):
        return None
    return int(text)


def parse_time(text: str) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` into an aware UTC datetime."""
    if not _TIME.match(text):
        raise SchemaError(f"{text[:40]!r} is not a UTC time like 2026-01-31T12:00:00Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SchemaError(f"{text!r} is not a valid calendar time") from None


def _strict(kind: type[Any]) -> Any:
    def hook(value: object, _type: object) -> object:
        # type() rather than isinstance(): bool is an int subclass, and a
        # JSON true must never be read as 1.
        if type(value) is not kind:
            raise SchemaError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return hook


def _structure_float(value: object, _type: object) -> float:
    # A JSON number: an int or a float, never a bool or numeric text.
    if type(value) not in {int, float}:
        raise SchemaError(f"expected a number, got {type(value).__name__}")
    return float(value)  # type: ignore[arg-type]


def _structure_time(value: object, _type: object) -> datetime:
    if not isinstance(value, str):
        raise SchemaError(f"expected a time string, got {type(value).__name__}")
    return parse_time(value)


def _structure_enum(value: object, kind: type[enum.Enum]) -> enum.Enum:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise SchemaError(f"{value!r} is not one of {allowed}") from None


def _structure_bytes(value: object, _type: object) -> bytes:
    if not isinstance(value, str):
        raise SchemaError(f"expected base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SchemaError("not valid base64") from None


def _unstructure_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _structure_public_key(value: object, _type: object) -> PublicKey:
    if not isinstance(value, str):
        raise SchemaError(f"expected a base64 public key, got {type(value).__name__}")
    return PublicKey.from_base64(value)


def make_converter() -> cattrs.Converter:
    """Build the converter for every HotPatch document (camelCase, strict, tolerant of extras)."""
    converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)
    for kind in (str, int, bool):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook(float, _structure_float)
    # Hooks dispatch along the MRO, where a StrEnum meets str before Enum:
    # register the enum hook on each enum base so it wins.
    for base in (enum.StrEnum, enum.IntEnum, enum.Enum):
        converter.register_structure_hook(base, _structure_enum)
    converter.register_structure_hook(datetime, _structure_time)
    converter.register_unstructure_hook(datetime, format_time)
    converter.register_structure_hook(bytes, _structure_bytes)
    converter.register_unstructure_hook(bytes, _unstructure_bytes)
    converter.register_structure_hook(PublicKey, _structure_public_key)
    # ``object`` is any JSON value, passed through as parsed (an Expo app config).
    converter.register_structure_hook_func(lambda kind: kind is object, _as_parsed)
    converter.register_unstructure_hook(PublicKey, PublicKey.to_base64)

    def structure_factory(cls: type[Any]) -> Any:
        renames: dict[str, Any] = {
            a.name: override(rename=camel(a.name)) for a in attrs.fields(cls) if a.init
        }
        return make_dict_structure_fn(cls, converter, **renames)

    def unstructure_factory(cls: type[Any]) -> Any:
        overrides: dict[str, Any] = {
            a.name: override(rename=camel(a.name), omit_if_default=a.default is None)
            for a in attrs.fields(cls)
            if a.init
        }
        return make_dict_unstructure_fn(cls, converter, **overrides)

    converter.register_structure_hook_factory(attrs.has, structure_factory)
    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return converter


def _as_parsed(value: object, _kind: object) -> object:
    return value


@cache
def _converter() -> cattrs.Converter:
    return make_converter()


def _first_problem(exc: BaseException) -> tuple[str, str]:
    """Find the innermost error and its field path in a cattrs exception tree."""
    path: list[str] = []
    current: BaseException = exc
    while isinstance(current, cattrs.ClassValidationError | cattrs.IterableValidationError):
        with_notes, without = current.group_exceptions()
        if not with_notes:
            current = without[0]
            continue
        current, note = with_notes[0]
        name = getattr(note, "name", None)
        index = getattr(note, "index", None)
        if name is not None:
            path.append(camel(str(name)))
        elif index is not None:
            path.append(f"[{index}]")
    field = ".".join(path).replace(".[", "[")
    if isinstance(current, KeyError):
        return field, "required field is missing"
    if isinstance(current, HotPatchError):
        # Keep our own message but drop a field prefix it may already carry.
        message = str(current)
        if isinstance(current, SchemaError) and current.field:
            field = f"{field}.{current.field}" if field else current.field
            message = message.removeprefix(f"{current.field}: ")
        return field, message
    return field, str(current) or type(current).__name__


def structure(value: object, kind: type[T]) -> T:
    """Build a ``kind`` document from JSON-ready ``value``, or raise :class:`SchemaError`."""
    if not isinstance(value, dict):
        raise SchemaError(f"expected a JSON object, got {type(value).__name__}")
    try:
        return _converter().structure(value, kind)
    except (cattrs.BaseValidationError, HotPatchError, ValueError, TypeError) as exc:
        field, message = _first_problem(exc)
        raise SchemaError(message, field) from None


def unstructure(document: object) -> Any:
    """Turn a document into JSON-ready values (camelCase keys, ``None`` fields left out)."""
    return _converter().unstructure(document)
