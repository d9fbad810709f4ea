"""Stable, monotone rollout cohorts.

A device's *bucket* for a salt is a number in ``0..9999`` (basis points)::

    digest = SHA-256("hotpatch-cohort-v1" || 0x00 || salt || 0x00 || device_id)
    bucket = uint64_big_endian(digest[0:8]) mod 10000

with ``salt`` and ``device_id`` encoded as UTF-8. A device is in a rollout of
``p`` basis points when ``bucket < p``. So:

- the same device and salt always give the same bucket, in every process and
  language (never Python's ``hash()``, which is randomised per process);
- widening a rollout never removes a device (``bucket < p`` implies
  ``bucket < q`` for ``q >= p``): a device that got an update keeps it;
- 0 basis points is nobody and 10000 is everybody.

The modulo bias of 2^64 mod 10000 is below 10^-15 and can be ignored. Which
salt the server uses by default is decided in ADR 0001 (one salt per
release: its manifest id). Buckets are advisory: they only choose among
releases already signed for the device's channel (docs/security.md A18, S9).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["BASIS_POINTS", "bucket", "in_rollout", "parse_percent", "percent_to_basis_points"]

BASIS_POINTS: Final = 10_000
_DOMAIN: Final = b"hotpatch-cohort-v1"
#: A percentage written as text: ASCII digits, an optional fraction and exponent
#: (what ``f"{p:g}"`` writes); no sign, space, underscore, ``nan`` or ``inf``.
_PERCENT: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,16})?(?:[eE][-+]?[0-9]{1,3})?")


def bucket(device_id: str, salt: str) -> int:
    """Return ``device_id``'s bucket (0..9999) for ``salt``."""
    material = b"\x00".join((_DOMAIN, salt.encode("utf-8"), device_id.encode("utf-8")))
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") % BASIS_POINTS


def in_rollout(device_bucket: int, basis_points: int) -> bool:
    """Return whether a device in ``device_bucket`` is inside a rollout of ``basis_points``."""
    if not 0 <= device_bucket < BASIS_POINTS:
        msg = f"bucket must be in 0..{BASIS_POINTS - 1}, got {device_bucket}"
        raise ValueError(msg)
    if not 0 <= basis_points <= BASIS_POINTS:
        msg = f"rollout must be in 0..{BASIS_POINTS} basis points, got {basis_points}"
        raise ValueError(msg)
    return device_bucket < basis_points


def percent_to_basis_points(percent: float) -> int:
    """Convert a rollout percentage (``0``..``100``, two decimals kept) to basis points."""
    if not 0 <= percent <= 100:
        msg = f"rollout percentage must be between 0 and 100, got {percent}"
        raise ValueError(msg)
    return round(percent * 100)


def parse_percent(text: str) -> int:
    """Convert a rollout percentage written as text (``"5"``, ``"12.5"``) to basis points.

    ``float()`` alone would take ``" 5"``, ``"5_0"``, ``"nan"`` and digits of
    other scripts; this takes only ASCII decimal numbers, then applies
    :func:`percent_to_basis_points`.
    """
    if not _PERCENT.fullmatch(text):
        msg = f"rollout percentage must be a number from 0 to 100, got {text[:20]!r}"
        raise ValueError(msg)
    return percent_to_basis_points(float(text))
