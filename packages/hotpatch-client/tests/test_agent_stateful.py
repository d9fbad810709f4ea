"""Random lives of one device: publishes, patches, syncs, launches, crashes, power cuts and lies.

A Hypothesis state machine drives a real agent on the crashable file system
against the in-memory server and checks, after every step, what must hold
whatever happened: the device runs the embedded bundle or a verified,
hash-valid installed one; its high-water mark never goes down, even across
power cuts; a release that crashes at launch is never confirmed; a failed
release is never installed again.
"""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import event as count_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hotpatch_client import Agent
from hotpatch_client.testing import (
    FakeClock,
    MemoryFileSystem,
    RepositorySimulator,
    SimulatedCrash,
    sample_bundle,
)
from hotpatch_core.machine import DeviceState


def _endless(_archive: bytes, _start: int) -> Iterator[bytes]:
    while True:
        yield b"\0" * 4096


def _position(state: DeviceState) -> tuple[int, int]:
    marks = list(state.high_water.values())
    return marks[0].position() if marks else (0, 0)


class DeviceLife(RuleBasedStateMachine):
    """One device, one server, and everything that can happen between them."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = RepositorySimulator()
        self.clock = FakeClock()
        self.fs = MemoryFileSystem()
        self.agent = self._boot()
        self.crashing: set[str] = set()  # manifest ids whose launches crash
        self.mark = (0, 0)
        self.launched = False

    def _boot(self) -> Agent:
        return Agent(self.sim.config(), http=self.sim.client(), fs=self.fs, clock=self.clock)

    @rule(crashes=st.booleans(), mandatory=st.booleans())
    def publish(self, crashes: bool, mandatory: bool) -> None:
        n = len(self.sim.releases) + 1
        release = self.sim.publish(sample_bundle(f"r{n}", extra=n % 3), mandatory=mandatory)
        if crashes:
            self.crashing.add(release.manifest_id)

    @rule(lie=st.sampled_from([None, None, "hash", "endless", "cut", "check-503", "garbled"]))
    def sync(self, lie: str | None) -> None:
        offered = self.sim.releases[-1] if self.sim.releases else None
        if lie == "check-503":
            self.sim.check_statuses = [503] * 8  # every retry of this sync's check
        elif lie == "garbled":
            self.sim.answer_extra = {"updateAvailable": "yes"}
        elif lie == "hash" and offered is not None:
            self.sim.archive_override = bytes(len(offered.built.archive))
        elif lie == "endless":
            self.sim.body = _endless
        elif lie == "cut" and offered is not None:
            self.sim.cut_after = len(offered.built.archive) // 2
        try:
            result = self.agent.sync()  # never raises for update failures
            patched = " from a patch" if result.patched else ""
            count_event(f"sync with {lie or 'no lie'}: {result.status.value}{patched}")
        finally:
            self.sim.archive_override = None
            self.sim.body = None
            self.sim.cut_after = None
            self.sim.check_statuses = []
            self.sim.answer_extra = {}

    @rule(damaged=st.booleans())
    def patch(self, damaged: bool) -> None:
        """Offer a patch from the bundle the device runs to the newest release (or a bad one)."""
        running = self.agent.state.confirmed or self.agent.state.trial
        if running is None or not self.sim.releases:
            return
        base = next((r for r in self.sim.releases if r.manifest_id == running.manifest_id), None)
        if base is None:
            return
        if base is self.sim.releases[-1]:
            self.publish(crashes=False, mandatory=False)  # something to patch to
        newest = self.sim.releases[-1]
        patch = self.sim.make_patch(base, newest)
        if damaged:  # the device must fall back to the archive
            middle = len(patch) // 2
            damaged_bytes = patch[:middle] + bytes([patch[middle] ^ 0xFF]) + patch[middle + 1 :]
            self.sim.patches[(base.manifest_id, newest.manifest_id)] = damaged_bytes

    @rule()
    def launch(self) -> None:
        self.agent.on_launch()
        self.launched = True
        running = self.agent.state.running
        if running is None or running.manifest_id not in self.crashing:
            self.agent.notify_ready()
        else:
            self._power_cut()  # the process died before its first render

    @precondition(lambda self: self.launched)
    @rule()
    def apply(self) -> None:
        if self.agent.state.pending is not None:
            self.agent.apply()

    @rule(after=st.integers(min_value=1, max_value=60), during=st.sampled_from(["sync", "launch"]))
    def crash_during(self, after: int, during: str) -> None:
        self.fs.crash_at = self.fs.operations + after
        try:
            if during == "sync":
                self.agent.sync()
            else:
                self.agent.on_launch()
                self.launched = True
        except SimulatedCrash:
            pass
        self.fs.crash_at = None
        self._power_cut()

    def _power_cut(self) -> None:
        self.fs = self.fs.after_crash()
        self.agent = self._boot()
        self.launched = False

    @invariant()
    def runs_a_verified_bundle(self) -> None:
        if not self.launched:
            return
        running = self.agent.state.running
        path = self.agent.bundle_path()
        if running is None:
            assert path is None
        else:
            assert path is not None
            assert running in self.agent.state.installed()
        assert set(self.agent.verify_bundles().values()) <= {None}

    @invariant()
    def high_water_never_decreases(self) -> None:
        position = _position(self.agent.state)
        assert position >= self.mark
        self.mark = position

    @invariant()
    def crashing_release_never_confirmed(self) -> None:
        confirmed = self.agent.state.confirmed
        assert confirmed is None or confirmed.manifest_id not in self.crashing

    @invariant()
    def failed_release_never_installed(self) -> None:
        installed = {b.manifest_id for b in self.agent.state.installed()}
        assert not installed & set(self.agent.state.failed)

    def teardown(self) -> None:
        self.agent.close()


DeviceLife.TestCase.settings = settings(stateful_step_count=25)
test_device_life = DeviceLife.TestCase
