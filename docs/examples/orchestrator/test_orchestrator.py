"""The orchestrator example: its behaviour, its invariants, and its recorded sessions.

Run from this directory: ``python -m pytest -q``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator import DEAD_LETTER, RETRY, Orchestrator, OrchestratorError
from record_sessions import DAYS, record
from scenario import run_day

from pytest_replay.cassette import Cassette
from pytest_replay.session import SessionReplayer, capture_sessions, run_session_record

CASSETTE = Path(__file__).parent / "cassettes" / "orchestrator.Orchestrator.cassette"


# --------------------------------------------------------------------------- behaviour


def test_submit_is_idempotent_and_numbers_batches() -> None:
    o = Orchestrator()
    assert o.submit("order-1", ["a"]) == {"batch": "b0001", "seq": 1, "duplicate": False}
    assert o.submit("order-2", ["b"]) == {"batch": "b0002", "seq": 2, "duplicate": False}
    assert o.submit("order-1", ["other"]) == {"batch": "b0001", "seq": 1, "duplicate": True}
    with pytest.raises(OrchestratorError, match="at least one item"):
        o.submit("order-3", [])
    assert o.valid()


def test_in_flight_limit_is_backpressure() -> None:
    o = Orchestrator(max_in_flight=2)
    for n in range(5):
        o.submit(f"k{n}", ["x"])
    assert o.dispatch() == ["b0001", "b0002"]
    assert o.dispatch() == []  # full: the rest waits, in order
    o.complete("b0001")
    assert o.dispatch() == ["b0003"]
    assert o.status()["queued"] == 2
    assert o.valid()


def test_retries_then_dead_letter_after_max_attempts() -> None:
    o = Orchestrator(max_in_flight=1, max_attempts=3)
    o.submit("k", ["x"])
    decisions = []
    for _ in range(3):
        (batch,) = o.dispatch()
        decisions.append(o.fail(batch, "timeout"))
    assert decisions == [RETRY, RETRY, DEAD_LETTER]
    assert o.dead_letter == ["b0001"]
    assert o.batches["b0001"]["errors"] == ["timeout"] * 3
    assert o.valid()
    assert o.requeue("b0001") == 1
    assert o.dispatch() == ["b0001"]
    with pytest.raises(OrchestratorError, match="not in the dead-letter queue"):
        o.requeue("b0001")


def test_a_retried_batch_keeps_its_place_in_sequence() -> None:
    o = Orchestrator(max_in_flight=1)
    for n in range(3):
        o.submit(f"k{n}", ["x"])
    o.dispatch()
    o.fail("b0001", "timeout")
    assert o.queue == ["b0001", "b0002", "b0003"]


def test_pause_stops_dispatch_until_resume() -> None:
    o = Orchestrator()
    o.submit("k", ["x"])
    assert o.pause() is True
    assert o.pause() is False
    assert o.dispatch() == []
    assert o.resume() == ["b0001"]


def test_complete_or_fail_needs_a_batch_in_flight() -> None:
    o = Orchestrator()
    o.submit("k", ["x"])
    with pytest.raises(OrchestratorError, match="b0001 is not in flight \\(it is queued\\)"):
        o.complete("b0001")
    with pytest.raises(OrchestratorError, match="unknown batch b0042"):
        o.fail("b0042", "x")


def test_signature_is_stable_and_sensitive() -> None:
    a, b = Orchestrator(), Orchestrator()
    for o in (a, b):
        o.submit("k", ["x"])
    assert a.signature() == b.signature()
    b.dispatch()
    assert a.signature() != b.signature()


def test_invariants_hold_all_day() -> None:
    for day in DAYS:
        o = Orchestrator(day["max_in_flight"], max_attempts=day["max_attempts"])
        assert run_day(o, seed=day["seed"]) == []
        assert o.problems() == []


def test_problems_are_reported() -> None:
    o = Orchestrator(max_in_flight=1)
    o.submit("k", ["x"])
    o.in_flight.append("b0001")  # corrupt the state behind its back
    assert "b0001 is queued but listed in ['queued', 'running']" in o.problems()
    assert not o.valid()


# --------------------------------------------------------------------------- sessions


def test_a_recorded_day_replays(tmp_path: Path) -> None:
    with capture_sessions() as capture:
        run_day(Orchestrator(2, max_attempts=3), seed=7)
    (path,) = capture.write(tmp_path)
    (session,) = Cassette.open(path).records()
    assert session["kind"] == "session"
    outcome = run_session_record(session)
    assert outcome.ok, outcome.text
    assert outcome.replayed == len(session["children"])


def test_the_committed_sessions_still_replay() -> None:
    sessions = list(Cassette.open(CASSETTE).records())
    assert len(sessions) == len(DAYS)
    for session in sessions:
        outcome = run_session_record(session, cassette=str(CASSETTE))
        assert outcome.ok, outcome.text


def test_the_committed_cassette_is_what_record_sessions_writes(tmp_path: Path) -> None:
    written = record(tmp_path)
    assert written.read_bytes() == CASSETTE.read_bytes()


def test_time_travel_to_a_step() -> None:
    session = next(iter(Cassette.open(CASSETTE).records()))
    replayer = SessionReplayer(session)
    start = replayer.seek(60)  # restores the snapshot before step 50
    assert start == 50
    while replayer.position < 60:
        assert replayer.step().matched
    assert replayer.instance.valid()
