"""Test helpers for integrators and our own tests: a clock, an admin key, a harness.

``Server`` wraps Litestar's ``TestClient`` (an ``httpx.Client``) around the real
app and acts as admin, publisher and device::

    with TestClient(create_app(settings, clock=clock, migrate=False)) as client:
        server = Server(client, settings, clock, make_pki(), bootstrap_admin(settings, clock()), "")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import attrs
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import ReleaseManifest
from hotpatch_core.release import sign_release
from hotpatch_core.testing import PKI, BuiltRelease, FakeClock, build_release, make_pki
from hotpatch_server.app import create_app
from hotpatch_server.auth import Role, create_api_key
from hotpatch_server.migrate import upgrade
from hotpatch_server.settings import Settings

__all__ = [
    "APP_ID",
    "OTHER_APP",
    "FakeClock",
    "Server",
    "ServerDidNotStartError",
    "ServerProcess",
    "assert_no_offer",
    "bootstrap_admin",
    "expo_code_signing",
    "free_port",
    "in_process_server",
    "server_process",
    "serving",
    "wait_until_serving",
]

APP_ID = "com.example.app"
OTHER_APP = "com.other.app"


def assert_no_offer(answer: dict[str, Any]) -> None:
    """Assert an update check ``answer`` offers nothing: no release, no URL, no patch.

    It may carry the channel head, which lists what the channel offers others.
    """
    assert answer["updateAvailable"] is False, answer  # noqa: S101 - a test helper
    assert set(answer) <= {"updateAvailable", "head"}, answer  # noqa: S101 - a test helper


@attrs.define
class Server:
    """The app under test, with helpers to act as an admin, a publisher and a device."""

    client: TestClient[Any]
    settings: Settings
    clock: FakeClock
    pki: PKI
    admin_key: str
    publisher_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        """Return an Authorization header for ``key`` (default: the publisher key)."""
        return {"Authorization": f"Bearer {key or self.publisher_key}"}

    def create_app(self, app_id: str, pki: PKI) -> Any:
        """Create ``app_id`` with ``pki``'s trust root as the admin."""
        return self.client.post(
            "/apps",
            json={"id": app_id, "trustRoot": base64.b64encode(pki.root_bytes).decode()},
            headers=self.auth(self.admin_key),
        )

    def create_key(self, role: str, apps: list[str], **extra: Any) -> str:
        """Create an API key as the admin; return its plaintext."""
        return self.new_key(role, apps, **extra)[1]

    def new_key(self, role: str, apps: list[str], **extra: Any) -> tuple[str, str]:
        """Create an API key as the admin; return its id and its plaintext."""
        response = self.client.post(
            "/keys",
            json={"name": f"{role}-key", "role": role, "apps": apps, **extra},
            headers=self.auth(self.admin_key),
        )
        response.raise_for_status()
        created = response.json()
        return str(created["id"]), str(created["key"])

    def build(self, **kwargs: Any) -> BuiltRelease:
        """Build an unsigned release of this app (override any field)."""
        files = kwargs.pop("files", None) or {
            "index.android.bundle": f"release {kwargs.get('sequence', 1)}".encode() * 20,
            "assets/logo.png": b"\x89PNG" + bytes(100),
        }
        return build_release(files, app_id=kwargs.pop("app_id", APP_ID), **kwargs)

    def publish(
        self,
        built: BuiltRelease,
        *,
        envelope: bytes | None = None,
        archive: bytes | None = None,
        key: str | None = None,
        app_id: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> Any:
        """Publish ``built`` (signed by the PKI's publisher unless ``envelope``)."""
        envelope = (
            envelope if envelope is not None else sign_release(built.manifest, [self.pki.publisher])
        )
        data = {"appId": app_id or built.manifest.app_id, "rollout": "100", **(fields or {})}
        return self.client.post(
            "/releases",
            data=data,
            files={
                "manifest": ("manifest.json", envelope, "application/json"),
                "archive": (
                    "release.zip",
                    archive if archive is not None else built.archive,
                    "application/zip",
                ),
            },
            headers=self.auth(key),
        )

    def published(self, sequence: int, **kwargs: Any) -> dict[str, Any]:
        """Build, sign and publish version ``1.0.<sequence>`` (``rollout=`` a percent); its JSON."""
        rollout = kwargs.pop("rollout", None)
        built = self.build(sequence=sequence, version=f"1.0.{sequence}", **kwargs)
        response = self.publish(
            built, fields={"rollout": str(rollout)} if rollout is not None else None
        )
        if response.status_code != httpx.codes.CREATED:
            msg = f"publishing 1.0.{sequence} failed: {response.text}"
            raise AssertionError(msg)
        document: dict[str, Any] = response.json()
        return document

    def check(self, device_id: str = "device-1", **params: Any) -> Any:
        """Check for an update as a device; return the JSON answer."""
        query = {
            "appId": APP_ID,
            "platform": "android",
            "channel": "production",
            "deviceId": device_id,
            "nativeVersion": "1.0.0",
            **params,
        }
        response = self.client.get("/update/check", params=query)
        response.raise_for_status()
        return response.json()

    def deployment_key(
        self, platform: str = "android", channel: str = "production", app_id: str = APP_ID
    ) -> str:
        """Create a CodePush deployment key as the admin; return the key."""
        response = self.client.post(
            f"/apps/{app_id}/deployment-keys",
            json={"platform": platform, "channel": channel},
            headers=self.auth(self.admin_key),
        )
        response.raise_for_status()
        return str(response.json()["key"])

    def codepush_check(self, key: str, device_id: str = "device-1", **params: str) -> Any:
        """Check for an update as a CodePush device; return the response."""
        query = {
            "deployment_key": key,
            "app_version": "1.0.0",
            "client_unique_id": device_id,
            **params,
        }
        return self.client.get("/v0.1/public/codepush/update_check", params=query)

    def expo_attach(self, release_id: int, runtime_version: str = "1.0.0", **body: Any) -> Any:
        """Attach release ``release_id``'s Expo manifest as the publisher; return the response."""
        return self.client.put(
            f"/releases/{release_id}/expo",
            json={"runtimeVersion": runtime_version, **body},
            headers=self.auth(),
        )

    def expo_check(
        self, device_id: str = "4ee2e5f5-3f8d-4d0b-9d43-1a2b3c4d5e6f", **headers: str
    ) -> Any:
        """Request a manifest as an expo-updates device (header names with ``_`` for ``-``)."""
        sent = {
            "expo-protocol-version": "1",
            "expo-platform": "android",
            "expo-runtime-version": "1.0.0",
            "eas-client-id": device_id,
            "accept": "multipart/mixed,application/expo+json,application/json",
            **{name.replace("_", "-"): value for name, value in headers.items()},
        }
        return self.client.get(f"/expo/{APP_ID}/manifest", headers=sent)

    def release_rows(self) -> int:
        """Return how many releases the admin can list."""
        listing = self.client.get("/releases", headers=self.auth(self.admin_key))
        return len(listing.json())

    def blobs(self) -> list[Path]:
        """Return the archive files on disk."""
        root = self.settings.blob_dir
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def expo_code_signing(now: datetime, *, code_signing: bool = True) -> tuple[rsa.RSAPrivateKey, str]:
    """Return an RSA key and its self-signed PEM certificate, valid around ``now``.

    The certificate is what ``npx expo-updates codesigning:generate`` makes
    (Key Usage digitalSignature, Extended Key Usage codeSigning); without
    ``code_signing`` it lacks the extended usage, which devices refuse.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HotPatch test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if code_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def bootstrap_admin(settings: Settings, now: datetime) -> str:
    """Create an admin API key for every app directly in the database, made at ``now``.

    Pass the harness clock's time, so the key is as old as everything else the
    test makes and listings sort it where the test expects.
    """

    async def go() -> str:
        engine = create_async_engine(settings.database_url)
        async with async_sessionmaker(engine)() as session:
            _, key = await create_api_key(
                session, name="admin", role=Role.ADMIN, apps=["*"], now=now
            )
            await session.commit()
        await engine.dispose()
        return key

    return asyncio.run(go())


class ServerDidNotStartError(RuntimeError):
    """A server process exited, or did not answer in time."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(
    url: str, process: subprocess.Popen[Any], timeout: float = 60.0
) -> httpx.Response:
    """Poll ``url`` until the server in ``process`` answers; return that first response."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if process.poll() is not None:
                raise ServerDidNotStartError(f"server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise ServerDidNotStartError(f"no answer from {url} in {timeout} s") from None
            time.sleep(0.3)


@contextlib.contextmanager
def in_process_server(
    data_dir: Path, database_url: str | None = None, pki: PKI | None = None, **overrides: Any
) -> Iterator[Server]:
    """Run the real app in-process (SQLite in ``data_dir`` unless ``database_url``).

    Keyword arguments override fields of its :class:`Settings`. It signs
    channel heads on every database (a key is made up for PostgreSQL too),
    unless ``timestamp_key=None`` is passed.

    The app ``com.example.app`` exists with ``pki``'s trust root (default
    :func:`make_pki`), and the harness holds an admin and a publisher key.
    Its client is an ``httpx.Client`` at ``http://testserver.local``, which
    is also the public URL of download links.
    """
    settings = attrs.evolve(
        Settings.from_env(
            {
                "HOTPATCH_DATA_DIR": str(data_dir),
                "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{data_dir / 'hotpatch.db'}",
                "JWT_SECRET": "x" * 48,
                "HOTPATCH_PUBLIC_URL": "http://testserver.local",
            }
        ),
        device_flush_seconds=0.05,
        **{"timestamp_key": SigningKey.generate(), **overrides},
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    clock = FakeClock()
    admin_key = bootstrap_admin(settings, clock())
    pki = pki or make_pki()
    app = create_app(settings, clock=clock, migrate=False)
    with TestClient(app, base_url="http://testserver.local") as client:
        harness = Server(client, settings, clock, pki, admin_key, "")
        created = harness.create_app(APP_ID, pki)
        if created.status_code != httpx.codes.CREATED:
            raise ServerDidNotStartError(f"could not create {APP_ID}: {created.text}")
        harness.publisher_key = harness.create_key("publisher", [APP_ID])
        yield harness


@attrs.frozen
class ServerProcess:
    """A real ``hotpatch-server`` process on loopback, set up with one app and a publisher key."""

    base_url: str
    process: subprocess.Popen[str]
    env: dict[str, str]
    pki: PKI
    publisher_key: str

    def admin(self, *args: str) -> str:
        """Run an admin command against the same data; return its output."""
        return _admin(self.env, *args)

    def now(self) -> datetime:
        """Return the server process's clock (its ``Date`` header, to the second).

        Tests of what the server checks against its clock (certificate
        validity, a directive's commit time) take their times from here: the
        server's clock is the harness's one clock.
        """
        response = httpx.get(f"{self.base_url}/health", timeout=30)
        return email.utils.parsedate_to_datetime(response.headers["date"])

    def publish(
        self,
        manifest: ReleaseManifest,
        archive: bytes | IO[bytes],
        rollout: int = 100,
        signer: SigningKey | None = None,
    ) -> httpx.Response:
        """Sign ``manifest`` (default: the PKI's publisher) and upload it with ``archive``."""
        return httpx.post(
            f"{self.base_url}/releases",
            data={"appId": manifest.app_id, "rollout": str(rollout)},
            files={
                "manifest": ("m.json", sign_release(manifest, [signer or self.pki.publisher])),
                "archive": ("a.zip", archive),
            },
            headers={"Authorization": f"Bearer {self.publisher_key}"},
            timeout=300,
        )


def _admin(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own console script
        [str(Path(sys.executable).with_name("hotpatch-server")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise ServerDidNotStartError(f"hotpatch-server {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def server_process(
    data_dir: Path, pki: PKI | None = None, output: IO[str] | None = None, **env: str
) -> Iterator[ServerProcess]:
    """Run ``hotpatch-server serve`` on a free loopback port with its embedded defaults.

    ``com.example.app`` is created with ``pki``'s trust root and a publisher
    key; ``env`` adds or overrides environment variables; the server's log
    goes to ``output`` (default: discarded). The process is stopped
    (SIGTERM, then SIGKILL) when the block ends.
    """
    pki = pki or make_pki()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "HOTPATCH_DATA_DIR": str(data_dir),
        "HOTPATCH_PUBLIC_URL": base_url,
    }
    environment.pop("DATABASE_URL", None)
    environment.update(env)
    data_dir.mkdir(parents=True, exist_ok=True)
    root = data_dir / "trust-root.json"
    root.write_bytes(pki.root_bytes)
    _admin(environment, "migrate")
    _admin(environment, "create-app", APP_ID, "--trust-root", str(root))
    key = (
        _admin(
            environment, "create-key", "--name", "publisher", "--role", "publisher", "--app", APP_ID
        )
        .strip()
        .splitlines()[-1]
    )
    with serving(environment, port, output) as process:
        yield ServerProcess(base_url, process, environment, pki, key)


@contextlib.contextmanager
def serving(
    env: dict[str, str], port: int, output: IO[str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run ``hotpatch-server serve`` on ``port`` until it answers; stop it when the block ends.

    Its output goes to ``output`` (default: discarded). It is stopped with
    SIGTERM, then SIGKILL after 10 s.
    """
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [str(Path(sys.executable).with_name("hotpatch-server")), "serve", "--port", str(port)],
        env=env,
        stdout=output or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/health", process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
