"""Nightly fuzz run: 100,000 inputs over every reader of untrusted bytes.

    python benchmarks/fuzz_nightly.py [--inputs N] [--seed S] [--failures DIR]

The generators and targets are those of the CI slice
(tests/hardening_helpers/fuzzing.py), driven here by a seeded
``random.Random`` instead of hypothesis, so one input costs microseconds of
generation. Per input: only the target's documented errors may escape, and it
must take at most 1 s and 100 MB (tracemalloc peak). Inputs that break a rule
are saved under ``--failures`` and the run goes on; the exit code is 1 if any.
The hand-made big inputs of the slice run once more at the end.

Inputs are shared out by weight: the cassette reader 40%, the three history
parsers 15% each, the shard reader 10%, the CLI 5% (four commands per input).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hardening_helpers import fuzzing as fz  # noqa: E402

WEIGHTS = {
    "cassette-reader": 0.40,
    "history-edn": 0.15,
    "history-jepsen-log": 0.15,
    "history-jsonl": 0.15,
    "shard-reader": 0.10,
    "cli": 0.05,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"))
    args = parser.parse_args()
    assert set(WEIGHTS) == set(fz.TARGETS)
    print(f"fuzz: {args.inputs:,} inputs, seed {args.seed}, limits 1 s and 100 MB per input")
    failures: list[str] = []
    total = fz.Stats()
    started = time.perf_counter()
    tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="fuzz-nightly-") as tmp:
        workdir = Path(tmp)
        attempted = 0
        for position, (name, weight) in enumerate(WEIGHTS.items()):
            target = fz.TARGETS[name]
            last = position == len(WEIGHTS) - 1
            share = args.inputs - attempted if last else round(args.inputs * weight)
            generators = list(target.generators.items())
            stats = fz.Stats()
            for index, (gen_name, generate) in enumerate(generators):
                rng = random.Random(f"{args.seed}/{name}/{gen_name}")
                # the generators share the target's inputs evenly, remainder to the first
                count = share // len(generators) + (index < share % len(generators))
                for _ in range(count):
                    data = generate(rng)
                    try:
                        fz.run_input(target, data, workdir, stats, failures_dir=args.failures)
                    except fz.FuzzFailure as exc:
                        failures.append(str(exc))
            attempted += share
            failed = _failed(failures, name)
            print(
                stats.line(name)
                .replace(f"{stats.inputs} inputs", f"{stats.inputs + failed} inputs")
                .replace(", 0 escaped", f", {failed} failed")
            )
            total.merge(stats)
            total.inputs += failed
        tracemalloc.stop()
        print("pathological inputs (time without tracing, memory with):")
        for label, (targets, data) in fz.pathological_inputs().items():
            for name in targets:
                timed, traced = fz.Stats(), fz.Stats()
                try:
                    fz.run_input(
                        fz.TARGETS[name], data, workdir, timed, measure_memory=False,
                        failures_dir=args.failures,
                    )  # fmt: skip
                    fz.run_input(
                        fz.TARGETS[name], data, workdir, traced, check_time=False,
                        failures_dir=args.failures,
                    )  # fmt: skip
                except fz.FuzzFailure as exc:
                    failures.append(str(exc))
                    continue
                print(
                    f"  {label} -> {name}: {timed.max_seconds * 1000:.0f} ms, "
                    f"{traced.max_peak / 2**20:.1f} MB"
                )
    elapsed = time.perf_counter() - started
    print(
        f"total: {total.inputs:,} inputs in {elapsed:.0f} s, slowest "
        f"{total.max_seconds * 1000:.1f} ms, largest peak {total.max_peak / 2**20:.2f} MB, "
        f"{len(failures)} failures"
    )
    for failure in failures[:20]:
        print(f"FAIL {failure}")
    verdict = "PASS" if not failures and total.inputs >= args.inputs else "MISS"
    print(f"{verdict}: every input raised only documented errors within 1 s and 100 MB")
    return 1 if failures else 0


def _failed(failures: list[str], name: str) -> int:
    return sum(1 for f in failures if f.startswith(f"{name}:"))


if __name__ == "__main__":
    sys.exit(main())
