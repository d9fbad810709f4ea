"""The Expo Updates manifest of a release, its framing and its header fields."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotpatch_core.errors import SchemaError
from hotpatch_core.expo import (
    asset_url,
    commit_time,
    expo_assets,
    expo_manifest,
    hash_b64url,
    multipart,
    parse_sfv_dictionary,
    parse_sfv_strings,
    update_id,
)
from hotpatch_core.manifest import Platform, ReleaseManifest
from hotpatch_core.testing import build_release

PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)
URL = "https://updates.example.com"


def _release(
    files: dict[str, bytes], platform: Platform = Platform.ANDROID
) -> tuple[ReleaseManifest, str]:
    built = build_release(files, platform=platform)
    return built.manifest, hashlib.sha256(b"manifest of " + repr(files).encode()).hexdigest()


@given(st.binary(min_size=32, max_size=32))
def test_update_ids_are_rfc_uuids_named_by_the_manifest_id(digest: bytes) -> None:
    """Version 8, RFC variant, canonical lowercase form; one manifest id, one update id."""
    manifest_id = digest.hex()
    text = update_id(manifest_id)
    parsed = uuid.UUID(text)
    assert str(parsed) == text
    assert parsed.variant == uuid.RFC_4122
    assert text[14] == "8"
    assert text.replace("-", "")[:12] == manifest_id[:12]
    assert update_id(manifest_id) == text


def test_update_ids_need_a_manifest_id() -> None:
    """Anything but 64 lowercase hex digits is refused."""
    for bad in ("", "A" * 64, "0" * 63, "0" * 64 + "\n"):
        with pytest.raises(SchemaError):
            update_id(bad)


def test_commit_times_are_javascripts_iso_strings() -> None:
    """Milliseconds, UTC, a Z: what `new Date().toISOString()` prints."""
    at = datetime(2026, 3, 4, 5, 6, 7, 891_999, tzinfo=timezone(timedelta(hours=2)))
    assert commit_time(at) == "2026-03-04T03:06:07.891Z"
    assert commit_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    with pytest.raises(SchemaError):
        commit_time(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time is the point


@given(st.binary())
def test_hashes_are_unpadded_base64url_sha256(data: bytes) -> None:
    """Hex sha256 re-encoded is what the device computes over the bytes."""
    digest = hashlib.sha256(data)
    expected = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    assert hash_b64url(digest.hexdigest()) == expected
    assert len(expected) == 43


def test_the_launch_asset_is_the_entry_file_and_assets_keep_their_keys() -> None:
    """Keys and extensions come from assets/<key>.<ext>; content types from the extension."""
    manifest, _ = _release(
        {"index.android.bundle": b"code", "assets/abc123.png": PNG, "assets/f0nt.TTF": b"ttf"}
    )
    launch, assets = expo_assets(manifest)
    assert (launch.path, launch.file_extension, launch.content_type) == (
        "index.android.bundle",
        None,
        "application/javascript",
    )
    assert [(a.key, a.file_extension, a.content_type) for a in assets] == [
        ("abc123", ".png", "image/png"),
        ("f0nt", ".TTF", "font/ttf"),
    ]
    signed, _ = _release({"index.android.bundle": b"code", "CodePush/.codepushrelease": b"jwt"})
    assert expo_assets(signed)[1] == ()  # a CodePush signature is not an asset
    ios, _ = _release({"main.jsbundle": b"code"}, Platform.IOS)
    assert expo_assets(ios)[0].path == "main.jsbundle"


@pytest.mark.parametrize(
    "files",
    [
        {"index.android.bundle": b"x", "drawable-mdpi/logo.png": PNG},
        {"index.android.bundle": b"x", "assets/noextension": PNG},
        {"index.android.bundle": b"x", "assets/sub/dir.png": PNG},
        {"index.android.bundle": b"x", "assets/a.png": PNG, "assets/a.jpg": PNG},
        {"assets/a.png": PNG},
        {"main.jsbundle": b"x"},
    ],
)
def test_releases_expo_cannot_serve_are_refused(files: dict[str, bytes]) -> None:
    """Other files, duplicate keys, or no entry file: a clear SchemaError."""
    manifest, _ = _release(files)
    with pytest.raises(SchemaError):
        expo_assets(manifest)


def test_the_manifest_is_fixed_by_its_inputs() -> None:
    """Same inputs, same bytes; every field the protocol requires, and nothing per request."""
    manifest, mid = _release({"index.android.bundle": b"code", "assets/abc.png": PNG})
    config = {"name": "Shop", "slug": "shop"}
    body = expo_manifest(
        manifest,
        mid,
        runtime_version="1.0.0",
        public_url=URL + "/",
        expo_client=config,
    )
    again = expo_manifest(
        manifest,
        mid,
        runtime_version="1.0.0",
        public_url=URL,
        expo_client=config,
    )
    assert body == again
    document = json.loads(body)
    assert document["id"] == update_id(mid)
    assert document["runtimeVersion"] == "1.0.0"
    assert document["extra"] == {"expoClient": config}
    assert document["metadata"] == {}
    (asset,) = document["assets"]
    sha = hashlib.sha256(PNG).hexdigest()
    assert asset == {
        "hash": hash_b64url(sha),
        "key": "abc",
        "fileExtension": ".png",
        "contentType": "image/png",
        "url": asset_url(URL, sha),
    }
    assert (
        document["launchAsset"]["url"] == f"{URL}/expo/assets/{hashlib.sha256(b'code').hexdigest()}"
    )


@pytest.mark.parametrize(
    ("runtime", "url"),
    [
        ("", URL),
        ("1.0.0\n", URL),
        ("x" * 65, URL),
        ("-1", URL),
        ("1.0.0", "ftp://example.com"),
        ("1.0.0", "https://example.com/path?query"),
        ("1.0.0", "/relative"),
    ],
)
def test_bad_runtime_versions_and_urls_are_refused(runtime: str, url: str) -> None:
    """Runtime versions are bounded and plain; asset URLs must be absolute http(s)."""
    manifest, mid = _release({"index.android.bundle": b"code"})
    with pytest.raises(SchemaError):
        expo_manifest(manifest, mid, runtime_version=runtime, public_url=url)


def test_an_oversized_expo_config_is_refused() -> None:
    """The app config is bounded (it is served on every manifest request)."""
    manifest, mid = _release({"index.android.bundle": b"code"})
    with pytest.raises(SchemaError):
        expo_manifest(
            manifest,
            mid,
            runtime_version="1",
            public_url=URL,
            expo_client={"blob": "x" * 300_000},
        )


_PART_NAME = st.sampled_from(["manifest", "directive", "extensions", "certificate_chain"])


@given(st.lists(st.tuples(_PART_NAME, st.binary(max_size=300)), min_size=1, max_size=4))
def test_multipart_bodies_parse_back_exactly(parts: list[tuple[str, bytes]]) -> None:
    """Any part bodies, even ones holding boundary-like bytes, come back byte for byte."""
    content_type, body = multipart([(name, data, {}) for name, data in parts])
    boundary = content_type.split("boundary=", 1)[1]
    assert all(boundary.encode() not in data for _, data in parts)
    assert body.endswith(f"\r\n--{boundary}--\r\n".encode())
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parsed = [
        (part.get_param("name", header="content-disposition"), part.get_payload(decode=True))
        for part in message.iter_parts()
    ]
    assert parsed == parts


def test_a_body_holding_the_first_boundary_gets_another() -> None:
    """The boundary is derived from the parts, and changed if a part contains it."""
    content_type, _ = multipart([("manifest", b"{}", {})])
    first = content_type.split("boundary=", 1)[1].encode()
    content_type, _ = multipart([("manifest", b"x" + first + b"x", {})])
    assert content_type.split("boundary=", 1)[1].encode() != first


_SFV_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


def _sfv_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(st.lists(_SFV_TEXT, max_size=6), st.sampled_from([", ", ",", " ,  "]))
def test_string_lists_round_trip(items: list[str], separator: str) -> None:
    """Every printable ASCII string survives serialising and parsing (RFC 8941 strings)."""
    assert parse_sfv_strings(separator.join(_sfv_string(i) for i in items)) == items


def test_dictionaries_as_devices_send_them() -> None:
    """The expect-signature header: a bare key, then strings."""
    assert parse_sfv_dictionary('sig, keyid="main", alg="rsa-v1_5-sha256"') == {
        "sig": True,
        "keyid": "main",
        "alg": "rsa-v1_5-sha256",
    }
    assert parse_sfv_dictionary("sig=?0, n=42, t=tok") == {"sig": False, "n": 42, "t": "tok"}
    assert parse_sfv_dictionary("") == {}


@pytest.mark.parametrize(
    "text",
    ['"a", ', "unquoted", '"a" "b"', '"\\x"', '"é"', '"a",, "b"', '"' + "a" * 5000 + '"', "?1"],
)
def test_malformed_string_lists_are_refused(text: str) -> None:
    """Anything that is not a list of strings is a SchemaError, never a partial answer."""
    with pytest.raises(SchemaError):
        parse_sfv_strings(text)


@pytest.mark.parametrize("text", ["Sig", "sig,", "sig keyid", 'keyid="main" extra', "=1"])
def test_malformed_dictionaries_are_refused(text: str) -> None:
    """Keys are lowercase, members comma-separated, nothing trails."""
    with pytest.raises(SchemaError):
        parse_sfv_dictionary(text)
