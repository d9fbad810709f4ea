"""The signed channel head and the timestamp role (docs/security.md A5)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.cohort import bucket
from hotpatch_core.envelope import encode_envelope, sign_envelope
from hotpatch_core.errors import (
    ExpiredError,
    IdentityMismatchError,
    PayloadTypeError,
    RollbackError,
    SchemaError,
    TooLargeError,
    UnknownKeyError,
    UnsupportedFormatError,
)
from hotpatch_core.head import (
    HEAD_PAYLOAD_TYPE,
    HEAD_TOLERANCE,
    MAX_HEAD_BYTES,
    MAX_HEAD_RELEASES,
    ChannelHead,
    HeadRelease,
    Position,
    due_offers,
    sign_head,
    verify_head,
)
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import Platform
from hotpatch_core.release import DeviceIdentity
from hotpatch_core.testing import FIXED_TIME, build_release, head_listing, make_pki
from hotpatch_core.trust import (
    TimestampRole,
    decode_trust_root_body,
    encode_trust_root,
    load_trust_root,
)
from hotpatch_core.versions import Version
from hotpatch_core.wire import unstructure

PKI_ = make_pki(seed=7, timestamp=True)
assert PKI_.timestamp is not None
STAMP = PKI_.timestamp
ROLE = TimestampRole((STAMP.public_key,))
DEVICE = DeviceIdentity("com.example.app", Platform.ANDROID, "production", Version(1, 0, 0))
MANIFESTS = [build_release({"index.android.bundle": b"%d" % n}, sequence=n).manifest
             for n in range(1, 5)]  # fmt: skip


def _verify(data: bytes, *, at=FIXED_TIME, seen=None, high_water=None, role=ROLE) -> ChannelHead:  # type: ignore[no-untyped-def]
    return verify_head(
        data, role=role, identity=DEVICE, at=at, newest_seen=seen, high_water=high_water
    )


def test_a_signed_head_verifies_and_round_trips() -> None:
    """A head signed by the root's timestamp key verifies to the document that was signed."""
    head = head_listing(MANIFESTS, after=None)
    assert _verify(sign_head(head, [STAMP])) == head


_ids = st.text("0123456789abcdef", min_size=64, max_size=64)
_releases = st.lists(
    st.builds(
        HeadRelease,
        manifest_id=_ids,
        epoch=st.integers(1, 3),
        sequence=st.integers(1, 10**6),
        binary_range=st.sampled_from(["*", ">=1.0.0 <2.0.0", "1.2.3 || >=3.0.0"]),
        rollout_basis_points=st.integers(0, 10_000),
        paused=st.booleans(),
    ),
    max_size=8,
    unique_by=(lambda r: r.manifest_id, lambda r: r.position()),
).map(lambda rs: tuple(sorted(rs, key=HeadRelease.position, reverse=True)))


@given(
    releases=_releases,
    lifetime=st.integers(1, 10**7),
    after=st.none() | st.tuples(st.integers(1, 3), st.integers(1, 10**6)),
)
def test_every_head_round_trips_through_its_signed_bytes(
    releases: tuple[HeadRelease, ...], lifetime: int, after: tuple[int, int] | None
) -> None:
    """Any valid head survives signing, encoding and verification unchanged."""
    if after is not None and releases and releases[-1].position() <= after:
        after = None
    head = ChannelHead(
        app_id="com.example.app",
        platform="android",
        channel="production",
        issued_at=FIXED_TIME,
        expires_at=FIXED_TIME + timedelta(seconds=lifetime),
        releases=releases,
        after=Position(*after) if after is not None else None,
    )
    assert _verify(sign_head(head, [STAMP]), high_water=(3, 10**6)) == head


@pytest.mark.parametrize(
    ("data", "error"),
    [
        # Signed by the publisher key: a root or publisher key is not a timestamp key.
        (sign_head(head_listing(MANIFESTS), [PKI_.publisher]), UnknownKeyError),
        (
            encode_envelope(sign_envelope("application/vnd.hotpatch.release+json", b"{}", [STAMP])),
            PayloadTypeError,
        ),
        (b"{" + b" " * MAX_HEAD_BYTES + b"}", TooLargeError),
    ],
    ids=["publisher-key", "release-payload-type", "oversized"],
)
def test_a5_only_a_timestamp_key_signs_a_head(data: bytes, error: type[Exception]) -> None:
    """Publisher keys, other payload types and oversized envelopes are refused."""
    with pytest.raises(error):
        _verify(data)


@pytest.mark.parametrize(
    ("target", "field"),
    [
        (("com.other.app", "android", "production"), "app_id"),
        (("com.example.app", "ios", "production"), "platform"),
        (("com.example.app", "android", "beta"), "channel"),
    ],
)
def test_a5_a_head_for_another_channel_is_refused(target: tuple[str, str, str], field: str) -> None:
    """A head is for one app, platform and channel; the mismatching field is named."""
    data = sign_head(head_listing(MANIFESTS, target=target), [STAMP])
    with pytest.raises(IdentityMismatchError) as caught:
        _verify(data)
    assert caught.value.field == field


def test_a5_a_replayed_head_dies_at_its_expiry() -> None:
    """A head, and the answer it came with, cannot be replayed past its expiry."""
    data = sign_head(head_listing(MANIFESTS, lifetime=timedelta(hours=1)), [STAMP])
    _verify(data, at=FIXED_TIME + timedelta(minutes=59))
    with pytest.raises(ExpiredError, match="stale"):
        _verify(data, at=FIXED_TIME + timedelta(hours=1))


def test_a5_a_head_older_than_one_seen_is_refused_within_a_tolerance() -> None:
    """Heads may go back by HEAD_TOLERANCE (several processes), never further."""
    data = sign_head(head_listing(MANIFESTS), [STAMP])
    _verify(data, seen=FIXED_TIME + HEAD_TOLERANCE)  # other processes sign their own
    with pytest.raises(RollbackError, match="older than one already seen"):
        _verify(data, seen=FIXED_TIME + HEAD_TOLERANCE + timedelta(seconds=1))


def test_a5_a_head_that_starts_above_the_device_could_hide_a_release() -> None:
    """A head listing only releases above the device's mark could omit one it is due."""
    data = sign_head(head_listing(MANIFESTS[3:], after=(1, 3)), [STAMP])
    _verify(data, high_water=(1, 3))
    for below in [(1, 2), None]:
        with pytest.raises(RollbackError, match="leave out"):
            _verify(data, high_water=below)


def test_heads_of_unknown_formats_and_bad_fields_are_refused() -> None:
    """Each malformed field of a correctly signed head is refused with a schema error."""
    document: dict[str, Any] = unstructure(head_listing(MANIFESTS))
    changes: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"format": 2}, UnsupportedFormatError),
        ({"releases": list(reversed(document["releases"]))}, SchemaError),
        ({"releases": document["releases"] * 2}, SchemaError),
        ({"expiresAt": document["issuedAt"]}, SchemaError),
        ({"after": {"epoch": 1, "sequence": 4}}, SchemaError),
        ({"releases": [{**document["releases"][0], "manifestId": "A" * 64}]}, SchemaError),
        ({"releases": [{**document["releases"][0], "rolloutBasisPoints": 10_001}]}, SchemaError),
        ({"releases": [{**document["releases"][0], "binaryRange": "garbage!"}]}, SchemaError),
    ]
    for change, error in changes:
        body = json.dumps({**document, **change}).encode()
        data = encode_envelope(sign_envelope(HEAD_PAYLOAD_TYPE, body, [STAMP]))
        with pytest.raises(error):
            _verify(data, high_water=(9, 9))


def test_a_head_lists_at_most_the_cap() -> None:
    """A head lists at most MAX_HEAD_RELEASES releases."""
    releases = tuple(
        HeadRelease(f"{n:064x}", 1, n, "*", 10_000) for n in range(MAX_HEAD_RELEASES + 1, 0, -1)
    )
    with pytest.raises(SchemaError, match="more than"):
        attrs.evolve(head_listing([]), releases=releases)


# --- the timestamp role in the trust root ---------------------------------------------------


def test_a_root_without_a_timestamp_role_encodes_as_before() -> None:
    """Roots made before the timestamp role keep their exact bytes; the role round-trips."""
    plain = make_pki(seed=7)
    assert b"timestamp" not in encode_trust_root(plain.root)
    assert decode_trust_root_body(encode_trust_root(PKI_.root)) == PKI_.root
    assert load_trust_root(PKI_.root_bytes).timestamp == ROLE


def test_a_timestamp_key_may_not_be_a_root_or_publisher_key() -> None:
    """The key the server holds can never also sign roots or releases."""
    for key in (PKI_.root_keys[0], PKI_.publisher):
        with pytest.raises(SchemaError, match="timestamp key may not also be"):
            attrs.evolve(PKI_.root, timestamp=TimestampRole((key.public_key,)))


def test_a_timestamp_role_needs_distinct_keys_within_its_threshold() -> None:
    """The role's keys are distinct and its threshold is within their number."""
    other = SigningKey(b"\x09" * 32)
    with pytest.raises(SchemaError, match="listed twice"):
        TimestampRole((STAMP.public_key, STAMP.public_key))
    with pytest.raises(SchemaError, match="between 1 and"):
        TimestampRole((STAMP.public_key, other.public_key), threshold=3)
    with pytest.raises(SchemaError, match="at least one"):
        TimestampRole(())


# --- what is due to a device ---------------------------------------------------------------


def _ids_of(head: ChannelHead) -> list[str]:
    return [r.manifest_id for r in head.releases]


def _due(head: ChannelHead, *, device: str = "device-1", above=None, failed=()):  # type: ignore[no-untyped-def]
    return due_offers(
        head, device_id=device, native=Version(1, 0, 0), epoch=1, above=above, failed=failed
    )


def test_the_newest_release_above_the_device_is_due() -> None:
    """The newest serving release above the mark is due; a failed one widens the choice."""
    head = head_listing(MANIFESTS)
    newest, second = _ids_of(head)[:2]
    assert _due(head) == {newest}
    assert _due(head, above=(1, 4)) is None
    # A release the device failed may still be offered (the server may not know yet), and
    # then the next one is due too.
    assert _due(head, failed=(newest,)) == {newest, second}


def test_paused_out_of_range_and_out_of_cohort_releases_are_not_due() -> None:
    """Only releases the server's own rules would offer this device are due."""
    ids = [r.manifest_id for r in head_listing(MANIFESTS).releases]
    assert _due(head_listing(MANIFESTS, paused=ids)) is None
    ranged = [attrs.evolve(m, binary_range=">=2.0.0") for m in MANIFESTS]
    assert _due(head_listing(ranged)) is None
    device = "device-1"
    half = head_listing(MANIFESTS, rollout_basis_points=5_000)
    inside = [r.manifest_id for r in half.releases if bucket(device, r.manifest_id) < 5_000]
    assert _due(half, device=device) == (frozenset(inside[:1]) if inside else None)
