"""The committed patch vectors (docs/spec/vectors/patches.json) against the reference applier.

The native SDKs apply the same vectors; if the reference stops agreeing with
them, the format changed and every SDK must follow (regenerate with
``golden_patches.py`` and update them).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from hotpatch_core.archive import FileEntry, MemorySink
from hotpatch_core.errors import HotPatchError
from hotpatch_diff import PatchSide, apply_patch, embedded_id

OUT = Path(__file__).resolve().parents[3] / "docs" / "spec" / "vectors" / "patches.json"
VECTORS: dict[str, Any] = json.loads(OUT.read_text(encoding="utf-8"))


def _entries(files: list[dict[str, Any]]) -> list[FileEntry]:
    return [FileEntry(f["path"], f["sha256"], f["size"]) for f in files]


def _data(files: list[dict[str, Any]]) -> dict[str, bytes]:
    return {f["path"]: base64.b64decode(f["data"]) for f in files}


def test_the_committed_files_match_their_sizes_and_hashes() -> None:
    """Each file's signed size and SHA-256 are its data's."""
    for side in ("base", "target"):
        for f in VECTORS[side]:
            data = base64.b64decode(f["data"])
            assert (f["size"], f["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def test_every_operation_and_error_is_covered() -> None:
    """Every operation, both bsdiff encodings, and every error class appear."""
    names = {c["name"] for c in VECTORS["cases"]}
    wanted = {"add", "zstd-from-base", "bsdiff-bzip2", "bsdiff-lzma2", "hdiffpatch-zstd"}
    assert wanted <= names
    errors = {c.get("error") for c in VECTORS["cases"]}
    assert errors == {
        None,
        "PatchFormatError",
        "WrongBaseError",
        "HashMismatchError",
        "TooLargeError",
    }


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_the_reference_applies_each_case_as_recorded(case: dict[str, Any]) -> None:
    """The reference produces the target's files, or raises the recorded error."""
    base_data = _data(VECTORS["base"])
    base = PatchSide(
        VECTORS["baseManifestId"], tuple(_entries(VECTORS["base"])), lambda e: base_data[e.path]
    )
    sink = MemorySink()
    patch = base64.b64decode(case["patch"])
    if "error" in case:
        with pytest.raises(HotPatchError) as caught:
            apply_patch(patch, base, VECTORS["targetManifestId"], _entries(VECTORS["target"]), sink)
        assert type(caught.value).__name__ == case["error"]
    else:
        apply_patch(patch, base, VECTORS["targetManifestId"], _entries(VECTORS["target"]), sink)
        assert sink.files == _data(VECTORS["target"])


def test_embedded_ids_are_the_references() -> None:
    """The embedded bundle ids are hotpatch_diff.embedded_id's."""
    for case in VECTORS["embeddedIds"]:
        files = [FileEntry(f["path"], f["sha256"], f["size"]) for f in case["files"]]
        assert (
            embedded_id(case["appId"], case["platform"], case["nativeVersion"], files) == case["id"]
        )
