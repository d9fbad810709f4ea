"""Every cap the device enforces, in one object derived from the core's caps.

A cap on the device that is lower than what the core and the server accept
would make a legal release unreachable (a 3,000-file release's check answer
once exceeded a 512 KiB cap the agent kept on its own). So each cap here is
computed from the core's: the check answer must hold the largest release
envelope the core verifies, base64-encoded, plus the answer's other fields.
Lower a cap in a test with ``attrs.evolve``; raise none above the core's.
Archive extraction is capped by the core's extractor and by each release's
own signed file count and sizes, not here.
"""

from __future__ import annotations

from typing import Final

import attrs

from hotpatch_core.release import MAX_RELEASE_ENVELOPE_BYTES
from hotpatch_core.trust import MAX_ROOT_BYTES

__all__ = ["DEFAULT_DEVICE_LIMITS", "DeviceLimits"]

#: Room in a check answer beyond the envelope: version, URLs, patch offer, JSON punctuation.
_ANSWER_FIELDS_BYTES: Final = 64 * 1024


def _base64_size(size: int) -> int:
    return (size + 2) // 3 * 4


@attrs.frozen
class DeviceLimits:
    """The device's caps: what it reads from the server and from its own storage."""

    #: A signed release envelope, as verified and as stored beside an installed bundle.
    envelope_bytes: int = MAX_RELEASE_ENVELOPE_BYTES
    #: The update-check answer: the envelope base64-encoded in JSON, plus the other fields.
    check_answer_bytes: int = _base64_size(MAX_RELEASE_ENVELOPE_BYTES) + _ANSWER_FIELDS_BYTES
    #: One trust root version fetched during a rotation walk (and kept in ``state.json``).
    root_bytes: int = MAX_ROOT_BYTES
    #: ``state.json``: high-water marks, bundles, failed releases, the newest trust root.
    state_bytes: int = 4 * 1024 * 1024
    #: One queued installation report, and the reason text it carries.
    report_bytes: int = 16 * 1024
    report_reason_chars: int = 500


DEFAULT_DEVICE_LIMITS: Final = DeviceLimits()
