"""``pytest_replay.replay(...)``: the replay machinery outside pytest, and the pure helpers."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pytest_replay
from pytest_replay import codec
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.record import Record, record_id
from pytest_replay.replayer import (
    Case,
    RecordView,
    ReplaySummary,
    apply_changes,
    item_names,
    iter_cassette,
)

MODULE = """
import asyncio
import threading
import time

import pytest_replay
from pytest_replay import replay_trace

state = {"now": 0, "max": 0}
lock = threading.Lock()


def _enter():
    with lock:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])


def _leave():
    with lock:
        state["now"] -= 1


@replay_trace(boundary=True)
def llm(prompt):
    raise RuntimeError("no model during a replay")


def _tokens(info):
    return {"tokens": len(str(info.result)), "model": "fake-1"}


@replay_trace(metadata=_tokens)
def answer(question):
    _enter()
    try:
        time.sleep(0.05)
        ctx = pytest_replay.replay_context()
        return {"text": llm("Q: " + question), "mode": ctx.mode if ctx else None}
    finally:
        _leave()


@replay_trace
async def aanswer(question):
    _enter()
    try:
        await asyncio.sleep(0.05)
        return question.upper()
    finally:
        _leave()


@replay_trace(resources={"conn": "db"})
def lookup(conn, sku):
    return conn[sku]
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "replay_app.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("replay_app", None)
    import replay_app  # type: ignore[import-not-found]

    yield replay_app
    sys.modules.pop("replay_app", None)


def rec(
    fn: Any,
    args: tuple[Any, ...],
    *,
    result: Any,
    children: list[Record] | None = None,
    meta: dict[str, Any] | None = None,
) -> Record:
    spec = fn.__replay_spec__
    cargs, ckwargs = spec.bind(args, {})
    return Record(
        id=record_id(spec.key, codec.dumps([cargs, ckwargs])),
        key=spec.key,
        target=spec.target,
        args=cargs,
        kwargs=ckwargs,
        result=result,
        children=children or [],
        boundary=spec.boundary,
        meta=meta or {},
    )


def answer_record(
    app: Any, question: str, text: str, *, expected_text: str | None = None
) -> Record:
    child = rec(app.llm, ("Q: " + question,), result=text)
    result = {"text": expected_text or text, "mode": "programmatic"}
    meta = {"duration_ms": 812.5, "user": {"tokens": 42, "model": "fake-0"}}
    return rec(app.answer, (question,), result=result, children=[child], meta=meta)


def write(directory: Path, records: list[Record]) -> Path:
    path = cassette_path(directory, records[0].key)
    Cassette.create(path, records[0].key, [r.to_map() for r in records])
    return path


def test_replay_returns_inputs_outputs_durations_metadata_and_diff(
    app: Any, tmp_path: Path
) -> None:
    records = [
        answer_record(app, "a", "alpha"),
        answer_record(app, "b", "beta", expected_text="BETA"),
    ]
    write(tmp_path, records)
    results = pytest_replay.replay(app.answer, cassette_dir=tmp_path)
    assert [r.status for r in results] == ["matched", "diverged"]
    first, second = results
    assert first.inputs == {"question": "a"}
    assert first.result == {"text": "alpha", "mode": "programmatic"}
    assert first.original == first.result
    assert first.error is None
    assert first.recorded_duration_ms == 812.5
    assert first.duration_ms is not None
    assert 40 <= first.duration_ms < 5000
    assert first.metadata == {"tokens": 42, "model": "fake-0"}
    assert first.diff == ()
    assert [d.line() for d in second.diff] == ["text: 'BETA' → 'beta'"]
    assert "text: 'BETA' → 'beta'" in str(second)
    assert str(first).startswith("replay_app.answer [")
    # by key, too
    assert [r.status for r in pytest_replay.replay("replay_app.answer", tmp_path)] == [
        "matched",
        "diverged",
    ]


def test_limit_and_ids_select_records(app: Any, tmp_path: Path) -> None:
    records = [answer_record(app, q, q * 2) for q in "abcdefg"]
    write(tmp_path, records)
    assert len(pytest_replay.replay(app.answer, tmp_path)) == 5  # default limit
    assert len(pytest_replay.replay(app.answer, tmp_path, limit=2)) == 2
    assert len(pytest_replay.replay(app.answer, tmp_path, limit=None)) == 7
    chosen = pytest_replay.replay(app.answer, tmp_path, ids=[records[6].id[:6], records[1].id])
    assert [r.record_id for r in chosen] == [records[1].id, records[6].id]
    with pytest.raises(ValueError, match="no record with id 'ffff'"):
        pytest_replay.replay(app.answer, tmp_path, ids=["ffff"])


@pytest.mark.parametrize("limit", [1, 3])
def test_sync_targets_run_on_threads_within_max_concurrency(
    app: Any, tmp_path: Path, limit: int
) -> None:
    write(tmp_path, [answer_record(app, q, q) for q in "abcdef"])
    results = pytest_replay.replay(app.answer, tmp_path, limit=None, max_concurrency=limit)
    assert all(r.matched for r in results)
    assert app.state["max"] == limit


def test_async_targets_run_as_tasks_within_max_concurrency(app: Any, tmp_path: Path) -> None:
    write(tmp_path, [rec(app.aanswer, (q,), result=q.upper()) for q in "abcdef"])
    results = pytest_replay.replay(app.aanswer, tmp_path, limit=None, max_concurrency=4)
    assert [r.result for r in results] == list("ABCDEF")
    assert app.state["max"] == 4


def test_resources_are_passed_by_name(app: Any, tmp_path: Path) -> None:
    write(tmp_path, [rec(app.lookup, (None, "A"), result=3)])
    [missing] = pytest_replay.replay(app.lookup, tmp_path)
    assert missing.status == "unreplayable"
    assert "parameter 'conn' is a resource (fixture 'db')" in missing.text
    [by_param] = pytest_replay.replay(app.lookup, tmp_path, resources={"conn": {"A": 3}})
    [by_fixture] = pytest_replay.replay(app.lookup, tmp_path, resources={"db": {"A": 4}})
    assert by_param.matched
    assert not by_fixture.matched


def test_unreplayable_records_are_results_not_exceptions(app: Any, tmp_path: Path) -> None:
    bad = rec(app.answer, (codec.Opaque("socket.socket", "<socket>"),), result=None)
    write(tmp_path, [bad])
    [result] = pytest_replay.replay(app.answer, tmp_path)
    assert result.status == "unreplayable"
    assert "opaque socket.socket" in str(result.error)


def test_bad_arguments_are_clear(app: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no cassette for key 'replay_app\.answer'"):
        pytest_replay.replay(app.answer, tmp_path)
    with pytest.raises(TypeError, match="decorated with @replay_trace or its key"):
        pytest_replay.replay(len, tmp_path)
    with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
        pytest_replay.replay(app.answer, tmp_path, max_concurrency=0)
    with pytest.raises(ValueError, match="limit must be None or a non-negative int"):
        pytest_replay.replay(app.answer, tmp_path, limit=-1)


def test_replay_context_is_none_outside() -> None:
    assert pytest_replay.replay_context() is None


# --------------------------------------------------------------------------- pure helpers


def make_records(n: int) -> list[Record]:
    return [
        Record(
            id=record_id("m.f", codec.dumps([[i], {}])),
            key="m.f",
            target="m:f",
            args=[i],
            kwargs={},
            result=i,
        )
        for i in range(n)
    ]


def test_apply_changes_updates_and_removes_atomically(tmp_path: Path) -> None:
    records = make_records(3)
    path = write(tmp_path, records)
    before = list(Cassette.open(path).payloads())
    new_payload = codec.dumps({**records[1].to_map(), "result": 99})
    report = apply_changes(path, {records[1].id: new_payload}, [records[2].id])
    assert (report.updated, report.removed, report.deleted, report.error) == (1, 1, False, None)
    after = list(Cassette.open(path).payloads())
    assert after == [before[0], new_payload]
    assert apply_changes(path, {"0" * 16: b""}).missing == ("0" * 16,)


def test_apply_changes_leaves_a_corrupt_cassette_alone(tmp_path: Path) -> None:
    path = write(tmp_path, make_records(2))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    report = apply_changes(path, {}, [make_records(1)[0].id])
    assert report.error is not None
    assert "record 1" in report.error
    assert path.read_bytes() == bytes(data)


def test_record_view_reads_scalars_and_keeps_values_as_bytes() -> None:
    record = make_records(1)[0]
    payload = codec.dumps(record.to_map())
    view = RecordView(payload)
    assert (view.id, view.key, view.target, view.kind, view.boundary) == (
        record.id,
        "m.f",
        "m:f",
        "call",
        False,
    )
    assert view.encoded("result") == codec.dumps(0)
    assert view.decoded("args") == [0]
    assert view.raw("missing", "dflt") == "dflt"
    with pytest.raises(ValueError, match="not a record map"):
        RecordView(codec.dumps([1, 2]))
    with pytest.raises(ValueError, match="no 'id' or 'key'"):
        RecordView(codec.dumps({"key": "k"}))


def test_iter_cassette_reports_bad_records_and_keeps_going(tmp_path: Path) -> None:
    records = make_records(2)
    path = cassette_path(tmp_path, "m.f")
    Cassette.create(path, "m.f", [records[0].to_map(), {"nonsense": 1}, records[1].to_map()])
    entries = list(iter_cassette(path))
    assert [type(e).__name__ for e in entries] == ["Case", "CassetteProblem", "Case"]
    assert "record 1: the record map has no 'id' or 'key'" in entries[1].message  # type: ignore[union-attr]


def test_item_names_are_short_unique_and_stable(tmp_path: Path) -> None:
    def case(rid: str) -> Case:
        payload = codec.dumps({"id": rid, "key": "pkg.mod.quote"})
        return Case(tmp_path, 0, RecordView(payload))

    names = item_names(
        [
            case("aaaaaaaa11111111"),
            case("aaaaaaaa22222222"),
            case("bbbbbbbb00000000"),
            case("bbbbbbbb00000000"),
        ]
    )
    assert names == [
        "quote[aaaaaaaa11111111]",
        "quote[aaaaaaaa22222222]",
        "quote[bbbbbbbb00000000]",
        "quote[bbbbbbbb00000000-2]",
    ]
    assert item_names([case("cccccccc00000000")]) == ["quote[cccccccc]"]


def test_summary_lines() -> None:
    summary = ReplaySummary()
    summary.add("matched", "a")
    summary.add("diverged", "b")
    summary.add("unreplayable", "c", reason="opaque input")
    summary.add("unreplayable", "d", reason="opaque input")
    summary.add("nondeterministic", "e", detail="id")
    summary.notes.extend(["note", "note"])
    assert list(summary.lines()) == [
        "3 replayed: 1 matched, 1 diverged, 0 updated, 1 non-deterministic; 2 unreplayable",
        "  unreplayable: c (and 1 more): opaque input",
        "  non-deterministic: e: id",
        "note",
    ]
    assert list(ReplaySummary().lines()) == []
