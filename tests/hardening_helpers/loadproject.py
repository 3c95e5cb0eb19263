"""The test project recorded by the load test and benchmarks/bench_load.py.

``write_project(dir, calls)`` writes a pytest project whose 8 tests each start
8 threads; thread ``t`` calls its own traced function ``load.worker<t>`` (so
the order of each cassette is that thread's program order) and every thread
also calls the shared ``load.shared`` (whose order within a test is decided by
the scheduler). Every 10th call is made twice, to exercise deduplication.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

TESTS = 8
THREADS = 8

_PROJECT = """
import threading

import pytest

from pytest_replay import replay_trace

TESTS = {tests}
THREADS = {threads}
CALLS = {calls_per_thread}


def _worker(t):
    @replay_trace(key=f"load.worker{{t}}")
    def work(test, i, payload):
        return {{"product": test * i, "echo": payload, "thread": t}}

    return work


WORKERS = [_worker(t) for t in range(THREADS)]


@replay_trace(key="load.shared")
def shared(test, thread, i):
    return [test, thread, i]


@pytest.mark.parametrize("test", range(TESTS))
def test_load(test):
    errors = []

    def run(t):
        try:
            work = WORKERS[t]
            for i in range(CALLS):
                out = work(test, i, f"p{{test}}-{{t}}-{{i}}")
                assert out == {{"product": test * i, "echo": f"p{{test}}-{{t}}-{{i}}", "thread": t}}
                if i % 10 == 0:  # the same call again: counted, not stored
                    work(test, i, f"p{{test}}-{{t}}-{{i}}")
                if i % 50 == 0:
                    shared(test, t, i)
        except BaseException as exc:  # reported below: a thread must not fail silently
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
"""


def calls_per_thread(total_calls: int) -> int:
    return max(1, total_calls // (TESTS * THREADS))


def expected(total_calls: int) -> dict[str, int]:
    """Distinct records per key and the number of repeated calls."""
    per_thread = calls_per_thread(total_calls)
    repeats = TESTS * THREADS * len(range(0, per_thread, 10))
    shared = TESTS * THREADS * len(range(0, per_thread, 50))
    counts = {f"load.worker{t}": TESTS * per_thread for t in range(THREADS)}
    counts["load.shared"] = shared
    counts["__repeats__"] = repeats
    counts["__calls__"] = TESTS * THREADS * per_thread + repeats + shared
    return counts


def write_project(directory: Path, total_calls: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    source = _PROJECT.format(
        tests=TESTS, threads=THREADS, calls_per_thread=calls_per_thread(total_calls)
    )
    (directory / "test_load.py").write_text(source)
    (directory / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")


def run_pytest(
    directory: Path, args: Sequence[str], *, timeout: float = 300.0
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run pytest in ``directory`` in a fresh interpreter; returns (process, seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    start = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return process, time.perf_counter() - start
