"""Device conformance scenarios: generated here, committed in docs/spec/conformance/.

Run ``python packages/hotpatch-core/tests/conformance_gen.py`` (or
``nox -s vectors``) after a deliberate change of the device's behaviour;
``test_conformance.py`` fails whenever the code and the committed scenarios
disagree. Each scenario is scripted as events; what the reference machine
answers is recorded, and the story each one tells is asserted here, so a
regression cannot be recorded as the expected behaviour unnoticed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from hotpatch_core.conformance import (
    FORMAT,
    encode_action,
    encode_config,
    encode_event,
    encode_state,
)
from hotpatch_core.head import ChannelHead, sign_head
from hotpatch_core.keys import SigningKey
from hotpatch_core.machine import (
    ApplyRequested,
    CheckAnswered,
    CheckFailed,
    CheckStarted,
    DeviceConfig,
    DeviceState,
    DownloadFailed,
    DownloadFinished,
    Event,
    InstallFailed,
    InstallFinished,
    Interrupted,
    Launched,
    PatchFailed,
    PatchHint,
    PatchInstalled,
    Ready,
    ReportPhase,
    RootAnswered,
    step,
)
from hotpatch_core.manifest import Platform
from hotpatch_core.release import DeviceIdentity, sign_release
from hotpatch_core.testing import (
    FIXED_TIME,
    BuiltRelease,
    build_release,
    head_listing,
    make_pki,
    rotate_pki,
)
from hotpatch_core.trust import TimestampRole, sign_trust_root
from hotpatch_core.versions import Version

SCENARIOS = Path(__file__).resolve().parents[3] / "docs" / "spec" / "conformance"
PKI = make_pki(seed=21)
ROTATED = rotate_pki(PKI, seed=22, bump_epoch=False)
V1 = Version(1, 0, 0)
V2 = Version(2, 0, 0)
CONFIG = DeviceConfig(
    DeviceIdentity("com.example.app", Platform.ANDROID, "production", V1), PKI.root
)


def _release(sequence: int, *, mandatory: bool = False, binary_range: str = "*") -> BuiltRelease:
    files = {
        "index.android.bundle": f"__d(function(){{console.log('release {sequence}')}});\n".encode(),
        "assets/logo.png": bytes(range(16)),
    }
    return build_release(
        files,
        version=f"1.0.{sequence}",
        sequence=sequence,
        mandatory=mandatory,
        binary_range=binary_range,
        compresslevel=0,
    )


RELEASES = {n: _release(n) for n in (1, 2, 3)}
ENVELOPES = {n: sign_release(r.manifest, [PKI.publisher]) for n, r in RELEASES.items()}
MANDATORY = _release(4, mandatory=True)
ONLY_V1 = _release(5, binary_range="1.0.x")
FORGED = sign_release(RELEASES[2].manifest, [SigningKey(b"\x66" * 32)])
NEW_PUBLISHER = sign_release(RELEASES[2].manifest, [ROTATED.publisher])


def _id(envelope: bytes) -> str:
    from hotpatch_core.manifest import manifest_id  # noqa: PLC0415
    from hotpatch_core.release import decode_release_envelope  # noqa: PLC0415

    return manifest_id(decode_release_envelope(envelope).payload)


@attrs.define
class Script:
    """Feed events to the reference machine, recording each answer."""

    name: str
    about: str
    config: DeviceConfig = CONFIG
    trust_root: bytes = PKI.root_bytes
    state: DeviceState = attrs.field(factory=DeviceState)
    initial: DeviceState | None = None
    steps: list[dict[str, Any]] = attrs.field(factory=list)

    def __call__(self, event: Event) -> list[str]:
        """Step once; return the kinds of the actions, for the story's assertions."""
        if self.initial is None:
            self.initial = self.state
        self.state, actions = step(self.state, event, self.config)
        self.steps.append(
            {
                "event": encode_event(event),
                "actions": [encode_action(a) for a in actions],
                "state": encode_state(self.state),
            }
        )
        return [type(a).__name__ for a in actions]

    def last(self) -> list[dict[str, Any]]:
        """The actions of the last step, as recorded."""
        actions: list[dict[str, Any]] = self.steps[-1]["actions"]
        return actions

    def document(self) -> dict[str, Any]:
        """The scenario file's JSON."""
        return {
            "format": FORMAT,
            "name": self.name,
            "about": self.about,
            "config": encode_config(self.config, self.trust_root),
            "initial": encode_state(self.initial or self.state),
            "steps": self.steps,
        }


def _check(s: Script, envelope: bytes | None, **extra: Any) -> list[str]:
    """A whole update check that is answered with ``envelope``; the answer's action kinds."""
    assert s(CheckStarted()) == ["FetchRoot"]
    assert s(RootAnswered(None)) == ["RequestCheck"]
    return s(CheckAnswered(envelope, FIXED_TIME, **extra))


def _install(s: Script, n: int) -> None:
    archive = RELEASES[n].manifest.archive
    assert _check(s, ENVELOPES[n])[-1] == "Download"
    assert s(DownloadFinished(archive.sha256, archive.length)) == ["Install"]
    s(InstallFinished())


def _confirm(s: Script, n: int) -> None:
    _install(s, n)
    assert s(Launched(V1)) == ["RunBundle"]
    assert s(Ready()) == ["Report"]


def _embedded_first_launch() -> Script:
    s = Script("embedded-first-launch", "A new install runs the bundle embedded in the binary.")
    assert s(Launched(V1)) == ["RunBundle"]
    assert s.last()[0]["bundle"] is None
    return s


def _no_update() -> Script:
    s = Script("no-update", "The server has nothing newer: nothing is fetched or changed.")
    s(Launched(V1))
    assert _check(s, None) == []
    return s


def _update_confirmed() -> Script:
    s = Script(
        "update-confirmed",
        "A signed release is verified, downloaded, installed, run on trial at the next launch "
        "and confirmed by notifyAppReady, which reports it applied.",
    )
    s(Launched(V1))
    _confirm(s, 1)
    assert s.last()[0]["status"] == "applied"
    return s


def _check_failed() -> Script:
    s = Script("check-failed", "A check that fails (network, server) changes nothing.")
    s(Launched(V1))
    s(CheckStarted())
    assert s(CheckFailed("connection refused")) == []
    return s


def _crash_loop_rolls_back() -> Script:
    s = Script(
        "crash-loop-rolls-back",
        "A trial bundle that never reaches notifyAppReady within the crash threshold is rolled "
        "back at the next launch: the confirmed bundle runs, the failed one is deleted, reported "
        "rolled_back and never offered again.",
    )
    s(Launched(V1))
    _confirm(s, 1)
    _install(s, 2)
    for _ in range(CONFIG.crash_threshold):
        assert s(Launched(V1)) == ["RunBundle"]
    kinds = s(Launched(V1))
    assert kinds[-1] == "RunBundle", kinds
    assert {"Report", "DeleteBundle"} <= set(kinds), kinds
    assert _check(s, ENVELOPES[2]) == []  # failed: not downloaded again
    return s


def _older_release_refused() -> Script:
    s = Script(
        "older-release-refused",
        "A validly signed but older release (a replay or a rollback attack) is refused: "
        "the high-water mark only rises.",
    )
    s(Launched(V1))
    _confirm(s, 3)
    assert _check(s, ENVELOPES[2]) == ["Reject"]
    assert s.last()[0]["error"] == "RollbackError"
    return s


def _foreign_signature_refused() -> Script:
    s = Script(
        "foreign-signature-refused",
        "A release signed by a key the trust root does not list is refused before any download.",
    )
    s(Launched(V1))
    assert _check(s, FORGED) == ["Reject"]
    assert s.last()[0]["error"] == "UnknownKeyError"
    return s


def _corrupt_download() -> Script:
    s = Script(
        "corrupt-download",
        "An archive whose sha256 differs from the signed one is discarded and reported; the "
        "release is not marked failed (a man in the middle cannot blacklist it).",
    )
    s(Launched(V1))
    _check(s, ENVELOPES[1])
    kinds = s(DownloadFinished("0" * 64, RELEASES[1].manifest.archive.length))
    assert kinds == ["DiscardDownload", "Report", "Reject"], kinds
    assert s.last()[2]["error"] == "HashMismatchError"
    assert _check(s, ENVELOPES[1])[-1] == "Download"
    return s


def _power_cut_mid_download() -> Script:
    s = Script(
        "power-cut-mid-download",
        "The process dies during a download: the reloaded state is interrupted, keeps the "
        "offer, and the next check of the same release resumes its download.",
    )
    s(Launched(V1))
    _check(s, ENVELOPES[1])
    s(Interrupted())
    assert _check(s, ENVELOPES[1])[-1] == "Download"
    archive = RELEASES[1].manifest.archive
    assert s(DownloadFinished(archive.sha256, archive.length)) == ["Install"]
    return s


def _download_failed_retries() -> Script:
    s = Script(
        "download-failed",
        "A download that stops (network, deadline) is tried again by the next check.",
    )
    s(Launched(V1))
    _check(s, ENVELOPES[1])
    s(DownloadFailed("read timeout"))
    assert _check(s, ENVELOPES[1])[-1] == "Download"
    return s


def _install_failed_permanently() -> Script:
    s = Script(
        "install-failed-permanently",
        "Signed content that cannot be installed (a file fails its hash) marks the release "
        "failed and reports it.",
    )
    s(Launched(V1))
    _check(s, ENVELOPES[1])
    archive = RELEASES[1].manifest.archive
    s(DownloadFinished(archive.sha256, archive.length))
    assert "Report" in s(InstallFailed("index.android.bundle: sha256 mismatch", permanent=True))
    assert _check(s, ENVELOPES[1]) == []
    return s


def _mandatory_restarts() -> Script:
    s = Script(
        "mandatory-restarts",
        "A release signed as mandatory asks for a restart as soon as it is staged; the app "
        "can also ask to apply a staged release now.",
    )
    s(Launched(V1))
    envelope = sign_release(MANDATORY.manifest, [PKI.publisher])
    assert _check(s, envelope)[-1] == "Download"
    archive = MANDATORY.manifest.archive
    s(DownloadFinished(archive.sha256, archive.length))
    assert "RestartApp" in s(InstallFinished())
    assert s(ApplyRequested()) == ["RestartApp"]
    return s


def _patch_applied() -> Script:
    s = Script(
        "patch-applied",
        "A release built from a patch against the running bundle is staged like a download; "
        "its applied report names the bundle it was patched from.",
    )
    s(Launched(V1))
    _confirm(s, 1)
    hint = PatchHint(_id(ENVELOPES[1]), 120)
    assert _check(s, ENVELOPES[2], patch=hint)[-1] == "FetchPatch"
    s(PatchInstalled(hint.base_manifest_id))
    s(Launched(V1))
    assert s(Ready()) == ["Report", "DeleteBundle"]  # the bundle it replaced goes
    assert s.last()[0]["patchedFrom"] == hint.base_manifest_id
    return s


def _patch_failed_falls_back() -> Script:
    s = Script(
        "patch-failed-falls-back",
        "A patch that cannot be fetched or applied is reported, and the full archive is "
        "downloaded instead.",
    )
    s(Launched(V1))
    _confirm(s, 1)
    hint = PatchHint(_id(ENVELOPES[1]), 120)
    _check(s, ENVELOPES[2], patch=hint)
    kinds = s(PatchFailed("patch does not rebuild the release", ReportPhase.APPLY))
    assert kinds[-1] == "Download", kinds
    return s


def _trust_root_rotation() -> Script:
    s = Script(
        "trust-root-rotation",
        "The server has trust root v2 (the old publisher key revoked, a new one listed): the "
        "device walks v1 -> v2, verifying v2 with v1's root keys, then accepts a release only "
        "the new publisher signed.",
    )
    s(Launched(V1))
    assert s(CheckStarted()) == ["FetchRoot"]
    assert s(RootAnswered(ROTATED.root_bytes)) == ["FetchRoot"]
    assert s(RootAnswered(None)) == ["RequestCheck"]
    assert s(CheckAnswered(NEW_PUBLISHER, FIXED_TIME))[-1] == "Download"
    assert s.state.trust_root == ROTATED.root_bytes
    return s


def _revoked_publisher_refused() -> Script:
    s = Script(
        "revoked-publisher-refused",
        "After the rotation to v2, a release signed by the revoked v1 publisher is refused.",
    )
    s(Launched(V1))
    s(CheckStarted())
    s(RootAnswered(ROTATED.root_bytes))
    s(RootAnswered(None))
    assert s(CheckAnswered(ENVELOPES[2], FIXED_TIME)) == ["Reject"]
    assert s.last()[0]["error"] == "UnknownKeyError"
    return s


def _new_binary_outgrows_bundle() -> Script:
    s = Script(
        "new-binary-outgrows-bundle",
        "A bundle built for binaries 1.0.x stops running once the app store installs binary "
        "2.0.0: the embedded bundle of the new binary runs.",
    )
    s(Launched(V1))
    envelope = sign_release(ONLY_V1.manifest, [PKI.publisher])
    _check(s, envelope)
    archive = ONLY_V1.manifest.archive
    s(DownloadFinished(archive.sha256, archive.length))
    s(InstallFinished())
    s(Launched(V1))
    s(Ready())
    s(Launched(V2))
    assert s.last()[-1] == {"type": "RunBundle", "bundle": None}, s.last()
    return s


STAMPED = make_pki(seed=23, timestamp=True)
STAMPED_CONFIG = attrs.evolve(CONFIG, trust_root=STAMPED.root)


def _stamped(head: ChannelHead) -> bytes:
    assert STAMPED.timestamp is not None
    return sign_head(head, [STAMPED.timestamp])


def _current_head_taken() -> Script:
    s = Script(
        "channel-head-current",
        "With a timestamp key in the trust root, an offer is taken only with a current signed "
        "channel head that lists it; the head's time is remembered.",
        config=STAMPED_CONFIG,
        trust_root=STAMPED.root_bytes,
    )
    s(Launched(V1))
    envelope = sign_release(RELEASES[2].manifest, [STAMPED.publisher])
    head = _stamped(head_listing([RELEASES[1].manifest, RELEASES[2].manifest]))
    assert _check(s, envelope, head=head, device_id="device-1")[-1] == "Download"
    return s


def _replayed_answer_refused() -> Script:
    s = Script(
        "channel-head-expired",
        "A mirror replaying yesterday's answer with its head (a freeze attack) is caught once "
        "the head has expired; an answer without a head is refused too.",
        config=STAMPED_CONFIG,
        trust_root=STAMPED.root_bytes,
    )
    s(Launched(V1))
    envelope = sign_release(RELEASES[2].manifest, [STAMPED.publisher])
    head = _stamped(head_listing([RELEASES[2].manifest], lifetime=timedelta(hours=24)))
    s(CheckStarted())
    s(RootAnswered(None))
    later = FIXED_TIME + timedelta(hours=24)
    assert s(CheckAnswered(envelope, later, head, "device-1")) == ["Reject"]
    assert s.last()[0]["error"] == "ExpiredError"
    assert _check(s, envelope, device_id="device-1") == ["Reject"]
    assert s.last()[0]["error"] == "UnsignedError"
    return s


NEW_STAMP = SigningKey(bytes([25, 7]) * 16)
STAMP_ROTATED = rotate_pki(STAMPED, seed=24, bump_epoch=False)
STAMP_ROTATED_ROOT = attrs.evolve(
    STAMP_ROTATED.root, timestamp=TimestampRole((NEW_STAMP.public_key,))
)


def _timestamp_key_rotated() -> Script:
    s = Script(
        "timestamp-key-rotated",
        "Trust root v2 names a new timestamp key: the device forgets the head times it saw under "
        "the old key, so the new key's first head is taken although it was issued earlier than "
        "the last head the old key signed (another server, another clock).",
        config=STAMPED_CONFIG,
        trust_root=STAMPED.root_bytes,
    )
    s(Launched(V1))
    old = sign_release(RELEASES[2].manifest, [STAMPED.publisher])
    later = FIXED_TIME + timedelta(hours=1)
    head = _stamped(head_listing([RELEASES[2].manifest], issued_at=later))
    assert _check(s, old, head=head, device_id="device-1")[-1] == "Download"
    s(Interrupted())
    v2 = sign_trust_root(STAMP_ROTATED_ROOT, STAMPED.root_keys)
    assert s(CheckStarted()) == ["FetchRoot"]
    assert s(RootAnswered(v2)) == ["FetchRoot"]
    assert s.state.head_seen == {}, s.state.head_seen
    assert s(RootAnswered(None)) == ["RequestCheck"]
    new = sign_release(RELEASES[3].manifest, [STAMP_ROTATED.publisher])
    earlier = sign_head(head_listing([RELEASES[2].manifest, RELEASES[3].manifest]), [NEW_STAMP])
    kinds = s(CheckAnswered(new, later + timedelta(hours=1), earlier, "device-1"))
    assert kinds == ["DiscardDownload", "Download"], s.last()
    return s


BUILDERS: tuple[Callable[[], Script], ...] = (
    _embedded_first_launch,
    _no_update,
    _check_failed,
    _update_confirmed,
    _crash_loop_rolls_back,
    _older_release_refused,
    _foreign_signature_refused,
    _corrupt_download,
    _power_cut_mid_download,
    _download_failed_retries,
    _install_failed_permanently,
    _mandatory_restarts,
    _patch_applied,
    _patch_failed_falls_back,
    _trust_root_rotation,
    _revoked_publisher_refused,
    _new_binary_outgrows_bundle,
    _current_head_taken,
    _replayed_answer_refused,
    _timestamp_key_rotated,
)


def generate() -> dict[str, bytes]:
    """Return every scenario file's name and exact content."""
    files = {}
    for build in BUILDERS:
        script = build()
        body = json.dumps(script.document(), indent=2, ensure_ascii=False) + "\n"
        files[f"{script.name}.json"] = body.encode()
    return files


def main() -> int:
    """Write the scenarios, removing files of scenarios that no longer exist."""
    SCENARIOS.mkdir(parents=True, exist_ok=True)
    files = generate()
    for stale in SCENARIOS.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, data in files.items():
        (SCENARIOS / name).write_bytes(data)
    print(f"wrote {len(files)} scenarios to {SCENARIOS}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
