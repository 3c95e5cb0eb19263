"""Stateful sessions: an object's life recorded as ordered steps, replayed step by step.

``@replay_trace`` on a class (``trace_class`` here) records one *session* per
instance made while recording: the constructor inputs, then every public
method call on the instance in order with its outcome, and, when the
instance's state is encodable, a state snapshot every ``snapshot_every`` calls
and after each call that raised. A session is stored as one record of kind
``"session"`` (see ``record.py``):

===========  ================================================================
``args``     the constructor's positional arguments (bound, canonical)
``kwargs``   the constructor's keyword arguments
``result``   ``{"calls": n, "snapshots": [{"at": k, "state": {...}}, ...]}``;
             a snapshot ``at`` k is the state *before* step k (after k calls)
``error``    present instead of ``result`` when the constructor raised
``children`` the steps, in call order: record maps of kind ``"step"`` with key
             ``<session key>.<method>``, ``args``/``kwargs`` (without ``self``)
             and ``result`` or ``error``
``meta``     ``snapshot_every``, ``duration_ms``, and ``state`` (why there are
             no snapshots, when the state is not encodable)
===========  ================================================================

The record id hashes the key, the constructor inputs and every step's method
and inputs, so the same session recorded twice is stored once.

:class:`SessionReplayer` is the replay engine (the pytest item and a debugger
use the same API); :func:`run_session_record` runs a whole record.

Calls a method makes on its own instance (``self.other()``) are part of the
outer step, not steps of their own. Properties, class and static methods and
dunder methods are not steps. Subclasses are recorded only when decorated
themselves.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, overload

from . import codec
from .compare import (
    CompareOptions,
    Comparison,
    Outcome,
    compare_outcomes,
    compare_values,
    error_info,
    format_value,
    type_path,
)
from .record import ErrorInfo, record_id

__all__ = [
    "SNAPSHOT_EVERY",
    "SessionCapture",
    "SessionError",
    "SessionLog",
    "SessionOutcome",
    "SessionReplayer",
    "SessionSink",
    "SessionSpec",
    "StepResult",
    "capture_sessions",
    "emit_sessions",
    "install_sink",
    "run_session_record",
    "session_registry",
    "trace_class",
    "uninstall_sink",
]

#: Default number of calls between two state snapshots.
SNAPSHOT_EVERY = 50

_C = TypeVar("_C", bound=type)

_SPEC_ATTR = "__replay_session_spec__"

# Options of @replay_trace that mean nothing for a class; refused with a reason.
_UNSUPPORTED = {
    "boundary": "a boundary is a call whose answer is replayed; trace the methods that "
    "talk to the outside world as functions with boundary=True instead",
    "resources": "constructor parameters cannot be fixtures; pass the resource to a method",
    "seed_random": "seed the random module in the constructor from a recorded argument",
    "metadata": "attach metadata to the functions the methods call",
}


class SessionError(ValueError):
    """A session record that cannot be replayed, or a misuse of the replayer."""


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class SessionSpec:
    """Everything known about one traced class."""

    key: str
    target: str
    cls: type
    snapshot_every: int
    init: Callable[..., None]
    init_signature: inspect.Signature
    methods: Mapping[str, Callable[..., Any]]
    signatures: Mapping[str, inspect.Signature]
    options: CompareOptions = field(default_factory=CompareOptions)
    redact: tuple[str, ...] = ()
    max_records: int | None = None


_REGISTRY: dict[str, SessionSpec] = {}


def session_registry() -> Mapping[str, SessionSpec]:
    """key -> spec of every class traced with ``@replay_trace`` / :func:`trace_class`."""
    return dict(_REGISTRY)


def _public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    methods: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__[:-1]):  # object's methods are never steps
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if inspect.isfunction(value):
                methods[name] = value
            elif name in methods:  # shadowed by a property/classmethod/attribute
                del methods[name]
    return methods


@overload
def trace_class(cls: _C, /, **options: Any) -> _C: ...


@overload
def trace_class(cls: None = None, /, **options: Any) -> Callable[[_C], _C]: ...


def trace_class(cls: Any = None, /, **options: Any) -> Any:
    """Make a class record a session per instance while recording.

    ``@trace_class`` or ``@trace_class(key=..., snapshot_every=...)``; this is
    what ``@replay_trace`` does on a class. See :func:`_trace_class`.
    """
    if cls is None:
        return functools.partial(_trace_class, **options)
    return _trace_class(cls, **options)


def _trace_class(
    cls: _C,
    *,
    key: str | None = None,
    snapshot_every: int | None = None,
    ignore: tuple[str, ...] | list[str] = (),
    significant_digits: int | None = None,
    ignore_order: bool = False,
    compare: Callable[[Any, Any], object] | None = None,
    redact: tuple[str, ...] | list[str] = (),
    max_records: int | None = None,
    **unsupported: Any,
) -> _C:
    """Make ``cls`` record a session per instance while recording; returns ``cls``.

    The class is changed in place (its ``__init__`` and public methods are
    wrapped), so ``isinstance`` and pickling by reference keep working. When
    nothing records, each wrapped call costs one dictionary check.
    ``redact`` names constructor or method parameters whose values are never
    written. Raises ``TypeError`` for options that make no sense on a class
    and ``ValueError`` for a bad ``snapshot_every``.
    """
    if not inspect.isclass(cls):
        raise TypeError(f"trace_class expects a class, not {type(cls).__name__}")
    for name, value in unsupported.items():
        if name in _UNSUPPORTED:
            if value in (None, False, (), [], {}):
                continue
            raise TypeError(
                f"@replay_trace on class {cls.__qualname__}: {name}= is not "
                f"supported on a class ({_UNSUPPORTED[name]})"
            )
        raise TypeError(f"@replay_trace on class {cls.__qualname__}: unknown option {name!r}")
    every = SNAPSHOT_EVERY if snapshot_every is None else snapshot_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"snapshot_every must be a positive int, not {snapshot_every!r}")
    if _SPEC_ATTR in vars(cls):
        raise TypeError(f"class {cls.__qualname__} is already traced")
    key = key or f"{cls.__module__}.{cls.__qualname__}"
    from .trace import check_key

    check_key(key, f"class {cls.__module__}:{cls.__qualname__}")
    methods = _public_methods(cls)
    init = cls.__init__
    spec = SessionSpec(
        key=key,
        target=f"{cls.__module__}:{cls.__qualname__}",
        cls=cls,
        snapshot_every=every,
        init=init,
        init_signature=inspect.signature(init),
        methods=methods,
        signatures={name: inspect.signature(fn) for name, fn in methods.items()},
        options=CompareOptions(tuple(ignore), significant_digits, ignore_order, compare),
        redact=tuple(redact),
        max_records=max_records,
    )
    type.__setattr__(cls, _SPEC_ATTR, spec)
    type.__setattr__(cls, "__init__", _wrap_init(spec))
    for name, fn in methods.items():
        wrapper = (
            _wrap_async(spec, name, fn)
            if inspect.iscoroutinefunction(fn)
            else _wrap(spec, name, fn)
        )
        type.__setattr__(cls, name, wrapper)
    _REGISTRY[key] = spec
    return cls


# --------------------------------------------------------------------------- recording

# id(instance) -> its live log. Kept outside the instance so that the user's
# own code (vars(self), __eq__, a signature() hashing __dict__) never sees it.
# Empty whenever nothing records: that emptiness is the wrappers' only check.
_LOGS: dict[int, SessionLog] = {}
_LOCK = threading.Lock()
# Logs of the instances whose methods are running in this context: a call a
# method makes on its own instance belongs to the outer step.
_INSIDE: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "pytest_replay_session_inside", default=frozenset()
)
# Set while a SessionReplayer runs user code: a replay never records itself.
_REPLAYING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pytest_replay_session_replaying", default=False
)


class SessionSink(Protocol):
    """Where new sessions go while recording (a capture, or the recorder's glue)."""

    def session_started(self, log: SessionLog) -> None: ...


_SINKS: list[SessionSink] = []


def install_sink(sink: SessionSink) -> None:
    """Start recording sessions of new traced instances into ``sink``."""
    with _LOCK:
        _SINKS.append(sink)


def uninstall_sink(sink: SessionSink) -> None:
    """Stop feeding ``sink`` (sessions it already holds are unaffected)."""
    with _LOCK:
        if sink in _SINKS:
            _SINKS.remove(sink)


def _encode(value: object) -> tuple[Any, tuple[str, ...]]:
    data, reasons = codec.dumps_checked(value)
    return codec.loads_raw(data), reasons


def _bind(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> inspect.BoundArguments | None:
    """The call bound to parameter names (``self`` included), or ``None`` if it does not bind."""
    try:
        return signature.bind(None, *args, **kwargs)
    except TypeError:
        return None  # the call itself raises the same TypeError; nothing to record


def _state_of(obj: object) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for klass in type(obj).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                state[name] = getattr(obj, name)
    state.update(getattr(obj, "__dict__", {}))
    return state


class SessionLog:
    """The session of one live instance, being recorded.

    Every value is redacted (``redact=`` rules, and the secret scanner unless
    ``scan`` is false) and encoded when it is seen, so later mutations of the
    objects cannot change what was recorded.
    """

    def __init__(
        self, spec: SessionSpec, bound: inspect.BoundArguments, *, scan: bool = True
    ) -> None:
        self.spec = spec
        self.scan = scan
        self.secrets = 0
        self.unreplayable: list[str] = []
        self.args, self.kwargs, reasons = self._inputs(bound)
        self._note_opaque("constructor inputs", reasons)
        self.error: dict[str, Any] | None = None
        #: (collection index of the test, sequence number) when fed to a recorder.
        self.order: tuple[int, int] = (-1, 0)
        self.nodeid: str | None = None
        self.steps: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.state_note: str | None = None
        self.duration_ms = 0.0
        self.closed = False
        self._lock = threading.Lock()

    def _note_opaque(self, where: str, reasons: tuple[str, ...]) -> None:
        if reasons:
            self.unreplayable.append(f"{where}: {'; '.join(reasons)}")

    def _clean(self, value: Any, root: str) -> Any:
        if not self.spec.redact and not self.scan:
            return value
        from .redact import scrub_value

        value, scrubber = scrub_value(value, root, self.spec.redact, scan=self.scan)
        self.secrets += scrubber.secrets
        return value

    def _inputs(self, bound: inspect.BoundArguments) -> tuple[Any, Any, tuple[str, ...]]:
        names = list(bound.arguments)
        for name in names[1:]:  # names[0] is self
            bound.arguments[name] = self._clean(bound.arguments[name], name)
        raw_args, reasons = _encode(list(bound.args[1:]))
        raw_kwargs, more = _encode(dict(bound.kwargs))
        return raw_args, raw_kwargs, reasons + more

    def encode_error(self, exc: BaseException) -> dict[str, Any]:
        raw_args, _ = _encode(self._clean(list(exc.args), "error.args"))
        message = self._clean(str(exc), "error.message")
        if not isinstance(message, str):  # the scanner redacted the message
            message = "<redacted>"
        return {"type": type_path(type(exc)), "message": message, "args": raw_args}

    def snapshot(self, obj: object) -> None:
        """Store the state before step ``len(steps)`` (once per position)."""
        at = len(self.steps)
        if self.state_note is not None or (self.snapshots and self.snapshots[-1]["at"] == at):
            return
        state, reasons = _encode(self._clean(_state_of(obj), "state"))
        if reasons:
            self.state_note = "state not encodable, no snapshots: " + "; ".join(reasons)
            return
        self.snapshots.append({"at": at, "state": state})

    def add_step(
        self,
        obj: object,
        method: str,
        bound: inspect.BoundArguments,
        outcome: tuple[bool, Any],
        duration_ms: float,
    ) -> None:
        spec = self.spec
        raw_args, raw_kwargs, reasons = self._inputs(bound)
        step_key = f"{spec.key}.{method}"
        step: dict[str, Any] = {
            "id": record_id(step_key, codec.dumps([raw_args, raw_kwargs])),
            "key": step_key,
            "target": f"{spec.target}.{method}",
            "kind": "step",
            "args": raw_args,
            "kwargs": raw_kwargs,
        }
        raised, value = outcome
        if raised:
            step["error"] = self.encode_error(value)
        else:
            step["result"], result_reasons = _encode(self._clean(value, "return"))
            self._note_opaque(f"step {len(self.steps)} ({method}) result", result_reasons)
        step["children"] = []
        step["boundary"] = False
        step["meta"] = {"duration_ms": round(duration_ms, 3)}
        step["unreplayable"] = None
        with self._lock:
            if self.closed:
                return
            self._note_opaque(f"step {len(self.steps)} ({method}) inputs", reasons)
            self.steps.append(step)
            self.duration_ms += duration_ms
            if raised or len(self.steps) % spec.snapshot_every == 0:
                self.snapshot(obj)

    def to_map(self, *, durations: bool = True) -> dict[str, Any]:
        """The session record map (see the module docstring).

        ``durations=False`` leaves the timings out, so recording the same
        session twice gives byte-identical records.
        """
        spec = self.spec
        calls = [[s["key"].rsplit(".", 1)[-1], s["args"], s["kwargs"]] for s in self.steps]
        data: dict[str, Any] = {
            "id": record_id(spec.key, codec.dumps([self.args, self.kwargs, calls])),
            "key": spec.key,
            "target": spec.target,
            "kind": "session",
            "args": self.args,
            "kwargs": self.kwargs,
        }
        if self.error is not None:
            data["error"] = self.error
        else:
            data["result"] = {"calls": len(self.steps), "snapshots": list(self.snapshots)}
        if durations:
            data["children"] = list(self.steps)
        else:
            data["children"] = [
                {**step, "meta": {k: v for k, v in step["meta"].items() if k != "duration_ms"}}
                for step in self.steps
            ]
        data["boundary"] = False
        meta: dict[str, Any] = {"snapshot_every": spec.snapshot_every}
        if durations:
            meta["duration_ms"] = round(self.duration_ms, 3)
        meta["nodeid"] = self.nodeid
        if self.state_note is not None:
            meta["state"] = self.state_note
        data["meta"] = meta
        data["unreplayable"] = "; ".join(self.unreplayable) or None
        return data

    def close(self) -> None:
        """Stop recording this session: later calls on the instance are not steps."""
        with self._lock:
            self.closed = True
        with _LOCK:
            for ident, log in list(_LOGS.items()):
                if log is self:
                    del _LOGS[ident]


def _recording() -> bool:
    """Is anything recording sessions? (a capture, or a trace.RecordingSession)."""
    if _SINKS:
        return True
    # Runs on every construction of a traced class: no import machinery. If
    # trace.py was never imported, no RecordingSession can be active.
    trace = sys.modules.get("pytest_replay.trace")
    return trace is not None and isinstance(trace.active(), trace.RecordingSession)


def _start(spec: SessionSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SessionLog | None:
    with _LOCK:
        sinks: list[SessionSink] = list(_SINKS)
    from . import trace

    recorder = trace.active()
    scan = True
    if isinstance(recorder, trace.RecordingSession):
        sinks.append(_recorder_sink(recorder))
        scan = not recorder.allow_secrets
    bound = _bind(spec.init_signature, args, kwargs)
    if not sinks or bound is None:
        return None
    log = SessionLog(spec, bound, scan=scan)
    for sink in sinks:
        sink.session_started(log)
    return log


def _attach(obj: object, log: SessionLog) -> None:
    ident = id(obj)
    with _LOCK:
        _LOGS[ident] = log
    try:
        weakref.finalize(obj, _LOGS.pop, ident, None)
    except TypeError:  # not weak-referenceable: dropped when the log is closed
        pass


def _wrap_init(spec: SessionSpec) -> Callable[..., None]:
    init = spec.init
    cls = spec.cls

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if _LOGS:
            _LOGS.pop(id(self), None)  # a stale entry of a dead instance with this id
        if type(self) is not cls or _REPLAYING.get() or not _recording():
            init(self, *args, **kwargs)
            return
        log = _start(spec, args, kwargs)
        if log is None:
            init(self, *args, **kwargs)
            return
        token = _INSIDE.set(_INSIDE.get() | {id(log)})
        started = time.perf_counter()
        try:
            init(self, *args, **kwargs)
        except BaseException as exc:
            log.error = log.encode_error(exc)
            log.duration_ms = (time.perf_counter() - started) * 1000
            log.close()
            raise
        finally:
            _INSIDE.reset(token)
        log.duration_ms = (time.perf_counter() - started) * 1000
        _attach(self, log)

    return __init__


_Step = tuple["SessionLog", inspect.BoundArguments, "contextvars.Token[frozenset[int]]"]


def _begin_step(
    obj: object, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _Step | None:
    """The log this call is a step of, its bound inputs, and the token that marks
    ``obj``'s log as inside a step; ``None`` when the call is not recorded."""
    log = _LOGS.get(id(obj))
    if log is None or log.closed or id(log) in _INSIDE.get():
        return None
    bound = _bind(signature, args, kwargs)
    if bound is None:
        return None
    return log, bound, _INSIDE.set(_INSIDE.get() | {id(log)})


def _end_step(
    step: _Step, obj: object, name: str, started: float, outcome: tuple[bool, Any]
) -> None:
    elapsed = (time.perf_counter() - started) * 1000
    log, bound, token = step
    _INSIDE.reset(token)
    log.add_step(obj, name, bound, outcome, elapsed)


# The sync and async wrappers differ only by their awaits; what a step is
# lives in _begin_step and _end_step.
def _wrap(spec: SessionSpec, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    signature = spec.signatures[name]

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Hot path when nothing records: one truthiness check of a dict.
        if not _LOGS:
            return fn(self, *args, **kwargs)
        step = _begin_step(self, signature, args, kwargs)
        if step is None:
            return fn(self, *args, **kwargs)
        started = time.perf_counter()
        try:
            result = fn(self, *args, **kwargs)
        except Exception as exc:
            _end_step(step, self, name, started, (True, exc))
            raise
        except BaseException:
            _INSIDE.reset(step[2])
            raise
        _end_step(step, self, name, started, (False, result))
        return result

    return wrapper


def _wrap_async(spec: SessionSpec, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    signature = spec.signatures[name]

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _LOGS:
            return await fn(self, *args, **kwargs)
        step = _begin_step(self, signature, args, kwargs)
        if step is None:
            return await fn(self, *args, **kwargs)
        started = time.perf_counter()
        try:
            result = await fn(self, *args, **kwargs)
        except Exception as exc:
            _end_step(step, self, name, started, (True, exc))
            raise
        except BaseException:
            _INSIDE.reset(step[2])
            raise
        _end_step(step, self, name, started, (False, result))
        return result

    return wrapper


class SessionCapture:
    """Sessions recorded inside :func:`capture_sessions`, as record maps."""

    def __init__(self, *, durations: bool = True) -> None:
        self.durations = durations
        self.logs: list[SessionLog] = []
        self._lock = threading.Lock()

    def session_started(self, log: SessionLog) -> None:
        with self._lock:
            self.logs.append(log)

    def close(self) -> None:
        for log in self.logs:
            log.close()

    def records(self, key: str | None = None) -> list[dict[str, Any]]:
        """Record maps in the order the sessions started; the same session once.

        A class's ``max_records`` keeps the first N distinct sessions of its key.
        """
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        per_key: dict[str, int] = {}
        for log in list(self.logs):
            if key is not None and log.spec.key != key:
                continue
            record = log.to_map(durations=self.durations)
            cap = log.spec.max_records
            if record["id"] in seen or (cap is not None and per_key.get(record["key"], 0) >= cap):
                continue
            seen.add(record["id"])
            per_key[record["key"]] = per_key.get(record["key"], 0) + 1
            out.append(record)
        return out

    def keys(self) -> list[str]:
        return list(dict.fromkeys(log.spec.key for log in self.logs))

    def write(self, replay_dir: str | Path) -> list[Path]:
        """Add the sessions to ``<replay_dir>/<key>.cassette`` files (``new`` mode).

        Sessions already in a cassette (same id) are kept untouched, new ones
        are appended; returns the cassettes written.
        """
        from .cassette import Cassette, cassette_path

        directory = Path(replay_dir)
        directory.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for key in self.keys():
            path = cassette_path(directory, key)
            records = self.records(key)
            if path.exists():
                cassette = Cassette.open(path)
                known = {str(r.get("id")) for r in cassette.records()}
                fresh = [r for r in records if r["id"] not in known]
                if fresh:
                    cassette.append(fresh)
                    written.append(path)
            else:
                Cassette.create(path, key, records)
                written.append(path)
        return written


class _RecorderSink:
    """Feeds sessions to a ``trace.RecordingSession`` (``--replay-record``, ``recording()``).

    A session takes its place in the recording's order when it starts (the
    running test's collection index, then the recorder's call sequence) and is
    emitted, whole, when the recording collects its records: the rules for
    calls (failed tests dropped, dedup by id, ``max_records``) apply unchanged.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.logs: list[SessionLog] = []
        self._lock = threading.Lock()

    def session_started(self, log: SessionLog) -> None:
        recorder = self.recorder
        index, nodeid = recorder._test
        log.order = (index, next(recorder._seq))
        log.nodeid = nodeid
        with self._lock:
            self.logs.append(log)

    def emit(self) -> int:
        from .store import PendingRecord

        with self._lock:
            logs, self.logs = self.logs, []
        recorder = self.recorder
        for log in logs:
            log.close()
            record = log.to_map(durations=getattr(recorder, "durations", True))
            recorder.buffer.secrets_redacted += log.secrets
            cap = recorder.max_records or log.spec.max_records or recorder.default_max_records
            # Attributed to the test that created the instance (log.order), not
            # to whatever runs now: the recorder keeps or drops it by that test.
            test, seq = log.order
            recorder._emit(
                PendingRecord(
                    test=test,
                    seq=seq,
                    id=record["id"],
                    payload=codec.dumps(record),
                    key=record["key"],
                    target=record["target"],
                    unreplayable=record["unreplayable"],
                    cap=cap,
                )
            )
        return len(logs)


# One sink per live RecordingSession; weak, so a finished recording is forgotten.
_RECORDER_SINKS: weakref.WeakKeyDictionary[Any, _RecorderSink] = weakref.WeakKeyDictionary()


def _recorder_sink(recorder: Any) -> _RecorderSink:
    with _LOCK:
        sink = _RECORDER_SINKS.get(recorder)
        if sink is None:
            sink = _RECORDER_SINKS[recorder] = _RecorderSink(recorder)
        return sink


def emit_sessions(recorder: Any) -> int:
    """Close the sessions recorded by ``recorder`` and hand them to it as records.

    Called by ``trace.RecordingSession.collect()`` before it commits what it
    holds; returns the number of sessions emitted.
    """
    with _LOCK:
        sink = _RECORDER_SINKS.get(recorder)
    return sink.emit() if sink is not None else 0


@contextmanager
def capture_sessions(*, durations: bool = True) -> Iterator[SessionCapture]:
    """Record the sessions of traced instances created inside the block.

    Usable without pytest. On exit the sessions are closed (later calls are not
    recorded); ``capture.records()`` gives the record maps and
    ``capture.write(dir)`` stores them in cassettes. ``durations=False`` leaves
    timings out, so the same code records byte-identical cassettes.
    """
    capture = SessionCapture(durations=durations)
    install_sink(capture)
    try:
        yield capture
    finally:
        uninstall_sink(capture)
        capture.close()


# --------------------------------------------------------------------------- replaying


@dataclass(frozen=True)
class StepResult:
    """One replayed step: the call, what it did then and now, and the verdict."""

    index: int
    method: str
    call: str
    expected: Outcome
    actual: Outcome
    comparison: Comparison
    state: Comparison | None = None

    @property
    def matched(self) -> bool:
        return self.comparison.equal and (self.state is None or self.state.equal)

    def describe(self, indent: str = "  ") -> list[str]:
        lines = [
            f"{indent}step {self.index}: {self.call}",
            f"{indent}expected:  {self.expected.describe(100)}",
            f"{indent}actual:    {self.actual.describe(100)}",
        ]
        if not self.comparison.equal:
            lines.append(f"{indent}differences (expected → actual):")
            lines.extend(f"{indent}  {line}" for line in self.comparison.lines())
        if self.state is not None and not self.state.equal:
            lines.append(
                f"{indent}state after the step differs from the recorded snapshot "
                f"(expected → actual):"
            )
            lines.extend(f"{indent}  {line}" for line in self.state.lines())
        return lines


@dataclass(frozen=True)
class SessionOutcome:
    """The result of replaying a session (or part of one)."""

    key: str
    record_id: str
    total_steps: int
    started_at: int
    replayed: int
    divergence: StepResult | None
    last_match: StepResult | None
    constructor: str
    cassette: str | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None

    @property
    def text(self) -> str:
        """The failure text (or a one-line success summary)."""
        if self.divergence is None:
            start = f" from step {self.started_at}" if self.started_at else ""
            return (
                f"session {self.key} [{self.record_id}] replayed {self.replayed} of "
                f"{self.total_steps} steps{start}: all matched"
            )
        point = self.divergence
        where = "the constructor" if point.index < 0 else f"step {point.index}"
        lines = [
            f"session {self.key} [{self.record_id}] diverged at {where} of {self.total_steps} steps"
        ]
        if self.cassette:
            lines.append(f"  cassette:  {self.cassette}")
        lines.append(f"  constructed as {self.constructor}")
        lines.extend(point.describe())
        if self.last_match is not None:
            last = self.last_match
            lines.append(
                f"  last matching step: {last.index}: {last.call} {last.actual.describe(60)}"
            )
        elif point.index >= 0:
            origin = self.started_at
            lines.append(
                "  last matching step: none"
                + (f" (replay started at snapshot {origin})" if origin else "")
            )
        return "\n".join(lines)


def _resolve_class(record: Mapping[str, Any], key: str) -> tuple[type, SessionSpec | None]:
    target = str(record.get("target") or "")
    module_name, _, qualname = target.partition(":")
    problem = "the record has no target"
    if module_name and qualname:
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            problem = f"cannot import {target!r} ({exc})"
        else:
            if inspect.isclass(obj):
                # Only a class traced under the record's key is ever built: a
                # cassette naming subprocess:Popen must not make a replay run it.
                own = vars(obj).get(_SPEC_ATTR)
                if isinstance(own, SessionSpec) and own.key == key:
                    return obj, own
                registered = _REGISTRY.get(key)
                if registered is not None:
                    return registered.cls, registered
                from .replayer import short_name

                raise SessionError(
                    f"session {short_name(key)}: target {short_name(target)} is not a class "
                    "traced by pytest-replay under this key; refusing to construct it; "
                    f"re-record it, or give the class @replay_trace(key={short_name(key)!r})"
                )
            problem = f"{target!r} is not a class"
    spec = _REGISTRY.get(key)
    if spec is not None:
        return spec.cls, spec
    raise SessionError(
        f"session {key}: {problem}, and no class is traced under that key; "
        f"re-record it, or give the class @replay_trace(key={key!r})"
    )


def _call_text(method: str, args: list[Any], kwargs: Mapping[str, Any]) -> str:
    parts = [format_value(a, 40) for a in args]
    parts += [f"{k}={format_value(v, 40)}" for k, v in kwargs.items()]
    text = f"{method}({', '.join(parts)})"
    return text if len(text) <= 160 else text[:159] + "…"


def _expected_outcome(step: Mapping[str, Any]) -> Outcome:
    error = step.get("error")
    if error is not None:
        return Outcome(error=ErrorInfo.from_map(error))
    return Outcome(value=codec.decode(step.get("result")))


class SessionReplayer:
    """Steps through a recorded session one call at a time.

    ``record`` is a session record map as read from a cassette. A fresh
    instance is built from the recorded constructor inputs; ``step()`` applies
    the next call and compares its outcome (and, at snapshot points, the
    instance's state) with the recording. Construction errors (not a session,
    unreplayable, class not found) raise :class:`SessionError`.
    """

    def __init__(
        self,
        record: Mapping[str, Any],
        *,
        cls: type | None = None,
        options: CompareOptions | None = None,
        check_state: bool = True,
        cassette: str | None = None,
    ) -> None:
        if record.get("kind") != "session":
            raise SessionError(
                f"record {record.get('id', '?')} of {record.get('key', '?')} is of kind "
                f"{record.get('kind', 'call')!r}, not a session: replay it as a call"
            )
        self.record = record
        self.key = str(record.get("key", "?"))
        self.record_id = str(record.get("id", "?"))
        self.cassette = cassette
        reason = record.get("unreplayable")
        if reason:
            raise SessionError(
                f"session {self.key} [{self.record_id}] is unreplayable: {reason}; make the "
                f"values encodable (dataclass, attrs or codec.register_type) and re-record"
            )
        steps = record.get("children")
        result = record.get("result")
        if not isinstance(steps, list) or not all(isinstance(s, Mapping) for s in steps):
            raise SessionError(f"session {self.key} [{self.record_id}]: steps are malformed")
        self.steps: list[Mapping[str, Any]] = steps
        snapshots = result.get("snapshots", []) if isinstance(result, Mapping) else []
        self.snapshots: dict[int, Any] = {}
        for snap in snapshots if isinstance(snapshots, list) else []:
            if isinstance(snap, Mapping) and isinstance(snap.get("at"), int):
                self.snapshots[int(snap["at"])] = snap.get("state")
        if cls is None:
            cls, spec = _resolve_class(record, self.key)
        else:
            spec = vars(cls).get(_SPEC_ATTR)
        self.cls = cls
        self.spec: SessionSpec | None = spec
        self._check_steps(cls, spec)
        base = spec.options if spec is not None else CompareOptions()
        self.options = base.merged(options) if options is not None else base
        self.check_state = check_state
        self.args = list(codec.decode(record.get("args") or []))  # type: ignore[call-overload]
        self.kwargs = dict(codec.decode(record.get("kwargs") or {}))  # type: ignore[call-overload]
        self.constructor = _call_text(cls.__name__, self.args, self.kwargs)
        self.instance: Any = None
        self.position = 0
        self.started_at = 0
        self.last_match: StepResult | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.construction: StepResult | None = None
        self.reset()

    def _check_steps(self, cls: type, spec: SessionSpec | None) -> None:
        # A step calls a method by the name the record gives: only the public
        # methods a session records are callable, never _private or dunder ones.
        allowed = spec.methods if spec is not None else _public_methods(cls)
        for index, step in enumerate(self.steps):
            method = str(step.get("key", "")).rsplit(".", 1)[-1]
            if method not in allowed and hasattr(cls, method):
                raise SessionError(
                    f"session {self.key} [{self.record_id}]: step {index} calls "
                    f"{cls.__qualname__}.{method[:80]}, which is not a recorded public method; "
                    "refusing to call it; re-record the session"
                )

    # ------------------------------------------------------------------ positioning

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def done(self) -> bool:
        return self.position >= len(self.steps) or self.construction is not None

    def reset(self) -> None:
        """A fresh instance from the recorded constructor inputs, at step 0."""
        self.position = 0
        self.started_at = 0
        self.last_match = None
        self.construction = None
        expected_error = self.record.get("error")
        instance: Any = None
        actual: Outcome
        try:
            instance = self._construct()
        except Exception as exc:
            actual = Outcome.from_exception(exc)
        else:
            actual = Outcome(value=None)
        expected = (
            Outcome(error=ErrorInfo.from_map(expected_error))
            if expected_error is not None
            else Outcome(value=None)
        )
        comparison = compare_outcomes(expected, actual)
        if not comparison.equal or expected.raised:
            # The constructor diverged, or raised as recorded: nothing to step.
            self.construction = StepResult(
                -1, "__init__", self.constructor, expected, actual, comparison
            )
        self.instance = instance

    def _construct(self) -> Any:
        token = _REPLAYING.set(True)
        try:
            return self.cls(*self.args, **self.kwargs)
        finally:
            _REPLAYING.reset(token)

    def _restore(self, state: Any) -> Any:
        cls: Any = self.cls
        instance = cls.__new__(cls)
        values = codec.decode(state)
        if not isinstance(values, dict):
            raise SessionError(f"session {self.key} [{self.record_id}]: a snapshot is malformed")
        for name, value in values.items():
            object.__setattr__(instance, name, value)
        return instance

    def nearest_snapshot(self, k: int) -> int:
        """The position of the nearest snapshot at or before ``k`` (0: the constructor)."""
        return max((at for at in self.snapshots if at <= k), default=0)

    def seek(self, k: int) -> int:
        """Restore the nearest snapshot at or before ``k``; returns its position.

        The next :meth:`step` applies the call at that position. ``k`` must be
        in ``0..total`` (``total`` is the end of the session).
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(self.steps):
            raise SessionError(
                f"session {self.key} [{self.record_id}]: step {k!r} is out of range, valid "
                f"steps are 0..{len(self.steps)}"
            )
        at = self.nearest_snapshot(k)
        if at == 0:
            self.reset()
        else:
            self.instance = self._restore(self.snapshots[at])
            self.position = at
            self.construction = None
            self.last_match = None
        self.started_at = at
        return at

    # ------------------------------------------------------------------ stepping

    def call_at(self, k: int) -> tuple[str, list[Any], dict[str, Any]]:
        """The recorded call of step ``k``: (method name, args, kwargs), decoded."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self.steps):
            raise SessionError(
                f"session {self.key} [{self.record_id}]: step {k!r} is out of range, valid "
                f"steps are 0..{len(self.steps) - 1}"
            )
        step = self.steps[k]
        method = str(step.get("key", "")).rsplit(".", 1)[-1]
        args = list(codec.decode(step.get("args") or []))  # type: ignore[call-overload]
        kwargs = dict(codec.decode(step.get("kwargs") or {}))  # type: ignore[call-overload]
        return method, args, kwargs

    def step(self) -> StepResult:
        """Apply the next recorded call to the instance and compare its outcome."""
        if self.construction is not None:
            raise SessionError(
                f"session {self.key} [{self.record_id}]: the constructor "
                + ("diverged" if not self.construction.matched else "raised as recorded")
                + "; there is no instance to step (see .construction)"
            )
        if self.position >= len(self.steps):
            raise SessionError(
                f"session {self.key} [{self.record_id}]: all {len(self.steps)} steps are "
                f"replayed; use seek(k) or reset() to go back"
            )
        index = self.position
        method, args, kwargs = self.call_at(index)
        expected = _expected_outcome(self.steps[index])
        actual = self._apply(method, args, kwargs)
        comparison = compare_outcomes(expected, actual, self.options)
        self.position += 1
        state: Comparison | None = None
        if self.check_state and self.position in self.snapshots:
            state = compare_values(
                codec.decode(self.snapshots[self.position]),
                _state_of(self.instance),
                self.options,
            )
        result = StepResult(
            index, method, _call_text(method, args, kwargs), expected, actual, comparison, state
        )
        if result.matched:
            self.last_match = result
        return result

    def _apply(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Outcome:
        # The method is looked up on the instance, as the recorded code did, so
        # a changed (or monkeypatched) class is what gets replayed.
        token = _REPLAYING.set(True)
        try:
            value = getattr(self.instance, method)(*args, **kwargs)
            if inspect.iscoroutine(value):
                if self._loop is None:
                    self._loop = asyncio.new_event_loop()
                value = self._loop.run_until_complete(value)
        except Exception as exc:
            return Outcome(error=error_info(exc))
        finally:
            _REPLAYING.reset(token)
        return Outcome(value=value)

    def replay_all(self) -> SessionOutcome:
        """Run from the current position to the end or the first divergence."""
        try:
            if self.construction is not None:
                if self.construction.matched:
                    return self._outcome(None)
                return self._outcome(self.construction)
            while self.position < len(self.steps):
                result = self.step()
                if not result.matched:
                    return self._outcome(result)
            return self._outcome(None)
        finally:
            self.close()

    def replay_from(self, k: int) -> SessionOutcome:
        """Start at the nearest snapshot at or before ``k``, then run like :meth:`replay_all`."""
        self.seek(k)
        return self.replay_all()

    def _outcome(self, divergence: StepResult | None) -> SessionOutcome:
        end = divergence.index + 1 if divergence is not None else self.position
        return SessionOutcome(
            key=self.key,
            record_id=self.record_id,
            total_steps=len(self.steps),
            started_at=self.started_at,
            replayed=max(end - self.started_at, 0),
            divergence=divergence,
            last_match=self.last_match,
            constructor=self.constructor,
            cassette=self.cassette,
        )

    def close(self) -> None:
        """Release the event loop used for ``async`` methods, if any."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def __iter__(self) -> Iterator[StepResult]:
        while not self.done:
            yield self.step()


def run_session_record(
    record: Mapping[str, Any],
    *,
    cassette: str | None = None,
    cls: type | None = None,
    options: CompareOptions | None = None,
) -> SessionOutcome:
    """Replay a whole session record: what ``pytest --replay`` runs as one item.

    Returns the outcome (``.ok``, ``.text`` with the step index, the call,
    expected vs actual and the last matching step). Raises
    :class:`SessionError` when the record cannot be replayed at all.
    """
    return SessionReplayer(record, cls=cls, options=options, cassette=cassette).replay_all()
