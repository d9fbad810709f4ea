"""The patch container: per-file operations from one signed release to the next.

Patches are made on the *uncompressed* file contents, never on the zip (a
one-line change moves every compressed byte after it). For each file of the
target release the maker picks whichever is smallest:

- ``KEEP``: a base file with the same SHA-256 (at any path);
- ``ADD``: the content, zstd-compressed;
- ``BSDIFF``: bsdiff's control, diff and extra blocks against a base file,
  each bzip2-compressed (best on Hermes bytecode) or all three as one raw
  LZMA2 stream (best on minified libraries), whichever is smaller; the
  output size comes from the signed manifest, not the payload;
- ``ZSTD``: the content zstd-compressed with a base file as a raw-content
  dictionary (the ``--patch-from`` technique: long-distance matches into
  the old file);
- ``HDIFF``: an HDiffPatch diff against a base file, zstd-compressed (the
  smallest on minified JavaScript);

and records ``DELETE`` for base files the target no longer has. Files are
referred to by their index in the base and target manifests' file lists, so
a patch carries no paths. Layout (integers are unsigned LEB128 varints)::

    b"HPD" + format byte (1)
    4 bytes  base manifest id (its first 4 bytes)
    4 bytes  target manifest id (its first 4 bytes)
    varint   number of operations
    per op:  kind byte, then
             KEEP   target index, base index
             ADD    target index, payload length, payload
             BSDIFF target index, base index, payload length, payload
             ZSTD   target index, base index, payload length, payload
             DELETE base index
             HDIFF  target index, base index, payload length, payload

A patch needs no signature: :func:`apply_patch` caps every output at the
size the signed target manifest declares and checks every produced file
against its signed SHA-256, so anything wrong fails verification. The ids in
the header only make a wrong base fail early and clearly (a collision of
their 4-byte prefixes would still fail, at the signed hashes). Before a
HDiffPatch payload is decoded, the output size its header declares must
equal the signed size; bsdiff payloads carry no size (the signed one is
used) and every block is capped before it is inflated; zstd output is read
to the signed size + 1 byte. No payload can make a decoder allocate more.
"""

from __future__ import annotations

import bz2
import enum
import hashlib
import lzma
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import attrs
import bsdiff4
import bsdiff4.core
import hdiffpatch
import zstandard

from hotpatch_core.archive import ExtractSink, FileEntry
from hotpatch_core.errors import FormatError, HashMismatchError, HotPatchError, TooLargeError

__all__ = [
    "FORMAT",
    "MAGIC",
    "Op",
    "PatchFormatError",
    "PatchSide",
    "PatchStats",
    "WrongBaseError",
    "apply_patch",
    "make_patch",
    "read_header",
]

MAGIC: Final = b"HPD"
FORMAT: Final = 1
_ID_BYTES: Final = 4
_MAX_WINDOW_LOG: Final = 27  # 128 MiB: base + target of one file must fit
_HDIFF_MAGIC: Final = b"HDIFF13&"
#: Files above this size are only KEEP / ADD / ZSTD (bsdiff is quadratic-ish in memory).
_BSDIFF_LIMIT: Final = 64 * 1024 * 1024


class PatchFormatError(FormatError):
    """The bytes are not a patch this code can read."""


class WrongBaseError(HotPatchError):
    """The patch was made from another release than the one installed."""


class Op(enum.IntEnum):
    """The per-file operations."""

    KEEP = 0
    ADD = 1
    BSDIFF = 2
    ZSTD = 3
    DELETE = 4
    HDIFF = 5


@attrs.frozen
class PatchSide:
    """A release seen by the patcher: its manifest id, file list, and a way to read a file."""

    manifest_id: str
    files: tuple[FileEntry, ...]
    read: Callable[[FileEntry], bytes] = attrs.field(repr=False)


@attrs.frozen
class PatchStats:
    """How each target file was encoded (for logs and benchmarks)."""

    ops: dict[str, int]
    size: int


# --- varints ---------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise PatchFormatError("the patch ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise PatchFormatError("a number in the patch is too long")

    def take(self, count: int) -> bytes:
        if count > len(self.data) - self.pos:
            raise PatchFormatError("a payload runs past the end of the patch")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk


# --- making ------------------------------------------------------------------


def _zstd_params(
    base_size: int, target_size: int, level: int
) -> zstandard.ZstdCompressionParameters:
    window = min(_MAX_WINDOW_LOG, max(10, (base_size + target_size).bit_length()))
    return zstandard.ZstdCompressionParameters.from_level(
        level,
        window_log=window,
        enable_ldm=True,
        write_checksum=False,
        write_content_size=False,
        write_dict_id=False,
    )


def _zstd_add(data: bytes, level: int) -> bytes:
    return zstandard.ZstdCompressor(compression_params=_zstd_params(0, len(data), level)).compress(
        data
    )


def _zstd_from(base: bytes, data: bytes, level: int) -> bytes:
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    compressor = zstandard.ZstdCompressor(
        dict_data=dictionary, compression_params=_zstd_params(len(base), len(data), level)
    )
    return compressor.compress(data)


def _pick_base(target: FileEntry, base: PatchSide) -> int | None:
    """Pick the base file to diff against: the same path, else the same name, else none."""
    by_path = {f.path: i for i, f in enumerate(base.files)}
    if target.path in by_path:
        return by_path[target.path]
    name = target.path.rsplit("/", 1)[-1]
    for index, entry in enumerate(base.files):
        if entry.path.rsplit("/", 1)[-1] == name:
            return index
    return None


def make_patch(base: PatchSide, target: PatchSide, *, level: int = 19) -> tuple[bytes, PatchStats]:
    """Encode ``target`` relative to ``base``, choosing the smallest operation per file."""
    by_hash = {f.sha256: i for i, f in enumerate(base.files)}
    ops: list[bytes] = []
    counts = {op.name: 0 for op in Op}
    used: set[int] = set()
    for index, entry in enumerate(target.files):
        if entry.sha256 in by_hash:
            used.add(by_hash[entry.sha256])
            ops.append(bytes([Op.KEEP]) + _varint(index) + _varint(by_hash[entry.sha256]))
            counts[Op.KEEP.name] += 1
            continue
        data = target.read(entry)
        choices: list[tuple[int, Op, int | None, bytes]] = []
        added = _zstd_add(data, level)
        choices.append((len(added), Op.ADD, None, added))
        source_index = _pick_base(entry, base)
        if source_index is not None:
            used.add(source_index)
            source = base.read(base.files[source_index])
            zpatch = _zstd_from(source, data, level)
            choices.append((len(zpatch), Op.ZSTD, source_index, zpatch))
            if max(len(source), len(data)) <= _BSDIFF_LIMIT:
                bpatch = _bsdiff_encode(source, data)
                if bpatch is not None:
                    choices.append((len(bpatch), Op.BSDIFF, source_index, bpatch))
                hpatch = hdiffpatch.diff(source, data, hdiffpatch.COMPRESSION_ZSTD, validate=False)
                choices.append((len(hpatch), Op.HDIFF, source_index, hpatch))
        _, kind, source_index, payload = min(choices, key=lambda c: (c[0], c[1]))
        header = bytes([kind]) + _varint(index)
        if source_index is not None:
            header += _varint(source_index)
        ops.append(header + _varint(len(payload)) + payload)
        counts[kind.name] += 1
    kept = {by_hash[e.sha256] for e in target.files if e.sha256 in by_hash} | used
    target_paths = {e.path for e in target.files}
    for index, entry in enumerate(base.files):
        if entry.path not in target_paths and index not in kept:
            ops.append(bytes([Op.DELETE]) + _varint(index))
            counts[Op.DELETE.name] += 1
    body = (
        MAGIC
        + bytes([FORMAT])
        + bytes.fromhex(base.manifest_id)[:_ID_BYTES]
        + bytes.fromhex(target.manifest_id)[:_ID_BYTES]
        + _varint(len(ops))
        + b"".join(ops)
    )
    return body, PatchStats(counts, len(body))


# --- applying ---------------------------------------------------------------


def read_header(patch: bytes) -> tuple[bytes, bytes]:
    """Return the (base, target) manifest id prefixes a patch names."""
    if len(patch) < len(MAGIC) + 1 + 2 * _ID_BYTES or not patch.startswith(MAGIC):
        raise PatchFormatError("not a HotPatch patch")
    if patch[len(MAGIC)] != FORMAT:
        raise PatchFormatError(f"patch format {patch[len(MAGIC)]} is not supported")
    start = len(MAGIC) + 1
    return patch[start : start + _ID_BYTES], patch[start + _ID_BYTES : start + 2 * _ID_BYTES]


class _BsdiffCodec(enum.IntEnum):
    BZIP2 = 0  # three bzip2 streams: control, diff, extra
    LZMA2 = 1  # one raw LZMA2 stream of control + diff + extra


_LZMA_FILTERS: Final = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


def _control_cap(size: int) -> int:
    """Return the largest bsdiff control block accepted for a file of ``size`` bytes.

    No larger than the file itself, plus one 24-byte triple: a patch of a
    few hundred bytes must not make a device allocate many times the signed
    size (a control block of empty triples inflates 24 bytes per output byte
    otherwise). The maker never emits a larger one.
    """
    return size + 24


def _bsdiff_encodings(source: bytes, data: bytes) -> dict[_BsdiffCodec, bytes]:
    """Run bsdiff once; return its payload in each encoding (no magic, no sizes).

    Empty when bsdiff's control block exceeds :func:`_control_cap` (many tiny
    edits): the applier would refuse it, so another operation is used.
    """
    control, diff, extra = bsdiff4.core.diff(source, data)
    if len(control) > _control_cap(len(data)):
        return {}
    blocks = [bz2.compress(block, 9) for block in (control, diff, extra)]
    as_bzip2 = bytes([_BsdiffCodec.BZIP2]) + _varint(len(blocks[0])) + _varint(len(blocks[1]))
    as_bzip2 += b"".join(blocks)
    packed = lzma.compress(control + diff + extra, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    as_lzma = bytes([_BsdiffCodec.LZMA2]) + _varint(len(control)) + _varint(len(diff)) + packed
    return {_BsdiffCodec.BZIP2: as_bzip2, _BsdiffCodec.LZMA2: as_lzma}


def _bsdiff_encode(source: bytes, data: bytes) -> bytes | None:
    """Run bsdiff; keep the smaller of its two encodings (None when it has none)."""
    return min(_bsdiff_encodings(source, data).values(), key=len, default=None)


def _capped(
    decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor, data: bytes, cap: int
) -> bytes:
    out = decompressor.decompress(data, max_length=cap + 1)
    if len(out) > cap:
        raise TooLargeError("a bsdiff block", cap)
    return out


def _bsdiff_decode(payload: bytes, source: bytes, size: int) -> bytes:
    """Rebuild a file of exactly ``size`` bytes; every block is capped before it is inflated."""
    reader = _Reader(payload)
    codec = reader.byte()
    first, second = reader.varint(), reader.varint()
    control_cap = _control_cap(size)
    if codec == _BsdiffCodec.BZIP2:
        control = _capped(bz2.BZ2Decompressor(), reader.take(first), control_cap)
        diff = _capped(bz2.BZ2Decompressor(), reader.take(second), size)
        extra = _capped(bz2.BZ2Decompressor(), payload[reader.pos :], size)
    elif codec == _BsdiffCodec.LZMA2:
        if first > control_cap or second > size:
            raise TooLargeError("a bsdiff block", size)
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        raw = _capped(decompressor, payload[reader.pos :], first + second + size)
        control, diff, extra = raw[:first], raw[first : first + second], raw[first + second :]
    else:
        raise PatchFormatError("unknown bsdiff encoding")
    if len(control) % 24:
        raise PatchFormatError("a bsdiff control block is not whole triples")
    result: bytes = bsdiff4.core.patch(source, size, control, diff, extra)
    return result


def _hdiff_sizes(payload: bytes) -> tuple[int, int]:
    """Read (new size, old size) from an HDiffPatch header: magic, codec name, NUL, two uints."""
    if not payload.startswith(_HDIFF_MAGIC) or b"\0" not in payload[:64]:
        raise PatchFormatError("an HDiffPatch payload has no valid header")
    position = payload.index(b"\0") + 1
    sizes: list[int] = []
    for _ in range(2):
        value = 0
        for _byte_count in range(10):
            if position >= len(payload):
                raise PatchFormatError("an HDiffPatch header ends early")
            byte = payload[position]
            position += 1
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        else:
            raise PatchFormatError("an HDiffPatch size is too long")
        sizes.append(value)
    return sizes[0], sizes[1]


def _decode(kind: Op, payload: bytes, source: bytes | None, limit: int) -> bytes:
    """Decode one payload, never producing more than ``limit`` + 1 bytes."""
    try:
        if kind is Op.HDIFF:
            assert source is not None  # noqa: S101 - checked by the caller
            new_size, old_size = _hdiff_sizes(payload)
            if new_size != limit or old_size != len(source):
                raise TooLargeError("HDiffPatch output size", limit)
            patched: bytes = hdiffpatch.apply(source, payload)
            return patched
        if kind is Op.BSDIFF:
            assert source is not None  # noqa: S101 - checked by the caller
            return _bsdiff_decode(payload, source, limit)
        dictionary = (
            zstandard.ZstdCompressionDict(source, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
            if kind is Op.ZSTD and source is not None
            else None
        )
        decompressor = zstandard.ZstdDecompressor(
            dict_data=dictionary, max_window_size=1 << _MAX_WINDOW_LOG
        )
        with decompressor.stream_reader(payload) as reader:
            return reader.read(limit + 1)
    except (
        zstandard.ZstdError,
        hdiffpatch.HDiffPatchError,
        lzma.LZMAError,  # damaged LZMA2 bsdiff blocks
        OSError,  # damaged bzip2 bsdiff blocks ("Invalid data stream")
        EOFError,  # a bzip2 or LZMA2 stream that ends early
        ValueError,
        RuntimeError,
        MemoryError,
    ) as exc:
        raise PatchFormatError(f"a {kind.name} payload does not decode: {exc}") from None


def _iter_ops(
    reader: _Reader, base_count: int, target_count: int
) -> Iterator[tuple[Op, int, int | None, bytes]]:
    count = reader.varint()
    if count > base_count + target_count:
        raise PatchFormatError("the patch has more operations than files")
    for _ in range(count):
        try:
            kind = Op(reader.byte())
        except ValueError:
            raise PatchFormatError("unknown operation in the patch") from None
        if kind is Op.DELETE:
            if reader.varint() >= base_count:
                raise PatchFormatError("a DELETE names no base file")
            continue
        target_index = reader.varint()
        if target_index >= target_count:
            raise PatchFormatError("an operation names no target file")
        base_index: int | None = None
        if kind in (Op.KEEP, Op.BSDIFF, Op.ZSTD, Op.HDIFF):
            base_index = reader.varint()
            if base_index >= base_count:
                raise PatchFormatError("an operation names no base file")
        payload = b"" if kind is Op.KEEP else reader.take(reader.varint())
        yield kind, target_index, base_index, payload


def apply_patch(
    patch: bytes,
    base: PatchSide,
    target_id: str,
    target_files: Sequence[FileEntry],
    sink: ExtractSink,
) -> int:
    """Produce every target file from ``base`` and ``patch`` into ``sink``; return bytes written.

    ``target_files`` come from the signed target manifest: each output is
    capped at its declared size and must match its declared SHA-256.
    Raises :class:`PatchFormatError`, :class:`WrongBaseError`,
    :class:`TooLargeError` or :class:`HashMismatchError`; the sink may then
    hold partial output, which the caller discards.
    """
    base_prefix, target_prefix = read_header(patch)
    if base_prefix != bytes.fromhex(base.manifest_id)[:_ID_BYTES]:
        raise WrongBaseError("the patch was made from another release than the installed one")
    if target_prefix != bytes.fromhex(target_id)[:_ID_BYTES]:
        raise WrongBaseError("the patch produces another release than the one offered")
    reader = _Reader(patch)
    reader.pos = len(MAGIC) + 1 + 2 * _ID_BYTES
    produced: dict[int, tuple[Op, int | None, bytes]] = {}
    for kind, target_index, base_index, payload in _iter_ops(
        reader, len(base.files), len(target_files)
    ):
        if target_index in produced:
            raise PatchFormatError("two operations produce the same file")
        produced[target_index] = (kind, base_index, payload)
    if reader.pos != len(patch):
        raise PatchFormatError("bytes follow the last operation")
    if len(produced) != len(target_files):
        raise PatchFormatError("the patch does not produce every file of the release")
    cache: dict[int, bytes] = {}

    def source(index: int) -> bytes:
        if index not in cache:
            entry = base.files[index]
            data = base.read(entry)
            if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                raise WrongBaseError(f"installed {entry.path} differs from its signed hash")
            cache[index] = data
        return cache[index]

    total = 0
    for index, entry in enumerate(target_files):
        kind, base_index, payload = produced[index]
        data = (
            source(base_index)
            if kind is Op.KEEP and base_index is not None
            else _decode(
                kind, payload, source(base_index) if base_index is not None else None, entry.size
            )
        )
        if len(data) > entry.size:
            raise TooLargeError(f"bytes produced for {entry.path}", entry.size)
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise HashMismatchError(f"{entry.path}: the patched file differs from the signed hash")
        sink.begin(entry)
        sink.write(data)
        sink.end(entry)
        total += len(data)
    return total
