"""The device protocol's messages, defined once (docs/spec/device-protocol.md §2, §4b, §9).

A field's ``metadata["schema"]`` holds JSON Schema constraints its
validator enforces, for the server's OpenAPI schema.

The server builds a :class:`CheckAnswer`, the device reads one with
:func:`read_check_answer`, and the test simulator builds the same class;
the device writes an :class:`InstallationReport` and the server reads it.
All go through the wire converter (:mod:`hotpatch_core.wire`), so the JSON
on the wire, the OpenAPI schema the server publishes and what a device
accepts cannot drift apart.

Nothing in an answer is trusted: ``manifest`` and ``head`` are signed
documents the device verifies itself (as base64 text here, decoded by the
reader of the signature), ``bundleUrl`` and ``patch`` only say where bytes
are, and the conveniences (``version``, ``mandatory``, ``hash``, ``size``,
``manifestId``, ``sequence``, ``epoch``, ``signature``) are for dashboards
and MUST NOT decide anything on a device (A7).
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from hotpatch_core.errors import SchemaError
from hotpatch_core.machine import ReportPhase, ReportStatus
from hotpatch_core.manifest import Platform
from hotpatch_core.wire import camel, matches, structure, unstructure

__all__ = [
    "CHANNEL",
    "MANIFEST_ID",
    "NAME",
    "NAME_CHARS",
    "NAME_RULE",
    "NATIVE_TEXT",
    "SHA256_RULE",
    "SHA256_SCHEMA",
    "CheckAnswer",
    "CheckRequest",
    "DeviceRegistered",
    "InstallationReport",
    "PatchOffer",
    "ReportReceipt",
    "check_query",
    "read_check_answer",
]

#: The longest report id, app id or device id a report may carry (the server's columns).
NAME_CHARS: Final = 128
_NAME_CLASS: Final = "[A-Za-z0-9._:-]"
#: What a report id, an app id and a device id are made of.
NAME: Final = re.compile(f"{_NAME_CLASS}{{1,{NAME_CHARS}}}")
#: ``NAME`` in words, for error messages.
NAME_RULE: Final = f"1 to {NAME_CHARS} characters of A-Z a-z 0-9 . _ : -"
_HEX_CLASS: Final = "[0-9a-f]"
#: A manifest id (and any other sha256): 64 lowercase hex digits.
MANIFEST_ID: Final = re.compile(f"{_HEX_CLASS}{{64}}")
# JSON Schema patterns are searched, not matched, and in Python ``$`` also
# matches before a final newline: ``(?![\s\S])`` ends the text in every dialect.
_END: Final = r"(?![\s\S])"
_ID_SCHEMA: Final = {"pattern": f"^{_HEX_CLASS}{{64}}{_END}", "min_length": 64, "max_length": 64}
_NAME_SCHEMA: Final = {
    "pattern": f"^{_NAME_CLASS}+{_END}",
    "min_length": 1,
    "max_length": NAME_CHARS,
}
_manifest_id: Final = matches(MANIFEST_ID, "64 lowercase hex digits")
_name: Final = matches(NAME, NAME_RULE)
#: An attrs field's validator and metadata for a manifest id or another sha256:
#: ``attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)``.
SHA256_RULE: Final = _manifest_id
SHA256_SCHEMA: Final = {"schema": _ID_SCHEMA}
#: A channel name.
CHANNEL: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: A native (binary) version as a device sends it; parsed by ``Version.parse_native``.
NATIVE_TEXT: Final = re.compile(r"[0-9A-Za-z.+-]{1,64}")
_CHANNEL_SCHEMA: Final = {
    "pattern": f"^[a-z0-9][a-z0-9._-]*{_END}",
    "min_length": 1,
    "max_length": 64,
}
_NATIVE_SCHEMA: Final = {"pattern": f"^[0-9A-Za-z.+-]+{_END}", "min_length": 1, "max_length": 64}


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise SchemaError("must be greater than zero", camel(attribute.name))


@attrs.frozen
class CheckRequest:
    """An update check as a device sends it (§4): ``GET /update/check``'s query, or the POST body.

    Without ``currentManifestId`` the device runs its embedded bundle. The
    server also reads ``appVersion`` and ``binaryVersion`` as names of
    ``nativeVersion``, and ``currentEpoch`` + ``currentSequence`` as the
    position of the running release, for clients that have no manifest id.
    """

    app_id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
    platform: Platform
    device_id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
    native_version: str = attrs.field(
        validator=matches(NATIVE_TEXT, "1 to 64 characters of 0-9 A-Z a-z . + -"),
        metadata={"schema": _NATIVE_SCHEMA},
    )
    channel: str = attrs.field(
        default="production",
        validator=matches(CHANNEL, "a lowercase letter or digit, then up to 63 of a-z 0-9 . _ -"),
        metadata={"schema": _CHANNEL_SCHEMA},
    )
    current_manifest_id: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_manifest_id),
        metadata={"schema": _ID_SCHEMA},
    )
    #: The running release's position, for a client without its manifest id.
    current_epoch: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    current_sequence: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )


def check_query(request: CheckRequest) -> dict[str, str]:
    """Return ``request`` as the query string of ``GET /update/check`` (its wire names, as text).

    An absent ``currentEpoch`` is epoch 1 to the server, as in the JSON body.
    """
    return {name: str(value) for name, value in unstructure(request).items()}


@attrs.frozen
class PatchOffer:
    """An unsigned offer of a patch from a bundle the device has (§4b).

    The device builds the new release's files from it and checks each
    against the signed manifest, so a lying offer costs a download, never
    trust.
    """

    #: Where the patch is, absolute or relative to the server URL.
    url: str
    #: The patch's length in bytes (a device takes it only if smaller than the archive).
    size: int = attrs.field(validator=_positive, metadata={"schema": {"minimum": 1}})
    #: The bundle the patch applies to: an installed release's id, or an embedded bundle's.
    base_manifest_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)


@attrs.frozen
class CheckAnswer:
    """The answer to ``GET|POST /update/check``.

    With no update, only ``update_available`` (false) and ``head`` are set.
    With one, ``manifest`` and ``bundle_url`` are set too; every other field
    is optional.
    """

    #: Whether ``manifest`` names a release for this device.
    update_available: bool
    #: The release's signed envelope, standard base64.
    manifest: str | None = None
    #: Where the release's archive is, absolute or relative to the server URL.
    bundle_url: str | None = None
    #: The signed channel head, standard base64; sent when the server has a timestamp key.
    head: str | None = None
    #: A patch the device may take instead of the archive.
    patch: PatchOffer | None = None
    #: Conveniences copied from the signed manifest (dashboards only).
    version: str | None = None
    mandatory: bool | None = None
    hash: str | None = None
    size: int | None = None
    manifest_id: str | None = None
    sequence: int | None = None
    epoch: int | None = None
    #: The manifest's first signature, base64 (CodePush-era clients display it).
    signature: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.update_available and (self.manifest is None or self.bundle_url is None):
            raise SchemaError("an answer with an update needs manifest and bundleUrl")


def read_check_answer(value: object) -> CheckAnswer:
    """Read an update check answer as a device must, or raise :class:`SchemaError`.

    Every field is typed strictly, with one exception: a malformed ``patch``
    is dropped (it is unsigned and optional; the archive is always there).
    """
    if not isinstance(value, dict):
        raise SchemaError(f"expected a JSON object, got {type(value).__name__}")
    patch = value.get("patch")
    answer = structure({k: v for k, v in value.items() if k != "patch"}, CheckAnswer)
    if patch is None:
        return answer
    try:
        offer = structure(patch, PatchOffer)
    except SchemaError:
        return answer
    return attrs.evolve(answer, patch=offer)


@attrs.frozen
class InstallationReport:
    """What happened to a release on a device (``POST /installations``, §9).

    The server keeps one per (app, device, ``id``), so a device resends a
    report until the server has answered it; ``id`` is derived from what
    the report says (:func:`hotpatch_client.reports.report_id`).
    """

    id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
    app_id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
    device_id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
    #: The release reported on.
    manifest_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    status: ReportStatus
    #: Where a failure happened (download, verify, apply, first launch).
    phase: ReportPhase | None = None
    #: Free text for people; the server keeps its first 500 characters.
    reason: str = ""
    #: On an applied report of a release built from a patch: the bundle it was applied to.
    patched_from: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_manifest_id),
        metadata={"schema": _ID_SCHEMA},
    )

    def __attrs_post_init__(self) -> None:
        if self.patched_from is not None and self.status is not ReportStatus.APPLIED:
            raise SchemaError("patchedFrom goes with an applied report", "patchedFrom")


@attrs.frozen
class ReportReceipt:
    """The answer to an installation report: stored now (201), or known already (200)."""

    id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
    duplicate: bool


@attrs.frozen
class DeviceRegistered:
    """The answer to ``POST /devices``: the device as the server will track it."""

    app_id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
    device_id: str = attrs.field(validator=_name, metadata={"schema": _NAME_SCHEMA})
