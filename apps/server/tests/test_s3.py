"""The S3 backend against a real S3-compatible server process (moto's server)."""

from __future__ import annotations

import asyncio
import io
import sys
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import boto3
import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hotpatch_core.testing import make_pki
from hotpatch_server.app import blob_store_for, create_app
from hotpatch_server.fault_injection import MotoS3, libfaketime
from hotpatch_server.migrate import upgrade
from hotpatch_server.settings import Settings
from hotpatch_server.storage.cleanup import CleanupReport, clean_up
from hotpatch_server.testing import APP_ID, FakeClock, Server, bootstrap_admin

MOTO = str(Path(sys.executable).with_name("moto_server"))
BUCKET = "hotpatch-bundles"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server process on loopback."""
    moto = MotoS3(bucket=BUCKET)
    moto.start()
    yield moto.endpoint
    moto.stop()


def _bucket(endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if BUCKET in existing:
        for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def s3_server(s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[Server, Any]]:
    """The app storing archives in the moto bucket."""
    client = _bucket(s3_endpoint)
    settings = attrs.evolve(
        Settings.from_env(
            {
                "HOTPATCH_DATA_DIR": str(tmp_path / "data"),
                "S3_BUCKET": BUCKET,
                "S3_ENDPOINT": s3_endpoint,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
            }
        ),
    )
    upgrade(settings.database_url)
    clock = FakeClock()
    admin = bootstrap_admin(settings, clock())
    with TestClient(create_app(settings, clock=clock, migrate=False)) as test_client:
        server = Server(test_client, settings, clock, make_pki(), admin, "")
        assert server.create_app(APP_ID, server.pki).status_code == 201
        server.publisher_key = server.create_key("publisher", [APP_ID])
        yield server, client


def _objects(client: Any) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_archives_go_to_the_bucket_and_devices_download_from_it(
    s3_server: tuple[Server, Any], s3_endpoint: str
) -> None:
    """Publish stores archives/<sha256>; the check's URL is presigned, straight at the bucket."""
    server, client = s3_server
    built = server.build(sequence=1)
    assert server.publish(built).status_code == 201
    assert _objects(client) == [f"archives/{built.manifest.archive.sha256}"]
    head = client.head_object(Bucket=BUCKET, Key=f"archives/{built.manifest.archive.sha256}")
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    url = server.check()["bundleUrl"]
    assert url.startswith(f"{s3_endpoint}/{BUCKET}/archives/")
    assert "X-Amz-Signature" in url
    assert httpx.get(url).content == built.archive
    assert not server.settings.blob_dir.exists()


def test_rejected_publish_leaves_no_object(s3_server: tuple[Server, Any]) -> None:
    """A refused upload leaves the bucket untouched (S4)."""
    server, client = s3_server
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../x.js", b"x")
    response = server.publish(server.build(sequence=1), archive=evil.getvalue())
    assert response.status_code == 422
    duplicate_ok = server.publish(server.build(sequence=1))
    assert duplicate_ok.status_code == 201
    again = server.publish(server.build(sequence=2))  # same version -> 409
    assert again.status_code == 409
    assert len(_objects(client)) == 1


def test_the_cleanup_pass_removes_only_unreferenced_objects(s3_server: tuple[Server, Any]) -> None:
    """An object no release names (a publish killed before its commit) goes; the rest stays."""
    server, client = s3_server
    built = server.build(sequence=1)
    assert server.publish(built).status_code == 201
    orphan = "ab" * 32
    client.put_object(Bucket=BUCKET, Key=f"archives/{orphan}", Body=b"orphan")
    client.put_object(Bucket=BUCKET, Key="elsewhere/not-ours", Body=b"x")
    engine = create_async_engine(server.settings.database_url)

    async def run(grace: timedelta) -> CleanupReport:
        return await clean_up(
            sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
            store=blob_store_for(server.settings),
            temporary=server.settings.data_dir / "tmp",
            grace=grace,
        )

    try:
        kept = asyncio.run(run(timedelta(hours=1)))
        assert (kept.blobs, kept.removed) == (2, [])
        cleaned = asyncio.run(run(timedelta(0)))
    finally:
        asyncio.run(engine.dispose())
    assert cleaned.removed == [orphan]
    assert sorted(_objects(client)) == [
        f"archives/{built.manifest.archive.sha256}",
        "elsewhere/not-ours",
    ]


def test_object_ages_are_measured_on_the_stores_clock(tmp_path: Path) -> None:
    """A store whose clock is 3 h behind the server's: a fresh upload is fresh, not 3 h old.

    Otherwise a server clock running ahead would let a cleanup pass remove the
    archive of a publish that is still uploading.
    """
    if libfaketime() is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    moto = MotoS3(bucket=BUCKET, faketime="-3h")
    moto.start()
    try:
        moto.client().put_object(Bucket=BUCKET, Key="archives/" + "cd" * 32, Body=b"fresh")
        settings = Settings.from_env(
            {
                "HOTPATCH_DATA_DIR": str(tmp_path),
                "S3_BUCKET": BUCKET,
                "S3_ENDPOINT": moto.endpoint,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
            }
        )
        store = blob_store_for(settings)
        ((name, age),) = asyncio.run(store.listing())
    finally:
        moto.stop()
    assert name == "cd" * 32
    assert timedelta(0) <= age < timedelta(minutes=5)
