"""The server's HTTP API as the CLI uses it (over HTTP only: the CLI never imports the server).

Every non-2xx answer becomes a typed :class:`~hotpatch_cli.errors.CliError`
carrying the server's own one-line ``detail`` (problem+json). Answers are
read into the core's publisher documents (:mod:`hotpatch_core.publishing`),
the same classes the server writes them from; an answer that does not fit
is a :class:`~hotpatch_cli.errors.ServerError` naming the field.

``transport`` is the seam for tests: an httpx transport that serves the
requests in-process (for example Litestar's test transport over
``create_app``) instead of over the network.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final, TypeVar
from urllib.parse import quote

import httpx

from hotpatch_cli.errors import (
    AuthError,
    CliError,
    ConflictError,
    NotFoundError,
    ServerError,
    TooLargeUploadError,
    UsageError,
)
from hotpatch_core.errors import SchemaError
from hotpatch_core.publishing import (
    AppView,
    CreatedDeploymentKey,
    DeploymentKeyView,
    EmbeddedRegistration,
    EmbeddedView,
    ExpoAttachment,
    ExpoDirectiveView,
    ExpoRollBack,
    ExpoUpdateView,
    NewDeploymentKey,
    NewPatch,
    NewTrustRoot,
    PatchView,
    ReleaseView,
    Republish,
    RolloutChange,
)
from hotpatch_core.wire import structure, unstructure

__all__ = ["Api", "ProgressReader"]

_CHUNK: Final = 256 * 1024
T = TypeVar("T")


class ProgressReader:
    """A binary file wrapper that reports how many bytes were read (for upload progress)."""

    def __init__(self, handle: IO[bytes], progress: Callable[[int], None]) -> None:
        """Wrap ``handle``; ``progress`` gets the running total."""
        self._handle = handle
        self._progress = progress
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        """Read and report."""
        data = self._handle.read(size if size and size > 0 else _CHUNK)
        self._done += len(data)
        self._progress(self._done)
        return data

    def __iter__(self) -> Iterator[bytes]:
        """Yield the file in chunks."""
        while chunk := self.read(_CHUNK):
            yield chunk


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title")
        if isinstance(detail, str):
            return detail
    return response.reason_phrase


def _structure(value: object, kind: type[T], what: str) -> T:
    try:
        return structure(value, kind)
    except SchemaError as exc:
        raise ServerError(
            f"{what}: the server's answer is not a {kind.__name__} ({exc})",
            hint="the server and this CLI disagree: update both to the same version",
        ) from None


class Api:
    """A client of one server with one credential."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Talk to ``base_url`` as ``token`` (an ``hp_`` API key or an access token)."""
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(
                f"API URL {base_url!r} is not an http(s) URL",
                hint="e.g. --api-url https://updates.example.com",
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Api:
        """Use as a context manager."""
        return self

    def __exit__(self, *_exc: object) -> None:
        """Close."""
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServerError(
                f"{self.base_url} did not answer in time", hint="check the server, then retry"
            ) from None
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach {self.base_url}: {exc}", hint="check --api-url and the network"
            ) from None
        if response.is_success:
            return response.json() if response.content else None
        raise self._error(response)

    def _read(self, kind: type[T], method: str, path: str, **kwargs: Any) -> T:
        """Send a request and read its answer as ``kind``."""
        return _structure(self._send(method, path, **kwargs), kind, f"{method} {path}")

    def _write(self, kind: type[T], method: str, path: str, document: object) -> T:
        """Send ``document`` (a core request body) as JSON; read the answer as ``kind``."""
        return self._read(kind, method, path, json=unstructure(document))

    def _read_all(self, kind: type[T], method: str, path: str, **kwargs: Any) -> list[T]:
        """Send a request and read its answer as a list of ``kind``."""
        answer = self._send(method, path, **kwargs)
        if not isinstance(answer, list):
            raise ServerError(f"{method} {path}: the server answered {answer!r:.80}, not a list")
        return [_structure(item, kind, f"{method} {path}") for item in answer]

    def _error(self, response: httpx.Response) -> CliError:  # noqa: PLR0911 - one per status
        detail = _detail(response)
        status = response.status_code
        if status == httpx.codes.UNAUTHORIZED:
            return AuthError(
                f"the server refused the token: {detail}",
                hint="run `hotpatch login` or set HOTPATCH_TOKEN",
            )
        if status == httpx.codes.FORBIDDEN:
            return AuthError(f"not allowed: {detail}", hint="use a key with a role for this app")
        if status == httpx.codes.NOT_FOUND:
            if detail != response.reason_phrase:
                return NotFoundError(detail)  # the server's own words: no such release, app, key
            # A bare "Not Found": no route at that URL (a wrong --api-url, or a proxy's page).
            request = response.request
            return NotFoundError(
                f"{request.method} {request.url.copy_with(query=None)} answered 404 ({detail})",
                hint=f"check that --api-url {self.base_url} is the HotPatch server itself: "
                f"{self.base_url}/health should answer, and the URL needs no extra path",
            )
        if status == httpx.codes.CONFLICT:
            return ConflictError(detail)
        if status == httpx.codes.REQUEST_ENTITY_TOO_LARGE:
            return TooLargeUploadError(
                f"the server refused the upload as too large: {detail}",
                hint="shrink the bundle or raise the server's cap",
            )
        if status >= httpx.codes.INTERNAL_SERVER_ERROR or status == httpx.codes.TOO_MANY_REQUESTS:
            return ServerError(f"the server failed (HTTP {status}): {detail}")
        return UsageError(f"the server refused the request (HTTP {status}): {detail}")

    # --- reads -------------------------------------------------------------

    def check_credentials(self, app: str | None) -> AppView | None:
        """Prove the token works (and, given an app, may read it); return the app."""
        if app:
            return self.app(app)
        self._send("GET", "/releases", params={"limit": 1})
        return None

    def app(self, app_id: str) -> AppView:
        """Return an app: its epoch and registered publisher keys."""
        return self._read(AppView, "GET", f"/apps/{quote(app_id, safe='')}")

    def releases(
        self,
        app_id: str,
        *,
        platform: str | None = None,
        channel: str | None = None,
        version: str | None = None,
        limit: int | None = None,
    ) -> list[ReleaseView]:
        """Return an app's releases, newest first, filtered by platform / channel / version."""
        filters = {"platform": platform, "channel": channel, "version": version, "limit": limit}
        params = {"appId": app_id, **{k: v for k, v in filters.items() if v is not None}}
        return self._read_all(ReleaseView, "GET", "/releases", params=params)

    def release(self, release_id: int) -> ReleaseView:
        """Return one release with its signed manifest."""
        return self._read(ReleaseView, "GET", f"/releases/{release_id}")

    def download(self, url: str, target: Path, limit: int) -> None:
        """Stream ``url`` into ``target``, refusing more than ``limit`` bytes."""
        written = 0
        try:
            with self._http.stream("GET", url) as response, target.open("wb") as out:
                if not response.is_success:
                    raise self._error(response)
                for chunk in response.iter_raw():
                    written += len(chunk)
                    if written > limit:
                        raise ServerError(f"download of {url} exceeds {limit} bytes")
                    out.write(chunk)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot download {url}: {exc}") from None

    # --- writes ------------------------------------------------------------

    def publish(  # noqa: PLR0913 - the upload's fields, keyword-only after the app
        self,
        app_id: str,
        envelope: bytes,
        archive: Path,
        *,
        rollout: float,
        mandatory: bool,
        progress: Callable[[int], None],
    ) -> ReleaseView:
        """Upload a signed release (multipart, streamed from disk)."""
        with archive.open("rb") as handle:
            return self._read(
                ReleaseView,
                "POST",
                "/releases",
                data={
                    "appId": app_id,
                    "rollout": f"{rollout:g}",
                    "mandatory": "true" if mandatory else "false",
                },
                files={
                    "manifest": ("manifest.json", envelope, "application/json"),
                    "archive": ("release.zip", ProgressReader(handle, progress), "application/zip"),
                },
                timeout=httpx.Timeout(60.0, write=600.0),
            )

    def change_rollout(
        self, release_id: int, *, percent: float | None, paused: bool | None
    ) -> ReleaseView:
        """Change a release's rollout percentage, or pause / resume it."""
        change = RolloutChange(rollout_percent=percent, paused=paused)
        return self._write(ReleaseView, "PATCH", f"/releases/{release_id}/rollout", change)

    def rollback(self, release_id: int, envelope: bytes, rollout: float) -> ReleaseView:
        """Activate a new signed manifest for ``release_id``'s content on its channel."""
        body = Republish(_base64(envelope), rollout_percent=rollout)
        return self._write(ReleaseView, "PATCH", f"/releases/{release_id}/rollback", body)

    def upload_patch(self, release_id: int, base_manifest_id: str, patch: bytes) -> PatchView:
        """Upload a patch to ``release_id`` from the release ``base_manifest_id``."""
        body = NewPatch(base_manifest_id, _base64(patch))
        return self._write(PatchView, "POST", f"/releases/{release_id}/patches", body)

    def register_embedded(self, app_id: str, bundle: EmbeddedRegistration) -> EmbeddedView:
        """Register the bundle shipped in one native version as a patch base."""
        return self._write(EmbeddedView, "POST", f"/apps/{quote(app_id, safe='')}/embedded", bundle)

    def promote(self, release_id: int, envelope: bytes, rollout: float) -> ReleaseView:
        """Publish ``release_id``'s content on another channel under a new signed manifest."""
        body = Republish(_base64(envelope), rollout_percent=rollout)
        return self._write(ReleaseView, "POST", f"/releases/{release_id}/promote", body)

    def install_trust_root(self, app_id: str, envelope: bytes) -> AppView:
        """Install the next signed trust root of ``app_id`` (an admin's call)."""
        body = NewTrustRoot(_base64(envelope))
        return self._write(AppView, "PUT", f"/apps/{quote(app_id, safe='')}/trust-root", body)

    def create_deployment_key(
        self, app_id: str, platform: str, channel: str, name: str
    ) -> CreatedDeploymentKey:
        """Create a CodePush deployment key; the answer holds the key, shown only this once."""
        body = NewDeploymentKey(platform, channel=channel, name=name)
        path = f"/apps/{quote(app_id, safe='')}/deployment-keys"
        return self._write(CreatedDeploymentKey, "POST", path, body)

    def deployment_keys(self, app_id: str) -> list[DeploymentKeyView]:
        """List an app's CodePush deployment keys (never the keys themselves)."""
        return self._read_all(
            DeploymentKeyView, "GET", f"/apps/{quote(app_id, safe='')}/deployment-keys"
        )

    def revoke_deployment_key(self, app_id: str, key_id: str) -> DeploymentKeyView:
        """Revoke a CodePush deployment key."""
        return self._read(
            DeploymentKeyView,
            "DELETE",
            f"/apps/{quote(app_id, safe='')}/deployment-keys/{quote(key_id, safe='')}",
        )

    def expo_preview(self, release_id: int, attachment: ExpoAttachment) -> bytes:
        """Return the exact Expo manifest bytes the server would serve for ``release_id``."""
        body = unstructure(attachment)
        try:
            response = self._http.post(f"/releases/{release_id}/expo/preview", json=body)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach {self.base_url}: {exc}", hint="check --api-url and the network"
            ) from None
        if not response.is_success:
            raise self._error(response)
        return response.content

    def expo_attach(self, release_id: int, attachment: ExpoAttachment) -> ExpoUpdateView:
        """Attach a release's Expo manifest (and its signature)."""
        return self._write(ExpoUpdateView, "PUT", f"/releases/{release_id}/expo", attachment)

    def expo_roll_back(self, app_id: str, rollback: ExpoRollBack) -> ExpoDirectiveView:
        """Roll an Expo channel's runtime version back to the embedded bundle."""
        path = f"/apps/{quote(app_id, safe='')}/expo/roll-back-to-embedded"
        return self._write(ExpoDirectiveView, "PUT", path, rollback)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
