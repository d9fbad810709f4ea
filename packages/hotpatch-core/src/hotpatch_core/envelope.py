"""DSSE-style signature envelopes over exact bytes.

A signed HotPatch document travels as::

    {"payloadType": "application/vnd.hotpatch.release+json",
     "payload": "<base64 of the exact document bytes>",
     "signatures": [{"keyid": "<sha256 of the public key>", "sig": "<base64>"}]}

Each signature is Ed25519 over ``PAE(payloadType, payload)`` (the DSSE v1
pre-authentication encoding), so the type is signed along with the bytes and
a signature for one document type can never be replayed as another. The
``keyid`` is a hint for which key to try, never a security decision
(docs/security.md A14): what counts is which *distinct* key actually verified.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

import attrs

from hotpatch_core import strictjson
from hotpatch_core.errors import MalformedEnvelopeError, StrictJSONError, TooLargeError
from hotpatch_core.keys import PublicKey, SigningKey

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "MAX_SIGNATURES",
    "Envelope",
    "Signature",
    "SignatureReport",
    "check_signatures",
    "decode_envelope",
    "encode_envelope",
    "pae",
    "sign_envelope",
]

MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
MAX_SIGNATURES = 16


def pae(payload_type: str, body: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of ``payload_type`` and ``body``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


@attrs.frozen
class Signature:
    """One signature in an envelope: a key id hint and 64 signature bytes."""

    keyid: str
    sig: bytes = attrs.field(repr=False)


@attrs.frozen
class Envelope:
    """A payload type, the exact payload bytes, and the signatures over both."""

    payload_type: str
    payload: bytes = attrs.field(repr=False)
    signatures: tuple[Signature, ...]


def sign_envelope(payload_type: str, body: bytes, keys: Iterable[SigningKey]) -> Envelope:
    """Sign ``body`` as ``payload_type`` with every key in ``keys``."""
    message = pae(payload_type, body)
    return Envelope(
        payload_type,
        body,
        tuple(Signature(key.key_id, key.sign(message)) for key in keys),
    )


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode ``envelope`` as canonical JSON bytes."""
    return strictjson.canonical(
        {
            "payloadType": envelope.payload_type,
            "payload": base64.b64encode(envelope.payload).decode("ascii"),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in envelope.signatures
            ],
        }
    )


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedEnvelopeError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedEnvelopeError(f"{what} is not valid base64") from None


def decode_envelope(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """Parse envelope bytes strictly. Verifies nothing: see :func:`check_signatures`."""
    if len(data) > max_bytes:
        raise TooLargeError("envelope bytes", max_bytes)
    try:
        document = strictjson.loads(data)
    except StrictJSONError as exc:
        raise MalformedEnvelopeError(f"envelope is not strict JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedEnvelopeError("envelope must be a JSON object")
    missing = {"payloadType", "payload", "signatures"} - document.keys()
    if missing:
        raise MalformedEnvelopeError(f"envelope lacks {', '.join(sorted(missing))}")
    payload_type = document["payloadType"]
    if not isinstance(payload_type, str):
        raise MalformedEnvelopeError("payloadType must be a string")
    raw_signatures = document["signatures"]
    if not isinstance(raw_signatures, list):
        raise MalformedEnvelopeError("signatures must be a list")
    if len(raw_signatures) > MAX_SIGNATURES:
        raise TooLargeError("number of signatures", MAX_SIGNATURES)
    signatures: list[Signature] = []
    for index, item in enumerate(raw_signatures):
        if not isinstance(item, dict) or not isinstance(item.get("keyid", ""), str):
            raise MalformedEnvelopeError(f"signatures[{index}] must be an object with a keyid")
        signatures.append(Signature(item.get("keyid", ""), _b64(item.get("sig"), "sig")))
    return Envelope(payload_type, _b64(document["payload"], "payload"), tuple(signatures))


@attrs.frozen
class SignatureReport:
    """What the signatures on an envelope proved, for the caller to judge.

    ``verified`` holds the distinct key ids that produced a valid signature;
    ``bad_known`` is true when a signature named a known key but did not
    verify; ``unknown`` is true when a signature matched no known key.
    """

    verified: frozenset[str]
    bad_known: bool
    unknown: bool


def check_signatures(envelope: Envelope, keys: Mapping[str, PublicKey]) -> SignatureReport:
    """Verify every signature on ``envelope`` against ``keys`` (key id -> public key)."""
    message = pae(envelope.payload_type, envelope.payload)
    verified: set[str] = set()
    bad_known = unknown = False
    for signature in envelope.signatures:
        hinted = keys.get(signature.keyid)
        if hinted is not None:
            if hinted.verify(message, signature.sig):
                verified.add(hinted.key_id)
            else:
                bad_known = True
            continue
        # DSSE makes the key id optional: without a usable hint, try each key.
        match = next((k for k in keys.values() if k.verify(message, signature.sig)), None)
        if match is None:
            unknown = True
        else:
            verified.add(match.key_id)
    return SignatureReport(frozenset(verified), bad_known, unknown)
