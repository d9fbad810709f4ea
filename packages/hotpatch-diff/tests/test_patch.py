"""The patch engine: round trips, wrong bases, caps, and hostile bytes.

The fuzz tests at the end flip bits inside real payloads: the fixture app's
two Android bundles (a six-line bug fix in a 1.5 MB Metro bundle) encoded in
each of the container's encodings (zstd on its own, zstd from the old file,
bsdiff in bzip2 and in LZMA2 blocks, HDiffPatch), with Hypothesis choosing
bits past the container header, where a damaged download or a damaged stored
patch would be.
"""

from __future__ import annotations

import functools
import hashlib
import random

import hdiffpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotpatch_core.archive import FileEntry, MemorySink
from hotpatch_core.errors import HashMismatchError, HotPatchError, TooLargeError
from hotpatch_diff import Op, PatchFormatError, PatchSide, WrongBaseError, apply_patch, make_patch
from hotpatch_diff.patch import (
    FORMAT,
    MAGIC,
    _bsdiff_encodings,
    _BsdiffCodec,
    _varint,
    _zstd_add,
    _zstd_from,
)


def side(files: dict[str, bytes], tag: str) -> PatchSide:
    """Describe ``files`` as one release."""
    entries = tuple(FileEntry(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in files.items())
    manifest_id = hashlib.sha256(tag.encode() + repr(sorted(files.items())).encode()).hexdigest()
    return PatchSide(manifest_id, entries, lambda e: files[e.path])


def roundtrip(old: dict[str, bytes], new: dict[str, bytes]) -> tuple[bytes, dict[str, bytes]]:
    """Make a patch from ``old`` to ``new`` and apply it; return it and what it produced."""
    base, target = side(old, "old"), side(new, "new")
    patch, _ = make_patch(base, target, level=3)
    sink = MemorySink()
    apply_patch(patch, base, target.manifest_id, target.files, sink)
    return patch, sink.files


paths = st.sampled_from(["index.android.bundle", "a/b.png", "a/c.png", "x.json", "assets/y"])
contents = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda s, n: s * n, st.binary(min_size=1, max_size=40), st.integers(1, 60)),
)
trees = st.dictionaries(paths, contents, max_size=5)


@given(old=trees, new=trees.filter(bool))
def test_apply_of_make_is_the_target(old: dict[str, bytes], new: dict[str, bytes]) -> None:
    """For arbitrary file trees, apply(make(a, b)) == b."""
    _, produced = roundtrip(old, new)
    assert produced == new


@given(old=trees.filter(bool), other=trees.filter(bool), new=trees.filter(bool))
def test_patching_the_wrong_base_fails(
    old: dict[str, bytes], other: dict[str, bytes], new: dict[str, bytes]
) -> None:
    """A patch applied to another release than its base fails with a typed error."""
    base, target = side(old, "old"), side(new, "new")
    patch, _ = make_patch(base, target, level=3)
    wrong = side(other, "other")
    with pytest.raises(WrongBaseError):
        apply_patch(patch, wrong, target.manifest_id, target.files, MemorySink())


def test_a_modified_base_file_is_a_wrong_base() -> None:
    """A base whose installed file changed is refused before it is used as a source."""
    old = {"index.android.bundle": b"var a = 1;\n" * 100}
    new = {"index.android.bundle": b"var a = 2;\n" * 100}
    base, target = side(old, "old"), side(new, "new")
    patch, _ = make_patch(base, target, level=3)
    tampered = PatchSide(base.manifest_id, base.files, lambda _entry: b"evil" * 10)
    with pytest.raises(WrongBaseError):
        apply_patch(patch, tampered, target.manifest_id, target.files, MemorySink())


@given(new=trees.filter(bool), shrink=st.integers(1, 50))
def test_no_output_exceeds_its_declared_size(new: dict[str, bytes], shrink: int) -> None:
    """If the signed sizes are smaller than what a patch produces, nothing larger is written."""
    base, target = side({}, "old"), side(new, "new")
    patch, _ = make_patch(base, target, level=3)
    lying = tuple(
        FileEntry(e.path, e.sha256, max(0, e.size - shrink)) if e.size else e for e in target.files
    )
    sink = MemorySink()
    if lying == target.files:
        return
    with pytest.raises((TooLargeError, HashMismatchError, PatchFormatError)):
        apply_patch(patch, base, target.manifest_id, lying, sink)
    for entry in lying:
        assert len(sink.files.get(entry.path, b"")) <= entry.size


def test_a_wrong_signed_hash_fails_verification() -> None:
    """The patch carries no signature: the signed target hashes are what is trusted."""
    new = {"index.android.bundle": b"console.log(2)"}
    base, target = side({}, "old"), side(new, "new")
    patch, _ = make_patch(base, target, level=3)
    lying = (FileEntry("index.android.bundle", "0" * 64, len(new["index.android.bundle"])),)
    with pytest.raises(HashMismatchError):
        apply_patch(patch, base, target.manifest_id, lying, MemorySink())


@given(noise=st.binary(max_size=300), cut=st.integers(0, 400))
def test_hostile_bytes_raise_only_typed_errors(noise: bytes, cut: int) -> None:
    """Garbage, truncated and spliced patches raise HotPatchError subclasses, nothing else."""
    old = {"index.android.bundle": b"abc" * 200, "a/b.png": b"png"}
    new = {"index.android.bundle": b"abd" * 200, "x.json": b"{}"}
    base, target = side(old, "old"), side(new, "new")
    patch, _ = make_patch(base, target, level=3)
    for candidate in (noise, MAGIC + noise, patch[:cut], patch[:cut] + noise):
        if candidate == patch:
            continue
        with pytest.raises(HotPatchError):
            apply_patch(candidate, base, target.manifest_id, target.files, MemorySink())


def test_the_smallest_encoding_is_chosen_per_file(rn_builds: dict[str, dict[str, bytes]]) -> None:
    """Unchanged files are kept, changed ones patched, new ones added, removed ones deleted."""
    js = rn_builds["v1"]["index.android.bundle"]
    js2 = rn_builds["v2"]["index.android.bundle"]
    old = {"index.android.bundle": js, "assets/logo.png": b"\x89PNG" * 50, "gone.txt": b"bye"}
    new = {"index.android.bundle": js2, "assets/logo.png": b"\x89PNG" * 50, "new.txt": b"hi"}
    base, target = side(old, "old"), side(new, "new")
    patch, stats = make_patch(base, target)
    assert stats.ops["KEEP"] == 1
    assert stats.ops["ADD"] == 1
    assert stats.ops["ZSTD"] + stats.ops["BSDIFF"] + stats.ops["HDIFF"] == 1
    assert stats.ops["DELETE"] == 1
    assert len(patch) < 400  # a six-line bug fix in a 1.5 MB bundle
    sink = MemorySink()
    apply_patch(patch, base, target.manifest_id, target.files, sink)
    assert sink.files == new
    assert Op.KEEP.value == 0  # the format's first operation code


def test_an_hdiff_payload_declaring_another_size_is_refused_before_decoding() -> None:
    """An HDiffPatch header must declare exactly the signed size."""
    import hdiffpatch  # noqa: PLC0415

    old = {"index.android.bundle": b"var a = 1;\n" * 200}
    new = {"index.android.bundle": b"var a = 2;\n" * 200}
    base, target = side(old, "old"), side(new, "new")
    huge = b"x" * (len(new["index.android.bundle"]) + 1000)
    payload = hdiffpatch.diff(old["index.android.bundle"], huge, hdiffpatch.COMPRESSION_ZSTD)
    patch = patch_header(base, target) + _op(5, payload)
    with pytest.raises(TooLargeError):
        apply_patch(patch, base, target.manifest_id, target.files, MemorySink())


@pytest.mark.parametrize("codec", [0, 1])
def test_a_bsdiff_payload_that_inflates_past_the_signed_size_is_capped(codec: int) -> None:
    """Bsdiff blocks larger than the signed size allows stop at the cap, in both encodings."""
    import bz2  # noqa: PLC0415
    import lzma  # noqa: PLC0415

    from hotpatch_diff.patch import _LZMA_FILTERS, _varint  # noqa: PLC0415

    old = {"index.android.bundle": b"var a = 1;\n" * 20}
    new = {"index.android.bundle": b"var a = 2;\n" * 20}
    base, target = side(old, "old"), side(new, "new")
    bomb = bytes(50_000_000)  # inflates to 50 MB: far past 24 x 221 bytes
    if codec == 0:
        blocks = [bz2.compress(bomb), bz2.compress(b""), bz2.compress(b"")]
        payload = bytes([0]) + _varint(len(blocks[0])) + _varint(len(blocks[1])) + b"".join(blocks)
    else:
        packed = lzma.compress(bomb, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        payload = bytes([1]) + _varint(24) + _varint(0) + packed
    patch = patch_header(base, target) + _op(2, payload)
    with pytest.raises(TooLargeError):
        apply_patch(patch, base, target.manifest_id, target.files, MemorySink())


def _op(kind: int, payload: bytes) -> bytes:
    from hotpatch_diff.patch import _varint  # noqa: PLC0415

    return _varint(1) + bytes([kind]) + _varint(0) + _varint(0) + _varint(len(payload)) + payload


def patch_header(base: PatchSide, target: PatchSide) -> bytes:
    """The container header for ``base`` -> ``target``."""
    return (
        MAGIC
        + b"\x01"
        + bytes.fromhex(base.manifest_id)[:4]
        + bytes.fromhex(target.manifest_id)[:4]
    )


# --- bit flips inside real payloads ----------------------------------------

ENCODINGS = ["ADD", "ZSTD", "BSDIFF-bzip2", "BSDIFF-lzma2", "HDIFF"]
#: What a damaged payload may raise: it does not decode, it decodes too long, or to other bytes.
DAMAGE = (PatchFormatError, TooLargeError, HashMismatchError)


@functools.cache
def _payloads(old: bytes, new: bytes) -> dict[str, tuple[Op, bytes]]:
    bsdiff = _bsdiff_encodings(old, new)
    return {
        "ADD": (Op.ADD, _zstd_add(new, 19)),
        "ZSTD": (Op.ZSTD, _zstd_from(old, new, 19)),
        "BSDIFF-bzip2": (Op.BSDIFF, bsdiff[_BsdiffCodec.BZIP2]),
        "BSDIFF-lzma2": (Op.BSDIFF, bsdiff[_BsdiffCodec.LZMA2]),
        "HDIFF": (Op.HDIFF, hdiffpatch.diff(old, new, hdiffpatch.COMPRESSION_ZSTD)),
    }


def _container(base: PatchSide, target: PatchSide, kind: Op, payload: bytes) -> tuple[bytes, int]:
    """Return a one-file patch and where its payload starts."""
    op = bytes([kind]) + _varint(0) + (b"" if kind is Op.ADD else _varint(0))
    head = (
        MAGIC
        + bytes([FORMAT])
        + bytes.fromhex(base.manifest_id)[:4]
        + bytes.fromhex(target.manifest_id)[:4]
        + _varint(1)
        + op
        + _varint(len(payload))
    )
    return head + payload, len(head)


def _real_patch(
    pair: tuple[bytes, bytes], encoding: str
) -> tuple[PatchSide, PatchSide, bytes, int]:
    """Return base, target, a one-file patch of the real pair in ``encoding``, its payload start."""
    old, new = pair
    base = side({"index.android.bundle": old}, "v1")
    target = side({"index.android.bundle": new}, "v2")
    kind, payload = _payloads(old, new)[encoding]
    patch, start = _container(base, target, kind, payload)
    return base, target, patch, start


@pytest.fixture(scope="module")
def pair(rn_builds: dict[str, dict[str, bytes]]) -> tuple[bytes, bytes]:
    """The fixture app's v1 and v2 Android bundles."""
    return rn_builds["v1"]["index.android.bundle"], rn_builds["v2"]["index.android.bundle"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_of_the_real_pair_round_trips(
    pair: tuple[bytes, bytes], encoding: str
) -> None:
    """Undamaged, each encoding rebuilds v2 byte for byte (so the flips below hit live bytes)."""
    base, target, patch, _ = _real_patch(pair, encoding)
    sink = MemorySink()
    apply_patch(patch, base, target.manifest_id, target.files, sink)
    assert sink.files == {"index.android.bundle": pair[1]}


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(data=st.data())
def test_flipped_bits_inside_a_real_payload_raise_only_typed_errors(
    pair: tuple[bytes, bytes], encoding: str, data: st.DataObject
) -> None:
    """1 to 8 flipped bits anywhere in the payload: a typed error, or exactly the signed file."""
    base, target, patch, start = _real_patch(pair, encoding)
    damaged = bytearray(patch)
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(start, len(patch) - 1), st.integers(0, 7)),
            min_size=1,
            max_size=8,
        ),
        label="flips (offset, bit)",
    )
    for offset, bit in flips:
        damaged[offset] ^= 1 << bit
    sink = MemorySink()
    try:
        apply_patch(bytes(damaged), base, target.manifest_id, target.files, sink)
    except DAMAGE:
        return
    # Flips that cancel out, or land where a decoder ignores them, must still give the signed file.
    assert hashlib.sha256(sink.files["index.android.bundle"]).hexdigest() == target.files[0].sha256


def test_the_damage_set_is_what_a_real_flip_raises(pair: tuple[bytes, bytes]) -> None:
    """Bytes flipped deep in an LZMA2 stream are a decoder error, raised as PatchFormatError."""
    base, target, patch, start = _real_patch(pair, "BSDIFF-lzma2")
    damaged = bytearray(patch)
    middle = start + (len(patch) - start) // 2  # deep inside the LZMA2 stream
    for offset in range(middle, middle + 8):
        damaged[offset] ^= 0xFF
    with pytest.raises(PatchFormatError):
        apply_patch(bytes(damaged), base, target.manifest_id, target.files, MemorySink())


def test_a_bsdiff_control_block_larger_than_the_file_is_refused_before_it_is_inflated() -> None:
    """Attack A9 (patch side): empty control triples cannot make a device allocate 24x the size.

    A control block of zero triples compresses to almost nothing and, under
    the former cap of one triple per output byte, inflated to 24 times the
    signed size. The cap is now the signed size plus one triple.
    """
    import bz2  # noqa: PLC0415

    from hotpatch_diff.patch import _varint  # noqa: PLC0415

    size = 200_000
    old = {"index.android.bundle": bytes(size)}
    new = {"index.android.bundle": b"\1" * size}
    base, target = side(old, "old"), side(new, "new")
    empty_triples = bytes(24 * size)  # within the former cap, 24x the file
    blocks = [bz2.compress(empty_triples), bz2.compress(b""), bz2.compress(b"")]
    payload = bytes([0]) + _varint(len(blocks[0])) + _varint(len(blocks[1])) + b"".join(blocks)
    assert len(payload) < 1_000  # a tiny patch
    patch = patch_header(base, target) + _op(2, payload)
    with pytest.raises(TooLargeError, match="bsdiff block"):
        apply_patch(patch, base, target.manifest_id, target.files, MemorySink())


def _reordered(source: bytes, chunk: int, order: random.Random) -> bytes:
    """``source`` cut into ``chunk``-byte pieces, shuffled: one bsdiff triple per piece."""
    pieces = [source[i : i + chunk] for i in range(0, len(source), chunk)]
    order.shuffle(pieces)
    return b"".join(pieces)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=64, max_size=600), st.integers(9, 40), st.randoms(use_true_random=False))
def test_the_maker_never_emits_a_bsdiff_control_block_the_applier_refuses(
    old: bytes, chunk: int, order: random.Random
) -> None:
    """Shuffled small pieces make bsdiff's control block outgrow the file; patches still apply."""
    new = _reordered(old, chunk, order)
    for payload in _bsdiff_encodings(old, new).values():
        base, target = side({"a.bin": old}, "old"), side({"a.bin": new}, "new")
        sink = MemorySink()
        apply_patch(
            patch_header(base, target) + _op(2, payload),
            base,
            target.manifest_id,
            target.files,
            sink,
        )
        assert sink.files == {"a.bin": new}
    _, produced = roundtrip({"a.bin": old}, {"a.bin": new})
    assert produced == {"a.bin": new}


def test_a_file_whose_bsdiff_control_block_outgrows_it_is_patched_another_way() -> None:
    """The maker drops bsdiff (the applier would refuse it); the patch still rebuilds the file."""
    old = random.Random(7).randbytes(2000)
    new = _reordered(old[:360], 12, random.Random(8))
    assert _bsdiff_encodings(old, new) == {}
    patch, produced = roundtrip({"a.bin": old}, {"a.bin": new})
    assert produced == {"a.bin": new}
    assert len(patch) < len(new)
