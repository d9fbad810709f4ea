from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.archive import (
    ArchiveInput,
    ArchiveLimits,
    FileEntry,
    MemorySink,
    NullSink,
    check_path,
    declared_entries,
    extract_archive,
    write_archive,
)
from hotpatch_core.errors import (
    ArchiveError,
    ArchiveMismatchError,
    DuplicateEntryError,
    HashMismatchError,
    HotPatchError,
    OverlappingEntriesError,
    TooLargeError,
    UnsafePathError,
    UnsupportedEntryError,
)


class DirectorySink:
    """Writes entries under a root by naively joining paths: safe only if the extractor is."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.handle: io.BufferedWriter | None = None

    def begin(self, entry: FileEntry) -> None:
        target = self.root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        self.handle = target.open("wb")

    def write(self, data: bytes) -> None:
        assert self.handle is not None
        self.handle.write(data)

    def end(self, entry: FileEntry) -> None:
        del entry
        assert self.handle is not None
        self.handle.close()


def _pack(files: dict[str, bytes], level: int = 9) -> tuple[bytes, tuple[FileEntry, ...]]:
    out = io.BytesIO()
    entries = write_archive(
        [ArchiveInput.of_bytes(p, d) for p, d in files.items()], out, compresslevel=level
    )
    return out.getvalue(), entries


def _entries(files: dict[str, bytes]) -> list[FileEntry]:
    return [FileEntry(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in sorted(files.items())]


def _raw_zip(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return out.getvalue()


def test_archive_is_deterministic() -> None:
    """The same files in any order give byte-identical archives."""
    files = {"b.js": b"b" * 1000, "a/x.png": b"\x89PNG", "a/y.json": b"{}"}
    first, entries = _pack(files)
    second, _ = _pack(dict(reversed(list(files.items()))))
    assert first == second
    assert [e.path for e in entries] == ["a/x.png", "a/y.json", "b.js"]
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644


def test_extract_round_trip(tmp_path: Path) -> None:
    """What was packed is extracted byte for byte."""
    files = {"index.android.bundle": b"x" * 100_000, "assets/é.png": b"\x00\x01"}
    data, entries = _pack(files)
    total = extract_archive(io.BytesIO(data), entries, DirectorySink(tmp_path))
    assert total == sum(len(v) for v in files.values())
    for path, content in files.items():
        assert (tmp_path / path).read_bytes() == content


def test_memory_sink_collects_every_verified_file() -> None:
    """MemorySink holds each extracted file by path, exactly as packed."""
    files = {"index.android.bundle": b"x" * 70_000, "a/b.png": b"\x00\x01", "empty": b""}
    data, entries = _pack(files)
    sink = MemorySink()
    extract_archive(io.BytesIO(data), entries, sink)
    assert sink.files == files


def test_extracting_parts_checks_the_whole_archive(tmp_path: Path) -> None:
    """``only`` streams a subset, yet a bad entry outside it still fails the extraction."""
    files = {"a.js": b"a" * 1000, "b.js": b"b" * 10, "c/d.png": b"d"}
    data, entries = _pack(files)
    first = extract_archive(io.BytesIO(data), entries, DirectorySink(tmp_path), only={"a.js"})
    second = extract_archive(
        io.BytesIO(data), entries, DirectorySink(tmp_path), only={"b.js", "c/d.png"}
    )
    assert (first, second) == (1000, 11)
    for path, content in files.items():
        assert (tmp_path / path).read_bytes() == content
    lying = tuple(
        e if e.path != "c/d.png" else FileEntry(e.path, "0" * 64, e.size) for e in entries
    )
    with pytest.raises(ArchiveMismatchError):
        extract_archive(io.BytesIO(data), entries[:2], NullSink(), only={"a.js"})
    with pytest.raises(HashMismatchError):
        extract_archive(io.BytesIO(data), lying, NullSink(), only={"c/d.png"})
    # Hashes are checked as files stream: the parts together must cover every entry.
    assert extract_archive(io.BytesIO(data), lying, NullSink(), only={"a.js"}) == 1000


@pytest.mark.parametrize(
    "name",
    [
        "../evil.js",
        "a/../../evil.js",
        "/etc/passwd",
        "C:/windows/evil.js",
        "a\\..\\evil.js",
        "a/./b",
        "a//b",
        "",
        "nul\x00byte",
        "line\nbreak",
        "x" * 300,
        "/".join(["d"] * 40),
    ],
)
def test_unsafe_paths_rejected(name: str) -> None:
    """Traversal, absolute, drive, backslash, NUL, empty and over-long names are refused."""
    with pytest.raises(UnsafePathError):
        check_path(name)


def test_zip_slip_rejected(tmp_path: Path) -> None:
    """An archive entry named ../x is refused before anything is written."""
    data = _raw_zip([("../evil.js", b"evil"), ("ok.js", b"ok")])
    files = {"../evil.js": b"evil", "ok.js": b"ok"}
    expected = [FileEntry("ok.js", hashlib.sha256(b"ok").hexdigest(), 2)]
    with pytest.raises(UnsafePathError):
        extract_archive(io.BytesIO(data), expected, DirectorySink(tmp_path / "dest"))
    assert not (tmp_path / "evil.js").exists()
    assert not (tmp_path / "dest").exists()
    del files


def _symlink(name: str, target: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


@pytest.mark.parametrize(
    "member",
    [
        _symlink("link", b"/etc/passwd"),
        _symlink("dir/link", b"../../.."),
    ],
)
def test_symlink_entries_rejected(member: tuple[zipfile.ZipInfo, bytes]) -> None:
    """Symlink entries are refused, whatever they point at."""
    data = _raw_zip([member])
    expected = [
        FileEntry(member[0].filename, hashlib.sha256(member[1]).hexdigest(), len(member[1]))
    ]
    with pytest.raises(UnsupportedEntryError, match="symlink"):
        extract_archive(io.BytesIO(data), expected, NullSink())


@pytest.mark.parametrize("mode", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_special_file_entries_rejected(mode: int) -> None:
    """Device, FIFO and socket entries are refused."""
    info = zipfile.ZipInfo("dev")
    info.create_system = 3
    info.external_attr = (mode | 0o644) << 16
    expected = [FileEntry("dev", hashlib.sha256(b"").hexdigest(), 0)]
    with pytest.raises(UnsupportedEntryError):
        extract_archive(io.BytesIO(_raw_zip([(info, b"")])), expected, NullSink())


def test_directory_entries_rejected() -> None:
    """Archives hold files only: a directory entry is refused."""
    expected = _entries({"a.js": b"1"})
    data = _raw_zip([("dir/", b""), ("a.js", b"1")])
    with pytest.raises(UnsupportedEntryError, match="directory"):
        extract_archive(io.BytesIO(data), expected, NullSink())


@pytest.mark.parametrize(
    "names",
    [
        ["a.js", "a.js"],
        ["Readme.md", "README.md"],
        ["caf\u00e9.js", "cafe\u0301.js"],
        ["a", "a/b"],
    ],
)
def test_duplicate_and_colliding_entries_rejected(names: list[str]) -> None:
    """Same names, case-fold and Unicode-normalisation collisions, file-vs-dir clashes (A13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we want
        data = _raw_zip([(n, b"x") for n in names])
    expected = [FileEntry(n, hashlib.sha256(b"x").hexdigest(), 1) for n in sorted(set(names))]
    with pytest.raises(DuplicateEntryError):
        extract_archive(io.BytesIO(data), expected, NullSink())
    with pytest.raises(DuplicateEntryError):
        write_archive([ArchiveInput.of_bytes(n, b"x") for n in names], io.BytesIO())


def test_mismatch_with_manifest_rejected() -> None:
    """Missing files, extra files and wrong declared sizes are refused."""
    data, entries = _pack({"a.js": b"aaa", "b.js": b"bbb"})
    with pytest.raises(ArchiveMismatchError, match="not in the manifest"):
        extract_archive(io.BytesIO(data), entries[:1], NullSink())
    extra = FileEntry("c.js", hashlib.sha256(b"c").hexdigest(), 1)
    with pytest.raises(ArchiveMismatchError, match="not in the archive"):
        extract_archive(io.BytesIO(data), [*entries, extra], NullSink())
    wrong_size = FileEntry("a.js", entries[0].sha256, 2)
    with pytest.raises(ArchiveMismatchError, match="declares"):
        extract_archive(io.BytesIO(data), [wrong_size, entries[1]], NullSink())


def test_swapped_content_detected_by_file_hash() -> None:
    """Content that differs from the signed per-file hash fails, even at equal size (A15)."""
    data, entries = _pack({"a.js": b"good"})
    forged = FileEntry("a.js", hashlib.sha256(b"evil").hexdigest(), 4)
    with pytest.raises(HashMismatchError):
        extract_archive(io.BytesIO(data), [forged], NullSink())
    del entries


def _lying_size_zip(real: bytes, declared: int) -> bytes:
    """A stored entry whose central directory claims ``declared`` bytes."""
    data = bytearray(_raw_zip([("bomb.bin", real)]))
    central = data.rfind(b"PK\x01\x02")
    # Uncompressed size sits at offset 24 of the central header, 22 of the local one.
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")
    data[22:26] = declared.to_bytes(4, "little")
    return bytes(data)


def test_zip_bomb_aborts() -> None:
    """A high-ratio bomb stops at the cap; bytes written never pass the declared size (A2)."""
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.bin", b"\0" * (20 * 1024 * 1024))
    expected = [FileEntry("bomb.bin", hashlib.sha256(b"\0" * 1024).hexdigest(), 1024)]
    with pytest.raises(ArchiveMismatchError, match="declares"):
        extract_archive(io.BytesIO(bomb.getvalue()), expected, NullSink())
    # Sizes lie in the archive itself: the central directory agrees with the
    # manifest, the data is larger. Extraction writes at most the declared size.
    written: list[bytes] = []

    class Counting(NullSink):
        def write(self, data: bytes) -> None:
            written.append(data)

    lying = _lying_size_zip(b"A" * 5000, 1000)
    expected = [FileEntry("bomb.bin", hashlib.sha256(b"A" * 1000).hexdigest(), 1000)]
    with pytest.raises(ArchiveError):
        extract_archive(io.BytesIO(lying), expected, Counting())
    assert sum(map(len, written)) <= 1000


def test_too_many_files_rejected() -> None:
    """More entries than the cap are refused before reading any (A2)."""
    files = {f"f{i}.js": b"x" for i in range(11)}
    data, entries = _pack(files)
    with pytest.raises(TooLargeError):
        extract_archive(io.BytesIO(data), entries, NullSink(), limits=ArchiveLimits(max_files=10))


class _CountingReader(io.BytesIO):
    """Counts the bytes read, to show what an extractor looked at before refusing."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


@pytest.mark.parametrize("zip64", [False, True], ids=["zip", "zip64"])
def test_a_huge_central_directory_is_refused_from_its_end_record(zip64: bool) -> None:
    """A2: the declared entry count is read from the last bytes, before the directory is parsed."""
    files = {f"f{i:04d}.js": b"x" for i in range(3000)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    data = out.getvalue()
    if zip64:  # the same archive as zip64 would write it: 0xFFFF in the classic record
        data = _as_zip64(data, len(files))
    assert declared_entries(io.BytesIO(data)) == len(files)
    reader = _CountingReader(data)
    manifest = _entries(dict(itertools.islice(files.items(), 10)))
    with pytest.raises(TooLargeError) as caught:
        extract_archive(reader, manifest, NullSink(), limits=ArchiveLimits(max_files=100))
    assert "declared" in caught.value.what
    central_directory = 3000 * (46 + len("f0000.js"))
    assert reader.read_bytes < central_directory / 2  # the directory itself was never read


def _as_zip64(data: bytes, count: int) -> bytes:
    """Rewrite the end record to 0xFFFF entries plus a zip64 record and locator with ``count``."""
    at = data.rfind(b"PK\x05\x06")
    eocd = bytearray(data[at:])
    cd_size = int.from_bytes(eocd[12:16], "little")
    cd_offset = int.from_bytes(eocd[16:20], "little")
    zip64_at = at
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1)
    eocd[8:10] = eocd[10:12] = (0xFFFF).to_bytes(2, "little")
    return data[:at] + record + locator + bytes(eocd)


def test_no_end_record_is_left_to_the_parser() -> None:
    """Without an end record the count is unknown (None) and the zip parser refuses it."""
    assert declared_entries(io.BytesIO(b"not a zip at all")) is None
    with pytest.raises(ArchiveError):
        extract_archive(io.BytesIO(b"not a zip at all"), _entries({"a": b"x"}), NullSink())


def test_total_size_cap() -> None:
    """A manifest declaring more than the global cap is refused up front (A2)."""
    data, entries = _pack({"a.js": b"x" * 100})
    with pytest.raises(TooLargeError):
        extract_archive(
            io.BytesIO(data), entries, NullSink(), limits=ArchiveLimits(max_total_bytes=99)
        )


def test_overlapping_entries_rejected() -> None:
    """Two central-directory entries pointing at the same bytes are refused (A2)."""
    data = bytearray(_raw_zip([("a.js", b"same"), ("b.js", b"same")]))
    first = data.find(b"PK\x01\x02")
    second = data.find(b"PK\x01\x02", first + 4)
    # Point the second entry's local header offset (central header + 42) at the first's.
    data[second + 42 : second + 46] = (0).to_bytes(4, "little")
    data[second + 46 : second + 50] = b"a.js"
    expected = _entries({"a.js": b"same"})
    with pytest.raises(DuplicateEntryError):
        extract_archive(io.BytesIO(bytes(data)), expected, NullSink())
    data[second + 46 : second + 50] = b"b.js"
    with pytest.raises(OverlappingEntriesError):
        extract_archive(
            io.BytesIO(bytes(data)), _entries({"a.js": b"same", "b.js": b"same"}), NullSink()
        )


def test_not_a_zip_rejected() -> None:
    """Raw JavaScript where an archive belongs is an ArchiveError."""
    with pytest.raises(ArchiveError):
        extract_archive(io.BytesIO(b"console.log(1)"), _entries({"a.js": b"1"}), NullSink())


def test_non_utf8_flagged_names_rejected() -> None:
    """A non-ASCII name without the UTF-8 flag is ambiguous and refused."""
    data = bytearray(_raw_zip([("caf\u00e9.js", b"x")]))
    # Clear the UTF-8 flag (bit 11) in the central directory and local header.
    central = data.rfind(b"PK\x01\x02")
    for offset in (central + 8, 6):
        flags = int.from_bytes(data[offset : offset + 2], "little") & ~0x800
        data[offset : offset + 2] = flags.to_bytes(2, "little")
    with pytest.raises(UnsafePathError):
        extract_archive(io.BytesIO(bytes(data)), [], NullSink())


segment = st.sampled_from(["a", "b", "..", ".", "", "/", "\\", "C:", "é", "e\u0301", "A", "\x00"])
names = st.lists(segment, min_size=1, max_size=6).map("".join) | st.text(max_size=20)


@given(st.lists(names, min_size=1, max_size=6))
def test_extraction_never_escapes_destination(
    tmp_path_factory: pytest.TempPathFactory, entry_names: list[str]
) -> None:
    """For any entry names, nothing is ever created outside the destination."""
    base = tmp_path_factory.mktemp("extract")
    dest = base / "dest"
    dest.mkdir()
    members = []
    for name in entry_names:
        info = zipfile.ZipInfo(name)
        # writestr mangles some names; write the raw name back afterwards.
        members.append((info, name.encode("utf-8", "surrogatepass")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info, data in members:
            zf.writestr(info, data)
    expected = []
    for name in sorted(set(entry_names)):
        data = name.encode("utf-8", "surrogatepass")
        try:
            expected.append(FileEntry(name, hashlib.sha256(data).hexdigest(), len(data)))
        except HotPatchError:
            continue
    with contextlib.suppress(HotPatchError):
        extract_archive(io.BytesIO(out.getvalue()), expected, DirectorySink(dest))
    outside = [p for p in base.rglob("*") if dest not in (p, *p.parents)]
    assert outside == []


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_hotpatch_errors(data: bytes) -> None:
    """Fed any bytes, the extractor raises only HotPatchError subclasses."""
    with contextlib.suppress(HotPatchError):
        extract_archive(io.BytesIO(data), _entries({"a.js": b"1"}), NullSink())


VALID, VALID_ENTRIES = _pack({"index.bundle": b"var x = 1;" * 40, "a.png": b"\x89PNG" * 10})


@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8))
def test_corrupted_archives_raise_only_hotpatch_errors(flips: list[tuple[int, int]]) -> None:
    """A valid archive with arbitrary bytes changed extracts correctly or raises a HotPatchError."""
    data = bytearray(VALID)
    for offset, value in flips:
        data[offset] = value
    with contextlib.suppress(HotPatchError):
        extract_archive(io.BytesIO(bytes(data)), VALID_ENTRIES, NullSink())


def test_compression_level_is_applied() -> None:
    """Level 0 stores entries; levels 1 and 9 deflate them, and 9 is no larger than 1."""
    text = b"".join(b"var v%d = require('m%d');\n" % (i, i % 97) for i in range(5000))
    stored, _ = _pack({"a.js": text}, level=0)
    fast, _ = _pack({"a.js": text}, level=1)
    best, _ = _pack({"a.js": text}, level=9)
    with zipfile.ZipFile(io.BytesIO(stored)) as zf:
        assert zf.infolist()[0].compress_type == zipfile.ZIP_STORED
    with zipfile.ZipFile(io.BytesIO(best)) as zf:
        assert zf.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    assert len(best) < len(fast) < len(stored)
