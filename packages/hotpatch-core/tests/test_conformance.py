"""The device conformance scenarios: committed, reproduced by the code, replayed by the machine.

``conformance_gen.py`` writes docs/spec/conformance/ from the reference
machine; here the committed files must be exactly what it writes today, and
each must replay through :func:`hotpatch_core.machine.step` as any other
implementation (the Kotlin and Swift cores) replays it: from the JSON alone.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import typing
from pathlib import Path
from typing import Any

import pytest

from hotpatch_core.conformance import FORMAT, decode_event, encode_event, read_scenario, replay
from hotpatch_core.errors import SchemaError
from hotpatch_core.machine import Action, Event

_spec = importlib.util.spec_from_file_location(
    "conformance_gen", Path(__file__).with_name("conformance_gen.py")
)
assert _spec is not None
assert _spec.loader is not None
GEN = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GEN)
SCENARIOS = GEN.SCENARIOS
NAMES = sorted(path.name for path in SCENARIOS.glob("*.json"))


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCENARIOS / name).read_text(encoding="utf-8"))
    return document


def test_the_committed_scenarios_are_the_generated_ones() -> None:
    """No scenario is missing, stale or edited by hand: regenerate with `nox -s vectors`."""
    generated = GEN.generate()
    assert sorted(generated) == NAMES, "run conformance_gen.py (nox -s vectors)"
    for name in NAMES:
        assert (SCENARIOS / name).read_bytes() == generated[name], f"{name} drifted"


@pytest.mark.parametrize("name", NAMES)
def test_each_scenario_replays_from_its_file(name: str) -> None:
    """Read back from JSON alone, the machine answers every step as recorded."""
    scenario = read_scenario(_load(name))
    assert scenario.name == name.removesuffix(".json")
    assert scenario.steps, name
    assert [str(m) for m in replay(scenario)] == []


def test_a_replayer_reports_a_wrong_action_and_a_wrong_state() -> None:
    """The replay can fail: a changed recorded action and state are both reported, once each."""
    document = _load("update-confirmed.json")
    last = len(document["steps"]) - 1
    assert document["steps"][last]["actions"][0]["status"] == "applied"
    changed = copy.deepcopy(document)
    changed["steps"][last]["actions"][0]["status"] = "rolled_back"
    changed["steps"][last]["state"]["trialLaunches"] = 5
    found = list(replay(read_scenario(changed)))
    assert [(m.index, m.what) for m in found] == [(last, "actions"), (last, "states")]
    # A report's reason is text for people: changing it alone is not a difference.
    reworded = copy.deepcopy(document)
    reworded["steps"][last]["actions"][0]["reason"] = "it worked"
    assert list(replay(read_scenario(reworded))) == []


def test_the_scenarios_use_every_event_and_action() -> None:
    """A new event or action of the machine needs a scenario before other cores can follow it."""
    events: set[str] = set()
    actions: set[str] = set()
    for name in NAMES:
        for recorded in _load(name)["steps"]:
            events.add(recorded["event"]["type"])
            actions.update(action["type"] for action in recorded["actions"])
    assert events == {kind.__name__ for kind in typing.get_args(Event)}
    assert actions == {kind.__name__ for kind in typing.get_args(Action)}


def test_events_round_trip_and_bad_ones_are_refused() -> None:
    """Every recorded event decodes and re-encodes to the same JSON; unknown kinds are refused."""
    for name in NAMES:
        for recorded in _load(name)["steps"]:
            assert encode_event(decode_event(recorded["event"])) == recorded["event"]
    with pytest.raises(SchemaError):
        decode_event({"type": "Exploded"})
    with pytest.raises(SchemaError):
        decode_event({"type": "DownloadFinished", "sha256": 7, "length": "x"})
    with pytest.raises(SchemaError):
        read_scenario(_load(NAMES[0]) | {"format": FORMAT + 1})


def test_the_spec_page_lists_every_scenario() -> None:
    """docs/spec/conformance.md names each scenario, so the page stays true."""
    page = (SCENARIOS.parent / "conformance.md").read_text(encoding="utf-8")
    missing = [name for name in NAMES if f"`{name.removesuffix('.json')}`" not in page]
    assert missing == []
