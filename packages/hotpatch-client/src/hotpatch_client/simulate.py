"""A fleet of simulated devices, each a real :class:`Agent` with its own storage.

Every round, each device launches (``on_launch``), "renders" — or crashes
before its first render when it runs a release listed in ``crash_versions``,
or with probability ``crash_rate`` — then syncs with the server, as an app
does in the background. Used for demos, rollout experiments and load.

With ``codepush_devices`` and a deployment key, that many of the devices are
``react-native-code-push`` apps instead (:class:`CodePushDevice`): the same
rounds, over the CodePush protocol, from the same releases.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import httpx

from hotpatch_client.agent import Agent, AgentConfig, SyncStatus
from hotpatch_client.codepush import CodePushConfig, CodePushDevice
from hotpatch_core.errors import HotPatchError

__all__ = ["DeviceOutcome", "Fleet", "FleetSummary"]

EMBEDDED = "embedded"


@attrs.frozen
class DeviceOutcome:
    """What one device did in one round."""

    device_id: str
    native_version: str
    ran: str  # the release version it launched, or "embedded"
    crashed: bool
    sync: SyncStatus | None  # None: it crashed before it could sync
    error: str | None
    rolled_back: tuple[str, ...]  # releases this device has reverted, ever
    error_message: str | None = None
    protocol: str = "hotpatch"  # or "codepush"


@attrs.frozen
class FleetSummary:
    """One round of the whole fleet, summed up."""

    round: int
    devices: int
    running: dict[str, int]  # version -> devices that launched it this round
    crashed: int
    staged: int  # devices that downloaded an update this round (runs next launch)
    failed: int
    rolled_back_devices: int  # devices that have reverted at least one release
    errors: dict[str, int]  # error type -> count
    error_examples: dict[str, str] = attrs.field(factory=dict)  # error type -> one message
    codepush_devices: int = 0  # of ``devices``, how many speak the CodePush protocol

    @property
    def all_failed(self) -> bool:
        """Whether every device that got to sync failed (and at least one tried)."""
        tried = self.devices - self.crashed
        return tried > 0 and self.failed == tried

    def describe(self) -> str:
        """Narrate the round in one paragraph."""
        versions = ", ".join(f"{v}: {n}" for v, n in sorted(self.running.items())) or "none"
        mixed = f" ({self.codepush_devices} of them CodePush)" if self.codepush_devices else ""
        text = (
            f"round {self.round}: {self.devices} devices{mixed} ran [{versions}]; "
            f"{self.staged} staged an update, {self.crashed} crashed before first render, "
            f"{self.rolled_back_devices} have rolled back a release"
        )
        if self.failed:
            errors = ", ".join(f"{k} x{n}" for k, n in sorted(self.errors.items()))
            text += f"; {self.failed} syncs failed ({errors})"
        return text


class Fleet:
    """``devices`` simulated devices of one app, stored under ``storage`` (a temp dir by default).

    ``config`` is the template: each device gets its own ``device_id``
    (``{id_prefix}-00001`` ...) and a native version taken round-robin from
    ``native_versions`` (default: the template's).
    """

    def __init__(  # noqa: PLR0913 - the simulation's knobs, all keyword-only
        self,
        config: AgentConfig,
        *,
        http: httpx.Client,
        devices: int,
        storage: Path | None = None,
        native_versions: Iterable[str] = (),
        crash_versions: Iterable[str] = (),
        crash_rate: float = 0.0,
        seed: int = 1,
        id_prefix: str = "sim",
        concurrency: int = 4,
        codepush_devices: int = 0,
        deployment_key: str | None = None,
    ) -> None:
        """Prepare the fleet; nothing runs until :meth:`run_round`."""
        if devices < 1:
            msg = "a fleet needs at least one device"
            raise ValueError(msg)
        if not 0 <= codepush_devices <= devices:
            msg = "codepush_devices is between 0 and the number of devices"
            raise ValueError(msg)
        if codepush_devices and not deployment_key:
            msg = "CodePush devices need a deployment key"
            raise ValueError(msg)
        self._codepush_from = devices - codepush_devices
        self._deployment_key = deployment_key or ""
        if not 0.0 <= crash_rate <= 1.0:
            msg = "crash_rate is a probability between 0 and 1"
            raise ValueError(msg)
        self._owns_storage = storage is None
        self.storage = storage or Path(tempfile.mkdtemp(prefix="hotpatch-fleet-"))
        self._http = http
        natives = list(native_versions) or [config.native_version]
        self._configs = [
            attrs.evolve(
                config,
                device_id=f"{id_prefix}-{index:05d}",
                native_version=natives[index % len(natives)],
            )
            for index in range(devices)
        ]
        self._codepush_ids = frozenset(
            c.device_id for c in self._configs[self._codepush_from :] if c.device_id
        )
        self._crash_versions = frozenset(crash_versions)
        self._crash_rate = crash_rate
        self._random = random.Random(seed)  # noqa: S311 - simulated crashes, not secrets
        self._concurrency = max(1, concurrency)
        self.rounds = 0

    def close(self) -> None:
        """Remove the storage if the fleet created it."""
        if self._owns_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> Fleet:
        """Use the fleet as a context manager that cleans up."""
        return self

    def __exit__(self, *_exc: object) -> None:
        """Clean up."""
        self.close()

    def _codepush_device(self, config: AgentConfig, crash_roll: float) -> DeviceOutcome:
        assert config.device_id is not None  # noqa: S101 - set in __init__
        device = CodePushDevice(
            CodePushConfig(
                server_url=config.server_url,
                deployment_key=self._deployment_key,
                app_version=config.native_version,
                device_id=config.device_id,
                bundle_file=config.entry_file,
            ),
            http=self._http,
            storage=self.storage / config.device_id,
        )
        device.launch()
        running = device.running
        ran = str(running["version"]) if running is not None else EMBEDDED
        crashed = ran in self._crash_versions or crash_roll < self._crash_rate
        outcome = DeviceOutcome(
            device_id=config.device_id,
            native_version=config.native_version,
            ran=ran,
            crashed=crashed,
            sync=None,
            error=None,
            rolled_back=device.failed,
            protocol="codepush",
        )
        if crashed:
            return outcome
        device.notify_ready()
        result = device.sync()
        return attrs.evolve(
            outcome,
            sync=result.status,
            error=type(result.error).__name__ if result.error is not None else None,
            error_message=str(result.error) if result.error is not None else None,
        )

    def _device(self, config: AgentConfig, crash_roll: float) -> DeviceOutcome:
        assert config.device_id is not None  # noqa: S101 - set in __init__
        if config.device_id in self._codepush_ids:
            return self._codepush_device(config, crash_roll)
        storage = self.storage / config.device_id
        with Agent(config, http=self._http, storage_dir=storage) as agent:
            agent.on_launch()
            running = agent.state.running
            ran = running.version if running is not None else EMBEDDED
            crashed = ran in self._crash_versions or crash_roll < self._crash_rate
            if crashed:  # the process died: no render, no background sync
                return DeviceOutcome(
                    device_id=config.device_id,
                    native_version=config.native_version,
                    ran=ran,
                    crashed=True,
                    sync=None,
                    error=None,
                    rolled_back=agent.state.failed,
                )
            agent.notify_ready()
            result = agent.sync()
            return DeviceOutcome(
                device_id=config.device_id,
                native_version=config.native_version,
                ran=ran,
                crashed=False,
                sync=result.status,
                error=type(result.error).__name__ if result.error is not None else None,
                rolled_back=agent.state.failed,
                error_message=str(result.error) if result.error is not None else None,
            )

    def run_round(self, on_device: Callable[[DeviceOutcome], None] | None = None) -> FleetSummary:
        """Launch, render (or crash) and sync every device once."""
        self.rounds += 1
        rolls = [self._random.random() for _ in self._configs]
        with ThreadPoolExecutor(self._concurrency) as pool:
            outcomes = list(pool.map(self._safe_device, self._configs, rolls))
        if on_device is not None:
            for outcome in outcomes:
                on_device(outcome)
        errors = Counter(o.error for o in outcomes if o.error is not None)
        return FleetSummary(
            round=self.rounds,
            devices=len(outcomes),
            running=dict(Counter(o.ran for o in outcomes)),
            crashed=sum(o.crashed for o in outcomes),
            staged=sum(
                o.sync in (SyncStatus.STAGED, SyncStatus.RESTART_REQUESTED) for o in outcomes
            ),
            failed=sum(o.sync is SyncStatus.FAILED for o in outcomes),
            rolled_back_devices=sum(bool(o.rolled_back) for o in outcomes),
            errors=dict(errors),
            error_examples={
                o.error: o.error_message or "" for o in reversed(outcomes) if o.error is not None
            },
            codepush_devices=sum(o.protocol == "codepush" for o in outcomes),
        )

    def _safe_device(self, config: AgentConfig, roll: float) -> DeviceOutcome:
        try:
            return self._device(config, roll)
        except HotPatchError as exc:  # a device whose storage failed: count it, go on
            return DeviceOutcome(
                device_id=config.device_id or "",
                native_version=config.native_version,
                ran=EMBEDDED,
                crashed=False,
                sync=SyncStatus.FAILED,
                error=type(exc).__name__,
                rolled_back=(),
                error_message=str(exc),
            )
