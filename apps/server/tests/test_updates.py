from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hotpatch_core.cohort import bucket
from hotpatch_core.release import sign_release
from hotpatch_core.testing import make_pki
from hotpatch_server.app import create_app
from hotpatch_server.models import Device
from hotpatch_server.settings import Settings
from hotpatch_server.testing import APP_ID, Server, assert_no_offer


def _publish(server: Server, sequence: int, **kwargs: object) -> dict[str, object]:
    rollout = kwargs.pop("rollout", None)
    built = server.build(sequence=sequence, version=f"1.0.{sequence}", **kwargs)
    response = server.publish(
        built, fields={"rollout": str(rollout)} if rollout is not None else None
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_newest_eligible_release_is_offered(server: Server) -> None:
    """The newest active release newer than what the device runs is offered."""
    first = _publish(server, 1)
    second = _publish(server, 2)
    assert server.check()["manifestId"] == second["manifestId"]
    assert_no_offer(server.check(currentManifestId=second["manifestId"]))
    assert server.check(currentManifestId=first["manifestId"])["manifestId"] == second["manifestId"]


def test_binary_range_decides(server: Server) -> None:
    """A release is offered only to native versions inside its binary range."""
    _publish(server, 1, binary_range="1.x")
    newer = _publish(server, 2, binary_range="2.x")
    assert server.check(nativeVersion="2.1")["manifestId"] == newer["manifestId"]
    assert server.check(nativeVersion="1.4.0")["version"] == "1.0.1"
    assert_no_offer(server.check(nativeVersion="3.0.0"))


def test_rollout_cohort_is_stable_and_monotone(server: Server) -> None:
    """At 10 % a fixed set of devices gets it; at 50 % a superset; at 0 % nobody (S9)."""
    release = _publish(server, 1, rollout=10)
    devices = [f"device-{i}" for i in range(300)]
    inside = {d for d in devices if server.check(d)["updateAvailable"]}
    expected = {d for d in devices if bucket(d, str(release["manifestId"])) < 1000}
    assert inside == expected
    assert 10 < len(inside) < 60
    key = server.auth()
    server.client.patch(
        f"/releases/{release['id']}/rollout", json={"rolloutPercent": 50}, headers=key
    )
    widened = {d for d in devices if server.check(d)["updateAvailable"]}
    assert inside < widened
    server.client.patch(
        f"/releases/{release['id']}/rollout", json={"rolloutPercent": 0}, headers=key
    )
    assert not any(server.check(d)["updateAvailable"] for d in devices[:50])


def test_paused_release_falls_back_to_the_previous(server: Server) -> None:
    """Pausing the newest release offers the one before it; resuming restores it."""
    _publish(server, 1)
    newest = _publish(server, 2)
    key = server.auth()
    server.client.patch(f"/releases/{newest['id']}/rollout", json={"paused": True}, headers=key)
    assert server.check()["version"] == "1.0.1"
    server.client.patch(f"/releases/{newest['id']}/rollout", json={"paused": False}, headers=key)
    assert server.check()["version"] == "1.0.2"


def test_rolled_back_release_never_offered_again_to_that_device(server: Server) -> None:
    """A device that reported rolled_back is not offered that release again; others still are."""
    _publish(server, 1)
    bad = _publish(server, 2)
    assert server.check("device-1")["version"] == "1.0.2"  # cached before the report comes
    report = {
        "id": str(uuid.uuid4()),
        "appId": APP_ID,
        "deviceId": "device-1",
        "manifestId": bad["manifestId"],
        "status": "rolled_back",
        "phase": "first_launch",
        "reason": "2 launches without notify_ready",
    }
    assert server.client.post("/installations", json=report).status_code == 201
    assert server.client.post("/installations", json=report).status_code == 200  # idempotent
    assert server.check("device-1")["version"] == "1.0.1"
    assert server.check("device-2")["version"] == "1.0.2"


def test_archived_release_not_offered(server: Server) -> None:
    """DELETE archives a release: it stops being offered but stays listed."""
    release = _publish(server, 1)
    assert (
        server.client.delete(f"/releases/{release['id']}", headers=server.auth()).status_code == 200
    )
    assert_no_offer(server.check())
    shown = server.client.get(f"/releases/{release['id']}", headers=server.auth()).json()
    assert shown["active"] is False


def test_check_leaks_nothing_across_apps(server: Server) -> None:
    """A device of another app, or another channel, never sees this app's releases (S9)."""
    _publish(server, 1)
    assert_no_offer(server.check(appId="com.other.app"))
    assert_no_offer(server.check(channel="staging"))
    assert_no_offer(server.check(platform="ios"))


def test_post_check_matches_get(server: Server) -> None:
    """POST /update/check with a JSON body answers like GET."""
    release = _publish(server, 1)
    body = {
        "appId": APP_ID,
        "platform": "android",
        "deviceId": "device-9",
        "nativeVersion": "1.0.0",
    }
    answer = server.client.post("/update/check", json=body).json()
    assert answer["manifestId"] == release["manifestId"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"platform": "web"}, "platform"),
        ({"nativeVersion": "not a version"}, "nativeVersion"),
        ({"deviceId": "x" * 200}, "deviceId"),
        ({"currentManifestId": "zz"}, "currentManifestId"),
        ({"channel": "Prod Channel!"}, "channel"),
        ({"deviceId": "d\n"}, "deviceId"),  # a bare $ would let the newline through
        ({"channel": "production\n"}, "channel"),
        ({"platform": "android\n"}, "platform"),
        ({"currentManifestId": "a" * 64 + "\n"}, "currentManifestId"),
        ({"currentSequence": "\u00b2"}, "currentSequence"),  # a superscript digit
        ({"currentSequence": "9" * 5000}, "currentSequence"),
    ],
)
def test_bad_check_parameters_are_problems(
    server: Server, params: dict[str, str], field: str
) -> None:
    """Bad check input gets 422 problem+json naming the field, never a 500."""
    query = {
        "appId": APP_ID,
        "platform": "android",
        "deviceId": "d",
        "nativeVersion": "1.0.0",
        **params,
    }
    response = server.client.get("/update/check", params=query)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_download_url_signed_expiring_and_resumable(server: Server) -> None:
    """Signed URL: Range gives 206; tampered -> 403; other sha -> 403; expired -> 410 (S6)."""
    built = server.build(sequence=1, files={"index.android.bundle": bytes(range(256)) * 100})
    assert server.publish(built).status_code == 201
    url = server.check()["bundleUrl"]
    partial = server.client.get(url, headers={"Range": "bytes=100-"})
    assert partial.status_code == 206
    assert partial.content == built.archive[100:]
    assert (
        partial.headers["content-range"]
        == f"bytes 100-{len(built.archive) - 1}/{len(built.archive)}"
    )
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    tampered = f"{parts.path}?exp={query['exp'][0]}&sig={'0' * 64}"
    assert server.client.get(tampered).status_code == 403
    other = parts.path.replace(built.manifest.archive.sha256, "a" * 64) + "?" + parts.query
    assert server.client.get(other).status_code == 403
    assert server.client.get(parts.path).status_code == 403
    # Numbers that str.isdigit or int() would take badly: refused, never a 500.
    for exp in ("\u00b2" * 3, "9" * 5000, query["exp"][0] + "\n"):
        assert (
            server.client.get(parts.path, params={"exp": exp, "sig": query["sig"][0]}).status_code
            == 403
        )
    for bad_range in ("bytes=" + "9" * 5000 + "-", "bytes=0-" + "1" * 19):
        assert server.client.get(url, headers={"Range": bad_range}).status_code == 416
    server.clock.advance(seconds=server.settings.download_url_seconds + 1)
    assert server.client.get(url).status_code == 410


def test_device_tracking_is_batched(server: Server) -> None:
    """Checks record devices of known apps through the batch flusher, not on the request."""
    _publish(server, 1)
    server.check("tracked-device", nativeVersion="1.2")
    # An app that does not exist: answered, never written (a check names any app id it likes).
    server.check("ghost-device", appId="com.unknown.app")
    registration = {"appId": "com.unknown.app", "deviceId": "ghost-2", "platform": "android",
                    "nativeVersion": "1.0"}  # fmt: skip
    assert server.client.post("/devices", json=registration).status_code == 201

    async def rows() -> list[Device]:
        engine = create_async_engine(server.settings.database_url)
        async with async_sessionmaker(engine)() as session:
            found = list((await session.execute(select(Device))).scalars())
        await engine.dispose()
        return found

    deadline = time.monotonic() + 10
    found: list[Device] = []
    while time.monotonic() < deadline and not found:
        time.sleep(0.1)
        found = asyncio.run(rows())
    time.sleep(10 * server.settings.device_flush_seconds)  # later flushes wrote no ghost either
    found = asyncio.run(rows())
    assert [(d.device_id, d.native_version) for d in found] == [("tracked-device", "1.2")]


def test_a_squatted_report_id_cannot_hide_a_rollback(server: Server) -> None:
    """Report ids are the device's: one filed first under another app or device takes nothing."""
    _publish(server, 1)
    bad = _publish(server, 2)
    assert server.create_app("com.attacker.app", make_pki()).status_code == 201
    victim = {
        "id": "r" * 128,  # as long as validation allows (the column was 64)
        "appId": APP_ID,
        "deviceId": "device-1",
        "manifestId": bad["manifestId"],
        "status": "rolled_back",
        "phase": "first_launch",
    }
    squatters = [
        {**victim, "appId": "com.attacker.app", "status": "applied", "phase": None},
        {**victim, "deviceId": "device-2", "status": "applied", "phase": None},
    ]
    for squatter in squatters:
        assert server.client.post("/installations", json=squatter).status_code == 201
    answer = server.client.post("/installations", json=victim)
    assert (answer.status_code, answer.json()["duplicate"]) == (201, False)
    assert server.check("device-1")["version"] == "1.0.1"  # the rollback counted
    assert server.check("device-2")["version"] == "1.0.2"


def test_installation_reports_validate(server: Server) -> None:
    """Reports with an unknown status are 422 naming the field."""
    report = {
        "id": "r1",
        "appId": APP_ID,
        "deviceId": "d1",
        "manifestId": "a" * 64,
        "status": "exploded",
    }
    response = server.client.post("/installations", json=report)
    assert response.status_code == 422
    assert response.json()["field"] == "status"


def test_rollback_publishes_a_new_manifest_for_old_content(server: Server) -> None:
    """PATCH /releases/{id}/rollback activates a new signed manifest pointing at old content."""
    first = server.build(sequence=1, version="1.0.1")
    assert server.publish(first).status_code == 201
    assert server.publish(server.build(sequence=2, version="1.0.2")).status_code == 201
    import base64  # noqa: PLC0415

    import attrs  # noqa: PLC0415

    listing = server.client.get("/releases", headers=server.auth()).json()
    old = next(r for r in listing if r["version"] == "1.0.1")
    rollback = attrs.evolve(first.manifest, sequence=3, rollback_of=old["manifestId"])
    envelope = sign_release(rollback, [server.pki.publisher])
    response = server.client.patch(
        f"/releases/{old['id']}/rollback",
        json={"manifest": base64.b64encode(envelope).decode()},
        headers=server.auth(),
    )
    assert response.status_code == 200, response.text
    answer = server.check()
    assert answer["sequence"] == 3
    assert answer["hash"] == first.manifest.archive.sha256
    audit = server.client.get(f"/audit?appId={APP_ID}", headers=server.auth()).json()
    assert [e["action"] for e in audit][:3] == ["rollback", "publish", "publish"]


def test_metrics_count_checks_publishes_and_reports(server: Server) -> None:
    """/metrics reports what this process saw, in the Prometheus text format."""
    release = _publish(server, 1)
    server.check("m-1")
    server.check("m-2", currentManifestId=release["manifestId"])
    report = {
        "id": "metrics-report",
        "appId": APP_ID,
        "deviceId": "m-1",
        "manifestId": release["manifestId"],
        "status": "applied",
    }
    server.client.post("/installations", json=report)
    text = server.client.get("/metrics", headers=server.auth(server.admin_key)).text
    assert 'hotpatch_events_total{event="update_check",offered="true"} 1' in text
    assert 'hotpatch_events_total{event="update_check",offered="false"} 1' in text
    assert f'hotpatch_events_total{{event="publish",app="{APP_ID}"}} 1' in text
    assert 'hotpatch_events_total{event="installation_report",status="applied"} 1' in text


def test_health_reports_the_database(server: Server) -> None:
    """/health is 200 with the database reachable."""
    assert server.client.get("/health").json() == {
        "status": "ok",
        "database": "ok",
        "cache": "not configured",
    }


def test_metrics_need_a_credential_for_every_app(server: Server) -> None:
    """/metrics counts every tenant: no credential is 401, one app's key 403, '*' 200."""
    assert server.client.get("/metrics").status_code == 401
    assert server.client.get("/metrics", headers=server.auth()).status_code == 403
    viewer = server.create_key("viewer", ["*"])
    assert server.client.get("/metrics", headers=server.auth(viewer)).status_code == 200


def test_public_metrics_name_no_app(server: Server) -> None:
    """HOTPATCH_METRICS_PUBLIC=1 serves /metrics to anyone, summed over apps."""
    settings = attrs.evolve(server.settings, metrics_public=True)
    with TestClient(create_app(settings, clock=server.clock, migrate=False)) as public:
        _publish(attrs.evolve(server, client=public), 1)
        text = public.get("/metrics").text
    assert 'hotpatch_events_total{event="publish"} 1' in text
    assert APP_ID not in text


def test_health_names_no_database_detail(tmp_path: Path) -> None:
    """A database that does not answer is 503 'unavailable', never the driver's error text."""
    settings = Settings.from_env(
        {
            "HOTPATCH_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql+asyncpg://secret-user@127.0.0.1:1/secret-db",
            "JWT_SECRET": "x" * 48,
        }
    )
    with TestClient(create_app(settings, migrate=False)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "cache": "not configured",
    }


def test_release_stats(server: Server) -> None:
    """Stats count reports by status and devices that last checked in on the release."""
    release = _publish(server, 1)
    for index, status in enumerate(["applied", "applied", "rolled_back"]):
        report = {
            "id": f"s{index}",
            "appId": APP_ID,
            "deviceId": f"d{index}",
            "manifestId": release["manifestId"],
            "status": status,
            "phase": "first_launch" if status == "rolled_back" else None,
        }
        assert server.client.post("/installations", json=report).status_code == 201
    server.check("d0", currentManifestId=release["manifestId"])
    deadline = time.monotonic() + 10
    stats: dict[str, object] = {}
    while time.monotonic() < deadline:
        stats = server.client.get(f"/releases/{release['id']}/stats", headers=server.auth()).json()
        if stats["devicesRunning"] == 1:
            break
        time.sleep(0.1)
    assert stats["installations"] == {"applied": 2, "failed": 0, "rolled_back": 1}
    assert stats["failuresByPhase"] == {"rolled_back/first_launch": 1}
    assert stats["devicesRunning"] == 1


def test_forged_crash_flood_changes_nothing(server: Server) -> None:
    """Reports are advisory: a flood of forged ones moves no rollout, and sizes are capped (S10)."""
    release = _publish(server, 1, rollout=10)
    for index in range(20):
        report = {
            "id": f"forged-{index}",
            "appId": APP_ID,
            "deviceId": f"bot-{index}",
            "manifestId": release["manifestId"],
            "status": "applied" if index % 2 else "rolled_back",
            "reason": "x" * 5000,
        }
        assert server.client.post("/installations", json=report).status_code == 201
    shown = server.client.get(f"/releases/{release['id']}", headers=server.auth()).json()
    assert (shown["rolloutPercent"], shown["paused"], shown["active"]) == (10.0, False, True)
    huge = server.client.post(
        "/installations",
        content=b'{"id":"big","reason":"' + b"y" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413


def test_forged_reports_are_told_apart_from_devices_that_checked(server: Server) -> None:
    """S10: reports of made-up devices move the totals, but the stats say so.

    Before, a flood of forged ``rolled_back`` reports showed as crashes of
    real devices. Now each status is also counted over devices this server has
    seen check for updates, and a warning names the difference when most
    reports of a status come from devices it never saw.
    """
    release = _publish(server, 1)
    checked = [f"real-{n}" for n in range(3)]
    for device in checked:
        assert server.check(device)["updateAvailable"]
    reports = [(device, "applied") for device in checked]
    reports += [(f"bot-{n}", "rolled_back") for n in range(12)]
    reports += [(checked[0], "rolled_back")]
    for device, status in reports:
        report = {
            "id": f"{device}-{status}",
            "appId": APP_ID,
            "deviceId": device,
            "manifestId": release["manifestId"],
            "status": status,
        }
        assert server.client.post("/installations", json=report).status_code == 201
    deadline = time.monotonic() + 10  # the tracker writes check-ins in batches
    while True:
        stats = server.client.get(f"/releases/{release['id']}/stats", headers=server.auth()).json()
        if stats["installationsFromCheckedDevices"]["applied"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert stats["installations"] == {"applied": 3, "failed": 0, "rolled_back": 13}
    assert stats["installationsFromCheckedDevices"] == {"applied": 3, "failed": 0, "rolled_back": 1}
    [warning] = stats["warnings"]
    assert warning.startswith("12 of 13 rolled_back reports come from devices that never checked")


@pytest.mark.parametrize("rollout", ["5_0", "\u0665\u0660", " 50", "nan", "101"])
def test_a_rollout_that_is_not_a_plain_percentage_is_refused(server: Server, rollout: str) -> None:
    """A publish with such a rollout gets 422 naming the field, and stores nothing."""
    response = server.publish(server.build(sequence=1), fields={"rollout": rollout})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "rollout"
    assert server.release_rows() == 0
    assert server.blobs() == []
