"""Test doubles for the device side: a crashable file system, a fake clock, a lying server.

They are shipped (not hidden in our test suite) so a native SDK's authors
can run the same adversarial scenarios against their own reasoning.

- :class:`MemoryFileSystem` models POSIX durability strictly: file contents
  survive a crash only as of their last ``fsync``, directory entries only as
  of their directory's last ``fsync``. It counts operations and can crash at
  operation *k* (:class:`SimulatedCrash`) or fail with an ``errno`` there
  (``ENOSPC``, ``EROFS``, ``EIO``); :meth:`MemoryFileSystem.after_crash`
  returns what a rebooted device would find.
- :class:`FakeClock` is wall time, monotonic time and a ``sleep`` that only
  moves the clock.
- :class:`RepositorySimulator` is an ``httpx`` transport that serves signed
  releases from memory and can lie in every way docs/security.md lists, recording
  each request (after python-tuf's ``RepositorySimulator``).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, BinaryIO, cast

import attrs
import httpx

from hotpatch_client.agent import Agent, AgentConfig, SyncResult, SyncStatus
from hotpatch_client.errors import AgentLockedError
from hotpatch_core.archive import FileEntry, MemorySink, extract_archive
from hotpatch_core.head import sign_head
from hotpatch_core.manifest import ArchiveInfo, Platform, encode_manifest, manifest_id
from hotpatch_core.protocol import CheckAnswer, PatchOffer
from hotpatch_core.release import sign_release
from hotpatch_core.testing import (
    PKI,
    BuiltRelease,
    FakeClock,
    build_release,
    head_listing,
    make_pki,
    rotate_pki,
)
from hotpatch_core.trust import TrustRoot
from hotpatch_core.wire import unstructure
from hotpatch_diff import PatchSide, make_patch

__all__ = [
    "FakeClock",
    "MemoryFileSystem",
    "PublishedRelease",
    "RepositorySimulator",
    "SimulatedCrash",
    "confirm_update",
    "sample_bundle",
]


class SimulatedCrash(BaseException):
    """The device lost power: nothing after this operation happened."""


def _side(release: PublishedRelease) -> PatchSide:
    files = release.built.manifest.files
    sink = MemorySink()
    extract_archive(io.BytesIO(release.built.archive), files, sink)
    return PatchSide(release.manifest_id, files, lambda entry: sink.files[entry.path])


def confirm_update(agent: Agent) -> SyncResult:
    """Do what an app does to take an update: launch, sync, relaunch onto it, confirm it.

    Raises ``AssertionError`` if the sync staged nothing. Returns the sync's result.
    """
    agent.on_launch()
    result = agent.sync()
    if result.status is not SyncStatus.STAGED:
        msg = f"expected an update to be staged, got {result}"
        raise AssertionError(msg)
    agent.on_launch()
    agent.notify_ready()
    return result


def sample_bundle(label: str, *, extra: int = 0) -> dict[str, bytes]:
    """Return a small Android bundle whose JavaScript says ``label``, with ``extra`` more assets."""
    files = {
        "index.android.bundle": f"console.log({label!r});\n".encode() * 400,
        "assets/logo.png": bytes(range(256)),
    }
    for index in range(extra):
        files[f"assets/extra/{index}.png"] = b"\x89PNG" + label.encode() + bytes(index)
    return files


# --- the file system -------------------------------------------------------


class _File:
    def __init__(self, durable: bytes = b"") -> None:
        self.data = bytearray(durable)
        self.durable = durable


class _Dir:
    def __init__(self) -> None:
        self.entries: dict[str, _File | _Dir] = {}
        self.durable: dict[str, _File | _Dir] = {}


class _Handle(io.BufferedIOBase):
    """An open file of a :class:`MemoryFileSystem`."""

    def __init__(self, fs: MemoryFileSystem, node: _File, path: str, *, writable: bool) -> None:
        super().__init__()
        self._fs = fs
        self.node = node
        self.path = path
        self._writable = writable
        self._pos = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self._fs.check_alive()
        end = len(self.node.data) if size is None or size < 0 else self._pos + size
        chunk = bytes(self.node.data[self._pos : end])
        self._pos += len(chunk)
        return chunk

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def write(self, data: Any) -> int:
        if not self._writable:
            raise io.UnsupportedOperation("not writable")
        chunk = bytes(data)
        self._fs.operation("write", self.path)
        end = self._pos + len(chunk)
        if self._pos > len(self.node.data):
            self.node.data.extend(bytes(self._pos - len(self.node.data)))
        self.node.data[self._pos : end] = chunk
        self._pos = end
        return len(chunk)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self.node.data)}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        self._fs.operation("truncate", self.path)
        size = self._pos if size is None else size
        del self.node.data[size:]
        return size


class MemoryFileSystem:
    """A strict-durability in-memory :class:`~hotpatch_client.fs.FileSystem` with fault injection.

    Set ``crash_at`` to crash at that operation, or ``fail_at`` + ``fail_errno``
    to raise ``OSError`` there (``sticky`` keeps failing every later mutating
    operation, like a disk gone read-only or full). ``operations`` counts the
    mutating operations so far; ``trace`` names them. It is not
    ``concurrent``: the agent then runs every step in order, so operation *k*
    is the same operation in every run.
    """

    concurrent = False

    def __init__(self) -> None:
        """Start empty."""
        self._root = _Dir()
        self.operations = 0
        self.trace: list[str] = []
        self.crash_at: int | None = None
        self.fail_at: int | None = None
        self.fail_errno = errno.ENOSPC
        self.sticky = False
        self.crashed = False
        self._locked = False

    # fault injection

    def check_alive(self) -> None:
        """Raise :class:`SimulatedCrash` if the device already crashed."""
        if self.crashed:
            raise SimulatedCrash("the device is down")

    def operation(self, name: str, path: str) -> None:
        """Count one mutating operation; crash or fail here if told to."""
        self.check_alive()
        self.operations += 1
        self.trace.append(f"{name} {path}")
        if self.crash_at is not None and self.operations >= self.crash_at:
            self.crashed = True
            raise SimulatedCrash(f"crash at operation {self.operations}: {name} {path}")
        if self.fail_at is not None and (
            self.operations == self.fail_at or (self.sticky and self.operations > self.fail_at)
        ):
            raise OSError(self.fail_errno, os.strerror(self.fail_errno), path)

    def heal(self) -> None:
        """Stop injecting faults (the disk has space again, or is writable)."""
        self.crash_at = self.fail_at = None

    def after_crash(self) -> MemoryFileSystem:
        """Return the file system a rebooted device finds: only what was fsynced."""
        image = MemoryFileSystem()
        image._root = _durable_copy(self._root)
        return image

    # lookups

    def _walk(self, path: str) -> _File | _Dir | None:
        node: _File | _Dir | None = self._root
        for part in filter(None, path.split("/")):
            if not isinstance(node, _Dir):
                return None
            node = node.entries.get(part)
        return node

    def _parent(self, path: str) -> tuple[_Dir, str]:
        head, _, name = path.rpartition("/")
        parent = self._walk(head)
        if not isinstance(parent, _Dir) or not name:
            raise FileNotFoundError(errno.ENOENT, "no such directory", head)
        return parent, name

    def _file(self, path: str) -> _File:
        node = self._walk(path)
        if not isinstance(node, _File):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return node

    def read_file(self, path: str) -> bytes:
        """Return a file's current content (for assertions)."""
        return bytes(self._file(path).data)

    def write_file(self, path: str, data: bytes) -> None:
        """Overwrite a file's content in place, durably (a test playing attacker)."""
        node = self._file(path)
        node.data = bytearray(data)
        node.durable = bytes(data)

    def files(self) -> list[str]:
        """Every file path, sorted (for assertions)."""
        found: list[str] = []

        def walk(directory: _Dir, prefix: str) -> None:
            for name, node in directory.entries.items():
                if isinstance(node, _Dir):
                    walk(node, f"{prefix}{name}/")
                else:
                    found.append(prefix + name)

        walk(self._root, "")
        return sorted(found)

    # the FileSystem protocol

    def open_new(self, path: str) -> BinaryIO:
        """Create or truncate a file."""
        self.operation("create", path)
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if isinstance(node, _Dir):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if node is None:
            node = parent.entries[name] = _File()
        node.data = bytearray()
        return cast("BinaryIO", _Handle(self, node, path, writable=True))

    def open_existing(self, path: str) -> BinaryIO:
        """Open a file for reading and writing."""
        self.check_alive()
        return cast("BinaryIO", _Handle(self, self._file(path), path, writable=True))

    def open_read(self, path: str) -> BinaryIO:
        """Open a file for reading."""
        self.check_alive()
        return cast("BinaryIO", _Handle(self, self._file(path), path, writable=False))

    def fsync(self, handle: BinaryIO) -> None:
        """Make the file's content durable."""
        mem = cast("_Handle", handle)
        self.operation("fsync", mem.path)
        mem.node.durable = bytes(mem.node.data)

    def truncate(self, handle: BinaryIO, size: int) -> None:
        """Cut the file and seek to its end."""
        handle.truncate(size)
        handle.seek(size)

    def size(self, path: str) -> int | None:
        """Return a file's size, or None."""
        self.check_alive()
        node = self._walk(path)
        return len(node.data) if isinstance(node, _File) else None

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a directory."""
        return isinstance(self._walk(path), _Dir)

    def listdir(self, path: str) -> list[str]:
        """Sorted names in a directory."""
        self.check_alive()
        node = self._walk(path)
        return sorted(node.entries) if isinstance(node, _Dir) else []

    def mkdir(self, path: str) -> None:
        """Create a directory if missing."""
        self.operation("mkdir", path)
        parent, name = self._parent(path)
        if name not in parent.entries:
            parent.entries[name] = _Dir()

    def fsync_dir(self, path: str) -> None:
        """Make a directory's entries durable."""
        self.operation("fsync_dir", path)
        node = self._walk(path)
        if not isinstance(node, _Dir):
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        node.durable = dict(node.entries)

    def replace(self, source: str, target: str) -> None:
        """Move ``source`` over ``target``."""
        self.operation("rename", f"{source} -> {target}")
        source_parent, source_name = self._parent(source)
        node = source_parent.entries.get(source_name)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", source)
        target_parent, target_name = self._parent(target)
        existing = target_parent.entries.get(target_name)
        if isinstance(existing, _Dir) and existing.entries:
            raise OSError(errno.ENOTEMPTY, "directory not empty", target)
        del source_parent.entries[source_name]
        target_parent.entries[target_name] = node

    def remove(self, path: str) -> None:
        """Remove a file if present."""
        self.operation("unlink", path)
        with contextlib.suppress(FileNotFoundError):
            parent, name = self._parent(path)
            if isinstance(parent.entries.get(name), _File):
                del parent.entries[name]

    def rmtree(self, path: str) -> None:
        """Remove a tree if present."""
        self.operation("rmtree", path)
        with contextlib.suppress(FileNotFoundError):
            parent, name = self._parent(path)
            parent.entries.pop(name, None)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One agent at a time."""
        if self._locked:
            raise AgentLockedError("another agent is using this storage")
        self._locked = True
        try:
            yield
        finally:
            self._locked = False

    def display_path(self, path: str) -> str:
        """Return a memory path."""
        return f"mem:/{path}"


def _durable_copy(directory: _Dir) -> _Dir:
    copy = _Dir()
    for name, node in directory.durable.items():
        copy.entries[name] = _durable_copy(node) if isinstance(node, _Dir) else _File(node.durable)
    copy.durable = dict(copy.entries)
    return copy


# --- the server ------------------------------------------------------------


@attrs.frozen
class PublishedRelease:
    """A release the simulator serves: its archive, manifest and signed envelope."""

    built: BuiltRelease
    envelope: bytes

    @property
    def manifest_id(self) -> str:
        """The manifest id."""
        return manifest_id(encode_manifest(self.built.manifest))


BodyFactory = Callable[[bytes, int], Iterator[bytes]]
_RANGE = re.compile(r"^bytes=([0-9]+)-\Z")
_ROOT_PATH = re.compile(r"/apps/([^/]+)/roots/([0-9]{1,9})")


@attrs.define
class RepositorySimulator:
    """An update server in memory that a test can make lie.

    ``offer`` (default: the newest release) is what the check returns. The
    knobs, each off by default: ``envelope_override`` (answer with these
    envelope bytes), ``archive_override`` (serve these archive bytes),
    ``body`` (a generator of the body from the archive and start offset:
    endless, trickling ...), ``content_length`` (the header to claim),
    ``ignore_range`` (always answer 200 with everything), ``statuses`` (the
    next archive requests fail with these HTTP codes), ``check_statuses``
    (the next update checks fail with these HTTP codes), ``cut_after`` (close
    the body after this many bytes, once), ``answer_extra`` (unsigned fields
    to add to the check's answer), ``reports_status`` (answer reports with
    this HTTP status instead of taking them), ``patches`` (patch bytes by
    (base manifest id, target manifest id), offered to a device running the
    base), ``patch_size`` (the size to claim for them), ``roots`` (trust root
    envelopes by version, served at ``/apps/{app}/roots/{version}``; see
    :meth:`rotate`).

    With a PKI whose root names a timestamp key (``make_pki(timestamp=True)``),
    every answer carries the channel head (:meth:`head`), signed at
    ``clock()``: it lists every release but the ``withdrawn`` ones, which are
    no longer offered either. ``head_override`` sends other head bytes (an
    old head a mirror replays), and ``offer_nothing`` answers "no update".
    """

    pki: PKI = attrs.field(factory=lambda: make_pki(seed=7))
    app_id: str = "com.example.app"
    base_url: str = "https://updates.example"
    releases: list[PublishedRelease] = attrs.field(factory=list)
    requests: list[httpx.Request] = attrs.field(factory=list)
    reports: list[dict[str, Any]] = attrs.field(factory=list)
    offer: PublishedRelease | None = None
    envelope_override: bytes | None = None
    archive_override: bytes | None = None
    body: BodyFactory | None = None
    content_length: int | None = None
    ignore_range: bool = False
    statuses: list[int] = attrs.field(factory=list)
    check_statuses: list[int] = attrs.field(factory=list)
    cut_after: int | None = None
    answer_extra: dict[str, Any] = attrs.field(factory=dict)
    reports_status: int | None = None
    patches: dict[tuple[str, str], bytes] = attrs.field(factory=dict)
    patch_size: int | None = None
    roots: dict[int, bytes] = attrs.field(factory=dict)
    embedded_root: TrustRoot | None = None
    clock: Callable[[], datetime] = attrs.field(factory=FakeClock)
    head_lifetime: timedelta = timedelta(hours=24)
    withdrawn: set[str] = attrs.field(factory=set)
    head_override: bytes | None = None
    offer_nothing: bool = False

    def live(self) -> list[PublishedRelease]:
        """Releases still offered, oldest first (all but the withdrawn)."""
        return [r for r in self.releases if r.manifest_id not in self.withdrawn]

    def head(self) -> bytes | None:
        """Return the channel head this server signs now (None: its root names no timestamp key)."""
        if self.pki.timestamp is None:
            return None
        head = head_listing(
            [r.built.manifest for r in self.live()],
            issued_at=self.clock(),
            lifetime=self.head_lifetime,
            target=(self.app_id, Platform.ANDROID.value, "production"),
        )
        return sign_head(head, [self.pki.timestamp])

    def config(self, **overrides: Any) -> AgentConfig:
        """Return the config of an Android device (``device-1``, binary 1.0.0) of this app.

        Its trust root is the one the binary embeds: the first, even after :meth:`rotate`.
        """
        fields: dict[str, Any] = {
            "server_url": self.base_url,
            "app_id": self.app_id,
            "platform": Platform.ANDROID,
            "native_version": "1.0.0",
            "trust_root": self.embedded_root or self.pki.root,
            "device_id": "device-1",
        }
        fields.update(overrides)
        return AgentConfig(**fields)

    def rotate(self, *, bump_epoch: bool = True) -> PKI:
        """Rotate to the next trust root with a new publisher key, and serve it.

        Releases published afterwards are signed by the new key (and carry the
        new epoch by default); devices keep the root they embed and must walk to
        this one. Returns the PKI that was current before, to sign as the old key.
        """
        old = self.pki
        if self.embedded_root is None:
            self.embedded_root = old.root
        self.pki = rotate_pki(old, bump_epoch=bump_epoch)
        self.roots[self.pki.root.version] = self.pki.root_bytes
        return old

    def publish(self, files: dict[str, bytes], **fields: Any) -> PublishedRelease:
        """Sign and serve a release of ``files`` (sequence defaults to the next one)."""
        fields.setdefault("sequence", len(self.releases) + 1)
        fields.setdefault("version", f"1.0.{fields['sequence']}")
        fields.setdefault("app_id", self.app_id)
        fields.setdefault("epoch", self.pki.root.epoch)
        built = build_release(files, **fields)
        release = PublishedRelease(built, sign_release(built.manifest, [self.pki.publisher]))
        self.releases.append(release)
        return release

    def publish_archive(
        self, archive: bytes, files: tuple[FileEntry, ...], **fields: Any
    ) -> PublishedRelease:
        """Sign and serve hand-made ``archive`` bytes described by ``files`` (hostile publisher)."""
        base = self.publish({"placeholder": b""}, **fields)
        self.releases.remove(base)
        manifest = attrs.evolve(
            base.built.manifest,
            archive=ArchiveInfo.of(hashlib.sha256(archive).hexdigest(), len(archive), files),
            files=files,
        )
        release = PublishedRelease(
            BuiltRelease(manifest, archive), sign_release(manifest, [self.pki.publisher])
        )
        self.releases.append(release)
        return release

    def make_patch(self, base: PublishedRelease, target: PublishedRelease) -> bytes:
        """Make (and serve) the patch from ``base`` to ``target`` with the real engine."""
        patch, _ = make_patch(_side(base), _side(target), level=3)
        self.patches[(base.manifest_id, target.manifest_id)] = patch
        return patch

    def client(self) -> httpx.Client:
        """Return an ``httpx.Client`` whose transport is this simulator."""
        return httpx.Client(transport=httpx.MockTransport(self.handle), base_url=self.base_url)

    def archive_requests(self) -> list[httpx.Request]:
        """Return the requests that fetched (part of) an archive."""
        return [r for r in self.requests if r.url.path.startswith("/blobs/")]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        self.requests.append(request)
        path = request.url.path
        if path == "/update/check":
            return self._check(request)
        if path.startswith("/blobs/"):
            return self._archive(request, path.removeprefix("/blobs/"))
        if path.startswith("/patches/"):
            return self._patch(path.removeprefix("/patches/"))
        root = _ROOT_PATH.fullmatch(path)
        if root is not None:
            return self._root(root.group(1), int(root.group(2)))
        if path == "/installations" and request.method == "POST":
            return self._report(request)
        return httpx.Response(404)

    def _report(self, request: httpx.Request) -> httpx.Response:
        if self.reports_status is not None:
            return httpx.Response(self.reports_status)
        body = json.loads(request.content)
        duplicate = any(r["id"] == body["id"] for r in self.reports)
        if not duplicate:
            self.reports.append(body)
        return httpx.Response(200 if duplicate else 201, json={"id": body["id"]})

    def _root(self, app_id: str, version: int) -> httpx.Response:
        envelope = self.roots.get(version) if app_id == self.app_id else None
        return httpx.Response(404) if envelope is None else httpx.Response(200, content=envelope)

    def _patch(self, name: str) -> httpx.Response:
        base, _, target = name.partition("-")
        data = self.patches.get((base, target))
        if data is None:
            return httpx.Response(404)
        return httpx.Response(200, content=data, headers={"content-length": str(len(data))})

    def _check(self, request: httpx.Request) -> httpx.Response:
        if self.check_statuses:
            return httpx.Response(self.check_statuses.pop(0))
        current = request.url.params.get("currentManifestId")
        live = self.live()
        release = self.offer or (live[-1] if live else None)
        head = self.head_override or self.head()
        signed = None if head is None else base64.b64encode(head).decode()
        if (
            release is None
            or self.offer_nothing
            or (current == release.manifest_id and self.envelope_override is None)
        ):
            nothing = CheckAnswer(update_available=False, head=signed)
            return httpx.Response(200, json=unstructure(nothing))
        envelope = self.envelope_override or release.envelope
        m = release.built.manifest
        patch = self.patches.get((current or "", release.manifest_id))
        answer = CheckAnswer(
            update_available=True,
            manifest=base64.b64encode(envelope).decode(),
            bundle_url=f"/blobs/{release.manifest_id}",
            head=signed,
            patch=None
            if patch is None or current is None
            else PatchOffer(
                f"/patches/{current}-{release.manifest_id}", self.patch_size or len(patch), current
            ),
            version=m.version,
            mandatory=m.mandatory,
            hash=m.archive.sha256,
            size=m.archive.length,
            manifest_id=release.manifest_id,
        )
        return httpx.Response(200, json=unstructure(answer) | self.answer_extra)

    def _archive(self, request: httpx.Request, wanted: str) -> httpx.Response:
        if self.statuses:
            return httpx.Response(self.statuses.pop(0))
        release = next((r for r in self.releases if r.manifest_id == wanted), None)
        if release is None:
            return httpx.Response(404)
        archive = (
            self.archive_override if self.archive_override is not None else release.built.archive
        )
        start = 0
        match = _RANGE.match(request.headers.get("range", ""))
        if match and not self.ignore_range:
            start = int(match.group(1))
            if start >= len(archive):
                return httpx.Response(416)
        if self.body is not None:
            chunks = self.body(archive, start)
        else:
            data = archive[start:]
            if self.cut_after is not None:
                data, self.cut_after = data[: self.cut_after], None
            chunks = iter([data])
        headers = {"content-length": str(self.content_length or len(archive) - start)}
        status = 200
        if start:
            status = 206
            headers["content-range"] = f"bytes {start}-{len(archive) - 1}/{len(archive)}"
        return httpx.Response(status, headers=headers, content=chunks)
