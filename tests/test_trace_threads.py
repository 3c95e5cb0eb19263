"""Recording from many threads at once loses nothing and stores nothing twice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pytest_replay import codec
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.trace import RecordingSession, replay_trace

THREADS = 8
CALLS = 2_000


@replay_trace(key="test_trace_threads.square")
def square(worker: int, i: int) -> int:
    return i * i + worker


def hammer(barrier: threading.Barrier, worker: int) -> None:
    barrier.wait()
    for i in range(CALLS):
        square(worker, i)
        if i % 500 == 0:
            square(worker, 0)  # a repeat: counted, not stored


@pytest.mark.parametrize("inside_a_test", [False, True], ids=["no-test", "inside-a-test"])
def test_eight_threads_two_thousand_distinct_calls_each(
    tmp_path: Path, inside_a_test: bool
) -> None:
    session = RecordingSession(tmp_path, max_records=THREADS * CALLS).start()
    try:
        if inside_a_test:
            session.begin_test(0, "test_x.py::test_threads")
        barrier = threading.Barrier(THREADS)
        threads = [threading.Thread(target=hammer, args=(barrier, w)) for w in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if inside_a_test:
            session.end_test(failed=False)
    finally:
        session.stop()
    report = session.flush()
    assert not report.errors
    assert report.new == THREADS * CALLS
    assert report.duplicates == THREADS * (CALLS // 500)
    path = cassette_path(tmp_path, "test_trace_threads.square")
    cassette = Cassette.open(path)
    assert cassette.verify().ok
    seen = [tuple(codec.decode(raw["args"])) for raw in cassette.records()]  # type: ignore[arg-type]
    assert len(seen) == THREADS * CALLS
    assert set(seen) == {(w, i) for w in range(THREADS) for i in range(CALLS)}


def _record_interleaving(directory: Path, first: int) -> bytes:
    """Two worker threads of one test call ``square``; ``first`` decides which goes first."""
    session = RecordingSession(directory, durations=False).start()
    try:
        session.begin_test(0, "test_x.py::test_pool")
        square(99, 1)  # the test's own thread: keeps its call order, before the workers
        turns = [threading.Event(), threading.Event()]

        def worker(number: int) -> None:
            turns[number].wait()
            for i in range(3):
                square(number, i)
            turns[1 - number].set()

        threads = [threading.Thread(target=worker, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        turns[first].set()
        for thread in threads:
            thread.join()
        session.end_test()
    finally:
        session.stop()
    session.flush()
    return cassette_path(directory, "test_trace_threads.square").read_bytes()


def test_calls_from_other_threads_do_not_depend_on_the_interleaving(tmp_path: Path) -> None:
    zero_first = _record_interleaving(tmp_path / "a", first=0)
    one_first = _record_interleaving(tmp_path / "b", first=1)
    assert zero_first == one_first
    path = cassette_path(tmp_path / "a", "test_trace_threads.square")
    records = list(Cassette.open(path).records())
    assert records[0]["args"] == [99, 1], "the test thread's own call comes first"
    worker_ids = [r["id"] for r in records[1:]]
    assert worker_ids == sorted(worker_ids), "worker-thread calls sort by record id"
    assert len(worker_ids) == 6
