"""Fuzzing every reader of untrusted bytes: the cassette reader (and what `show --json`
does with its records), the CLI, the history parsers and the shard reader.

Per input: nothing but the target's documented error types escapes, and the
input takes at most 1 s and 100 MB (tracemalloc peak). This is the bounded CI
slice, derandomized so it cannot be flaky; benchmarks/fuzz_nightly.py runs the
same generators for 100,000 inputs with a seed of its choice.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_helpers import fuzzing as fz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Examples per (target, generator): sized so the whole file stays near 20 s on
# a loaded 2-core machine. The CLI builds its argparse tree four times per
# input, so it gets fewer.
EXAMPLES = {
    "cassette-reader": 120,
    "cli": 12,
    "history-edn": 100,
    "history-jepsen-log": 100,
    "history-jsonl": 100,
    "shard-reader": 100,
}

CASES = [
    (target, generator) for target, spec in fz.TARGETS.items() for generator in spec.generators
]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Module scope: hypothesis runs many examples per test call.
    with tempfile.TemporaryDirectory(prefix="replay-fuzz-") as name:
        yield Path(name)


@pytest.mark.parametrize(("target", "generator"), CASES, ids=[f"{t}-{g}" for t, g in CASES])
def test_fuzz_slice(
    target: str, generator: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = fz.TARGETS[target]
    make = spec.generators[generator]
    stats = fz.Stats()

    @settings(
        max_examples=EXAMPLES[target],
        derandomize=True,
        database=None,
        deadline=None,  # the 1 s limit is checked per input by run_input
        suppress_health_check=list(HealthCheck),
    )
    @given(rng=st.randoms(use_true_random=False))
    def run(rng: random.Random) -> None:
        fz.run_input(spec, make(rng), workdir, stats)

    run()
    assert stats.inputs >= EXAMPLES[target] // 2  # hypothesis really ran the inputs
    with capsys.disabled():
        print(f"\n{stats.line(f'{target}/{generator}')}")


@pytest.mark.parametrize(
    "name", sorted(fz.pathological_inputs()), ids=lambda n: n.replace(" ", "-")
)
def test_pathological_input(name: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Big hand-made hostile inputs: time measured without tracemalloc, memory with it."""
    targets, data = fz.pathological_inputs()[name]
    lines = []
    for target in targets:
        timed, traced = fz.Stats(), fz.Stats()
        fz.run_input(fz.TARGETS[target], data, workdir, timed, measure_memory=False)
        fz.run_input(fz.TARGETS[target], data, workdir, traced, check_time=False)
        outcome = {**traced.by_error, **traced.by_outcome}
        lines.append(
            f"{target}: {timed.max_seconds * 1000:.0f} ms, "
            f"peak {traced.max_peak / 2**20:.1f} MB, {outcome or 'accepted'}"
        )
    with capsys.disabled():
        print(f"\npathological {name} ({len(data)} bytes): " + "; ".join(lines))


def test_failure_is_reported_with_the_input(workdir: Path) -> None:
    """The harness itself: an escaping exception or a slow input is a FuzzFailure."""

    def boom(data: bytes, path: Path) -> object:
        raise KeyError("x")

    def slow(data: bytes, path: Path) -> object:
        time.sleep(fz.TIME_LIMIT + 0.05)
        return None

    def hungry(data: bytes, path: Path) -> object:
        return bytearray(fz.MEMORY_LIMIT + 1)

    stats = fz.Stats()
    with pytest.raises(fz.FuzzFailure, match=r"KeyError escaped .*input \(3 bytes\): b'abc'"):
        fz.run_input(fz.Target("t", boom, (), {}), b"abc", workdir, stats)
    with pytest.raises(fz.FuzzFailure, match=r"took 1\.\d+ s \(limit 1\.0 s\)"):
        fz.run_input(fz.Target("t", slow, (), {}), b"", workdir, stats)
    with pytest.raises(fz.FuzzFailure, match=r"peaked at 100\.0 MB \(limit 100 MB\)"):
        fz.run_input(fz.Target("t", hungry, (), {}), b"", workdir, stats, failures_dir=workdir)
    assert list(workdir.glob("t-*.bin"))  # the input was saved for reproduction


@pytest.mark.parametrize(
    "data",
    [
        fz.msgpack.packb(fz.shard_header(dropped_failed={})),  # int({}) -> TypeError
        fz.msgpack.packb(fz.shard_header(warnings=7)),  # iterating an int -> TypeError
        b"\x81\x91\x01\x02",  # a map with a list as key -> TypeError (unhashable)
        fz.msgpack.packb(fz.shard_header()) + fz.msgpack.packb([1, 2, 3]),  # short entry
    ],
    ids=["counter-not-int", "warnings-not-list", "unhashable-key", "short-entry"],
)
def test_shard_reader_regressions(workdir: Path, data: bytes) -> None:
    """Inputs the fuzzer found: they once escaped as TypeError (fixed in store.read_shard)."""
    path = workdir / "regression.shard"
    path.write_bytes(data)
    with pytest.raises(fz.ShardError, match=r"regression\.shard: "):
        fz.read_shard(path)
