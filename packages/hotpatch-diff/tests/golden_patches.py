"""Golden patch vectors for native SDKs, committed as docs/spec/vectors/patches.json.

Each case is a base release, a target release (the files its signed
manifest lists) and a patch, with what applying it must give: the target's
files, or the error the reference raises (its class name, as every SDK
names it). The container is assembled here operation by operation, so every
operation and both bsdiff encodings appear whichever one ``make_patch``
would pick; one case is ``make_patch``'s own choice. ``test_golden_patches``
checks the committed file against :func:`hotpatch_diff.apply_patch`, so a
change to the format fails there first. Run after a deliberate change:

    python packages/hotpatch-diff/tests/golden_patches.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

import hdiffpatch

from hotpatch_core.archive import FileEntry
from hotpatch_diff import Op, PatchSide, embedded_id, make_patch
from hotpatch_diff.patch import (
    FORMAT,
    MAGIC,
    _bsdiff_encodings,
    _BsdiffCodec,
    _varint,
    _zstd_add,
    _zstd_from,
)

OUT = Path(__file__).resolve().parents[3] / "docs" / "spec" / "vectors" / "patches.json"
BASE_ID = hashlib.sha256(b"golden patch base").hexdigest()
TARGET_ID = hashlib.sha256(b"golden patch target").hexdigest()


def _bundle(seed: int, lines: int) -> bytes:
    """Minified-JavaScript-like text, the same for the same seed."""
    rng = random.Random(seed)
    names = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 6)))
        for _ in range(60)
    ]
    out = []
    for i in range(lines):
        a, b, c = rng.choice(names), rng.choice(names), rng.choice(names)
        out.append(
            f"__d(function(g,r,i,a,m,e,d){{var {a}=r(d[{i % 7}]);"
            f"{b}.{c}({a},{i});}},{i},[{i % 5}]);"
        )
    return "\n".join(out).encode() + b"\n"


def _edited(data: bytes, seed: int) -> bytes:
    """``data`` with a few lines changed and one inserted, as a small bug fix does."""
    rng = random.Random(seed)
    lines = data.split(b"\n")
    for _ in range(4):
        at = rng.randrange(len(lines) - 1)
        lines[at] = lines[at].replace(b"var ", b"let ", 1) + b"/*fix*/"
    lines.insert(len(lines) // 2, b"__d(function(){console.log('added in 1.0.1')},999,[]);")
    return b"\n".join(lines)


BASE = {
    "index.android.bundle": _bundle(1, 120),
    "assets/logo.png": bytes(range(256)) * 2,
    "assets/old.txt": b"removed in the target\n",
}
TARGET = {
    "index.android.bundle": _edited(BASE["index.android.bundle"], 2),
    "assets/logo.png": BASE["assets/logo.png"],
    "assets/new.txt": b"new in the target: " + bytes(range(32, 127)) + b"\n",
}


def _entries(files: dict[str, bytes]) -> list[FileEntry]:
    return [FileEntry(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in files.items()]


def _container(
    ops: list[bytes], base_id: str = BASE_ID, target_id: str = TARGET_ID, fmt: int = FORMAT
) -> bytes:
    header = MAGIC + bytes([fmt]) + bytes.fromhex(base_id)[:4] + bytes.fromhex(target_id)[:4]
    return header + _varint(len(ops)) + b"".join(ops)


def _op(kind: Op, target: int, base: int | None, payload: bytes | None = None) -> bytes:
    out = bytes([kind]) + _varint(target)
    if base is not None:
        out += _varint(base)
    if payload is not None:
        out += _varint(len(payload)) + payload
    return out


def _with_bundle_op(bundle_op: bytes) -> list[bytes]:
    """The target built with ``bundle_op`` for the bundle and the same ops for the rest."""
    return [
        bundle_op,
        _op(Op.KEEP, 1, 1),
        _op(Op.ADD, 2, None, _zstd_add(TARGET["assets/new.txt"], 19)),
        bytes([Op.DELETE]) + _varint(2),
    ]


def _cases() -> list[dict[str, object]]:
    old, new = BASE["index.android.bundle"], TARGET["index.android.bundle"]
    encodings = _bsdiff_encodings(old, new)
    hdiff = hdiffpatch.diff(old, new, hdiffpatch.COMPRESSION_ZSTD, validate=False)
    by_op = {
        "add": _op(Op.ADD, 0, None, _zstd_add(new, 19)),
        "zstd-from-base": _op(Op.ZSTD, 0, 0, _zstd_from(old, new, 19)),
        "bsdiff-bzip2": _op(Op.BSDIFF, 0, 0, encodings[_BsdiffCodec.BZIP2]),
        "bsdiff-lzma2": _op(Op.BSDIFF, 0, 0, encodings[_BsdiffCodec.LZMA2]),
        "hdiffpatch-zstd": _op(Op.HDIFF, 0, 0, hdiff),
    }
    cases: list[dict[str, object]] = [
        {"name": name, "patch": _container(_with_bundle_op(op))} for name, op in by_op.items()
    ]
    base_side = PatchSide(BASE_ID, tuple(_entries(BASE)), lambda e: BASE[e.path])
    target_side = PatchSide(TARGET_ID, tuple(_entries(TARGET)), lambda e: TARGET[e.path])
    cases.append({"name": "make-patch-choice", "patch": make_patch(base_side, target_side)[0]})
    good = _container(_with_bundle_op(by_op["hdiffpatch-zstd"]))
    lying_hdiff = bytearray(hdiff)
    size_at = (
        lying_hdiff.index(b"\0") + 1
    )  # the first size: the new file's, one varint byte per 7 bits
    lying_hdiff[size_at + 1] ^= 0x01
    bad: list[tuple[str, bytes, str]] = [
        ("not-a-patch", b"PK\x03\x04" + good[4:], "PatchFormatError"),
        ("format-2", _container(_with_bundle_op(by_op["add"]), fmt=2), "PatchFormatError"),
        ("header-only", good[:11], "PatchFormatError"),
        (
            "wrong-base",
            _container(_with_bundle_op(by_op["add"]), base_id=TARGET_ID),
            "WrongBaseError",
        ),
        (
            "wrong-target",
            _container(_with_bundle_op(by_op["add"]), target_id=BASE_ID),
            "WrongBaseError",
        ),
        ("truncated", good[:-3], "PatchFormatError"),
        ("trailing-bytes", good + b"\0", "PatchFormatError"),
        ("missing-file", _container(_with_bundle_op(by_op["add"])[:2]), "PatchFormatError"),
        (
            "file-twice",
            _container([*_with_bundle_op(by_op["add"]), _op(Op.KEEP, 1, 1)]),
            "PatchFormatError",
        ),
        (
            "unknown-op",
            _container([*_with_bundle_op(by_op["add"])[:3], bytes([9]) + _varint(2)]),
            "PatchFormatError",
        ),
        ("target-index-out-of-range", _container([_op(Op.KEEP, 7, 1)]), "PatchFormatError"),
        ("base-index-out-of-range", _container([_op(Op.KEEP, 0, 9)]), "PatchFormatError"),
        ("delete-out-of-range", _container([bytes([Op.DELETE]) + _varint(5)]), "PatchFormatError"),
        (
            "keep-other-content",
            _container(_with_bundle_op(_op(Op.KEEP, 0, 1))),
            "HashMismatchError",
        ),
        (
            "add-other-content",
            _container(_with_bundle_op(_op(Op.ADD, 0, None, _zstd_add(old, 19)))),
            "HashMismatchError",
        ),
        (
            "add-longer-than-signed",
            _container(_with_bundle_op(_op(Op.ADD, 0, None, _zstd_add(new + b"//", 19)))),
            "TooLargeError",
        ),
        (
            "add-not-zstd",
            _container(_with_bundle_op(_op(Op.ADD, 0, None, b"\x28\xb5\x2f\xfd junk"))),
            "PatchFormatError",
        ),
        (
            "hdiff-size-not-signed",
            _container(_with_bundle_op(_op(Op.HDIFF, 0, 0, bytes(lying_hdiff)))),
            "TooLargeError",
        ),
        (
            "hdiff-damaged",
            _container(_with_bundle_op(_op(Op.HDIFF, 0, 0, hdiff[:-8] + bytes(8)))),
            "PatchFormatError",
        ),
        (
            "bsdiff-control-over-cap",
            _container(
                _with_bundle_op(
                    _op(
                        Op.BSDIFF,
                        0,
                        0,
                        bytes([_BsdiffCodec.LZMA2]) + _varint(len(new) + 48) + _varint(0) + b"\0",
                    )
                )
            ),
            "TooLargeError",
        ),
        (
            "bsdiff-unknown-encoding",
            _container(
                _with_bundle_op(
                    _op(Op.BSDIFF, 0, 0, bytes([7]) + encodings[_BsdiffCodec.BZIP2][1:])
                )
            ),
            "PatchFormatError",
        ),
        (
            "bsdiff-bzip2-damaged",
            _container(
                _with_bundle_op(
                    _op(Op.BSDIFF, 0, 0, encodings[_BsdiffCodec.BZIP2][:-20] + bytes(20))
                )
            ),
            "PatchFormatError",
        ),
    ]
    cases += [{"name": name, "patch": patch, "error": error} for name, patch, error in bad]
    return cases


def generate() -> bytes:
    """Return the vector file's bytes."""

    def files(side: dict[str, bytes]) -> list[dict[str, object]]:
        return [
            {
                "path": e.path,
                "sha256": e.sha256,
                "size": e.size,
                "data": base64.b64encode(side[e.path]).decode(),
            }
            for e in _entries(side)
        ]

    encode: Callable[[dict[str, object]], dict[str, object]] = lambda case: {  # noqa: E731
        **case,
        "patch": base64.b64encode(case["patch"]).decode(),  # type: ignore[arg-type]
    }
    embedded = [
        {
            "appId": "com.example.app",
            "platform": "android",
            "nativeVersion": "1.4.0",
            "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in _entries(BASE)],
            "id": embedded_id("com.example.app", "android", "1.4.0", _entries(BASE)),
        }
    ]
    document = {
        "description": "HotPatch patch container (hotpatch_diff.patch), format 1: apply each "
        "patch to base; expect the target's files, or the named error. Generated by "
        "packages/hotpatch-diff/tests/golden_patches.py.",
        "baseManifestId": BASE_ID,
        "targetManifestId": TARGET_ID,
        "base": files(BASE),
        "target": files(TARGET),
        "cases": [encode(c) for c in _cases()],
        "embeddedIds": embedded,
    }
    return json.dumps(document, indent=1).encode() + b"\n"


def main() -> int:
    """Write the vector file; print its path and size."""
    data = generate()
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(data)} bytes)")  # noqa: T201 - a command-line script
    return 0


if __name__ == "__main__":
    sys.exit(main())
