"""CodePush code signing, made on the publisher's machine.

An app with ``react-native-code-push`` and a ``CodePushPublicKey`` refuses
any update without a valid signature file ``CodePush/.codepushrelease``: an
RS256 JWT whose ``contentHash`` claim is the update's package hash
(``CodePushUpdateUtils.verifyUpdateSignature``). The package hash leaves the
signature file out (:func:`hotpatch_core.codepush.package_hash`), so
``hotpatch release --codepush-signing-key`` computes it over the other
files, signs the claim with the RSA key, and adds the file to the release,
where HotPatch's own signature covers it too. The key stays here; the
server only stores and serves the archive.

Rollbacks and promotions re-publish the same files, signature included, so
they need no CodePush key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hotpatch_cli.errors import UsageError
from hotpatch_core.archive import FileEntry
from hotpatch_core.codepush import SIGNATURE_FILE, package_hash

__all__ = ["SIGNATURE_PATH", "codepush_key_pair", "signature_file"]

#: Where the device looks for the signature in an unpacked update.
SIGNATURE_PATH: Final = f"CodePush/{SIGNATURE_FILE}"
_CHUNK: Final = 256 * 1024


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _entry(path: str, source: Path) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileEntry(path, digest.hexdigest(), size)


def codepush_key_pair(bits: int = 2048) -> tuple[bytes, bytes]:
    """Return a new RSA key pair as (private key PEM, public key PEM), as openssl writes them.

    The public key is SubjectPublicKeyInfo PEM, the form CodePushPublicKey takes.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def signature_file(files: Mapping[str, Path], private_key: Path, now: datetime) -> bytes:
    """Return the ``.codepushrelease`` JWT for a release of ``files``, signed with ``private_key``.

    The claims are those of the CodePush release tool: ``claimVersion``
    ``1.0.0``, ``contentHash`` (the package hash of ``files``) and ``iat``.
    """
    if SIGNATURE_PATH in files:
        raise UsageError(f"the build already holds {SIGNATURE_PATH}; remove it to sign again")
    try:
        key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot read --codepush-signing-key {private_key}: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UsageError(
            "--codepush-signing-key must be an RSA private key (PEM)",
            hint="openssl genrsa -out codepush-private.pem 2048",
        )
    content_hash = package_hash(_entry(path, source) for path, source in files.items())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"claimVersion": "1.0.0", "contentHash": content_hash, "iat": int(now.timestamp())}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}".encode("ascii")
