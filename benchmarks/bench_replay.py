"""Replay speed, as ratios against baselines measured in the same run.

1. 10,000 recorded calls of a small function, replayed by
   ``pytest --replay -q -p no:cacheprovider``, versus a hand-written test file
   with the same 10,000 cases via ``@pytest.mark.parametrize`` (wall time of
   the whole pytest process). Target: <= 1.3x.
2. The comparison fast path: replaying a function whose 5 MB nested dict
   output is unchanged, versus ``==`` on the two values. Target: <= 1.5x.
   Two figures: ``judge`` (what a replay item runs: encode the new output and
   compare it with the recorded bytes) and ``compare_values`` (the decoded
   comparison, used when the bytes differ or a custom compare is set).

Usage: python benchmarks/bench_replay.py [--calls N] [--repeat R] [--size-mb M]
Prints the figures and PASS/MISS per target; exits 0 either way.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _timing import best, verdict

SMALL = """
from pytest_replay import replay_trace


@replay_trace
def score(a, b):
    return {"sum": a + b, "prod": a * b, "tag": "even" if (a + b) % 2 == 0 else "odd"}
"""

BIG = """
from pytest_replay import replay_trace


def build(n):
    return {
        f"customer-{i}": {
            "id": i,
            "name": f"Customer {i}",
            "balance": i * 1.25,
            "tags": ["a", "b", str(i % 7)],
            "address": {"street": f"{i} Main St", "zip": f"{i % 99999:05d}", "geo": [i / 3, i / 7]},
        }
        for i in range(n)
    }


@replay_trace
def report(n):
    return build(n)
"""


def expected_score(a: int, b: int) -> dict[str, Any]:
    return {"sum": a + b, "prod": a * b, "tag": "even" if (a + b) % 2 == 0 else "odd"}


def bench_items(workdir: Path, calls: int, repeat: int) -> float:
    (workdir / "smallfn.py").write_text(textwrap.dedent(SMALL))
    (workdir / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    sys.path.insert(0, str(workdir))
    import smallfn  # type: ignore[import-not-found]

    import pytest_replay

    with pytest_replay.recording(workdir / "cassettes", max_records=calls):
        for i in range(calls):
            smallfn.score(i, i + 1)
    cases = ",\n".join(f"    ({i}, {i + 1}, {expected_score(i, i + 1)!r})" for i in range(calls))
    (workdir / "test_cases.py").write_text(
        "import pytest\n\nfrom smallfn import score\n\nCASES = [\n"
        + cases
        + "\n]\n\n\n@pytest.mark.parametrize(('a', 'b', 'expected'), CASES)\n"
        "def test_score(a, b, expected):\n    assert score(a, b) == expected\n"
    )
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    commands = {
        "parametrize": [*base, "test_cases.py"],
        "replay": [*base, "--replay", "cassettes"],
    }
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    times: dict[str, float] = {name: float("inf") for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():  # interleaved: load changes hit both
            start = time.perf_counter()
            done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
            if done.returncode != 0 or f"{calls} passed" not in last:
                raise SystemExit(f"{name} run failed ({done.returncode}): {last}")
            times[name] = min(times[name], elapsed)
    ratio = times["replay"] / times["parametrize"]
    print(f"[items] {calls} cases, best of {repeat} wall-clock runs each")
    print(f"  parametrize baseline : {times['parametrize']:.2f} s")
    print(f"  pytest --replay      : {times['replay']:.2f} s")
    print(f"  ratio                : {ratio:.2f}x (target <= 1.3x) {verdict(ratio, 1.3)}")
    return ratio


def bench_big_output(workdir: Path, size_mb: float, repeat: int) -> tuple[float, float]:
    from pytest_replay import codec
    from pytest_replay.cassette import Cassette
    from pytest_replay.compare import compare_values
    from pytest_replay.replayer import Case, RecordView, execute, judge, prepare

    (workdir / "bigfn.py").write_text(textwrap.dedent(BIG))
    import bigfn  # type: ignore[import-not-found]

    per_entry = len(codec.dumps(bigfn.build(1000))) / 1000
    n = int(size_mb * 1_000_000 / per_entry)
    import pytest_replay

    with pytest_replay.recording(workdir / "big"):
        bigfn.report(n)
    path = next((workdir / "big").glob("*.cassette"))
    payload = next(Cassette.open(path).payloads())
    prepared = prepare(Case(path, 0, RecordView(payload)))
    run = execute(prepared, mode="programmatic")  # the real call: a fresh, equal value
    assert judge(prepared, run).ok
    expected = prepared.expected().value
    actual = run.value
    assert expected == actual
    assert expected is not actual
    size = len(prepared.case.record.encoded("result") or b"")

    gc.collect()
    t_eq = t_judge = t_compare = float("inf")
    for _ in range(repeat):  # interleaved, best of each: load changes hit all three
        t_eq = min(t_eq, best(lambda: expected == actual, 1))
        t_judge = min(t_judge, best(lambda: judge(prepared, run), 1))
        t_compare = min(t_compare, best(lambda: compare_values(expected, actual), 1))
    judge_ratio = t_judge / t_eq
    compare_ratio = t_compare / t_eq
    print(f"[fast path] unchanged output of {size / 1e6:.1f} MB encoded ({n} entries)")
    print(f"  == on the two values   : {t_eq * 1000:.1f} ms")
    print(
        f"  judge (replay item)    : {t_judge * 1000:.1f} ms  "
        f"ratio {judge_ratio:.2f}x (target <= 1.5x) {verdict(judge_ratio, 1.5)}"
    )
    print(
        f"  compare_values         : {t_compare * 1000:.1f} ms  "
        f"ratio {compare_ratio:.2f}x (target <= 1.5x) {verdict(compare_ratio, 1.5)}"
    )
    return judge_ratio, compare_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-mb", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        workdir = Path(tmp)
        bench_items(workdir, args.calls, args.repeat)
        bench_big_output(workdir, args.size_mb, max(args.repeat, 5))


if __name__ == "__main__":
    main()
