"""The built-in models: each step's semantics, hints, validation, and the registry."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_replay import models
from pytest_replay.history import Event, Keyword
from pytest_replay.linearizability import (
    ALL,
    UNKNOWN,
    Inconsistent,
    ModelError,
    OneOf,
    Operation,
    check_linearizable,
)


def op(
    f: str,
    value: Any = None,
    result: Any = None,
    *,
    status: str = "ok",
    key: Any = None,
) -> Operation:
    known = status != "info"
    return Operation(
        0, 0, f, value, result if known else UNKNOWN, status, key, 0, 1, 0, 1 if known else None
    )  # type: ignore[arg-type]


def legal(result: Any) -> bool:
    return not isinstance(result, Inconsistent)


# ----------------------------------------------------------------------------- registers


@pytest.mark.parametrize("name", ["register", "cas-register"])
def test_register_read_write(name: str) -> None:
    m = models.get(name).for_conventions("porcupine")
    s = m.init()
    assert s is None
    s = m.step(s, op("write", 3, 3))
    assert s == 3
    assert m.step(s, op("read", None, 3)) == 3
    bad = m.step(s, op("read", None, 4))
    assert isinstance(bad, Inconsistent)
    assert bad.reason == "read 4, but the register holds 3"


def test_nil_reads_follow_the_conventions() -> None:
    knossos = models.CasRegister().for_conventions("knossos")
    porcupine = models.CasRegister().for_conventions("porcupine")
    assert knossos.step(5, op("read", None, None)) == 5  # Knossos: nil reads are always legal
    assert not legal(porcupine.step(5, op("read", None, None)))  # Porcupine: only initially
    assert porcupine.step(None, op("read", None, None)) is None
    fixed = models.CasRegister(nil_reads="initial")
    assert fixed.for_conventions("knossos") is fixed  # an explicit choice wins


def test_register_rejects_a_bad_nil_reads_option() -> None:
    with pytest.raises(ModelError, match="nil_reads must be 'any' or 'initial'"):
        models.Register(nil_reads="sometimes")


def test_cas_ok_fail_and_unknown() -> None:
    m = models.CasRegister().for_conventions("porcupine")
    assert m.step(1, op("cas", (1, 2), (1, 2))) == 2
    assert (
        m.step(3, op("cas", (1, 2), (1, 2))).reason
        == "cas 1->2 succeeded, but the register holds 3"
    )
    # a failed CAS is an observation: legal only where the register differs from `from`
    assert m.step(3, op("cas", (1, 2), (1, 2), status="fail")) == 3
    assert not legal(m.step(1, op("cas", (1, 2), (1, 2), status="fail")))
    # an unknown outcome takes effect iff it could have succeeded
    assert m.step(1, op("cas", (1, 2), status="info")) == 2
    assert m.step(3, op("cas", (1, 2), status="info")) == 3


def test_cas_register_read_only_and_validation() -> None:
    m = models.CasRegister()
    assert m.read_only(op("read", None, 1))
    assert m.read_only(op("cas", (1, 2), (1, 2), status="fail"))
    assert not m.read_only(op("cas", (1, 2), (1, 2)))
    assert not m.read_only(op("write", 1, 1))
    assert m.validate(op("cas", (1, 2))) is None
    assert "cas needs a [from to] pair" in (m.validate(op("cas", 3)) or "")
    assert "cas-register ops are read, write, cas" in (m.validate(op("incr", 1)) or "")
    assert m.describe_op(op("cas", (1, 2), (1, 2), status="fail")) == "cas(1 -> 2) failed"
    assert m.describe_state(None) == "nil"


# ----------------------------------------------------------------------------- key-value


def test_kv_get_put_append() -> None:
    m = models.KV()
    s = m.init()
    assert s == ""
    s = m.step(s, op("append", "a", "a", key="k"))
    s = m.step(s, op("append", "b", "b", key="k"))
    assert s == "ab"
    assert m.step(s, op("get", None, "ab", key="k")) == "ab"
    assert m.step("", op("get", None, None, key="k")) == ""  # nil reads as absent
    assert m.step(s, op("put", "z", "z", key="k")) == "z"
    why = m.step(s, op("get", None, "a", key="k"))
    assert isinstance(why, Inconsistent)
    assert why.reason == "get returned 'a', but the key holds 'ab'"
    assert m.partition(op("get", key="k")) == "k"


def test_kv_validation() -> None:
    m = models.KV()
    assert "kv ops are get, put, append" in (m.validate(op("read", key="k")) or "")
    assert "append needs a string value" in (m.validate(op("append", 3, key="k")) or "")
    assert "get must return a string" in (m.validate(op("get", None, 5, key="k")) or "")


def test_kv_whole_keeps_every_key() -> None:
    m = models.KVWhole()
    s = m.init()
    s = m.step(s, op("append", "a", key="x"))
    s = m.step(s, op("put", "b", key="y"))
    assert m.step(s, op("get", None, "a", key="x")) == s
    assert m.step(s, op("get", None, "", key="z")) == s
    assert not legal(m.step(s, op("get", None, "b", key="x")))
    assert m.describe_state(s) == "{'x': 'a', 'y': 'b'}"
    assert getattr(m, "partition", None) is None  # checked whole, by design


def test_kv_witness_is_a_verified_proposal() -> None:
    # three concurrent appends whose order only the get reveals
    evs = [
        Event(0, 0, "invoke", "append", "a", key="k"),
        Event(1, 1, "invoke", "append", "b", key="k"),
        Event(2, 2, "invoke", "append", "c", key="k"),
        Event(3, 0, "ok", "append", "a", key="k"),
        Event(4, 1, "ok", "append", "b", key="k"),
        Event(5, 2, "ok", "append", "c", key="k"),
        Event(6, 3, "invoke", "get", None, key="k"),
        Event(7, 3, "ok", "get", "cab", key="k"),
    ]
    result = check_linearizable(evs, "kv")
    assert result.verdict == "ok"
    assert result.explored.steps == 0  # decided by the fast path, no search
    assert [o.value for o in result.linearization or []] == ["c", "a", "b", None]


# ----------------------------------------------------------------------------- multi-register


def test_multi_register_txn() -> None:
    m = models.MultiRegister({"x": 0}).for_conventions("porcupine")
    s = m.init()
    s = m.step(s, op("txn", (("w", "x", 1), ("w", "y", 2)), (("w", "x", 1), ("w", "y", 2))))
    assert dict(s) == {"x": 1, "y": 2}
    read = (("r", "x", None), ("r", "y", None))
    assert m.step(s, op("txn", read, (("r", "x", 1), ("r", "y", 2)))) == s
    assert not legal(m.step(s, op("txn", read, (("r", "x", 1), ("r", "y", 3)))))
    # keywords work as micro-op names too
    kw = ((Keyword("read"), "x", None),)
    assert m.step(s, op("txn", kw, ((Keyword("read"), "x", 1),))) == s
    # an unknown outcome applies the writes it asked for
    assert dict(m.step(s, op("txn", (("w", "x", 9),), status="info"))) == {"x": 9, "y": 2}
    assert m.read_only(op("txn", read, read))


def test_multi_register_unknown_first_values_are_pinned_by_the_first_read() -> None:
    m = models.MultiRegister().for_conventions("knossos")
    s = m.init()
    s = m.step(s, op("txn", (("r", "x", None),), (("r", "x", 0),)))
    assert dict(s) == {"x": 0}
    assert not legal(m.step(s, op("txn", (("r", "x", None),), (("r", "x", 1),))))
    assert not m.read_only(op("txn", (("r", "x", None),), (("r", "x", 0),)))


def test_multi_register_partition_and_validation() -> None:
    m = models.MultiRegister()
    assert m.partition(op("txn", (("r", "x", None),))) == "x"
    assert m.partition(op("txn", (("r", "x", None), ("w", "y", 1)))) is ALL
    assert "txn" in (m.validate(op("read")) or "")
    assert "is not [f k v]" in (m.validate(op("txn", (("r", "x"),))) or "")
    assert "f must be read/r or write/w" in (m.validate(op("txn", (("cas", "x", 1),))) or "")
    assert "do not match" in (m.validate(op("txn", (("r", "x", None),), ())) or "")


# ----------------------------------------------------------------------------- set, counter


def test_set_model() -> None:
    m = models.Set()
    s = m.step(m.init(), op("add", 1))
    s = m.step(s, op("add", 2))
    assert m.step(s, op("contains", 1, True)) == s
    assert not legal(m.step(s, op("contains", 3, True)))
    assert m.step(s, op("read", None, (2, 1))) == s
    assert not legal(m.step(s, op("read", None, (1,))))
    assert m.step(s, op("remove", 1)) == frozenset({2})
    assert m.partition(op("add", 1)) == 1
    assert m.partition(op("read")) is ALL
    assert "contains must return true or false" in (m.validate(op("contains", 1, 1)) or "")
    assert "read must return a collection" in (m.validate(op("read", None, "ab")) or "")


def test_counter_model() -> None:
    m = models.Counter()
    s = m.step(m.init(), op("add", 5))
    s = m.step(s, op("increment"))
    assert s == 6
    assert m.step(s, op("read", None, 6)) == 6
    assert m.step(s, op("read", None, 7)).reason == "read 7, but the counter is 6"
    assert "integer delta" in (m.validate(op("add", "x")) or "")
    assert "integer delta" in (m.validate(op("increment", 1.5)) or "")


# ----------------------------------------------------------------------------- queues, mutex


def test_fifo_queue_model() -> None:
    m = models.FifoQueue()
    s = m.step(m.step(m.init(), op("enqueue", 1)), op("enqueue", 2))
    assert m.step(s, op("dequeue", None, 1)) == (2,)
    assert m.step(s, op("dequeue", None, 2)).reason == "dequeued 2, but the head is 1"
    assert not legal(m.step(s, op("dequeue", None, None)))  # not empty
    assert m.step((), op("dequeue", None, None)) == ()
    assert m.step(s, op("dequeue", status="info")) == (2,)
    assert m.read_only(op("dequeue", None, None))
    assert not m.read_only(op("dequeue", None, 1))


def test_unordered_queue_unknown_dequeue_may_remove_anything() -> None:
    m = models.UnorderedQueue()
    s = m.step(m.step(m.init(), op("enqueue", "a")), op("enqueue", "b"))
    assert m.step(s, op("dequeue", None, "b")) == frozenset({("a", 1)})
    assert not legal(m.step(s, op("dequeue", None, "c")))
    maybe = m.step(s, op("dequeue", status="info"))
    assert isinstance(maybe, OneOf)
    assert set(maybe.states) == {frozenset({("a", 1)}), frozenset({("b", 1)})}
    twice = m.step(s, op("enqueue", "a"))
    assert m.describe_state(twice) == "{'a'x2 'b'}"


def test_mutex_model() -> None:
    m = models.Mutex()
    s = m.step(m.init(), op("acquire"))
    assert s is True
    assert m.step(s, op("acquire")).reason == "acquire, but the lock is already held"
    assert m.step(s, op("release")) is False
    assert not legal(m.step(False, op("release")))
    # porcupine conventions: a failed try-lock observes a held lock
    assert m.step(True, op("acquire", status="fail")) is True
    assert not legal(m.step(False, op("acquire", status="fail")))


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_errors() -> None:
    assert {
        "register",
        "cas-register",
        "kv",
        "kv-whole",
        "multi-register",
        "set",
        "counter",
        "fifo-queue",
        "unordered-queue",
        "mutex",
    } <= set(models.names())
    with pytest.raises(
        ModelError, match=r"unknown model 'nope'; registered models: .*cas-register"
    ):
        models.get("nope")
    with pytest.raises(ModelError, match="already registered"):
        models.register("kv", models.KV)
    with pytest.raises(ModelError, match="must be callable"):
        models.register("x-model", 3)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="non-empty string"):
        models.register("", models.KV)


def test_register_a_custom_model_by_name() -> None:
    class Flag(models.Model):
        name = "flag"

        def init(self) -> bool:
            return False

        def step(self, state: Any, o: Operation) -> Any:
            if o.f == "set":
                return True
            return state if o.result == state else Inconsistent("wrong flag")

    models.register("test-flag", Flag)
    try:
        evs = [
            Event(0, 0, "invoke", "set"),
            Event(1, 0, "ok", "set"),
            Event(2, 1, "invoke", "get"),
            Event(3, 1, "ok", "get", False),
        ]
        assert check_linearizable(evs, "test-flag").verdict == "illegal"
        models.register("test-flag", Flag, replace=True)
    finally:
        models._REGISTRY.pop("test-flag", None)


def test_base_model_requires_init_and_step() -> None:
    base = models.Model()
    with pytest.raises(NotImplementedError):
        base.init()
    with pytest.raises(NotImplementedError):
        base.step(None, op("read"))
    assert repr(base) == "<model model>"
    assert base.describe_state(3) == "3"
