"""Timing and verdicts shared by the benchmark scripts.

The scripts run as ``python benchmarks/bench_*.py``, which puts this folder
first on ``sys.path``: they import this module as ``_timing``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def verdict(ratio: float, target: float) -> str:
    """PASS when the measured ratio is within its target, else MISS."""
    return "PASS" if ratio <= target else "MISS"
