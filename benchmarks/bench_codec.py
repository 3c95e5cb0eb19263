"""Codec encode/decode speed against bare msgpack, measured in the same run.

    python benchmarks/bench_codec.py [--number N] [--repeat R]

Baseline: ``msgpack.packb(value, strict_types=True, use_bin_type=True)`` (what
a caller would write without pytest-replay) and ``msgpack.unpackb``. For the
payloads with tuples the baseline gets a minimal ``default`` that writes a
tuple as an ext of its packed items, so both sides do the same work.

Payloads:
- small dict: ~10 plain fields (the recording hot path; target dumps <= 1.5x)
- nested: 100 such dicts with a short list each (target dumps <= 2.0x)
- ints: a list of 1000 ints (target dumps <= 2.5x; 196..198 in the data
  make the output contain bin header bytes, so the bytearray scan runs)
- with tuples: a dict of 20 tuples (non-native values call back into Python)
- 5 MB dict: ~85,000 plain records under one key, about 5 MB packed (target
  dumps <= 2.5x; its floats put bin header bytes in the output, so the codec
  must rule out a bytearray in 5 MB of nested values)

Best of R runs of N calls each. Prints PASS/MISS per target; always exits 0.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

import msgpack

from pytest_replay import codec

SMALL = {
    "id": 12345,
    "name": "alice",
    "email": "alice@example.com",
    "score": 3.25,
    "active": True,
    "city": "Paris",
    "n": None,
    "count": 7,
    "ratio": 0.5,
    "plan": "pro",
}
NESTED = [dict(SMALL, id=i, tags=["a", "b"]) for i in range(100)]
INTS = list(range(1000))
TUPLES = {f"k{i}": (i, "x", 1.5) for i in range(20)}
BIG = {
    "rows": [
        {"id": i, "name": f"user {i}", "score": i * 0.37, "tags": ["a", "b"], "ok": i % 2 == 0}
        for i in range(95_000)
    ]
}

TARGETS = {"small dict": 1.5, "nested": 2.0, "ints": 2.5, "with tuples": None, "5 MB dict": 2.5}


def _tuple_default(obj: Any) -> Any:
    if type(obj) is tuple:
        return msgpack.ExtType(1, msgpack.packb(list(obj), default=_tuple_default))
    raise TypeError(type(obj))


def best(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(
        f"{'payload':12s} {'packb':>10s} {'dumps':>10s} {'ratio':>6s}  "
        f"{'unpackb':>10s} {'loads':>10s} {'ratio':>6s}  target(dumps)"
    )
    for name, value in [
        ("small dict", SMALL),
        ("nested", NESTED),
        ("ints", INTS),
        ("with tuples", TUPLES),
        ("5 MB dict", BIG),
    ]:
        number = max(20, args.number // (50 if name in ("nested", "ints") else 1))
        if value is BIG:
            number = 1
        packed = msgpack.packb(value, default=_tuple_default, strict_types=True, use_bin_type=True)
        encoded = codec.dumps(value)
        t_pack = best(
            lambda v=value: msgpack.packb(
                v, default=_tuple_default, strict_types=True, use_bin_type=True
            ),
            number,
            args.repeat,
        )
        t_dumps = best(lambda v=value: codec.dumps(v), number, args.repeat)
        t_unpack = best(lambda p=packed: msgpack.unpackb(p), number, args.repeat)
        t_loads = best(lambda e=encoded: codec.loads(e), number, args.repeat)
        target = TARGETS[name]
        ratio = t_dumps / t_pack
        verdict = "-" if target is None else f"<= {target}x {'PASS' if ratio <= target else 'MISS'}"
        print(
            f"{name:12s} {t_pack * 1e6:8.2f}us {t_dumps * 1e6:8.2f}us {ratio:5.2f}x  "
            f"{t_unpack * 1e6:8.2f}us {t_loads * 1e6:8.2f}us {t_loads / t_unpack:5.2f}x  {verdict}"
        )


if __name__ == "__main__":
    main()
