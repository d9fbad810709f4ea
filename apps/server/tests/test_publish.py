from __future__ import annotations

import base64
import io
import threading
import zipfile
from typing import Any

import attrs
import pytest

from hotpatch_core.envelope import decode_envelope, encode_envelope
from hotpatch_core.keys import SigningKey
from hotpatch_core.release import sign_release
from hotpatch_server.releases import upload as upload_module
from hotpatch_server.releases.upload import MAX_PARTS
from hotpatch_server.testing import APP_ID, Server


def test_publish_then_check_offers_the_release(server: Server) -> None:
    """A published release is offered to a device, with the manifest bytes exactly as uploaded."""
    built = server.build(sequence=1)
    envelope = sign_release(built.manifest, [server.pki.publisher])
    response = server.publish(built, envelope=envelope)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sequence"] == 1
    assert body["hash"] == built.manifest.archive.sha256
    answer = server.check()
    assert answer["updateAvailable"] is True
    assert base64.b64decode(answer["manifest"]) == envelope
    assert answer["hash"] == built.manifest.archive.sha256
    assert answer["version"] == "1.0.0"
    assert answer["mandatory"] is False
    download = server.client.get(answer["bundleUrl"])
    assert download.status_code == 200
    assert download.content == built.archive


def _nothing_left(server: Server) -> None:
    assert server.release_rows() == 0
    assert server.blobs() == []
    tmp = server.settings.data_dir / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def _zip_slip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("../evil.js", b"evil")
    return out.getvalue()


def test_upload_rejections_leave_nothing_behind(server: Server) -> None:
    """Bad signature, wrong hash, zip-slip, wrong app: a clear 4xx and no row, no blob (S4)."""
    built = server.build(sequence=1)
    good = sign_release(built.manifest, [server.pki.publisher])
    envelope = decode_envelope(good)
    forged = encode_envelope(attrs.evolve(envelope, payload=envelope.payload + b" "))
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"envelope": forged}, 422, "signature-rejected"),
        (
            {"envelope": sign_release(built.manifest, [SigningKey.generate()])},
            422,
            "signature-rejected",
        ),
        ({"archive": built.archive[:-1] + b"\x01"}, 422, "hash-mismatch"),
        ({"archive": _zip_slip()}, 422, "hash-mismatch"),
        ({"envelope": b"console.log('not an envelope')"}, 400, "malformed"),
        ({"app_id": "com.unknown.app"}, 403, "forbidden"),
    ]
    for kwargs, status, kind in cases:
        response = server.publish(built, **kwargs)
        assert response.status_code == status, (kwargs.keys(), response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith(kind), response.text
    _nothing_left(server)


def test_zip_slip_archive_rejected_by_the_extractor(server: Server) -> None:
    """An archive whose hash is signed but whose entries escape is refused (S4)."""
    evil = _zip_slip()
    built = server.build(sequence=1)
    manifest = attrs.evolve(
        built.manifest,
        archive=attrs.evolve(
            built.manifest.archive,
            sha256=__import__("hashlib").sha256(evil).hexdigest(),
            length=len(evil),
        ),
    )
    response = server.publish(attrs.evolve(built, manifest=manifest, archive=evil))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "archive"
    _nothing_left(server)


def test_over_cap_upload_is_413_before_buffering(server: Server) -> None:
    """An upload over the cap gets 413, with and without Content-Length (S4)."""
    limit = server.settings.max_archive_bytes + 8 * 1024 * 1024
    response = server.client.post(
        "/releases",
        content=b"x",
        headers={
            **server.auth(),
            "Content-Length": str(limit + 1),
            "Content-Type": "multipart/form-data; boundary=b",
        },
    )
    assert response.status_code == 413
    small = attrs.evolve(server.settings, max_archive_bytes=1000)
    del small

    def chunks() -> Any:
        yield _field("appId", APP_ID)
        yield b'--b\r\nContent-Disposition: form-data; name="archive"; filename="a.zip"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * (8 * 1024 * 1024)

    streamed = server.client.post(
        "/releases",
        content=chunks(),
        headers={**server.auth(), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert streamed.status_code == 413, streamed.text
    _nothing_left(server)


def _field(name: str, value: str) -> bytes:
    return f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()


def _archive_after(app_id: str) -> bytes:
    return (
        _field("appId", app_id)
        + b'--b\r\nContent-Disposition: form-data; name="archive"; filename="a.zip"\r\n\r\n'
        + b"\0" * (4 * 1024 * 1024)
        + b"\r\n--b--\r\n"
    )


def test_publish_rights_are_checked_before_the_archive_is_read(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key for one app publishing to another, or a viewer, is refused before the archive (S1)."""
    archive_bytes: list[int] = []
    original = upload_module._State.data

    def counting(state: Any, data: bytes, start: int, end: int) -> None:
        if state.name == "archive":
            archive_bytes.append(end - start)
        original(state, data, start, end)

    monkeypatch.setattr(upload_module._State, "data", counting)
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    viewer = server.create_key("viewer", [APP_ID])
    for app_id, key in (("com.other.app", None), (APP_ID, viewer)):
        answer = server.client.post(
            "/releases", content=_archive_after(app_id), headers={**server.auth(key), **multipart}
        )
        assert answer.status_code == 403, answer.text
    assert archive_bytes == []  # not one byte of either archive was parsed or written
    _nothing_left(server)


def test_publish_form_order_and_part_count_are_checked(server: Server) -> None:
    """The archive must follow appId; more than MAX_PARTS parts is refused; nothing is kept."""
    multipart = {**server.auth(), "Content-Type": "multipart/form-data; boundary=b"}
    archive_first = (
        b'--b\r\nContent-Disposition: form-data; name="archive"; filename="a.zip"\r\n\r\n'
        b"zip\r\n" + _field("appId", APP_ID) + b"--b--\r\n"
    )
    answer = server.client.post("/releases", content=archive_first, headers=multipart)
    assert (answer.status_code, answer.json()["field"]) == (422, "appId")
    many = b"".join(_field(f"f{index}", "x") for index in range(MAX_PARTS + 1)) + b"--b--\r\n"
    crowded = server.client.post("/releases", content=many, headers=multipart)
    assert crowded.status_code == 400, crowded.text
    _nothing_left(server)


def test_republishing_a_version_conflicts(server: Server) -> None:
    """The same version on the same channel again is 409, even with a higher sequence."""
    assert server.publish(server.build(sequence=1)).status_code == 201
    again = server.publish(server.build(sequence=2, files={"a.js": b"other"}))
    assert again.status_code == 409
    assert again.json()["field"] == "version"


def test_sequence_must_increase(server: Server) -> None:
    """A sequence at or below the newest published one is refused (S4)."""
    assert server.publish(server.build(sequence=5, version="1.0.5")).status_code == 201
    lower = server.publish(server.build(sequence=4, version="1.0.4"))
    assert lower.status_code == 409
    assert lower.json()["type"].endswith("sequence-not-increasing")


def test_concurrent_publishes_of_one_version_exactly_one_201(server: Server) -> None:
    """Two concurrent publishes of the same version: exactly one 201, the other 409."""
    built = server.build(sequence=1)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def go(sequence: int) -> None:
        variant = server.build(sequence=sequence)
        barrier.wait()
        results.append(server.publish(variant).status_code)

    threads = [threading.Thread(target=go, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 409]
    assert server.release_rows() == 1
    del built


def test_mandatory_field_must_match_the_signature(server: Server) -> None:
    """The unsigned 'mandatory' form field cannot contradict the signed manifest (ADR 0002)."""
    response = server.publish(server.build(sequence=1), fields={"mandatory": "true"})
    assert response.status_code == 422
    assert response.json()["field"] == "mandatory"


@pytest.mark.parametrize("key_kind", ["viewer", "other-app publisher"])
def test_publish_needs_a_publisher_key_for_the_app(server: Server, key_kind: str) -> None:
    """Viewers and other apps' publishers get 403 on publish (S1)."""
    key = (
        server.create_key("viewer", [APP_ID])
        if key_kind == "viewer"
        else server.create_key("publisher", ["com.other.app"])
    )
    response = server.publish(server.build(sequence=1), key=key)
    assert response.status_code == 403
    _nothing_left(server)
