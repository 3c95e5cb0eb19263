"""session.py: recording stateful objects as sessions, and the SessionReplayer engine."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_replay import codec, session
from pytest_replay.cassette import Cassette
from pytest_replay.session import (
    SessionError,
    SessionReplayer,
    capture_sessions,
    run_session_record,
    session_registry,
    trace_class,
)
from pytest_replay.timeline import first_fault, snapshot_at
from pytest_replay.trace import replay_trace


class Ledger:
    """A small stateful object; module level, so replay finds it by import path."""

    def __init__(self, owner: str, limit: int = 100) -> None:
        self.owner = owner
        self.limit = limit
        self.balance = 0
        self.entries: list[int] = []
        self.reset_count()

    def reset_count(self) -> None:
        self.count = 0

    def deposit(self, amount: int) -> int:
        if amount <= 0:
            raise ValueError(f"deposit must be positive, got {amount}")
        if self.balance + amount > self.limit:
            raise OverflowError("over the limit")
        self.balance += amount
        self.entries.append(amount)
        self.count += 1
        return self.balance

    def deposit_twice(self, amount: int) -> int:
        self.deposit(amount)  # a call on its own instance: part of this step
        return self.deposit(amount)

    def withdraw(self, amount: int) -> int:
        self.balance -= amount
        self.entries.append(-amount)
        self.count += 1
        return self.balance

    def report(self) -> dict[str, Any]:
        return {"owner": self.owner, "balance": self.balance, "n": len(self.entries)}

    def _private(self) -> int:
        return self.balance

    @property
    def empty(self) -> bool:
        return self.balance == 0

    @staticmethod
    def unit() -> str:
        return "EUR"


trace_class(Ledger, snapshot_every=3)
LEDGER_KEY = f"{__name__}.Ledger"


def use_ledger(ledger: Ledger) -> None:
    ledger.deposit(10)
    ledger.deposit_twice(5)
    ledger.withdraw(3)
    assert ledger.empty is False
    assert ledger.unit() == "EUR"
    ledger._private()
    with pytest.raises(ValueError, match="positive"):
        ledger.deposit(-1)
    ledger.report()
    ledger.deposit(amount=8)


def record_ledger() -> dict[str, Any]:
    with capture_sessions() as capture:
        use_ledger(Ledger("ann", limit=50))
    (record,) = capture.records()
    return record


def strip_meta(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "meta"}
    out["children"] = [strip_meta(c) for c in record.get("children", [])]
    return out


# --------------------------------------------------------------------------- recording


def test_a_session_records_constructor_then_public_calls_in_order() -> None:
    record = record_ledger()
    assert record["kind"] == "session"
    assert record["key"] == LEDGER_KEY
    assert record["target"] == f"{__name__}:Ledger"
    assert record["args"] == ["ann", 50]  # bound: limit= spelled as keyword is canonical
    assert record["kwargs"] == {}
    steps = record["children"]
    assert [s["key"].rsplit(".", 1)[1] for s in steps] == [
        "deposit", "deposit_twice", "withdraw", "deposit", "report", "deposit",
    ]  # fmt: skip
    assert all(s["kind"] == "step" for s in steps)
    assert [s["args"] for s in steps] == [[10], [5], [3], [-1], [], [8]]
    assert [s.get("result") for s in steps] == [
        10,
        20,
        17,
        None,
        {"owner": "ann", "balance": 17, "n": 4},
        25,
    ]
    assert steps[3]["error"] == {
        "type": "builtins.ValueError",
        "message": "deposit must be positive, got -1",
        "args": ["deposit must be positive, got -1"],
    }
    assert record["result"]["calls"] == 6
    assert record["unreplayable"] is None
    assert record["meta"]["snapshot_every"] == 3


def test_snapshots_every_n_calls_and_after_each_fault() -> None:
    record = record_ledger()
    snapshots = record["result"]["snapshots"]
    # after 3 calls (every=3), after the fault at step 3 (-> at 4), after 6 calls
    assert [s["at"] for s in snapshots] == [3, 4, 6]
    assert snapshots[0]["state"] == {
        "owner": "ann", "limit": 50, "count": 4, "balance": 17, "entries": [10, 5, 5, -3],
    }  # fmt: skip


def test_the_exception_reaches_the_caller_unchanged() -> None:
    with capture_sessions() as capture:
        ledger = Ledger("bo", limit=1)
        with pytest.raises(OverflowError) as info:
            ledger.deposit(5)
    assert info.value.args == ("over the limit",)
    assert capture.records()[0]["children"][0]["error"]["type"] == "builtins.OverflowError"


def test_same_session_twice_is_stored_once_and_ids_are_stable() -> None:
    with capture_sessions() as capture:
        use_ledger(Ledger("ann", limit=50))
        use_ledger(Ledger("ann", limit=50))
        other = Ledger("ann", limit=50)
        other.deposit(1)
    records = capture.records()
    assert len(records) == 2
    assert records[0]["id"] == record_ledger()["id"]
    assert records[1]["id"] != records[0]["id"]


def test_nothing_is_recorded_outside_a_capture() -> None:
    before = Ledger("x")
    with capture_sessions() as capture:
        before.deposit(1)  # made before recording started
        inside = Ledger("y")
        inside.deposit(2)
    inside.deposit(3)  # after the capture closed
    records = capture.records()
    assert len(records) == 1
    assert [s["args"] for s in records[0]["children"]] == [[2]]
    assert not session._LOGS


def test_subclasses_are_not_recorded_unless_traced() -> None:
    class Sub(Ledger):
        pass

    with capture_sessions() as capture:
        Sub("s").deposit(1)
    assert capture.records() == []


def test_unencodable_state_records_no_snapshots_with_the_reason() -> None:
    @trace_class(snapshot_every=1)  # type: ignore[call-overload]
    class WithLock:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.n = 0

        def bump(self) -> int:
            self.n += 1
            return self.n

    with capture_sessions() as capture:
        w = WithLock()
        w.bump()
        w.bump()
    (record,) = capture.records()
    assert record["result"]["snapshots"] == []
    assert "state not encodable" in record["meta"]["state"]
    assert "lock" in record["meta"]["state"]
    assert record["unreplayable"] is None  # the calls themselves replay fine
    assert run_session_record(record).ok


def test_opaque_inputs_make_the_session_unreplayable() -> None:
    with capture_sessions() as capture:
        Ledger("z").report()
        with pytest.raises(TypeError):
            Ledger("w").withdraw(threading.Lock())  # type: ignore[arg-type]
        Ledger("v", limit=threading.Lock())  # type: ignore[arg-type]
    records = capture.records()
    assert records[0]["unreplayable"] is None
    assert "step 0 (withdraw) inputs" in records[1]["unreplayable"]
    assert "lock" in records[1]["unreplayable"]
    assert "constructor inputs" in records[2]["unreplayable"]
    with pytest.raises(SessionError, match="unreplayable: step 0 \\(withdraw\\) inputs"):
        SessionReplayer(records[1])


def test_constructor_error_is_recorded_and_replayed() -> None:
    @trace_class
    class Strict:
        def __init__(self, n: int) -> None:
            if n < 0:
                raise ValueError("n must be >= 0")
            self.n = n

    with capture_sessions() as capture:
        with pytest.raises(ValueError, match=">= 0"):
            Strict(-1)
    (record,) = capture.records()
    assert record["error"]["message"] == "n must be >= 0"
    assert "result" not in record
    assert record["children"] == []
    outcome = run_session_record(record)
    assert outcome.ok, outcome.text
    replayer = SessionReplayer(record)
    with pytest.raises(SessionError, match="raised as recorded"):
        replayer.step()


def test_redact_and_secret_scanner_keep_secrets_out() -> None:
    @trace_class(redact=["pin"])  # type: ignore[call-overload]
    class Vault:
        def __init__(self, api_key: str) -> None:
            self.api_key = api_key

        def open(self, pin: str, note: str) -> str:
            return "Bearer abcdefghijklmnopqrstuvwxyz0123456789"

    with capture_sessions() as capture:
        Vault("sk-live-0123456789abcdefghijklmnop").open("1234", note="hello")
    data = codec.dumps(capture.records()[0])
    for secret in (b"sk-live-0123456789", b"1234", b"abcdefghijklmnopqrstuvwxyz0123456789"):
        assert secret not in data
    assert b"hello" in data


def test_async_methods_record_and_replay() -> None:
    @trace_class
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        async def add(self, k: int) -> int:
            await asyncio.sleep(0)
            self.n += k
            return self.n

    async def run() -> None:
        c = Counter()
        await c.add(2)
        await c.add(3)

    with capture_sessions() as capture:
        asyncio.run(run())
    (record,) = capture.records()
    assert [s["result"] for s in record["children"]] == [2, 5]
    outcome = run_session_record(record)
    assert outcome.ok
    assert outcome.replayed == 2


def test_replay_trace_on_a_class_records_sessions() -> None:
    @replay_trace(key="tests.traced-box")
    class Box:
        def __init__(self) -> None:
            self.items: list[str] = []

        def put(self, item: str) -> int:
            self.items.append(item)
            return len(self.items)

    assert session_registry()["tests.traced-box"].cls is Box
    with capture_sessions() as capture:
        Box().put("a")
    (record,) = capture.records()
    assert record["key"] == "tests.traced-box"
    assert [s["key"] for s in record["children"]] == ["tests.traced-box.put"]
    assert run_session_record(record).ok  # found through the registry (a local class)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"boundary": True}, TypeError, "boundary= is not supported on a class"),
        ({"seed_random": True}, TypeError, "seed_random= is not supported"),
        ({"resources": {"db": "db"}}, TypeError, "resources= is not supported"),
        ({"colour": "red"}, TypeError, "unknown option 'colour'"),
        ({"snapshot_every": 0}, ValueError, "snapshot_every must be a positive int"),
        ({"snapshot_every": "5"}, ValueError, "snapshot_every must be a positive int"),
    ],
)
def test_trace_class_option_errors(options: dict[str, Any], error: type, match: str) -> None:
    class Plain:
        pass

    with pytest.raises(error, match=match):
        trace_class(Plain, **options)


def test_trace_class_misuse() -> None:
    with pytest.raises(TypeError, match="expects a class"):
        trace_class(len)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="already traced"):
        trace_class(Ledger)


def test_write_then_read_back_from_a_cassette(tmp_path: Path) -> None:
    with capture_sessions() as capture:
        use_ledger(Ledger("ann", limit=50))
    (path,) = capture.write(tmp_path)
    assert path.name == f"{LEDGER_KEY}.cassette"
    assert capture.write(tmp_path) == []  # same session: nothing new to add
    (stored,) = Cassette.open(path).records()
    again = record_ledger()
    assert stored["id"] == again["id"]
    assert strip_meta(stored) == strip_meta(again)  # durations differ, nothing else
    fault = first_fault(path)
    assert fault is not None
    assert fault.fault is not None
    assert fault.fault.startswith("step 3 (")
    assert "deposit must be positive" in fault.fault
    assert snapshot_at(path, 0).kind == "session"
    assert run_session_record(stored, cassette=str(path)).ok


def test_max_records_keeps_the_first_sessions() -> None:
    @trace_class(max_records=2)  # type: ignore[call-overload]
    class Tiny:
        def poke(self, n: int) -> int:
            return n

    with capture_sessions() as capture:
        for n in range(4):
            Tiny().poke(n)
    assert [r["children"][0]["args"] for r in capture.records()] == [[0], [1]]


def test_sessions_from_threads_are_recorded() -> None:
    with capture_sessions() as capture:
        threads = [
            threading.Thread(target=lambda i=i: Ledger(f"t{i}").deposit(i + 1)) for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    owners = sorted(r["args"][0] for r in capture.records())
    assert owners == ["t0", "t1", "t2", "t3"]


# --------------------------------------------------------------------------- replaying


def test_replay_all_matches_an_unchanged_class() -> None:
    outcome = run_session_record(record_ledger())
    assert outcome.ok
    assert outcome.replayed == 6
    assert outcome.total_steps == 6
    assert outcome.divergence is None
    assert outcome.text.endswith("replayed 6 of 6 steps: all matched")


def test_step_by_step() -> None:
    replayer = SessionReplayer(record_ledger())
    assert replayer.total == 6
    assert replayer.position == 0
    first = replayer.step()
    assert first.index == 0
    assert first.method == "deposit"
    assert first.call == "deposit(10)"
    assert first.matched
    assert first.actual.value == 10
    results = list(replayer)
    assert [r.index for r in results] == [1, 2, 3, 4, 5]
    assert all(r.matched for r in results)
    assert results[2].expected.raised
    assert results[2].actual.raised
    assert replayer.done
    with pytest.raises(SessionError, match="all 6 steps are replayed"):
        replayer.step()
    replayer.reset()
    assert replayer.position == 0
    assert replayer.step().actual.value == 10


def test_replay_from_starts_at_the_nearest_snapshot() -> None:
    record = record_ledger()
    replayer = SessionReplayer(record)
    assert replayer.nearest_snapshot(5) == 4
    assert replayer.nearest_snapshot(2) == 0
    outcome = replayer.replay_from(5)
    assert outcome.ok
    assert outcome.started_at == 4
    assert outcome.replayed == 2  # steps 4 and 5 only
    assert "from step 4" in outcome.text
    replayer = SessionReplayer(record)
    assert replayer.seek(3) == 3
    assert replayer.instance.balance == 17  # restored without running steps 0..2
    assert replayer.step().index == 3
    assert replayer.seek(1) == 0
    assert replayer.position == 0
    assert replayer.seek(6) == 6
    assert replayer.done


@pytest.mark.parametrize("k", [-1, 7, "2", True])
def test_seek_out_of_range(k: Any) -> None:
    replayer = SessionReplayer(record_ledger())
    with pytest.raises(SessionError, match=r"valid steps are 0\.\.6"):
        replayer.seek(k)


def test_a_bug_is_caught_at_the_exact_step(monkeypatch: pytest.MonkeyPatch) -> None:
    record = record_ledger()
    original = Ledger.withdraw

    def withdraw_with_fee(self: Ledger, amount: int) -> int:
        return original(self, amount + 1)  # the regression: a hidden fee

    monkeypatch.setattr(Ledger, "withdraw", withdraw_with_fee)
    outcome = run_session_record(record, cassette="cassettes/ledger.cassette")
    assert not outcome.ok
    assert outcome.divergence is not None
    assert outcome.divergence.index == 2
    assert outcome.last_match is not None
    assert outcome.last_match.index == 1
    text = outcome.text
    lines = text.splitlines()
    assert lines[0] == f"session {LEDGER_KEY} [{record['id']}] diverged at step 2 of 6 steps"
    assert "  cassette:  cassettes/ledger.cassette" in lines
    assert "  constructed as Ledger('ann', 50)" in lines
    assert "  step 2: withdraw(3)" in lines
    assert "  expected:  returned 17" in lines
    assert "  actual:    returned 16" in lines
    assert "    <root>: 17 → 16" in lines
    assert lines[-1] == "  last matching step: 1: deposit_twice(5) returned 20"


def test_a_state_change_without_an_output_change_is_caught_at_the_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = record_ledger()
    original = Ledger.withdraw

    def withdraw_and_forget(self: Ledger, amount: int) -> int:
        result = original(self, amount)
        self.entries.pop()  # same return value, different state
        return result

    monkeypatch.setattr(Ledger, "withdraw", withdraw_and_forget)
    outcome = run_session_record(record)
    assert outcome.divergence is not None
    assert outcome.divergence.index == 2  # the snapshot after 3 calls
    assert outcome.divergence.comparison.equal
    assert outcome.divergence.state is not None
    assert not outcome.divergence.state.equal
    assert "state after the step differs from the recorded snapshot" in outcome.text
    replayer = SessionReplayer(record, check_state=False)
    assert replayer.replay_all().divergence is not None  # later: report() sees n=3, not 4


def test_an_exception_instead_of_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    record = record_ledger()

    def broken(self: Ledger) -> dict[str, Any]:
        raise KeyError("owner")

    monkeypatch.setattr(Ledger, "report", broken)
    outcome = run_session_record(record)
    assert outcome.divergence is not None
    assert outcome.divergence.index == 4
    assert "raised KeyError: 'owner', expected a result" in outcome.text


def test_a_renamed_method_diverges_with_an_attribute_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = record_ledger()
    monkeypatch.delattr(Ledger, "report")
    outcome = run_session_record(record)
    assert outcome.divergence is not None
    assert outcome.divergence.index == 4
    assert "AttributeError" in outcome.text
    assert "report" in outcome.text


def test_a_constructor_that_now_raises_diverges(monkeypatch: pytest.MonkeyPatch) -> None:
    record = record_ledger()

    def strict_reset(self: Ledger) -> None:
        raise RuntimeError("no reset")

    monkeypatch.setattr(Ledger, "reset_count", strict_reset)
    outcome = run_session_record(record)
    assert outcome.divergence is not None
    assert outcome.divergence.index == -1
    assert "diverged at the constructor" in outcome.text
    assert "raised RuntimeError: no reset, expected a result" in outcome.text
    with pytest.raises(SessionError, match="constructor diverged"):
        SessionReplayer(record).step()


def test_compare_options_of_the_class_apply() -> None:
    @trace_class(ignore=["at"], significant_digits=2)  # type: ignore[call-overload]
    class Sensor:
        def __init__(self) -> None:
            self.calls = 0

        def read(self) -> dict[str, Any]:
            self.calls += 1
            return {"value": 1.0 + self.calls * 0.0001 * Sensor.drift, "at": str(Sensor.drift)}

        drift = 0

    with capture_sessions() as capture:
        Sensor().read()
    (record,) = capture.records()
    Sensor.drift = 3  # a tiny float change and a changed ignored field
    assert run_session_record(record).ok
    Sensor.drift = 300  # now beyond 2 significant digits
    outcome = run_session_record(record)
    assert outcome.divergence is not None
    assert "value: 1.0 → 1.03" in outcome.text
    assert "at:" not in outcome.text


def test_replaying_never_records_itself() -> None:
    record = record_ledger()
    with capture_sessions() as capture:
        assert run_session_record(record).ok
    assert capture.records() == []


# --------------------------------------------------------------------------- bad records


def test_a_call_record_is_not_a_session() -> None:
    record = record_ledger()
    call = dict(record, kind="call")
    with pytest.raises(SessionError, match="of kind 'call', not a session"):
        SessionReplayer(call)


def test_malformed_steps() -> None:
    record = dict(record_ledger(), children="nope")
    with pytest.raises(SessionError, match="steps are malformed"):
        SessionReplayer(record)


def test_class_that_cannot_be_found() -> None:
    record = dict(record_ledger(), target="no_such_module_xyz:Ledger", key="gone.Ledger")
    with pytest.raises(
        SessionError,
        match=r"cannot import 'no_such_module_xyz:Ledger'.*"
        r"@replay_trace\(key='gone.Ledger'\)",
    ):
        SessionReplayer(record)
    record = dict(record, target=f"{__name__}:use_ledger")
    with pytest.raises(SessionError, match="is not a class"):
        SessionReplayer(record)
    record = dict(record, target="")
    with pytest.raises(SessionError, match="the record has no target"):
        SessionReplayer(record)


def test_explicit_class_overrides_the_target() -> None:
    record = dict(record_ledger(), target="no_such_module_xyz:Ledger")
    assert SessionReplayer(record, cls=Ledger).replay_all().ok


def test_malformed_snapshot() -> None:
    record = record_ledger()
    record["result"]["snapshots"][0]["state"] = [1, 2]
    replayer = SessionReplayer(record)
    with pytest.raises(SessionError, match="a snapshot is malformed"):
        replayer.seek(3)


# --------------------------------------------------------------------------- the recorder


def test_sessions_go_through_the_recording_session(tmp_path: Path) -> None:
    from pytest_replay.session import emit_sessions
    from pytest_replay.trace import recording

    with recording(tmp_path, durations=False) as recorder:
        use_ledger(Ledger("ann", limit=50))
        # RecordingSession.collect() calls this; calling it twice emits nothing new.
        assert emit_sessions(recorder) == 1
        assert emit_sessions(recorder) == 0
    assert [k.key for k in recorder.report.keys] == [LEDGER_KEY]  # type: ignore[attr-defined]
    (stored,) = Cassette.open(tmp_path / f"{LEDGER_KEY}.cassette").records()
    assert stored["id"] == record_ledger()["id"]
    assert "duration_ms" not in stored["meta"]
    assert run_session_record(stored).ok


def test_the_recorder_scans_session_values_for_secrets(tmp_path: Path) -> None:
    from pytest_replay.session import emit_sessions
    from pytest_replay.trace import recording

    with recording(tmp_path) as recorder:
        Ledger("token=Bearer abcdefghijklmnopqrstuvwxyz012345").report()
        emit_sessions(recorder)
    data = (tmp_path / f"{LEDGER_KEY}.cassette").read_bytes()
    assert b"abcdefghijklmnopqrstuvwxyz012345" not in data
    assert recorder.report.secrets_redacted >= 1  # type: ignore[attr-defined]
