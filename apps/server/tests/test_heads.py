"""Channel heads as the server signs them: never a contradiction of its own answer (A5)."""

from __future__ import annotations

import base64
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from hotpatch_core.head import due_offers, verify_head
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import Platform
from hotpatch_core.release import DeviceIdentity
from hotpatch_core.testing import FIXED_TIME
from hotpatch_core.trust import TimestampRole
from hotpatch_core.versions import BinaryRange, Version
from hotpatch_server.cache import Candidate
from hotpatch_server.devices.check import choose, head_start
from hotpatch_server.devices.query import CheckQuery
from hotpatch_server.heads import REFRESH, ChannelHeads

KEY = SigningKey(b"\x05" * 32)
ROLE = TimestampRole((KEY.public_key,))
TARGET = ("com.example.app", "android", "production")
RANGES = ["*", ">=1.0.0 <2.0.0", ">=2.0.0", "1.5.0"]
NATIVES = ["1.0.0", "1.5.0", "2.1.0"]


def _candidate(
    index: int, sequence: int, rollout: int, range_: str = "*", *, paused: bool = False
) -> Candidate:
    return Candidate(
        id=index,
        manifest_id=f"{index:064x}",
        epoch=1,
        sequence=sequence,
        version=f"1.0.{sequence}",
        binary_range=BinaryRange.parse(range_),
        rollout_basis_points=rollout,
        paused=paused,
        mandatory=False,
        archive_sha256="0" * 64,
        archive_length=1,
        manifest_b64="",
        signature_b64="",
        codepush_hash="",
    )


@st.composite
def _situations(
    draw: st.DrawFn,
) -> tuple[tuple[Candidate, ...], str, str, str | None, tuple[int, int] | None, set[str]]:
    """Active releases, and a device: its id, binary, bundle, high-water mark and failures."""
    sequences = sorted(draw(st.sets(st.integers(1, 40), min_size=1, max_size=8)), reverse=True)
    candidates = tuple(
        _candidate(
            i + 1,
            sequence,
            draw(st.sampled_from([0, 1, 2_500, 5_000, 9_999, 10_000])),
            draw(st.sampled_from(RANGES)),
            paused=draw(st.booleans()) and draw(st.booleans()),
        )
        for i, sequence in enumerate(sequences)
    )
    device = draw(st.text("abcdef0123456789-", min_size=1, max_size=12))
    native = draw(st.sampled_from(NATIVES))
    running = draw(st.none() | st.sampled_from(candidates))
    floor = running.position if running is not None else None
    above = [c.position for c in candidates if floor is None or c.position >= floor]
    mark = (
        draw(st.sampled_from(above))
        if running is not None
        else draw(st.none() | st.sampled_from(above))
    )
    others = [c.manifest_id for c in candidates if running is None or c is not running]
    failed = draw(st.sets(st.sampled_from(others))) if others else set()
    for candidate in candidates:  # the server knows of some of the device's rollbacks
        if candidate.manifest_id in failed and draw(st.booleans()):
            candidate.rolled_back_devices.add(device)
    current = running.manifest_id if running is not None else None
    return candidates, device, native, current, mark, failed


@settings(max_examples=300)
@given(_situations())
def test_an_honest_answer_never_contradicts_its_head(
    situation: tuple[tuple[Candidate, ...], str, str, str | None, tuple[int, int] | None, set[str]],
) -> None:
    """Whatever the releases and the device, the device accepts the server's answer and head.

    The device runs the checks of its state machine: the head verifies for
    its high-water mark, lists what is offered, and owes it nothing else. A
    false alarm here would stop honest updates, so this is checked over
    every combination of rollouts, pauses, binary ranges, cohorts and
    failures the strategy reaches.
    """
    candidates, device, native_text, current, mark, failed = situation
    native = Version.parse_native(native_text)
    query = CheckQuery(
        app_id=TARGET[0],
        platform=TARGET[1],
        channel=TARGET[2],
        device_id=device,
        native_version=native,
        native_text=native_text,
        current_manifest_id=current,
        current_position=None,
    )
    chosen = choose(query, candidates)
    signed = ChannelHeads(KEY, 86_400).head(
        TARGET, candidates, head_start(query, candidates), FIXED_TIME
    )
    identity = DeviceIdentity(TARGET[0], Platform.ANDROID, TARGET[2], native)
    head = verify_head(
        base64.b64decode(signed),
        role=ROLE,
        identity=identity,
        at=FIXED_TIME,
        newest_seen=None,
        high_water=mark,
    )
    due = due_offers(
        head,
        device_id=device,
        native=native,
        epoch=1,
        above=mark,
        failed=failed,
    )
    if chosen is None:
        assert due is None
        return
    if mark is not None and chosen.position < mark:
        return  # refused as a rollback before the head is consulted: not the head's doing
    assert head.lists(chosen.manifest_id)
    assert due is None or chosen.manifest_id in due


def test_a_head_is_signed_again_only_when_its_releases_change_or_it_ages() -> None:
    """One signature per channel and minute: the same candidates reuse the head."""
    heads = ChannelHeads(KEY, 3_600)
    candidates = (_candidate(1, 1, 10_000),)
    first = heads.head(TARGET, candidates, None, FIXED_TIME)
    assert heads.head(TARGET, candidates, None, FIXED_TIME + timedelta(seconds=30)) == first
    reloaded = (_candidate(1, 1, 10_000),)  # a cache reload with the same content
    assert heads.head(TARGET, reloaded, None, FIXED_TIME + timedelta(seconds=31)) == first
    paused = (_candidate(1, 1, 10_000, paused=True),)
    changed = heads.head(TARGET, paused, None, FIXED_TIME + timedelta(seconds=32))
    assert changed != first
    refreshed = heads.head(TARGET, paused, None, FIXED_TIME + timedelta(seconds=32 + REFRESH))
    assert refreshed != changed  # aged: signed again
    # A clock that went back keeps the newer head rather than sign one devices refuse.
    assert heads.head(TARGET, paused, None, FIXED_TIME) == refreshed


#: Clock moves between two checks, in seconds: small steps and jumps of hours either way.
_MOVES = st.sampled_from([0, 1, 30, 61, 3_600, 6 * 3_600, -30, -61, -3_600, -6 * 3_600])


@settings(max_examples=200)
@given(st.lists(st.tuples(_MOVES, st.booleans()), min_size=1, max_size=12))
def test_clock_jumps_never_make_a_head_a_device_refuses(moves: list[tuple[int, bool]]) -> None:
    """Whatever the server's clock does, each head verifies after the last one a device saw.

    A device refuses a head older than the newest it has seen (less two
    minutes). Before, a clock set back by hours signed heads at the earlier
    time, and every device that had checked meanwhile stopped taking updates.
    """
    heads = ChannelHeads(KEY, 86_400)
    identity = DeviceIdentity(TARGET[0], Platform.ANDROID, TARGET[2], Version.parse_native("1.0.0"))
    now, paused, seen = FIXED_TIME, False, None
    for move, change in moves:
        now += timedelta(seconds=move)
        paused ^= change  # the channel changes (a pause or resume) at this moment
        signed = heads.head(TARGET, (_candidate(1, 1, 10_000, paused=paused),), None, now)
        head = verify_head(
            base64.b64decode(signed), role=ROLE, identity=identity,
            at=now, newest_seen=seen, high_water=None,
        )  # fmt: skip
        assert head.releases[0].paused is paused  # never a stale head for a changed channel
        assert seen is None or head.issued_at >= seen
        seen = head.issued_at
