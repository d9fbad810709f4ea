from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.envelope import (
    MAX_SIGNATURES,
    check_signatures,
    decode_envelope,
    encode_envelope,
    pae,
    sign_envelope,
)
from hotpatch_core.errors import HotPatchError, MalformedEnvelopeError, TooLargeError
from hotpatch_core.keys import SigningKey

KEY = SigningKey(b"\x07" * 32)


def test_pae_matches_the_dsse_v1_definition() -> None:
    """PAE is 'DSSEv1 <len type> <type> <len body> <body>' with decimal byte lengths."""
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("application/x", "é".encode()) == b"DSSEv1 13 application/x 2 \xc3\xa9"


def test_envelope_round_trip() -> None:
    """Encode -> decode gives back the same envelope."""
    envelope = sign_envelope("application/x", b"body", [KEY])
    assert decode_envelope(encode_envelope(envelope)) == envelope


def test_signature_covers_the_payload_type() -> None:
    """The same body under another payload type no longer verifies."""
    envelope = sign_envelope("application/a", b"body", [KEY])
    moved = sign_envelope("application/b", b"body", [])
    moved = type(moved)("application/b", b"body", envelope.signatures)
    keys = {KEY.key_id: KEY.public_key}
    assert check_signatures(envelope, keys).verified == {KEY.key_id}
    report = check_signatures(moved, keys)
    assert not report.verified
    assert report.bad_known


def test_key_id_hint_is_not_trusted() -> None:
    """A signature with a wrong or missing key id still counts only for the key that made it."""
    envelope = sign_envelope("t", b"body", [KEY])
    relabelled = type(envelope)(
        "t", b"body", tuple(type(s)("", s.sig) for s in envelope.signatures)
    )
    assert check_signatures(relabelled, {KEY.key_id: KEY.public_key}).verified == {KEY.key_id}


@pytest.mark.parametrize(
    "data",
    [
        b"console.log('raw JS instead of an envelope')",
        b"[]",
        b'{"payloadType":"t","payload":"eA=="}',
        b'{"payloadType":1,"payload":"eA==","signatures":[]}',
        b'{"payloadType":"t","payload":"not base64!","signatures":[]}',
        b'{"payloadType":"t","payload":"eA==","signatures":{}}',
        b'{"payloadType":"t","payload":"eA==","signatures":[{"keyid":"a","sig":"!"}]}',
        b'{"payloadType":"t","payload":"eA==","signatures":[5]}',
    ],
)
def test_malformed_envelopes_rejected(data: bytes) -> None:
    """Anything that is not a well-formed envelope raises MalformedEnvelopeError."""
    with pytest.raises(MalformedEnvelopeError):
        decode_envelope(data)


def test_truncated_envelope_rejected() -> None:
    """A cut-off envelope is malformed, at every cut point (A1)."""
    data = encode_envelope(sign_envelope("t", b"body", [KEY]))
    for cut in range(len(data)):
        with pytest.raises(MalformedEnvelopeError):
            decode_envelope(data[:cut])


def test_envelope_caps() -> None:
    """Envelopes over the byte cap or with too many signatures are refused (A2)."""
    with pytest.raises(TooLargeError):
        decode_envelope(b" " * 101, max_bytes=100)
    sig = {"keyid": "k", "sig": base64.b64encode(b"\0" * 64).decode()}
    data = json.dumps(
        {"payloadType": "t", "payload": "", "signatures": [sig] * (MAX_SIGNATURES + 1)}
    ).encode()
    with pytest.raises(TooLargeError):
        decode_envelope(data)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_hotpatch_errors(data: bytes) -> None:
    """Fed any bytes, decode_envelope returns or raises a HotPatchError, nothing else."""
    with contextlib.suppress(HotPatchError):
        decode_envelope(data)
