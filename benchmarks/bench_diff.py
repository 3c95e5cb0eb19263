"""`diff` of two large cassettes against `verify` of one of them, measured in the same run.

    python benchmarks/bench_diff.py [--records N] [--repeat R]

Two cassettes of N records (default 100,000) are identical except for the
result of the last record. Measured, best of R interleaved runs:

- verify: ``Cassette.open(a).verify()`` (frame unpack, hash chain, decode of every record);
- diff:   ``timeline.compare_traces(a, b)`` (both files read and chain-checked, the
  divergence found, aligned and explained), checked to report exactly one
  ``changed`` point at the last position.

Target: diff <= 2.0x verify. The script prints the figures and PASS or MISS.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from _timing import best, verdict

from pytest_replay import codec
from pytest_replay.cassette import Cassette
from pytest_replay.record import record_id
from pytest_replay.timeline import compare_traces

TARGET = 2.0
KEY = "shop.pricing.compute_total"


def make_records(n: int) -> list[dict[str, Any]]:
    """Small realistic record maps, shaped like record.Record.to_map()."""
    records = []
    for i in range(n):
        args = [[{"sku": f"A-{i}", "qty": i % 7 + 1, "price": 9.99}], "EUR"]
        kwargs = {"discount": 0.1 if i % 3 else 0.0, "coupon": None}
        records.append(
            {
                "id": record_id(KEY, codec.dumps([args, kwargs])),
                "key": KEY,
                "target": "shop.pricing:compute_total",
                "kind": "call",
                "args": args,
                "kwargs": kwargs,
                "result": {"total": round(i * 1.37, 2), "lines": i % 7 + 1, "ok": True},
                "children": [],
                "boundary": False,
                "meta": {"duration_ms": 0.25 + i % 11, "nodeid": None, "seed": None, "user": {}},
                "unreplayable": None,
            }
        )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    n = args.records

    with tempfile.TemporaryDirectory() as tmp:
        records = make_records(n)
        a = Cassette.create(Path(tmp) / "a.cassette", KEY, records)
        records[-1] = dict(records[-1], result={"total": -1.0, "lines": 0, "ok": False})
        b = Cassette.create(Path(tmp) / "b.cassette", KEY, records)
        del records

        def verify() -> None:
            report = Cassette.open(a.path).verify()
            assert report.ok, report.text

        def diff() -> None:
            result = compare_traces(Cassette.open(a.path), Cassette.open(b.path))
            points = result.divergences
            assert len(points) == 1, points
            assert points[0].kind == "changed", points
            assert points[0].position == n - 1, points[0]

        verify_times: list[float] = []
        diff_times: list[float] = []
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            verify_times.append(best(verify, 1))
            diff_times.append(best(diff, 1))
        t_verify, t_diff = min(verify_times), min(diff_times)

    ratio = t_diff / t_verify
    print(f"records: {n:,} per cassette, identical except the last record")
    print(f"verify (one cassette): {t_verify * 1000:8.1f} ms")
    print(f"diff (two cassettes):  {t_diff * 1000:8.1f} ms")
    print(f"diff / verify: {ratio:.2f}x (target <= {TARGET:.1f}x) {verdict(ratio, TARGET)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
