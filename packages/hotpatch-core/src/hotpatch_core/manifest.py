"""The release manifest: the one signed description of a release.

Everything that decides whether, what and where a device installs lives
here, inside the signature (docs/security.md A7): app, platform, channel, the
native binary range, the version label, ``(epoch, sequence)``, the archive's
hash, length, uncompressed size and file count, and every file's path, hash
and size. Fields outside the manifest (rollout percentage, release notes) are
advisory and can never make a device run code no publisher signed for it.

The manifest's id is the sha256 of its exact signed bytes
(:func:`manifest_id`); signatures are never used to identify a release.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

import attrs

from hotpatch_core import strictjson, wire
from hotpatch_core.archive import DEFAULT_LIMITS, FileEntry, check_collisions
from hotpatch_core.errors import (
    HotPatchError,
    SchemaError,
    TooLargeError,
    UnsupportedFormatError,
)
from hotpatch_core.versions import BinaryRange, Version

__all__ = [
    "MANIFEST_FORMAT",
    "MAX_MANIFEST_BYTES",
    "RELEASE_PAYLOAD_TYPE",
    "ArchiveInfo",
    "Platform",
    "ReleaseManifest",
    "decode_manifest",
    "encode_manifest",
    "manifest_id",
]

RELEASE_PAYLOAD_TYPE: Final = "application/vnd.hotpatch.release+json"
MANIFEST_FORMAT: Final = 1
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
MAX_SEQUENCE: Final = strictjson.MAX_INT
_APP_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_CHANNEL: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
_SHA256: Final = re.compile(r"^[0-9a-f]{64}\Z")


class Platform(enum.StrEnum):
    """The platforms a React Native bundle is built for."""

    ANDROID = "android"
    IOS = "ios"

    @property
    def entry_file(self) -> str:
        """The bundle React Native starts, at the root of every release archive."""
        return "index.android.bundle" if self is Platform.ANDROID else "main.jsbundle"


def _in_range(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not low <= value <= high:
            raise SchemaError(f"must be between {low} and {high}", wire.camel(attribute.name))

    return check


@attrs.frozen
class ArchiveInfo:
    """The archive a manifest signs: its sha256, byte length, uncompressed size and file count."""

    sha256: str = attrs.field(validator=wire.matches(_SHA256, "64 lowercase hex digits"))
    length: int = attrs.field(validator=_in_range(22, DEFAULT_LIMITS.max_total_bytes))
    uncompressed_size: int = attrs.field(validator=_in_range(0, DEFAULT_LIMITS.max_total_bytes))
    file_count: int = attrs.field(validator=_in_range(1, DEFAULT_LIMITS.max_files))

    @classmethod
    def of(cls, sha256: str, length: int, files: Sequence[FileEntry]) -> ArchiveInfo:
        """Describe an archive of ``files`` whose bytes hash to ``sha256`` and count ``length``."""
        return cls(sha256, length, sum(f.size for f in files), len(files))


def _semver(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    try:
        Version.parse(value)
    except HotPatchError as exc:
        raise SchemaError(str(exc), "version") from None


def _binary_range(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    try:
        BinaryRange.parse(value)
    except HotPatchError as exc:
        raise SchemaError(str(exc), "binaryRange") from None


def _sha256_or_none(
    _instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not _SHA256.match(value):
        raise SchemaError("must be 64 lowercase hex digits", wire.camel(attribute.name))


def _consistent(instance: ReleaseManifest) -> None:
    paths = [f.path for f in instance.files]
    if paths != sorted(paths):
        raise SchemaError("files must be sorted by path", "files")
    try:
        check_collisions(paths)
    except HotPatchError as exc:
        raise SchemaError(str(exc), "files") from None
    if len(paths) != instance.archive.file_count:
        raise SchemaError(
            f"declares {instance.archive.file_count} files, lists {len(paths)}", "archive.fileCount"
        )
    total = sum(f.size for f in instance.files)
    if total != instance.archive.uncompressed_size:
        raise SchemaError(
            f"declares {instance.archive.uncompressed_size} bytes, files sum to {total}",
            "archive.uncompressedSize",
        )


@attrs.frozen
class ReleaseManifest:
    """What a publisher signs for one release (see the module docstring)."""

    app_id: str = attrs.field(validator=wire.matches(_APP_ID, "an app id like com.acme.shop"))
    platform: Platform
    channel: str = attrs.field(validator=wire.matches(_CHANNEL, "a channel like production"))
    binary_range: str = attrs.field(validator=_binary_range)
    version: str = attrs.field(validator=_semver)
    epoch: int = attrs.field(validator=_in_range(1, MAX_SEQUENCE))
    sequence: int = attrs.field(validator=_in_range(1, MAX_SEQUENCE))
    archive: ArchiveInfo
    files: tuple[FileEntry, ...]
    created_at: datetime
    mandatory: bool = False
    rollback_of: str | None = attrs.field(default=None, validator=_sha256_or_none)
    expires_at: datetime | None = None
    format: int = MANIFEST_FORMAT

    def __attrs_post_init__(self) -> None:
        _consistent(self)

    @property
    def binary(self) -> BinaryRange:
        """The parsed binary-compatibility range."""
        return BinaryRange.parse(self.binary_range)

    @property
    def semver(self) -> Version:
        """The parsed version label."""
        return Version.parse(self.version)


def encode_manifest(manifest: ReleaseManifest) -> bytes:
    """Return the canonical JSON bytes to sign for ``manifest``."""
    return strictjson.canonical(wire.unstructure(manifest))


def decode_manifest(body: bytes) -> ReleaseManifest:
    """Parse manifest bytes strictly. Call only on bytes whose signature verified."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise TooLargeError("manifest bytes", MAX_MANIFEST_BYTES)
    document = strictjson.loads(body)
    if isinstance(document, dict) and document.get("format") != MANIFEST_FORMAT:
        raise UnsupportedFormatError(
            f"manifest format {document.get('format')!r} is not supported "
            f"(expected {MANIFEST_FORMAT})"
        )
    return wire.structure(document, ReleaseManifest)


def manifest_id(body: bytes) -> str:
    """Return a manifest's id: the sha256 (hex) of its exact signed bytes."""
    return hashlib.sha256(body).hexdigest()
