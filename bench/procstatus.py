"""Memory figures of the current process, for the benchmarks (Linux).

``VmHWM`` is the resident peak of this process image. ``ru_maxrss`` is not
usable in the benchmarks' child processes: Linux carries the parent's peak
across fork and exec.
"""

from __future__ import annotations

import resource
from pathlib import Path


def status_kib(field: str) -> int:
    """Return ``field`` (``VmRSS``, ``VmHWM`` ...) of /proc/self/status in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is
