"""The release archive: a deterministic zip, and the one strict extractor.

Writing: :func:`write_archive` packs files into a zip whose bytes depend only
on the files' paths and contents (sorted entries, fixed timestamps, fixed
permissions, no extra fields), so the same build gives the same sha256 with
the same zlib. The per-file hashes that the manifest signs do not depend on
compression at all.

Reading: :func:`extract_archive` is the single extractor the server and the
device share. It reads the caller's open file (the very bytes that were
hashed, docs/security.md A15), checks the whole central directory before emitting
a byte, and then streams each file to a caller-supplied :class:`ExtractSink`
while counting and hashing what it writes. It *rejects*, never "sanitises":

- names that are empty, absolute, contain ``..``/``.`` segments, backslashes,
  NUL or control characters, drive letters (``:``), or exceed the length and
  depth caps; non-ASCII names without the zip UTF-8 flag;
- duplicate names, and names that collide after Unicode NFC normalisation
  and case-folding (they would overwrite each other on macOS / Windows
  file systems), including a file that is also another file's directory;
- symlinks, hardlinks, devices, FIFOs and directories (the zip
  ``external_attr``), encrypted entries, codecs other than stored/deflate;
- entries that overlap in the archive (the shape of the best-known zip bombs);
- any difference from the manifest's file list: a missing or extra file, or a
  declared size that differs; more bytes written than declared (it stops at
  the cap + 1 byte) or a file whose sha256 differs from the signed one.

Core stays sans-I/O: it never opens a path. Callers pass open binary files
and decide where bytes go through the sink.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, BinaryIO, Final, Protocol, cast

import attrs

from hotpatch_core.errors import (
    ArchiveError,
    ArchiveMismatchError,
    DuplicateEntryError,
    HashMismatchError,
    OverlappingEntriesError,
    TooLargeError,
    UnsafePathError,
    UnsupportedEntryError,
)

__all__ = [
    "ArchiveInput",
    "ArchiveLimits",
    "ExtractSink",
    "FileEntry",
    "MemorySink",
    "NullSink",
    "check_collisions",
    "check_path",
    "collision_key",
    "declared_entries",
    "extract_archive",
    "write_archive",
]

_CHUNK: Final = 64 * 1024
_FIXED_TIME: Final = (1980, 1, 1, 0, 0, 0)
_FILE_MODE: Final = 0o100644
_UNIX: Final = 3
_UTF8_FLAG: Final = 0x800
_ENCRYPTED_FLAG: Final = 0x1
_LOCAL_HEADER: Final = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC: Final = b"PK\x03\x04"
_FORBIDDEN_CHARS: Final = re.compile(r"[\x00-\x1f\x7f\\:]")
_SHA256: Final = re.compile(r"^[0-9a-f]{64}\Z")


@attrs.frozen
class ArchiveLimits:
    """Caps the extractor enforces on top of the signed manifest's own sizes."""

    max_files: int = 10_000
    max_total_bytes: int = 1024 * 1024 * 1024
    max_path_bytes: int = 1024
    max_component_bytes: int = 255
    max_depth: int = 32


DEFAULT_LIMITS: Final = ArchiveLimits()


def check_path(path: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> str:
    """Return ``path`` if it is a safe relative file path, else raise :class:`UnsafePathError`."""
    if not path:
        raise UnsafePathError("empty entry name")
    encoded = path.encode("utf-8", errors="surrogatepass")
    if len(encoded) > limits.max_path_bytes:
        raise UnsafePathError(f"entry name longer than {limits.max_path_bytes} bytes")
    if _FORBIDDEN_CHARS.search(path):
        raise UnsafePathError(
            f"entry name {path[:80]!r} contains a backslash, colon, NUL or control character"
        )
    if path.startswith("/"):
        raise UnsafePathError(f"absolute entry name {path[:80]!r}")
    parts = path.split("/")
    if len(parts) > limits.max_depth:
        raise UnsafePathError(f"entry name deeper than {limits.max_depth} levels")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePathError(f"entry name {path[:80]!r} has an empty, '.' or '..' segment")
        if len(part.encode("utf-8", errors="surrogatepass")) > limits.max_component_bytes:
            raise UnsafePathError(f"a segment of {path[:80]!r} is over-long")
    try:
        encoded.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafePathError("entry name is not valid UTF-8") from None
    return path


def collision_key(path: str) -> str:
    """Return the key under which two names would land on one file on some file system."""
    return unicodedata.normalize("NFC", path).casefold()


@attrs.frozen
class FileEntry:
    """One file of a release: its relative path, sha256 (hex) and size in bytes."""

    path: str
    sha256: str
    size: int

    def __attrs_post_init__(self) -> None:
        check_path(self.path)
        if not _SHA256.match(self.sha256):
            raise ArchiveError(f"{self.path}: sha256 must be 64 lowercase hex digits")
        if not 0 <= self.size <= DEFAULT_LIMITS.max_total_bytes:
            raise TooLargeError(f"size of {self.path}", DEFAULT_LIMITS.max_total_bytes)


@attrs.frozen
class ArchiveInput:
    """A file to pack: its archive path and a function that yields its bytes."""

    path: str
    chunks: Callable[[], Iterable[bytes]]

    @classmethod
    def of_bytes(cls, path: str, data: bytes) -> ArchiveInput:
        """Describe a file whose whole content is already in memory."""
        return cls(path, lambda: (data,))


def check_collisions(paths: Iterable[str]) -> None:
    """Raise :class:`DuplicateEntryError` if two paths would land on the same file."""
    seen: dict[str, str] = {}
    parents: set[str] = set()
    for path in paths:
        key = collision_key(path)
        if key in seen:
            if seen[key] == path:
                raise DuplicateEntryError(f"duplicate entry {path[:80]!r}")
            raise DuplicateEntryError(
                f"entries {seen[key][:80]!r} and {path[:80]!r} collide on case-insensitive "
                "or normalising file systems"
            )
        seen[key] = path
        segments = key.split("/")
        parents.update("/".join(segments[:i]) for i in range(1, len(segments)))
    clash = parents & seen.keys()
    if clash:
        name = seen[min(clash)]
        raise DuplicateEntryError(f"entry {name[:80]!r} is both a file and a directory")


def write_archive(
    files: Iterable[ArchiveInput], out: BinaryIO, *, compresslevel: int = 9
) -> tuple[FileEntry, ...]:
    """Pack ``files`` into ``out`` as a deterministic zip; return their entries, sorted.

    ``compresslevel`` 0 stores files uncompressed (useful for golden vectors,
    which must not depend on the zlib build); 1-9 deflate them.
    """
    ordered = sorted(files, key=lambda f: f.path)
    for item in ordered:
        check_path(item.path)
    check_collisions(item.path for item in ordered)
    method = zipfile.ZIP_STORED if compresslevel == 0 else zipfile.ZIP_DEFLATED
    entries: list[FileEntry] = []
    with zipfile.ZipFile(out, "w", compression=method, compresslevel=compresslevel or None) as zf:
        for item in ordered:
            info = zipfile.ZipInfo(item.path, date_time=_FIXED_TIME)
            info.create_system = _UNIX
            info.external_attr = _FILE_MODE << 16
            info.compress_type = method
            # ZipFile.open(info, "w") takes the level from the ZipInfo, not the
            # ZipFile; the attribute is public only from Python 3.13.
            level = compresslevel if method == zipfile.ZIP_DEFLATED else None
            cast("Any", info)._compresslevel = level  # noqa: SLF001 - see above
            digest = hashlib.sha256()
            size = 0
            with zf.open(info, "w") as target:
                for chunk in item.chunks():
                    digest.update(chunk)
                    size += len(chunk)
                    target.write(chunk)
            entries.append(FileEntry(item.path, digest.hexdigest(), size))
    return tuple(entries)


class ExtractSink(Protocol):
    """Where the extractor sends verified-as-it-goes file contents."""

    def begin(self, entry: FileEntry) -> None:
        """Start receiving ``entry``'s bytes."""

    def write(self, data: bytes) -> None:
        """Receive the next chunk of the current entry."""

    def end(self, entry: FileEntry) -> None:
        """Finish the current entry: its sha256 and size matched."""


class NullSink:
    """A sink that discards bytes: extraction then only validates (the server's use)."""

    def begin(self, entry: FileEntry) -> None:
        """Discard."""

    def write(self, data: bytes) -> None:
        """Discard."""

    def end(self, entry: FileEntry) -> None:
        """Discard."""


class MemorySink:
    """A sink that keeps every file in memory, by path (for small bundles: patching, tests)."""

    def __init__(self) -> None:
        """Start empty."""
        self.files: dict[str, bytes] = {}
        self._path = ""
        self._chunks: list[bytes] = []

    def begin(self, entry: FileEntry) -> None:
        """Start collecting ``entry``."""
        self._path, self._chunks = entry.path, []

    def write(self, data: bytes) -> None:
        """Keep a chunk."""
        self._chunks.append(data)

    def end(self, entry: FileEntry) -> None:
        """Store the whole file."""
        self.files[entry.path] = b"".join(self._chunks)
        self._chunks = []


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str:
    name = info.orig_filename
    if name.endswith("/") or (info.external_attr & 0x10):
        raise UnsupportedEntryError(f"directory entry {name[:80]!r}: archives hold files only")
    check_path(name, limits)
    if not name.isascii() and not info.flag_bits & _UTF8_FLAG:
        raise UnsafePathError(f"non-ASCII entry name {name[:80]!r} without the UTF-8 flag")
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise UnsupportedEntryError(f"encrypted entry {name[:80]!r}")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UnsupportedEntryError(
            f"entry {name[:80]!r} uses compression method {info.compress_type}"
        )
    if info.create_system == _UNIX:
        mode = info.external_attr >> 16
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            kind = "symlink" if stat.S_ISLNK(mode) else "special file"
            raise UnsupportedEntryError(f"entry {name[:80]!r} is a {kind}")
    return name


_EOCD: Final = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR: Final = struct.Struct("<4sLQL")
_ZIP64_EOCD: Final = struct.Struct("<4sQ2H2L4Q")


def declared_entries(fileobj: BinaryIO) -> int | None:
    """Return the entry count the end-of-central-directory record declares, or None.

    Read from the archive's last bytes only, so a central directory of
    hundreds of thousands of entries is refused before it is parsed (zipfile
    builds an object per entry). None when no record is found: the zip parser
    then reports the damage.
    """
    end = fileobj.seek(0, 2)
    tail_start = max(0, end - _EOCD.size - 0xFFFF)
    fileobj.seek(tail_start)
    tail = fileobj.read(end - tail_start)
    at = tail.rfind(b"PK\x05\x06")
    while at >= 0 and at + _EOCD.size + _comment_length(tail, at) != len(tail):
        at = tail.rfind(b"PK\x05\x06", 0, at)
    if at < 0:
        return None
    _, _, _, on_disk, total, _, _, _ = _EOCD.unpack_from(tail, at)
    count = max(on_disk, total)
    if count != 0xFFFF or at < _ZIP64_LOCATOR.size:
        return int(count)
    signature, _, record, _ = _ZIP64_LOCATOR.unpack_from(tail, at - _ZIP64_LOCATOR.size)
    if signature != b"PK\x06\x07" or not 0 <= record <= end - _ZIP64_EOCD.size:
        return None
    fileobj.seek(record)
    fields = _ZIP64_EOCD.unpack(fileobj.read(_ZIP64_EOCD.size))
    return int(max(fields[6], fields[7])) if fields[0] == b"PK\x06\x06" else None


def _comment_length(tail: bytes, at: int) -> int:
    return int.from_bytes(tail[at + 20 : at + 22], "little") if at + 22 <= len(tail) else -1


def _check_layout(fileobj: BinaryIO, infos: Sequence[zipfile.ZipInfo], start_dir: int) -> None:
    """Reject entries whose bytes overlap each other or the central directory."""
    spans: list[tuple[int, int, str]] = []
    for info in infos:
        if not 0 <= info.header_offset < start_dir:
            raise ArchiveError(f"entry {info.orig_filename[:80]!r} points outside the archive")
        fileobj.seek(info.header_offset)
        header = fileobj.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
            raise ArchiveError(f"entry {info.orig_filename[:80]!r} has no local header")
        fields = _LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[9], fields[10]
        end = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        end += info.compress_size
        spans.append((info.header_offset, end, info.orig_filename))
    spans.sort()
    for (_, end, name), (start, _, other) in itertools.pairwise(spans):
        if end > start:
            raise OverlappingEntriesError(f"entries {name[:80]!r} and {other[:80]!r} overlap")
    if spans and spans[-1][1] > start_dir:
        raise OverlappingEntriesError("an entry overlaps the central directory")


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, entry: FileEntry, sink: ExtractSink) -> int:
    digest = hashlib.sha256()
    written = 0
    sink.begin(entry)
    with zf.open(info) as source:
        while True:
            # Ask for one byte past the cap so a lying size is caught, not truncated.
            chunk = source.read(min(_CHUNK, entry.size + 1 - written))
            if not chunk:
                break
            written += len(chunk)
            if written > entry.size:
                raise TooLargeError(f"bytes written for {entry.path}", entry.size)
            digest.update(chunk)
            sink.write(chunk)
    if written != entry.size:
        raise HashMismatchError(f"{entry.path}: {written} bytes, manifest says {entry.size}")
    if digest.hexdigest() != entry.sha256:
        raise HashMismatchError(f"{entry.path}: sha256 differs from the signed manifest")
    sink.end(entry)
    return written


def _check_declared(fileobj: BinaryIO, expected: Sequence[FileEntry], limits: ArchiveLimits) -> int:
    """Refuse what the manifest or the end record declares beyond the caps; return the total."""
    if len(expected) > limits.max_files:
        raise TooLargeError("number of files", limits.max_files)
    declared_total = sum(e.size for e in expected)
    if declared_total > limits.max_total_bytes:
        raise TooLargeError("total uncompressed size", limits.max_total_bytes)
    entries = declared_entries(fileobj)
    fileobj.seek(0)
    if entries is not None and entries > limits.max_files:
        raise TooLargeError("number of archive entries (declared)", limits.max_files)
    return declared_total


def extract_archive(
    fileobj: BinaryIO,
    expected: Sequence[FileEntry],
    sink: ExtractSink,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    only: Collection[str] | None = None,
) -> int:
    """Check the archive in ``fileobj`` against ``expected`` and stream its files to ``sink``.

    Returns the total number of bytes written. Raises an :class:`ArchiveError`,
    :class:`TooLargeError` or :class:`HashMismatchError`; the sink may then
    hold partial output, which the caller discards.

    ``only`` streams just those paths, after checking the *whole* archive
    exactly as without it: a caller may extract disjoint parts of one archive
    in parallel, each through its own file object over the same bytes.
    """
    declared_total = _check_declared(fileobj, expected, limits)
    try:
        with zipfile.ZipFile(fileobj) as zf:
            infos = zf.infolist()
            if len(infos) > limits.max_files:
                raise TooLargeError("number of archive entries", limits.max_files)
            names = [_check_entry(info, limits) for info in infos]
            check_collisions(names)
            by_path = {e.path: e for e in expected}
            extra = [n for n in names if n not in by_path]
            if extra:
                raise ArchiveMismatchError(f"entry {extra[0][:80]!r} is not in the manifest")
            missing = sorted(by_path.keys() - set(names))
            if missing:
                raise ArchiveMismatchError(
                    f"manifest file {missing[0][:80]!r} is not in the archive"
                )
            for info in infos:
                if info.file_size != by_path[info.orig_filename].size:
                    raise ArchiveMismatchError(
                        f"entry {info.orig_filename[:80]!r} declares {info.file_size} bytes, "
                        f"manifest says {by_path[info.orig_filename].size}"
                    )
            _check_layout(fileobj, infos, zf.start_dir)
            total = 0
            for info in infos:
                if only is not None and info.orig_filename not in only:
                    continue
                total += _stream(zf, info, by_path[info.orig_filename], sink)
                if total > declared_total:
                    raise TooLargeError("total bytes written", declared_total)
            return total
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError) as exc:
        # ValueError: zipfile's reaction to some impossible offsets and sizes.
        raise ArchiveError(f"not a valid zip archive: {exc}") from None
    except NotImplementedError as exc:
        raise UnsupportedEntryError(f"unsupported zip feature: {exc}") from None
