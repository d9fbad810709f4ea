"""A simulated ``react-native-code-push`` device, for fleets and demos.

It speaks the CodePush device protocol to a HotPatch server exactly as
``react-native-code-push`` 9 with the ``code-push`` 4 SDK does (the real
client's JavaScript is what tests/e2e/test_codepush_client.py runs; this is
its behaviour in Python, so a :class:`~hotpatch_client.simulate.Fleet` can
mix CodePush devices with HotPatch agents):

- a launch installs a pending update, or, when the update installed at the
  previous launch never confirmed (the app crashed before
  ``notifyAppReady``), rolls it back, remembers its package hash as failed
  and reports ``DeploymentFailed``;
- ``notify_ready`` confirms the running update (``DeploymentSucceeded``);
- ``sync`` checks (``deployment_key``, ``app_version``, ``package_hash``,
  ``label``, ``client_unique_id``), skips a failed hash, downloads the zip
  (``Content-Length`` must match), checks the folder hash as a signed or
  diff update is checked (applying a diff, ``hotcodepush.json``, over the
  running package first), and stages it for the next launch
  (``ON_NEXT_RESTART``), reporting the download.

It verifies what a CodePush device verifies and no more: there is no trust
root here (see docs/howto/codepush.md, "What a CodePush device checks").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any, Final

import attrs
import httpx

from hotpatch_client.agent import SyncStatus
from hotpatch_core.archive import FileEntry, check_path
from hotpatch_core.codepush import package_hash
from hotpatch_core.errors import HashMismatchError, HotPatchError, SchemaError

__all__ = ["CodePushConfig", "CodePushDevice", "CodePushSync"]

#: The biggest download a simulated device accepts.
MAX_DOWNLOAD: Final = 256 * 1024 * 1024
#: A zip holding this file is a diff from the running package.
_DIFF_MANIFEST: Final = "hotcodepush.json"


@attrs.frozen
class CodePushConfig:
    """What a react-native-code-push build carries: server URL, deployment key, app version."""

    server_url: str
    deployment_key: str
    app_version: str
    device_id: str
    bundle_file: str = "index.android.bundle"


@attrs.frozen
class CodePushSync:
    """How one sync ended."""

    status: SyncStatus
    label: str | None = None
    error: Exception | None = None
    #: Bytes downloaded: the archive, or the diff from the running package.
    downloaded: int = 0


class CodePushDevice:
    """One installed app with react-native-code-push; its state lives in ``storage``."""

    def __init__(self, config: CodePushConfig, *, http: httpx.Client, storage: Path) -> None:
        """Open (or create) the device's storage; nothing is sent until :meth:`launch`."""
        self.config = config
        self._http = http
        self._storage = storage
        storage.mkdir(parents=True, exist_ok=True)
        self._state_file = storage / "codepush.json"
        self.state: dict[str, Any] = (
            json.loads(self._state_file.read_text(encoding="utf-8"))
            if self._state_file.exists()
            else {"current": None, "previous": None, "pending": None, "failed": []}
        )
        self._url = config.server_url.rstrip("/") + "/v0.1/public/codepush"

    def _save(self) -> None:
        partial = self._state_file.with_suffix(".tmp")
        partial.write_text(json.dumps(self.state), encoding="utf-8")
        partial.replace(self._state_file)

    @property
    def running(self) -> dict[str, Any] | None:
        """The package this launch runs (label, hash, description), or None for the binary's."""
        current: dict[str, Any] | None = self.state["current"]
        return current

    @property
    def failed(self) -> tuple[str, ...]:
        """Package hashes this device rolled back, ever."""
        return tuple(self.state["failed"])

    def _report(self, body: dict[str, Any]) -> None:
        payload = {
            "deployment_key": self.config.deployment_key,
            "app_version": self.config.app_version,
            "client_unique_id": self.config.device_id,
            **body,
        }
        # The client sends reports and does not wait for, or retry on, their answer.
        with contextlib.suppress(httpx.HTTPError):
            self._http.post(f"{self._url}/report_status/deploy", json=payload)

    def launch(self) -> None:
        """Start the app: install a pending update, or roll back one that never confirmed."""
        pending = self.state["pending"]
        if pending is not None and pending["loading"]:
            # CodePush.initializeUpdateAfterRestart: it crashed before notifyAppReady.
            self.state["failed"].append(pending["package_hash"])
            self.state["current"] = self.state["previous"]
            self.state["pending"] = None
            self._save()
            self._report({"label": pending["label"], "status": "DeploymentFailed"})
        elif pending is not None:
            self.state["previous"] = self.state["current"]
            self.state["current"] = {k: pending[k] for k in ("label", "package_hash", "version")}
            pending["loading"] = True
            self._save()

    def notify_ready(self) -> None:
        """Confirm the update the app runs, once it rendered (``notifyAppReady``)."""
        pending = self.state["pending"]
        if pending is not None and pending["loading"]:
            self.state["pending"] = None
            self._save()
            self._report({"label": pending["label"], "status": "DeploymentSucceeded"})

    def sync(self) -> CodePushSync:
        """Check, download and stage an update for the next launch."""
        try:
            return self._sync()
        except (httpx.HTTPError, HotPatchError, ValueError, KeyError, OSError) as exc:
            return CodePushSync(SyncStatus.FAILED, error=exc)

    def _sync(self) -> CodePushSync:
        current = self.running
        params = {
            "deployment_key": self.config.deployment_key,
            "app_version": self.config.app_version,
            "client_unique_id": self.config.device_id,
        }
        if current is not None:
            params |= {"package_hash": current["package_hash"], "label": current["label"]}
        response = self._http.get(f"{self._url}/update_check", params=params)
        response.raise_for_status()
        info = response.json()["update_info"]
        if (
            not info["is_available"]
            or info.get("update_app_version")
            or info["package_hash"] in self.state["failed"]
            or (current is not None and info["package_hash"] == current["package_hash"])
        ):
            return CodePushSync(SyncStatus.UP_TO_DATE)
        downloaded = self._download(info)
        self.state["pending"] = {
            "label": info["label"],
            "package_hash": info["package_hash"],
            "version": info.get("description") or info["label"],
            "loading": False,
        }
        self._save()
        with contextlib.suppress(httpx.HTTPError):
            self._http.post(
                f"{self._url}/report_status/download",
                json={
                    "deployment_key": self.config.deployment_key,
                    "client_unique_id": self.config.device_id,
                    "label": info["label"],
                },
            )
        return CodePushSync(SyncStatus.STAGED, label=info["label"], downloaded=downloaded)

    def _download(self, info: dict[str, Any]) -> int:
        response = self._http.get(info["download_url"], headers={"Accept-Encoding": "identity"})
        response.raise_for_status()
        body = response.content
        declared = int(response.headers.get("content-length", "-1"))
        if declared != len(body) or len(body) > MAX_DOWNLOAD:
            msg = f"Received {len(body)} bytes, expected {declared}"
            raise ValueError(msg)
        folder = self._storage / info["package_hash"]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if _DIFF_MANIFEST in names:
                # A diff: the running package's files, minus deletedFiles, under the zip's.
                names.remove(_DIFF_MANIFEST)
                running = self.running
                if running is not None:
                    shutil.copytree(
                        self._storage / running["package_hash"], folder, dirs_exist_ok=True
                    )
                for name in json.loads(archive.read(_DIFF_MANIFEST))["deletedFiles"]:
                    (folder / check_path(name)).unlink(missing_ok=True)
            for name in names:
                target = folder / check_path(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
        entries = [
            FileEntry(
                path.relative_to(folder).as_posix(),
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_size,
            )
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        ]
        if not any(Path(e.path).name == self.config.bundle_file for e in entries):
            msg = f"Update is invalid - no JS bundle file named {self.config.bundle_file!r}"
            raise SchemaError(msg)
        if package_hash(entries) != info["package_hash"]:
            msg = "The update contents failed the data integrity check."
            raise HashMismatchError(msg)
        return len(body)
