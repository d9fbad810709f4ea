"""Device conformance scenarios: the state machine's behaviour as data (docs/spec/conformance.md).

A scenario is a device configuration (identity, embedded trust root, crash
threshold), a starting :class:`~hotpatch_core.machine.DeviceState` and a list
of steps. Each step is one event and what :func:`~hotpatch_core.machine.step`
must answer to it: the actions, in order, and the state after. The files in
``docs/spec/conformance/`` are generated from this implementation
(``nox -s vectors``); every implementation of the device (this one, the
Kotlin and Swift cores of the React Native SDK) replays each of them and
must produce exactly the recorded actions and states.

Everything is JSON in the wire converter's spelling (camelCase, bytes as
base64, times as RFC 3339 UTC), the state exactly as the agent persists it.
Events and actions carry their kind in ``type`` (the class name). An action
that hands over a verified release names it by ``manifestId`` (the release
itself is the event's signed envelope, verified again by the device); a
``Reject`` names its error class (``RollbackError``, ``HashMismatchError``,
...), the one the defence raises. Optional fields of events and actions are
written as ``null``. A report's ``reason`` is text for people: a replayer
does not compare it (:func:`comparable`).
"""

from __future__ import annotations

import base64
import enum
import typing
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Final

import attrs
import cattrs

from hotpatch_core.errors import HotPatchError, SchemaError
from hotpatch_core.machine import Action, DeviceConfig, DeviceState, Event, step
from hotpatch_core.manifest import Platform
from hotpatch_core.release import DeviceIdentity, VerifiedRelease
from hotpatch_core.trust import load_trust_root
from hotpatch_core.versions import Version
from hotpatch_core.wire import camel, make_converter, structure, unstructure

__all__ = [
    "FORMAT",
    "Mismatch",
    "Scenario",
    "comparable",
    "decode_config",
    "decode_event",
    "decode_state",
    "encode_action",
    "encode_config",
    "encode_event",
    "encode_state",
    "read_scenario",
    "replay",
]

#: The scenario format's version; a change a replayer must know of increments it.
FORMAT: Final = 1
_EVENTS: Final = {kind.__name__: kind for kind in typing.get_args(Event)}
_ACTIONS: Final = {kind.__name__: kind for kind in typing.get_args(Action)}


@cache
def _converter() -> cattrs.Converter:
    converter = make_converter()
    converter.register_unstructure_hook(Version, str)
    converter.register_structure_hook(Version, lambda text, _kind: Version.parse_native(text))
    return converter


def encode_state(state: DeviceState) -> dict[str, Any]:
    """Return ``state`` as the agent persists it (``state.json``'s ``state``): the wire form."""
    document: dict[str, Any] = unstructure(state)
    return document


def decode_state(document: Mapping[str, Any]) -> DeviceState:
    """Read a persisted state, as the agent reads ``state.json``."""
    return structure(dict(document), DeviceState)


def encode_event(event: Event) -> dict[str, Any]:
    """Return ``event`` as a scenario writes it: ``type`` and its fields."""
    return {"type": type(event).__name__, **_fields(event)}


def decode_event(document: Mapping[str, Any]) -> Event:
    """Read an event written by :func:`encode_event`."""
    kind = _EVENTS.get(str(document.get("type")))
    if kind is None:
        raise SchemaError(f"unknown event type {document.get('type')!r}", "type")
    event: Event = _structure({k: v for k, v in document.items() if k != "type"}, kind)
    return event


def encode_action(action: Action) -> dict[str, Any]:
    """Return ``action`` as a scenario records it (see the module docstring)."""
    return {"type": type(action).__name__, **_fields(action)}


def _fields(value: Any) -> dict[str, Any]:
    """Every field of an event or action, in declaration order, ``None`` as null."""
    converter = _converter()
    fields: dict[str, Any] = {}
    for field in attrs.fields(type(value)):
        item = getattr(value, field.name)
        if isinstance(item, VerifiedRelease):
            fields["manifestId"] = item.manifest_id
        elif isinstance(item, HotPatchError):
            fields[camel(field.name)] = type(item).__name__
        elif isinstance(item, enum.Enum):
            fields[camel(field.name)] = item.value
        else:
            fields[camel(field.name)] = converter.unstructure(item)
    return fields


def encode_config(config: DeviceConfig, trust_root: bytes) -> dict[str, Any]:
    """Return a device configuration; ``trust_root`` is the envelope the binary embeds."""
    identity = config.identity
    return {
        "appId": identity.app_id,
        "platform": identity.platform.value,
        "channel": identity.channel,
        "nativeVersion": str(identity.native_version),
        "trustRoot": base64.b64encode(trust_root).decode("ascii"),
        "crashThreshold": config.crash_threshold,
        "bundleFile": config.bundle_file,
        "embeddedBase": config.embedded_base,
    }


def decode_config(document: Mapping[str, Any]) -> DeviceConfig:
    """Read a device configuration, verifying its embedded trust root."""
    try:
        return DeviceConfig(
            identity=DeviceIdentity(
                app_id=str(document["appId"]),
                platform=Platform(document["platform"]),
                channel=str(document["channel"]),
                native_version=Version.parse_native(str(document["nativeVersion"])),
            ),
            trust_root=load_trust_root(base64.b64decode(document["trustRoot"], validate=True)),
            crash_threshold=int(document["crashThreshold"]),
            bundle_file=document.get("bundleFile"),
            embedded_base=document.get("embeddedBase"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"not a device configuration: {exc}", "config") from None


def _structure(document: Mapping[str, Any], kind: type[Any]) -> Any:
    try:
        return _converter().structure(dict(document), kind)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"not a {kind.__name__}: {exc}", kind.__name__) from None


@attrs.frozen
class Scenario:
    """One conformance scenario, as read from its file."""

    name: str
    about: str
    config: DeviceConfig
    initial: DeviceState
    #: Each step: the event, and the recorded actions and state after it (JSON forms).
    steps: tuple[tuple[Event, list[dict[str, Any]], dict[str, Any]], ...]


def read_scenario(document: Mapping[str, Any]) -> Scenario:
    """Read a scenario file's JSON; :class:`SchemaError` if it is not one of this format."""
    if document.get("format") != FORMAT:
        raise SchemaError(f"scenario format {document.get('format')!r} is not {FORMAT}", "format")
    return Scenario(
        name=str(document["name"]),
        about=str(document["about"]),
        config=decode_config(document["config"]),
        initial=decode_state(document["initial"]),
        steps=tuple(
            (decode_event(s["event"]), list(s["actions"]), dict(s["state"]))
            for s in document["steps"]
        ),
    )


@attrs.frozen
class Mismatch:
    """Where an implementation's answer differs from the recorded one."""

    scenario: str
    #: The step's index (0 is the first event).
    index: int
    what: str
    expected: object
    actual: object

    def __str__(self) -> str:
        return (
            f"{self.scenario} step {self.index}: {self.what} differ\n"
            f"  expected {self.expected}\n  actual   {self.actual}"
        )


def comparable(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return recorded or produced actions as a replayer compares them (reasons left out)."""
    return [{k: v for k, v in a.items() if k != "reason"} for a in actions]


def replay(scenario: Scenario) -> Iterator[Mismatch]:
    """Feed every event to :func:`~hotpatch_core.machine.step`; yield each difference.

    After a difference the replay goes on from the recorded state, so one
    bug is reported once rather than at every later step.
    """
    state = scenario.initial
    for index, (event, actions, recorded) in enumerate(scenario.steps):
        state, produced = step(state, event, scenario.config)
        encoded = comparable([encode_action(action) for action in produced])
        if encoded != comparable(actions):
            yield Mismatch(scenario.name, index, "actions", comparable(actions), encoded)
        if encode_state(state) != recorded:
            yield Mismatch(scenario.name, index, "states", recorded, encode_state(state))
            state = decode_state(recorded)
