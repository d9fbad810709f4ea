from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest

from hotpatch_core.envelope import decode_envelope, encode_envelope, sign_envelope
from hotpatch_core.errors import (
    BadSignatureError,
    ExpiredError,
    PayloadTypeError,
    RootRotationError,
    SchemaError,
    ThresholdError,
    UnknownKeyError,
    UnsignedError,
    UnsupportedFormatError,
)
from hotpatch_core.keys import SigningKey
from hotpatch_core.testing import FIXED_TIME, make_pki
from hotpatch_core.trust import (
    ROOT_PAYLOAD_TYPE,
    PublisherKey,
    Scope,
    TrustRoot,
    check_root_fresh,
    encode_trust_root,
    load_trust_root,
    rotate_trust_root,
    sign_trust_root,
)

KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(8)]
PUBLISHER = PublisherKey(KEYS[7].public_key, "ci", Scope(("*",), ("*",), ("*",)))


@attrs.frozen
class RootVersion:
    """One step of a rotation: who is a root key, the threshold, who signs, what should happen."""

    keys: Sequence[int]
    threshold: int
    sigs: Sequence[int]
    ok: bool = True


def _root(version: int, step: RootVersion) -> bytes:
    root = TrustRoot(
        version=version,
        epoch=1,
        root_keys=tuple(KEYS[i].public_key for i in step.keys),
        root_threshold=step.threshold,
        publishers=(PUBLISHER,),
    )
    return sign_trust_root(root, [KEYS[i] for i in step.sigs])


# The shape of python-tuf's key-rotation table: each case is a chain of root
# versions, every step signed by some keys, expected to be accepted or not.
ROTATIONS: dict[str, list[RootVersion]] = {
    "1-of-1 rotation": [
        RootVersion([1], 1, [1]),
        RootVersion([2], 1, [2, 1]),
        RootVersion([3], 1, [3, 2]),
    ],
    "1-of-1 rotation, extra signatures": [RootVersion([1], 1, [1]), RootVersion([2], 1, [2, 1, 4])],
    "1-of-1 fails: not signed by old key": [
        RootVersion([1], 1, [1]),
        RootVersion([2], 1, [2, 3], ok=False),
    ],
    "1-of-1 fails: not signed by new key": [
        RootVersion([1], 1, [1]),
        RootVersion([2], 1, [1, 3], ok=False),
    ],
    "3-of-5, different signer sets": [
        RootVersion([0, 1, 2, 3, 4], 3, [0, 2, 4]),
        RootVersion([0, 1, 2, 3, 4], 3, [0, 4, 1]),
        RootVersion([0, 1, 2, 3, 4], 3, [0, 1, 3]),
    ],
    "3-of-5, one key rotated": [
        RootVersion([0, 1, 2, 3, 4], 3, [0, 2, 4]),
        RootVersion([0, 1, 3, 4, 5], 3, [0, 4, 1]),
    ],
    "3-of-5 fails: only 2 new keys signed": [
        RootVersion([0, 1, 2, 3, 4], 3, [0, 2, 4]),
        RootVersion([0, 1, 3, 4, 5], 3, [0, 2, 4], ok=False),
    ],
    "3-of-5 fails: only 2 old keys signed": [
        RootVersion([0, 1, 2, 3, 4], 3, [0, 2, 4]),
        RootVersion([0, 1, 3, 4, 5], 3, [0, 4, 5], ok=False),
    ],
    "3-of-5, all keys rotated via an intermediate step": [
        RootVersion([0, 1, 2, 3, 4], 3, [0, 2, 4]),
        RootVersion([0, 1, 2, 5, 6], 3, [0, 1, 2, 5, 6]),
        RootVersion([5, 6, 3, 4, 7], 3, [0, 5, 6, 3, 4, 7]),
    ],
    "threshold up 1-of-3 to 2-of-3": [
        RootVersion([1, 2, 3], 1, [1]),
        RootVersion([1, 2, 3], 2, [1, 2]),
    ],
    "threshold up fails: new threshold not met": [
        RootVersion([1, 2, 3], 1, [1]),
        RootVersion([1, 2, 3], 2, [1], ok=False),
    ],
    "threshold down 2-of-3 to 1-of-3": [
        RootVersion([1, 2, 3], 2, [1, 2]),
        RootVersion([1, 2, 3], 1, [1, 2]),
        RootVersion([1, 2, 3], 1, [3]),
    ],
    "threshold down fails: old threshold not met": [
        RootVersion([1, 2, 3], 2, [1, 2]),
        RootVersion([1, 2, 3], 1, [1], ok=False),
    ],
    "1-of-1 to 2-of-2": [RootVersion([1], 1, [1]), RootVersion([1, 2], 2, [1, 2])],
}


@pytest.mark.parametrize("chain", ROTATIONS.values(), ids=ROTATIONS.keys())
def test_key_rotation(chain: list[RootVersion]) -> None:
    """Each root version needs a threshold of the previous and of its own keys (A10)."""
    current = load_trust_root(_root(1, chain[0]))
    for version, step in enumerate(chain[1:], start=2):
        data = _root(version, step)
        if step.ok:
            current = rotate_trust_root(current, data)
            assert current.version == version
        else:
            with pytest.raises(RootRotationError):
                rotate_trust_root(current, data)
            return


def test_root_nonconsecutive_version_rejected() -> None:
    """Root N may only be followed by N+1, never N+2 or N."""
    step = RootVersion([1], 1, [1])
    current = load_trust_root(_root(1, step))
    for version in (1, 3):
        with pytest.raises(RootRotationError, match="does not follow"):
            rotate_trust_root(current, _root(version, step))


def test_root_epoch_cannot_go_back() -> None:
    """A rotation may keep or raise the epoch, never lower it."""
    pki = make_pki(epoch=3)
    lowered = attrs.evolve(pki.root, version=2, epoch=2)
    with pytest.raises(RootRotationError, match="epoch"):
        rotate_trust_root(pki.root, sign_trust_root(lowered, pki.root_keys))


def test_duplicate_keys_count_once() -> None:
    """One key listed 9 times (signing 9 times) does not meet a threshold of 6 (A14)."""
    root = TrustRoot(
        version=1,
        epoch=1,
        root_keys=tuple(k.public_key for k in KEYS[:7]),
        root_threshold=6,
        publishers=(PUBLISHER,),
    )
    body = encode_trust_root(root)
    envelope = sign_envelope(ROOT_PAYLOAD_TYPE, body, [KEYS[0]] * 9)
    with pytest.raises(ThresholdError, match="has 1"):
        load_trust_root(encode_envelope(envelope))


def test_duplicate_key_entries_rejected() -> None:
    """A root that lists the same key twice is malformed, not a bigger key set (A14)."""
    with pytest.raises(SchemaError, match="listed twice"):
        TrustRoot(
            version=1,
            epoch=1,
            root_keys=(KEYS[0].public_key, KEYS[0].public_key),
            root_threshold=2,
            publishers=(PUBLISHER,),
        )


@pytest.mark.parametrize(
    ("signers", "error"),
    [([], UnsignedError), ([5], UnknownKeyError)],
)
def test_unsigned_or_foreign_root_rejected(signers: list[int], error: type[Exception]) -> None:
    """An embedded root must carry its own root keys' signatures."""
    with pytest.raises(error):
        load_trust_root(_root(1, RootVersion([1], 1, signers)))


def test_tampered_root_rejected() -> None:
    """A root body changed after signing fails verification."""
    envelope = decode_envelope(_root(1, RootVersion([1], 1, [1])))
    tampered = attrs.evolve(envelope, payload=envelope.payload + b" ")
    with pytest.raises(BadSignatureError):
        load_trust_root(encode_envelope(tampered))


def test_root_with_wrong_payload_type_rejected() -> None:
    """A release envelope is not a trust root."""
    envelope = sign_envelope("application/vnd.hotpatch.release+json", b"{}", [KEYS[1]])
    with pytest.raises(PayloadTypeError):
        load_trust_root(encode_envelope(envelope))


def test_root_expiry() -> None:
    """A root past its expiry is refused where it is used."""
    root = attrs.evolve(make_pki().root, expires_at=FIXED_TIME)
    check_root_fresh(root, FIXED_TIME - timedelta(seconds=1))
    with pytest.raises(ExpiredError):
        check_root_fresh(root, FIXED_TIME)


def test_trust_root_round_trip() -> None:
    """A signed root loads back to the same object."""
    pki = make_pki(root_count=3, root_threshold=2)
    assert load_trust_root(pki.root_bytes) == pki.root


def test_unknown_root_format_rejected() -> None:
    """A root from a newer format is refused, not half-understood."""
    body = encode_trust_root(make_pki().root).replace(b'"format":1', b'"format":2')
    envelope = sign_envelope(ROOT_PAYLOAD_TYPE, body, [KEYS[0]])
    with pytest.raises(UnsupportedFormatError):
        load_trust_root(encode_envelope(envelope))
