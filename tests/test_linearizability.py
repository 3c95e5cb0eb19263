"""check_linearizable / assert_linearizable: semantics, results, counterexamples, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unittest
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_replay import models
from pytest_replay.history import Event, History, HistoryFormatError, Keyword
from pytest_replay.linearizability import (
    UNKNOWN,
    CheckResult,
    Inconsistent,
    LinearizabilityWarning,
    ModelError,
    NotLinearizableError,
    OneOf,
    Operation,
    assert_linearizable,
    check_linearizable,
)

Row = tuple[Any, ...]


def events(*rows: Row) -> list[Event]:
    """Events from rows ``(process, type, f, value[, key])``, indexed in order."""
    out = []
    for n, row in enumerate(rows):
        process, etype, f, value = row[:4]
        key = row[4] if len(row) > 4 else None
        out.append(Event(n, process, etype, f, value, key=key))
    return out


def verdict(rows: list[Event], model: Any = "cas-register", **kw: Any) -> str:
    return check_linearizable(rows, model, **kw).verdict


def valid_order(result: CheckResult, evs: list[Event], model: Any) -> bool:
    """An independent check of a returned linearization: real time and the model."""
    order = result.linearization or []
    where = {o.id: n for n, o in enumerate(order)}
    for a in order:
        for b in order:
            if a.ret is not None and a.ret < b.call and where[a.id] > where[b.id]:
                return False
    m = models.get(model) if isinstance(model, str) else model
    m = m.for_conventions(result.conventions) if hasattr(m, "for_conventions") else m
    state = m.init()
    for o in order:
        state = m.step(state, o)
        if isinstance(state, Inconsistent):
            return False
    return True


# ----------------------------------------------------------------------------- semantics


def test_sequential_register_is_ok_and_a_stale_read_is_not() -> None:
    ok = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(ok) == "ok"
    stale = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (0, "invoke", "write", 2),
        (0, "ok", "write", 2),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(stale) == "illegal"


@pytest.mark.parametrize("seen", [None, 1])
def test_a_read_concurrent_with_a_write_may_see_either_value(seen: Any) -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", seen),
        (0, "ok", "write", 1),
    )
    assert verdict(evs, conventions="porcupine") == "ok"


@pytest.mark.parametrize("seen", [None, 1])
def test_a_crashed_write_may_or_may_not_have_happened(seen: Any) -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (0, "info", "write", Keyword("timed-out")),
        (1, "invoke", "read", None),
        (1, "ok", "read", seen),
    )
    assert verdict(evs, conventions="porcupine") == "ok"


def test_a_crashed_write_takes_effect_at_most_once() -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "write", 2),
        (1, "info", "write", None),
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
    )
    assert verdict(evs) == "illegal"


def test_a_crashed_write_cannot_take_effect_before_its_invoke() -> None:
    evs = events(
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
        (1, "invoke", "write", 2),
        (1, "info", "write", None),
    )
    assert verdict(evs, conventions="porcupine") == "illegal"


def test_an_op_pending_at_the_end_is_an_unknown_outcome() -> None:
    evs = events((0, "invoke", "write", 7), (1, "invoke", "read", None), (1, "ok", "read", 7))
    result = check_linearizable(evs, "register")
    assert result.verdict == "ok"
    assert [o.f for o in result.linearization or []] == ["write", "read"]
    assert result.linearization is not None
    assert result.linearization[0].result is UNKNOWN


def test_an_unknown_result_is_not_none() -> None:
    # under porcupine a nil read is legal only before any write: a *known* None is checked ...
    known = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    assert verdict(known, conventions="porcupine") == "illegal"
    # ... while a read whose result is unknown constrains nothing
    unknown = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "info", "read", None),
    )
    result = check_linearizable(unknown, "cas-register", conventions="porcupine")
    assert result.verdict == "ok"
    assert result.oplist is not None
    assert [why for _, why in result.oplist.ignored] == [
        "info (crashed); has no effect, so it cannot matter"
    ]


def test_failed_ops_under_each_convention() -> None:
    # a failed CAS while the register holds `from`: Knossos drops it, Porcupine says it
    # would have succeeded
    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "cas", (1, 2)),
        (1, "fail", "cas", (1, 2)),
    )
    assert verdict(evs, conventions="knossos") == "ok"
    assert verdict(evs, conventions="porcupine") == "illegal"
    # a failed write did not happen under both
    write = events(
        (0, "invoke", "write", 1),
        (0, "fail", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(write, conventions="knossos") == "illegal"
    assert verdict(write, conventions="porcupine") == "illegal"


def test_a_timed_out_failed_read_has_an_unknown_result_under_porcupine() -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "fail", "read", Keyword("timed-out")),
    )
    result = check_linearizable(evs, "cas-register", conventions="porcupine")
    assert result.verdict == "ok"
    assert result.oplist is not None
    assert result.oplist.ignored[0][0].result is UNKNOWN


def test_nemesis_events_are_not_operations() -> None:
    evs = events(
        ("nemesis", "info", "start", None),
        (0, "invoke", "write", 1),
        ("nemesis", "info", "stop", None),
        (0, "ok", "write", 1),
    )
    result = check_linearizable(evs, "register")
    assert result.verdict == "ok"
    assert result.ops == 1


def test_the_linearization_respects_real_time_and_the_model() -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (1, "invoke", "write", 2),
        (0, "ok", "write", 1),
        (2, "invoke", "read", None),
        (1, "ok", "write", 2),
        (2, "ok", "read", 1),
        (0, "invoke", "cas", (1, 3)),
        (0, "ok", "cas", (1, 3)),
        (1, "invoke", "read", None),
        (1, "ok", "read", 3),
    )
    result = check_linearizable(evs, "cas-register")
    assert result.verdict == "ok"
    assert result.ok
    assert bool(result)
    assert valid_order(result, evs, "cas-register")
    assert [o.describe() for o in result.linearization or []][:3] == [
        "write(2)",
        "write(1)",
        "read -> 1",
    ]


def test_partitioned_kv_names_the_failing_key_and_merges_orders() -> None:
    evs = events(
        (0, "invoke", "append", "a", "x"),
        (1, "invoke", "append", "b", "y"),
        (0, "ok", "append", "a", "x"),
        (1, "ok", "append", "b", "y"),
        (2, "invoke", "get", None, "y"),
        (2, "ok", "get", "b", "y"),
        (3, "invoke", "get", None, "x"),
        (3, "ok", "get", "a", "x"),
    )
    result = check_linearizable(evs, "kv")
    assert result.verdict == "ok"
    assert result.partitioned
    assert set(result.linearizations or {}) == {"x", "y"}
    assert valid_order(result, evs, "kv-whole")  # the merged order, replayed on all keys
    bad = [
        *evs[:6],
        Event(6, 3, "invoke", "get", None, key="x"),
        Event(7, 3, "ok", "get", "ab", key="x"),
    ]
    failed = check_linearizable(bad, "kv")
    assert failed.verdict == "illegal"
    assert failed.key == "x"
    assert failed.counterexample is not None
    assert failed.counterexample.partitioned


def test_conventions_default_to_knossos_or_the_historys_own() -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "cas", (1, 2)),
        (1, "fail", "cas", (1, 2)),
    )
    assert check_linearizable(evs, "cas-register").conventions == "knossos"
    tagged = SimpleNamespace(events=evs, conventions="porcupine", name="tagged")
    result = check_linearizable(tagged, "cas-register")
    assert (result.conventions, result.verdict) == ("porcupine", "illegal")


def test_the_recorder_is_accepted_as_a_history() -> None:
    h = History(name="recorded")
    cell: dict[str, int] = {}

    def put(v: int) -> None:
        cell["v"] = v

    h.op("write", 1, lambda: put(1))
    h.op("read", None, lambda: cell["v"])
    assert check_linearizable(h, "register").verdict == "ok"
    op = h.invoke("read")
    h.ok(op, 2)
    with pytest.raises(NotLinearizableError) as err:
        assert_linearizable(h, "register")
    assert "read -> 2" in str(err.value)


def test_model_forms_name_instance_class_and_function_pair() -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(evs, "register") == "ok"
    assert verdict(evs, models.Register()) == "ok"
    assert verdict(evs, models.Register) == "ok"

    def init() -> None:
        return None

    def step(state: Any, op: Operation) -> Any:
        if op.f == "write":
            return op.value
        return state if op.result == state else Inconsistent(f"read {op.result}")

    assert verdict(evs, (init, step)) == "ok"
    wrong = [*evs[:2], Event(2, 1, "invoke", "read"), Event(3, 1, "ok", "read", 5)]
    assert verdict(wrong, (init, step)) == "illegal"


def test_oneof_lets_a_crashed_dequeue_take_any_element() -> None:
    base = [
        (0, "invoke", "enqueue", "a"),
        (0, "ok", "enqueue", "a"),
        (0, "invoke", "enqueue", "b"),
        (0, "ok", "enqueue", "b"),
    ]
    crashed = events(
        *base,
        (1, "invoke", "dequeue", None),
        (1, "info", "dequeue", None),
        (2, "invoke", "dequeue", None),
        (2, "ok", "dequeue", "b"),
        (2, "invoke", "dequeue", None),
        (2, "ok", "dequeue", None),
    )
    assert verdict(crashed, "unordered-queue") == "ok"
    no_crash = events(
        *base,
        (2, "invoke", "dequeue", None),
        (2, "ok", "dequeue", "b"),
        (2, "invoke", "dequeue", None),
        (2, "ok", "dequeue", None),
    )
    assert verdict(no_crash, "unordered-queue") == "illegal"


# ----------------------------------------------------------------------------- the search's ideas


def hard_kv(n: int = 10) -> list[Event]:
    """n concurrent appends to one key, then a get showing them in reverse order: the
    search without the kv fast path tries orders one by one (legal, but slow)."""
    rows: list[Row] = [(p, "invoke", "append", f"<{p}>", "slow") for p in range(n)]
    rows += [(p, "ok", "append", f"<{p}>", "slow") for p in range(n)]
    rows += [
        (n, "invoke", "get", None, "slow"),
        (n, "ok", "get", "".join(f"<{p}>" for p in reversed(range(n))), "slow"),
    ]
    return events(*rows)


class SlowKV(models.KV):
    """kv without its fast path, so that the search does the work."""

    name = "slow-kv"
    witness = None  # type: ignore[assignment]


def test_fail_fast_a_slow_partition_does_not_hide_an_illegal_one() -> None:
    evs = hard_kv()
    n = len(evs)
    evs += [
        Event(n, 50, "invoke", "append", "z", key="bad"),
        Event(n + 1, 50, "ok", "append", "z", key="bad"),
        Event(n + 2, 51, "invoke", "get", None, key="bad"),
        Event(n + 3, 51, "ok", "get", "", key="bad"),
    ]
    result = check_linearizable(evs, SlowKV(), timeout=60)
    assert result.verdict == "illegal"
    assert result.key == "bad"
    assert result.explored.steps < 5_000  # the slow key needs hundreds of thousands


def test_a_timeout_gives_unknown_never_a_guess() -> None:
    result = check_linearizable(hard_kv(), SlowKV(), timeout=0.05)
    assert result.verdict == "unknown"
    assert result.reason == "timed out after 0.05 s"
    text = result.explain()
    assert "nothing is claimed either way" in text
    assert "undecided after" in text
    assert "configurations" in text
    assert result.explored.partitions[0].verdict == "undecided"


def test_the_memory_cap_gives_unknown() -> None:
    result = check_linearizable(hard_kv(), SlowKV(), max_memory=200_000)
    assert result.verdict == "unknown"
    assert "memory cap" in result.reason


def test_interchangeable_crashed_ops_are_counted_not_named() -> None:
    # 15 crashed writes of 1 and 15 of 2, then an impossible read: the search must
    # exhaust every way to place the crashed writes; with symmetry that is a few
    # hundred configurations, without it 2**30.
    rows: list[Row] = []
    for p in range(30):
        rows += [(p, "invoke", "write", 1 + p % 2), (p, "info", "write", None)]
    rows += [(99, "invoke", "read", None), (99, "ok", "read", 3)]
    result = check_linearizable(events(*rows), "register", timeout=60)
    assert result.verdict == "illegal"
    assert result.explored.steps < 20_000


class WrongWitness(models.KV):
    """kv whose fast path proposes the ops backwards: always wrong."""

    name = "wrong-witness-kv"

    def witness(self, ops: Any) -> list[Operation]:
        return list(reversed(ops))


def test_a_wrong_witness_cannot_change_the_verdict() -> None:
    ok = events(
        (0, "invoke", "append", "a", "k"),
        (0, "ok", "append", "a", "k"),
        (1, "invoke", "append", "b", "k"),
        (1, "ok", "append", "b", "k"),
        (2, "invoke", "get", None, "k"),
        (2, "ok", "get", "ab", "k"),
    )
    result = check_linearizable(ok, WrongWitness())
    assert result.verdict == "ok"
    assert result.explored.steps > 0  # the proposal failed verification: the search decided
    assert [o.value for o in result.linearization or []] == ["a", "b", None]
    bad = [*ok[:5], Event(5, 2, "ok", "get", "ba", key="k")]
    assert check_linearizable(bad, WrongWitness()).verdict == "illegal"


def test_crashed_writes_nobody_observed_are_pruned() -> None:
    rows: list[Row] = [(p, "invoke", "append", f"<{p}>", "k") for p in range(12)]
    rows += [(p, "info", "append", None, "k") for p in range(2, 12)]  # ten crash unseen
    rows += [(0, "ok", "append", "<0>", "k"), (1, "ok", "append", "<1>", "k")]
    rows += [(20, "invoke", "get", None, "k"), (20, "ok", "get", "<1><0>", "k")]
    result = check_linearizable(events(*rows), "kv")
    assert result.verdict == "ok"
    assert result.oplist is not None
    pruned = [op.value for op, why in result.oplist.ignored if "nothing observed it" in why]
    assert sorted(pruned) == sorted(f"<{p}>" for p in range(2, 12))


def test_a_prune_that_drops_a_known_op_is_refused() -> None:
    class Greedy(models.KV):
        def prune(self, ops: Any) -> list[Operation]:
            return []

    with pytest.raises(ModelError, match=r"prune\(\) dropped get\['k'\] -> '' \(event 0\)"):
        check_linearizable(
            events((0, "invoke", "get", None, "k"), (0, "ok", "get", "", "k")), Greedy()
        )


def test_fifo_queue_fast_path_reads_the_order_off_the_dequeues() -> None:
    rows: list[Row] = [(p, "invoke", "enqueue", p) for p in range(8)]
    rows += [(p, "ok", "enqueue", p) for p in range(8)]
    order = [5, 2, 7, 0, 1, 6, 3]  # value 4 is never dequeued
    for n, v in enumerate(order):
        rows += [(10 + n, "invoke", "dequeue", None), (10 + n, "ok", "dequeue", v)]
    result = check_linearizable(events(*rows), "fifo-queue")
    assert result.verdict == "ok"
    assert result.explored.steps == 0
    enq = [o.value for o in result.linearization or [] if o.f == "enqueue"]
    assert enq[:7] == order
    assert enq[7] == 4
    wrong = events(*rows[:-1], (16, "ok", "dequeue", 5))
    assert check_linearizable(wrong, "fifo-queue").verdict == "illegal"


# ----------------------------------------------------------------------------- assert_linearizable


STALE = events(
    (0, "invoke", "write", 1),
    (0, "ok", "write", 1),
    (0, "invoke", "write", 2),
    (0, "ok", "write", 2),
    (1, "invoke", "read", None),
    (1, "ok", "read", 1),
)


def test_assert_linearizable_raises_the_counterexample() -> None:
    with pytest.raises(AssertionError) as err:
        assert_linearizable(STALE, "register")
    assert isinstance(err.value, NotLinearizableError)
    assert err.value.result.verdict == "illegal"
    assert str(err.value) == err.value.result.explain()
    assert "Cannot linearize: p1 read -> 1 [events 4-5]" in str(err.value)


def test_assert_linearizable_returns_the_result_when_ok() -> None:
    assert assert_linearizable(STALE[:4], "register").verdict == "ok"


def test_on_unknown_fail_is_the_default() -> None:
    with pytest.raises(NotLinearizableError, match="Linearizability unknown: timed out"):
        assert_linearizable(hard_kv(), SlowKV(), timeout=0.02)


def test_on_unknown_skip() -> None:
    with pytest.raises(pytest.skip.Exception, match="Linearizability unknown"):
        assert_linearizable(hard_kv(), SlowKV(), timeout=0.02, on_unknown="skip")


def test_on_unknown_skip_without_pytest_uses_unittest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest", None)  # `import pytest` now fails
    with pytest.raises(unittest.SkipTest, match="Linearizability unknown"):
        assert_linearizable(hard_kv(), SlowKV(), timeout=0.02, on_unknown="skip")


def test_on_unknown_warn() -> None:
    with pytest.warns(LinearizabilityWarning, match="Linearizability unknown"):
        result = assert_linearizable(hard_kv(), SlowKV(), timeout=0.02, on_unknown="warn")
    assert result.verdict == "unknown"


def test_on_unknown_does_not_excuse_an_illegal_history() -> None:
    with pytest.raises(NotLinearizableError):
        assert_linearizable(STALE, "register", on_unknown="warn")


def test_bad_on_unknown_value() -> None:
    with pytest.raises(
        ValueError, match="on_unknown must be 'fail', 'skip' or 'warn', got 'ignore'"
    ):
        assert_linearizable(STALE, "register", on_unknown="ignore")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- counterexample


class SearchOnlyRegister(models.Register):
    """A register without its fast paths: the counterexample comes from the full search."""

    name = "search-only-register"
    witness = None  # type: ignore[assignment]
    refute = None  # type: ignore[assignment]
    prune = None  # type: ignore[assignment]


def test_counterexample_names_op_prefix_states_candidates_and_window() -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (0, "invoke", "write", 2),
        (1, "invoke", "write", 3),
        (0, "ok", "write", 2),
        (1, "ok", "write", 3),
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),
    )
    result = check_linearizable(evs, SearchOnlyRegister())
    cex = result.counterexample
    assert cex is not None
    assert cex.op.f == "read"
    assert cex.op.result == 1
    assert (cex.op.invoke_index, cex.op.complete_index) == (6, 7)
    assert [s.op.value for s in cex.prefix] == [1, 2, 3]
    assert [s.state_text for s in cex.prefix] == ["1", "2", "3"]
    assert cex.state == 3
    reasons = {c.op_text: c.reason for c in cex.candidates}
    assert reasons == {"read -> 1": "read 1, but the register holds 3"}
    text = str(cex)
    assert "Not linearizable (model search-only-register)." in text
    assert "Cannot linearize: p2 read -> 1 [events 6-7]" in text
    assert "    3. p1 write(3) [events 3-5]  => 3" in text
    assert "  - p2 read -> 1 [events 6-7]: read 1, but the register holds 3" in text
    assert cex.timeline().splitlines() == [
        "    0 1 2 3 4 5 6 7",
        "p0  [A] [B==]",
        "p1        [C==]",
        "p2              [D]",
        "",
        "A  p0 write(1)   [events 0-1]  #1 of the prefix",
        "B  p0 write(2)   [events 2-4]  #2 of the prefix",
        "C  p1 write(3)   [events 3-5]  #3 of the prefix",
        "D  p2 read -> 1  [events 6-7]  <- cannot be linearized",
    ]


def test_counterexample_lists_legal_dead_ends_and_unknown_candidates() -> None:
    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "write", 2),
        (1, "info", "write", None),
        (2, "invoke", "read", None),
        (2, "ok", "read", 3),
    )
    cex = check_linearizable(evs, SearchOnlyRegister()).counterexample
    assert cex is not None
    reasons = [c.reason for c in cex.candidates]
    assert reasons[0] == "read 3, but the register holds 1"
    assert reasons[1].startswith("legal here (state becomes 2), but no linearization continues")
    assert reasons[1].endswith("(its result is unknown, so it may also never take effect)")
    assert "~>" in cex.timeline()  # an unknown outcome is drawn open-ended


def test_timeline_gives_a_process_a_second_row_only_when_its_ops_overlap() -> None:
    from pytest_replay.linearizability._counterexample import timeline

    def op(n: int, process: int, call: int, ret: int | None) -> Operation:
        result = UNKNOWN if ret is None else 1
        status = "info" if ret is None else "ok"
        return Operation(n, process, "write", n, result, status, None, call, ret, call, ret)  # type: ignore[arg-type]

    # p0 crashed (op 0 may take effect any time) and went on with op 1
    ops = [op(0, 0, 0, None), op(1, 0, 2, 3), op(2, 1, 1, 4)]
    index_of = {p: p + 100 for p in range(5)}
    assert timeline(ops, index_of, {}, {2: "note"}, 0, 4).splitlines() == [
        "    100 101 102 103 104",
        "p0    [A~~~~~~~~~~~~~~>",
        "p0            [B==]",
        "p1        [C==========]",
        "",
        "A  p0 write(0) -> ?  [events 0-…]",
        "B  p0 write(1)       [events 2-3]",
        "C  p1 write(2) -> 1  [events 1-4]  note",
    ]


def test_registers_with_distinct_values_are_refuted_by_a_few_clusters() -> None:
    # p1's write of 2 happens entirely while the value 1 must stay in place (written by
    # p0 before it, read by p2 after it): Gibbons & Korach's backward zone inside a
    # forward zone; the other processes' ops do not matter.
    rows: list[Row] = [
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "write", 2),
        (1, "ok", "write", 2),
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),
    ]
    for p in range(10, 40):  # many unrelated concurrent ops
        rows.insert(0, (p, "invoke", "write", 100 + p))
        rows.append((p, "ok", "write", 100 + p))
    result = check_linearizable(events(*rows), "register")
    assert result.verdict == "illegal"
    # the full search got its head start, then the refutation decided
    assert 0 < result.explored.steps < 30_000
    cex = result.counterexample
    assert cex is not None
    assert cex.restricted == 3
    assert sorted(s.op.value for s in cex.prefix) == [1, 2]
    assert cex.op_text == "read -> 1"
    assert "These 3 ops are not linearizable even without the rest" in str(cex)


def test_a_wrong_refutation_is_not_believed() -> None:
    class Liar(models.Register):
        def refute(self, ops: Any) -> list[Operation]:
            return [ops[0]]  # a lone write: linearizable, so not a refutation

    evs = events(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 2),
    )
    result = check_linearizable(evs, Liar())
    assert result.verdict == "illegal"
    assert result.counterexample is not None
    assert not result.counterexample.restricted
    assert check_linearizable(evs[:2], Liar()).verdict == "ok"


def test_a_refutation_must_come_from_the_history() -> None:
    class Stranger(SearchOnlyRegister):
        def refute(self, ops: Any) -> list[Operation]:
            return [Operation(999, 0, "read", None, 5, "ok", None, 0, 1, 0, 1)]

    rows: list[Row] = [(p, "invoke", "write", p) for p in range(20)]
    rows += [(p, "ok", "write", p) for p in range(20)]
    rows += [(30, "invoke", "read", None), (30, "ok", "read", 99)]
    with pytest.raises(ModelError, match=r"refute\(\) returned ops that are not in the history"):
        check_linearizable(events(*rows), Stranger())


def test_to_dict_is_json_ready() -> None:
    result = check_linearizable(STALE, "register")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "illegal"
    assert data["ops"] == 3
    assert data["op"] == {"process": 1, "invoke_index": 4, "complete_index": 5, "op": "read -> 1"}


# ----------------------------------------------------------------------------- HTML


@pytest.mark.parametrize("case", ["illegal", "ok", "unknown"])
def test_to_html_writes_a_self_contained_page(tmp_path: Path, case: str) -> None:
    if case == "illegal":
        result = check_linearizable(STALE, "register")
    elif case == "ok":
        result = check_linearizable(STALE[:4], "register")
    else:
        result = check_linearizable(hard_kv(), SlowKV(), timeout=0.02)
    path = result.to_html(tmp_path / "out" / "page.html")
    assert path == tmp_path / "out" / "page.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # no network: no external scripts, styles, fonts or images
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "https://" not in page
    assert set(re.findall(r"http://[^\"' ]+", page)) <= {"http://www.w3.org/2000/svg"}
    raw = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert raw is not None
    data = json.loads(raw.group(1))
    assert data["verdict"] == case
    if case == "illegal":
        roles = {o["label"]: o["role"] for o in data["ops"]}
        assert roles["read -> 1"] == "fail"
        assert [s["state"] for s in data["steps"]] == ["1", "2"]
        assert data["processes"] == ["p0", "p1"]


def test_to_html_into_a_directory(tmp_path: Path) -> None:
    result = check_linearizable(STALE, "register")
    path = result.to_html(tmp_path)
    assert path == tmp_path / "linearizability.html"
    assert path.is_file()


def test_html_escapes_values_that_close_the_script(tmp_path: Path) -> None:
    evs = events(
        (0, "invoke", "write", "</script><b>x"),
        (0, "ok", "write", "</script><b>x"),
        (1, "invoke", "read", None),
        (1, "ok", "read", "y"),
    )
    page = check_linearizable(evs, "register").to_html(tmp_path / "p.html").read_text()
    assert "</script><b>" not in page


# ----------------------------------------------------------------------------- errors


def test_unknown_model_name() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'registr'; registered models: .*register"):
        check_linearizable(STALE, "registr")


@pytest.mark.parametrize("bad", [object(), 3, (lambda: None,), (1, 2)])
def test_not_a_model(bad: Any) -> None:
    with pytest.raises(ModelError, match="model"):
        check_linearizable(STALE, bad)


def test_a_model_class_that_needs_arguments() -> None:
    class Needs:
        def __init__(self, x: int) -> None:
            self.x = x

    with pytest.raises(ModelError, match="cannot be created without arguments"):
        check_linearizable(STALE, Needs)


def test_an_op_malformed_for_the_model_names_the_event() -> None:
    evs = events((0, "invoke", "cas", (1, 2, 3)), (0, "ok", "cas", (1, 2, 3)))
    with pytest.raises(
        ModelError,
        match=r"<history>: event 0: process 0 cas \(1, 2, 3\): cas "
        r"needs a \[from to\] pair, got \(1, 2, 3\) \(model cas-register\)",
    ):
        check_linearizable(evs, "cas-register")
    with pytest.raises(ModelError, match="register ops are read, write; got 'cas'"):
        check_linearizable(evs, "register")


def test_a_model_that_raises_is_named_with_the_op() -> None:
    def step(state: Any, op: Operation) -> Any:
        raise KeyError("boom")

    with pytest.raises(
        ModelError,
        match=r"raised KeyError: 'boom' in step\(state=0, op=write\(1\)\)"
        r" for the op invoked at event 0 by process 0",
    ) as err:
        check_linearizable(STALE, (lambda: 0, step))
    assert isinstance(err.value.__cause__, KeyError)


def test_an_unhashable_state() -> None:
    with pytest.raises(ModelError, match=r"unhashable state list.*use tuples, frozensets"):
        check_linearizable(STALE, (lambda: [], lambda s, op: s))

    def step(state: Any, op: Operation) -> Any:
        return [op.value]

    with pytest.raises(ModelError, match="step\\(\\) returned an unhashable state list"):
        check_linearizable(STALE, (lambda: 0, step))


def test_a_read_only_op_that_changes_the_state() -> None:
    class Liar(models.Register):
        def step(self, state: Any, op: Operation) -> Any:
            return 99 if op.f == "read" else super().step(state, op)

    with pytest.raises(ModelError, match="says read -> 1 is read-only but its step changed"):
        check_linearizable(STALE, Liar())


def test_a_partition_key_that_is_not_hashable() -> None:
    class Listy(models.KV):
        def partition(self, op: Operation) -> Any:
            return [op.key]

    evs = events((0, "invoke", "get", None, "k"), (0, "ok", "get", "", "k"))
    with pytest.raises(ModelError, match=r"partition\(\) returned an unhashable key for get"):
        check_linearizable(evs, Listy())


def test_a_read_only_op_that_branches() -> None:
    class Branchy(models.Register):
        def step(self, state: Any, op: Operation) -> Any:
            return OneOf(state, 7) if op.f == "read" else super().step(state, op)

    with pytest.raises(ModelError, match="says read -> 1 is read-only but its step returned OneOf"):
        check_linearizable(STALE, Branchy())


def test_oneof_needs_a_state() -> None:
    with pytest.raises(ValueError, match="OneOf needs at least one state"):
        OneOf()
    assert OneOf(1, 1, 2).states == (1, 2)
    assert Inconsistent("a {} b", 1) == Inconsistent("a 1 b")
    assert not Inconsistent("x")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"conventions": "jepsen"}, "conventions must be 'knossos' or 'porcupine', got 'jepsen'"),
        ({"timeout": 0}, "timeout must be a positive number of seconds or None, got 0"),
        ({"max_memory": -1}, "max_memory must be a positive number of bytes or None, got -1"),
        ({"max_memory": 1.5}, "max_memory must be a positive number of bytes or None, got 1.5"),
    ],
)
def test_bad_arguments(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_linearizable(STALE, "register", **kw)


@pytest.mark.parametrize("history", [42, "INFO jepsen.util - 0 :invoke :read nil"])
def test_not_a_history(history: Any) -> None:
    with pytest.raises(TypeError, match="history must be a list of Event"):
        check_linearizable(history, "register")


def test_an_item_that_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="item 1 of the history is a dict, not an Event"):
        check_linearizable([STALE[0], {"process": 0}], "register")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(0, "ok", "read", 1)], "event 0: process 0 completes read with ok but has no pending"),
        (
            [(0, "invoke", "read", None), (0, "invoke", "write", 1)],
            "event 1: process 0 invokes write while its read invoked at event 0 is still pending",
        ),
        (
            [(0, "invoke", "read", None), (0, "ok", "write", 1)],
            "event 1: process 0 completes write but its pending op, invoked at event 0, is read",
        ),
        (
            [(0, "begin", "read", None)],
            "event 0: type 'begin' must be one of invoke, ok, fail, info",
        ),
    ],
)
def test_malformed_histories(rows: list[Row], message: str) -> None:
    with pytest.raises(HistoryFormatError, match=re.escape(message)):
        check_linearizable(events(*rows), "register")


def test_import_does_not_pull_in_pytest_or_deepdiff() -> None:
    code = (
        "import sys, pytest_replay.linearizability, pytest_replay.models;"
        "bad = [m for m in ('pytest', 'deepdiff', '_pytest') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
