"""The orchestrator walkthrough (docs/orchestrator.md) does what it says.

A bug in the retry policy, applied with monkeypatch, is caught by replaying the
committed sessions at the exact step where the recorded decision was made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_replay.cassette import Cassette
from pytest_replay.session import SessionReplayer, run_session_record
from pytest_replay.timeline import compare_traces, first_fault

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "orchestrator"
CASSETTE = EXAMPLE / "cassettes" / "orchestrator.Orchestrator.cassette"


@pytest.fixture
def orchestrator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import orchestrator

    return orchestrator


def sessions() -> list[dict[str, Any]]:
    return list(Cassette.open(CASSETTE).records())


def off_by_one(attempts: int, max_attempts: int) -> str:
    """The deliberate bug: one retry too many (``>`` where ``>=`` was meant)."""
    return "dead-letter" if attempts > max_attempts else "retry"


def first_dead_letter(session: dict[str, Any]) -> int:
    """Where the recording first decided to dead-letter a batch: the step the bug changes."""
    return next(
        index
        for index, step in enumerate(session["children"])
        if step["key"].endswith(".fail") and step.get("result") == "dead-letter"
    )


def test_committed_sessions_replay_clean(orchestrator: ModuleType) -> None:
    for session in sessions():
        outcome = run_session_record(session)
        assert outcome.ok, outcome.text


def test_retry_bug_is_caught_at_the_exact_step(
    orchestrator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orchestrator, "retry_decision", off_by_one)
    for session in sessions():
        expected_step = first_dead_letter(session)
        step = session["children"][expected_step]
        outcome = run_session_record(session, cassette=str(CASSETTE))
        assert not outcome.ok
        point = outcome.divergence
        assert point is not None
        assert point.index == expected_step
        assert point.method == "fail"
        batch, reason = step["args"]
        assert point.call == f"fail({batch!r}, {reason!r})"
        assert point.expected.value == "dead-letter"
        assert point.actual.value == "retry"
        assert outcome.last_match is not None
        assert outcome.last_match.index == expected_step - 1
        assert f"diverged at step {expected_step} of {len(session['children'])} steps" in (
            outcome.text
        )
        assert "  expected:  returned 'dead-letter'" in outcome.text
        assert "  actual:    returned 'retry'" in outcome.text


def test_replay_from_a_snapshot_finds_the_same_step(
    orchestrator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = sessions()[0]
    expected_step = first_dead_letter(session)
    monkeypatch.setattr(orchestrator, "retry_decision", off_by_one)
    replayer = SessionReplayer(session)
    snapshot = replayer.nearest_snapshot(expected_step)
    assert 0 < snapshot <= expected_step
    outcome = replayer.replay_from(expected_step)
    assert outcome.started_at == snapshot
    assert outcome.divergence is not None
    assert outcome.divergence.index == expected_step
    assert outcome.replayed == expected_step - snapshot + 1


def test_a_buggy_recording_diffs_against_the_committed_one(
    orchestrator: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(orchestrator, "retry_decision", off_by_one)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from record_sessions import record

    buggy = record(tmp_path)
    result = compare_traces(CASSETTE, buggy)
    assert [p.kind for p in result.divergences] == ["changed"] * 3
    first = result.divergences[0]
    step = first_dead_letter(sessions()[0])
    assert first.position == 0
    # the two sessions' steps are aligned: the first divergent step is the one the bug changed
    assert f"divergence points, first at step {step}:" in first.detail
    detail = first.detail.splitlines()
    at = next(i for i, line in enumerate(detail) if line.strip().startswith(f"#{step} changed"))
    assert detail[at + 1].strip().startswith("recorded: fail(")
    assert detail[at + 2].strip() == "result: 'dead-letter' → 'retry'"


def test_first_fault_of_the_committed_cassette() -> None:
    fault = first_fault(CASSETTE)
    assert fault is not None
    assert fault.index == 0
    assert fault.fault_step is not None
    assert "unknown batch b9999" in (fault.fault or "")


def test_the_examples_own_tests_pass(tmp_path: Path) -> None:
    copy = tmp_path / "orchestrator"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "13 passed" in proc.stdout
