"""Golden vectors for native SDKs: generated here, committed in docs/spec/vectors/.

Run ``python packages/hotpatch-core/tests/golden.py`` (or ``nox -s vectors``)
after a deliberate format change; ``test_golden.py`` fails whenever the code
and the committed vectors disagree.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import stat
import struct
import sys
import unicodedata
import warnings
import zipfile
from pathlib import Path

from hotpatch_core import strictjson
from hotpatch_core.archive import (
    ArchiveInput,
    FileEntry,
    NullSink,
    check_collisions,
    check_path,
    extract_archive,
    write_archive,
)
from hotpatch_core.cohort import bucket
from hotpatch_core.envelope import decode_envelope, pae
from hotpatch_core.errors import HotPatchError, VersionSyntaxError
from hotpatch_core.head import due_offers, sign_head
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import decode_manifest, encode_manifest, manifest_id
from hotpatch_core.release import sign_release
from hotpatch_core.testing import FIXED_TIME, build_release, head_listing, make_pki
from hotpatch_core.versions import BinaryRange, Version
from hotpatch_core.wire import format_time, parse_time

VECTORS = Path(__file__).resolve().parents[3] / "docs" / "spec" / "vectors"
FILES = {
    "index.android.bundle": b"__d(function(){console.log('hotpatch golden vector')});\n",
    "assets/drawable-mdpi/logo.png": bytes(range(64)),
}


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"


#: Native versions as apps report them, and ranges as publishers write them.
NATIVE_VERSIONS = (
    "1", "1.2", "1.2.3", "0.0.1", "1.2.3-rc.1", "1.2.3-rc.10", "1.2.3-rc.2", "1.2.3-alpha",
    "1.2.3+42", "2.0.0", "9007199254740991.0.0", "01.2", "1.2.3.4", "1..2", "v1.2.3", "",
    "1.2.3-01", "9007199254740992.0.0", "1.2.3-", "1.2.3\n", "0.0.3", "0.0.4", "0.2.3", "0.2.9",
    "0.3.0", "1.3.0", "1.4.7", "1.5.0", "2.9.9", "3.0.0",
)  # fmt: skip
RANGES = (
    "*", "1.2.3", "=1.2.3", "1.2.x", "1.2", "1.x", "^1.2.0", "^0.2.3", "^0.0.3", "~1.2", "~1",
    ">=1.2 <2", ">= 1.2 < 2", "1.2 - 1.4", "1.x || >=3", ">1.2", ">1", "<=1.2", "<1.2.3",
    ">=1.2.3-rc.1", "x.x.x", "<*", "", "1.2 -", "||", ">=1.2 || ", "1.2.3.4", "^",
    # Whitespace is Python's str.isspace(), Unicode's and the C0 separators alike.
    ">=1.2\u00a0<2", "1.x\u3000||\u2003>=3", "\u0085", ">=1.2\x1c<1.4", "1.2.3\u200b",
    "~>1.2", "v1.2.x", "0001.2.3", "^0.0", "<=1.x", "1.2.3+build.7", "1.2.\u0663",
)  # fmt: skip


def _versions() -> dict[str, object]:
    """Native version parsing, ordering, and range membership (every SDK must agree)."""
    parsed: list[dict[str, object]] = []
    valid: list[Version] = []
    for text in NATIVE_VERSIONS:
        try:
            version = Version.parse_native(text)
        except VersionSyntaxError:
            parsed.append({"text": text, "valid": False})
            continue
        valid.append(version)
        parsed.append({"text": text, "valid": True, "normalized": str(version)})
    order = [str(v) for v in sorted(valid)]
    ranges: list[dict[str, object]] = []
    for text in RANGES:
        try:
            binary = BinaryRange.parse(text)
        except VersionSyntaxError:
            ranges.append({"range": text, "valid": False})
            continue
        ranges.append(
            {
                "range": text,
                "valid": True,
                "contains": [str(v) for v in valid if binary.contains(v)],
                "above": [str(v) for v in valid if binary.above(v)],
            }
        )
    return {"nativeVersions": parsed, "ascending": order, "ranges": ranges}


#: Times as signed documents carry them (RFC 3339, UTC, whole seconds), valid or not.
TIMES = (
    "2026-11-29T10:00:00Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "2024-02-29T12:00:00Z", "2100-02-28T00:00:00Z", "1969-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z", "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-12-31T24:00:00Z",
    "2026-12-31T23:60:00Z", "2026-12-31T23:59:60Z", "2026-11-29T10:00:00+00:00",
    "2026-11-29T10:00:00.5Z", "2026-11-29 10:00:00Z", "2026-11-29T10:00:00z",
    "2026-11-29T10:00:00Z\n",
    "+2026-11-29T10:00:00Z", "2026-11-29T10:00:0Z", "\u0662026-11-29T10:00:00Z", "",
)  # fmt: skip


def _times() -> list[dict[str, object]]:
    """Each time text, and the instant it names in seconds since 1970 (null: refused)."""
    cases: list[dict[str, object]] = []
    for text in TIMES:
        try:
            moment = parse_time(text)
        except HotPatchError:
            cases.append({"text": text, "epochSeconds": None})
        else:
            cases.append({"text": text, "epochSeconds": int(moment.timestamp())})
    return cases


#: Archive path lists and what the strict rules say of them (one file each, or a whole list).
PATH_CASES: tuple[tuple[str, ...], ...] = (
    ("index.android.bundle",), ("assets/a/b.png",), ("",), ("/etc/passwd",), ("a//b",),
    ("a/./b",), ("../x",), ("a/..",), ("a\\b",), ("c:x",), ("a\x00b",), ("a\x1fb",),
    ("a\x7fb",), ("a\nb",), ("x" * 255,), ("x" * 256,), ("é" * 127,), ("é" * 128,),
    ("/".join(["d"] * 32),), ("/".join(["d"] * 33),), ("/".join(["x" * 200] * 5) + "/y" * 11,),
    ("a\u00a0b",), ("😀.png",),
    ("a", "b"), ("a", "a"), ("a", "A"), ("straße", "STRASSE"), ("\u017f", "s"), ("K", "\u212a"),
    ("é", "e\u0301"), ("\u00c5", "\u212b"), ("\u0130", "i\u0307"), ("ς", "Σ"), ("ᏸ", "Ᏸ"),
    ("ǅ", "ǆ"), ("ﬀ", "FF"), ("\u0149", "\u02bcN"), ("a", "a/b"), ("A/b", "a"), ("x/y/z", "X/Y"),
    ("dir/f", "DIR/g"), ("ß", "ẞ"), ("Ⅻ", "ⅻ"), ("𐐀", "𐐨"), ("\u0131", "i"), ("ǰ", "J\u030c"),
)  # fmt: skip


def _paths() -> list[dict[str, object]]:
    """Each path list, and the error the strict archive rules raise for it (null: accepted)."""
    cases: list[dict[str, object]] = []
    for paths in PATH_CASES:
        try:
            for path in paths:
                check_path(path)
            check_collisions(paths)
        except HotPatchError as exc:
            cases.append({"paths": list(paths), "error": type(exc).__name__})
        else:
            cases.append({"paths": list(paths), "error": None})
    return cases


def _casefold() -> dict[str, object]:
    """Full Unicode case folding as Python's ``str.casefold`` does it (collision keys use it)."""
    folds = {}
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        folded = chr(code).casefold()
        if folded != chr(code):
            folds[f"{code:04X}"] = " ".join(f"{ord(c):04X}" for c in folded)
    return {"unicodeVersion": unicodedata.unidata_version, "folds": folds}


def _manifest_cases(body: bytes) -> list[dict[str, object]]:
    """Manifest bodies that break one rule each, and the error decoding raises (null: accepted)."""
    good = json.loads(body)
    edits: list[tuple[str, object]] = [
        ("format", 2), ("format", None), ("format", "1"), ("appId", "-bad"), ("appId", 7),
        ("platform", "windows"), ("channel", "Prod"), ("binaryRange", "1.2.3.4"),
        ("version", "1.2"), ("epoch", 0), ("epoch", True), ("sequence", -1),
        ("sequence", 9223372036854775807), ("createdAt", "2026-11-29T12:00:00+00:00"),
        ("createdAt", "2026-02-30T12:00:00Z"), ("mandatory", 1), ("mandatory", None),
        ("rollbackOf", "AB" * 32), ("rollbackOf", "ab" * 32), ("expiresAt", "2027-01-01T00:00:00Z"),
        ("expiresAt", None), ("archive", None), ("archive.sha256", "0" * 63),
        ("archive.length", 21), ("archive.uncompressedSize", 1), ("archive.fileCount", 3),
        ("archive.fileCount", 0), ("files", []), ("files", "x"), ("files.0.path", "../x"),
        ("files.0.path", "INDEX.ANDROID.BUNDLE"), ("files.0.path", "zz"),
        ("files.1.sha256", "g" * 64), ("files.1.size", -1), ("files.1.size", 1.5),
        ("extra", "tolerated"), ("files.0.extra", 1),
    ]  # fmt: skip
    removed = ("appId", "createdAt", "files", "archive.length", "files.0.size", "mandatory")
    cases: list[dict[str, object]] = []
    for name, value in [*edits, *((n, _REMOVE) for n in removed)]:
        document = json.loads(body)
        *parents, last = name.split(".")
        target = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is _REMOVE:
            del target[int(last) if isinstance(target, list) else last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        case: dict[str, object] = {"change": name, "body": text}
        try:
            decode_manifest(text.encode())
        except HotPatchError as exc:
            case["error"] = type(exc).__name__
        else:
            case["error"] = None
        cases.append(case)
    assert good == json.loads(body)
    return cases


_REMOVE = object()


def _zip(
    members: list[tuple[zipfile.ZipInfo | str, bytes]], method: int = zipfile.ZIP_DEFLATED
) -> bytearray:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are wanted here
        with zipfile.ZipFile(out, "w", method) as zf:
            for member, data in members:
                # A ZipInfo with a fixed time: a bare name would stamp today's date.
                info = _info(member) if isinstance(member, str) else member
                info.compress_type = method
                zf.writestr(info, data)
    return bytearray(out.getvalue())


def _info(name: str, mode: int | None = None, attr: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    if mode is not None:
        info.create_system = 3
        info.external_attr = mode << 16
    info.external_attr |= attr
    return info


def _patch(data: bytearray, signature: bytes, offset: int, value: bytes, nth: int = 0) -> bytearray:
    """Overwrite ``value`` at ``offset`` of the ``nth`` record starting with ``signature``."""
    at = -1
    for _ in range(nth + 1):
        at = data.find(signature, at + 1)
    data[at + offset : at + offset + len(value)] = value
    return data


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def _archive_cases() -> list[tuple[str, bytes, dict[str, bytes]]]:
    """Hostile and odd archives, each with the files its manifest would list."""
    two = {"a.js": b"console.log('a');\n" * 40, "b/c.png": bytes(range(256))}
    good = bytearray()
    out = io.BytesIO()
    write_archive([ArchiveInput.of_bytes(p, d) for p, d in two.items()], out)
    good += out.getvalue()
    cases: list[tuple[str, bytes, dict[str, bytes]]] = [
        ("deflated", bytes(good), two),
        ("stored", bytes(_zip([*two.items()], zipfile.ZIP_STORED)), two),
        ("empty file", bytes(_zip([("e", b"")])), {"e": b""}),
        ("prepended bytes", b"#!/bin/sh\nexit 0\n" + bytes(_zip([("a", b"x")])), {"a": b"x"}),
        ("comment", bytes(_zip([("a", b"x")])[:-2] + _u16(5)) + b"hello", {"a": b"x"}),
        ("not a zip", b"console.log(1)", {"a": b"1"}),
        ("truncated", bytes(good[: len(good) // 2]), two),
        ("zip slip", bytes(_zip([("../evil.js", b"e")])), {"../evil.js": b"e"}),
        ("absolute", bytes(_zip([("/etc/x", b"e")])), {"etc/x": b"e"}),
        ("backslash", bytes(_zip([("a\\b", b"e")])), {"a\\b": b"e"}),
        (
            "symlink",
            bytes(_zip([(_info("l", stat.S_IFLNK | 0o777), b"/etc/passwd")])),
            {"l": b"/etc/passwd"},
        ),
        ("fifo", bytes(_zip([(_info("f", stat.S_IFIFO | 0o644), b"")])), {"f": b""}),
        ("regular mode", bytes(_zip([(_info("r", stat.S_IFREG | 0o755), b"r")])), {"r": b"r"}),
        ("directory", bytes(_zip([("d/", b""), ("a", b"1")])), {"a": b"1"}),
        ("dos directory attribute", bytes(_zip([(_info("d", attr=0x10), b"")])), {"d": b""}),
        ("duplicate", bytes(_zip([("a", b"x"), ("a", b"x")])), {"a": b"x"}),
        ("case collision", bytes(_zip([("A", b"x"), ("a", b"x")])), {"A": b"x", "a": b"x"}),
        ("file and directory", bytes(_zip([("a", b"x"), ("a/b", b"x")])), {"a": b"x", "a/b": b"x"}),
        ("extra file", bytes(good), {"a.js": two["a.js"]}),
        ("missing file", bytes(good), {**two, "z": b"z"}),
        ("wrong size", bytes(good), {**two, "a.js": two["a.js"] + b"!"}),
        ("swapped content", bytes(good), {**two, "b/c.png": bytes(reversed(range(256)))}),
        ("bomb", bytes(_zip([("bomb", b"\0" * (4 * 1024 * 1024))])), {"bomb": b"\0" * 1024}),
        (
            "encrypted flag",
            bytes(_patch(_zip([("a", b"x")]), b"PK\x01\x02", 8, _u16(0x1))),
            {"a": b"x"},
        ),
        (
            "patched data flag",
            bytes(
                _patch(
                    _patch(_zip([("a", b"x")]), b"PK\x01\x02", 8, _u16(0x20)),
                    b"PK\x03\x04",
                    6,
                    _u16(0x20),
                )
            ),
            {"a": b"x"},
        ),
        (
            "bzip2 method",
            bytes(_patch(_zip([("a", b"x")]), b"PK\x01\x02", 10, _u16(12))),
            {"a": b"x"},
        ),
        (
            "version 6.4 needed",
            bytes(_patch(_zip([("a", b"x")]), b"PK\x01\x02", 6, bytes([64]))),
            {"a": b"x"},
        ),
        ("bad crc", bytes(_patch(_zip([("a", b"x")]), b"PK\x01\x02", 16, _u32(0))), {"a": b"x"}),
        ("names differ", bytes(_patch(_zip([("a", b"x")]), b"PK\x03\x04", 30, b"b")), {"a": b"x"}),
        (
            "bad local magic",
            bytes(_patch(_zip([("a", b"x")]), b"PK\x03\x04", 0, b"PK\x09\x09")),
            {"a": b"x"},
        ),
        (
            "offset outside",
            bytes(_patch(_zip([("a", b"x")]), b"PK\x01\x02", 42, _u32(10_000))),
            {"a": b"x"},
        ),
        (
            "bad central magic",
            bytes(_patch(_zip([("a", b"x")]), b"PK\x01\x02", 0, b"PK\x09\x09")),
            {"a": b"x"},
        ),
        ("corrupt extra", _corrupt_extra(), {"a": b"x"}),
        ("lying size stored", _lying(b"A" * 5000, 1000, zipfile.ZIP_STORED), {"bomb": b"A" * 1000}),
        (
            "lying size deflated",
            _lying(b"A" * 5000, 1000, zipfile.ZIP_DEFLATED),
            {"bomb": b"A" * 1000},
        ),
        ("short stored data", _short_stored(), {"a": b"abcdef"}),
        (
            "corrupt deflate",
            bytes(_patch(_zip([("a", b"hello " * 100)]), b"PK\x03\x04", 31, b"\xff\xff\xff")),
            {"a": b"hello " * 100},
        ),
        ("overlapping", _overlapping(), {"a.js": b"same", "b.js": b"same"}),
        ("non-ascii without utf-8 flag", _no_utf8_flag(), {"caf\u00e9.js": b"x"}),
        ("utf-8 name", bytes(_zip([("caf\u00e9.js", b"x")])), {"caf\u00e9.js": b"x"}),
        (
            "invalid utf-8 name",
            bytes(
                _patch(
                    _patch(_zip([("caf\u00e9.js", b"x")]), b"PK\x01\x02", 49, b"\xff"),
                    b"PK\x03\x04",
                    33,
                    b"\xff",
                )
            ),
            {"caf\u00e9.js": b"x"},
        ),
        ("zip64 entry count", _as_zip64(_zip([("a", b"x")]), 1), {"a": b"x"}),
        ("too many declared entries", _as_zip64(_zip([("a", b"x")]), 20_000), {"a": b"x"}),
        ("data descriptor", _streamed({"a": b"streamed " * 50}), {"a": b"streamed " * 50}),
    ]
    return cases


def _corrupt_extra() -> bytes:
    """An entry whose central extra field declares more bytes than it has."""
    info = zipfile.ZipInfo("a", date_time=(1980, 1, 1, 0, 0, 0))
    info.extra = struct.pack("<HH", 0xCAFE, 2) + b"xy"
    data = _zip([(info, b"x")])
    # Grow the declared length of the central copy's extra block past its end.
    return bytes(_patch(data, b"PK\x01\x02", 46 + 1 + 2, _u16(40)))


def _lying(real: bytes, declared: int, method: int) -> bytes:
    data = _zip([("bomb", real)], method)
    _patch(data, b"PK\x01\x02", 24, _u32(declared))
    return bytes(_patch(data, b"PK\x03\x04", 22, _u32(declared)))


def _short_stored() -> bytes:
    """A stored entry whose compressed size says fewer bytes than its size."""
    data = _zip([("a", b"abcdef")], zipfile.ZIP_STORED)
    return bytes(_patch(data, b"PK\x01\x02", 20, _u32(3)))


def _overlapping() -> bytes:
    data = _zip([("a.js", b"same"), ("b.js", b"same")])
    return bytes(_patch(data, b"PK\x01\x02", 42, _u32(0), nth=1))


def _no_utf8_flag() -> bytes:
    data = _zip([("caf\u00e9.js", b"x")])
    _patch(data, b"PK\x01\x02", 8, _u16(0))
    return bytes(_patch(data, b"PK\x03\x04", 6, _u16(0)))


def _as_zip64(data: bytearray, count: int) -> bytes:
    """The end record says 0xFFFF entries; a zip64 record and locator give ``count``."""
    at = data.rfind(b"PK\x05\x06")
    eocd = bytearray(data[at:])
    size, offset = struct.unpack_from("<LL", eocd, 12)
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    eocd[8:10] = eocd[10:12] = _u16(0xFFFF)
    return bytes(data[:at]) + record + locator + bytes(eocd)


def _streamed(files: dict[str, bytes]) -> bytes:
    """An archive written to a pipe: sizes in data descriptors after each entry."""

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, chunk: bytes) -> int:  # type: ignore[override]
            self.data += chunk
            return len(chunk)

    pipe = Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            with zf.open(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), "w") as entry:
                entry.write(data)
    return bytes(pipe.data)


def _archives() -> list[dict[str, object]]:
    """Each archive, its manifest's files, and the extractor's verdict (null: extracted)."""
    cases: list[dict[str, object]] = []
    for name, data, files in _archive_cases():
        entries = (
            [FileEntry(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in sorted(files.items())]
            if all(_safe(p) for p in files)
            else []
        )
        try:
            extract_archive(io.BytesIO(data), entries, NullSink())
        except HotPatchError as exc:
            error: str | None = type(exc).__name__
        else:
            error = None
        cases.append(
            {
                "name": name,
                "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in entries],
                "error": error,
                "archive": base64.b64encode(data).decode("ascii"),
            }
        )
    return cases


def _safe(path: str) -> bool:
    try:
        check_path(path)
    except HotPatchError:
        return False
    return True


def generate() -> dict[str, bytes]:
    """Return every vector file's name and exact content."""
    cohort = [
        {"deviceId": device, "salt": salt, "bucket": bucket(device, salt)}
        for device, salt in [
            ("device-0001", "release-salt"),
            ("device-0002", "release-salt"),
            ("device-0001", "another-salt"),
            ("", ""),
            ("3f0c9a1e-5d5b-4bd5-9f59-2f6f3f1c0e11", "ab" * 32),
            ("appareil-é", "sél"),
            ("設備", "塩"),
        ]
    ]
    pae_cases = [
        {"payloadType": t, "bodyHex": b.hex(), "paeHex": pae(t, b).hex()}
        for t, b in [
            ("application/vnd.hotpatch.release+json", b'{"a":1}'),
            ("application/vnd.hotpatch.root+json", b""),
            ("t", "é".encode()),
        ]
    ]
    key = SigningKey(bytes(range(32)))
    keys = {
        "seedHex": key.seed.hex(),
        "publicKeyBase64": key.public_key.to_base64(),
        "keyId": key.key_id,
        "privateKeyPem": key.to_pem().decode(),
        "publicKeyPem": key.public_key.to_pem().decode(),
        "signatureOverHelloHex": key.sign(b"hello").hex(),
    }
    pki = make_pki(seed=7)
    built = build_release(
        FILES, sequence=42, version="1.2.0", binary_range="1.2.x", compresslevel=0
    )
    envelope = sign_release(built.manifest, [pki.publisher])
    body = decode_envelope(envelope).payload
    release = {
        "device": {
            "appId": "com.example.app",
            "platform": "android",
            "channel": "production",
            "nativeVersion": "1.2.3",
        },
        "now": format_time(FIXED_TIME),
        "highWaterMark": {"epoch": 1, "sequence": 41},
        "expect": {
            "manifestId": manifest_id(body),
            "sequence": 42,
            "signedBy": [pki.publisher.key_id],
        },
        "manifestSha256": hashlib.sha256(encode_manifest(built.manifest)).hexdigest(),
    }
    stamped = make_pki(seed=7, timestamp=True)
    assert stamped.timestamp is not None
    listed = head_listing(
        [built.manifest], rollout_basis_points=5_000, after=(1, 41),
        target=("com.example.app", "android", "production"),
    )  # fmt: skip
    head_envelope = sign_head(listed, [stamped.timestamp])
    native = Version.parse_native("1.2.3")
    head_cases = []
    for device in ("device-0001", "device-0002", "device-0003", "device-0004"):
        for failed in ([], [manifest_id(body)]):
            due = due_offers(
                listed, device_id=device, native=native, epoch=1, above=(1, 41), failed=failed
            )
            head_cases.append(
                {
                    "deviceId": device,
                    "bucket": bucket(device, manifest_id(body)),
                    "failed": failed,
                    "due": sorted(due) if due is not None else None,
                }
            )
    head_verify = {
        "device": release["device"],
        "now": format_time(FIXED_TIME),
        "highWaterMark": {"epoch": 1, "sequence": 41},
        "expiresAt": format_time(listed.expires_at),
        "signedBy": [stamped.timestamp.key_id],
        "cases": head_cases,
    }
    out = io.BytesIO()
    write_archive([ArchiveInput.of_bytes(p, d) for p, d in FILES.items()], out, compresslevel=0)
    archive = out.getvalue()
    return {
        "cohort.json": _json(cohort),
        "pae.json": _json(pae_cases),
        "keys.json": _json(keys),
        "trust-root.envelope.json": pki.root_bytes + b"\n",
        "release.envelope.json": envelope + b"\n",
        "release.manifest.json": body + b"\n",
        "release.verify.json": _json(release),
        "release.archive.zip": archive,
        "release.archive.json": _json(
            {
                "sha256": hashlib.sha256(archive).hexdigest(),
                "length": len(archive),
                "files": [
                    {"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                    for p, d in sorted(FILES.items())
                ],
                "base64": base64.b64encode(archive).decode(),
            }
        ),
        "trust-root.timestamp.envelope.json": stamped.root_bytes + b"\n",
        "head.envelope.json": head_envelope + b"\n",
        "head.verify.json": _json(head_verify),
        "canonical.json": strictjson.canonical({"b": [1, {"é": None}], "a": True}) + b"\n",
        "versions.json": _json(_versions()),
        "times.json": _json(_times()),
        "paths.json": _json(_paths()),
        "casefold.json": _json(_casefold()),
        "manifest.decode.json": _json(_manifest_cases(body)),
        "archives.json": _json(_archives()),
    }


def main() -> int:
    """Write the vectors into docs/spec/vectors/."""
    VECTORS.mkdir(parents=True, exist_ok=True)
    for name, content in generate().items():
        (VECTORS / name).write_bytes(content)
        print(f"wrote {VECTORS / name}")  # noqa: T201 - a command-line script
    return 0


if __name__ == "__main__":
    sys.exit(main())
