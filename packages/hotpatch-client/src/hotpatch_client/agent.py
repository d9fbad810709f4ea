"""The device agent: the reference implementation of the HotPatch device protocol.

:class:`Agent` feeds events into the core state machine
(:func:`hotpatch_core.machine.step`), saves the state it returns, and only
then performs the actions it asks for. Its public calls mirror what a
native SDK exposes to an app::

    agent = Agent(config, http=device_http_client(), storage_dir=app_files / "ota")
    path = agent.on_launch()        # before the JS engine starts
    # ... start the engine on `path`, or on the embedded bundle when None ...
    agent.notify_ready()            # after the first screen rendered
    result = agent.sync()           # in the background: check, download, stage

Three rules hold everywhere:

1. *State before action.* Reports are queued and the new state is saved
   (temp file, fsync, rename, fsync the directory) before any other action
   runs, so a crash at any point restarts from a state that describes what is
   on disk. The high-water mark is raised before a byte is downloaded (A8),
   and a newer trust root, fetched before each check, is saved before
   anything is verified with it (A10).
2. *One source of truth.* The in-memory state is always the last one saved.
   When a save fails, the agent re-reads the state from disk before its next
   call, exactly as after a restart.
3. *Nothing half-done is used.* Downloads go to ``downloads/``, installs to a
   staging directory; a bundle becomes launchable only through the state
   file, which names directories that were complete and fsynced before it
   was written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs
import httpx

from hotpatch_client.errors import NetworkError, SlowDownloadError, StorageError
from hotpatch_client.fs import FileSystem, OsFileSystem, walk_files
from hotpatch_client.http import remaining, request_deadline
from hotpatch_client.install import (
    ENVELOPE,
    FILES,
    LocalTamperingError,
    digest_of,
    install_from_patch,
    install_release,
    verify_installed,
)
from hotpatch_client.limits import DEFAULT_DEVICE_LIMITS, DeviceLimits
from hotpatch_client.reports import ReportQueue
from hotpatch_client.storage import (
    DOWNLOADS,
    StoredState,
    download_path,
    load_state,
    recover,
    release_dir,
    save_state,
)
from hotpatch_client.transfer import DownloadPolicy, Fetched, fetch_archive, raw_chunks
from hotpatch_core.archive import FileEntry
from hotpatch_core.envelope import decode_envelope
from hotpatch_core.errors import (
    FormatError,
    HotPatchError,
    IllegalTransitionError,
    SchemaError,
    TooLargeError,
)
from hotpatch_core.machine import (
    Action,
    ApplyRequested,
    CheckAnswered,
    CheckFailed,
    CheckStarted,
    DeleteBundle,
    DeviceConfig,
    DeviceState,
    DiscardDownload,
    Download,
    DownloadFailed,
    DownloadFinished,
    Event,
    FetchPatch,
    FetchRoot,
    Install,
    InstallFailed,
    InstallFinished,
    Interrupted,
    Launched,
    PatchFailed,
    PatchHint,
    PatchInstalled,
    Phase,
    Ready,
    Reject,
    Report,
    ReportPhase,
    RequestCheck,
    RestartApp,
    RootAnswered,
    RunBundle,
    step,
    trusted_root,
)
from hotpatch_core.manifest import Platform, ReleaseManifest, decode_manifest
from hotpatch_core.protocol import NAME, NAME_RULE, CheckRequest, check_query, read_check_answer
from hotpatch_core.release import DeviceIdentity, VerifiedRelease, verify_release
from hotpatch_core.strictjson import loads
from hotpatch_core.trust import TrustRoot
from hotpatch_core.versions import Version
from hotpatch_diff import PatchSide, embedded_id

__all__ = [
    "Agent",
    "AgentConfig",
    "Clock",
    "Progress",
    "SyncResult",
    "SyncStatus",
    "SystemClock",
    "UpdateInfo",
]

log = logging.getLogger("hotpatch_client")

#: The largest update-check answer read (the envelope is capped far below this).


class Clock(Protocol):
    """Wall time for verification, monotonic time and sleep for downloads."""

    def now(self) -> datetime:
        """Return the current time (timezone-aware)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        time.sleep(seconds)


def _native(value: str) -> str:
    Version.parse_native(value)
    return value


def _name(_instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    """Refuse an app or device id its reports could not carry (NAME), at configuration."""
    if value is not None and not NAME.fullmatch(value):
        raise SchemaError(f"must be {NAME_RULE}", attribute.name)


@attrs.frozen
class AgentConfig:
    """What an app build fixes: where its server is, what it is, and whom it trusts.

    ``native_version`` is the binary's own version (``versionName`` /
    ``CFBundleShortVersionString``). ``device_id`` defaults to a random id
    generated once and kept in the storage directory. ``bundle_file`` is the
    archive entry the JS engine loads (``index.android.bundle`` on Android,
    ``main.jsbundle`` on iOS). ``embedded_dir`` is where the bundle shipped in
    the binary can be read (its files, as ``hotpatch embedded register``
    sent them): with it, a device's first update can be a patch from it.
    """

    server_url: str
    app_id: str = attrs.field(validator=_name)
    platform: Platform
    native_version: str = attrs.field(converter=_native)
    trust_root: TrustRoot
    channel: str = "production"
    device_id: str | None = attrs.field(default=None, validator=_name)
    crash_threshold: int = 2
    bundle_file: str | None = None
    embedded_dir: str | None = None
    download: DownloadPolicy = attrs.field(factory=DownloadPolicy)
    limits: DeviceLimits = DEFAULT_DEVICE_LIMITS

    @property
    def entry_file(self) -> str:
        """The archive path of the bundle the JS engine loads (the state machine's rule)."""
        return self.device_config().entry_file

    def device_config(self) -> DeviceConfig:
        """Return the state machine's view of this build."""
        identity = DeviceIdentity(
            self.app_id, self.platform, self.channel, Version.parse_native(self.native_version)
        )
        return DeviceConfig(
            identity, self.trust_root, self.crash_threshold, bundle_file=self.bundle_file
        )


@attrs.frozen
class Progress:
    """Progress of long work: ``stage`` is ``download``, ``install`` or ``verify``."""

    stage: str
    done: int
    total: int


@attrs.frozen
class UpdateInfo:
    """A verified release the server offered.

    Every field but ``patch_size`` comes from the signed manifest: ``size`` is
    the archive's length; ``patch_size`` is the length of the patch the server
    offered against a bundle this device holds (None when the archive itself
    will be downloaded), which is unsigned and only a hint of the cost.
    """

    manifest_id: str
    version: str
    sequence: int
    mandatory: bool
    size: int
    epoch: int = 1
    patch_size: int | None = None

    @property
    def download_size(self) -> int:
        """Bytes the download will fetch: the patch's, or else the archive's."""
        return self.size if self.patch_size is None else self.patch_size

    @classmethod
    def of(cls, release: VerifiedRelease, patch: PatchHint | None = None) -> UpdateInfo:
        """Describe ``release``, fetched through ``patch`` when one is offered."""
        m = release.manifest
        return cls(
            release.manifest_id,
            m.version,
            m.sequence,
            m.mandatory,
            m.archive.length,
            m.epoch,
            None if patch is None else patch.size,
        )

    @classmethod
    def of_action(cls, fetch: FetchPatch | Download) -> UpdateInfo:
        """Describe what the state machine decided to fetch."""
        return cls.of(fetch.release, fetch.hint if isinstance(fetch, FetchPatch) else None)


class SyncStatus(enum.StrEnum):
    """How a :meth:`Agent.sync` ended."""

    UP_TO_DATE = "up_to_date"
    STAGED = "staged"  # installed; runs at the next launch
    RESTART_REQUESTED = "restart_requested"  # mandatory: the restart callback was called
    FAILED = "failed"


@attrs.frozen
class SyncResult:
    """The outcome of :meth:`Agent.sync`; ``error`` is set when it failed.

    ``downloaded_bytes`` counts what came over the network in this sync (a
    resumed download fetches only the rest); ``patched`` says the release was
    built from a patch against an installed bundle rather than downloaded.
    """

    status: SyncStatus
    update: UpdateInfo | None = None
    error: HotPatchError | None = None
    reports_sent: int = 0
    downloaded_bytes: int = 0
    patched: bool = False


ProgressCallback = Callable[[Progress], None]


def _ignore(_progress: Progress) -> None:
    return


@attrs.frozen
class _Answer:
    """An update check answer as read: the signed parts are judged by the state machine."""

    envelope: bytes | None
    urls: _Urls
    patch: PatchHint | None
    head: bytes | None


@attrs.frozen
class _Urls:
    """Where an offered release's archive is, and the offered patch (if any)."""

    archive: str = ""
    patch: str = ""


def _signed_bytes(value: str | None) -> bytes | None:
    """Decode a base64 signed document of the answer; garbage is passed on to be refused."""
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()  # verification rejects it as a malformed envelope


def _durable(state: DeviceState) -> DeviceState:
    """Return the part of ``state`` worth a disk write.

    ``launched`` and ``running`` describe this process only, and a non-idle
    phase is turned into ``Interrupted`` when a state is loaded, so a step
    that changes nothing else needs no fsync.
    """
    return attrs.evolve(state, phase=Phase.IDLE, launched=False, running=None)


class Agent:
    """Drives one device's updates in ``storage_dir`` (or a supplied :class:`FileSystem`).

    ``restart`` is called when the app should restart onto a staged bundle
    now (a mandatory update, or :meth:`apply`). One agent owns a storage
    directory at a time (an exclusive lock); :meth:`close` releases it.
    An app may call :meth:`sync` from a background thread: one update runs
    at a time, and the network is used only outside the lock that guards
    the state, so :meth:`on_launch`, :meth:`notify_ready`, :meth:`apply` and
    :meth:`bundle_path` never wait for a server, however slow (A9). Every
    request ends by its deadline (``DownloadPolicy``); pass an ``http``
    client from :func:`hotpatch_client.device_http_client` so that a status
    line or headers trickled by a slow server are bounded too.
    """

    def __init__(  # noqa: PLR0913 - the integration points, all keyword-only
        self,
        config: AgentConfig,
        *,
        http: httpx.Client,
        storage_dir: str | os.PathLike[str] | None = None,
        fs: FileSystem | None = None,
        clock: Clock | None = None,
        restart: Callable[[], None] | None = None,
        embedded_fs: FileSystem | None = None,
    ) -> None:
        """Lock the storage, load the state, and clean up after any crash.

        ``embedded_fs`` reads the bundle embedded in the binary (default: the
        real files under ``config.embedded_dir``).
        """
        if (storage_dir is None) == (fs is None):
            msg = "give exactly one of storage_dir and fs"
            raise ValueError(msg)
        self.config = config
        self._device = config.device_config()
        self._fs: FileSystem = fs if fs is not None else OsFileSystem(storage_dir or "")
        self._http = http
        self._clock: Clock = clock or SystemClock()
        self._restart = restart
        self._mutex = threading.RLock()  # the state: held briefly, never across network I/O
        self._updating = threading.RLock()  # one check / download / report flush at a time
        #: What the last check offered: the machine's first action (FetchPatch or Download).
        self._offered: tuple[FetchPatch | Download, _Urls] | None = None
        self._patched = False
        self._embedded_side: PatchSide | None = None
        self._embedded_fs = embedded_fs
        self._reload_needed = False
        self._fetched_bytes = 0
        self.restart_requested = False
        self._closed = False
        self._lock = self._fs.lock()
        self._lock.__enter__()
        try:
            self._state = DeviceState()
            self._load()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise

    # --- lifecycle -------------------------------------------------------

    def close(self) -> None:
        """Release the storage lock (idempotent)."""
        if not self._closed:
            self._closed = True
            self._lock.__exit__(None, None, None)

    def __enter__(self) -> Agent:
        """Use the agent as a context manager that closes it."""
        return self

    def __exit__(self, *_exc: object) -> None:
        """Close the agent."""
        self.close()

    @property
    def state(self) -> DeviceState:
        """The last saved state (for diagnostics and tests)."""
        return self._state

    @property
    def device_id(self) -> str:
        """This installation's id, as reported to the server."""
        return self._device_id

    # --- the app's calls -------------------------------------------------

    def on_launch(self) -> str | None:
        """Pick the bundle for this launch; return its path, or None for the embedded one.

        Call it when the process starts, before the JS engine: it counts the
        launch of a trial bundle durably, and reverts a bundle that reached
        the crash threshold without :meth:`notify_ready`. If it raises
        (:class:`StorageError`), start the embedded bundle.
        """
        with self._mutex:
            self._ensure_loaded()
            self._feed(Launched(Version.parse_native(self.config.native_version)))
            self.restart_requested = False
            return self.bundle_path()

    def bundle_path(self) -> str | None:
        """Return the file ``getJSBundleFile()`` / ``sourceURL(for:)`` give the engine.

        That is the entry file of the bundle :meth:`on_launch` chose, or None for the
        bundle embedded in the binary. A chosen bundle whose entry file has
        gone missing also yields None: falling back beats crashing.
        """
        with self._mutex:
            if not self._state.launched:
                raise IllegalTransitionError("bundle_path() before on_launch()")
            running = self._state.running
            if running is None:
                return None
            path = f"{release_dir(running.manifest_id)}/{FILES}/{self._device.entry_file}"
            if self._fs.size(path) is None:
                log.error(
                    "bundle %s has no %s; using the embedded bundle",
                    running.manifest_id,
                    self._device.entry_file,
                )
                return None
            return self._fs.display_path(path)

    def notify_ready(self) -> None:
        """Confirm the running bundle: call it once the app has rendered its first screen."""
        with self._mutex:
            self._ensure_loaded()
            self._feed(Ready())

    def check(self) -> UpdateInfo | None:
        """Ask the server for an update; return the verified offer, or None.

        First walks the trust root forward (``GET /apps/{app}/roots/{N+1}``
        until 404). Raises the verification error of a refused answer or
        root (its type names the attack: ``RollbackError``,
        ``BadSignatureError``, ``RootRotationError`` ...) or
        :class:`NetworkError`. A refused answer fetches nothing; a refused
        root ends the update before the check is sent.
        """
        with self._updating:
            with self._mutex:
                self._ensure_loaded()
                if self._state.phase is Phase.DOWNLOADING and self._offered is not None:
                    return UpdateInfo.of_action(self._offered[0])
                work = self._feed(CheckStarted())
            work = self._walk_roots(work)
            request = next(a for a in work if isinstance(a, RequestCheck))
            try:
                answer = self._ask(request)
            except NetworkError as exc:
                self._feed(CheckFailed(str(exc)))
                raise
            if answer.patch is not None:
                self._know_embedded()
            event = CheckAnswered(
                answer.envelope, self._clock.now(), answer.head, self._device_id, answer.patch
            )
            with self._mutex:
                work = self._feed(event)
                self._perform([a for a in work if isinstance(a, Reject)])
                fetch = next((a for a in work if isinstance(a, FetchPatch | Download)), None)
                if fetch is None:
                    return None
                self._offered = (fetch, answer.urls)
                return UpdateInfo.of_action(fetch)

    def download(self, progress: ProgressCallback = _ignore) -> None:
        """Download, verify and install the offered release; it runs at the next launch.

        Calls the ``restart`` callback when the signed manifest says
        ``mandatory``. Raises :class:`NetworkError`, :class:`SlowDownloadError`,
        :class:`TooLargeError`, :class:`HashMismatchError`, an
        :class:`ArchiveError` or :class:`StorageError`; nothing is installed then.
        """
        with self._updating:
            with self._mutex:
                self._ensure_loaded()
                if self._state.phase is not Phase.DOWNLOADING or self._offered is None:
                    raise IllegalTransitionError("download() needs an update offered by check()")
                fetch, urls = self._offered
                self._offered = None
            self._perform([fetch], urls, progress)

    def apply(self) -> None:
        """Switch to the staged bundle now: calls the ``restart`` callback."""
        with self._mutex:
            self._ensure_loaded()
            self._perform(self._feed(ApplyRequested()))

    def sync(self, progress: ProgressCallback = _ignore) -> SyncResult:
        """Check, download and stage an update, then send queued reports.

        It never raises for a failed update: the result carries the error.
        A mandatory release restarts the app at once (``restart`` callback);
        any other waits for the next launch.
        """
        with self._updating:
            info: UpdateInfo | None = None
            self._fetched_bytes = 0
            self._patched = False
            try:
                info = self.check()
                if info is not None:
                    self.download(progress)
                    status = (
                        SyncStatus.RESTART_REQUESTED
                        if self.restart_requested
                        else SyncStatus.STAGED
                    )
                else:
                    status = SyncStatus.UP_TO_DATE
                result = SyncResult(status, info)
            except HotPatchError as exc:
                result = SyncResult(SyncStatus.FAILED, info, exc)
            return attrs.evolve(
                result,
                reports_sent=self.flush_reports(),
                downloaded_bytes=self._fetched_bytes,
                patched=self._patched,
            )

    def flush_reports(self) -> int:
        """Send queued installation reports; return how many the server took.

        Each report is one request under ``DownloadPolicy.request_deadline``.
        """
        with self._updating:
            with self._mutex:
                reports = self._reports
            try:
                return reports.send(
                    self._http,
                    self._url("/installations"),
                    deadline=self.config.download.request_deadline,
                )
            except OSError as exc:
                log.warning("reports could not be read or removed: %s", exc)
                return 0

    def verify_bundles(self) -> dict[str, HotPatchError | None]:
        """Re-verify every installed bundle; map its manifest id to the failure, or None.

        Each bundle is checked against the signed envelope stored beside it:
        signatures, identity and epoch (judged at the manifest's creation
        time, so a later expiry does not count), then every file's hash.
        Reads every byte: meant for diagnostics and support tools, not for
        the launch path.
        """
        with self._mutex:
            results: dict[str, HotPatchError | None] = {}
            for bundle in self._state.installed():
                try:
                    self._verify_bundle(bundle.manifest_id)
                except HotPatchError as exc:
                    results[bundle.manifest_id] = exc
                except OSError as exc:
                    results[bundle.manifest_id] = StorageError(f"unreadable: {exc}")
                else:
                    results[bundle.manifest_id] = None
            return results

    def _stored_envelope(self, manifest_id: str) -> tuple[bytes, ReleaseManifest]:
        """Return the envelope stored beside an installed bundle and its (unverified) manifest."""
        limit = self.config.limits.envelope_bytes
        with self._fs.open_read(f"{release_dir(manifest_id)}/{ENVELOPE}") as handle:
            envelope = handle.read(limit + 1)
        return envelope, decode_manifest(decode_envelope(envelope, max_bytes=limit).payload)

    def _verify_bundle(self, manifest_id: str) -> None:
        root = release_dir(manifest_id)
        envelope, unverified = self._stored_envelope(manifest_id)
        release = verify_release(
            envelope,
            trusted_root(self._state, self._device),
            self._device.identity,
            None,
            unverified.created_at,
        )
        if release.manifest_id != manifest_id:
            raise LocalTamperingError(f"{root} holds the envelope of another release")
        verify_installed(self._fs, f"{root}/{FILES}", release.manifest.files)

    def pending_reports(self) -> int:
        """How many installation reports wait to be sent."""
        with self._mutex:
            return len(self._reports.pending())

    # --- internals -------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.config.server_url.rstrip("/") + path

    def _load(self) -> None:
        """Read the state from disk, clean up leftovers, and interrupt unfinished work."""
        try:
            stored = load_state(self._fs)
            if stored is None or (
                self.config.device_id is not None and stored.device_id != self.config.device_id
            ):
                device_id = self.config.device_id or (
                    stored.device_id if stored else secrets.token_hex(16)
                )
                stored = StoredState(device_id, stored.state if stored else DeviceState())
                save_state(self._fs, stored)
            # launched / running describe this process, never a previous one.
            state = attrs.evolve(
                stored.state, launched=self._state.launched, running=self._state.running
            )
            removed = recover(self._fs, state)
        except OSError as exc:
            self._reload_needed = True
            raise StorageError(f"the update state could not be read: {exc}") from exc
        if removed:
            log.info("recovered after an interrupted update: removed %s", ", ".join(removed))
        state = self._usable_root(state)
        self._device_id = stored.device_id
        self._reports = ReportQueue(self._fs, self.config.app_id, stored.device_id)
        self._state = state
        self._reload_needed = False
        self._offered = None
        if state.phase is not Phase.IDLE:
            self._feed(Interrupted())

    def _usable_root(self, state: DeviceState) -> DeviceState:
        """Forget a stored trust root that no longer parses (damaged storage): walk again."""
        try:
            trusted_root(state, self._device)
        except HotPatchError as exc:
            log.error("stored trust root unreadable (%s); walking from the embedded one", exc)  # noqa: TRY400 - the cause is in the message
            return attrs.evolve(state, trust_root=None)
        return state

    def _ensure_loaded(self) -> None:
        if self._reload_needed:
            self._load()

    def _feed(self, event: Event) -> list[Action]:
        """Step the machine, queue its reports, save its state; return the remaining work."""
        with self._mutex:
            return self._feed_locked(event)

    def _feed_locked(self, event: Event) -> list[Action]:
        new, actions = step(self._state, event, self._device)
        try:
            for action in actions:
                if isinstance(action, Report):
                    self._reports.put(action)
            if _durable(new) != _durable(self._state):
                save_state(self._fs, StoredState(self._device_id, new))
        except OSError as exc:
            self._reload_needed = True
            self._offered = None
            raise StorageError(f"could not save the update state: {exc}") from exc
        self._state = new
        work: list[Action] = []
        for action in actions:
            if isinstance(action, DiscardDownload):
                self._tidy(self._fs.remove, download_path(action.manifest_id))
            elif isinstance(action, DeleteBundle):
                running = self._state.running
                if running is None or running.manifest_id != action.manifest_id:
                    self._tidy(self._fs.rmtree, release_dir(action.manifest_id))
            elif not isinstance(action, Report | RunBundle):
                work.append(action)
        return work

    def _feed_after_failure(self, event: Event) -> None:
        """Record a failure; if even that cannot be saved, the reload will redo it."""
        with contextlib.suppress(StorageError):
            self._feed(event)

    @staticmethod
    def _tidy(remove: Callable[[str], None], path: str) -> None:
        try:
            remove(path)
        except OSError as exc:  # startup recovery removes what is left
            log.warning("could not remove %s: %s", path, exc)

    def _perform(
        self, work: list[Action], urls: _Urls | None = None, progress: ProgressCallback = _ignore
    ) -> None:
        """Do the work the machine asked for, in order, feeding back what each step produced.

        The one place update work is dispatched (``_feed`` has already queued
        the reports, saved the state and tidied storage). ``urls`` say where
        an offered release's archive and patch are.
        """
        queue = list(work)
        archive: Fetched | None = None
        try:
            while queue:
                action = queue.pop(0)
                if isinstance(action, RestartApp):
                    self.restart_requested = True
                    if self._restart is not None:
                        self._restart()
                elif isinstance(action, Reject):
                    raise action.error
                elif isinstance(action, FetchPatch):
                    queue += self._patch(action, (urls or _Urls()).patch, progress)
                elif isinstance(action, Download):
                    archive = self._download(action.release, (urls or _Urls()).archive, progress)
                    queue += self._feed(DownloadFinished(archive.sha256, archive.length))
                elif isinstance(action, Install):
                    if archive is None:  # the machine asks only after DownloadFinished, above
                        raise RuntimeError(
                            f"asked to install {action.release.manifest_id} unfetched"
                        )
                    queue += self._install(action.release, archive, progress)
        finally:
            if archive is not None:
                archive.handle.close()

    def _get(self, path: str, params: Mapping[str, str], cap: int, what: str) -> bytes | None:
        """GET ``path``; return its body (at most ``cap`` bytes), or None for a 404.

        The whole request ends by ``DownloadPolicy.request_deadline``.
        """
        policy = self.config.download
        try:
            with (
                request_deadline(policy.request_deadline),
                self._http.stream(
                    "GET",
                    self._url(path),
                    params=params,
                    timeout=httpx.Timeout(policy.read_timeout),
                ) as response,
            ):
                if response.status_code == httpx.codes.NOT_FOUND:
                    return None
                if response.status_code != httpx.codes.OK:
                    raise NetworkError(
                        f"{what} got HTTP {response.status_code}",
                        retryable=response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR
                        or response.status_code == httpx.codes.TOO_MANY_REQUESTS,
                    )
                body = bytearray()
                for chunk in raw_chunks(response):
                    body += chunk
                    if len(body) > cap:
                        raise NetworkError(f"{what} answer exceeds {cap} bytes", retryable=False)
                    if remaining() == 0:  # a transport that cannot be interrupted mid-read
                        raise NetworkError(
                            f"{what} ran past its {policy.request_deadline:g} s deadline"
                        )
        except httpx.HTTPError as exc:
            raise NetworkError(f"{what} failed: {exc}") from exc
        return bytes(body)

    def _fetch_root(self, version: int) -> bytes | None:
        """Fetch trust root ``version`` of this app; None when the server has none."""
        return self._get(
            f"/apps/{self.config.app_id}/roots/{version}",
            {},
            self.config.limits.root_bytes,
            f"trust root v{version}",
        )

    def _walk_roots(self, work: list[Action]) -> list[Action]:
        """Take newer trust root versions while the machine asks; return the check's work."""
        while (fetch := next((a for a in work if isinstance(a, FetchRoot)), None)) is not None:
            try:
                envelope = self._fetch_root(fetch.version)
            except NetworkError as exc:
                self._feed(CheckFailed(str(exc)))
                raise
            work = self._feed(RootAnswered(envelope))
            self._perform(work)  # raises a refused root's error
        return work

    def _ask(self, request: RequestCheck) -> _Answer:
        """Send the update check; return what its answer says (its signed parts undecided)."""
        c = self.config
        check = CheckRequest(
            app_id=c.app_id,
            platform=c.platform,
            device_id=self._device_id,
            native_version=request.native_version or c.native_version,
            channel=c.channel,
            current_manifest_id=None if request.current is None else request.current.manifest_id,
        )
        params = check_query(check)
        body = self._get("/update/check", params, c.limits.check_answer_bytes, "update check")
        if body is None:
            raise NetworkError("update check got HTTP 404", retryable=False)
        try:
            document = loads(bytes(body))
        except FormatError as exc:
            raise NetworkError(f"update check answer is not JSON: {exc}", retryable=False) from None
        try:
            answer = read_check_answer(document)
        except FormatError as exc:
            raise NetworkError(
                f"update check answer breaks the protocol: {exc}", retryable=False
            ) from None
        head = _signed_bytes(answer.head)
        if not answer.update_available or answer.manifest is None or answer.bundle_url is None:
            return _Answer(None, _Urls(), None, head)
        offer = answer.patch
        return _Answer(
            _signed_bytes(answer.manifest),
            _Urls(self._join(answer.bundle_url), self._join(offer.url) if offer else ""),
            None if offer is None else PatchHint(offer.base_manifest_id, offer.size),
            head,
        )

    def _join(self, url: str) -> str:
        """Resolve a URL of an answer, absolute or relative to the server URL."""
        return str(httpx.URL(self._url("/")).join(url))

    def _know_embedded(self) -> None:
        """Tell the machine the embedded bundle's id (hashing it once), if the app said where."""
        if self._device.embedded_base is None and (side := self._embedded()) is not None:
            self._device = attrs.evolve(self._device, embedded_base=side.manifest_id)

    def _embedded(self) -> PatchSide | None:
        """Describe the bundle shipped in the binary (hashing it once), if the app said where."""
        if self.config.embedded_dir is None:
            return None
        if self._embedded_side is None:
            embedded = self._embedded_fs or OsFileSystem(self.config.embedded_dir)
            entries = []
            for path in walk_files(embedded):
                with embedded.open_read(path) as source:
                    data = source.read()
                entries.append(FileEntry(path, hashlib.sha256(data).hexdigest(), len(data)))
            files = tuple(entries)
            c = self.config
            base = embedded_id(c.app_id, c.platform.value, c.native_version, files)

            def read(entry: FileEntry) -> bytes:
                with embedded.open_read(entry.path) as source:
                    return source.read(entry.size + 1)

            self._embedded_side = PatchSide(base, files, read)
        return self._embedded_side

    def _patch_base(self, manifest_id: str) -> PatchSide:
        """Describe the bundle a patch applies to: installed (its signed manifest) or embedded."""
        embedded = self._embedded()
        if embedded is not None and manifest_id == embedded.manifest_id:
            return embedded
        root = release_dir(manifest_id)
        files = self._stored_envelope(manifest_id)[1].files

        def read(entry: FileEntry) -> bytes:
            with self._fs.open_read(f"{root}/{FILES}/{entry.path}") as source:
                return source.read(entry.size + 1)

        return PatchSide(manifest_id, files, read)

    def _patch(self, action: FetchPatch, url: str, progress: ProgressCallback) -> list[Action]:
        """Build a release from a patch; return what the machine asks next."""
        release, hint = action.release, action.hint
        path = f"{DOWNLOADS}/{release.manifest_id}.patch"
        phase = ReportPhase.DOWNLOAD
        try:
            self._fs.mkdir(DOWNLOADS)
            fetched = fetch_archive(
                http=self._http,
                url=url,
                fs=self._fs,
                path=path,
                length=hint.size,
                policy=self.config.download,
                timer=self._clock,
                progress=lambda done, total: progress(Progress("download", done, total)),
            )
            self._fetched_bytes += fetched.fetched_bytes
            with fetched.handle:
                fetched.handle.seek(0)
                patch = fetched.handle.read(hint.size + 1)
            phase = ReportPhase.APPLY
            install_from_patch(
                self._fs,
                release,
                patch,
                self._patch_base(hint.base_manifest_id),
                lambda stage_name, done, total: progress(Progress(stage_name, done, total)),
            )
        except (HotPatchError, OSError) as exc:
            reason = f"patch from {hint.base_manifest_id[:12]} failed ({type(exc).__name__}: {exc})"
            log.warning("%s; falling back to the full archive", reason)
            self._tidy(self._fs.remove, path)
            return self._feed(PatchFailed(reason, phase))
        self._tidy(self._fs.remove, path)
        self._patched = True
        return self._feed(PatchInstalled(hint.base_manifest_id))

    def _download(self, release: VerifiedRelease, url: str, progress: ProgressCallback) -> Fetched:
        """Fetch a release's archive (resuming), capped at its signed length."""
        try:
            self._fs.mkdir(DOWNLOADS)
            fetched = fetch_archive(
                http=self._http,
                url=url,
                fs=self._fs,
                path=download_path(release.manifest_id),
                length=release.manifest.archive.length,
                policy=self.config.download,
                timer=self._clock,
                progress=lambda done, total: progress(Progress("download", done, total)),
            )
        except (NetworkError, SlowDownloadError, TooLargeError) as exc:
            self._feed_after_failure(DownloadFailed(f"{type(exc).__name__}: {exc}"))
            raise
        except OSError as exc:
            error = StorageError(f"the download could not be written: {exc}")
            self._feed_after_failure(DownloadFailed(str(error)))
            raise error from exc
        self._fetched_bytes += fetched.fetched_bytes
        return fetched

    def _install(
        self, release: VerifiedRelease, archive: Fetched, progress: ProgressCallback
    ) -> list[Action]:
        """Extract and verify a downloaded archive into its own directory; stage it."""
        try:
            install_release(
                self._fs,
                release,
                archive.handle,
                lambda stage, done, total: progress(Progress(stage, done, total)),
            )
        except LocalTamperingError as exc:
            self._feed_after_failure(InstallFailed(str(exc), permanent=False))
            raise
        except HotPatchError as exc:
            # If the archive still has its signed hash, the signed content
            # itself is unusable: never again. If not, it changed on this
            # device after it was hashed (A15): not the release's fault.
            intact = digest_of(archive.handle)[0] == release.manifest.archive.sha256
            if not intact:
                exc = LocalTamperingError(f"the downloaded archive changed on the device: {exc}")
            self._feed_after_failure(
                InstallFailed(f"{type(exc).__name__}: {exc}", permanent=intact)
            )
            raise exc from None
        except OSError as exc:
            error = StorageError(f"the bundle could not be installed: {exc}")
            self._feed_after_failure(InstallFailed(str(error), permanent=False))
            raise error from exc
        return self._feed(InstallFinished())
