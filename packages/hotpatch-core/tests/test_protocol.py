"""The update check answer: one document, written by the server, read by devices."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.errors import SchemaError
from hotpatch_core.protocol import CheckAnswer, PatchOffer, read_check_answer
from hotpatch_core.wire import unstructure

MANIFEST_ID = "ab" * 32
text = st.text(max_size=40)
maybe_text = st.none() | text
maybe_int = st.none() | st.integers(min_value=0, max_value=2**53)
offers = st.builds(
    PatchOffer,
    url=text,
    size=st.integers(min_value=1, max_value=2**53),
    base_manifest_id=st.text("0123456789abcdef", min_size=64, max_size=64),
)


@st.composite
def answers(draw: st.DrawFn) -> CheckAnswer:
    """Any answer the contract allows: an offer always has its manifest and URL."""
    available = draw(st.booleans())
    return draw(
        st.builds(
            CheckAnswer,
            update_available=st.just(available),
            manifest=text if available else maybe_text,
            bundle_url=text if available else maybe_text,
            head=maybe_text,
            patch=st.none() | offers,
            version=maybe_text,
            mandatory=st.none() | st.booleans(),
            hash=maybe_text,
            size=maybe_int,
            manifest_id=maybe_text,
            sequence=maybe_int,
            epoch=maybe_int,
            signature=maybe_text,
        )
    )


@given(answers())
def test_every_answer_survives_the_wire(answer: CheckAnswer) -> None:
    """What the server writes, a device reads back exactly; absent fields are left out."""
    written = unstructure(answer)
    assert read_check_answer(written) == answer
    assert None not in written.values()


def _offer(**changes: Any) -> dict[str, Any]:
    answer = {"updateAvailable": True, "manifest": "bWFuaWZlc3Q=", "bundleUrl": "/blobs/x"}
    return answer | changes


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        (_offer(updateAvailable="true"), "updateAvailable"),
        (_offer(updateAvailable=1), "updateAvailable"),
        (_offer(manifest=None), ""),
        (_offer(bundleUrl=7), "bundleUrl"),
        (_offer(head=["x"]), "head"),
        (_offer(size=True), "size"),
        ({"manifest": "x"}, "updateAvailable"),
    ],
)
def test_a_mistyped_answer_is_refused(answer: dict[str, Any], field: str) -> None:
    """Every field is strict, and an offer without its manifest or URL is no offer."""
    with pytest.raises(SchemaError) as refused:
        read_check_answer(answer)
    assert refused.value.field == field


def test_only_an_object_is_an_answer() -> None:
    """A JSON array, string or null is not an answer."""
    values: list[object] = [[], "x", None]
    for value in values:
        with pytest.raises(SchemaError):
            read_check_answer(value)


@pytest.mark.parametrize(
    "patch",
    [
        "x",
        {"url": "/p", "size": 0, "baseManifestId": MANIFEST_ID},
        {"url": "/p", "size": "9", "baseManifestId": MANIFEST_ID},
        {"url": "/p", "size": 9, "baseManifestId": MANIFEST_ID.upper()},
        {"url": "/p", "size": 9, "baseManifestId": MANIFEST_ID + "\n"},
        {"url": "/p", "size": 9},
    ],
)
def test_a_malformed_patch_offer_is_dropped_not_fatal(patch: object) -> None:
    """The patch is unsigned and optional: a bad one leaves the full archive on offer."""
    answer = read_check_answer(_offer(patch=patch))
    assert answer.patch is None
    assert answer.bundle_url == "/blobs/x"


def test_a_good_patch_offer_is_read() -> None:
    """The offer the server writes is the one the device gets."""
    patch = {"url": "/p", "size": 9, "baseManifestId": MANIFEST_ID}
    assert read_check_answer(_offer(patch=patch)).patch == PatchOffer("/p", 9, MANIFEST_ID)
