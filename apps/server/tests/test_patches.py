"""Patches between releases: made after a publish, offered to the right devices, counted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hotpatch_core.archive import MemorySink
from hotpatch_core.envelope import decode_envelope
from hotpatch_core.manifest import decode_manifest
from hotpatch_diff import PatchSide, apply_patch
from hotpatch_server.models import Device
from hotpatch_server.testing import Server, in_process_server

BUNDLE = b"".join(b"function f%d(a){return a+%d}\n" % (i, i) for i in range(4000))
V1 = {"index.android.bundle": BUNDLE, "assets/logo.png": b"\x89PNG" + bytes(300)}
V2 = {**V1, "index.android.bundle": BUNDLE.replace(b"return a+17}", b"return a+71}")}


def _publish(server: Server, sequence: int, files: dict[str, bytes]) -> dict[str, Any]:
    built = server.build(sequence=sequence, version=f"1.0.{sequence}", files=files)
    response = server.publish(built)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def test_a_patch_is_made_offered_to_its_base_and_counted(server: Server) -> None:
    """Publishing v2 makes a v1 -> v2 patch; a v1 device is offered it; downloads count."""
    v1 = _publish(server, 1, V1)
    v2 = _publish(server, 2, V2)  # the patch is made after this answer, in the background
    answer = server.check("device-1", currentManifestId=v1["manifestId"])
    assert answer["manifestId"] == v2["manifestId"]
    patch = answer["patch"]
    assert patch["baseManifestId"] == v1["manifestId"]
    assert patch["size"] < v2["size"] * 0.8
    assert "patch" not in server.check("device-2")  # a device on its embedded bundle
    data = server.client.get(httpx.URL(patch["url"]).raw_path.decode()).content
    assert len(data) == patch["size"]
    base_files = decode_manifest(decode_envelope(base64.b64decode(_manifest(server, v1))).payload)
    target = decode_manifest(decode_envelope(base64.b64decode(answer["manifest"])).payload)
    sink = MemorySink()
    base = PatchSide(v1["manifestId"], base_files.files, lambda entry: V1[entry.path])
    apply_patch(data, base, v2["manifestId"], target.files, sink)
    assert sink.files == V2
    stats = _stats(server, v2)
    assert stats["patches"] == [
        {"baseManifestId": v1["manifestId"], "size": patch["size"], "downloads": 1, "installs": 0}
    ]
    assert stats["bytesSaved"] == 0  # served, but no device has said it installed it
    applied = _report(server, v2, "device-1", patchedFrom=v1["manifestId"])
    assert applied.status_code == 201, applied.text
    stats = _stats(server, v2)
    assert stats["patches"][0]["installs"] == 1
    assert stats["bytesSaved"] == v2["size"] - patch["size"]


def _stats(server: Server, release: dict[str, Any]) -> dict[str, Any]:
    response = server.client.get(
        f"/releases/{release['id']}/stats", headers=server.auth(server.admin_key)
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _report(
    server: Server, release: dict[str, Any], device: str, status: str = "applied", **extra: str
) -> httpx.Response:
    return server.client.post(
        "/installations",
        json={"id": f"{device}-{status}", "appId": "com.example.app", "deviceId": device,
              "manifestId": release["manifestId"], "status": status, **extra},
    )  # fmt: skip


def test_a_patched_from_report_is_checked(server: Server) -> None:
    """PatchedFrom is a manifest id, on applied reports only; a bad one stores nothing."""
    v1 = _publish(server, 1, V1)
    v2 = _publish(server, 2, V2)
    for status, value in (("applied", "zz"), ("applied", v1["manifestId"] + "\n"),
                          ("failed", v1["manifestId"])):  # fmt: skip
        refused = _report(server, v2, "device-9", status, patchedFrom=value)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "patchedFrom"
    assert _stats(server, v2)["installations"] == {"applied": 0, "failed": 0, "rolled_back": 0}


def test_no_patch_when_it_would_not_save_enough(server: Server) -> None:
    """Unrelated content makes a patch as large as the archive: none is offered."""
    v1 = _publish(server, 1, {"index.android.bundle": bytes(range(256)) * 40})
    rng = __import__("random").Random(3)
    _publish(server, 2, {"index.android.bundle": rng.randbytes(20_000)})
    assert "patch" not in server.check("device-1", currentManifestId=v1["manifestId"])


def _manifest(server: Server, release: dict[str, Any]) -> str:
    shown = server.client.get(f"/releases/{release['id']}", headers=server.auth()).json()
    manifest: str = shown["manifest"]
    return manifest


def test_archives_of_published_releases_extract_for_patching(server: Server) -> None:
    """The archive the server stores is the one the manifest signs (sanity for the patcher)."""
    v1 = _publish(server, 1, V1)
    url = httpx.URL(v1["downloadUrl"]).raw_path.decode()
    with zipfile.ZipFile(io.BytesIO(server.client.get(url).content)) as archive:
        assert sorted(archive.namelist()) == sorted(V1)


def test_uploaded_patches_are_checked_before_they_are_stored(server: Server) -> None:
    """A patch that does not rebuild the release is refused; the pair stays unique."""
    v1 = _publish(server, 1, V1)
    v2 = _publish(server, 2, V2)  # the background made v1 -> v2 already
    blobs_before = server.blobs()

    def upload(base: str, data: bytes) -> httpx.Response:
        return server.client.post(
            f"/releases/{v2['id']}/patches",
            json={"baseManifestId": base, "patch": base64.b64encode(data).decode()},
            headers=server.auth(),
        )

    garbage = upload(v1["manifestId"], b"HPD\x01" + bytes(40))
    assert garbage.status_code == 422
    assert garbage.json()["field"] == "patch"
    assert upload("0" * 64, b"x").status_code == 404
    offered = server.check("device-1", currentManifestId=v1["manifestId"])["patch"]
    data = server.client.get(httpx.URL(offered["url"]).raw_path.decode()).content
    damaged = bytearray(data)
    middle = len(damaged) - (len(damaged) - 20) // 2  # inside the payload, past the header
    for offset in range(middle, min(middle + 8, len(damaged))):
        damaged[offset] ^= 0xFF
    refused = upload(v1["manifestId"], bytes(damaged))
    assert refused.status_code == 422, refused.text  # a decoder error is bad input, not a 500
    assert refused.json()["field"] == "patch"
    assert upload(v1["manifestId"], data).status_code == 409
    assert server.blobs() == blobs_before  # nothing new was kept


def test_an_embedded_bundle_must_match_its_file_list(server: Server) -> None:
    """Registration is checked by the strict extractor, and one bundle per native version."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("index.android.bundle", V1["index.android.bundle"])
    body = {
        "platform": "android",
        "nativeVersion": "1.0.0",
        "archive": base64.b64encode(out.getvalue()).decode(),
        "files": [{"path": "index.android.bundle", "sha256": "0" * 64,
                   "size": len(V1["index.android.bundle"])}],
    }  # fmt: skip
    lying = server.client.post("/apps/com.example.app/embedded", json=body, headers=server.auth())
    assert lying.status_code == 422
    body["files"][0]["sha256"] = hashlib.sha256(V1["index.android.bundle"]).hexdigest()  # type: ignore[index]
    first = server.client.post("/apps/com.example.app/embedded", json=body, headers=server.auth())
    assert first.status_code == 201, first.text
    again = server.client.post("/apps/com.example.app/embedded", json=body, headers=server.auth())
    assert again.status_code == 409


def _variant(n: int) -> dict[str, bytes]:
    return {**V1, "index.android.bundle": BUNDLE.replace(b"return a+17}", b"return a+%d}" % n)}


def test_range_requests_do_not_count_as_patch_downloads(server: Server) -> None:
    """Only a patch served whole counts: a one-byte Range request for its end does not."""
    v1 = _publish(server, 1, V1)
    v2 = _publish(server, 2, V2)
    patch = server.check("device-1", currentManifestId=v1["manifestId"])["patch"]
    path = httpx.URL(patch["url"]).raw_path.decode()
    for _ in range(3):
        tail = server.client.get(path, headers={"Range": f"bytes={patch['size'] - 1}-"})
        assert (tail.status_code, len(tail.content)) == (206, 1)
    assert _stats(server, v2)["patches"][0]["downloads"] == 0
    assert server.client.get(path).status_code == 200
    assert _stats(server, v2)["patches"][0]["downloads"] == 1


def test_made_up_current_releases_cannot_crowd_out_real_patch_bases(server: Server) -> None:
    """Registrations naming releases that do not exist never displace a release devices run."""
    old = _publish(server, 1, V1)
    for sequence in (2, 3, 4):  # the three newest: v1 is a base only because a device runs it
        _publish(server, sequence, _variant(sequence))
    registrations = [("real-device", old["manifestId"])] + [
        (f"junk-{index:02d}", hashlib.sha256(b"%d" % index).hexdigest()) for index in range(40)
    ]
    for device, current in registrations:
        body = {"appId": "com.example.app", "deviceId": device, "platform": "android",
                "nativeVersion": "1.0.0", "currentManifestId": current}  # fmt: skip
        assert server.client.post("/devices", json=body).status_code == 201
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _device_count(server) < len(registrations):
        time.sleep(0.05)
    assert _device_count(server) == len(registrations)
    latest = _publish(server, 5, _variant(5))
    answer = server.check("real-device", currentManifestId=old["manifestId"])
    assert answer["manifestId"] == latest["manifestId"]
    assert answer["patch"]["baseManifestId"] == old["manifestId"]


def _device_count(server: Server) -> int:
    async def count() -> int:
        engine = create_async_engine(server.settings.database_url)
        try:
            async with async_sessionmaker(engine)() as session:
                return int(await session.scalar(select(func.count()).select_from(Device)) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def test_releases_that_expand_past_the_limit_are_never_expanded_in_memory(
    database_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Attack: small archives of zeros that expand a thousandfold (issue 15, item 7).

    Two 20 kB uploads declaring 20 MB files each drove patch making to
    expand both in memory; with ``HOTPATCH_MAX_EXPANDED_BYTES`` at 1 MiB no
    patch, CodePush diff, uploaded-patch check, embedded bundle or Expo
    attachment expands them, each says why, and the releases still publish.
    """
    bomb = {"index.android.bundle": bytes(20_000_000)}
    bomb2 = {"index.android.bundle": bytes(19_999_999) + b"\1"}
    with in_process_server(tmp_path / "data", database_url, max_expanded_bytes=1 << 20) as server:
        v1 = _publish(server, 1, bomb)
        v2 = _publish(server, 2, bomb2)
        assert len(server.build(sequence=9, files=bomb).archive) < 100_000  # a small upload
        assert "patch" not in server.check("device-1", currentManifestId=v1["manifestId"])
        logged = capfd.readouterr().err  # the server logs to stderr
        assert f"no patches to release {v2['id']}" in logged
        assert f"no CodePush diffs to release {v2['id']}" in logged
        assert "HOTPATCH_MAX_EXPANDED_BYTES" in logged
        uploaded = server.client.post(
            f"/releases/{v2['id']}/patches",
            json={"baseManifestId": v1["manifestId"], "patch": base64.b64encode(b"x").decode()},
            headers=server.auth(),
        )
        assert uploaded.status_code == 422
        assert "releases this large" in uploaded.json()["detail"]
        attach = server.expo_attach(v2["id"])
        assert attach.status_code == 413, attach.text
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("index.android.bundle", bomb["index.android.bundle"])
        embedded = server.client.post(
            "/apps/com.example.app/embedded",
            json={
                "platform": "android",
                "nativeVersion": "1.0.0",
                "archive": base64.b64encode(out.getvalue()).decode(),
                "files": [
                    {
                        "path": "index.android.bundle",
                        "sha256": hashlib.sha256(bomb["index.android.bundle"]).hexdigest(),
                        "size": 20_000_000,
                    }
                ],
            },
            headers=server.auth(),
        )
        assert embedded.status_code == 413, embedded.text
        assert embedded.json()["field"] == "files"
