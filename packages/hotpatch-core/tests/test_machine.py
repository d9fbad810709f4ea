from __future__ import annotations

import typing
from datetime import datetime, timedelta

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import event as count_event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hotpatch_core.errors import (
    ArchiveMismatchError,
    ExpiredError,
    FormatError,
    HashMismatchError,
    IllegalTransitionError,
    RollbackError,
    RootRotationError,
    UnknownKeyError,
    UnsignedError,
    WithdrawnError,
    WithheldError,
)
from hotpatch_core.head import ChannelHead, sign_head
from hotpatch_core.keys import SigningKey
from hotpatch_core.machine import (
    MAX_ROOT_STEPS,
    TRANSITIONS,
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
    ReportStatus,
    RequestCheck,
    RestartApp,
    RootAnswered,
    RunBundle,
    mermaid_diagram,
    step,
    trusted_root,
)
from hotpatch_core.manifest import Platform
from hotpatch_core.release import DeviceIdentity, sign_release
from hotpatch_core.testing import FIXED_TIME, build_release, head_listing, make_pki, rotate_pki
from hotpatch_core.trust import TimestampRole, sign_trust_root
from hotpatch_core.versions import Version

PKI_ = make_pki(seed=3)
V1 = Version(1, 0, 0)
V2 = Version(2, 0, 0)
CONFIG = DeviceConfig(
    DeviceIdentity("com.example.app", Platform.ANDROID, "production", V1), PKI_.root
)
CONFIGS = {
    V1: CONFIG,
    V2: attrs.evolve(CONFIG, identity=attrs.evolve(CONFIG.identity, native_version=V2)),
}
RELEASES = [
    build_release({"index.android.bundle": f"release {n}".encode()}, sequence=n, mandatory=n == 4)
    for n in range(1, 6)
]
ENVELOPES = [sign_release(r.manifest, [PKI_.publisher]) for r in RELEASES]
FORGED = sign_release(RELEASES[4].manifest, [SigningKey(b"\x66" * 32)])


def run(state: DeviceState, *events: Event) -> tuple[DeviceState, list[object]]:
    """Feed events in order; return the final state and every action."""
    actions: list[object] = []
    for event in events:
        state, produced = step(state, event, CONFIG)
        actions.extend(produced)
    return state, actions


def installed(state: DeviceState, index: int) -> DeviceState:
    """Check, download and install release ``index`` from ``state``."""
    archive = RELEASES[index].manifest.archive
    state, _ = run(
        state,
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(ENVELOPES[index], FIXED_TIME),
        DownloadFinished(archive.sha256, archive.length),
        InstallFinished(),
    )
    return state


def fresh() -> DeviceState:
    """A device that launched once on its embedded bundle."""
    return run(DeviceState(), Launched(V1))[0]


def test_happy_path_update_confirm() -> None:
    """Check -> download -> install -> launch on trial -> ready confirms and reports applied."""
    state = installed(fresh(), 0)
    assert state.pending is not None
    state, actions = run(state, Launched(V1))
    assert actions == [RunBundle(state.trial)]
    assert state.trial_launches == 1
    state, actions = run(state, Ready())
    assert state.confirmed is not None
    assert state.confirmed.sequence == 1
    assert state.trial is None
    assert actions == [Report(state.confirmed.manifest_id, ReportStatus.APPLIED)]


def test_verified_manifest_raises_high_water_before_download() -> None:
    """The state returned with the Download action already holds the new mark (A8)."""
    state, actions = run(
        fresh(), CheckStarted(), RootAnswered(None), CheckAnswered(ENVELOPES[2], FIXED_TIME)
    )
    assert isinstance(actions[-1], Download)
    assert state.high_water[CONFIG.scope_key].sequence == 3


def test_crash_loop_reverts_after_n() -> None:
    """A trial bundle launched twice without notify_ready is reverted on the third launch (A19)."""
    state = installed(fresh(), 0)
    state, _ = run(state, Launched(V1), Ready())  # release 1 confirmed
    good = state.confirmed
    state = installed(state, 1)
    state, _ = run(state, Launched(V1), Launched(V1))
    assert state.trial is not None
    bad = state.trial
    state, actions = run(state, Launched(V1))
    assert actions[-1] == RunBundle(good)
    assert any(
        isinstance(a, Report)
        and a.status is ReportStatus.ROLLED_BACK
        and a.manifest_id == bad.manifest_id
        for a in actions
    )
    assert DeleteBundle(bad.manifest_id) in actions
    assert bad.manifest_id in state.failed


def test_failed_release_not_retried() -> None:
    """A release that was rolled back is never downloaded again (A19)."""
    state = installed(fresh(), 0)
    state, _ = run(state, Launched(V1), Launched(V1), Launched(V1))
    assert state.failed
    state, actions = run(
        state, CheckStarted(), RootAnswered(None), CheckAnswered(ENVELOPES[0], FIXED_TIME)
    )
    assert not any(isinstance(a, Download) for a in actions)
    assert state.phase is Phase.IDLE


def test_no_auto_revert_after_healthy() -> None:
    """Once notify_ready confirmed a bundle, no number of launches reverts it (A19)."""
    state = installed(fresh(), 0)
    state, _ = run(state, Launched(V1), Ready())
    confirmed = state.confirmed
    for _ in range(10):
        state, actions = run(state, Launched(V1))
        assert actions == [RunBundle(confirmed)]
    assert state.failed == ()


def test_mandatory_release_restarts_now() -> None:
    """A release signed as mandatory asks for a restart once staged; others wait."""
    state = installed(fresh(), 3)
    assert state.pending is not None
    assert state.pending.mandatory
    _, actions = run(installed(fresh(), 0), ApplyRequested())
    assert actions == [RestartApp()]
    archive = RELEASES[3].manifest.archive
    _, actions = run(
        fresh(),
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(ENVELOPES[3], FIXED_TIME),
        DownloadFinished(archive.sha256, archive.length),
        InstallFinished(),
    )
    assert RestartApp() in actions


def test_unsigned_wrapper_fields_ignored() -> None:
    """Only signed bytes reach the machine: a check answer has no field for wrapper claims (A7).

    Besides the time and the device's own id, it carries two signed documents
    (the release envelope and the channel head) and the unsigned patch hint,
    which only chooses how the bytes come: every file a patch makes is checked
    against the signed manifest.
    """
    fields = {f.name for f in attrs.fields(CheckAnswered)}
    assert fields == {"envelope", "now", "head", "device_id", "patch"}
    archive = RELEASES[0].manifest.archive
    _, actions = run(
        fresh(),
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(ENVELOPES[0], FIXED_TIME),
        DownloadFinished(archive.sha256, archive.length),
        InstallFinished(),
    )
    assert RestartApp() not in actions  # the signed manifest is not mandatory


def test_rejected_manifest_never_downloads() -> None:
    """A forged or older manifest yields Reject and no Download (A1, A8, A18)."""
    state, actions = run(
        fresh(), CheckStarted(), RootAnswered(None), CheckAnswered(FORGED, FIXED_TIME)
    )
    assert [type(a) for a in actions] == [FetchRoot, RequestCheck, Reject]
    assert isinstance(actions[-1], Reject)
    assert isinstance(actions[-1].error, UnknownKeyError)
    state = installed(state, 2)
    state, actions = run(
        state, CheckStarted(), RootAnswered(None), CheckAnswered(ENVELOPES[1], FIXED_TIME)
    )
    assert isinstance(actions[-1], Reject)
    assert isinstance(actions[-1].error, RollbackError)
    assert not any(isinstance(a, Download) for a in actions)


def test_corrupt_download_discarded_not_blacklisted() -> None:
    """Bytes that do not match the signed hash are discarded; the release stays eligible."""
    state, _ = run(
        fresh(), CheckStarted(), RootAnswered(None), CheckAnswered(ENVELOPES[0], FIXED_TIME)
    )
    state, actions = run(state, DownloadFinished("0" * 64, 10))
    assert isinstance(actions[-1], Reject)
    assert isinstance(actions[-1].error, HashMismatchError)
    assert state.failed == ()
    assert state.offer is None
    assert installed(state, 0).pending is not None


def test_download_failure_keeps_offer_for_resume() -> None:
    """An interrupted download leaves the offer so the next check resumes it."""
    state, _ = run(
        fresh(), CheckStarted(), RootAnswered(None), CheckAnswered(ENVELOPES[0], FIXED_TIME)
    )
    state, actions = run(state, DownloadFailed("connection reset"))
    assert state.offer is not None
    assert isinstance(actions[0], Report)
    state, actions = run(
        state, CheckStarted(), RootAnswered(None), CheckAnswered(ENVELOPES[0], FIXED_TIME)
    )
    assert isinstance(actions[-1], Download)
    assert not any(isinstance(a, DiscardDownload) for a in actions)


def test_binary_upgrade_discards_ota_bundles() -> None:
    """A new native version drops every OTA bundle and runs the embedded one."""
    state = installed(fresh(), 0)
    state, _ = run(state, Launched(V1), Ready())
    confirmed = state.confirmed
    assert confirmed is not None
    state, actions = run(state, Launched(V2))
    assert DeleteBundle(confirmed.manifest_id) in actions
    assert actions[-1] == RunBundle(None)
    assert state.confirmed is None
    assert state.high_water[CONFIG.scope_key].sequence == 1  # the mark survives


def test_permanent_install_failure_marks_release_failed() -> None:
    """Signed content that cannot be installed is never tried again; a full disk is retried."""
    archive = RELEASES[0].manifest.archive
    prefix = (
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(ENVELOPES[0], FIXED_TIME),
        DownloadFinished(archive.sha256, archive.length),
    )
    state, _ = run(fresh(), *prefix, InstallFailed("No space left on device", permanent=False))
    assert state.failed == ()
    state, _ = run(fresh(), *prefix, InstallFailed("files differ from manifest", permanent=True))
    assert state.failed == (state.high_water[CONFIG.scope_key].manifest_id,)


def test_bundle_staged_before_first_launch_is_dropped_on_unknown_binary() -> None:
    """A bundle installed before any recorded launch does not survive into a launch."""
    state = installed(DeviceState(), 0)
    assert state.pending is not None
    state, actions = run(state, Launched(V2))
    assert actions[-1] == RunBundle(None)
    assert state.installed() == ()


# Every event type, derived from the Event union: a new event is covered without editing here.
EVENT_TYPES = typing.get_args(Event)
st.register_type_strategy(Version, st.sampled_from([V1, V2]))
events = st.one_of([st.from_type(kind) for kind in EVENT_TYPES])


def test_the_event_strategy_covers_every_event_type() -> None:
    """The union is the list: every type the table is keyed by is one of them."""
    assert {kind for _phase, kind in TRANSITIONS} <= set(EVENT_TYPES)
    assert len(EVENT_TYPES) >= 13


@given(phase=st.sampled_from(Phase), event=events)
def test_illegal_events_raise_and_change_nothing(phase: Phase, event: Event) -> None:
    """Every (phase, event) pair missing from the table raises IllegalTransitionError."""
    assume((phase, type(event)) not in TRANSITIONS)
    state = attrs.evolve(fresh(), phase=phase)
    with pytest.raises(IllegalTransitionError):
        step(state, event, CONFIG)


def test_lifecycle_misuse_raises() -> None:
    """notify_ready before on_launch, and apply() with nothing staged, are refused."""
    with pytest.raises(IllegalTransitionError):
        step(DeviceState(), Ready(), CONFIG)  # notify_ready before on_launch
    with pytest.raises(IllegalTransitionError):
        step(fresh(), ApplyRequested(), CONFIG)  # nothing staged


def test_diagram_is_generated_from_the_table() -> None:
    """Every non-lifecycle row of the table appears as an edge in the diagram."""
    diagram = mermaid_diagram()
    for (source, event), transition in TRANSITIONS.items():
        if event in (Launched, Ready):
            continue
        for target in transition.targets:
            assert f"{source.value} --> {target.value}: {event.__name__}" in diagram


def _same_publisher_chain(length: int) -> dict[int, bytes]:
    # Rotations that keep the publisher, so the releases above stay installable.
    chain = {}
    for version in range(2, length + 2):
        root = attrs.evolve(PKI_.root, version=version)
        chain[version] = sign_trust_root(root, PKI_.root_keys)
    return chain


ROOT_CHAIN = _same_publisher_chain(3)
# Version 2, signed by a key no root lists.
FORGED_ROOT = sign_trust_root(attrs.evolve(PKI_.root, version=2), [SigningKey(b"\x55" * 32)])


class DeviceMachine(RuleBasedStateMachine):
    """Random event sequences against the invariants of SECURITY.md A8 and A19."""

    @initialize()
    def boot(self) -> None:
        self.state = DeviceState()
        self.installed_ids: set[str] = set()
        self.mark = (0, 0)
        self.root_version = 1
        self.trusted_time: datetime | None = None
        self.unconfirmed_launches = 0
        self.last_run: object = None
        self.native = V1

    def _phase(self) -> Phase:
        return self.state.phase  # read afresh: a step replaces the state

    def _step(self, event: Event) -> list[object]:
        before = self.state
        try:
            self.state, actions = step(self.state, event, CONFIGS[self.native])
        except IllegalTransitionError:
            assert self.state == before
            return []
        for action in actions:
            if isinstance(action, RunBundle):
                self.last_run = action.bundle
        return list(actions)

    @rule(upgrade=st.booleans())
    def launch(self, upgrade: bool) -> None:
        if upgrade:
            self.native = V2 if self.native == V1 else V1
            self.installed_ids.clear()
        trial_before = self.state.trial if self.state.pending is None else self.state.pending
        confirmed_before = self.state.confirmed
        launches_before = self.state.trial_launches if self.state.pending is None else 0
        # A first launch (no binary known yet) wipes like an upgrade: nothing installed
        # under an unknown binary survives.
        upgrade = upgrade or self.state.native_version != str(self.native)
        self._step(Launched(self.native))
        if trial_before is not None and not upgrade:
            if launches_before >= CONFIG.crash_threshold:
                assert self.last_run == confirmed_before
                assert trial_before.manifest_id in self.state.failed
            else:
                assert self.last_run == trial_before
        if confirmed_before is not None and not upgrade:
            assert self.state.confirmed == confirmed_before  # never auto-reverted

    @precondition(lambda self: self.state.launched)
    @rule()
    def ready(self) -> None:
        self._step(Ready())

    @rule(
        answer=st.sampled_from([*range(len(ENVELOPES)), None, -1]),
        root=st.sampled_from(["none", "next", "replayed", "forged"]),
        hint=st.sampled_from(["none", "installed", "unknown"]),
    )
    def check(self, answer: int | None, root: str, hint: str) -> None:
        self._step(CheckStarted())
        version = trusted_root(self.state, CONFIG).version
        offered = {
            "none": None,
            "next": ROOT_CHAIN.get(version + 1),
            "replayed": ROOT_CHAIN.get(version, PKI_.root_bytes),
            "forged": FORGED_ROOT,
        }[root]
        self._step(RootAnswered(offered))
        if self.state.phase is Phase.ROOT:  # a root was taken: the server has none newer
            self._step(RootAnswered(None))
        envelope = None if answer is None else FORGED if answer == -1 else ENVELOPES[answer]
        installed = sorted(b.manifest_id for b in self.state.installed())
        base = installed[0] if hint == "installed" and installed else "f" * 64
        offer = None if hint == "none" else PatchHint(base, 1)
        actions = self._step(CheckAnswered(envelope, FIXED_TIME, patch=offer))
        if any(isinstance(a, FetchPatch) for a in actions):
            count_event("a patch was chosen")
            assert offer is not None
            assert offer.base_manifest_id in installed  # only from a bundle the device has

    @rule(apply=st.booleans())
    def patch_fails(self, apply: bool) -> None:
        """A patch that cannot be fetched or applied: reported, then the archive is fetched."""
        phase = ReportPhase.APPLY if apply else ReportPhase.DOWNLOAD
        before = self.state
        actions = self._step(PatchFailed("bad patch", phase))
        if before.phase is not Phase.DOWNLOADING:
            return  # illegal here, which _step accepts
        count_event("a patch failed")
        assert self.state == before
        assert [type(a) for a in actions] == [Report, Download]

    @rule(ok=st.booleans(), corrupt=st.booleans())
    def download(self, ok: bool, corrupt: bool) -> None:
        offer = self.state.offer
        if self.state.phase is not Phase.DOWNLOADING or offer is None:
            self._step(DownloadFailed("stray"))  # must be illegal here
            return
        if not ok:
            self._step(DownloadFailed("reset"))
            return
        archive = next(
            r.manifest.archive
            for r, e in zip(RELEASES, ENVELOPES, strict=True)
            if e == offer.envelope
        )
        sha = "f" * 64 if corrupt else archive.sha256
        actions = self._step(DownloadFinished(sha, archive.length))
        assert any(isinstance(a, Install) for a in actions) != corrupt

    @rule(ok=st.booleans(), permanent=st.booleans())
    def install(self, ok: bool, permanent: bool) -> None:
        offer = self.state.offer
        if self.state.phase is not Phase.INSTALLING or offer is None:
            self._step(InstallFinished())  # must be illegal here
            return
        if ok:
            self._step(InstallFinished())
            self.installed_ids.add(offer.bundle.manifest_id)
        else:
            self._step(InstallFailed("disk", permanent=permanent))

    @rule(during_root=st.booleans())
    def check_fails(self, during_root: bool) -> None:
        """The network fails while asking for a root or for the answer: nothing else moves."""
        before = self.state
        self._step(CheckStarted())
        if self._phase() is not Phase.ROOT:
            return  # the check could not start here
        if not during_root:
            self._step(RootAnswered(None))
        if self._phase() not in {Phase.ROOT, Phase.CHECKING}:
            return
        actions = self._step(CheckFailed("connection reset"))
        count_event(f"a check failed during {'root' if during_root else 'the answer'}")
        assert actions == []
        assert self._phase() is Phase.IDLE
        assert (self.state.offer, self.state.pending) == (before.offer, before.pending)
        assert self.state.high_water == before.high_water

    @rule(from_installed=st.booleans())
    def patch(self, from_installed: bool) -> None:
        """The release is built from a patch instead of downloaded (no archive hash to check)."""
        offer = self.state.offer
        installed = sorted(b.manifest_id for b in self.state.installed())
        base = installed[0] if from_installed and installed else "e" * 64  # or the embedded one
        if self.state.phase is not Phase.DOWNLOADING or offer is None:
            self._step(PatchInstalled(base))  # must be illegal here
            return
        actions = self._step(PatchInstalled(base))
        count_event("a patch staged the offer")
        assert self.state.pending is not None
        assert self.state.pending.manifest_id == offer.bundle.manifest_id
        assert self.state.pending.patched_from == base
        assert any(isinstance(a, DiscardDownload) for a in actions)
        self.installed_ids.add(offer.bundle.manifest_id)

    @rule()
    def apply(self) -> None:
        self._step(ApplyRequested())

    @rule()
    def interrupt(self) -> None:
        offer_before = self.state.offer
        self._step(Interrupted())  # illegal when idle, which _step accepts
        assert self.state.phase is Phase.IDLE
        assert self.state.offer == offer_before  # kept, so the next check resumes it

    @invariant()
    def runs_only_verified_bundles(self) -> None:
        running = self.state.running
        assert running is None or running.manifest_id in self.installed_ids

    @invariant()
    def root_version_never_decreases(self) -> None:
        version = trusted_root(self.state, CONFIG).version
        assert version >= self.root_version
        self.root_version = version

    @invariant()
    def high_water_never_decreases(self) -> None:
        mark = self.state.high_water.get(CONFIG.scope_key)
        position = mark.position() if mark else (0, 0)
        assert position >= self.mark
        self.mark = position

    @invariant()
    def trusted_time_never_decreases(self) -> None:
        now = self.state.trusted_time
        if self.trusted_time is not None:
            assert now is not None
            assert now >= self.trusted_time
        self.trusted_time = now

    @invariant()
    def failed_releases_never_installed(self) -> None:
        for bundle in self.state.installed():
            assert bundle.manifest_id not in self.state.failed

    @invariant()
    def trial_counter_bounded(self) -> None:
        assert 0 <= self.state.trial_launches <= CONFIG.crash_threshold


DeviceMachine.TestCase.settings = settings(stateful_step_count=40)  # examples from the profile
test_device_machine = DeviceMachine.TestCase


def test_interrupted_work_returns_to_idle_and_keeps_the_offer() -> None:
    """A restart mid-download leaves the offer, so the same release resumes at the next check."""
    state, _ = run(fresh(), CheckStarted(), RootAnswered(None))
    state, actions = step(state, CheckAnswered(ENVELOPES[0], FIXED_TIME), CONFIG)
    assert any(isinstance(a, Download) for a in actions)
    state, actions = step(state, Interrupted(), CONFIG)
    assert (state.phase, actions) == (Phase.IDLE, [])
    assert state.offer is not None
    state, _ = run(state, CheckStarted(), RootAnswered(None))
    state, actions = step(state, CheckAnswered(ENVELOPES[0], FIXED_TIME), CONFIG)
    assert [type(a) for a in actions] == [Download]  # same offer: nothing discarded
    with pytest.raises(IllegalTransitionError):
        step(attrs.evolve(state, phase=Phase.IDLE), Interrupted(), CONFIG)


def test_a_patched_install_stages_the_offer_without_an_archive_hash() -> None:
    """PatchInstalled takes the downloading offer straight to pending, like InstallFinished."""
    state, _ = run(fresh(), CheckStarted(), RootAnswered(None))
    state, _ = step(state, CheckAnswered(ENVELOPES[0], FIXED_TIME), CONFIG)
    offer = state.offer
    assert offer is not None
    base = "b" * 64
    state, actions = step(state, PatchInstalled(base), CONFIG)
    staged = attrs.evolve(offer.bundle, patched_from=base)
    assert (state.phase, state.pending, state.offer) == (Phase.IDLE, staged, None)
    assert DiscardDownload(offer.bundle.manifest_id) in actions


def test_the_applied_report_of_a_patched_release_names_its_base() -> None:
    """Confirming a release built from a patch reports which bundle the patch was applied to."""
    state, _ = run(fresh(), CheckStarted(), RootAnswered(None))
    state, _ = step(state, CheckAnswered(ENVELOPES[0], FIXED_TIME), CONFIG)
    state, _ = step(state, PatchInstalled("b" * 64), CONFIG)
    state, _ = step(state, Launched(V1), CONFIG)
    _, actions = step(state, Ready(), CONFIG)
    reports = [a for a in actions if isinstance(a, Report)]
    assert [(r.status, r.patched_from) for r in reports] == [(ReportStatus.APPLIED, "b" * 64)]


# --- trust root rotation (A10) ----------------------------------------------

ROTATED = rotate_pki(PKI_)


def _k2_release(sequence: int = 1) -> bytes:
    built = build_release({"index.android.bundle": b"signed by K2"}, epoch=2, sequence=sequence)
    return sign_release(built.manifest, [ROTATED.publisher])


def test_a10_device_walks_to_the_rotated_root_before_it_checks() -> None:
    """Root v2 is fetched, verified and kept before the answer is judged: K1 refused, K2 taken."""
    state, actions = run(fresh(), CheckStarted())
    assert (state.phase, actions) == (Phase.ROOT, [FetchRoot(2)])
    state, actions = run(state, RootAnswered(ROTATED.root_bytes))
    assert (state.phase, actions) == (Phase.ROOT, [FetchRoot(3)])
    assert state.trust_root == ROTATED.root_bytes  # durable before anything is verified with it
    assert trusted_root(state, CONFIG) == ROTATED.root
    state, actions = run(state, RootAnswered(None))
    assert state.phase is Phase.CHECKING
    assert [type(a) for a in actions] == [RequestCheck]
    # The leaked K1 signs a higher sequence of the old epoch: refused under v2.
    leaked = sign_release(RELEASES[4].manifest, [PKI_.publisher])
    refused, actions = run(state, CheckAnswered(leaked, FIXED_TIME))
    assert isinstance(actions[-1], Reject)
    assert isinstance(actions[-1].error, UnknownKeyError)
    assert refused.offer is None
    state, actions = run(state, CheckAnswered(_k2_release(), FIXED_TIME))
    assert [type(a) for a in actions] == [Download]


def test_a10_the_next_check_starts_from_the_accepted_root() -> None:
    """The accepted root survives the check: the next check asks for v3, and v2 again is refused."""
    state, _ = run(fresh(), CheckStarted(), RootAnswered(ROTATED.root_bytes), RootAnswered(None))
    state, _ = run(state, CheckAnswered(None, FIXED_TIME))
    state, actions = run(state, CheckStarted())
    assert actions == [FetchRoot(3)]
    state, actions = run(state, RootAnswered(ROTATED.root_bytes))  # v2 replayed for v3
    assert state.phase is Phase.IDLE
    assert isinstance(actions[-1], Reject)
    assert isinstance(actions[-1].error, RootRotationError)
    assert trusted_root(state, CONFIG) == ROTATED.root


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        # Signed by the new root keys only, not by v1's.
        (sign_trust_root(rotate_pki(PKI_, new_root_keys=True).root, ()), RootRotationError),
        (
            sign_trust_root(
                (forged := rotate_pki(PKI_, new_root_keys=True)).root, forged.root_keys
            ),
            RootRotationError,
        ),
        # Signed by v1's root keys, but not by its own new root keys.
        (
            sign_trust_root(rotate_pki(PKI_, new_root_keys=True).root, PKI_.root_keys),
            RootRotationError,
        ),
        # The current root replayed as the next (a rollback of the version).
        (PKI_.root_bytes, RootRotationError),
        # A version that skips one.
        (rotate_pki(rotate_pki(PKI_)).root_bytes, RootRotationError),
        (b"not an envelope", FormatError),
        (make_pki(seed=9).root_bytes, RootRotationError),
    ],
    ids=[
        "unsigned",
        "new-keys-only",
        "old-keys-only",
        "replayed-v1",
        "skips-v2",
        "garbage",
        "foreign-root",
    ],
)
def test_a10_a_forged_root_ends_the_check_and_changes_no_trust(
    answer: bytes, error: type[Exception]
) -> None:
    """A root that does not chain is refused with its error; no check is made, nothing kept."""
    state, actions = run(fresh(), CheckStarted(), RootAnswered(answer))
    assert state.phase is Phase.IDLE
    assert state.trust_root is None
    assert [type(a) for a in actions] == [FetchRoot, Reject]
    assert isinstance(actions[-1], Reject)
    assert isinstance(actions[-1].error, error)


def test_a10_a_long_chain_is_walked_a_bounded_number_of_steps_per_check() -> None:
    """At most MAX_ROOT_STEPS versions per check; the next check goes on where it stopped."""
    chain = [PKI_]
    for _ in range(MAX_ROOT_STEPS + 2):
        chain.append(rotate_pki(chain[-1], bump_epoch=False))
    state, _ = run(fresh(), CheckStarted())
    for pki in chain[1 : MAX_ROOT_STEPS + 1]:
        state, actions = run(state, RootAnswered(pki.root_bytes))
    assert state.phase is Phase.CHECKING
    assert [type(a) for a in actions] == [RequestCheck]
    assert trusted_root(state, CONFIG).version == MAX_ROOT_STEPS + 1
    state, _ = run(state, CheckAnswered(None, FIXED_TIME))
    state, actions = run(state, CheckStarted())
    assert actions == [FetchRoot(MAX_ROOT_STEPS + 2)]
    state, _ = run(state, RootAnswered(chain[-2].root_bytes), RootAnswered(chain[-1].root_bytes))
    assert trusted_root(state, CONFIG) == chain[-1].root


def test_a10_a_new_epoch_drops_the_offer_and_the_staged_bundle_not_what_ran() -> None:
    """What the revoked key signed and never ran goes; a bundle that already ran stays."""
    state = installed(fresh(), 0)
    state, _ = run(state, Launched(V1), Ready())  # release 1 confirmed
    state = installed(state, 1)  # release 2 staged
    state, _ = run(state, CheckStarted(), RootAnswered(None))
    state, _ = run(state, CheckAnswered(ENVELOPES[2], FIXED_TIME))  # release 3 downloading
    state, _ = run(state, Interrupted())
    assert state.offer is not None
    assert state.pending is not None
    staged, offered = state.pending.manifest_id, state.offer.bundle.manifest_id
    state, actions = run(state, CheckStarted(), RootAnswered(ROTATED.root_bytes))
    assert (state.offer, state.pending) == (None, None)
    assert DiscardDownload(offered) in actions
    assert DeleteBundle(staged) in actions
    assert state.confirmed is not None
    assert DeleteBundle(state.confirmed.manifest_id) not in actions


def test_a10_without_a_new_epoch_nothing_is_dropped() -> None:
    """A rotation that keeps the epoch leaves the staged bundle alone."""
    state = installed(fresh(), 0)
    state, actions = run(
        state, CheckStarted(), RootAnswered(rotate_pki(PKI_, bump_epoch=False).root_bytes)
    )
    assert state.pending is not None
    assert not any(isinstance(a, DeleteBundle) for a in actions)


def test_a10_the_newer_of_embedded_and_accepted_root_is_trusted() -> None:
    """A binary embedding a newer root wins; one embedding an older root never rolls back."""
    state, _ = run(fresh(), CheckStarted(), RootAnswered(ROTATED.root_bytes), RootAnswered(None))
    newer = rotate_pki(ROTATED)
    upgraded = attrs.evolve(CONFIG, trust_root=newer.root)
    assert trusted_root(state, upgraded) == newer.root
    assert trusted_root(state, CONFIG) == ROTATED.root


def test_the_check_cannot_skip_the_root_walk() -> None:
    """An answer while roots are being fetched is illegal: the machine orders the two."""
    state, _ = run(fresh(), CheckStarted())
    with pytest.raises(IllegalTransitionError):
        step(state, CheckAnswered(ENVELOPES[0], FIXED_TIME), CONFIG)
    failed, actions = run(state, CheckFailed("network"))
    assert (failed.phase, actions) == (Phase.IDLE, [])


# --- A5: freshness judged at the newest signed time seen ---------------------------


def test_a5_verifying_a_release_raises_the_trusted_time_and_never_lowers_it() -> None:
    """The device keeps the newest ``createdAt`` it verified; an older one leaves it be."""
    state = installed(fresh(), 0)
    assert state.trusted_time == RELEASES[0].manifest.created_at
    older = attrs.evolve(RELEASES[1].manifest, created_at=FIXED_TIME - timedelta(days=3))
    state, _ = run(
        state,
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(sign_release(older, [PKI_.publisher]), FIXED_TIME),
    )
    assert state.trusted_time == FIXED_TIME


def _behind(envelope: bytes) -> list[object]:
    """Offer ``envelope`` to a device that verified a release at FIXED_TIME, 4 days behind it."""
    state = installed(fresh(), 0)
    assert state.trusted_time == FIXED_TIME
    _, actions = run(
        state,
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(envelope, FIXED_TIME - timedelta(days=4)),
    )
    return actions


def test_a5_a_clock_that_is_behind_cannot_accept_an_expired_manifest() -> None:
    """A manifest that expired 2 days before the newest signed time is refused 4 days behind."""
    stale = attrs.evolve(
        RELEASES[1].manifest,
        created_at=FIXED_TIME - timedelta(days=5),
        expires_at=FIXED_TIME - timedelta(days=2),
    )
    envelope = sign_release(stale, [PKI_.publisher])
    refused = _behind(envelope)[-1]
    assert isinstance(refused, Reject)
    assert isinstance(refused.error, ExpiredError)
    # A device that never saw a newer signed time judges by its clock alone (and takes it).
    _, taken = run(
        fresh(),
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(envelope, FIXED_TIME - timedelta(days=4)),
    )
    assert isinstance(taken[-1], Download)


def test_a5_a_clock_that_is_behind_cannot_revive_an_expired_publisher_key() -> None:
    """A release signed by a key that expired yesterday is refused by a clock 4 days behind."""
    expiring = attrs.evolve(PKI_.root.publishers[0], expires_at=FIXED_TIME - timedelta(days=1))
    root = attrs.evolve(PKI_.root, publishers=(expiring, *PKI_.root.publishers[1:]))
    config = attrs.evolve(CONFIG, trust_root=root)
    old = attrs.evolve(RELEASES[1].manifest, created_at=FIXED_TIME - timedelta(days=5))
    state = attrs.evolve(fresh(), trusted_time=FIXED_TIME)
    for event in (CheckStarted(), RootAnswered(None)):
        state, _ = step(state, event, config)
    _, actions = step(
        state,
        CheckAnswered(sign_release(old, [PKI_.publisher]), FIXED_TIME - timedelta(days=4)),
        config,
    )
    assert len(actions) == 1
    assert isinstance(actions[0], Reject)
    assert isinstance(actions[0].error, ExpiredError)


# --- the signed channel head (A5) ------------------------------------------------------------

STAMPED = make_pki(seed=5, timestamp=True)
STAMPED_CONFIG = attrs.evolve(CONFIG, trust_root=STAMPED.root)
STAMPED_ENVELOPES = [sign_release(r.manifest, [STAMPED.publisher]) for r in RELEASES]
MANIFESTS = [r.manifest for r in RELEASES]


def _head(head: ChannelHead, key: SigningKey | None = None) -> bytes:
    assert STAMPED.timestamp is not None
    return sign_head(head, [key or STAMPED.timestamp])


def _answer(
    envelope: bytes | None,
    head: bytes | None,
    *,
    state: DeviceState | None = None,
    now: datetime = FIXED_TIME,
    config: DeviceConfig = STAMPED_CONFIG,
) -> tuple[DeviceState, list[object]]:
    """Start a check on ``state`` (default: fresh) and answer it with ``envelope`` and ``head``."""
    state = state or fresh()
    actions: list[object] = []
    for event in (
        CheckStarted(),
        RootAnswered(None),
        CheckAnswered(envelope, now, head, "device-1"),
    ):
        state, produced = step(state, event, config)
        actions = list(produced)
    return state, actions


def _refused(actions: list[object]) -> type[Exception]:
    assert not any(isinstance(a, Download) for a in actions)
    reject = actions[-1]
    assert isinstance(reject, Reject)
    return type(reject.error)


def test_a5_the_offered_release_is_taken_with_a_current_head_that_lists_it() -> None:
    """The honest case: a current head that lists the offer; its time is kept."""
    state, actions = _answer(STAMPED_ENVELOPES[2], _head(head_listing(MANIFESTS[:3])))
    assert [type(a) for a in actions] == [Download]
    assert state.head_seen[CONFIG.scope_key] == FIXED_TIME


def test_a5_a_root_with_a_timestamp_key_refuses_an_answer_without_a_head() -> None:
    """A root that names a timestamp key makes the head mandatory."""
    assert _refused(_answer(STAMPED_ENVELOPES[2], None)[1]) is UnsignedError
    assert _refused(_answer(None, None)[1]) is UnsignedError


def test_a5_a_root_without_one_ignores_heads() -> None:
    """A root with no timestamp role keeps the old behaviour: heads are not read."""
    _, actions = _answer(ENVELOPES[2], b"not a head", config=CONFIG)
    assert [type(a) for a in actions] == [Download]


def test_a5_an_old_answer_replayed_after_its_head_expired_is_refused() -> None:
    """A mirror that replays yesterday's answer, head and all, is caught when the head expires."""
    head = _head(head_listing(MANIFESTS[:3], lifetime=timedelta(hours=24)))
    _, actions = _answer(STAMPED_ENVELOPES[2], head, now=FIXED_TIME + timedelta(hours=24))
    assert _refused(actions) is ExpiredError
    # A clock set back does not revive it for a device that has seen a newer head.
    seen = {CONFIG.scope_key: FIXED_TIME + timedelta(days=2)}
    state = attrs.evolve(fresh(), head_seen=seen)
    assert _refused(_answer(STAMPED_ENVELOPES[2], head, state=state)[1]) is RollbackError


def test_a5_a_publisher_clock_ahead_does_not_expire_the_servers_heads() -> None:
    """The trusted time comes from manifests (the publisher's clock): heads are judged without it.

    A manifest signed on a machine whose clock ran two days ahead raised the
    device's trusted time; the server's current head must still be taken.
    """
    state = attrs.evolve(fresh(), trusted_time=FIXED_TIME + timedelta(days=2))
    head = _head(head_listing(MANIFESTS[:3]))
    assert [type(a) for a in _answer(STAMPED_ENVELOPES[2], head, state=state)[1]] == [Download]


def test_a5_a_withdrawn_release_is_refused() -> None:
    """Release 3 was withdrawn (archived): the current head lists only 1 and 2."""
    _, actions = _answer(STAMPED_ENVELOPES[2], _head(head_listing(MANIFESTS[:2])))
    assert _refused(actions) is WithdrawnError


def test_a5_a_paused_release_is_refused() -> None:
    """A paused release is not due, so offering it instead of the due one is refused."""
    head = head_listing(MANIFESTS[:3])
    paused = head_listing(MANIFESTS[:3], paused=[head.releases[0].manifest_id])
    assert _refused(_answer(STAMPED_ENVELOPES[2], _head(paused))[1]) is WithheldError


def test_a5_an_answer_that_hides_the_newest_release_is_refused() -> None:
    """The head lists release 3 for everyone; offering nothing, or release 2, is a freeze."""
    head = _head(head_listing(MANIFESTS[:3]))
    assert _refused(_answer(None, head)[1]) is WithheldError
    assert _refused(_answer(STAMPED_ENVELOPES[1], head)[1]) is WithheldError


def test_a5_nothing_is_held_back_from_a_device_outside_the_rollout() -> None:
    """Outside every release's cohort, no offer is the honest answer."""
    head = head_listing(MANIFESTS[:3], rollout_basis_points=0)
    state, actions = _answer(None, _head(head))
    assert actions == []
    assert state.phase is Phase.IDLE


def test_a5_a_release_the_device_failed_may_be_skipped_or_offered() -> None:
    """A failed release may be offered (and ignored) or skipped; the next is then due."""
    failed = attrs.evolve(fresh(), failed=(head_listing(MANIFESTS[:3]).releases[0].manifest_id,))
    head = _head(head_listing(MANIFESTS[:3]))
    assert [type(a) for a in _answer(STAMPED_ENVELOPES[1], head, state=failed)[1]] == [Download]
    assert _answer(STAMPED_ENVELOPES[2], head, state=failed)[1] == []  # failed for good: ignored
    assert _refused(_answer(None, head, state=failed)[1]) is WithheldError  # release 2 is due


def test_a5_a_head_older_than_one_seen_is_refused_and_seen_times_are_saved_sparingly() -> None:
    """An older head is refused; a slightly newer one does not cost a state write."""
    newer = _head(head_listing(MANIFESTS[:3], issued_at=FIXED_TIME + timedelta(minutes=10)))
    state, _ = _answer(None, newer, state=attrs.evolve(fresh(), failed=()))
    state = attrs.evolve(state, phase=Phase.IDLE)
    seen = state.head_seen[CONFIG.scope_key]
    assert seen == FIXED_TIME + timedelta(minutes=10)
    # A head a few seconds newer is taken but not saved (no write per check) ...
    slightly = _head(head_listing(MANIFESTS[:3], issued_at=seen + timedelta(seconds=5)))
    again, _ = _answer(STAMPED_ENVELOPES[2], slightly, state=state)
    assert again.head_seen[CONFIG.scope_key] == seen
    # ... and one from before the last seen one, past the tolerance, is refused.
    old = _head(head_listing(MANIFESTS[:3]))
    assert _refused(_answer(STAMPED_ENVELOPES[2], old, state=state)[1]) is RollbackError


def test_a5_a_head_signed_by_a_key_the_root_does_not_name_is_refused() -> None:
    """A head signed by any other key is refused."""
    forged = _head(head_listing(MANIFESTS[:3]), SigningKey(b"\x07" * 32))
    assert _refused(_answer(STAMPED_ENVELOPES[2], forged)[1]) is UnknownKeyError


def test_a5_a_root_that_changes_the_timestamp_keys_forgets_the_heads_seen() -> None:
    """A key that signed a head far in the future cannot freeze devices past a rotation."""
    state, _ = _answer(None, _head(head_listing([], issued_at=FIXED_TIME + timedelta(days=3650))))
    assert state.head_seen
    new_stamp = SigningKey(b"\x08" * 32)
    rotated = attrs.evolve(
        STAMPED.root, version=2, timestamp=TimestampRole((new_stamp.public_key,))
    )
    envelope = sign_trust_root(rotated, STAMPED.root_keys)
    state, _ = step(state, CheckStarted(), STAMPED_CONFIG)
    state, _ = step(state, RootAnswered(envelope), STAMPED_CONFIG)
    assert state.head_seen == {}
    state, _ = step(state, RootAnswered(None), STAMPED_CONFIG)
    head = sign_head(head_listing(MANIFESTS[:3]), [new_stamp])
    state, actions = step(
        state, CheckAnswered(STAMPED_ENVELOPES[2], FIXED_TIME, head, "device-1"), STAMPED_CONFIG
    )
    assert [type(a) for a in actions] == [Download]


def _answered(
    state: DeviceState, index: int, hint: PatchHint | None, config: DeviceConfig = CONFIG
) -> tuple[DeviceState, list[Action]]:
    for event in (CheckStarted(), RootAnswered(None)):
        state, _ = step(state, event, config)
    return step(state, CheckAnswered(ENVELOPES[index], FIXED_TIME, patch=hint), config)


def test_a_patch_is_fetched_only_from_a_bundle_the_device_has_and_only_when_smaller() -> None:
    """FetchPatch for an installed or the embedded base and fewer bytes; otherwise Download."""
    state = installed(fresh(), 0)
    base = state.pending
    assert base is not None
    length = RELEASES[1].manifest.archive.length
    embedded = "e" * 64
    cases = [
        (PatchHint(base.manifest_id, length - 1), CONFIG, FetchPatch),
        (PatchHint(base.manifest_id, length), CONFIG, Download),  # no saving
        (PatchHint("f" * 64, 10), CONFIG, Download),  # a base this device does not have
        (PatchHint(embedded, 10), CONFIG, Download),  # the app did not say what it embeds
        (PatchHint(embedded, 10), attrs.evolve(CONFIG, embedded_base=embedded), FetchPatch),
        (None, CONFIG, Download),
    ]
    for hint, config, kind in cases:
        after, actions = _answered(state, 1, hint, config)
        assert [type(a) for a in actions] == [kind], (hint, config.embedded_base)
        assert after.phase is Phase.DOWNLOADING
        assert after.high_water[CONFIG.scope_key].sequence == 2  # raised before any fetch (A8)


def test_a_failed_patch_is_reported_then_the_archive_is_fetched() -> None:
    """PatchFailed keeps the offer, reports the phase and reason, and asks for the archive."""
    state = installed(fresh(), 0)
    assert state.pending is not None
    hint = PatchHint(state.pending.manifest_id, 1)
    state, _ = _answered(state, 1, hint)
    target = RELEASES[1].manifest
    for phase in (ReportPhase.DOWNLOAD, ReportPhase.APPLY):
        after, actions = step(state, PatchFailed("WrongBaseError: no", phase), CONFIG)
        assert after == state
        report, download = actions
        assert isinstance(report, Report)
        assert (report.status, report.phase) == (ReportStatus.FAILED, phase)
        assert report.reason.startswith("WrongBaseError: no; fell back")
        assert isinstance(download, Download)
        assert download.release.manifest_id == report.manifest_id
    after, _ = run(
        after,
        DownloadFinished(target.archive.sha256, target.archive.length),
        InstallFinished(),
    )
    assert after.pending is not None
    assert after.pending.patched_from is None


def test_a_release_without_the_entry_file_is_refused_before_any_fetch() -> None:
    """Authentic but not loadable: refused at the check, reported, failed for good."""
    built = build_release({"main.jsbundle": b"ios only"}, sequence=2)
    envelope = sign_release(built.manifest, [PKI_.publisher])
    state = installed(fresh(), 0)
    for event in (CheckStarted(), RootAnswered(None)):
        state, _ = step(state, event, CONFIG)
    after, actions = step(state, CheckAnswered(envelope, FIXED_TIME), CONFIG)
    report, reject = actions
    assert isinstance(reject, Reject)
    assert type(reject.error) is ArchiveMismatchError
    assert isinstance(report, Report)
    assert (report.status, report.phase) == (ReportStatus.FAILED, ReportPhase.VERIFY)
    assert report.manifest_id in after.failed
    assert (after.phase, after.offer) == (Phase.IDLE, None)
    ios = attrs.evolve(CONFIG, bundle_file="main.jsbundle")
    _, actions = step(state, CheckAnswered(envelope, FIXED_TIME), ios)
    assert [type(a) for a in actions] == [Download]
