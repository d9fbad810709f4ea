"""In-process counters, rendered in the Prometheus text format by ``/metrics``."""

from __future__ import annotations

from collections import Counter

__all__ = ["Metrics"]


class Metrics:
    """In-process counters, exposed in the Prometheus text format."""

    def __init__(self) -> None:
        """Start every counter at zero."""
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, **labels: str) -> None:
        """Add one to ``name`` with ``labels``."""
        self.counters[(name, tuple(sorted(labels.items())))] += 1

    def render(self, devices_flushed: int, *, per_app: bool = True) -> str:
        """Return the exposition text, with the device rows the batch tracker wrote.

        ``per_app=False`` sums over apps and names none (for a public ``/metrics``).
        """
        lines = [
            "# HELP hotpatch_events_total Events seen by this process.",
            "# TYPE hotpatch_events_total counter",
        ]
        counters = self.counters
        if not per_app:
            counters = Counter()
            for (name, labels), value in self.counters.items():
                counters[(name, tuple(pair for pair in labels if pair[0] != "app"))] += value
        for (name, labels), value in sorted(counters.items()):
            rendered = ",".join(f'{k}="{v}"' for k, v in (("event", name), *labels))
            lines.append(f"hotpatch_events_total{{{rendered}}} {value}")
        lines += [
            "# HELP hotpatch_devices_flushed_total Device rows written by the batch tracker.",
            "# TYPE hotpatch_devices_flushed_total counter",
            f"hotpatch_devices_flushed_total {devices_flushed}",
        ]
        return "\n".join(lines) + "\n"
