"""Ed25519 keys: generation, key ids, and PEM / base64 encodings.

Private keys are read and written as PKCS#8 PEM (``-----BEGIN PRIVATE
KEY-----``), the form ``openssl genpkey -algorithm ed25519`` writes and
reads; public keys as SubjectPublicKeyInfo PEM or as raw base64 (the form
trust roots embed). The DER for Ed25519 has a fixed shape (RFC 8410), so it
is parsed here exactly, without a general ASN.1 library.

A key id is ``sha256(raw public key)`` in hex, always computed locally: an id
written in a document is only ever a hint (docs/security.md A14).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

import attrs
import nacl.exceptions
import nacl.signing

from hotpatch_core.errors import KeyFormatError

__all__ = ["PublicKey", "SigningKey", "key_id"]

# RFC 8410: AlgorithmIdentifier for Ed25519 (OID 1.3.101.112), no parameters.
_ED25519_ALGORITHM = bytes.fromhex("300506032b6570")
_SPKI_PREFIX = bytes.fromhex("302a") + _ED25519_ALGORITHM + bytes.fromhex("032100")
_PKCS8_PREFIX = bytes.fromhex("302e020100") + _ED25519_ALGORITHM + bytes.fromhex("04220420")
# OneAsymmetricKey v2 (RFC 5958) also carries the public key after the seed.
_PKCS8_V2_PREFIX = bytes.fromhex("3051020101") + _ED25519_ALGORITHM + bytes.fromhex("04220420")
_PKCS8_V2_PUBLIC = bytes.fromhex("812100")  # [1] IMPLICIT BIT STRING, 33 bytes
_PEM = re.compile(
    rb"-----BEGIN (?P<label>[A-Z ]+)-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END (?P=label)-----"
)
_MAX_PEM = 4096


def key_id(raw_public_key: bytes) -> str:
    """Return the key id of a raw 32-byte Ed25519 public key: its sha256 in hex."""
    return hashlib.sha256(raw_public_key).hexdigest()


def _pem_body(data: bytes | str, label: str) -> bytes:
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else data
    if len(raw) > _MAX_PEM:
        raise KeyFormatError("PEM text longer than 4 KiB")
    match = _PEM.search(raw)
    if match is None:
        raise KeyFormatError(f"no '-----BEGIN {label}-----' block found")
    found = match["label"].decode("ascii")
    if found != label:
        if found == "ENCRYPTED PRIVATE KEY":
            raise KeyFormatError(
                "encrypted private keys are not supported; decrypt it first "
                "(openssl pkey -in KEY -out PLAIN)"
            )
        raise KeyFormatError(f"expected a {label} PEM block, found {found}")
    try:
        return base64.b64decode(b"".join(match["body"].split()), validate=True)
    except binascii.Error as exc:
        raise KeyFormatError(f"PEM body is not base64: {exc}") from None


def _pem(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


@attrs.frozen
class PublicKey:
    """An Ed25519 public key (32 raw bytes) that can verify signatures."""

    raw: bytes = attrs.field(repr=False)

    @raw.validator
    def _check(self, _attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if len(value) != 32:
            raise KeyFormatError(f"an Ed25519 public key is 32 bytes, not {len(value)}")

    @property
    def key_id(self) -> str:
        """The key's id: sha256 of the raw key, in hex."""
        return key_id(self.raw)

    @classmethod
    def from_base64(cls, text: str) -> PublicKey:
        """Read a key from standard base64 of its 32 raw bytes."""
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise KeyFormatError("public key is not valid base64") from None
        return cls(raw)

    def to_base64(self) -> str:
        """Return standard base64 of the 32 raw bytes."""
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def from_pem(cls, data: bytes | str) -> PublicKey:
        """Read a ``-----BEGIN PUBLIC KEY-----`` (SubjectPublicKeyInfo) block."""
        der = _pem_body(data, "PUBLIC KEY")
        if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
            raise KeyFormatError("PUBLIC KEY is not an Ed25519 SubjectPublicKeyInfo")
        return cls(der[len(_SPKI_PREFIX) :])

    def to_pem(self) -> bytes:
        """Return the key as a ``-----BEGIN PUBLIC KEY-----`` block."""
        return _pem("PUBLIC KEY", _SPKI_PREFIX + self.raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is this key's Ed25519 signature over ``message``."""
        if len(signature) != 64:
            return False
        try:
            nacl.signing.VerifyKey(self.raw).verify(message, signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


@attrs.frozen
class SigningKey:
    """An Ed25519 private key. Never sent to, or stored on, the server."""

    seed: bytes = attrs.field(repr=False)

    @seed.validator
    def _check(self, _attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if len(value) != 32:
            raise KeyFormatError(f"an Ed25519 private key seed is 32 bytes, not {len(value)}")

    @classmethod
    def generate(cls) -> SigningKey:
        """Create a new key from the operating system's secure random source."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(bytes(nacl.signing.SigningKey(self.seed).verify_key))

    @property
    def key_id(self) -> str:
        """The id of the matching public key."""
        return self.public_key.key_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature over ``message``."""
        return nacl.signing.SigningKey(self.seed).sign(message).signature

    @classmethod
    def from_pem(cls, data: bytes | str) -> SigningKey:
        """Read an unencrypted PKCS#8 ``-----BEGIN PRIVATE KEY-----`` block (v1 or v2)."""
        der = _pem_body(data, "PRIVATE KEY")
        if len(der) == len(_PKCS8_PREFIX) + 32 and der.startswith(_PKCS8_PREFIX):
            return cls(der[len(_PKCS8_PREFIX) :])
        v2_length = len(_PKCS8_V2_PREFIX) + 32 + len(_PKCS8_V2_PUBLIC) + 32
        if len(der) == v2_length and der.startswith(_PKCS8_V2_PREFIX):
            seed = der[len(_PKCS8_V2_PREFIX) : len(_PKCS8_V2_PREFIX) + 32]
            tail = der[len(_PKCS8_V2_PREFIX) + 32 :]
            key = cls(seed)
            if tail[: len(_PKCS8_V2_PUBLIC)] != _PKCS8_V2_PUBLIC or (
                tail[len(_PKCS8_V2_PUBLIC) :] != key.public_key.raw
            ):
                raise KeyFormatError("PRIVATE KEY embeds a public key that does not match it")
            return key
        raise KeyFormatError("PRIVATE KEY is not an unencrypted Ed25519 PKCS#8 key")

    def to_pem(self) -> bytes:
        """Return the key as an unencrypted PKCS#8 ``-----BEGIN PRIVATE KEY-----`` block."""
        return _pem("PRIVATE KEY", _PKCS8_PREFIX + self.seed)
