"""Seeded stress tests: simulated linearizable objects, injected stale reads, and a
brute-force oracle on histories small enough to enumerate every order.

The simulator runs real (sequential) objects: each op takes effect at a random
moment between its invoke and its completion, so every history it records is
linearizable. Crashes complete an op with ``info`` before or after it took
effect; some ops are left pending. Changing one read's result ("a stale read")
may make the history illegal; the brute force, which tries every order of every
subset of the unknown-result ops, says whether it did.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_replay import models
from pytest_replay.history import Event
from pytest_replay.linearizability import (
    UNKNOWN,
    CheckResult,
    Inconsistent,
    OneOf,
    Operation,
    check_linearizable,
)

# ----------------------------------------------------------------------------- objects


@dataclass
class Obj:
    """A sequential object: ``new_op(rng)`` picks (f, value, key); ``apply`` runs it."""

    model: str
    new_op: Callable[[random.Random, Obj], tuple[str, Any, Any]]
    apply: Callable[[Obj, str, Any, Any, random.Random], tuple[str, Any]]
    state: Any = None
    reads: tuple[str, ...] = ("read",)
    counter: list[int] = field(default_factory=lambda: [0])


def _fresh(obj: Obj) -> int:
    obj.counter[0] += 1
    return obj.counter[0]


def register_obj(cas: bool) -> Obj:
    def new_op(rng: random.Random, o: Obj) -> tuple[str, Any, Any]:
        f = rng.choice(["read", "write", "cas"] if cas else ["read", "write"])
        if f == "write":
            return f, rng.randint(0, 3), None
        if f == "cas":
            return f, (rng.randint(0, 3), rng.randint(0, 3)), None
        return f, None, None

    def apply(o: Obj, f: str, v: Any, k: Any, rng: random.Random) -> tuple[str, Any]:
        if f == "read":
            return "ok", o.state
        if f == "write":
            o.state = v
            return "ok", v
        if o.state == v[0]:
            o.state = v[1]
            return "ok", v
        return "fail", v

    return Obj("cas-register" if cas else "register", new_op, apply)


def kv_obj() -> Obj:
    def new_op(rng: random.Random, o: Obj) -> tuple[str, Any, Any]:
        f = rng.choice(["get", "get", "put", "append", "append"])
        key = rng.choice("ab")
        return f, None if f == "get" else f"<{_fresh(o)}>", key

    def apply(o: Obj, f: str, v: Any, k: Any, rng: random.Random) -> tuple[str, Any]:
        data = o.state if o.state is not None else {}
        o.state = data
        if f == "get":
            return "ok", data.get(k, "")
        data[k] = (data.get(k, "") + v) if f == "append" else v
        return "ok", v

    return Obj("kv", new_op, apply, reads=("get",))


def counter_obj() -> Obj:
    def new_op(rng: random.Random, o: Obj) -> tuple[str, Any, Any]:
        return ("read", None, None) if rng.random() < 0.5 else ("add", rng.randint(1, 2), None)

    def apply(o: Obj, f: str, v: Any, k: Any, rng: random.Random) -> tuple[str, Any]:
        o.state = o.state or 0
        if f == "read":
            return "ok", o.state
        o.state += v
        return "ok", v

    return Obj("counter", new_op, apply)


def queue_obj(fifo: bool) -> Obj:
    def new_op(rng: random.Random, o: Obj) -> tuple[str, Any, Any]:
        if rng.random() < 0.5:
            return "enqueue", _fresh(o), None
        return "dequeue", None, None

    def apply(o: Obj, f: str, v: Any, k: Any, rng: random.Random) -> tuple[str, Any]:
        items: list[Any] = o.state if o.state is not None else []
        o.state = items
        if f == "enqueue":
            items.append(v)
            return "ok", v
        if not items:
            return "ok", None
        return "ok", items.pop(0 if fifo else rng.randrange(len(items)))

    return Obj("fifo-queue" if fifo else "unordered-queue", new_op, apply, reads=("dequeue",))


def set_obj() -> Obj:
    def new_op(rng: random.Random, o: Obj) -> tuple[str, Any, Any]:
        f = rng.choice(["add", "remove", "contains", "read"])
        return f, None if f == "read" else rng.randint(0, 2), None

    def apply(o: Obj, f: str, v: Any, k: Any, rng: random.Random) -> tuple[str, Any]:
        items: set[Any] = o.state if o.state is not None else set()
        o.state = items
        if f == "add":
            items.add(v)
        elif f == "remove":
            items.discard(v)
        elif f == "contains":
            return "ok", v in items
        else:
            return "ok", tuple(sorted(items))
        return "ok", v

    return Obj("set", new_op, apply, reads=("contains", "read"))


def unique_register_obj() -> Obj:
    """A register whose writes all write distinct values (Gibbons & Korach's case)."""
    obj = register_obj(False)
    obj.new_op = lambda r, o: (
        ("write", _fresh(o), None) if r.random() < 0.5 else ("read", None, None)
    )
    return obj


OBJECTS: dict[str, Callable[[], Obj]] = {
    "register": lambda: register_obj(False),
    "register-unique": unique_register_obj,
    "cas-register": lambda: register_obj(True),
    "kv": kv_obj,
    "counter": counter_obj,
    "fifo-queue": lambda: queue_obj(True),
    "unordered-queue": lambda: queue_obj(False),
    "set": set_obj,
}


def simulate(obj: Obj, rng: random.Random, n_ops: int, n_procs: int, crash: float) -> list[Event]:
    """A history of ``obj`` driven by ``n_procs`` clients; linearizable by construction."""
    events: list[Event] = []
    next_process = n_procs
    procs = list(range(n_procs))
    pending: dict[int, list[Any]] = {}  # process -> [f, value, key, applied, type, result]
    started = 0
    while started < n_ops or pending:
        p = rng.choice(procs)
        slot = pending.get(p)
        if slot is None:
            if started >= n_ops:
                if rng.random() < 0.3:
                    break  # leave the rest pending
                continue
            f, v, k = obj.new_op(rng, obj)
            events.append(Event(len(events), p, "invoke", f, v, key=k))
            pending[p] = [f, v, k, False, None, None]
            started += 1
        elif not slot[3] and rng.random() < 0.6:
            slot[4], slot[5] = obj.apply(obj, slot[0], slot[1], slot[2], rng)
            slot[3] = True
        elif rng.random() < crash:
            events.append(Event(len(events), p, "info", slot[0], None, key=slot[2]))
            del pending[p]
            procs[procs.index(p)] = next_process  # a crashed process never comes back
            next_process += 1
        elif slot[3]:
            events.append(Event(len(events), p, slot[4], slot[0], slot[5], key=slot[2]))
            del pending[p]
    return events


def inject_stale_read(events: list[Event], obj: Obj, rng: random.Random) -> list[Event] | None:
    """The same history with one read's result replaced: by a value an earlier read of
    the same kind returned (a stale read) when there is one, else by a wrong value."""
    reads = [e for e in events if e.type == "ok" and e.f in obj.reads]
    if not reads:
        return None
    target = rng.choice(reads)
    seen = [
        e.value
        for e in events[: target.index]
        if e.type == "ok" and e.f == target.f and e.key == target.key and e.value != target.value
    ]
    replacement: Any
    if target.f == "contains":
        replacement = not target.value
    elif seen:
        replacement = rng.choice(seen)
    elif target.f == "read" and obj.model == "set":
        replacement = tuple(sorted(set(target.value) ^ {rng.randint(0, 2)}))
    elif target.f == "get":
        replacement = target.value[: target.value.rfind("<")] if target.value else "<0>"
    elif target.f == "dequeue":
        replacement = None if target.value is not None else 1
    else:
        replacement = (target.value or 0) + rng.choice([-1, 1])
    out = list(events)
    out[target.index] = Event(
        target.index, target.process, "ok", target.f, replacement, key=target.key
    )
    return out


# ----------------------------------------------------------------------------- brute force


def pair(events: list[Event], conventions: str) -> tuple[list[Operation], list[Operation]]:
    """Known-result ops and unknown-result ops, paired without the checker's code."""
    open_: dict[Any, Event] = {}
    done: dict[int, Event] = {}
    for e in events:
        if e.type == "invoke":
            open_[e.process] = e
        else:
            done[open_.pop(e.process).index] = e
    known: list[Operation] = []
    unknown: list[Operation] = []
    for inv in (e for e in events if e.type == "invoke"):
        comp = done.get(inv.index)
        if comp is not None and comp.type == "fail" and conventions == "knossos":
            continue
        if comp is None or comp.type == "info":
            unknown.append(
                Operation(
                    inv.index,
                    inv.process,
                    inv.f,
                    inv.value,
                    UNKNOWN,
                    "info",  # type: ignore[arg-type]
                    inv.key,
                    inv.index,
                    None,
                    inv.index,
                    None,
                )
            )
        else:
            known.append(
                Operation(
                    inv.index,
                    inv.process,
                    inv.f,
                    inv.value,
                    comp.value,  # type: ignore[arg-type]
                    comp.type,
                    inv.key,
                    inv.index,
                    comp.index,
                    inv.index,
                    comp.index,
                )
            )
    return known, unknown


def brute_force(events: list[Event], model_name: str, conventions: str) -> bool:
    """Is there an order of all known ops and some unknown ones, respecting real time,
    that the model accepts? Tries them all (no cache, no pruning beyond real time)."""
    known, unknown = pair(events, conventions)
    model = models.get(model_name)
    if hasattr(model, "for_conventions"):
        model = model.for_conventions(conventions)
    if model_name == "kv":
        model = models.KVWhole()  # one object holding every key: no partitioning either
    ops = known + unknown

    def may_go_next(op: Operation, left: list[Operation]) -> bool:
        return all(not (o.ret is not None and o.ret < op.call) for o in left if o is not op)

    def search(state: Any, left: list[Operation]) -> bool:
        if all(o.ret is None for o in left):
            return True
        for op in left:
            if not may_go_next(op, left):
                continue
            nxt = model.step(state, op)
            if isinstance(nxt, Inconsistent):
                continue
            rest = [o for o in left if o is not op]
            for s in nxt.states if isinstance(nxt, OneOf) else (nxt,):
                if search(s, rest):
                    return True
        return False

    return search(model.init(), ops)


def valid(result: CheckResult, events: list[Event], model_name: str) -> bool:
    """The returned linearization respects real time, holds every known op, and replays."""
    order = result.linearization or []
    known, _ = pair(events, result.conventions)
    if {o.invoke_index for o in order} < {o.invoke_index for o in known}:
        return False
    for n, a in enumerate(order):
        if any(b.ret is not None and b.ret < a.call for b in order[n + 1 :]):
            return False
    model = models.KVWhole() if model_name == "kv" else models.get(model_name)
    if hasattr(model, "for_conventions") and model_name != "kv":
        model = model.for_conventions(result.conventions)
    states: list[Any] = [model.init()]
    for op in order:
        nxt: list[Any] = []
        for s in states:
            r = model.step(s, op)
            if not isinstance(r, Inconsistent):
                nxt.extend(r.states if isinstance(r, OneOf) else (r,))
        if not nxt:
            return False
        states = nxt
    return True


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_small_histories_agree_with_brute_force(kind: str) -> None:
    conventions = "porcupine" if kind == "cas-register" else "knossos"
    rng = random.Random(f"small-{kind}")
    illegal = 0
    for _ in range(120):
        obj = OBJECTS[kind]()
        events = simulate(obj, rng, n_ops=rng.randint(4, 9), n_procs=rng.randint(2, 4), crash=0.1)
        result = check_linearizable(events, obj.model, conventions=conventions)
        assert result.verdict == "ok", result.explain()
        assert brute_force(events, obj.model, conventions)
        assert valid(result, events, obj.model)
        stale = inject_stale_read(events, obj, rng)
        if stale is None:
            continue
        truth = brute_force(stale, obj.model, conventions)
        got = check_linearizable(stale, obj.model, conventions=conventions)
        assert got.verdict == ("ok" if truth else "illegal"), (stale, got.explain())
        illegal += not truth
    assert illegal >= 30, f"only {illegal} injected stale reads were illegal: a weak test"


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_larger_histories_of_linearizable_objects_are_ok(kind: str) -> None:
    conventions = "porcupine" if kind == "cas-register" else "knossos"
    rng = random.Random(f"large-{kind}")
    for _ in range(6):
        obj = OBJECTS[kind]()
        events = simulate(
            obj, rng, n_ops=rng.randint(40, 150), n_procs=rng.randint(3, 6), crash=0.03
        )
        result = check_linearizable(events, obj.model, conventions=conventions, timeout=30)
        assert result.verdict == "ok", result.explain()
        assert valid(result, events, obj.model)


def test_a_stale_read_after_two_completed_writes_is_always_caught() -> None:
    # Unique written values: a read of v1 invoked after a write of v2 completed, which
    # itself was invoked after the write of v1 completed, is illegal whatever else happens.
    rng = random.Random("stale")
    caught = 0
    for _ in range(20):
        obj = unique_register_obj()
        events = simulate(obj, rng, n_ops=80, n_procs=4, crash=0.0)
        spans = _spans(events)  # invoke index -> (invoke event, completion event)
        writes = [(i, c) for i, c in spans.values() if i.f == "write"]
        reads = [(i, c) for i, c in spans.values() if i.f == "read"]
        pick = next(
            (
                (w1.value, r_ok)
                for w1, w1_ok in writes
                for w2, w2_ok in writes
                if w1_ok.index < w2.index
                for r, r_ok in reads
                if w2_ok.index < r.index
            ),
            None,
        )
        if pick is None:
            continue
        value, read = pick
        stale = list(events)
        stale[read.index] = Event(read.index, read.process, "ok", "read", value)
        assert check_linearizable(stale, "register").verdict == "illegal"
        caught += 1
    assert caught >= 10


def _spans(events: list[Event]) -> dict[int, tuple[Event, Event]]:
    """Completed ops: invoke index -> (invoke, ok completion)."""
    open_: dict[Any, Event] = {}
    out: dict[int, tuple[Event, Event]] = {}
    for e in events:
        if e.type == "invoke":
            open_[e.process] = e
        elif e.type == "ok":
            inv = open_.pop(e.process)
            out[inv.index] = (inv, e)
    return out
