"""Metrics every daemon reports in ``/metrics/snapshot``: the host's (``system/...``)."""

from __future__ import annotations

import os

import psutil


def system_metrics() -> dict[str, float]:
    """Mesos's ``system/...`` keys: CPUs, load averages and memory of the host."""
    load = os.getloadavg()
    memory = psutil.virtual_memory()
    return {
        "system/cpus_total": float(psutil.cpu_count() or 1),
        "system/load_1min": load[0],
        "system/load_5min": load[1],
        "system/load_15min": load[2],
        "system/mem_total_bytes": float(memory.total),
        "system/mem_free_bytes": float(memory.available),
    }
