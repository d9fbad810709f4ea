"""The signed channel head: which releases a channel offers, as of now (A5).

A release manifest proves *what* a release is, never that it is still
current: a mirror could replay an old but unexpired answer, or keep serving
a release the team withdrew. The channel head closes that gap, like TUF's
timestamp role. The update server signs it with a *timestamp key* that the
app's trust root certifies for this purpose only
(:class:`~hotpatch_core.trust.TimestampRole`), and sends it with every
check answer::

    {"format": 1, "appId": "com.acme.shop", "platform": "android",
     "channel": "production", "issuedAt": "…", "expiresAt": "…",
     "after": {"epoch": 1, "sequence": 4},
     "releases": [{"manifestId": "…", "epoch": 1, "sequence": 6,
                   "binaryRange": ">=1.0.0 <2.0.0", "rolloutBasisPoints": 500,
                   "paused": false}, …]}

``releases`` are every release the server may offer on the channel that is
newer than ``after`` (absent: all of them), newest first. A device whose
root names timestamp keys takes an answer only with a head that

- a threshold of those keys signed, for its app, platform and channel;
- has not expired at the device's clock, so a replayed answer dies with its
  head. Not at the trusted time, as manifests are: heads are signed on the
  server's clock and manifests on the publisher's, and a publisher clock
  running ahead must not make every head look expired. A device whose clock
  was set back is still held by the next rule once it has seen a newer head;
- is not older than the newest head it has seen, less
  :data:`HEAD_TOLERANCE` (several server processes sign their own heads);
- starts at or before what the device has (``after`` not above its
  high-water mark), so no release it could be offered is left out.

Then the offered release must be one the head lists (:class:`WithdrawnError`
otherwise), and the answer must offer what the head says this device gets
(:func:`due_offers`; :class:`WithheldError` otherwise). A head can only
narrow what the device accepts: the release itself must still verify under
the publisher keys, so a server that holds the timestamp key can freeze
devices or hold back a release, but never make one accept content.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Final

import attrs

from hotpatch_core import strictjson, wire
from hotpatch_core.cohort import BASIS_POINTS, bucket
from hotpatch_core.envelope import check_signatures, decode_envelope, encode_envelope, sign_envelope
from hotpatch_core.errors import (
    ExpiredError,
    IdentityMismatchError,
    PayloadTypeError,
    RollbackError,
    SchemaError,
    UnsupportedFormatError,
)
from hotpatch_core.keys import SigningKey
from hotpatch_core.release import DeviceIdentity
from hotpatch_core.trust import TimestampRole, require_threshold
from hotpatch_core.versions import BinaryRange, Version

__all__ = [
    "HEAD_FORMAT",
    "HEAD_PAYLOAD_TYPE",
    "HEAD_TOLERANCE",
    "MAX_HEAD_BYTES",
    "MAX_HEAD_RELEASES",
    "ChannelHead",
    "HeadRelease",
    "Position",
    "due_offers",
    "encode_head",
    "sign_head",
    "verify_head",
]

HEAD_PAYLOAD_TYPE: Final = "application/vnd.hotpatch.head+json"
HEAD_FORMAT: Final = 1
MAX_HEAD_BYTES: Final = 64 * 1024
#: The most releases one head lists (the server offers from its 50 newest active ones).
MAX_HEAD_RELEASES: Final = 64
#: How much older than the newest head a device has seen a head may be: each server
#: process signs its own, refreshed at least every minute.
HEAD_TOLERANCE: Final = timedelta(minutes=2)
_MANIFEST_ID: Final = re.compile(r"[0-9a-f]{64}")


def _bounded(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= strictjson.MAX_INT:
        raise SchemaError("must be a positive integer", wire.camel(attribute.name))


@attrs.frozen
class Position:
    """A release's ``(epoch, sequence)``."""

    epoch: int = attrs.field(validator=_bounded)
    sequence: int = attrs.field(validator=_bounded)

    def key(self) -> tuple[int, int]:
        """Return the pair, for comparisons."""
        return (self.epoch, self.sequence)


def _manifest_id(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not _MANIFEST_ID.fullmatch(value):
        raise SchemaError("must be 64 lowercase hex digits", "manifestId")


def _basis_points(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= BASIS_POINTS:
        raise SchemaError(f"must be between 0 and {BASIS_POINTS}", "rolloutBasisPoints")


@functools.lru_cache(maxsize=256)
def _range(text: str) -> BinaryRange:
    return BinaryRange.parse(text)


def _binary_range(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    _range(value)  # raises VersionSyntaxError, reported as a SchemaError of this field


@attrs.frozen
class HeadRelease:
    """One release the server may offer: what the device needs to know who gets it."""

    manifest_id: str = attrs.field(validator=_manifest_id)
    epoch: int = attrs.field(validator=_bounded)
    sequence: int = attrs.field(validator=_bounded)
    binary_range: str = attrs.field(validator=_binary_range)
    rollout_basis_points: int = attrs.field(validator=_basis_points)
    paused: bool = False

    def position(self) -> tuple[int, int]:
        """``(epoch, sequence)``."""
        return (self.epoch, self.sequence)

    def serves(self, device_id: str, native: Version) -> bool:
        """Whether the server offers this release to ``device_id`` on ``native`` (cohort rules)."""
        return (
            not self.paused
            and _range(self.binary_range).contains(native)
            and bucket(device_id, self.manifest_id) < self.rollout_basis_points
        )


def _releases(
    instance: ChannelHead,
    _attribute: attrs.Attribute[tuple[HeadRelease, ...]],
    value: tuple[HeadRelease, ...],
) -> None:
    if len(value) > MAX_HEAD_RELEASES:
        raise SchemaError(f"lists more than {MAX_HEAD_RELEASES} releases", "releases")
    positions = [r.position() for r in value]
    if any(newer <= older for newer, older in itertools.pairwise(positions)):
        raise SchemaError("must be newest first, each position once", "releases")
    if len({r.manifest_id for r in value}) != len(value):
        raise SchemaError("lists a manifest twice", "releases")
    if instance.after is not None and positions and positions[-1] <= instance.after.key():
        raise SchemaError("lists a release at or before 'after'", "releases")
    if instance.expires_at <= instance.issued_at:
        raise SchemaError("must expire after it is issued", "expiresAt")


@attrs.frozen
class ChannelHead:
    """The releases a channel offers newer than ``after``, signed at ``issued_at``."""

    app_id: str
    platform: str
    channel: str
    issued_at: datetime
    expires_at: datetime
    releases: tuple[HeadRelease, ...] = attrs.field(validator=_releases)
    after: Position | None = None
    format: int = HEAD_FORMAT

    def lists(self, manifest_id: str) -> bool:
        """Whether ``manifest_id`` is one of the releases the server may offer now."""
        return any(r.manifest_id == manifest_id for r in self.releases)


def encode_head(head: ChannelHead) -> bytes:
    """Return the canonical JSON body of ``head``."""
    return strictjson.canonical(wire.unstructure(head))


def sign_head(head: ChannelHead, keys: Iterable[SigningKey]) -> bytes:
    """Sign ``head`` with timestamp ``keys``; return the envelope bytes to serve."""
    return encode_envelope(sign_envelope(HEAD_PAYLOAD_TYPE, encode_head(head), keys))


def _decode(body: bytes) -> ChannelHead:
    document = strictjson.loads(body)
    if isinstance(document, dict) and document.get("format") != HEAD_FORMAT:
        raise UnsupportedFormatError(
            f"channel head format {document.get('format')!r} is not supported "
            f"(expected {HEAD_FORMAT})"
        )
    return wire.structure(document, ChannelHead)


def verify_head(  # noqa: PLR0913 - what a head is judged against, keyword-only
    data: bytes,
    *,
    role: TimestampRole,
    identity: DeviceIdentity,
    at: datetime,
    newest_seen: datetime | None,
    high_water: tuple[int, int] | None,
) -> ChannelHead:
    """Verify a channel head for this device (see the module docstring); return it.

    Raises :class:`PayloadTypeError`, a signature error (``UnsignedError``,
    ``UnknownKeyError``, ``BadSignatureError``, ``ThresholdError``),
    :class:`IdentityMismatchError`, :class:`ExpiredError` (a replayed, stale
    answer) or :class:`RollbackError` (older than a head already seen, or
    leaving out releases newer than the device's high-water mark).
    """
    envelope = decode_envelope(data, max_bytes=MAX_HEAD_BYTES)
    if envelope.payload_type != HEAD_PAYLOAD_TYPE:
        raise PayloadTypeError(f"expected a channel head, got {envelope.payload_type[:80]!r}")
    report = check_signatures(envelope, role.keyring())
    require_threshold(envelope, report, report.verified, role.threshold, "channel head")
    head = _decode(envelope.payload)
    for field, signed, own in (
        ("app_id", head.app_id, identity.app_id),
        ("platform", head.platform, identity.platform.value),
        ("channel", head.channel, identity.channel),
    ):
        if signed != own:
            raise IdentityMismatchError(
                f"channel head is for {field} {signed[:64]!r}, this device has {own!r}", field
            )
    if at >= head.expires_at:
        raise ExpiredError(
            f"channel head expired at {wire.format_time(head.expires_at)}: the answer is stale "
            "(replayed, or the server no longer refreshes it)"
        )
    if newest_seen is not None and head.issued_at < newest_seen - HEAD_TOLERANCE:
        raise RollbackError(
            f"channel head issued at {wire.format_time(head.issued_at)} is older than one "
            f"already seen ({wire.format_time(newest_seen)})"
        )
    if head.after is not None and (high_water is None or head.after.key() > high_water):
        raise RollbackError(
            f"channel head lists only releases after {head.after.key()}, this device has "
            f"{high_water}: it could leave out a release meant for this device"
        )
    return head


def due_offers(  # noqa: PLR0913 - the device's side of the server's choice, keyword-only
    head: ChannelHead,
    *,
    device_id: str,
    native: Version,
    epoch: int,
    above: tuple[int, int] | None,
    failed: Collection[str],
) -> frozenset[str] | None:
    """Return the releases one of which the answer must offer, or None if nothing is due.

    The server offers, newest first, the first release above the device's
    bundle that serves it (not paused, its binary range, its cohort) and
    that it has not rolled back. Walking the head the same way above the
    device's high-water mark ``above``, in its trust ``epoch``: the first
    such release this device has not marked failed is due. A failed one
    met before it may be offered instead (the device then ignores it), since
    the server may not yet know this device failed it. None: the head owes
    this device nothing, and any release it lists (or none) is a fair answer.
    """
    allowed: set[str] = set()
    for release in head.releases:
        if above is not None and release.position() <= above:
            break
        if release.epoch != epoch or not release.serves(device_id, native):
            continue
        allowed.add(release.manifest_id)
        if release.manifest_id not in failed:
            return frozenset(allowed)
    return None
