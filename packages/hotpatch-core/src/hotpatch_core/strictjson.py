"""Strict JSON parsing and canonical JSON encoding for signed documents.

Signed bytes are verified before they are parsed, but two parsers that read
the same bytes differently still break trust (docs/security.md A13). So every
document HotPatch signs is parsed here, and this parser refuses everything
that another parser might read another way:

- bytes that are not UTF-8, or that start with a byte-order mark;
- duplicate object keys (which one wins differs between parsers);
- ``NaN``, ``Infinity`` and every float (no HotPatch document has one);
- integers outside the signed 64-bit range (they lose precision in
  JavaScript, Kotlin and Swift parsers);
- nesting deeper than :data:`MAX_DEPTH`.

:func:`canonical` produces the one encoding HotPatch writes: sorted keys, no
insignificant whitespace, UTF-8 without escaping. Verification never depends
on it (we verify the exact bytes received), but it makes documents and golden
vectors reproducible.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from hotpatch_core.errors import StrictJSONError

__all__ = ["MAX_DEPTH", "MAX_INT", "MIN_INT", "canonical", "loads"]

MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_DEPTH = 32

JSONValue = Any  # JSON's recursive type; callers narrow it through the converters


def _reject_constant(name: str) -> NoReturn:
    raise StrictJSONError(f"{name} is not allowed in HotPatch documents")


def _reject_float(text: str) -> NoReturn:
    raise StrictJSONError(f"non-integer number {text[:32]!r} is not allowed")


def _parse_int(text: str) -> int:
    # The length check runs before int() so a megabyte of digits costs nothing.
    if len(text.lstrip("-")) > 19:
        raise StrictJSONError("integer out of the 64-bit range")
    value = int(text)
    if not MIN_INT <= value <= MAX_INT:
        raise StrictJSONError("integer out of the 64-bit range")
    return value


def _unique_object(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    result: dict[str, JSONValue] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _check_tree(value: JSONValue, limit: int) -> None:
    # Iterative so that the check itself cannot overflow the stack.
    stack: list[tuple[JSONValue, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if level > limit:
                raise StrictJSONError(f"nesting deeper than {limit} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                children = list(item.values())
            else:
                children = item
            stack.extend((child, level + 1) for child in children)


def _check_text(text: str) -> None:
    # JSON escapes can spell lone surrogates ("\ud800") that no UTF-8 encoder
    # accepts; other languages' parsers replace or reject them, so we reject.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJSONError("a string holds a lone surrogate escape") from None


def loads(data: bytes) -> JSONValue:
    """Parse ``data`` as strict JSON, raising :class:`StrictJSONError` on anything ambiguous."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise StrictJSONError("a byte-order mark is not allowed")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise StrictJSONError(f"not UTF-8: {exc.reason}") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not JSON: {exc.msg} at byte {exc.pos}") from None
    except RecursionError:
        raise StrictJSONError(f"nesting deeper than {MAX_DEPTH} levels") from None
    _check_tree(value, MAX_DEPTH)
    return value


def canonical(value: JSONValue) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, compact, UTF-8."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
