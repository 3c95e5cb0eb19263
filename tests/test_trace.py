"""The @replay_trace decorator, the interceptor switch and the recorder (no pytest plugin)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import errno
import functools
import inspect
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_replay import codec, trace
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.record import Record, record_id
from pytest_replay.trace import (
    CallInfo,
    RecordingError,
    RecordingSession,
    TraceSpec,
    TraceTargetError,
    recording,
    registry,
    replay_trace,
)

# --------------------------------------------------------------------------- helpers


def records(directory: Path, key: str) -> list[dict[str, Any]]:
    """Decoded record maps of one cassette, in file order."""
    path = cassette_path(directory, key)
    return [codec.decode(raw) for raw in Cassette.open(path).records()]  # type: ignore[misc]


def payloads(directory: Path, key: str) -> list[bytes]:
    return list(Cassette.open(cassette_path(directory, key)).payloads())


KEY = __name__  # test_trace


# --------------------------------------------------------------------------- traced functions


@replay_trace
def add(a: int, b: int = 2, *, c: int = 3) -> int:
    """Add three numbers."""
    return a + b + c


@replay_trace
async def aadd(a: int, b: int = 2) -> int:
    """Add, asynchronously."""
    await asyncio.sleep(0)
    return a + b


@dataclasses.dataclass(frozen=True)
class Price:
    amount: int
    currency: str = "EUR"

    @replay_trace
    def doubled(self, factor: int = 2) -> int:
        """Method on an encodable self."""
        return self.amount * factor

    @replay_trace
    @staticmethod
    def parse(text: str) -> Price:
        amount, currency = text.split()
        return Price(int(amount), currency)

    @replay_trace
    @classmethod
    def zero(cls, currency: str = "EUR") -> Price:
        return cls(0, currency)


@replay_trace(key="test_trace.renamed")
def moved(x: int) -> int:
    return x * 10


@replay_trace
def fails(x: int) -> int:
    raise ValueError("bad input", x)


@replay_trace(boundary=True)
def now() -> float:
    return 1700000000.5


@replay_trace
def stamped(label: str) -> str:
    return f"{label}@{now()}"


@replay_trace
def outer(n: int) -> int:
    return add(n) + stamped("x").count("@") + add(n, 1)


@replay_trace(boundary=True)
def fetch(url: str) -> str:
    # a traced call inside a boundary belongs to the boundary, it is not recorded
    return f"<{url}:{add(100)}>"


@replay_trace
def page(url: str) -> str:
    return fetch(url)


# --------------------------------------------------------------------------- the decorator


@pytest.mark.parametrize(
    ("wrapped", "original_name", "doc"),
    [
        (add, "add", "Add three numbers."),
        (aadd, "aadd", "Add, asynchronously."),
        (Price.doubled, "doubled", "Method on an encodable self."),
    ],
)
def test_wrapper_keeps_name_doc_signature_and_wrapped(
    wrapped: Any, original_name: str, doc: str
) -> None:
    assert wrapped.__name__ == original_name
    assert wrapped.__doc__ == doc
    assert inspect.signature(wrapped) == inspect.signature(wrapped.__wrapped__)
    assert not hasattr(wrapped.__wrapped__, "__replay_spec__")


def test_async_stays_a_coroutine_function() -> None:
    assert inspect.iscoroutinefunction(aadd)
    assert not inspect.iscoroutinefunction(add)
    assert asyncio.run(aadd(1)) == 3
    assert registry()[f"{KEY}.aadd"].is_async


def test_static_and_class_methods_stay_descriptors_of_their_kind() -> None:
    assert isinstance(Price.__dict__["parse"], staticmethod)
    assert isinstance(Price.__dict__["zero"], classmethod)
    assert Price.parse("3 USD") == Price(3, "USD")
    assert Price.zero() == Price(0)
    assert registry()[f"{KEY}.Price.parse"].kind == "staticmethod"
    spec = registry()[f"{KEY}.Price.zero"]
    assert spec.kind == "classmethod"
    assert list(spec.signature.parameters) == ["currency"]  # cls is implied by the target
    assert spec.owner() is Price
    assert spec.invoke([], {"currency": "CHF"}) == Price(0, "CHF")


def test_key_defaults_to_module_qualname_and_target_is_import_path() -> None:
    spec = registry()[f"{KEY}.Price.doubled"]
    assert (spec.key, spec.target) == (f"{KEY}.Price.doubled", f"{KEY}:Price.doubled")
    explicit = registry()["test_trace.renamed"]
    assert explicit.target == f"{KEY}:moved"
    assert explicit.fn is moved.__wrapped__  # type: ignore[attr-defined]


def test_two_functions_cannot_share_a_key() -> None:
    def first() -> None: ...

    def second() -> None: ...

    replay_trace(key="test_trace.shared")(first)
    try:
        with pytest.raises(ValueError, match=r"key 'test_trace.shared' is already used by"):
            replay_trace(key="test_trace.shared")(second)
        # The same target again (a module reload) simply replaces the entry.
        replay_trace(key="test_trace.shared")(first)
    finally:
        trace._unregister(registry()["test_trace.shared"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"resources": {"nope": "db"}}, TypeError, r"resources names 'nope', which is not a param"),
        ({"max_records": 0}, ValueError, r"max_records must be a positive int"),
        ({"redact": "password"}, TypeError, r"take a list of paths, not a string"),
        ({"snapshot_every": 5}, TypeError, r"snapshot_every= only applies to classes"),
        ({"key": ""}, TypeError, r"key must be a non-empty string"),
    ],
)
def test_bad_decorator_options_are_refused(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    def target(conn: object, x: int) -> int:
        return x

    with pytest.raises(error, match=match):
        replay_trace(**kwargs)(target)


def test_positional_only_resource_is_refused() -> None:
    def target(conn: object, /, x: int) -> int:
        return x

    with pytest.raises(TypeError, match="resource parameter 'conn' is positional-only"):
        replay_trace(resources={"conn": "db"})(target)


def test_not_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="is not callable"):
        replay_trace(42)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- the switch


class Spy:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def call(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls.append((spec.key, args, kwargs))
        return ("spied", spec.fn(*args, **kwargs))

    async def acall(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls.append((spec.key, args, kwargs))
        return ("spied", await spec.fn(*args, **kwargs))


def test_interceptor_gets_spec_and_raw_arguments_and_deactivation_restores() -> None:
    assert trace.active() is None
    assert add(1) == 6
    spy = Spy()
    token = trace.activate(spy)
    try:
        assert add(1, c=0) == ("spied", 3)
        assert asyncio.run(aadd(2)) == ("spied", 4)
    finally:
        trace.deactivate(token)
    assert spy.calls == [(f"{KEY}.add", (1,), {"c": 0}), (f"{KEY}.aadd", (2,), {})]
    assert trace.active() is None
    assert add(1) == 6


def test_activation_is_a_stack_and_out_of_order_deactivation_is_allowed() -> None:
    first, second = Spy(), Spy()
    t1 = trace.activate(first)
    t2 = trace.activate(second)
    assert trace.active() is second
    trace.deactivate(t1)  # out of order: the newest stays active
    assert trace.active() is second
    trace.deactivate(t2)
    assert trace.active() is None
    trace.deactivate(t2)  # twice: no-op
    with pytest.raises(TypeError, match="expects a token returned by activate"):
        trace.deactivate(object())


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, 2), {}), ((), {"a": 1}), ((1,), {"b": 2, "c": 3}), ((), {"c": 3, "a": 1})],
)
def test_inputs_are_canonical_whatever_the_spelling(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    spec = registry()[f"{KEY}.add"]
    assert spec.bind(args, kwargs) == ([1, 2], {"c": 3})


def test_bind_matches_inspect_for_awkward_signatures() -> None:
    def awkward(a: int, /, b: int, *rest: int, flag: bool = False, **extra: Any) -> None: ...

    spec = trace._make_spec(awkward, {}, "function")
    for args, kwargs in [((1, 2, 3, 4), {"z": 1}), ((1,), {"b": 2}), ((1, 2), {"flag": True})]:
        bound = inspect.signature(awkward).bind(*args, **kwargs)
        bound.apply_defaults()
        assert spec.bind(args, kwargs) == (list(bound.args), bound.kwargs)
    with pytest.raises(TypeError):
        spec.bind((), {})


def test_resource_parameters_are_left_out_and_later_ones_move_to_kwargs() -> None:
    def query(sql: str, conn: object, limit: int = 10) -> None: ...

    spec = trace._make_spec(query, {"resources": {"conn": "db_session"}}, "function")
    assert spec.bind(("select 1", object(), 5), {}) == (["select 1"], {"limit": 5})


# --------------------------------------------------------------------------- recording


def test_each_form_is_recorded_with_key_target_inputs_and_result(tmp_path: Path) -> None:
    with recording(tmp_path) as session:
        add(1)
        asyncio.run(aadd(5, b=1))
        Price(7).doubled()
        Price.parse("4 USD")
        Price.zero("CHF")
    assert session.report is not None
    assert not session.report.errors
    (rec,) = records(tmp_path, f"{KEY}.add")
    assert (rec["key"], rec["target"], rec["args"], rec["kwargs"], rec["result"]) == (
        f"{KEY}.add", f"{KEY}:add", [1, 2], {"c": 3}, 6,
    )  # fmt: skip
    assert records(tmp_path, f"{KEY}.aadd")[0]["result"] == 6
    method = records(tmp_path, f"{KEY}.Price.doubled")[0]
    assert method["args"] == [Price(7), 2]
    assert method["result"] == 14
    assert records(tmp_path, f"{KEY}.Price.parse")[0]["result"] == Price(4, "USD")
    zero = records(tmp_path, f"{KEY}.Price.zero")[0]
    assert (zero["args"], zero["result"]) == (["CHF"], Price(0, "CHF"))


def test_record_id_is_the_hash_of_key_and_stored_inputs(tmp_path: Path) -> None:
    with recording(tmp_path):
        add(4, c=1)
        Price(3).doubled(5)
    for key in (f"{KEY}.add", f"{KEY}.Price.doubled"):
        for raw in Cassette.open(cassette_path(tmp_path, key)).records():
            inputs = codec.dumps([codec.decode(raw["args"]), codec.decode(raw["kwargs"])])
            assert raw["id"] == record_id(key, inputs)


def test_payload_is_exactly_codec_dumps_of_the_record_map(tmp_path: Path) -> None:
    with recording(tmp_path):
        outer(2)
        with pytest.raises(ValueError):
            fails(3)
        Price.parse("1 EUR")
    for key in (f"{KEY}.outer", f"{KEY}.fails", f"{KEY}.Price.parse", f"{KEY}.add"):
        for payload in payloads(tmp_path, key):
            record = Record.from_map(codec.loads(payload))  # type: ignore[arg-type]
            assert codec.dumps(record.to_map()) == payload


def test_errors_are_recorded_and_reraised_unchanged(tmp_path: Path) -> None:
    with recording(tmp_path):
        with pytest.raises(ValueError, match="bad input") as info:
            fails(3)
    assert info.value.args == ("bad input", 3)
    assert info.traceback[-1].name == "fails"  # raised from the original, not re-created
    (rec,) = records(tmp_path, f"{KEY}.fails")
    assert "result" not in rec
    assert rec["error"] == {
        "type": "builtins.ValueError",
        "message": "('bad input', 3)",
        "args": ["bad input", 3],
    }


def test_interrupts_are_not_outcomes_and_are_not_recorded(tmp_path: Path) -> None:
    @replay_trace(key="test_trace.interrupted")
    def interrupted() -> None:
        raise KeyboardInterrupt

    with recording(tmp_path) as session, pytest.raises(KeyboardInterrupt):
        interrupted()
    assert session.report is not None
    assert not cassette_path(tmp_path, "test_trace.interrupted").exists()
    trace._unregister(registry()["test_trace.interrupted"])


def test_nested_calls_are_ordered_children_and_boundaries_live_in_the_caller(
    tmp_path: Path,
) -> None:
    with recording(tmp_path):
        outer(1)
        now()  # a boundary outside any traced call: nothing to attach it to
        page("https://example.org")
    (rec,) = records(tmp_path, f"{KEY}.outer")
    children = rec["children"]
    assert [c["key"] for c in children] == [f"{KEY}.add", f"{KEY}.stamped", f"{KEY}.add"]
    assert [c["args"] for c in children] == [[1, 2], ["x"], [1, 1]]
    (clock,) = children[1]["children"]
    assert (clock["key"], clock["boundary"], clock["result"]) == (f"{KEY}.now", True, 1700000000.5)
    # nested non-boundary calls also get records of their own, in call order
    assert [r["args"] for r in records(tmp_path, f"{KEY}.add")] == [[1, 2], [1, 1]]
    assert records(tmp_path, f"{KEY}.stamped")[0]["children"][0]["key"] == f"{KEY}.now"
    assert not cassette_path(tmp_path, f"{KEY}.now").exists()
    (fetched,) = records(tmp_path, f"{KEY}.page")[0]["children"]
    assert fetched["children"] == []  # add(100) ran inside the boundary: not recorded
    assert [r["args"][0] for r in records(tmp_path, f"{KEY}.add")] == [1, 1]


def test_threads_with_copied_context_attach_to_their_parent(tmp_path: Path) -> None:
    @replay_trace(key="test_trace.fan_out")
    def fan_out(n: int) -> int:
        threads = []
        for i in range(n):
            context = contextvars.copy_context()
            threads.append(threading.Thread(target=context.run, args=(add, i)))
        plain = threading.Thread(target=add, args=(99,))  # no copied context: top level
        for thread in [*threads, plain]:
            thread.start()
        for thread in [*threads, plain]:
            thread.join()
        return n

    with recording(tmp_path):
        fan_out(4)
    (rec,) = records(tmp_path, "test_trace.fan_out")
    assert sorted(c["args"][0] for c in rec["children"]) == [0, 1, 2, 3]
    assert sorted(r["args"][0] for r in records(tmp_path, f"{KEY}.add")) == [0, 1, 2, 3, 99]
    trace._unregister(registry()["test_trace.fan_out"])


@replay_trace
async def leaf(tag: str, i: int) -> str:
    await asyncio.sleep(0.001 * (3 - i))  # finish in reverse order of start
    return f"{tag}{i}"


@replay_trace
async def branch(tag: str) -> list[str]:
    return list(await asyncio.gather(*(leaf(tag, i) for i in range(3))))


@replay_trace
async def root() -> list[list[str]]:
    return list(await asyncio.gather(branch("a"), branch("b"), branch("c")))


def test_concurrent_asyncio_tasks_get_the_right_parents(tmp_path: Path) -> None:
    with recording(tmp_path):
        assert asyncio.run(root()) == [["a0", "a1", "a2"], ["b0", "b1", "b2"], ["c0", "c1", "c2"]]
    (rec,) = records(tmp_path, f"{KEY}.root")
    branches = rec["children"]
    assert [b["args"] for b in branches] == [["a"], ["b"], ["c"]]
    for b in branches:
        tag = b["args"][0]
        # every leaf of branch "a" is under "a", in call (start) order
        assert [leaf_["args"] for leaf_ in b["children"]] == [[tag, 0], [tag, 1], [tag, 2]]
        assert [leaf_["result"] for leaf_ in b["children"]] == [f"{tag}0", f"{tag}1", f"{tag}2"]
    assert len(records(tmp_path, f"{KEY}.leaf")) == 9


def test_seed_random_seeds_per_call_and_stores_the_seed(tmp_path: Path) -> None:
    @replay_trace(key="test_trace.draw", seed_random=True)
    def draw(n: int) -> list[float]:
        return [random.random() for _ in range(n)]

    with recording(tmp_path):
        first = draw(3)
        random.random()
        second = draw(3)  # same inputs: same seed, same draws
        other = draw(4)
    assert first == second
    assert other[:3] != first
    recs = records(tmp_path, "test_trace.draw")
    assert len(recs) == 2
    for rec in recs:
        seed = rec["meta"]["seed"]
        assert seed == int(rec["id"][:8], 16)
        random.seed(seed)
        assert rec["result"] == [random.random() for _ in range(rec["args"][0])]
    trace._unregister(registry()["test_trace.draw"])


def test_unencodable_values_make_the_record_unreplayable_not_the_code_fail(
    tmp_path: Path,
) -> None:
    @replay_trace(key="test_trace.locked")
    def locked(lock: Any, n: int) -> Any:
        return threading.Lock() if n else n

    with recording(tmp_path) as session:
        assert locked(threading.Lock(), 0) == 0
        assert locked(None, 1) is not None
    report = session.report
    assert report is not None
    reasons = {rid: reason for _, rid, reason in report.unreplayable}
    recs = records(tmp_path, "test_trace.locked")
    assert "input" in reasons[recs[0]["id"]]
    assert "lock" in reasons[recs[0]["id"]]
    assert "result" in reasons[recs[1]["id"]]
    assert recs[0]["unreplayable"] == reasons[recs[0]["id"]]
    assert isinstance(recs[0]["args"][0], codec.Opaque)
    assert any("unreplayable records: 2" in line for line in report.lines())
    trace._unregister(registry()["test_trace.locked"])


def test_a_recorder_failure_never_reaches_the_code_under_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: RecordingSession, value: Any) -> Any:
        raise RuntimeError("codec exploded")

    with recording(tmp_path) as session:
        monkeypatch.setattr(RecordingSession, "_encode", broken)
        assert add(1) == 6
        with pytest.raises(ValueError, match="bad input"):
            fails(2)
        monkeypatch.undo()
    report = session.report
    assert report is not None
    assert any("recorder error RuntimeError: codec exploded" in w for w in report.warnings)
    assert not report.errors


def test_metadata_callable_gets_the_call_and_its_failure_is_a_warning(tmp_path: Path) -> None:
    seen: list[CallInfo] = []

    def meta(call: CallInfo) -> dict[str, Any]:
        seen.append(call)
        if call.arguments["prompt"] == "explode":
            raise KeyError("tokens")
        return {"tokens": len(call.result), "model": "fake-1"}

    @replay_trace(key="test_trace.complete", metadata=meta)
    def complete(prompt: str, model: str = "fake-1") -> str:
        return prompt.upper()

    with recording(tmp_path) as session:
        complete("hello")
        complete("explode")
    assert seen[0].arguments == {"prompt": "hello", "model": "fake-1"}
    assert seen[0].result == "HELLO"
    assert seen[0].error is None
    assert seen[0].duration_ms >= 0
    ok, failed = records(tmp_path, "test_trace.complete")
    assert ok["meta"]["user"] == {"tokens": 5, "model": "fake-1"}
    assert "user" not in failed["meta"]
    assert session.report is not None
    assert any("metadata callable raised KeyError" in w for w in session.report.warnings)
    trace._unregister(registry()["test_trace.complete"])


def test_dedup_counts_repeats_and_max_records_keeps_the_first_distinct(tmp_path: Path) -> None:
    @replay_trace(key="test_trace.capped", max_records=3)
    def capped(x: int) -> int:
        return x

    with recording(tmp_path) as session:
        for x in [5, 5, 1, 5, 7, 2, 9, 1]:
            capped(x)
    assert [r["args"][0] for r in records(tmp_path, "test_trace.capped")] == [5, 1, 7]
    report = session.report
    assert report is not None
    assert (report.new, report.duplicates, report.over_cap) == (3, 3, 2)
    trace._unregister(registry()["test_trace.capped"])


def test_rerecording_unchanged_calls_is_byte_identical(tmp_path: Path) -> None:
    with recording(tmp_path):
        outer(3)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.cassette")}
    for mode in ("new", "rewrite"):
        with recording(tmp_path, mode=mode) as session:
            outer(3)  # durations differ from the first run: volatile, not a change
        assert session.report is not None
        assert session.report.new == 0
        assert session.report.changed == 0
        assert {p.name: p.read_bytes() for p in tmp_path.glob("*.cassette")} == before


def test_write_failure_raises_one_clear_error_and_keeps_the_old_cassette(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording(tmp_path):
        add(1)
    path = cassette_path(tmp_path, f"{KEY}.add")
    old = path.read_bytes()

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Cassette, "append", full)
    with pytest.raises(RecordingError, match=rf"cannot write cassettes to {tmp_path}: No space"):
        with recording(tmp_path):
            assert add(2) == 7  # the code under test runs normally
    assert path.read_bytes() == old


def test_unwritable_directory_is_reported_by_name(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    session = RecordingSession(blocker / "cassettes").start()
    try:
        add(1)
    finally:
        session.stop()
    report = session.flush()
    assert len(report.errors) == 1
    assert report.errors[0].startswith(f"cannot write cassettes to {blocker / 'cassettes'}:")


def test_session_options_are_validated() -> None:
    with pytest.raises(ValueError, match="'new' or 'rewrite'"):
        RecordingSession("x", mode="append")
    with pytest.raises(ValueError, match="max_records must be a positive int"):
        RecordingSession("x", max_records=0)
    with pytest.raises(ValueError, match="no replay_dir"):
        RecordingSession().flush()


def test_fast_packing_is_byte_identical_to_the_codec() -> None:
    session = RecordingSession()
    values: list[Any] = [
        None, True, 0, -1, 2**63 - 1, 2**64 + 5, 1.5, float("nan"), -0.0, "é", "\ud800",
        b"\x00", bytearray(b"x"), [1, [2]], (1, 2), {"a": {1: 2}}, {1: "x"}, {1, 2},
        Price(1), [threading.Lock()], "x" * 70000,
    ]  # fmt: skip
    for value in values:
        assert session._encode(value) == codec.dumps_checked(value), value


# --------------------------------------------------------------------------- config targets


def test_resolve_and_wrap_functions_and_methods_in_place() -> None:
    import json

    original = json.dumps
    wrapped = trace.wrap_target("json.dumps")
    try:
        assert json.dumps is not original  # type: ignore[attr-defined]
        assert json.dumps.__wrapped__ is original
        assert registry()["json.dumps"].target == "json:dumps"
        spy = Spy()
        token = trace.activate(spy)
        try:
            assert json.dumps([1]) == ("spied", "[1]")
        finally:
            trace.deactivate(token)
    finally:
        wrapped.restore()
    assert json.dumps is original
    assert "json.dumps" not in registry()


def test_wrap_static_and_class_methods_by_import_path() -> None:
    class_wrap = trace.wrap_target(f"{KEY}:Holder.make")
    static_wrap = trace.wrap_target(f"{KEY}:Holder.twice", boundary=True)
    try:
        assert isinstance(Holder.__dict__["make"], classmethod)
        assert isinstance(Holder.__dict__["twice"], staticmethod)
        assert Holder.make(2).value == 2
        assert Holder.twice(4) == 8
        assert registry()[f"{KEY}.Holder.twice"].boundary
        assert registry()[f"{KEY}.Holder.make"].owner() is Holder
    finally:
        static_wrap.restore()
        class_wrap.restore()
    assert Holder.__dict__["make"].__func__.__name__ == "make"
    assert not hasattr(Holder.__dict__["make"].__func__, "__replay_spec__")


class Holder:
    def __init__(self, value: int) -> None:
        self.value = value

    @classmethod
    def make(cls, value: int) -> Holder:
        return cls(value)

    @staticmethod
    def twice(x: int) -> int:
        return 2 * x


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("no_such_module_xyz:f", r"cannot import 'no_such_module_xyz'"),
        ("no_such_module_xyz.f", r"no importable module in it"),
        ("json:nope", r"json:nope not found"),
        ("json:JSONDecoder.nope", r"has no attribute 'nope'"),
        ("json:", r"missing the function name"),
        ("json:__version__", r"is a str, not a function or method"),
        (f"{KEY}:add", r"is already traced"),
        ("  ", r"empty trace target name"),
    ],
)
def test_unresolvable_targets_name_what_is_wrong(name: str, match: str) -> None:
    with pytest.raises(TraceTargetError, match=match):
        trace.wrap_target(name)


def test_builtins_without_a_signature_are_recorded_as_called(tmp_path: Path) -> None:
    import math

    wrapped = trace.wrap_target("math.gcd")
    try:
        with recording(tmp_path):
            assert math.gcd(12, 18) == 6
    finally:
        wrapped.restore()
    (rec,) = records(tmp_path, "math.gcd")
    assert rec["result"] == 6
    assert rec["target"] == "math:gcd"


# --------------------------------------------------------------------------- outside pytest


@pytest.fixture
def script(tmp_path: Path) -> Path:
    (tmp_path / "appmod.py").write_text(
        "from pytest_replay import replay_trace\n"
        "@replay_trace\n"
        "def area(w, h=1):\n"
        "    return w * h\n"
    )
    main = tmp_path / "main.py"
    main.write_text("import appmod\nfor w in (1, 2, 2, 3):\n    appmod.area(w, h=2)\n")
    return main


def test_environment_variable_records_a_whole_program(script: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTEST_REPLAY_RECORD": str(tmp_path / "cassettes")}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    recs = records(tmp_path / "cassettes", "appmod.area")
    assert [(r["args"], r["result"]) for r in recs] == [([1, 2], 2), ([2, 2], 4), ([3, 2], 6)]
    # The same calls through recording() give the same records (rules are shared).
    env["PYTEST_REPLAY_RECORD"] = str(tmp_path / "again")
    subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, check=True, timeout=60
    )
    assert [r["id"] for r in records(tmp_path / "again", "appmod.area")] == [r["id"] for r in recs]


def test_environment_variable_reports_unusable_settings(script: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PYTEST_REPLAY_RECORD": str(tmp_path / "cassettes"),
        "PYTEST_REPLAY_RECORD_MODE": "append",
    }
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0  # the program itself is never broken
    assert "PYTEST_REPLAY_RECORD ignored: recording mode must be 'new' or 'rewrite'" in done.stderr
    assert not (tmp_path / "cassettes").exists()


def test_functools_partial_needs_an_explicit_key() -> None:
    part = functools.partial(int, base=2)
    with pytest.raises(TypeError, match=r"pass key=\.\.\. explicitly"):
        replay_trace(part)
    wrapped = replay_trace(key="test_trace.partial")(part)
    try:
        assert wrapped("101") == 5
    finally:
        trace._unregister(registry()["test_trace.partial"])
