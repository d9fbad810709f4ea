"""The durable queue of installation reports: written before the state moves, sent at least once.

A report's id is derived from (device, release, status, phase), so queueing
the same outcome twice (say, a crash after the report was written but before
the state was saved, and the same decision taken again at restart) yields
one file and, on the server, one row: ``POST /installations`` is idempotent
on the id.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Final

import httpx

from hotpatch_client.fs import FileSystem
from hotpatch_client.http import request_deadline
from hotpatch_client.limits import DEFAULT_DEVICE_LIMITS
from hotpatch_client.storage import REPORTS, write_atomic
from hotpatch_core.errors import HotPatchError
from hotpatch_core.machine import Report
from hotpatch_core.protocol import InstallationReport
from hotpatch_core.strictjson import canonical, loads
from hotpatch_core.wire import structure, unstructure

__all__ = ["ReportQueue", "report_id"]

log = logging.getLogger("hotpatch_client")
MAX_REASON: Final = DEFAULT_DEVICE_LIMITS.report_reason_chars
MAX_REPORT_BYTES: Final = DEFAULT_DEVICE_LIMITS.report_bytes
_RETRY: Final = frozenset({httpx.codes.REQUEST_TIMEOUT, httpx.codes.TOO_MANY_REQUESTS})


def report_id(device_id: str, report: Report) -> str:
    """Return the stable id of ``report`` from ``device_id``."""
    phase = report.phase.value if report.phase is not None else ""
    key = f"{device_id}\n{report.manifest_id}\n{report.status.value}\n{phase}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class ReportQueue:
    """Reports on disk under ``reports/``, one file each."""

    def __init__(self, fs: FileSystem, app_id: str, device_id: str) -> None:
        """Queue reports of ``device_id`` for ``app_id`` in ``fs``."""
        self.fs = fs
        self.app_id = app_id
        self.device_id = device_id

    def put(self, report: Report) -> str:
        """Write ``report`` durably; return its id."""
        rid = report_id(self.device_id, report)
        document = InstallationReport(
            id=rid,
            app_id=self.app_id,
            device_id=self.device_id,
            manifest_id=report.manifest_id,
            status=report.status,
            phase=report.phase,
            reason=report.reason[:MAX_REASON],
            patched_from=report.patched_from,
        )
        self.fs.mkdir(REPORTS)
        write_atomic(self.fs, f"{REPORTS}/{rid}.json", canonical(unstructure(document)))
        return rid

    def pending(self) -> list[tuple[str, InstallationReport]]:
        """Return the queued reports with their paths, by name; unreadable ones are dropped."""
        reports: list[tuple[str, InstallationReport]] = []
        for name in self.fs.listdir(REPORTS):
            if not name.endswith(".json"):
                continue
            path = f"{REPORTS}/{name}"
            try:
                report = self._read(path)
            except HotPatchError as exc:
                log.warning("dropping unreadable report %s: %s", name, exc)
                self.fs.remove(path)
                continue
            reports.append((path, report))
        return reports

    def _read(self, path: str) -> InstallationReport:
        if (self.fs.size(path) or 0) > MAX_REPORT_BYTES:
            raise HotPatchError("report too large")
        with self.fs.open_read(path) as handle:
            return structure(loads(handle.read()), InstallationReport)

    def send(self, http: httpx.Client, url: str, *, deadline: float = 60.0) -> int:
        """POST every queued report once; remove the ones the server took. Return that count.

        Each POST ends within ``deadline`` seconds (:func:`request_deadline`).

        A network failure, a 5xx, a 408 or a 429 leaves a report queued for
        the next call. Another 4xx means the server will never accept it (say, the
        release was deleted): it is logged and dropped.
        """
        sent = 0
        for path, report in self.pending():
            try:
                with request_deadline(deadline):
                    response = http.post(url, json=unstructure(report))
            except httpx.HTTPError as exc:
                log.info("report %s not sent (%s); will retry", report.id, exc)
                break  # the server is unreachable: keep the rest for later too
            status = response.status_code
            if status >= httpx.codes.INTERNAL_SERVER_ERROR or status in _RETRY:
                log.info("report %s got HTTP %s; will retry", report.id, status)
                break
            if status >= httpx.codes.BAD_REQUEST:
                log.warning("server refused report %s (HTTP %s): dropped", report.id, status)
            else:
                sent += 1
            self.fs.remove(path)
        return sent
