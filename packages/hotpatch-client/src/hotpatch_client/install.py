"""Installing a verified archive: extract, fsync, re-check, rename into place.

The order is the durable-install protocol of SECURITY.md: every file is
written into a staging directory and fsynced, every directory is fsynced,
every file is read back and checked against its signed hash (A15), and only
then is the staging directory renamed to ``releases/<manifest id>`` and the
parent fsynced. The caller then saves the state that points at it; until
that save, startup recovery treats the directory as an orphan.
"""

from __future__ import annotations

import contextlib
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from typing import BinaryIO, Final

from hotpatch_client.fs import FileSystem
from hotpatch_client.storage import RELEASES, STAGING_PREFIX, release_dir
from hotpatch_core.archive import ArchiveLimits, FileEntry, extract_archive
from hotpatch_core.errors import HashMismatchError
from hotpatch_core.release import VerifiedRelease

__all__ = ["ENVELOPE", "FILES", "LocalTamperingError", "install_release", "verify_installed"]

ENVELOPE: Final = "envelope"
FILES: Final = "files"
_CHUNK: Final = 256 * 1024


class LocalTamperingError(HashMismatchError):
    """A file changed on the device after it was written: not the release's fault."""


class _DirectorySink:
    """Writes extracted files below ``root``; remembers the directories made.

    Each finished file is fsynced and closed by ``flush`` (a background
    worker on a real disk, so the next file is extracted meanwhile);
    :meth:`finish` waits for all of them.
    """

    def __init__(self, fs: FileSystem, root: str, progress: Callable[[int], None]) -> None:
        self.fs = fs
        self.root = root
        self.progress = progress
        self.directories: list[str] = [root]
        self.handle: BinaryIO | None = None
        self.pending: list[Future[None]] = []
        self.pool = ThreadPoolExecutor(1) if fs.concurrent else None

    def begin(self, entry: FileEntry) -> None:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            directory = f"{self.root}/{'/'.join(parts[:depth])}"
            if directory not in self.directories:
                self.fs.mkdir(directory)
                self.directories.append(directory)
        self.handle = self.fs.open_new(f"{self.root}/{entry.path}")

    def write(self, data: bytes) -> None:
        assert self.handle is not None  # noqa: S101 - begin() always comes first
        self.handle.write(data)
        self.progress(len(data))

    def end(self, entry: FileEntry) -> None:  # noqa: ARG002 - protocol signature
        assert self.handle is not None  # noqa: S101 - begin() always comes first
        handle, self.handle = self.handle, None
        if self.pool is None:
            self._sync(handle)
        else:
            self.pending.append(self.pool.submit(self._sync, handle))

    def _sync(self, handle: BinaryIO) -> None:
        try:
            self.fs.fsync(handle)
        finally:
            handle.close()

    def finish(self) -> None:
        """Wait for every fsync; raise the first failure."""
        try:
            for future in self.pending:
                future.result()
        finally:
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # nothing may still write once we clean up
            self.pool = None


def _file_digest(fs: FileSystem, path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with fs.open_read(path) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _check_file(fs: FileSystem, root: str, entry: FileEntry) -> None:
    path = f"{root}/{entry.path}"
    if fs.size(path) != entry.size:
        raise LocalTamperingError(f"{entry.path}: size differs from the signed manifest")
    if _file_digest(fs, path) != (entry.sha256, entry.size):
        raise LocalTamperingError(f"{entry.path}: sha256 differs from the signed manifest")


def verify_installed(fs: FileSystem, root: str, files: tuple[FileEntry, ...]) -> None:
    """Check every file below ``root`` against its signed hash and size.

    On a real disk two threads read and hash (sha256 releases the GIL).
    """
    if not fs.concurrent or len(files) < 2:  # noqa: PLR2004 - one file needs no pool
        for entry in files:
            _check_file(fs, root, entry)
        return
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(_check_file, fs, root, entry) for entry in files]:
            future.result()


def install_release(
    fs: FileSystem,
    release: VerifiedRelease,
    archive: BinaryIO,
    progress: Callable[[str, int, int], None],
) -> str:
    """Install ``release`` from the open, already-hashed ``archive``; return its directory.

    Raises the extractor's errors (:class:`ArchiveError`, :class:`TooLargeError`,
    :class:`HashMismatchError`: the signed content is unusable),
    :class:`LocalTamperingError` (a file changed after it was written) or
    ``OSError``. The staging directory is removed on failure.
    """
    manifest = release.manifest
    staging = f"{RELEASES}/{STAGING_PREFIX}{release.manifest_id}"
    final = release_dir(release.manifest_id)
    total = manifest.archive.uncompressed_size
    written = 0

    def advance(count: int) -> None:
        nonlocal written
        written += count
        progress("install", written, total)

    fs.mkdir(RELEASES)
    fs.rmtree(staging)
    fs.mkdir(staging)
    sink = _DirectorySink(fs, f"{staging}/{FILES}", advance)
    try:
        fs.mkdir(f"{staging}/{FILES}")
        archive.seek(0)
        progress("install", 0, total)
        limits = ArchiveLimits(
            max_files=max(1, manifest.archive.file_count),
            max_total_bytes=max(1, total),
        )
        extract_archive(archive, manifest.files, sink, limits=limits)
        sink.finish()
        handle = fs.open_new(f"{staging}/{ENVELOPE}")
        try:
            handle.write(release.envelope)
            fs.fsync(handle)
        finally:
            handle.close()
        for directory in reversed(sink.directories):
            fs.fsync_dir(directory)
        fs.fsync_dir(staging)
        progress("verify", 0, len(manifest.files))
        verify_installed(fs, f"{staging}/{FILES}", manifest.files)
        progress("verify", len(manifest.files), len(manifest.files))
        fs.rmtree(final)  # an orphan of an earlier crash, never a referenced bundle
        fs.replace(staging, final)
        fs.fsync_dir(RELEASES)
    except BaseException:
        sink.close()
        with contextlib.suppress(OSError):  # startup recovery removes it
            fs.rmtree(staging)
        raise
    return final
