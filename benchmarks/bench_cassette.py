"""Cassette write and read+verify speed against bare msgpack, measured in the same run.

    python benchmarks/bench_cassette.py [--records N] [--repeat R]

Baseline (same run, same records): ``msgpack.packb`` of each record map written
to a file (buffered, fsync); ``msgpack.Unpacker`` over that file.

- write: ``Cassette.create(path, key, payloads)`` where the payloads are
  ``msgpack.packb(record)`` computed inside the timed region, so the cassette
  pays the same encoding as the baseline plus its own work (framing, hash
  chain, buffered write, fsync, atomic rename).
- write via codec: ``Cassette.create(path, key, record_maps)``, which encodes
  with ``codec.dumps`` (what recording does). This line measures the codec as
  much as the format.
- read+verify: iterating ``Cassette.open(path).records()``: frame unpack, hash
  check, strict decode of each payload to a record map.

Targets: write <= 2.0x, read+verify <= 2.0x. Best of R runs, interleaved.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgpack
from _timing import best, verdict

from pytest_replay.cassette import Cassette

TARGET_WRITE = 2.0
TARGET_READ = 2.0


def make_records(n: int) -> list[dict[str, Any]]:
    """Small realistic record maps, shaped like record.Record.to_map()."""
    records = []
    for i in range(n):
        records.append(
            {
                "id": f"{i * 2654435761 % 2**64:016x}",
                "key": "shop.pricing.compute_total",
                "target": "shop.pricing:compute_total",
                "kind": "call",
                "args": [[{"sku": f"A-{i % 97}", "qty": i % 7 + 1, "price": 9.99}], "EUR"],
                "kwargs": {"discount": 0.1 if i % 3 else 0.0, "coupon": None},
                "result": {"total": round(i * 1.37, 2), "lines": i % 7 + 1, "ok": True},
                "children": [],
                "boundary": False,
                "meta": {
                    "duration_ms": 0.25 + i % 11,
                    "nodeid": f"tests/test_pricing.py::test_total[{i % 50}]",
                    "seed": None,
                    "user": {},
                },
                "unreplayable": None,
            }
        )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)
    records = make_records(options.records)
    packb = msgpack.packb

    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.msgpack"
        cassette_path = Path(tmp) / "bench.cassette"

        def raw_write() -> None:
            with raw_path.open("wb") as stream:
                write = stream.write
                for record in records:
                    write(packb(record))
                stream.flush()
                os.fsync(stream.fileno())

        def cassette_write() -> None:
            payloads = (packb(record) for record in records)
            Cassette.create(cassette_path, "shop.pricing.compute_total", payloads)

        def cassette_write_codec() -> None:
            Cassette.create(cassette_path, "shop.pricing.compute_total", records)

        def raw_read() -> int:
            count = 0
            with raw_path.open("rb") as stream:
                for _ in msgpack.Unpacker(stream, read_size=256 * 1024):
                    count += 1
            return count

        def cassette_read() -> int:
            count = 0
            for _ in Cassette.open(cassette_path).records():
                count += 1
            return count

        raw_write()
        cassette_write_codec()
        assert raw_read() == cassette_read() == len(records)
        codec_w = float("inf")
        for _ in range(max(1, options.repeat // 2)):
            codec_w = min(codec_w, best(cassette_write_codec, 1))
        cassette_write()
        raw_w = cas_w = raw_r = cas_r = float("inf")
        for _ in range(options.repeat):  # interleaved so machine load hits both sides
            raw_w = min(raw_w, best(raw_write, 1))
            cas_w = min(cas_w, best(cassette_write, 1))
            raw_r = min(raw_r, best(raw_read, 1))
            cas_r = min(cas_r, best(cassette_read, 1))
        raw_size = raw_path.stat().st_size
        cas_size = cassette_path.stat().st_size

    n = len(records)
    write_ratio = cas_w / raw_w
    read_ratio = cas_r / raw_r
    print(f"records: {n}  ({raw_size / n:.0f} bytes packed; cassette {cas_size / n:.0f} bytes)")
    print(f"python {sys.version.split()[0]}, msgpack {'.'.join(map(str, msgpack.version))}")
    print(
        f"write        raw msgpack.packb {raw_w * 1e3:8.1f} ms   cassette {cas_w * 1e3:8.1f} ms"
        f"   ratio {write_ratio:.2f}x (target <= {TARGET_WRITE}x) "
        f"{verdict(write_ratio, TARGET_WRITE)}"
    )
    codec_ratio = codec_w / raw_w
    print(
        f"write via codec.dumps           {raw_w * 1e3:8.1f} ms   cassette {codec_w * 1e3:8.1f} ms"
        f"   ratio {codec_ratio:.2f}x (target <= {TARGET_WRITE}x, codec included) "
        f"{verdict(codec_ratio, TARGET_WRITE)}"
    )
    print(
        f"read+verify  raw msgpack.Unpacker {raw_r * 1e3:5.1f} ms   cassette {cas_r * 1e3:8.1f} ms"
        f"   ratio {read_ratio:.2f}x (target <= {TARGET_READ}x) "
        f"{verdict(read_ratio, TARGET_READ)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
