from __future__ import annotations

import contextlib

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core import strictjson, wire
from hotpatch_core.errors import HotPatchError, SchemaError
from hotpatch_core.machine import Bundle, DeviceState, Offer, Phase
from hotpatch_core.manifest import ReleaseManifest, decode_manifest, encode_manifest
from hotpatch_core.release import HighWaterMark
from hotpatch_core.testing import FIXED_TIME, build_release, make_pki
from hotpatch_core.trust import TrustRoot, decode_trust_root_body, encode_trust_root

file_maps = st.dictionaries(
    st.lists(st.sampled_from(["a", "b", "assets", "img.png", "x.js"]), min_size=1, max_size=3).map(
        "/".join
    ),
    st.binary(max_size=64),
    min_size=1,
    max_size=5,
)


def _usable(files: dict[str, bytes]) -> bool:
    paths = set(files)
    return not any(p.startswith(q + "/") for p in paths for q in paths)


@given(file_maps.filter(_usable), st.integers(1, 2**40), st.booleans())
def test_manifest_round_trip(files: dict[str, bytes], sequence: int, mandatory: bool) -> None:
    """encode_manifest -> decode_manifest gives back the same manifest, for any file tree."""
    manifest = build_release(files, sequence=sequence, mandatory=mandatory).manifest
    assert decode_manifest(encode_manifest(manifest)) == manifest


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("8080", 8080), ("9" * 18, 10**18 - 1), ("9" * 19, None), ("", None),
     (None, None), ("\u00b2", None), ("\u0663", None), ("12\n", None), ("-1", None),
     ("1e3", None), (" 1", None)],
)  # fmt: skip
def test_parse_decimal_takes_bounded_ascii_digits_only(
    text: str | None, expected: int | None
) -> None:
    """Header and query numbers: ASCII digits, at most 18, nothing else."""
    assert wire.parse_decimal(text) == expected


@pytest.mark.parametrize("text", ["2026-11-29T10:00:00Z\n", "2026-11-29T1\u0660:00:00Z"])
def test_times_are_matched_whole_in_ascii(text: str) -> None:
    """A trailing newline or another script's digit is not a time."""
    with pytest.raises(SchemaError):
        wire.parse_time(text)


def test_trust_root_round_trip() -> None:
    """A trust root survives its canonical encoding."""
    root = make_pki(root_count=3, root_threshold=2).root
    root = attrs.evolve(root, release_thresholds={"production": 1}, expires_at=FIXED_TIME)
    assert decode_trust_root_body(encode_trust_root(root)) == root


def test_device_state_round_trip() -> None:
    """The state the agent persists loads back identically."""
    bundle = Bundle("a" * 64, "1.0.0", 1, 3, mandatory=True)
    state = DeviceState(
        phase=Phase.DOWNLOADING,
        native_version="1.0.0",
        confirmed=bundle,
        trial=attrs.evolve(bundle, manifest_id="b" * 64),
        trial_launches=1,
        offer=Offer(bundle, b"\x00envelope", FIXED_TIME),
        high_water={"app/android/production": HighWaterMark(1, 3, "a" * 64)},
        failed=("c" * 64,),
    )
    encoded = strictjson.canonical(wire.unstructure(state))
    assert wire.structure(strictjson.loads(encoded), DeviceState) == state


def test_unknown_fields_tolerated() -> None:
    """A newer writer may add fields; older readers ignore them (forward compatibility)."""
    manifest = build_release({"a.js": b"1"}).manifest
    document = wire.unstructure(manifest)
    document["releaseNotes"] = "added in a later format revision"
    assert wire.structure(document, ReleaseManifest) == manifest


def test_camel_case_on_the_wire() -> None:
    """Field names travel in camelCase."""
    document = wire.unstructure(build_release({"a.js": b"1"}).manifest)
    assert {"appId", "binaryRange", "createdAt"} <= document.keys()
    assert "app_id" not in document


json_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10)
json_values = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=12,
)
MANIFEST_KEYS = list(wire.unstructure(build_release({"a.js": b"1"}).manifest))


@given(
    st.dictionaries(st.sampled_from(MANIFEST_KEYS) | st.text(max_size=8), json_values, max_size=12)
)
def test_arbitrary_documents_raise_only_schema_errors(document: dict[str, object]) -> None:
    """Fed any JSON object, structuring raises SchemaError and nothing else."""
    for kind in (ReleaseManifest, TrustRoot, DeviceState):
        with contextlib.suppress(SchemaError):
            wire.structure(document, kind)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_to_every_parser(data: bytes) -> None:
    """Every document parser raises only HotPatchError subclasses on any bytes."""
    for parse in (decode_manifest, decode_trust_root_body):
        with contextlib.suppress(HotPatchError):
            parse(data)
