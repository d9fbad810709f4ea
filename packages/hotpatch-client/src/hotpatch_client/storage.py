"""The device's storage layout, its one state file, and recovery after a crash.

::

    state.json                  the one pointer (DeviceState + device id), replaced atomically
    releases/<manifest id>/     an installed bundle, never modified once renamed into place
        envelope                the signed release envelope it was installed from
        files/...               the verified files of the archive
    releases/.staging-<id>/     an install in progress (removed at startup)
    downloads/<manifest id>.part  the archive being downloaded (resumable)
    reports/<report id>.json    installation reports waiting to be sent

Every durable write follows one protocol: write a temporary file, fsync it,
rename it over the target, fsync the directory. Nothing is truncated in place.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO, Final

import attrs

from hotpatch_client.fs import FileSystem
from hotpatch_client.limits import DEFAULT_DEVICE_LIMITS
from hotpatch_core.errors import HotPatchError
from hotpatch_core.machine import DeviceState
from hotpatch_core.strictjson import canonical, loads
from hotpatch_core.wire import structure, unstructure

__all__ = [
    "DOWNLOADS",
    "RELEASES",
    "REPORTS",
    "STATE",
    "StoredState",
    "download_path",
    "load_state",
    "recover",
    "release_dir",
    "save_state",
    "write_atomic",
]

log = logging.getLogger("hotpatch_client")

STATE: Final = "state.json"
RELEASES: Final = "releases"
DOWNLOADS: Final = "downloads"
REPORTS: Final = "reports"
STAGING_PREFIX: Final = ".staging-"
TMP_SUFFIX: Final = ".tmp"
STATE_FORMAT: Final = 1
MAX_STATE_BYTES: Final = DEFAULT_DEVICE_LIMITS.state_bytes


def release_dir(manifest_id: str) -> str:
    """Where the bundle of ``manifest_id`` is installed."""
    return f"{RELEASES}/{manifest_id}"


def download_path(manifest_id: str) -> str:
    """Where the archive of ``manifest_id`` is downloaded."""
    return f"{DOWNLOADS}/{manifest_id}.part"


def write_atomic(fs: FileSystem, path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: temp file, fsync, rename, fsync the directory."""
    directory = path.rpartition("/")[0]
    temporary = path + TMP_SUFFIX
    handle = fs.open_new(temporary)
    try:
        handle.write(data)
        fs.fsync(handle)
    finally:
        handle.close()
    fs.replace(temporary, path)
    fs.fsync_dir(directory)


@attrs.frozen
class StoredState:
    """What ``state.json`` holds: the machine's state and this installation's device id."""

    device_id: str
    state: DeviceState


def save_state(fs: FileSystem, stored: StoredState) -> None:
    """Persist ``stored`` atomically."""
    document: dict[str, Any] = {
        "format": STATE_FORMAT,
        "deviceId": stored.device_id,
        "state": unstructure(stored.state),
    }
    write_atomic(fs, STATE, canonical(document))


def load_state(fs: FileSystem) -> StoredState | None:
    """Read ``state.json``; None if there is none.

    A state file that cannot be parsed (it never is written in place, so
    this means the storage itself was damaged) is moved aside to
    ``state.json.corrupt`` and the device starts over on its embedded bundle:
    an app that cannot read its update state must still start.
    """
    size = fs.size(STATE)
    if size is None:
        return None
    try:
        return _parse_state(fs, size)
    except HotPatchError as exc:
        log.error("device state unreadable (%s); starting over on the embedded bundle", exc)  # noqa: TRY400 - the cause is in the message
        fs.replace(STATE, STATE + ".corrupt")
        fs.fsync_dir("")
        return None


def _make_durable(fs: FileSystem, handle: BinaryIO) -> None:
    """Flush the state just read before acting on it.

    A process killed before its directory fsync leaves a state that the next
    process sees but a power cut would undo.
    """
    try:
        fs.fsync(handle)
        fs.fsync_dir("")
    except OSError as exc:  # a read-only disk: the next write will fail loudly instead
        log.warning("could not flush the state just read: %s", exc)


def _parse_state(fs: FileSystem, size: int) -> StoredState:
    if size > MAX_STATE_BYTES:
        raise HotPatchError(f"state.json is {size} bytes")
    with fs.open_read(STATE) as handle:
        document = loads(handle.read())
        _make_durable(fs, handle)
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise HotPatchError("state.json has an unknown format")
    device_id = document.get("deviceId")
    if not isinstance(device_id, str):
        raise HotPatchError("state.json has no device id")
    return StoredState(device_id, structure(document.get("state"), DeviceState))


def recover(fs: FileSystem, state: DeviceState) -> list[str]:
    """Remove what a crash left behind; return what was removed. Idempotent.

    Only things the state does not reference go: temporary files, staging
    directories, release directories of no installed bundle (a crash after
    the rename, before the state was saved), and downloads other than the
    current offer's. A removal that fails (a read-only disk) is logged and
    retried at the next start; leftovers are never used, only wasted space.
    """
    doomed: list[tuple[str, bool]] = [(n, False) for n in fs.listdir("") if n.endswith(TMP_SUFFIX)]
    keep = {b.manifest_id for b in state.installed()}
    doomed += [(f"{RELEASES}/{n}", True) for n in fs.listdir(RELEASES) if n not in keep]
    offer = state.offer.bundle.manifest_id if state.offer is not None else None
    doomed += [
        (f"{DOWNLOADS}/{n}", False)
        for n in fs.listdir(DOWNLOADS)
        if offer is None or n != f"{offer}.part"
    ]
    doomed += [(f"{REPORTS}/{n}", False) for n in fs.listdir(REPORTS) if n.endswith(TMP_SUFFIX)]
    removed: list[str] = []
    for path, tree in doomed:
        try:
            fs.rmtree(path) if tree else fs.remove(path)
        except OSError as exc:
            log.warning("could not remove leftover %s: %s", path, exc)
            continue
        removed.append(path)
    return removed
