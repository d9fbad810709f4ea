from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hotpatch_core.errors import KeyFormatError
from hotpatch_core.keys import PublicKey, SigningKey, key_id

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl binary is not installed")


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *args], input=data, capture_output=True, check=True, timeout=30
    ).stdout


def test_pem_round_trip() -> None:
    """Private and public keys survive PEM encoding unchanged."""
    key = SigningKey.generate()
    assert SigningKey.from_pem(key.to_pem()) == key
    assert PublicKey.from_pem(key.public_key.to_pem()) == key.public_key
    assert PublicKey.from_base64(key.public_key.to_base64()) == key.public_key


def test_key_id_is_sha256_of_raw_public_key() -> None:
    """A key id is computed from the key itself, never taken from a document."""
    key = SigningKey(b"\x01" * 32)
    assert key.key_id == key_id(key.public_key.raw)
    assert len(key.key_id) == 64


def test_signature_verifies_only_for_its_message_and_key() -> None:
    """verify() is true exactly for this key's signature over this message."""
    key, other = SigningKey.generate(), SigningKey.generate()
    sig = key.sign(b"message")
    assert key.public_key.verify(b"message", sig)
    assert not key.public_key.verify(b"messagf", sig)
    assert not other.public_key.verify(b"message", sig)
    assert not key.public_key.verify(b"message", sig[:63])


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        SigningKey(b"\x01" * 32).public_key.to_pem(),  # a public key where a private one belongs
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 5000 + b"\n-----END PRIVATE KEY-----\n",
    ],
)
def test_malformed_private_keys_rejected(pem: bytes) -> None:
    """Anything but an unencrypted Ed25519 PKCS#8 key raises KeyFormatError."""
    with pytest.raises(KeyFormatError):
        SigningKey.from_pem(pem)


def test_wrong_length_keys_rejected() -> None:
    """Raw keys must be exactly 32 bytes."""
    with pytest.raises(KeyFormatError):
        PublicKey(b"\x00" * 31)
    with pytest.raises(KeyFormatError):
        SigningKey(b"\x00" * 33)
    with pytest.raises(KeyFormatError):
        PublicKey.from_base64("not base64!")


@needs_openssl
def test_openssl_reads_our_private_key(tmp_path: Path) -> None:
    """Openssl derives the same public key from our PKCS#8 PEM as we do."""
    key = SigningKey.generate()
    path = tmp_path / "key.pem"
    path.write_bytes(key.to_pem())
    public_pem = _openssl("pkey", "-in", str(path), "-pubout")
    assert PublicKey.from_pem(public_pem) == key.public_key


@needs_openssl
def test_we_read_openssl_genpkey_output(tmp_path: Path) -> None:
    """A key from `openssl genpkey -algorithm ed25519` loads, and its signatures verify here."""
    path = tmp_path / "key.pem"
    _openssl("genpkey", "-algorithm", "ed25519", "-out", str(path))
    key = SigningKey.from_pem(path.read_bytes())
    public = PublicKey.from_pem(_openssl("pkey", "-in", str(path), "-pubout"))
    assert key.public_key == public
    message = tmp_path / "message"
    message.write_bytes(b"signed by openssl")
    signature = _openssl("pkeyutl", "-sign", "-rawin", "-inkey", str(path), "-in", str(message))
    assert public.verify(b"signed by openssl", signature)
    assert signature == key.sign(b"signed by openssl")  # Ed25519 is deterministic
