"""Streaming multipart parsing for publishes: the archive goes to disk, never to memory.

The whole request body is capped by the route (413 before buffering, with
or without ``Content-Length``); each part has its own cap on top, and there
are at most :data:`MAX_PARTS` parts. The archive part is written to a
private (0600) temporary file while it is hashed, so the server knows its
sha256 and length without reading it twice.

Authorisation comes before work: the ``appId`` field must come before the
archive, and ``authorize`` is called with it as soon as its part ends, so a
caller who may not publish to that app is refused before a byte of the
archive is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import attrs
from litestar import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from hotpatch_server.errors import InvalidInputError, ServerError, TooLargeInputError
from hotpatch_server.problems import Problem, disk_full, insufficient_storage

__all__ = ["MAX_FIELD_BYTES", "MAX_MANIFEST_BYTES", "MAX_PARTS", "Upload", "read_upload"]

MAX_MANIFEST_BYTES = 6 * 1024 * 1024
MAX_FIELD_BYTES = 4096
#: Form parts in one publish: the fields the route reads, with room to spare.
MAX_PARTS = 32
_APP_FIELDS = ("appId", "app_id")


@attrs.define
class Upload:
    """A parsed publish request: form fields, manifest bytes, the archive on disk."""

    fields: dict[str, str]
    manifest: bytes | None
    archive: Path | None
    archive_sha256: str
    archive_length: int

    def discard(self) -> None:
        """Remove the temporary archive file."""
        if self.archive is not None:
            self.archive.unlink(missing_ok=True)


@attrs.define
class _State:
    tmp_dir: Path
    max_archive: int
    authorize: Callable[[str], None]
    parts: int = 0
    headers: dict[str, str] = attrs.field(factory=dict)
    header_field: bytearray = attrs.field(factory=bytearray)
    header_value: bytearray = attrs.field(factory=bytearray)
    name: str = ""
    buffer: bytearray = attrs.field(factory=bytearray)
    fields: dict[str, str] = attrs.field(factory=dict)
    manifest: bytes | None = None
    archive: Path | None = None
    handle: IO[bytes] | None = None
    digest: Any = attrs.field(factory=hashlib.sha256)
    length: int = 0

    def header_end(self) -> None:
        self.headers[self.header_field.decode("latin-1").lower()] = self.header_value.decode(
            "latin-1"
        )
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        raw = options.get(b"name", b"")
        self.name = raw.decode("utf-8", errors="replace")
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise Problem(400, "bad-request", f"more than {MAX_PARTS} form parts")
        if self.name == "archive":
            if self.archive is not None:
                raise Problem(400, "bad-request", "more than one archive part", field="archive")
            if not any(name in self.fields for name in _APP_FIELDS):
                raise InvalidInputError("send the appId field before the archive", field="appId")
            fd, path = tempfile.mkstemp(prefix="upload-", suffix=".zip", dir=self.tmp_dir)
            os.fchmod(fd, 0o600)
            self.archive = Path(path)
            self.handle = os.fdopen(fd, "wb")

    def data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.name == "archive":
            assert self.handle is not None  # noqa: S101 - opened in headers_finished
            self.length += len(chunk)
            if self.length > self.max_archive:
                message = f"archive exceeds {self.max_archive} bytes"
                raise TooLargeInputError(message, field="archive")
            self.digest.update(chunk)
            self.handle.write(chunk)
            return
        limit = MAX_MANIFEST_BYTES if self.name == "manifest" else MAX_FIELD_BYTES
        if len(self.buffer) + len(chunk) > limit:
            raise Problem(413, "too-large", f"field exceeds {limit} bytes", field=self.name)
        self.buffer.extend(chunk)

    def part_end(self) -> None:
        if self.name == "archive":
            assert self.handle is not None  # noqa: S101 - opened in headers_finished
            self.handle.close()
            self.handle = None
        elif self.name == "manifest":
            self.manifest = bytes(self.buffer)
        elif self.name:
            try:
                self.fields[self.name] = self.buffer.decode("utf-8")
            except UnicodeDecodeError:
                raise Problem(400, "bad-request", "field is not UTF-8", field=self.name) from None
            if self.name in _APP_FIELDS:
                self.authorize(self.fields[self.name])
        self.buffer.clear()
        self.headers.clear()
        self.name = ""


async def read_upload(
    request: Request[Any, Any, Any],
    tmp_dir: Path,
    max_archive: int,
    authorize: Callable[[str], None],
) -> Upload:
    """Parse a multipart publish body, streaming the ``archive`` part to a temp file.

    ``authorize(app_id)`` runs when the ``appId`` part ends, before the
    archive; it raises to refuse the caller, and nothing is left behind.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Problem(415, "unsupported-media-type", "send multipart/form-data")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    state = _State(tmp_dir, max_archive, authorize)
    parser = MultipartParser(
        boundary,
        {
            "on_header_field": lambda d, s, e: state.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: state.header_value.extend(d[s:e]),
            "on_header_end": state.header_end,
            "on_headers_finished": state.headers_finished,
            "on_part_data": state.data,
            "on_part_end": state.part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except (Problem, ServerError):
        _cleanup(state)
        raise
    except OSError as exc:
        _cleanup(state)
        if disk_full(exc):
            raise insufficient_storage() from None
        raise
    except Exception as exc:
        _cleanup(state)
        if getattr(exc, "status_code", None) == 413:
            raise
        raise Problem(400, "bad-request", f"malformed multipart body: {exc}") from None
    return Upload(
        state.fields, state.manifest, state.archive, state.digest.hexdigest(), state.length
    )


def _cleanup(state: _State) -> None:
    if state.handle is not None:
        with contextlib.suppress(OSError):  # flushing what is buffered may fail again (disk full)
            state.handle.close()
    if state.archive is not None:
        state.archive.unlink(missing_ok=True)
