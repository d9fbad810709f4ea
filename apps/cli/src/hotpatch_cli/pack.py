"""Packing a build directory into the release archive and describing it in a manifest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Final

import attrs

from hotpatch_cli.errors import UsageError
from hotpatch_core.archive import (
    ArchiveInput,
    FileEntry,
    check_collisions,
    check_path,
    write_archive,
)
from hotpatch_core.errors import HotPatchError
from hotpatch_core.manifest import ArchiveInfo, Platform, ReleaseManifest

__all__ = ["Packed", "collect_files", "pack_directory", "release_manifest"]

_CHUNK: Final = 256 * 1024


@attrs.frozen
class Packed:
    """An archive on disk and what the manifest says about it."""

    path: Path
    info: ArchiveInfo
    files: tuple[FileEntry, ...]


def collect_files(root: Path) -> dict[str, Path]:
    """Every regular file below ``root`` by archive path; symlinks and odd names are refused."""
    if not root.is_dir():
        raise UsageError(
            f"{root} is not a directory", hint="point --bundle-dir at the build output"
        )
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise UsageError(f"{relative} is a symlink; archives hold regular files only")
        if path.is_dir():
            continue
        if not path.is_file():
            raise UsageError(f"{relative} is not a regular file")
        try:
            found[check_path(relative)] = path
        except HotPatchError as exc:
            raise UsageError(f"cannot pack {relative!r}: {exc}") from None
    try:
        check_collisions(found)
    except HotPatchError as exc:
        raise UsageError(f"cannot pack {root}: {exc}") from None
    if not found:
        raise UsageError(f"{root} is empty", hint="did the bundle command write to it?")
    return found


def _reader(path: Path) -> Callable[[], Iterable[bytes]]:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    return chunks


def pack_directory(files: dict[str, Path], out: Path, *, compresslevel: int = 9) -> Packed:
    """Write the deterministic archive of ``files`` to ``out``; hash it."""
    with out.open("wb") as handle:
        entries = write_archive(
            [ArchiveInput(name, _reader(path)) for name, path in files.items()],
            handle,
            compresslevel=compresslevel,
        )
    digest = hashlib.sha256()
    length = 0
    with out.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            length += len(chunk)
    info = ArchiveInfo.of(digest.hexdigest(), length, entries)
    return Packed(out, info, tuple(entries))


def release_manifest(  # noqa: PLR0913 - every signed field, keyword-only
    *,
    app_id: str,
    platform: Platform,
    channel: str,
    binary_range: str,
    version: str,
    epoch: int,
    sequence: int,
    packed: Packed,
    created_at: datetime,
    mandatory: bool,
    expires_at: datetime | None = None,
) -> ReleaseManifest:
    """Describe ``packed`` as a release (validated by the manifest's own rules)."""
    try:
        return ReleaseManifest(
            app_id=app_id,
            platform=platform,
            channel=channel,
            binary_range=binary_range,
            version=version,
            epoch=epoch,
            sequence=sequence,
            archive=packed.info,
            files=packed.files,
            created_at=created_at,
            mandatory=mandatory,
            expires_at=expires_at,
        )
    except (HotPatchError, ValueError, TypeError) as exc:
        raise UsageError(f"invalid release: {exc}") from None
