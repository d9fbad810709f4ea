"""Fetching an archive: streamed, hashed, capped, resumable, and bounded in time.

Bytes go straight from the socket into a private file while being hashed;
the same open descriptor is later handed to the extractor, so what was
hashed is what gets extracted (A15). The body is read raw (no content
decoding) and never past the signed length (A2). A partial file from an
earlier attempt, or an earlier process, is resumed with an HTTP ``Range``
request. A total deadline (applied to every socket operation with
:func:`hotpatch_client.device_http_client`) and a minimum throughput stop a
trickling server (A9); transient failures are retried with exponential backoff and jitter.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final, Protocol

import attrs
import httpx

from hotpatch_client.errors import NetworkError, SlowDownloadError
from hotpatch_client.fs import FileSystem
from hotpatch_client.http import request_deadline
from hotpatch_core.errors import TooLargeError
from hotpatch_core.wire import parse_decimal

__all__ = ["DownloadPolicy", "Fetched", "Timer", "fetch_archive", "raw_chunks"]

CHUNK: Final = 256 * 1024
_CONTENT_RANGE: Final = re.compile(r"^bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18}|\*)\Z")


def raw_chunks(response: httpx.Response, size: int = CHUNK) -> Iterator[bytes]:
    """Yield the body as sent (no content decoding), in chunks of at most ``size`` bytes.

    A transport that already read the body (an in-memory test transport)
    is served from memory.
    """
    if not response.is_stream_consumed:
        # No chunk size: httpx would otherwise buffer up to it before yielding,
        # hiding a trickle from the throughput meter.
        for chunk in response.iter_raw():
            for offset in range(0, len(chunk), size):
                yield chunk[offset : offset + size]
        return
    content = response.content
    for offset in range(0, len(content), size):
        yield content[offset : offset + size]


class Timer(Protocol):
    """Monotonic time and sleeping, injectable for tests."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


@attrs.frozen
class DownloadPolicy:
    """Limits on one download (all times in seconds).

    ``deadline`` bounds a whole archive or patch download (every attempt);
    ``request_deadline`` bounds each smaller request (an update check, a
    trust root, a report) from connecting to the last byte.
    ``min_bytes_per_second`` is judged over every ``throughput_window``: a
    server that sends less than ``min_bytes_per_second * throughput_window``
    bytes in a window is abandoned, however alive it looks.
    """

    deadline: float = 600.0
    request_deadline: float = 60.0
    min_bytes_per_second: int = 1024
    throughput_window: float = 30.0
    read_timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0


@attrs.frozen
class Fetched:
    """A complete download: its open handle (positioned anywhere), digest and length."""

    handle: BinaryIO
    sha256: str
    length: int
    fetched_bytes: int


class _Partial:
    """The file being written, the hash of its bytes so far, and their count."""

    def __init__(self, fs: FileSystem, path: str, length: int) -> None:
        self.fs = fs
        size = fs.size(path)
        self.digest = hashlib.sha256()
        self.fetched = 0
        if size is None or size > length:
            self.handle, self.have = fs.open_new(path), 0
            return
        self.handle, self.have = fs.open_existing(path), size
        while chunk := self.handle.read(CHUNK):
            self.digest.update(chunk)

    def restart(self) -> None:
        self.fs.truncate(self.handle, 0)
        self.digest, self.have = hashlib.sha256(), 0

    def append(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.digest.update(chunk)
        self.have += len(chunk)
        self.fetched += len(chunk)


class _Meter:
    """Enforces the deadline and the minimum throughput."""

    def __init__(self, policy: DownloadPolicy, timer: Timer) -> None:
        self.policy = policy
        self.timer = timer
        self.started = timer.monotonic()
        self.window_start = self.started
        self.window_bytes = 0

    def elapsed(self) -> float:
        return self.timer.monotonic() - self.started

    def tick(self, received: int) -> None:
        now = self.timer.monotonic()
        if now - self.started > self.policy.deadline:
            raise SlowDownloadError(f"download ran past its {self.policy.deadline:g} s deadline")
        self.window_bytes += received
        if now - self.window_start >= self.policy.throughput_window:
            rate = self.window_bytes / (now - self.window_start)
            if rate < self.policy.min_bytes_per_second:
                raise SlowDownloadError(
                    f"download slowed to {rate:.0f} B/s, below the minimum "
                    f"{self.policy.min_bytes_per_second} B/s"
                )
            self.window_start, self.window_bytes = now, 0


def _start_offset(response: httpx.Response, have: int) -> int:
    """Return where the body starts in the file: ``have`` for a 206, 0 for a 200."""
    if response.status_code == httpx.codes.PARTIAL_CONTENT:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if match is None or int(match.group(1)) != have:
            raise NetworkError("the server answered a range request with another range")
        return have
    if response.status_code == httpx.codes.OK:
        return 0
    retryable = response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR or (
        response.status_code in (httpx.codes.TOO_MANY_REQUESTS, httpx.codes.REQUEST_TIMEOUT)
    )
    raise NetworkError(f"archive download got HTTP {response.status_code}", retryable=retryable)


def _attempt(  # noqa: PLR0913, PLR0917 - one attempt's whole context, kept explicit
    http: httpx.Client,
    url: str,
    partial: _Partial,
    length: int,
    meter: _Meter,
    progress: Callable[[int, int], None],
) -> None:
    headers = {"Accept-Encoding": "identity"}
    if partial.have:
        headers["Range"] = f"bytes={partial.have}-"
    with http.stream(
        "GET", url, headers=headers, timeout=httpx.Timeout(meter.policy.read_timeout)
    ) as response:
        if response.status_code == httpx.codes.REQUESTED_RANGE_NOT_SATISFIABLE and partial.have:
            partial.restart()  # our partial file is not a prefix the server knows
            raise NetworkError("the server refused to resume; starting over")
        if _start_offset(response, partial.have) != partial.have:
            partial.restart()  # the server ignored the range and sends it all
        declared = parse_decimal(response.headers.get("content-length"), max_digits=30)
        if declared is not None and partial.have + declared > length:
            raise TooLargeError("archive download (Content-Length)", length)
        for chunk in raw_chunks(response):
            if partial.have + len(chunk) > length:
                raise TooLargeError("archive download", length)
            partial.append(chunk)
            meter.tick(len(chunk))
            progress(partial.have, length)


def fetch_archive(  # noqa: PLR0913 - the download's inputs, all keyword-only
    *,
    http: httpx.Client,
    url: str,
    fs: FileSystem,
    path: str,
    length: int,
    policy: DownloadPolicy,
    timer: Timer,
    progress: Callable[[int, int], None],
) -> Fetched:
    """Download ``url`` into ``path`` (resuming it), never past ``length`` bytes.

    Raises :class:`TooLargeError` when the server sends more than the signed
    length (the partial file is removed), :class:`SlowDownloadError`, or
    :class:`NetworkError` after the retries are spent (the partial file is
    kept for the next attempt). ``OSError`` from the storage propagates.
    """
    partial = _Partial(fs, path, length)
    meter = _Meter(policy, timer)
    failures = 0
    try:
        while partial.have < length:
            before = partial.have
            try:
                with request_deadline(policy.deadline - meter.elapsed()):
                    _attempt(http, url, partial, length, meter, progress)
            except httpx.HTTPError as exc:
                error: NetworkError = NetworkError(f"archive download failed: {exc}")
            except NetworkError as exc:
                error = exc
            else:
                if partial.have >= length:
                    break
                error = NetworkError(f"the body ended after {partial.have} of {length} bytes")
            if partial.have > before:
                failures = 0  # progress was made: only consecutive failures count
            failures += 1
            if not error.retryable or failures > policy.retries:
                raise error  # noqa: TRY301 - the loop's verdict, after the bookkeeping
            delay = min(policy.max_backoff, policy.backoff * 2 ** (failures - 1))
            timer.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not secrecy
            meter.tick(0)
        fs.fsync(partial.handle)
    except TooLargeError:
        partial.handle.close()
        fs.remove(path)
        raise
    except BaseException:
        partial.handle.close()
        raise
    return Fetched(partial.handle, partial.digest.hexdigest(), partial.have, partial.fetched)
