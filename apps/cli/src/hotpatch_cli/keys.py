"""Signing keys on disk (PKCS#8 PEM, 0600) or in ``HOTPATCH_SIGNING_KEY``, and trust roots."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hotpatch_cli.errors import UsageError
from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import PublicKey, SigningKey
from hotpatch_core.trust import PublisherKey, Scope, TimestampRole, TrustRoot, sign_trust_root
from hotpatch_core.wire import unstructure

__all__ = [
    "build_trust_root",
    "load_public_key",
    "load_signing_key",
    "publisher_snippet",
    "write_private",
]


def write_private(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``data`` to ``path`` with mode 0600; never overwrite unless ``force``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(
            f"{path} exists already", hint="pass --force to replace it, or choose --out"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(0o600)


def load_signing_key(pem_text: str | None, path: Path) -> SigningKey:
    """Load the signing key from PEM text (the environment) or from ``path``."""
    if pem_text:
        source, data = "HOTPATCH_SIGNING_KEY", pem_text.encode()
    else:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(
                f"no signing key at {path}",
                hint="run `hotpatch keys generate`, pass --key, or set HOTPATCH_SIGNING_KEY",
            ) from None
        except OSError as exc:
            raise UsageError(f"cannot read the signing key {path}: {exc}") from None
        source = str(path)
    try:
        return SigningKey.from_pem(data)
    except HotPatchError as exc:
        raise UsageError(f"{source} is not an Ed25519 private key: {exc}") from None


def load_public_key(path: Path) -> PublicKey:
    """Load a public key (SPKI PEM), or the public half of a private key PEM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    try:
        return PublicKey.from_pem(data)
    except HotPatchError:
        pass
    try:
        return SigningKey.from_pem(data).public_key
    except HotPatchError as exc:
        raise UsageError(f"{path} is not an Ed25519 key: {exc}") from None


def publisher_snippet(key: PublicKey, name: str, scope: Scope) -> dict[str, Any]:
    """Return the trust root's ``publishers`` entry for ``key`` (what an app's root lists)."""
    snippet: dict[str, Any] = unstructure(PublisherKey(key, name, scope))
    return snippet


def build_trust_root(  # noqa: PLR0913 - the root's fields, keyword-only
    *,
    root_keys: Sequence[SigningKey],
    threshold: int,
    publishers: Sequence[PublisherKey],
    version: int,
    epoch: int,
    expires_at: datetime | None,
    timestamp: TimestampRole | None = None,
    release_thresholds: Mapping[str, int] | None = None,
) -> tuple[TrustRoot, bytes]:
    """Build a trust root and sign it with ``root_keys``; return it and its envelope bytes."""
    if not root_keys:
        raise UsageError("a trust root needs at least one --root-key")
    if not 1 <= threshold <= len(root_keys):
        raise UsageError(f"--threshold must be between 1 and {len(root_keys)}")
    if not publishers:
        raise UsageError("a trust root needs at least one --publisher key")
    try:
        root = TrustRoot(
            version=version,
            epoch=epoch,
            root_keys=tuple(k.public_key for k in root_keys),
            root_threshold=threshold,
            publishers=tuple(publishers),
            release_thresholds=dict(release_thresholds or {}),
            expires_at=expires_at,
            timestamp=timestamp,
        )
        return root, sign_trust_root(root, root_keys)
    except (HotPatchError, ValueError) as exc:
        raise UsageError(f"invalid trust root: {exc}") from None
