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
