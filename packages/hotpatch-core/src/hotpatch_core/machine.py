"""The device state machine: ``step(state, event, config) -> (state, actions)``.

Every decision a device makes about updates lives here, and nothing else
does: the agent feeds events in (with the bytes and ``now`` they carry),
saves the returned state durably, and only then performs the returned
actions. All transitions are in one table, :data:`TRANSITIONS`; an event the
current phase cannot take raises :class:`IllegalTransitionError` and changes
nothing. The state diagram in the docs is generated from that table
(:func:`mermaid_diagram`).

Two things move independently:

*The update pipeline* (``phase``): ``idle -> root -> checking ->
downloading -> installing -> idle``. A verified manifest raises the high-water mark in the
state returned with the ``Download`` (or ``FetchPatch``) action, so it is
durable before a byte is fetched (docs/security.md A8). A release without
the entry file the JS engine loads is refused before anything is fetched.
When the answer offers a patch from a bundle the device has (installed, or
embedded in the binary) that is smaller than the archive, the device
fetches the patch instead (``FetchPatch``); a patch that fails in any way
is reported and the full archive fetched (``PatchFailed`` -> ``Download``).

*The trust root* walks forward the TUF way before every check (phase
``root``; the check itself may not start before that walk ends): the device
asks for root version N+1 (``FetchRoot``) until the server has none, accepts
each only if a threshold of N's root keys and of its own signed it
(:func:`~hotpatch_core.trust.rotate_trust_root`), and keeps the newest in
its state, so it is durable before anything is verified with it (A10). At
most :data:`MAX_ROOT_STEPS` versions are taken per check; the next check
goes on from there. A root that does not chain ends the check.

*Freshness*: when the trusted root names timestamp keys, every check answer
must come with a channel head they signed (:mod:`hotpatch_core.head`): it
must be current and for this channel, list the offered release, and agree
that nothing it lists for this device was held back. The newest head time
seen is kept per channel, and forgotten when a root changes the timestamp
keys (a key that signed a head far in the future must not freeze devices).

*The launch lifecycle* (``Launched`` and ``Ready``, taken in every phase,
since a process can die anywhere): a staged bundle becomes the *trial*
bundle at the next launch. Each launch of a trial bundle increments a
counter that the agent persists before the JS engine starts; ``Ready``
(``notify_ready()`` after first render) confirms it. A launch that finds the
counter at the crash threshold (default 2) reverts to the last confirmed
bundle, marks the release failed for good and reports ``rolled_back``
(A19). A confirmed bundle is never reverted automatically, since the app may
already have migrated its data. A changed native binary version discards
every OTA bundle: the new binary embeds newer JavaScript than any bundle
built for the old one.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias

import attrs

from hotpatch_core.errors import (
    ArchiveMismatchError,
    FreshnessError,
    HashMismatchError,
    HotPatchError,
    IllegalTransitionError,
    UnsignedError,
    WithdrawnError,
    WithheldError,
)
from hotpatch_core.head import HEAD_TOLERANCE, ChannelHead, due_offers, verify_head
from hotpatch_core.release import (
    DeviceIdentity,
    HighWaterMark,
    VerifiedRelease,
    verify_release,
)
from hotpatch_core.trust import TrustRoot, load_trust_root, rotate_trust_root
from hotpatch_core.versions import Version

__all__ = [
    "MAX_ROOT_STEPS",
    "TRANSITIONS",
    "Action",
    "ApplyRequested",
    "Bundle",
    "CheckAnswered",
    "CheckFailed",
    "CheckStarted",
    "DeleteBundle",
    "DeviceConfig",
    "DeviceState",
    "DiscardDownload",
    "Download",
    "DownloadFailed",
    "DownloadFinished",
    "Event",
    "FetchPatch",
    "FetchRoot",
    "Install",
    "InstallFailed",
    "InstallFinished",
    "Interrupted",
    "Launched",
    "Offer",
    "PatchFailed",
    "PatchHint",
    "PatchInstalled",
    "Phase",
    "Ready",
    "Reject",
    "Report",
    "ReportPhase",
    "ReportStatus",
    "RequestCheck",
    "RestartApp",
    "RootAnswered",
    "RunBundle",
    "mermaid_diagram",
    "step",
    "trusted_root",
]

#: How many trust root versions a device takes in one check (A10): a bound on
#: the work a hostile server can cause; a longer chain is walked over several checks.
MAX_ROOT_STEPS: Final = 16


class Phase(enum.StrEnum):
    """Where the update pipeline is."""

    IDLE = "idle"
    ROOT = "root"
    CHECKING = "checking"
    DOWNLOADING = "downloading"
    INSTALLING = "installing"


class ReportStatus(enum.StrEnum):
    """The outcome an installation report carries (applied, failed or rolled_back)."""

    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class ReportPhase(enum.StrEnum):
    """Where a failure happened."""

    DOWNLOAD = "download"
    VERIFY = "verify"
    APPLY = "apply"
    FIRST_LAUNCH = "first_launch"


# --- state -----------------------------------------------------------------


@attrs.frozen
class Bundle:
    """An installed, verified bundle the device can launch, by manifest id.

    ``patched_from`` is the manifest id of the installed bundle it was built
    from by a patch (None when the archive was downloaded): the applied
    report carries it, so the server counts the bytes a patch saved only once
    a device has run it.
    """

    manifest_id: str
    version: str
    epoch: int
    sequence: int
    mandatory: bool = False
    patched_from: str | None = None

    @classmethod
    def of(cls, release: VerifiedRelease) -> Bundle:
        """Describe the bundle a verified release installs."""
        m = release.manifest
        return cls(release.manifest_id, m.version, m.epoch, m.sequence, m.mandatory)


@attrs.frozen
class Offer:
    """A verified release being downloaded or installed; kept to resume after a restart.

    ``accepted_at`` is the time it was verified: re-verifying the stored
    envelope later judges expiry at that time, as TUF fixes the time of an
    update at its start.
    """

    bundle: Bundle
    envelope: bytes = attrs.field(repr=False)
    accepted_at: datetime


@attrs.frozen
class DeviceState:
    """Everything a device remembers about updates; the agent persists it atomically."""

    phase: Phase = Phase.IDLE
    native_version: str | None = None
    confirmed: Bundle | None = None
    pending: Bundle | None = None
    trial: Bundle | None = None
    trial_launches: int = 0
    running: Bundle | None = None
    launched: bool = False
    offer: Offer | None = None
    high_water: Mapping[str, HighWaterMark] = attrs.field(factory=dict)
    failed: tuple[str, ...] = ()
    #: The newest trust root envelope this device accepted by rotation (None: the embedded one).
    trust_root: bytes | None = attrs.field(default=None, repr=False)
    #: Root versions taken during the check in progress (bounded by MAX_ROOT_STEPS).
    root_steps: int = 0
    #: The newest signed time this device verified (a manifest's ``createdAt``). Expiry is
    #: judged at the later of the device's clock and this (A5): a clock that is behind, or
    #: was set back, cannot make an expired manifest or publisher key valid again.
    trusted_time: datetime | None = None
    #: Per channel (like ``high_water``), the newest channel head time verified, give or take
    #: half of HEAD_TOLERANCE (it is saved only when it moves that far, to spare writes).
    head_seen: Mapping[str, datetime] = attrs.field(factory=dict)

    def judged_at(self, now: datetime) -> datetime:
        """Return the time expiry is judged at: ``now``, or the trusted time if later."""
        if self.trusted_time is not None and self.trusted_time > now:
            return self.trusted_time
        return now

    def installed(self) -> tuple[Bundle, ...]:
        """Bundles on disk that the device may launch."""
        return tuple(b for b in (self.confirmed, self.trial, self.pending) if b is not None)


@attrs.frozen
class DeviceConfig:
    """What the app build fixes: its identity, its trust root, and the crash threshold.

    ``bundle_file`` is the archive path of the bundle the JS engine loads
    (None: the platform's, ``index.android.bundle`` or ``main.jsbundle``);
    ``embedded_base`` is the id of the bundle embedded in the binary, when
    the app can read it as a patch base (``hotpatch embedded register``).
    """

    identity: DeviceIdentity
    trust_root: TrustRoot
    crash_threshold: int = 2
    bundle_file: str | None = None
    embedded_base: str | None = None

    @property
    def entry_file(self) -> str:
        """The archive path of the bundle the JS engine loads."""
        return self.bundle_file or self.identity.platform.entry_file

    @property
    def scope_key(self) -> str:
        """The key of this identity's high-water mark."""
        i = self.identity
        return f"{i.app_id}/{i.platform.value}/{i.channel}"


@functools.lru_cache(maxsize=8)
def _accepted_root(envelope: bytes) -> TrustRoot:
    # Only envelopes rotate_trust_root accepted are stored; loading one checks
    # its own signatures again, once per process (cached), which also catches
    # a stored root damaged on disk.
    return load_trust_root(envelope)


def trusted_root(state: DeviceState, config: DeviceConfig) -> TrustRoot:
    """Return the root the device verifies with: the newer of the embedded and the accepted one.

    A binary that embeds a newer root than the device walked to wins, and a
    binary with an older one never takes the device back (no root rollback).
    """
    if state.trust_root is None:
        return config.trust_root
    accepted = _accepted_root(state.trust_root)
    return accepted if accepted.version > config.trust_root.version else config.trust_root


# --- events ----------------------------------------------------------------


@attrs.frozen
class Launched:
    """The app process started; the JS engine has not started yet (``on_launch``)."""

    native_version: Version


@attrs.frozen
class Ready:
    """The app rendered its first screen with the running bundle (``notify_ready``)."""


@attrs.frozen
class CheckStarted:
    """The agent is about to ask the server for an update."""


@attrs.frozen
class RootAnswered:
    """The answer to ``FetchRoot``: that root version's envelope, or ``None`` if there is none."""

    envelope: bytes | None = attrs.field(repr=False)


@attrs.frozen
class PatchHint:
    """An answer's offer of a patch: the bundle it applies to, and its length.

    Unsigned: a lying hint costs a download, never trust, since every file
    the patch makes is checked against the signed manifest.
    """

    base_manifest_id: str
    size: int


@attrs.frozen
class CheckAnswered:
    """The server answered: signed release envelope bytes, or ``None`` for no update.

    ``head`` is the signed channel head that came with the answer, if any,
    ``device_id`` the id the check was sent with (the head's cohorts are
    judged for it), and ``patch`` the answer's patch offer, if any.
    """

    envelope: bytes | None = attrs.field(repr=False)
    now: datetime
    head: bytes | None = attrs.field(default=None, repr=False)
    device_id: str = ""
    patch: PatchHint | None = None


@attrs.frozen
class CheckFailed:
    """The update check failed (network, server error)."""

    reason: str


@attrs.frozen
class DownloadFinished:
    """The archive finished downloading; the agent hashed every byte it wrote."""

    sha256: str
    length: int


@attrs.frozen
class DownloadFailed:
    """The download stopped (network, deadline, cap); a partial file may remain for resuming."""

    reason: str


@attrs.frozen
class InstallFinished:
    """The archive was extracted, verified file by file, fsynced and staged."""


@attrs.frozen
class InstallFailed:
    """Extraction or staging failed; ``permanent`` when the signed content itself is bad."""

    reason: str
    permanent: bool


@attrs.frozen
class PatchInstalled:
    """The release was built from a patch against an installed bundle instead of downloaded.

    Every file was produced into its own directory, checked against the
    signed per-file hashes, fsynced and staged: the archive itself was never
    fetched, so there is no archive hash to compare. ``base_manifest_id`` is
    the bundle the patch was applied to.
    """

    base_manifest_id: str


@attrs.frozen
class PatchFailed:
    """Fetching or applying the patch failed; ``phase`` says which. The archive is next."""

    reason: str
    phase: ReportPhase


@attrs.frozen
class Interrupted:
    """The work in flight stopped: the process died, or storage failed mid-step.

    The agent feeds it when the state it loads is not idle. The pipeline
    returns to idle and keeps any offer, so the next check that offers the
    same release resumes its download from the partial file; a check that
    offers something else (or nothing) discards it.
    """


@attrs.frozen
class ApplyRequested:
    """The app asks to switch to the staged bundle now, by restarting."""


Event: TypeAlias = (
    Launched
    | Ready
    | CheckStarted
    | RootAnswered
    | CheckAnswered
    | CheckFailed
    | DownloadFinished
    | DownloadFailed
    | InstallFinished
    | InstallFailed
    | ApplyRequested
    | Interrupted
    | PatchInstalled
    | PatchFailed
)

# --- actions ---------------------------------------------------------------


@attrs.frozen
class RunBundle:
    """Start the JS engine on ``bundle`` (``None``: the bundle embedded in the binary)."""

    bundle: Bundle | None


@attrs.frozen
class FetchRoot:
    """Ask the server for trust root ``version`` (the one after the newest the device trusts)."""

    version: int


@attrs.frozen
class RequestCheck:
    """Ask the server for an update, telling it what the device runs."""

    current: Bundle | None
    native_version: str


@attrs.frozen
class Download:
    """Fetch the archive of ``release`` (resuming any partial file), capped at its signed length."""

    release: VerifiedRelease


@attrs.frozen
class FetchPatch:
    """Fetch the patch ``hint`` offers and build ``release`` from it, each file checked, staged.

    Report ``PatchInstalled`` when it is staged, or ``PatchFailed``.
    """

    release: VerifiedRelease
    hint: PatchHint


@attrs.frozen
class Install:
    """Extract and verify ``release``'s archive into its own directory, fsync, stage."""

    release: VerifiedRelease


@attrs.frozen
class DiscardDownload:
    """Remove the partial or complete download of this manifest's archive."""

    manifest_id: str


@attrs.frozen
class DeleteBundle:
    """Remove an installed bundle's directory (never the running one: see the agent)."""

    manifest_id: str


@attrs.frozen
class Report:
    """Queue an installation report for the server (durably, sent at least once).

    ``patched_from`` names the bundle a patch was applied to, on the applied
    report of a release that was built from a patch.
    """

    manifest_id: str
    status: ReportStatus
    phase: ReportPhase | None = None
    reason: str = ""
    patched_from: str | None = None


@attrs.frozen
class RestartApp:
    """Restart the app so the staged bundle runs now (mandatory update or ``apply()``)."""


@attrs.frozen
class Reject:
    """An answer was refused; the agent surfaces ``error`` to its caller."""

    error: HotPatchError


Action: TypeAlias = (
    RunBundle
    | FetchRoot
    | RequestCheck
    | Download
    | FetchPatch
    | Install
    | DiscardDownload
    | DeleteBundle
    | Report
    | RestartApp
    | Reject
)
Result: TypeAlias = tuple[DeviceState, list[Action]]

# --- transitions -----------------------------------------------------------


def _on_launched(state: DeviceState, event: Launched, config: DeviceConfig) -> Result:
    actions: list[Action] = []
    native = str(event.native_version)
    # An unknown previous binary counts as a change: nothing may survive
    # that was not installed under this very binary.
    if state.native_version != native and (state.installed() or state.offer is not None):
        actions += [DeleteBundle(b.manifest_id) for b in state.installed()]
        if state.offer is not None:
            actions.append(DiscardDownload(state.offer.bundle.manifest_id))
        state = attrs.evolve(
            state, confirmed=None, pending=None, trial=None, trial_launches=0, offer=None
        )
    state = attrs.evolve(state, phase=Phase.IDLE, native_version=native, launched=True)
    if state.pending is not None:
        if state.trial is not None:
            # A newer bundle was staged while the trial one was unconfirmed.
            actions.append(DeleteBundle(state.trial.manifest_id))
        state = attrs.evolve(state, trial=state.pending, pending=None, trial_launches=0)
    if state.trial is not None:
        if state.trial_launches >= config.crash_threshold:
            failed = state.trial
            actions += [
                Report(
                    failed.manifest_id,
                    ReportStatus.ROLLED_BACK,
                    ReportPhase.FIRST_LAUNCH,
                    f"{state.trial_launches} launches without notify_ready",
                ),
                DeleteBundle(failed.manifest_id),
            ]
            state = attrs.evolve(
                state,
                trial=None,
                trial_launches=0,
                failed=(*state.failed, failed.manifest_id),
            )
        else:
            state = attrs.evolve(state, trial_launches=state.trial_launches + 1)
            state = attrs.evolve(state, running=state.trial)
            return state, [*actions, RunBundle(state.trial)]
    state = attrs.evolve(state, running=state.confirmed)
    return state, [*actions, RunBundle(state.confirmed)]


def _on_ready(state: DeviceState, _event: Ready, _config: DeviceConfig) -> Result:
    if not state.launched:
        raise IllegalTransitionError("notify_ready before on_launch")
    if state.trial is None or state.running != state.trial:
        return state, []  # nothing on trial: confirming twice is harmless
    actions: list[Action] = [
        Report(
            state.trial.manifest_id,
            ReportStatus.APPLIED,
            patched_from=state.trial.patched_from,
        )
    ]
    if state.confirmed is not None:
        actions.append(DeleteBundle(state.confirmed.manifest_id))
    return attrs.evolve(state, confirmed=state.trial, trial=None, trial_launches=0), actions


def _request_check(state: DeviceState) -> RequestCheck:
    current = state.running if state.launched else state.confirmed
    return RequestCheck(current, state.native_version or "")


def _on_check_started(state: DeviceState, _event: CheckStarted, config: DeviceConfig) -> Result:
    root = trusted_root(state, config)
    return attrs.evolve(state, phase=Phase.ROOT, root_steps=0), [FetchRoot(root.version + 1)]


def _outdated_by(state: DeviceState, root: TrustRoot) -> Result:
    """Drop what a new epoch invalidates and nothing has run yet: the offer and the staged bundle.

    A bundle that already ran (trial or confirmed) stays until a release of
    the new epoch replaces it: removing it could strand migrated app data.
    """
    actions: list[Action] = []
    if state.offer is not None and state.offer.bundle.epoch < root.epoch:
        state, actions = _drop_offer(state)
    if state.pending is not None and state.pending.epoch < root.epoch:
        actions.append(DeleteBundle(state.pending.manifest_id))
        state = attrs.evolve(state, pending=None)
    return state, actions


def _on_root_answered(state: DeviceState, event: RootAnswered, config: DeviceConfig) -> Result:
    if event.envelope is None:  # the server has nothing newer: check now
        return attrs.evolve(state, phase=Phase.CHECKING), [_request_check(state)]
    try:
        root = rotate_trust_root(trusted_root(state, config), event.envelope)
    except HotPatchError as exc:
        # Withheld is indistinguishable from "none newer"; forged or out of order is refused.
        return attrs.evolve(state, phase=Phase.IDLE), [Reject(exc)]
    previous = trusted_root(state, config)
    state, actions = _outdated_by(
        attrs.evolve(state, trust_root=event.envelope, root_steps=state.root_steps + 1), root
    )
    if root.timestamp != previous.timestamp:
        state = attrs.evolve(state, head_seen={})
    if state.root_steps >= MAX_ROOT_STEPS:
        return attrs.evolve(state, phase=Phase.CHECKING), [*actions, _request_check(state)]
    return state, [*actions, FetchRoot(root.version + 1)]


def _drop_offer(state: DeviceState) -> tuple[DeviceState, list[Action]]:
    if state.offer is None:
        return state, []
    return attrs.evolve(state, offer=None), [DiscardDownload(state.offer.bundle.manifest_id)]


def _known(state: DeviceState, manifest_id: str) -> bool:
    return manifest_id in state.failed or any(
        b.manifest_id == manifest_id for b in state.installed()
    )


def _fresh_head(
    state: DeviceState, event: CheckAnswered, config: DeviceConfig, root: TrustRoot
) -> tuple[DeviceState, ChannelHead | None]:
    """Verify the answer's channel head if the root asks for one; note when it was issued."""
    if root.timestamp is None:
        return state, None  # this root asks for no head: freshness rests on expiry alone
    if event.head is None:
        msg = "the answer carries no channel head, and the trust root requires one"
        raise UnsignedError(msg)
    scope = config.scope_key
    seen = state.head_seen.get(scope)
    mark = state.high_water.get(scope)
    head = verify_head(
        event.head,
        role=root.timestamp,
        identity=config.identity,
        at=event.now,  # the server's clock signs heads: not the publishers' trusted time
        newest_seen=seen,
        high_water=mark.position() if mark is not None else None,
    )
    if seen is None or head.issued_at >= seen + HEAD_TOLERANCE / 2:
        state = attrs.evolve(state, head_seen={**state.head_seen, scope: head.issued_at})
    return state, head


def _held_back(
    state: DeviceState,
    event: CheckAnswered,
    config: DeviceConfig,
    head: ChannelHead,
    offered: str | None,
) -> WithheldError | None:
    """Return the error if the answer does not offer what ``head`` says is due to this device."""
    mark = state.high_water.get(config.scope_key)
    due = due_offers(
        head,
        device_id=event.device_id,
        native=config.identity.native_version,
        epoch=trusted_root(state, config).epoch,
        above=mark.position() if mark is not None else None,
        failed=state.failed,
    )
    if due is None or offered in due:
        return None
    what = f"offered {offered}" if offered is not None else "offered nothing"
    return WithheldError(
        f"the answer {what}, but the channel head lists {sorted(due)[0]} for this device"
    )


def _contradicts(
    state: DeviceState,
    event: CheckAnswered,
    config: DeviceConfig,
    head: ChannelHead,
    release: VerifiedRelease,
) -> FreshnessError | None:
    """Return why the offered ``release`` contradicts ``head``, or None if it agrees."""
    if not head.lists(release.manifest_id):
        return WithdrawnError(
            f"release {release.manifest_id} ({release.manifest.version}) is not live: the "
            "channel head does not list it"
        )
    return _held_back(state, event, config, head, release.manifest_id)


def _on_check_answered(state: DeviceState, event: CheckAnswered, config: DeviceConfig) -> Result:
    idle = attrs.evolve(state, phase=Phase.IDLE)
    root = trusted_root(state, config)
    try:
        idle, head = _fresh_head(idle, event, config, root)
    except HotPatchError as exc:
        return idle, [Reject(exc)]
    if event.envelope is None:
        # The server offers nothing (e.g. the rollout was paused): stop any resume.
        idle, dropped = _drop_offer(idle)
        held = None if head is None else _held_back(idle, event, config, head, None)
        return idle, [*dropped, *([Reject(held)] if held is not None else [])]
    mark = state.high_water.get(config.scope_key)
    at = state.judged_at(event.now)
    try:
        release = verify_release(event.envelope, root, config.identity, mark, at)
    except HotPatchError as exc:
        return idle, [Reject(exc)]
    contradiction = None if head is None else _contradicts(idle, event, config, head, release)
    if contradiction is not None:
        return idle, [Reject(contradiction)]
    signed_time = release.manifest.created_at
    if state.trusted_time is None or signed_time > state.trusted_time:
        idle = attrs.evolve(idle, trusted_time=signed_time)
    if _known(state, release.manifest_id):
        return idle, []  # installed already, or failed for good (A19)
    return _take_offer(idle, config, release, Offer(Bundle.of(release), event.envelope, at), event)


def _take_offer(
    idle: DeviceState,
    config: DeviceConfig,
    release: VerifiedRelease,
    offer: Offer,
    event: CheckAnswered,
) -> Result:
    """Raise the high-water mark, then fetch the release (by patch when one fits), or refuse it."""
    actions: list[Action] = []
    if idle.offer is not None and idle.offer.bundle.manifest_id != offer.bundle.manifest_id:
        idle, actions = _drop_offer(idle)
    mark = idle.high_water.get(config.scope_key)
    if mark is None or release.high_water_mark().position() > mark.position():
        idle = attrs.evolve(
            idle, high_water={**idle.high_water, config.scope_key: release.high_water_mark()}
        )
    mid = offer.bundle.manifest_id
    if config.entry_file not in {f.path for f in release.manifest.files}:
        # Authentic but unusable: the JS engine could not load it. Never fetched, never again.
        error = ArchiveMismatchError(
            f"the release has no {config.entry_file} for the JS engine to load"
        )
        return attrs.evolve(idle, failed=(*idle.failed, mid)), [
            *actions,
            Report(mid, ReportStatus.FAILED, ReportPhase.VERIFY, str(error)),
            Reject(error),
        ]
    state = attrs.evolve(idle, phase=Phase.DOWNLOADING, offer=offer)
    hint = event.patch
    if hint is not None and _patchable(state, config, hint, release):
        return state, [*actions, FetchPatch(release, hint)]
    return state, [*actions, Download(release)]


def _patchable(
    state: DeviceState, config: DeviceConfig, hint: PatchHint, release: VerifiedRelease
) -> bool:
    """Take a patch only from a bundle this device has, and only if smaller than the archive."""
    if hint.size >= release.manifest.archive.length:
        return False
    if hint.base_manifest_id == config.embedded_base:
        return True
    return hint.base_manifest_id in {b.manifest_id for b in state.installed()}


def _on_check_failed(state: DeviceState, _event: CheckFailed, _config: DeviceConfig) -> Result:
    return attrs.evolve(state, phase=Phase.IDLE), []


def _offered(state: DeviceState, config: DeviceConfig) -> VerifiedRelease:
    # Re-verify the stored envelope: only a VerifiedRelease may be fetched or
    # installed, also after a restart (A1, A12).
    offer = state.offer
    assert offer is not None  # noqa: S101 - guaranteed by the phase
    mark = state.high_water.get(config.scope_key)
    return verify_release(
        offer.envelope, trusted_root(state, config), config.identity, mark, offer.accepted_at
    )


def _on_download_finished(
    state: DeviceState, event: DownloadFinished, config: DeviceConfig
) -> Result:
    offer = state.offer
    assert offer is not None  # noqa: S101 - the DOWNLOADING phase always has an offer
    release = _offered(state, config)
    signed = release.manifest.archive
    if (event.sha256, event.length) != (signed.sha256, signed.length):
        # Not marked failed: a man in the middle must not be able to blacklist
        # a good release by corrupting one download.
        error = HashMismatchError(
            f"archive sha256/length {event.sha256[:12]}…/{event.length} differ from the signed "
            f"{signed.sha256[:12]}…/{signed.length}"
        )
        return attrs.evolve(state, phase=Phase.IDLE, offer=None), [
            DiscardDownload(offer.bundle.manifest_id),
            Report(offer.bundle.manifest_id, ReportStatus.FAILED, ReportPhase.VERIFY, str(error)),
            Reject(error),
        ]
    return attrs.evolve(state, phase=Phase.INSTALLING), [Install(release)]


def _on_patch_failed(state: DeviceState, event: PatchFailed, config: DeviceConfig) -> Result:
    offer = state.offer
    assert offer is not None  # noqa: S101 - the DOWNLOADING phase always has an offer
    reason = f"{event.reason}; fell back to the full archive"
    return state, [
        Report(offer.bundle.manifest_id, ReportStatus.FAILED, event.phase, reason),
        Download(_offered(state, config)),
    ]


def _on_download_failed(state: DeviceState, event: DownloadFailed, _config: DeviceConfig) -> Result:
    offer = state.offer
    assert offer is not None  # noqa: S101 - the DOWNLOADING phase always has an offer
    # The offer stays so the next sync resumes from the partial file.
    return attrs.evolve(state, phase=Phase.IDLE), [
        Report(offer.bundle.manifest_id, ReportStatus.FAILED, ReportPhase.DOWNLOAD, event.reason)
    ]


def _on_install_finished(
    state: DeviceState, event: InstallFinished | PatchInstalled, _config: DeviceConfig
) -> Result:
    offer = state.offer
    assert offer is not None  # noqa: S101 - the INSTALLING phase always has an offer
    actions: list[Action] = [DiscardDownload(offer.bundle.manifest_id)]
    if state.pending is not None:
        actions.append(DeleteBundle(state.pending.manifest_id))
    if offer.bundle.mandatory:
        actions.append(RestartApp())
    staged = offer.bundle
    if isinstance(event, PatchInstalled):
        staged = attrs.evolve(staged, patched_from=event.base_manifest_id)
    return attrs.evolve(state, phase=Phase.IDLE, offer=None, pending=staged), actions


def _on_install_failed(state: DeviceState, event: InstallFailed, _config: DeviceConfig) -> Result:
    offer = state.offer
    assert offer is not None  # noqa: S101 - the INSTALLING phase always has an offer
    mid = offer.bundle.manifest_id
    failed = (*state.failed, mid) if event.permanent else state.failed
    return attrs.evolve(state, phase=Phase.IDLE, offer=None, failed=failed), [
        DiscardDownload(mid),
        DeleteBundle(mid),
        Report(mid, ReportStatus.FAILED, ReportPhase.APPLY, event.reason),
    ]


def _on_interrupted(state: DeviceState, _event: Interrupted, _config: DeviceConfig) -> Result:
    return attrs.evolve(state, phase=Phase.IDLE), []


def _on_apply_requested(
    state: DeviceState, _event: ApplyRequested, _config: DeviceConfig
) -> Result:
    if state.pending is None:
        raise IllegalTransitionError("apply() with no staged bundle")
    return state, [RestartApp()]


# Handlers take their own event type; the table is keyed by that type, so
# the loose parameter type here is checked by the dispatch in step().
_Handler: TypeAlias = Callable[[DeviceState, Any, DeviceConfig], Result]


@attrs.frozen
class Transition:
    """One row of the table: the handler and the phases it may lead to."""

    handler: _Handler
    targets: frozenset[Phase]


def _row(handler: _Handler, *targets: Phase) -> Transition:
    return Transition(handler, frozenset(targets))


#: Every legal (phase, event) pair, its handler, and the phases it may lead to.
TRANSITIONS: Final[Mapping[tuple[Phase, type], Transition]] = {
    **{(phase, Launched): _row(_on_launched, Phase.IDLE) for phase in Phase},
    **{(phase, Ready): _row(_on_ready, phase) for phase in Phase},
    (Phase.IDLE, ApplyRequested): _row(_on_apply_requested, Phase.IDLE),
    (Phase.IDLE, CheckStarted): _row(_on_check_started, Phase.ROOT),
    (Phase.ROOT, RootAnswered): _row(_on_root_answered, Phase.ROOT, Phase.CHECKING, Phase.IDLE),
    (Phase.ROOT, CheckFailed): _row(_on_check_failed, Phase.IDLE),
    (Phase.CHECKING, CheckAnswered): _row(_on_check_answered, Phase.IDLE, Phase.DOWNLOADING),
    (Phase.CHECKING, CheckFailed): _row(_on_check_failed, Phase.IDLE),
    (Phase.DOWNLOADING, DownloadFinished): _row(
        _on_download_finished, Phase.INSTALLING, Phase.IDLE
    ),
    (Phase.DOWNLOADING, DownloadFailed): _row(_on_download_failed, Phase.IDLE),
    (Phase.INSTALLING, InstallFinished): _row(_on_install_finished, Phase.IDLE),
    (Phase.DOWNLOADING, PatchInstalled): _row(_on_install_finished, Phase.IDLE),
    (Phase.DOWNLOADING, PatchFailed): _row(_on_patch_failed, Phase.DOWNLOADING),
    (Phase.INSTALLING, InstallFailed): _row(_on_install_failed, Phase.IDLE),
    **{
        (phase, Interrupted): _row(_on_interrupted, Phase.IDLE)
        for phase in (Phase.ROOT, Phase.CHECKING, Phase.DOWNLOADING, Phase.INSTALLING)
    },
}


def step(state: DeviceState, event: Event, config: DeviceConfig) -> Result:
    """Apply ``event`` to ``state``; return the new state and the actions to perform, in order.

    Raises :class:`IllegalTransitionError` (and changes nothing) when the
    current phase cannot take the event.
    """
    transition = TRANSITIONS.get((state.phase, type(event)))
    if transition is None:
        raise IllegalTransitionError(
            f"{type(event).__name__} is not allowed in phase {state.phase.value!r}"
        )
    new_state, actions = transition.handler(state, event, config)
    if new_state.phase not in transition.targets:  # pragma: no cover - guards the table
        msg = f"{type(event).__name__} led to undeclared phase {new_state.phase}"
        raise AssertionError(msg)
    return new_state, actions


def mermaid_diagram() -> str:
    """Render :data:`TRANSITIONS` as a Mermaid state diagram (used by the docs)."""
    lines = ["stateDiagram-v2", "    [*] --> idle"]
    seen: set[tuple[str, str, str]] = set()
    for (source, event), transition in TRANSITIONS.items():
        if event in (Launched, Ready):
            continue  # taken in every phase; drawn once below
        for target in sorted(transition.targets):
            edge = (source.value, target.value, event.__name__)
            if edge not in seen:
                seen.add(edge)
                lines.append(f"    {edge[0]} --> {edge[1]}: {edge[2]}")
    lines += [
        "    note right of idle",
        "        Launched (any phase) returns to idle and picks the bundle to run:",
        "        staged -> trial; trial at the crash threshold -> revert to confirmed.",
        "        Ready (any phase) confirms the trial bundle.",
        "    end note",
    ]
    return "\n".join(lines) + "\n"
