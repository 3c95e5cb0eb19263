"""timeline.py: signatures, snapshots, faults and aligned divergence between traces."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay import codec
from pytest_replay.cassette import Cassette, CassetteError
from pytest_replay.history import Event, History
from pytest_replay.record import ErrorInfo, Record, record_id
from pytest_replay.timeline import (
    Snapshot,
    TimelineError,
    TraceIndexError,
    compare_traces,
    diff_directories,
    diff_traces,
    explain,
    first_fault,
    latest,
    snapshot_at,
    snapshot_window,
    timeline_signature,
    trace_length,
    trace_signature,
)

KEY = "shop.pricing.quote"


def rec(
    i: int,
    result: Any = None,
    *,
    key: str = KEY,
    error: str | None = None,
    duration: float = 1.0,
    children: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    args: list[Any] = [f"sku-{i}", i]
    kwargs: dict[str, Any] = {"currency": "EUR"}
    data: dict[str, Any] = {
        "id": record_id(key, codec.dumps([args, kwargs])),
        "key": key,
        "target": "shop.pricing:quote",
        "kind": "call",
        "args": args,
        "kwargs": kwargs,
    }
    if error is None:
        data["result"] = {"total": i * 10, "lines": [i, i + 1]} if result is None else result
    else:
        data["error"] = {"type": "builtins.ValueError", "message": error, "args": [error]}
    data["children"] = children or []
    data["boundary"] = False
    data["meta"] = {"duration_ms": duration, "nodeid": None}
    data["unreplayable"] = None
    return data


def trace(n: int) -> list[dict[str, Any]]:
    return [rec(i) for i in range(n)]


def write(path: Path, records: list[dict[str, Any]], key: str = KEY) -> Cassette:
    return Cassette.create(path, key, records)


# --------------------------------------------------------------------------- snapshots


def test_snapshot_at_gives_inputs_outcome_children_time_signature(tmp_path: Path) -> None:
    child = rec(99, key="shop.tax.rate", result=0.2)
    records = trace(5)
    records[3] = rec(3, children=[child], duration=7.5)
    cassette = write(tmp_path / "a.cassette", records)
    snap = snapshot_at(cassette, 3)
    assert snap.index == 3
    assert snap.label == KEY
    assert snap.record_id == records[3]["id"]
    assert snap.inputs == {"args": ["sku-3", 3], "kwargs": {"currency": "EUR"}}
    assert snap.outcome == {"result": {"total": 30, "lines": [3, 4]}}
    assert [c["key"] for c in snap.children] == ["shop.tax.rate"]
    assert snap.time == 3  # no recorded timestamp: the logical time
    assert snap.duration_ms == 7.5
    assert snap.fault is None
    assert not snap.raised
    # the state signature depends on the outcome only
    other = snapshot_at([rec(8, result={"total": 30, "lines": [3, 4]})], 0)
    assert other.signature == snap.signature
    assert snapshot_at(cassette, 2).signature != snap.signature
    text = "\n".join(snap.describe())
    assert "event 3: shop.pricing.quote" in text
    assert "children (1)" in text
    assert snap.to_jsonable()["outcome"] == {"result": {"total": 30, "lines": [3, 4]}}


def test_snapshot_uses_recorded_time_when_present() -> None:
    record = rec(0)
    record["meta"]["time"] = 1234.5
    assert snapshot_at([record], 0).time == 1234.5


def test_snapshot_at_same_for_cassette_path_maps_and_records(tmp_path: Path) -> None:
    records = trace(4)
    path = tmp_path / "a.cassette"
    write(path, records)
    objects = [Record.from_map(r) for r in records]
    views = [snapshot_at(t, 2) for t in (path, str(path), Cassette.open(path), records, objects)]
    assert all(v == views[0] for v in views)


@pytest.mark.parametrize("index", [5, 6, 100])
def test_snapshot_out_of_range_states_the_valid_range(tmp_path: Path, index: int) -> None:
    path = tmp_path / "a.cassette"
    write(path, trace(5))
    with pytest.raises(TraceIndexError, match=r"valid indices are 0\.\.4") as info:
        snapshot_at(path, index)
    assert str(path) in str(info.value)
    assert info.value.count == 5
    assert info.value.index == index
    assert isinstance(info.value, IndexError)


def test_snapshot_negative_index_is_out_of_range() -> None:
    with pytest.raises(TraceIndexError, match=r"event -1 is out of range.*0\.\.2"):
        snapshot_at(trace(3), -1)


def test_snapshot_of_empty_trace(tmp_path: Path) -> None:
    path = tmp_path / "e.cassette"
    write(path, [])
    with pytest.raises(TraceIndexError, match="the trace is empty"):
        snapshot_at(path, 0)
    assert latest(path) is None
    assert first_fault(path) is None
    assert trace_length(path) == 0


def test_snapshot_index_must_be_an_int() -> None:
    with pytest.raises(TypeError, match="must be an int"):
        snapshot_at(trace(2), "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an int"):
        snapshot_at(trace(2), True)


def test_snapshot_window_clips_at_the_edges() -> None:
    records = trace(6)
    assert [s.index for s in snapshot_window(records, 0, 2)] == [0, 1, 2]
    assert [s.index for s in snapshot_window(records, 3, 1)] == [2, 3, 4]
    assert [s.index for s in snapshot_window(records, 5, 2)] == [3, 4, 5]
    assert [s.index for s in snapshot_window(records, 4, 0)] == [4]
    with pytest.raises(ValueError, match="context must be >= 0"):
        snapshot_window(records, 1, -1)


@pytest.mark.parametrize(
    "bad",
    [42, {"id": "x"}, b"bytes", [rec(0), 7]],
    ids=["int", "mapping", "bytes", "mixed-list"],
)
def test_unusable_traces_are_refused(bad: Any) -> None:
    with pytest.raises(TimelineError):
        snapshot_at(bad, 0)


def test_a_directory_is_not_a_trace(tmp_path: Path) -> None:
    with pytest.raises(TimelineError, match="is a directory"):
        latest(tmp_path)


def test_missing_cassette_is_a_cassette_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no such file"):
        latest(tmp_path / "nope.cassette")


# --------------------------------------------------------------------------- faults


def test_first_fault_and_latest(tmp_path: Path) -> None:
    records = trace(8)
    records[5] = rec(5, error="boom")
    records[6] = rec(6, error="later")
    path = tmp_path / "a.cassette"
    write(path, records)
    fault = first_fault(path)
    assert fault is not None
    assert fault.index == 5
    assert fault.raised
    assert fault.fault == "raised builtins.ValueError: boom"
    last = latest(path)
    assert last is not None
    assert last.index == 7
    assert first_fault(trace(3)) is None


def test_first_fault_of_a_session_names_the_step() -> None:
    steps = [rec(0, key="app.Cart.add"), rec(1, key="app.Cart.remove", error="empty cart")]
    for step in steps:
        step["kind"] = "step"
    session = rec(0, key="app.Cart", result={"calls": 2, "snapshots": []}, children=steps)
    session["kind"] = "session"
    fault = first_fault([rec(1), session])
    assert fault is not None
    assert fault.index == 1
    assert fault.fault == "step 1 (app.Cart.remove) raised builtins.ValueError: empty cart"
    assert "steps (2)" in "\n".join(fault.describe())


def history_events() -> list[Event]:
    return [
        Event(0, 0, "invoke", "write", 1, time=10),
        Event(1, 0, "ok", "write", 1, time=20),
        Event(2, "nemesis", "info", "start-partition", None, time=25),
        Event(3, 1, "invoke", "cas", (1, 2), time=30),
        Event(4, 1, "fail", "cas", (1, 2), time=40, error="mismatch"),
        Event(5, 0, "invoke", "read", None, time=50),
        Event(6, 0, "info", "read", None, time=60, error="timeout"),
    ]


def test_first_fault_of_a_history_is_the_first_client_fail_or_info() -> None:
    events = history_events()
    fault = first_fault(events)
    assert fault is not None
    assert fault.index == 4  # the nemesis info op (index 2) is not a fault
    assert fault.kind == "fail"
    assert fault.label == "cas"
    assert fault.inputs["value"] == (1, 2)
    assert fault.time == 40
    assert "op 4 (cas by process 1) failed: 'mismatch'" == fault.fault
    assert first_fault(events[:4]) is None
    info_only = [e for e in events if e.index != 4]
    found = first_fault(info_only)
    assert found is not None
    assert found.kind == "info"
    assert "indeterminate" in (found.fault or "")
    last = latest(events)
    assert last is not None
    assert last.index == 6
    assert snapshot_at(events, 1).outcome == {"result": 1}


def test_history_object_is_a_trace() -> None:
    history = History()
    op = history.invoke("write", 3)
    history.fail(op, "rejected")
    fault = first_fault(history)
    assert fault is not None
    assert fault.kind == "fail"
    assert fault.label == "write"
    with pytest.raises(TraceIndexError, match=r"0\.\.1"):
        snapshot_at(history, 2)


# --------------------------------------------------------------------------- signatures


def test_trace_signature_matches_the_cassette_chain(tmp_path: Path) -> None:
    records = trace(6)
    cassette = write(tmp_path / "a.cassette", records)
    assert trace_signature(cassette) == cassette.signature()
    assert trace_signature(records) == cassette.signature()
    assert trace_signature([Record.from_map(r) for r in records]) == cassette.signature()


def test_trace_signature_changes_with_any_value() -> None:
    records = trace(6)
    changed = copy.deepcopy(records)
    changed[4]["result"]["lines"][1] += 1
    assert trace_signature(changed) != trace_signature(records)
    meta_only = copy.deepcopy(records)
    meta_only[0]["meta"]["duration_ms"] = 99.0
    assert trace_signature(meta_only) != trace_signature(records)


def test_mixed_key_and_history_signatures_are_stable() -> None:
    mixed = [rec(0), rec(1, key="other.key")]
    assert trace_signature(mixed) == trace_signature(copy.deepcopy(mixed))
    assert trace_signature(mixed) != trace_signature(mixed[:1])
    events = history_events()
    assert trace_signature(events) == trace_signature(list(events))
    assert trace_signature(events) != trace_signature(events[:-1])


def test_timeline_signature_ignores_values_not_order() -> None:
    records = [rec(0), rec(1, key="app.b"), rec(2, key="app.c")]
    values_changed = copy.deepcopy(records)
    values_changed[1]["result"] = "something else"
    values_changed[2]["args"] = ["other", 0]
    assert timeline_signature(values_changed) == timeline_signature(records)
    assert trace_signature(values_changed) != trace_signature(records)
    reordered = [records[0], records[2], records[1]]
    assert timeline_signature(reordered) != timeline_signature(records)
    assert timeline_signature(records[:2]) != timeline_signature(records)
    # the order of nested calls is part of the timeline
    a, b = rec(5, key="app.x"), rec(6, key="app.y")
    assert timeline_signature([rec(0, children=[a, b])]) != timeline_signature(
        [rec(0, children=[b, a])]
    )
    events = history_events()
    assert timeline_signature(events) != timeline_signature(events[1:])


# --------------------------------------------------------------------------- divergence


def test_identical_traces_have_no_divergence(tmp_path: Path) -> None:
    records = trace(20)
    a = write(tmp_path / "a.cassette", records)
    b = write(tmp_path / "b.cassette", records)
    result = compare_traces(a, b)
    assert result.identical
    assert result.divergences == ()
    assert (result.expected_count, result.actual_count) == (20, 20)
    assert next(iter(result.render())).startswith("identical:")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, 29), bit=st.integers(0, 62), field=st.sampled_from(["int", "bytes"]))
def test_single_flipped_bit_of_one_output_is_found_at_its_position(
    position: int, bit: int, field: str
) -> None:
    records = [
        rec(i, result={"total": i * 1000, "blob": bytes(range(i, i + 8))}) for i in range(30)
    ]
    flipped = copy.deepcopy(records)
    result = flipped[position]["result"]
    if field == "int":
        result["total"] ^= 1 << bit
    else:
        blob = bytearray(result["blob"])
        blob[bit % 8] ^= 1 << (bit % 8)
        result["blob"] = bytes(blob)
    points = diff_traces(records, flipped)
    assert len(points) == 1
    point = points[0]
    assert point.kind == "changed"
    assert point.position == position
    assert point.actual_position == position
    assert point.record_id == records[position]["id"]
    assert point.expected_hash is not None
    assert point.actual_hash is not None
    assert point.expected_hash != point.actual_hash
    assert f"result.{'total' if field == 'int' else 'blob'}" in point.detail


def test_flipped_bit_between_cassette_files(tmp_path: Path) -> None:
    records = trace(50)
    a = write(tmp_path / "a.cassette", records)
    records[17] = rec(17, result={"total": 170 ^ 4, "lines": [17, 18]})
    b = write(tmp_path / "b.cassette", records)
    result = compare_traces(a, b)
    assert [(p.kind, p.position) for p in result.divergences] == [("changed", 17)]
    assert "result.total: 170 → 174" in result.divergences[0].detail


@pytest.mark.parametrize("where", [0, 7, 19, 20])
def test_an_inserted_record_is_one_insertion(where: int) -> None:
    expected = trace(20)
    actual = copy.deepcopy(expected)
    extra = rec(500)
    actual.insert(where, extra)
    points = diff_traces(expected, actual)
    assert len(points) == 1
    point = points[0]
    assert point.kind == "inserted"
    assert point.position == where
    assert point.actual_position == where
    assert point.record_id == extra["id"]
    assert point.expected_hash is None
    assert point.actual_hash is not None
    assert "only in the actual trace" in point.detail
    assert "sku-500" in point.detail


@pytest.mark.parametrize("where", [0, 7, 19])
def test_a_deleted_record_is_one_deletion(where: int) -> None:
    expected = trace(20)
    actual = copy.deepcopy(expected)
    removed = actual.pop(where)
    points = diff_traces(expected, actual)
    assert len(points) == 1
    point = points[0]
    assert point.kind == "deleted"
    assert point.position == where
    assert point.actual_position is None
    assert point.record_id == removed["id"]
    assert point.actual_hash is None
    assert "missing from the actual trace" in point.detail


def test_insert_delete_and_change_together_are_aligned() -> None:
    expected = trace(30)
    actual = copy.deepcopy(expected)
    actual[25]["result"]["total"] = -1  # changed (position 25 in expected)
    del actual[10]  # deleted
    actual.insert(3, rec(777))  # inserted before expected #3
    points = diff_traces(expected, actual)
    assert [(p.kind, p.position, p.actual_position) for p in points] == [
        ("inserted", 3, 3),
        ("deleted", 10, None),
        ("changed", 25, 25),
    ]


def test_a_call_with_other_inputs_is_a_deletion_and_an_insertion() -> None:
    expected = trace(10)
    actual = copy.deepcopy(expected)
    actual[4] = rec(4)
    actual[4]["args"] = ["sku-4", 40]
    actual[4]["id"] = record_id(KEY, codec.dumps([actual[4]["args"], actual[4]["kwargs"]]))
    points = diff_traces(expected, actual)
    assert [(p.kind, p.position, p.actual_position) for p in points] == [
        ("deleted", 4, None),
        ("inserted", 4, 4),
    ]
    assert points[0].record_id == expected[4]["id"]
    assert points[1].record_id == actual[4]["id"]
    assert "'sku-4', 40" in points[1].detail


def test_maps_without_ids_align_by_key() -> None:
    expected = [{k: v for k, v in r.items() if k != "id"} for r in trace(6)]
    actual = copy.deepcopy(expected)
    actual[2]["result"] = "other"
    actual.insert(4, {**actual[0], "key": "app.extra"})
    points = diff_traces(expected, actual)
    assert [(p.kind, p.position) for p in points] == [("changed", 2), ("inserted", 4)]
    assert points[0].record_id is None


def test_meta_is_ignored_unless_asked_for() -> None:
    expected = trace(10)
    actual = copy.deepcopy(expected)
    for record in actual:
        record["meta"]["duration_ms"] = 42.0
    assert diff_traces(expected, actual) == []
    points = diff_traces(expected, actual, ignore_meta=False)
    assert [p.position for p in points] == list(range(10))
    assert "meta.duration_ms: 1.0 → 42.0" in points[0].detail


def test_an_error_instead_of_a_result_is_explained() -> None:
    expected = trace(5)
    actual = copy.deepcopy(expected)
    actual[2] = rec(2, error="went wrong")
    points = diff_traces(expected, actual)
    assert len(points) == 1
    assert "error: <missing> → " in points[0].detail
    assert "result: " in points[0].detail


def test_histories_diff_and_do_not_mix_with_records() -> None:
    events = history_events()
    changed = list(events)
    changed[4] = Event(4, 1, "ok", "cas", (1, 2), time=40)
    points = diff_traces(events, changed)
    assert [(p.kind, p.position) for p in points] == [("changed", 4)]
    assert "type: 'fail' → 'ok'" in points[0].detail
    with pytest.raises(TimelineError, match="cannot compare a history trace"):
        diff_traces(events, trace(3))


def test_render_caps_the_points_and_shows_first_first() -> None:
    expected = trace(40)
    actual = copy.deepcopy(expected)
    for record in actual[5:35]:
        record["result"]["total"] += 1
    result = compare_traces(expected, actual, expected_name="old", actual_name="new")
    lines = list(result.render(limit=3))
    assert lines[0].startswith("diverged: old -> new (40 vs 40 events): 30 divergence points")
    assert "first at #5" in lines[0]
    assert lines[1].startswith("  #5 changed")
    assert lines[-1] == "  ... and 27 more divergence points"
    assert result.counts() == {"changed": 30, "inserted": 0, "deleted": 0}


def test_torn_tail_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "a.cassette"
    write(path, trace(5))
    good = tmp_path / "b.cassette"
    write(good, trace(4))
    path.write_bytes(path.read_bytes()[:-5])
    result = compare_traces(good, path)
    assert result.identical  # the torn record is not part of the trace
    assert any("torn tail" in note for note in result.notes)
    assert any(line.startswith("note: ") for line in result.render())


def test_corrupt_cassette_raises_cassette_error(tmp_path: Path) -> None:
    path = tmp_path / "a.cassette"
    write(path, trace(5))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CassetteError, match="record"):
        diff_traces(path, trace(5))


def test_explain_limits_lines() -> None:
    text = explain({f"k{i}": i for i in range(20)}, {f"k{i}": -i for i in range(1, 21)}, limit=4)
    lines = text.splitlines()
    assert len(lines) == 5
    assert lines[-1].startswith("... and ")
    assert explain([1], [1]) == "no difference in content"


# --------------------------------------------------------------------------- directories


def test_directory_diff_pairs_by_key_and_lists_added_and_removed(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    write(old / "same.cassette", trace(3), key="app.same")
    write(new / "same-renamed.cassette", trace(3), key="app.same")  # pairs by key, not name
    write(old / "gone.cassette", trace(2), key="app.gone")
    write(new / "fresh.cassette", trace(2), key="app.fresh")
    changed = trace(4)
    write(old / "changed.cassette", changed, key=KEY)
    changed[2] = rec(2, result="new value")
    write(new / "changed.cassette", changed, key=KEY)
    (new / ".changed.cassette.123.tmp").write_bytes(b"junk")  # temp files are skipped
    result = diff_directories(old, new)
    assert not result.identical
    assert list(result.removed) == ["app.gone"]
    assert list(result.added) == ["app.fresh"]
    assert sorted(result.compared) == ["app.same", KEY]
    assert result.compared["app.same"].identical
    assert [p.position for p in result.compared[KEY].divergences] == [2]
    text = "\n".join(result.render())
    assert "removed key app.gone" in text
    assert "added key app.fresh" in text
    assert f"key {KEY}:" in text
    assert diff_directories(old, old).identical


def test_directory_diff_errors(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    write(a / "one.cassette", trace(1), key="dup")
    write(a / "two.cassette", trace(2), key="dup")
    with pytest.raises(TimelineError, match="key 'dup' is in two cassettes"):
        diff_directories(a, a)
    with pytest.raises(TimelineError, match="not a directory"):
        diff_directories(a, tmp_path / "missing")
    b = tmp_path / "b"
    b.mkdir()
    (b / "bad.cassette").write_bytes(b"not a cassette")
    with pytest.raises(CassetteError, match=r"bad\.cassette"):
        diff_directories(b, b)


def test_snapshot_dataclass_is_frozen() -> None:
    snap = snapshot_at(trace(1), 0)
    assert isinstance(snap, Snapshot)
    with pytest.raises(AttributeError):
        snap.index = 3  # type: ignore[misc]


def test_error_info_round_trip_in_snapshot() -> None:
    snap = snapshot_at([rec(0, error="bad")], 0)
    info = ErrorInfo.from_map(snap.outcome["error"])
    assert info.type == "builtins.ValueError"
    assert info.message == "bad"


def test_describe_steps_needs_a_session_and_a_valid_step() -> None:
    with pytest.raises(TimelineError, match="not a session: it has no steps"):
        snapshot_at(trace(1), 0).describe_steps()
    steps = [rec(0, key="app.Cart.add"), rec(1, key="app.Cart.add")]
    session = rec(
        0,
        key="app.Cart",
        result={"calls": 2, "snapshots": [{"at": 1, "state": {}}]},
        children=steps,
    )
    session["kind"] = "session"
    snap = snapshot_at([session], 0)
    lines = snap.describe_steps(1, context=0)
    assert lines[1] == "  2 steps; state snapshots before steps: 1"
    assert lines[-1].startswith("  >    1 | add('sku-1', 1, currency='EUR') -> ")
    with pytest.raises(TraceIndexError, match=r"step 2 is out of range, valid steps are 0\.\.1"):
        snap.describe_steps(2)


def make_session(calls: list[tuple[str, int, Any]], ctor: list[Any]) -> dict[str, Any]:
    steps = []
    for method, arg, result in calls:
        step = rec(arg, key=f"app.Cart.{method}", result=result)
        step["kind"] = "step"
        steps.append(step)
    session = rec(0, key="app.Cart", result={"calls": len(steps), "snapshots": []}, children=steps)
    session.update(kind="session", args=ctor, id="5e55105e55105e55")
    return session


def test_two_versions_of_a_session_diff_step_by_step() -> None:
    old = make_session([("add", 1, 1), ("add", 2, 3), ("total", 0, 3)], ctor=[10])
    new = make_session([("add", 1, 1), ("add", 5, 6), ("add", 2, 8), ("total", 0, 8)], ctor=[10])
    (point,) = diff_traces([old], [new])
    assert point.kind == "changed"
    lines = point.detail.splitlines()
    assert lines[0] == "steps: 3 vs 4, 3 divergence points, first at step 1:"
    assert lines[1].startswith("  #1 inserted: record ")
    assert lines[2] == "      new: add('sku-5', 5, currency='EUR') -> 6"
    assert lines[4].startswith("  #1 (actual #2) changed: record ")
    assert lines[5] == "      recorded: add('sku-2', 2, currency='EUR') -> 3"
    assert lines[6] == "      result: 3 → 8"
    assert lines[7].startswith("  #2 (actual #3) changed: record ")
    assert "session outcome (calls, state snapshots) differs:" in lines
    assert "  result.calls: 3 → 4" in lines
    # another constructor call is another session
    other = make_session([("add", 1, 1)], ctor=[12])
    assert [p.kind for p in diff_traces([old], [other])] == ["deleted", "inserted"]
