"""The CodePush package hash and labels, against the devices' own algorithm."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.archive import FileEntry
from hotpatch_core.codepush import hashed_paths, label, package_hash, parse_label
from hotpatch_core.versions import BinaryRange, Version


def _entry(path: str, data: bytes) -> FileEntry:
    return FileEntry(path, hashlib.sha256(data).hexdigest(), len(data))


def test_package_hash_matches_the_published_example() -> None:
    """The hash of the brief's worked example, computed there with the release tool's code."""
    # The worked example of the CodePush hash (client-protocols brief, §1.5),
    # computed there with the release tool's hash-utils.js.
    files = [
        _entry("CodePush/index.android.bundle", b"console.log('v1');\n"),
        _entry("CodePush/assets/logo.png", b"PNG"),
    ]
    assert hashed_paths(files) == [
        "CodePush/assets/logo.png:796120837694d3f3f29259cfeb25091698c2a0aa87873658d840b4993ee889b3",
        (
            "CodePush/index.android.bundle:"
            "ce7c9f161dce1ba1e082eb30db5ba7a89a8f5aa630221045eb158634806e9661"
        ),
    ]
    assert package_hash(files) == (
        "90ac4a6ef6d46e6a8064a16634099ba219f9186c8ca5f7b96416f5d837daa7cc"
    )


def test_signature_and_finder_files_are_not_hashed() -> None:
    """The signature claim and Finder files are left out, as the devices leave them out."""
    files = [_entry("index.android.bundle", b"x")]
    extra = [
        _entry(".codepushrelease", b"jwt"),
        _entry("CodePush/.codepushrelease", b"jwt"),
        _entry(".DS_Store", b"junk"),
        _entry("assets/.DS_Store", b"junk"),
        _entry("__MACOSX/index.android.bundle", b"junk"),
    ]
    assert package_hash(files + extra) == package_hash(files)
    # A name that merely ends in the same letters is a real file.
    assert package_hash([*files, _entry("x.codepushrelease", b"y")]) != package_hash(files)


def test_sort_is_by_utf16_code_unit_as_on_the_device() -> None:
    """Lines sort by UTF-16 code unit (Java, JavaScript), not by code point."""
    # U+FF21 sorts after U+1F600 in code points, before it in UTF-16 units
    # (the emoji is the surrogate pair D83D DE00).
    files = [_entry("\U0001f600.png", b"a"), _entry("\uff21.png", b"b")]
    assert [line[0] for line in hashed_paths(files)] == ["\U0001f600", "\uff21"]
    text = json.dumps(hashed_paths(files), separators=(",", ":"), ensure_ascii=False)
    assert "\\u" not in text  # JSON.stringify writes the characters themselves


@given(st.integers(1, 2**63 - 1), st.integers(1, 2**63 - 1))
def test_labels_round_trip(epoch: int, sequence: int) -> None:
    """Every (epoch, sequence) has a label that names it back."""
    assert parse_label(label(epoch, sequence)) == (epoch, sequence)


def test_labels_that_are_not_ours() -> None:
    """Labels of other servers, and other spellings of ours, name no position."""
    for text in ["", "v0", "v01", "1", "v1.5", "v1\n", "v\u0661", "v2.0", "V3", f"v{2**63}"]:
        assert parse_label(text) is None, text
    assert label(1, 7) == "v7"
    assert label(3, 7) == "v3.7"


def test_range_above_a_version() -> None:
    """A range is above a version only when all it contains is newer."""
    old = Version.parse("1.0.0")
    assert BinaryRange.parse(">=2.0.0").above(old)
    assert BinaryRange.parse("2.x || ^3.1.0").above(old)
    assert BinaryRange.parse(">1.0.0").above(old)
    assert not BinaryRange.parse("*").above(old)
    assert not BinaryRange.parse("<2.0.0").above(old)
    assert not BinaryRange.parse("0.9.0").above(old)  # older, not newer
    assert not BinaryRange.parse("1.0.0 || 2.x").above(old)
