"""Child program for the big-cassette load test: write N records, or read one back
and report time and peak RSS as one JSON line.

    python -m hardening_helpers.bigcassette write PATH N
    python -m hardening_helpers.bigcassette read PATH

Reading runs in a fresh process so that its peak RSS (``VmHWM``) is the reader's
alone: the baseline is taken after the imports, so "above the interpreter" means
above an interpreter that has pytest_replay loaded.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    # ru_maxrss is the peak in KB on Linux; the only figure where /proc is missing
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def records(n: int) -> Iterator[bytes]:
    """Realistic small records (~180 bytes): distinct ids and inputs, a nested result."""
    from pytest_replay import codec

    dumps = codec.dumps
    for i in range(n):
        yield dumps(
            {
                "id": f"{i:016x}",
                "key": "app.pricing.total",
                "target": "app.pricing:total",
                "kind": "call",
                "args": [i, "EUR", [1.5, 2.25]],
                "kwargs": {"discount": i % 7},
                "result": {"total": i * 1.5, "lines": [i, i + 1]},
                "children": [],
                "boundary": False,
                "meta": {"duration_ms": 0.125, "nodeid": "tests/test_pricing.py::test_total"},
                "unreplayable": None,
            }
        )


def write(path: Path, n: int) -> dict[str, float]:
    from pytest_replay.cassette import Cassette

    start = time.perf_counter()
    Cassette.create(path, "app.pricing.total", records(n))
    return {"records": n, "write_s": time.perf_counter() - start, "bytes": path.stat().st_size}


def read(path: Path) -> dict[str, float]:
    from pytest_replay.cassette import Cassette

    base_rss = _status_kb("VmRSS")
    base_hwm = _status_kb("VmHWM")
    t0 = time.perf_counter()
    cassette = Cassette.open(path)
    t1 = time.perf_counter()
    report = cassette.verify()
    t2 = time.perf_counter()
    count = 0
    for record in cassette.records():
        if record["key"] != "app.pricing.total":
            raise SystemExit(f"record {count} has key {record['key']!r}")
        count += 1
    t3 = time.perf_counter()
    peak = _status_kb("VmHWM")
    return {
        "records": count,
        "valid": report.ok,
        "verified": report.verified,
        "open_s": t1 - t0,
        "verify_s": t2 - t1,
        "iterate_s": t3 - t2,
        "base_rss_mb": base_rss / 1024,
        "base_hwm_mb": base_hwm / 1024,
        "peak_mb": peak / 1024,
        "peak_above_base_mb": (peak - max(base_rss, base_hwm)) / 1024,
    }


def main(argv: list[str]) -> int:
    command, path = argv[0], Path(argv[1])
    if command == "write":
        result = write(path, int(argv[2]))
    elif command == "read":
        result = read(path)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
