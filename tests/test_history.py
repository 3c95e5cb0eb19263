"""The History recorder: events, process ids, outcomes, threads and tasks, closing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import pytest_replay
from pytest_replay.history import (
    Event,
    History,
    Op,
    format_timeline,
    parse_edn,
    parse_jsonl,
    spans,
    validate,
)


class Mismatch(Exception):
    pass


def _strip_times(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(e.index, e.process, e.type, e.f, e.value, e.key, e.error) for e in events]


def test_explicit_invoke_and_completions() -> None:
    h = History()
    w = h.invoke("write", 1)
    assert isinstance(w, Op)
    assert (w.process, w.f, w.value, w.outcome, w.done) == (0, "write", 1, "pending", False)
    h.ok(w)
    r = h.invoke("read")
    h.ok(r, 1)
    c = h.invoke("cas", (2, 3))
    h.fail(c, "mismatch")
    x = h.invoke("write", 4, key="k")
    h.info(x, "timeout")
    assert _strip_times(h.events) == [
        (0, 0, "invoke", "write", 1, None, None),
        (1, 0, "ok", "write", None, None, None),
        (2, 0, "invoke", "read", None, None, None),
        (3, 0, "ok", "read", 1, None, None),
        (4, 0, "invoke", "cas", (2, 3), None, None),
        (5, 0, "fail", "cas", (2, 3), None, "mismatch"),
        (6, 0, "invoke", "write", 4, "k", None),
        (7, 0, "info", "write", 4, "k", "timeout"),
    ]
    assert (w.outcome, c.outcome, x.outcome) == ("ok", "fail", "info")
    assert x.completion == h.events[7]
    validate(h.events)


def test_after_info_the_thread_gets_a_fresh_process() -> None:
    h = History()
    h.op("write", 1, lambda: None)
    op = h.invoke("write", 2)
    op.info("crashed")
    op2 = h.invoke("read")
    assert (op.process, op2.process) == (0, 1)
    op2.ok(2)
    assert h.invoke("read").process == 1  # ok keeps the process
    validate(h.events)


def test_overlapping_ops_of_one_thread_use_distinct_processes() -> None:
    h = History()
    a = h.invoke("write", 1)
    b = h.invoke("write", 2)  # a is still pending: b cannot be the same process
    assert a.process != b.process
    a.ok()
    b.ok()
    c = h.invoke("read")
    assert c.process in (a.process, b.process)
    c.ok(2)
    validate(h.events)


def test_completion_errors() -> None:
    h = History()
    op = h.invoke("write", 1)
    op.ok()
    with pytest.raises(RuntimeError, match="already complete"):
        h.fail(op)
    other = History().invoke("read")
    with pytest.raises(ValueError, match="invoked on another History"):
        h.ok(other, 1)
    with pytest.raises(TypeError, match="non-empty str"):
        h.invoke("")
    with pytest.raises(TypeError, match="non-empty str"):
        h.invoke(3)  # type: ignore[arg-type]
    assert len(h.events) == 2  # nothing recorded by the failed calls


def test_context_manager_outcomes() -> None:
    h = History()
    with h.op("write", 1) as op:
        assert op.outcome == "pending"
    assert op.outcome == "ok"
    with h.op("read") as op:
        op.result = 1
    assert op.completion is not None
    assert op.completion.value == 1

    with h.op("cas", (1, 2), fail_on=Mismatch) as op:
        raise Mismatch("register holds 3")  # suppressed: a failed op is an expected outcome
    assert op.outcome == "fail"
    assert op.completion is not None
    assert op.completion.error == "Mismatch: register holds 3"
    assert isinstance(op.exception, Mismatch)

    with pytest.raises(ZeroDivisionError), h.op("write", 2, fail_on=(Mismatch,)) as op:
        1 / 0  # noqa: B018
    assert op.outcome == "info"
    assert op.completion is not None
    assert op.completion.error == "ZeroDivisionError: division by zero"

    with h.op("write", 3) as op:
        op.fail("refused")  # completed explicitly: nothing more is recorded at exit
    assert op.outcome == "fail"

    def complete_then_raise(op: Op) -> None:
        op.fail("refused")
        raise KeyError("after completion")

    with pytest.raises(KeyError), h.op("write", 4) as op:
        complete_then_raise(op)
    assert op.outcome == "fail"  # the explicit outcome stands

    types = [e.type for e in h.events if e.type != "invoke"]
    assert types == ["ok", "ok", "fail", "info", "fail", "fail"]
    validate(h.events)


def test_base_exceptions_are_unknown_outcomes() -> None:
    h = History()
    with pytest.raises(KeyboardInterrupt), h.op("write", 1, fail_on=Exception):
        raise KeyboardInterrupt
    assert h.events[-1].type == "info"
    assert h.events[-1].error == "KeyboardInterrupt"


def test_context_cannot_be_entered_twice() -> None:
    h = History()
    ctx = h.op("write", 1)
    with ctx:
        pass
    with pytest.raises(RuntimeError, match="entered only once"), ctx:
        pass


def test_wrapper_form() -> None:
    h = History()
    store: dict[str, int] = {}
    assert h.op("write", 3, lambda: store.__setitem__("x", 3)) is None
    assert h.op("read", None, lambda: store["x"]) == 3

    def cas() -> bool:
        raise Mismatch("no")

    assert h.op("cas", (1, 2), cas, fail_on=Mismatch) is None
    with pytest.raises(KeyError):
        h.op("read", None, lambda: store["missing"], key="missing")
    assert [(e.type, e.value, e.key) for e in h.events[1::2]] == [
        ("ok", None, None),
        ("ok", 3, None),
        ("fail", (1, 2), None),
        ("info", None, "missing"),
    ]


def test_async_with_and_awaitable_wrapper() -> None:
    h = History()

    async def client(i: int) -> int:
        async with h.op("write", i) as op:
            await asyncio.sleep(0)
        assert op.outcome == "ok"
        result: int = await h.op("read", None, lambda: asyncio.sleep(0, result=i))
        return result

    async def failing() -> None:
        async def boom() -> None:
            await asyncio.sleep(0)
            raise Mismatch("late")

        assert await h.op("cas", (0, 1), boom, fail_on=Mismatch) is None
        with pytest.raises(ValueError, match="bad"):
            await h.op("cas", (0, 2), lambda: _raise_later(ValueError("bad")))

    async def main() -> list[int]:
        results = await asyncio.gather(*(client(i) for i in range(4)))
        await failing()
        return list(results)

    assert asyncio.run(main()) == [0, 1, 2, 3]
    events = h.events
    validate(events)
    # Each task is its own client: four processes for the four concurrent tasks.
    writers = {e.process for e in events if e.f == "write"}
    assert len(writers) == 4
    for op in spans(events):
        if op.f == "read":
            (write,) = [s for s in spans(events) if s.f == "write" and s.process == op.process]
            assert op.completion is not None
            assert op.completion.value == write.invoke.value
    # The tasks ran interleaved: some writes overlap.
    write_spans = [s for s in spans(events) if s.f == "write"]
    assert any(
        a.invoke.index < b.invoke.index < a.completion.index  # type: ignore[union-attr]
        for a in write_spans
        for b in write_spans
        if a is not b
    )
    assert [e.type for e in events if e.f == "cas"] == ["invoke", "fail", "invoke", "info"]


async def _raise_later(exc: Exception) -> None:
    await asyncio.sleep(0)
    raise exc


def test_threads_are_processes_and_index_order_is_time_order() -> None:
    h = History()
    n_threads, n_ops = 6, 150
    barrier = threading.Barrier(n_threads)
    seen: dict[int, set[int]] = {}

    def worker(t: int) -> None:
        barrier.wait()
        procs = seen.setdefault(t, set())
        for i in range(n_ops):
            with h.op("write", (t, i)) as op:
                procs.add(op.process)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    events = h.events
    assert len(events) == 2 * n_threads * n_ops
    assert [e.index for e in events] == list(range(len(events)))
    times = [e.time for e in events]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    # A thread that never crashes keeps one process id; threads never share one.
    assert all(len(p) == 1 for p in seen.values())
    assert len(set().union(*seen.values())) == n_threads
    validate(events)


def test_pending_and_close() -> None:
    h = History()
    done = h.invoke("write", 1)
    done.ok()
    a = h.invoke("read")
    b = h.invoke("write", 2)
    assert h.pending == [a, b]
    assert "2 pending" in repr(h)
    assert format_timeline(h.events)[0] == "4 events, 3 ops, 2 processes, 2 pending"
    events = h.close()
    assert h.closed
    assert [(e.process, e.type, e.error) for e in events[-2:]] == [
        (a.process, "info", "pending at close"),
        (b.process, "info", "pending at close"),
    ]
    assert h.pending == []
    assert h.close() == events  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        h.invoke("read")
    validate(events)


def test_completion_after_close_is_refused() -> None:
    h = History()
    op = h.invoke("write", 1)
    h.close("test over")
    with pytest.raises(RuntimeError, match="already complete"):
        op.ok()
    late = History()
    op2 = late.invoke("write", 1)
    late._closed = True  # a close racing with the op's own thread
    with pytest.raises(RuntimeError, match="after the history was closed"):
        op2.ok()


def test_events_is_a_snapshot() -> None:
    h = History()
    snapshot = h.events
    h.op("write", 1, lambda: None)
    assert snapshot == []
    assert len(h) == 2
    assert list(h) == h.events


def test_timeline_and_dump(tmp_path: Path) -> None:
    h = History()
    h.op("write", 1, lambda: None)
    h.op("read", None, lambda: 1, key="k")
    with pytest.raises(OSError), h.op("write", 2):
        raise OSError("disk gone")
    pending = h.invoke("read")
    text = h.timeline()
    assert text.splitlines() == [
        "7 events, 4 ops, 2 processes, 1 pending",
        "  p0 | [0-1] write 1 -> ok  [2-3] ['k'] read -> ok 1"
        "  [4-5] write 2 -> info (OSError: disk gone)",
        f"  p1 | [{pending.invoke.index}-] read -> pending",
    ]
    h.dump(tmp_path / "h.jsonl")
    h.dump(tmp_path / "h.edn", "jepsen-edn")
    assert parse_jsonl(tmp_path / "h.jsonl") == h.events
    assert parse_edn(tmp_path / "h.edn") == h.events
    with pytest.raises(ValueError, match="cannot write format"):
        h.dump(tmp_path / "h.log", "jepsen-log")  # type: ignore[arg-type]


def test_timeline_elides_and_wraps() -> None:
    h = History()
    for i in range(30):
        h.op("write", i, lambda: None)
    lines = format_timeline(h.events, max_ops_per_process=3, width=60)
    assert lines[1].startswith("  p0 | (27 earlier)")
    assert "[58-59] write 29 -> ok" in lines[-1]
    assert all(len(line) <= 60 for line in lines)
    many = History()
    ops = [many.invoke("write", i) for i in range(20)]
    assert len({op.process for op in ops}) == 20
    lines = format_timeline(many.events, max_processes=4)
    assert lines[-1] == "  ... 16 more processes"


def test_public_export_is_lazy_and_light() -> None:
    assert pytest_replay.History is History
    code = (
        "import sys, pytest_replay.history as h; h.History().op('w', 1, lambda: 1); "
        "bad = {'pytest', 'asyncio', 'deepdiff'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
