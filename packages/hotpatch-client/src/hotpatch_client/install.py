"""Installing a verified archive: extract, fsync, re-check, rename into place.

The order is the durable-install protocol of docs/security.md: every file is
written into a staging directory, fsynced, and read back against its signed
hash (A15); every directory is fsynced; only then is the staging directory
renamed to ``releases/<manifest id>`` and the parent fsynced. On a real disk
the fsyncs and read-backs of finished files run in background threads while
the next files are extracted, and large archives are extracted by two
threads; nothing is renamed until all of them are done. The caller then
saves the state that points at the new directory; until that save, startup
recovery treats it as an orphan.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Final

from hotpatch_client.fs import FileSystem
from hotpatch_client.storage import RELEASES, STAGING_PREFIX, release_dir
from hotpatch_core.archive import ArchiveLimits, FileEntry, extract_archive
from hotpatch_core.errors import HashMismatchError
from hotpatch_core.release import VerifiedRelease
from hotpatch_diff import PatchSide, apply_patch

__all__ = [
    "ENVELOPE",
    "FILES",
    "LocalTamperingError",
    "digest_of",
    "install_from_patch",
    "install_release",
    "verify_installed",
]

ENVELOPE: Final = "envelope"
FILES: Final = "files"
_CHUNK: Final = 256 * 1024
#: Threads per extraction thread that fsync and re-read finished files.
_SYNC_THREADS: Final = 2
#: Below this much content, a second extraction thread costs more than it saves.
_PARALLEL_BYTES: Final = 1024 * 1024


class LocalTamperingError(HashMismatchError):
    """A file changed on the device after it was written: not the release's fault."""


class _DirectorySink:
    """Writes extracted files below ``root``; remembers the directories made.

    Each finished file is fsynced and closed by ``flush`` (a background
    worker on a real disk, so the next file is extracted meanwhile);
    :meth:`finish` waits for all of them.
    """

    def __init__(
        self,
        fs: FileSystem,
        root: str,
        progress: Callable[[int], None],
        abort: threading.Event | None = None,
    ) -> None:
        self.fs = fs
        self.root = root
        self.progress = progress
        self.abort = abort
        self.directories: list[str] = [root]
        self.handle: BinaryIO | None = None
        self.pending: list[Future[None]] = []
        self.pool = ThreadPoolExecutor(_SYNC_THREADS) if fs.concurrent else None

    def begin(self, entry: FileEntry) -> None:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            directory = f"{self.root}/{'/'.join(parts[:depth])}"
            if directory not in self.directories:
                self.fs.mkdir(directory)  # exists already if the other half made it
                self.directories.append(directory)
        self.handle = self.fs.open_new(f"{self.root}/{entry.path}")

    def write(self, data: bytes) -> None:
        assert self.handle is not None  # noqa: S101 - begin() always comes first
        if self.abort is not None and self.abort.is_set():
            raise _Aborted
        self.handle.write(data)
        self.progress(len(data))

    def end(self, entry: FileEntry) -> None:
        assert self.handle is not None  # noqa: S101 - begin() always comes first
        handle, self.handle = self.handle, None
        if self.pool is None:
            self._settle(handle, entry)
        else:
            self.pending.append(self.pool.submit(self._settle, handle, entry))

    def _settle(self, handle: BinaryIO, entry: FileEntry) -> None:
        """Fsync a finished file, read it back against its signed hash (A15), close it."""
        try:
            self.fs.fsync(handle)
            read_back = digest_of(handle)
        finally:
            handle.close()
        if read_back != (entry.sha256, entry.size):
            raise LocalTamperingError(f"{entry.path}: changed after it was written")

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


def digest_of(handle: BinaryIO) -> tuple[str, int]:
    """Return the SHA-256 (hex) and size of everything in ``handle``, read from its start."""
    handle.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _file_digest(fs: FileSystem, path: str) -> tuple[str, int]:
    with fs.open_read(path) as handle:
        return digest_of(handle)


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
    if not fs.concurrent or len(files) < 2:
        for entry in files:
            _check_file(fs, root, entry)
        return
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(_check_file, fs, root, entry) for entry in files]:
            future.result()


class _Aborted(Exception):  # noqa: N818 - a signal between threads, never surfaced
    """The other half of a parallel extraction failed: stop this one."""


class _PositionalReader(io.RawIOBase):
    """A read-only view of an open descriptor with its own position (``pread``).

    Two threads extract from the very descriptor that was hashed (A15)
    without sharing, and racing on, its file offset.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = os.pread(self._fd, len(buffer), self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos


def _halves(files: tuple[FileEntry, ...]) -> tuple[set[str], set[str]]:
    """Split paths into two groups of similar total size (largest first, greedy)."""
    groups: tuple[set[str], set[str]] = (set(), set())
    sizes = [0, 0]
    for entry in sorted(files, key=lambda e: e.size, reverse=True):
        smaller = 0 if sizes[0] <= sizes[1] else 1
        groups[smaller].add(entry.path)
        sizes[smaller] += entry.size
    return groups


def _extract(
    fs: FileSystem,
    archive: BinaryIO,
    release: VerifiedRelease,
    root: str,
    advance: Callable[[int], None],
) -> set[str]:
    """Extract every file below ``root`` (fsynced); return the directories created.

    On a real disk, large archives are extracted by two threads, each from
    its own positional view of the same descriptor (zlib and sha256 release
    the GIL), while a third and fourth fsync finished files.
    """
    manifest = release.manifest
    limits = ArchiveLimits(
        max_files=max(1, manifest.archive.file_count),
        max_total_bytes=max(1, manifest.archive.uncompressed_size),
    )
    try:
        fd = archive.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = -1
    parallel = (
        fs.concurrent
        and fd >= 0
        and len(manifest.files) > 1
        and manifest.archive.uncompressed_size >= _PARALLEL_BYTES
    )
    if not parallel:
        sink = _DirectorySink(fs, root, advance)
        try:
            archive.seek(0)
            extract_archive(archive, manifest.files, sink, limits=limits)
            sink.finish()
        finally:
            sink.close()
        return set(sink.directories)
    abort = threading.Event()
    sinks = [_DirectorySink(fs, root, advance, abort) for _ in range(2)]

    def part(sink: _DirectorySink, paths: set[str]) -> None:
        try:
            with _PositionalReader(fd) as reader:
                extract_archive(reader, manifest.files, sink, limits=limits, only=paths)  # type: ignore[arg-type]
            sink.finish()
        except BaseException:
            abort.set()
            raise
        finally:
            sink.close()

    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(part, s, p) for s, p in zip(sinks, _halves(manifest.files), strict=True)
        ]
        errors = [f.exception() for f in futures]
    real = [e for e in errors if e is not None and not isinstance(e, _Aborted)]
    if real:
        raise real[0]
    return set(sinks[0].directories) | set(sinks[1].directories)


def _fsync_dirs(fs: FileSystem, directories: list[str]) -> None:
    """Fsync every directory (in parallel on a real disk: the journal batches them)."""
    if not fs.concurrent:
        for directory in sorted(directories, key=lambda d: d.count("/"), reverse=True):
            fs.fsync_dir(directory)
        return
    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(fs.fsync_dir, d) for d in directories]:
            future.result()


def _stage(
    fs: FileSystem,
    release: VerifiedRelease,
    progress: Callable[[str, int, int], None],
    produce: Callable[[str, Callable[[int], None]], set[str]],
) -> str:
    """Run the durable-install protocol around ``produce`` (which writes the files)."""
    manifest = release.manifest
    staging = f"{RELEASES}/{STAGING_PREFIX}{release.manifest_id}"
    final = release_dir(release.manifest_id)
    total = manifest.archive.uncompressed_size
    written = 0
    lock = threading.Lock()

    def advance(count: int) -> None:
        nonlocal written
        with lock:
            written += count
            done = written
        progress("install", done, total)

    fs.mkdir(RELEASES)
    fs.rmtree(staging)
    fs.mkdir(staging)
    try:
        fs.mkdir(f"{staging}/{FILES}")
        progress("install", 0, total)
        directories = produce(f"{staging}/{FILES}", advance)
        handle = fs.open_new(f"{staging}/{ENVELOPE}")
        try:
            handle.write(release.envelope)
            fs.fsync(handle)
        finally:
            handle.close()
        _fsync_dirs(fs, [*directories, staging])
        fs.rmtree(final)  # an orphan of an earlier crash, never a referenced bundle
        fs.replace(staging, final)
        fs.fsync_dir(RELEASES)
    except BaseException:
        with contextlib.suppress(OSError):  # startup recovery removes it
            fs.rmtree(staging)
        raise
    return final


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
    return _stage(
        fs, release, progress, lambda root, advance: _extract(fs, archive, release, root, advance)
    )


def install_from_patch(
    fs: FileSystem,
    release: VerifiedRelease,
    patch: bytes,
    base: PatchSide,
    progress: Callable[[str, int, int], None],
) -> str:
    """Install ``release`` by applying ``patch`` to the installed ``base``; return its directory.

    Every produced file is capped at and checked against the signed manifest
    (:func:`hotpatch_diff.apply_patch`), then fsynced and read back like an
    extracted one. Raises the patch's errors (:class:`PatchFormatError`,
    :class:`WrongBaseError`, :class:`TooLargeError`, :class:`HashMismatchError`)
    or ``OSError``.
    """

    def produce(root: str, advance: Callable[[int], None]) -> set[str]:
        sink = _DirectorySink(fs, root, advance)
        try:
            apply_patch(patch, base, release.manifest_id, release.manifest.files, sink)
            sink.finish()
        finally:
            sink.close()
        return set(sink.directories)

    return _stage(fs, release, progress, produce)
