"""Cassettes as event logs: signatures, snapshots, faults and divergence between traces.

A *trace* is an ordered list of events. It can be given as

- a :class:`~pytest_replay.cassette.Cassette` or the path of a ``.cassette`` file,
- a list of record maps (``Record.to_map()`` form, raw or decoded values) or of
  :class:`~pytest_replay.record.Record` objects,
- a list of :class:`pytest_replay.history.Event` (a Jepsen-style history; anything
  with an ``events`` attribute holding such a list works too).

Every function here is pure and usable without pytest. Nothing here decodes a
user value into a Python object (no import of user code): values stay in the
raw form of ``codec.loads_raw`` and are explained through ``codec.to_jsonable``.
deepdiff is imported only when a difference is explained.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Literal, Protocol, Union

from . import codec
from .cassette import Cassette
from .history import Event as HistoryEvent
from .record import Record
from .store import strip_meta

__all__ = [
    "DirectoryComparison",
    "Divergence",
    "Snapshot",
    "TimelineError",
    "Trace",
    "TraceComparison",
    "TraceIndexError",
    "compare_traces",
    "diff_directories",
    "diff_traces",
    "explain",
    "first_fault",
    "latest",
    "snapshot_at",
    "snapshot_window",
    "timeline_signature",
    "trace_length",
    "trace_signature",
]


class HasEvents(Protocol):
    """A history object: anything with an ``events`` list of history events."""

    @property
    def events(self) -> Sequence[HistoryEvent]: ...


Trace = Union[Cassette, str, "os.PathLike[str]", Sequence[Any], HasEvents]
"""A cassette, a cassette path, a list of record maps / ``Record`` objects, or a history."""

_DIGEST = 16
_ZERO = bytes(_DIGEST)


class TimelineError(ValueError):
    """A trace that cannot be used (wrong type, mixed kinds, keys that do not pair)."""


class TraceIndexError(TimelineError, IndexError):
    """An event index outside the trace; the message states the valid range.

    ``index`` is the index asked for, ``count`` the number of events.
    """

    def __init__(self, message: str, *, index: int, count: int) -> None:
        super().__init__(message)
        self.index = index
        self.count = count


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=_DIGEST).hexdigest()


# --------------------------------------------------------------------------- normalising traces


@dataclass
class _Loaded:
    """A trace, normalised: a cassette (streamed) or a list of raw record maps, or a history."""

    name: str
    cassette: Cassette | None = None
    maps: list[dict[str, Any]] | None = None
    history: list[HistoryEvent] | None = None

    @property
    def kind(self) -> str:
        return "history" if self.history is not None else "records"

    @property
    def key(self) -> str | None:
        if self.cassette is not None:
            return self.cassette.key
        if self.maps:
            keys = {m.get("key") for m in self.maps}
            if len(keys) == 1:
                only = keys.pop()
                return only if isinstance(only, str) else None
        return None

    def records(self) -> Iterator[dict[str, Any]]:
        if self.cassette is not None:
            return self.cassette.records()
        assert self.maps is not None
        return iter(self.maps)

    def payloads(self) -> list[bytes]:
        """Encoded events, comparable byte for byte between traces of the same kind."""
        if self.cassette is not None:
            return list(self.cassette.payloads())
        if self.maps is not None:
            dumps = codec.dumps
            return [dumps(m) for m in self.maps]
        assert self.history is not None
        return [codec.dumps(_history_tuple(ev)) for ev in self.history]


def _load(trace: Trace, *, name: str | None = None) -> _Loaded:
    if isinstance(trace, Cassette):
        return _Loaded(name or str(trace.path), cassette=trace)
    if isinstance(trace, (str, os.PathLike)):
        path = Path(trace)
        if path.is_dir():
            raise TimelineError(
                f"{path}: is a directory; a trace is one cassette file "
                f"(use diff_directories to compare directories)"
            )
        return _Loaded(name or str(path), cassette=Cassette.open(path))
    events = getattr(trace, "events", None)
    if events is not None and not isinstance(trace, Mapping):
        trace = events
    if isinstance(trace, Mapping) or not isinstance(trace, Sequence) or isinstance(trace, bytes):
        raise TimelineError(
            f"cannot use a {type(trace).__name__} as a trace: pass a Cassette, a cassette "
            f"path, a list of record maps or Record objects, or a list of history events"
        )
    label = name or "<trace>"
    items = list(trace)
    if items and all(isinstance(item, HistoryEvent) for item in items):
        return _Loaded(label, history=items)
    maps: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if isinstance(item, Record):
            item = item.to_map()
        if not isinstance(item, Mapping):
            raise TimelineError(
                f"{label}: event {index} is a {type(item).__name__}; a trace holds record "
                f"maps, Record objects or history events, not a mix"
            )
        # A round trip through the codec gives in-memory maps exactly the raw form
        # a cassette yields, so the two compare and hash alike.
        maps.append(_as_raw_map(codec.loads_raw(codec.dumps(dict(item))), label, index))
    return _Loaded(label, maps=maps)


def _as_raw_map(raw: object, label: str, index: int) -> dict[str, Any]:
    if not isinstance(raw, dict):  # pragma: no cover - dumps of a dict is a map
        raise TimelineError(f"{label}: event {index} is not a record map")
    return raw


_HISTORY_FIELDS = ("index", "process", "type", "f", "value", "time", "key", "error")


def _history_tuple(ev: HistoryEvent) -> list[Any]:
    return [ev.index, ev.process, ev.type, ev.f, ev.value, ev.time, ev.key, ev.error]


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class Snapshot:
    """One event of a trace, with everything needed to look at it.

    ``inputs`` is ``{"args": [...], "kwargs": {...}}`` for a record (for a
    history op: the process and the value of its invocation); ``outcome`` holds
    exactly one of ``result`` / ``error``. Values are raw (``codec.loads_raw``
    form; see ``codec.decode`` to get Python objects, ``codec.to_jsonable`` to
    print them). ``time`` is the recorded time when the record carries one
    (``meta["time"]``, a history op's ``time``), else the logical time: the
    index. ``signature`` is the state signature, a hash of the outcome only.
    """

    index: int
    label: str
    kind: str
    record_id: str | None
    inputs: Mapping[str, Any]
    outcome: Mapping[str, Any]
    children: tuple[Mapping[str, Any], ...]
    time: Any
    signature: str
    fault: str | None = None
    duration_ms: float | None = None
    raw: Any = field(default=None, repr=False, compare=False)
    fault_step: int | None = None

    @property
    def raised(self) -> bool:
        return "error" in self.outcome

    def to_jsonable(self) -> dict[str, Any]:
        """A JSON-able dict (tagged form for non-JSON values), for ``show --json``."""
        return {
            "index": self.index,
            "label": self.label,
            "kind": self.kind,
            "id": self.record_id,
            "time": codec.to_jsonable(self.time),
            "signature": self.signature,
            "fault": self.fault,
            "inputs": codec.to_jsonable(dict(self.inputs)),
            "outcome": codec.to_jsonable(dict(self.outcome)),
            "children": [codec.to_jsonable(dict(c)) for c in self.children],
        }

    def summary(self, width: int = 100) -> str:
        """One line: the call and its outcome."""
        return _clip(f"{_call_text(self.label, self.inputs)} {self._arrow()}", width)

    def describe(self) -> list[str]:
        """Readable lines for one event (the body of ``show --at``)."""
        lines = [f"event {self.index}: {self.label}  [{self.kind}]"]
        if self.record_id is not None:
            lines.append(f"  id:        {self.record_id}")
        lines.append(f"  time:      {_value_text(self.time)}")
        if self.duration_ms is not None:
            lines.append(f"  duration:  {self.duration_ms:.3f} ms")
        lines.append(f"  signature: {self.signature}")
        lines.append(f"  inputs:    {_clip(_inputs_text(self.inputs), 400)}")
        lines.append(f"  outcome:   {_clip(self._arrow(), 400)}")
        if self.fault is not None:
            lines.append(f"  fault:     {self.fault}")
        if self.children:
            noun = "steps" if self.kind == "session" else "children"
            lines.append(f"  {noun} ({len(self.children)}):")
            shown = self.children[:20]
            for position, child in enumerate(shown):
                lines.append(f"    {position}. {_clip(_child_text(child), 200)}")
            if len(self.children) > len(shown):
                lines.append(f"    ... and {len(self.children) - len(shown)} more")
        return lines

    def describe_steps(self, focus: int | None = None, context: int = 2) -> list[str]:
        """For a session: the constructor, snapshots, and steps around ``focus``.

        ``focus`` defaults to the first step that raised, else step 0. Raises
        :class:`TraceIndexError` when ``focus`` is not a step of the session.
        """
        if self.kind != "session":
            raise TimelineError(
                f"event {self.index} is a {self.kind!r} record, not a session: it has no steps"
            )
        steps = self.children
        if focus is None:
            focus = self.fault_step if self.fault_step is not None else 0
        if steps and not 0 <= focus < len(steps):
            raise TraceIndexError(
                f"session {self.record_id}: step {focus} is out of range, valid steps are "
                f"0..{len(steps) - 1}",
                index=focus,
                count=len(steps),
            )
        result = self.outcome.get("result")
        snapshots = result.get("snapshots") if isinstance(result, Mapping) else None
        ats = [str(s.get("at")) for s in snapshots or () if isinstance(s, Mapping)]
        lines = [
            f"session {self.label} [{self.record_id}]: constructed as "
            f"{_call_text(self.label.rsplit('.', 1)[-1], self.inputs)}",
            f"  {len(steps)} steps; state snapshots before steps: {', '.join(ats) or 'none'}",
        ]
        if "error" in self.outcome:
            lines.append(f"  the constructor raised {_error_text(self.outcome['error'])}")
        if self.fault is not None and self.fault_step is not None:
            lines.append(f"  first fault: {self.fault}")
        if steps:
            lo, hi = max(0, focus - context), min(len(steps) - 1, focus + context)
            lines.append(f"  steps {lo}..{hi}:")
            for position in range(lo, hi + 1):
                marker = ">" if position == focus else " "
                method = _label(steps[position]).rsplit(".", 1)[-1]
                text = _child_text({**steps[position], "key": method})
                lines.append(f"  {marker} {position:>4} | {_clip(text, 110)}")
        return lines

    def _arrow(self) -> str:
        if "error" in self.outcome:
            return "raised " + _error_text(self.outcome["error"])
        return "-> " + _value_text(self.outcome.get("result"))


def _fault_step(rec: Mapping[str, Any]) -> int | None:
    if rec.get("kind") == "session":
        for position, step in enumerate(rec.get("children") or ()):
            if isinstance(step, Mapping) and step.get("error") is not None:
                return position
    return None


def _record_fault(rec: Mapping[str, Any]) -> str | None:
    error = rec.get("error")
    if error is not None:
        return "raised " + _error_text(error)
    position = _fault_step(rec)
    if position is not None:
        step = rec["children"][position]
        return f"step {position} ({_label(step)}) raised {_error_text(step['error'])}"
    return None


def _label(rec: Mapping[str, Any]) -> str:
    return str(rec.get("key", "?"))


def _record_snapshot(index: int, rec: Mapping[str, Any]) -> Snapshot:
    outcome: dict[str, Any] = (
        {"error": rec["error"]} if rec.get("error") is not None else {"result": rec.get("result")}
    )
    meta = rec.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    duration = meta.get("duration_ms")
    children = rec.get("children") or ()
    return Snapshot(
        index=index,
        label=_label(rec),
        kind=str(rec.get("kind", "call")),
        record_id=str(rec["id"]) if "id" in rec else None,
        inputs={"args": rec.get("args") or [], "kwargs": rec.get("kwargs") or {}},
        outcome=outcome,
        children=tuple(c for c in children if isinstance(c, Mapping)),
        time=meta.get("time", index),
        signature=_digest(codec.dumps(outcome)),
        fault=_record_fault(rec),
        duration_ms=float(duration) if isinstance(duration, (int, float)) else None,
        raw=rec,
        fault_step=_fault_step(rec),
    )


def _is_history_fault(ev: HistoryEvent) -> bool:
    # Nemesis ops (fault injection, a non-integer process) are `info` by
    # convention; they are the test harness acting, not the system failing.
    return ev.type in ("fail", "info") and isinstance(ev.process, int)


def _history_snapshot(position: int, events: Sequence[HistoryEvent]) -> Snapshot:
    ev = events[position]
    invoke_value: Any = ev.value
    if ev.type != "invoke":
        for earlier in reversed(events[:position]):
            if earlier.process == ev.process and earlier.type == "invoke":
                invoke_value = earlier.value
                break
    outcome: dict[str, Any]
    if ev.type in ("fail", "info"):
        outcome = {"error": {"type": ev.type, "message": _value_text(ev.error), "args": []}}
    else:
        outcome = {"result": ev.value}
    fault = None
    if _is_history_fault(ev):
        what = "failed" if ev.type == "fail" else "is indeterminate (info)"
        fault = f"op {ev.index} ({ev.f} by process {ev.process}) {what}"
        if ev.error is not None:
            fault += f": {_value_text(ev.error)}"
    return Snapshot(
        index=position,
        label=ev.f,
        kind=ev.type,
        record_id=None,
        inputs={"process": ev.process, "value": invoke_value, "key": ev.key},
        outcome=outcome,
        children=(),
        time=ev.time if ev.time is not None else ev.index,
        signature=_digest(codec.dumps([ev.type, ev.value, ev.error])),
        fault=fault,
        raw=ev,
    )


def _out_of_range(name: str, index: int, count: int) -> TraceIndexError:
    if count == 0:
        return TraceIndexError(
            f"{name}: event {index} does not exist: the trace is empty (0 events)",
            index=index,
            count=0,
        )
    return TraceIndexError(
        f"{name}: event {index} is out of range: the trace has {count} "
        f"event{'s' if count != 1 else ''}, valid indices are 0..{count - 1}",
        index=index,
        count=count,
    )


def _check_index(index: object) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"an event index must be an int, not {type(index).__name__}")
    return index


def snapshot_at(trace: Trace, i: int) -> Snapshot:
    """The event at index ``i`` (0-based; negative indices are not accepted).

    Raises :class:`TraceIndexError` stating the valid range when ``i`` is outside the trace.
    """
    return snapshot_window(trace, i, 0)[0]


def snapshot_window(trace: Trace, i: int, context: int = 2) -> list[Snapshot]:
    """Event ``i`` with up to ``context`` neighbours on each side, in order.

    Streams a cassette: only the events in the window are kept in memory.
    """
    i = _check_index(i)
    if context < 0:
        raise ValueError(f"context must be >= 0, not {context}")
    loaded = _load(trace)
    lo, hi = max(0, i - context), i + context
    if loaded.history is not None:
        events = loaded.history
        if not 0 <= i < len(events):
            raise _out_of_range(loaded.name, i, len(events))
        return [_history_snapshot(k, events) for k in range(lo, min(hi, len(events) - 1) + 1)]
    if i < 0:
        raise _out_of_range(loaded.name, i, _count(loaded))
    window: list[Snapshot] = []
    seen = 0
    for index, rec in enumerate(loaded.records()):
        if index > hi:
            break
        seen = index + 1
        if index >= lo:
            window.append(_record_snapshot(index, rec))
    if i >= seen:  # the loop ran to the end: seen is the length
        raise _out_of_range(loaded.name, i, seen)
    return window


def _count(loaded: _Loaded) -> int:
    if loaded.history is not None:
        return len(loaded.history)
    return sum(1 for _ in loaded.records())


def trace_length(trace: Trace | _Loaded) -> int:
    """Number of events in the trace (for a cassette: complete records before any torn tail)."""
    loaded = trace if isinstance(trace, _Loaded) else _load(trace)
    if loaded.cassette is not None:
        return sum(1 for _ in loaded.cassette.payloads())
    return _count(loaded)


def first_fault(trace: Trace) -> Snapshot | None:
    """The first event that raised, or ``None`` when nothing did.

    A record faults when it raised; a session record faults when one of its
    steps raised (the snapshot's ``fault`` names the step). In a history, the
    first ``fail`` or ``info`` op of a client process is the first fault.
    """
    loaded = _load(trace)
    if loaded.history is not None:
        events = loaded.history
        for position, ev in enumerate(events):
            if _is_history_fault(ev):
                return _history_snapshot(position, events)
        return None
    for index, rec in enumerate(loaded.records()):
        if _record_fault(rec) is not None:
            return _record_snapshot(index, rec)
    return None


def latest(trace: Trace) -> Snapshot | None:
    """The last event of the trace, or ``None`` when it is empty."""
    loaded = _load(trace)
    if loaded.history is not None:
        events = loaded.history
        return _history_snapshot(len(events) - 1, events) if events else None
    last: tuple[int, dict[str, Any]] | None = None
    for last in enumerate(loaded.records()):  # noqa: B007 - streaming keeps memory flat
        pass
    return _record_snapshot(*last) if last is not None else None


# --------------------------------------------------------------------------- signatures


def trace_signature(trace: Trace) -> str:
    """The hash-chain head: any change anywhere in the trace changes it (hex).

    For a cassette this is :meth:`Cassette.signature`. A list of record maps of
    one key is chained exactly as a cassette of that key holding those records
    would be, so the two signatures are equal; lists of mixed keys and
    histories are chained from an all-zero seed.
    """
    loaded = _load(trace)
    if loaded.cassette is not None:
        return loaded.cassette.signature()
    key = loaded.key
    prev = _ZERO
    if key is not None:
        from .cassette import _header_bytes, _header_digest

        prev = _header_digest(_header_bytes(key))
    blake2b = hashlib.blake2b
    for payload in loaded.payloads():
        prev = blake2b(prev + payload, digest_size=_DIGEST).digest()
    return prev.hex()


def _shape(rec: Mapping[str, Any], out: list[bytes]) -> None:
    out.append(_label(rec).encode("utf-8", "surrogatepass"))
    children = rec.get("children") or ()
    if children:
        out.append(b"\x01")
        for child in children:
            if isinstance(child, Mapping):
                _shape(child, out)
        out.append(b"\x02")
    out.append(b"\x00")


def timeline_signature(trace: Trace) -> str:
    """A hash of the order of labels only (hex).

    It changes when the sequence of calls changes (a call added, removed or
    moved, nested calls or session steps in another order), not when their
    inputs or outcomes do. Labels are keys (session steps: ``key.method``);
    for a history, ``process:type:f``.
    """
    loaded = _load(trace)
    digest = hashlib.blake2b(digest_size=_DIGEST)
    if loaded.history is not None:
        for ev in loaded.history:
            digest.update(f"{ev.process}:{ev.type}:{ev.f}".encode() + b"\x00")
        return digest.hexdigest()
    parts: list[bytes] = []
    for rec in loaded.records():
        _shape(rec, parts)
        digest.update(b"".join(parts))
        parts.clear()
    return digest.hexdigest()


# --------------------------------------------------------------------------- divergence


DivergenceKind = Literal["changed", "inserted", "deleted"]


@dataclass(frozen=True)
class Divergence:
    """One point where the actual trace differs from the expected one.

    ``position`` is the index in the expected trace (for an insertion: the
    index before which the actual trace has an extra event); ``actual_position``
    is the index in the actual trace (``None`` for a deletion). Hashes are
    event hashes (volatile ``meta`` excluded unless asked for), ``None`` on the
    side where the event does not exist. ``detail`` explains the difference.
    """

    kind: DivergenceKind
    position: int
    actual_position: int | None
    record_id: str | None
    expected_hash: str | None
    actual_hash: str | None
    detail: str
    actual_record_id: str | None = None

    def describe(self) -> list[str]:
        where = f"#{self.position}"
        if self.actual_position is not None and self.actual_position != self.position:
            where += f" (actual #{self.actual_position})"
        ident = self.record_id or "-"
        if self.actual_record_id is not None and self.actual_record_id != self.record_id:
            ident += f" -> {self.actual_record_id}"
        head = f"{where} {self.kind}: record {ident}"
        hashes = (
            f"expected {_short_hash(self.expected_hash)}, actual {_short_hash(self.actual_hash)}"
        )
        return [f"{head}  ({hashes})", *("    " + line for line in self.detail.splitlines())]


def _short_hash(value: str | None) -> str:
    return "-" if value is None else value[:16]


@dataclass(frozen=True)
class TraceComparison:
    """The result of comparing two traces: sizes, divergences (first first), notes."""

    expected_name: str
    actual_name: str
    expected_count: int
    actual_count: int
    divergences: tuple[Divergence, ...]
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return not self.divergences

    def counts(self) -> dict[str, int]:
        result = {"changed": 0, "inserted": 0, "deleted": 0}
        for point in self.divergences:
            result[point.kind] += 1
        return result

    def render(self, limit: int = 20) -> Iterator[str]:
        """Readable lines: a verdict, then the divergence points, first one first."""
        sizes = f"{self.expected_count} vs {self.actual_count} events"
        if self.identical:
            yield f"identical: {self.expected_name} and {self.actual_name} ({sizes})"
        else:
            counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().items() if n)
            first = self.divergences[0]
            yield (
                f"diverged: {self.expected_name} -> {self.actual_name} ({sizes}): "
                f"{len(self.divergences)} divergence point"
                f"{'s' if len(self.divergences) != 1 else ''} ({counts}), "
                f"first at #{first.position}"
            )
            shown = self.divergences[: max(limit, 0)] if limit >= 0 else self.divergences
            for point in shown:
                yield from ("  " + line for line in point.describe())
            if len(self.divergences) > len(shown):
                yield f"  ... and {len(self.divergences) - len(shown)} more divergence points"
        for note in self.notes:
            yield f"note: {note}"


def _token(raw: Any) -> str:
    """What identifies an event for alignment: its call, not its outcome.

    A record's id hashes its key and inputs, so the same call in both traces
    aligns (and a changed outcome is ``changed``) while a different call is a
    deletion plus an insertion. A session aligns by its constructor call (its
    id also hashes every step, which are its behaviour, compared step by step).
    Maps without an id align by key; history ops by process, operation and
    whether they invoke or complete (a ``fail`` that became ``ok`` is changed).
    """
    if isinstance(raw, dict):
        if raw.get("kind") == "session":
            inputs = codec.dumps([raw.get("args"), raw.get("kwargs")])
            return f"session:{raw.get('key')}:{_digest(inputs)}"
        ident = raw.get("id")
        if isinstance(ident, str):
            return ident
        return f"key:{raw.get('key')}"
    if isinstance(raw, list) and len(raw) == len(_HISTORY_FIELDS):
        phase = "invoke" if raw[2] == "invoke" else "complete"
        return f"op:{raw[1]}:{phase}:{raw[3]}"
    return repr(raw)


class _Side:
    """Lazy per-event views of one side of a comparison (decoded only when needed)."""

    def __init__(self, loaded: _Loaded, payloads: list[bytes], ignore_meta: bool) -> None:
        self.loaded = loaded
        self.payloads = payloads
        self.ignore_meta = ignore_meta
        self._raw: dict[int, Any] = {}

    def raw(self, i: int) -> Any:
        if i not in self._raw:
            if self.loaded.history is not None:
                self._raw[i] = _history_tuple(self.loaded.history[i])
            else:
                self._raw[i] = codec.loads_raw(self.payloads[i])
        return self._raw[i]

    def content(self, i: int) -> bytes:
        if not self.ignore_meta or self.loaded.history is not None:
            return self.payloads[i]
        return codec.dumps(strip_meta(self.raw(i)))

    def hash(self, i: int) -> str:
        return _digest(self.content(i))

    def ident(self, i: int) -> str | None:
        raw = self.raw(i)
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            return str(raw["id"])
        return None

    def token(self, i: int) -> str:
        return _token(self.raw(i))

    def jsonable(self, i: int) -> Any:
        raw = self.raw(i)
        if self.loaded.history is not None:
            raw = dict(zip(_HISTORY_FIELDS, raw, strict=True))
        elif self.ignore_meta:
            raw = strip_meta(raw)
        return codec.to_jsonable(raw)


def _common_prefix(a: list[bytes], b: list[bytes]) -> int:
    # Bisection on list-slice equality: each probe is one C-level comparison
    # loop, so a 100,000-event identical prefix costs ~17 memcmp passes instead
    # of 100,000 Python-level iterations (this is the diff benchmark's path).
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: list[bytes], b: list[bytes], floor: int) -> int:
    n = 0
    ia, ib = len(a) - 1, len(b) - 1
    while ia - n >= floor and ib - n >= floor and a[ia - n] == b[ib - n]:
        n += 1
    return n


def compare_traces(
    expected: Trace,
    actual: Trace,
    *,
    ignore_meta: bool = True,
    expected_name: str | None = None,
    actual_name: str | None = None,
) -> TraceComparison:
    """Compare two traces event by event; see :func:`diff_traces`.

    Fast path: identical encoded events are skipped by comparing bytes, so only
    the events that differ are decoded. The differing middle is aligned on
    record ids (``difflib.SequenceMatcher``), so an inserted or deleted event
    is one divergence point, not a cascade; events with the same id whose
    content differs are ``changed``.
    """
    la = _load(expected, name=expected_name)
    lb = _load(actual, name=actual_name)
    if la.kind != lb.kind:
        raise TimelineError(
            f"cannot compare a {la.kind} trace ({la.name}) with a {lb.kind} trace ({lb.name})"
        )
    pa, pb = la.payloads(), lb.payloads()
    notes = [
        f"{loaded.name}: {loaded.cassette.torn_tail.describe()}; events after it are not compared"
        for loaded in (la, lb)
        if loaded.cassette is not None and loaded.cassette.torn_tail is not None
    ]
    sa, sb = _Side(la, pa, ignore_meta), _Side(lb, pb, ignore_meta)
    lo = _common_prefix(pa, pb)
    tail = _common_suffix(pa, pb, lo)
    end_a, end_b = len(pa) - tail, len(pb) - tail
    points: list[Divergence] = []
    if lo < end_a or lo < end_b:
        ta = [sa.token(i) for i in range(lo, end_a)]
        tb = [sb.token(j) for j in range(lo, end_b)]
        matcher = SequenceMatcher(None, ta, tb, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            i1, i2, j1, j2 = i1 + lo, i2 + lo, j1 + lo, j2 + lo
            if tag == "equal":
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                    if pa[i] != pb[j] and sa.content(i) != sb.content(j):
                        points.append(_changed(sa, sb, i, j))
                continue
            # replace / delete / insert: other calls, not the same call changed.
            for i in range(i1, i2):
                points.append(_deleted(sa, i))
            for j in range(j1, j2):
                points.append(_inserted(sb, i1, j))
    points.sort(key=_point_order)
    return TraceComparison(la.name, lb.name, len(pa), len(pb), tuple(points), tuple(notes))


def _point_order(point: Divergence) -> tuple[int, int]:
    return point.position, -1 if point.actual_position is None else point.actual_position


def _changed(sa: _Side, sb: _Side, i: int, j: int) -> Divergence:
    return Divergence(
        kind="changed",
        position=i,
        actual_position=j,
        record_id=sa.ident(i),
        expected_hash=sa.hash(i),
        actual_hash=sb.hash(j),
        detail=_session_detail(sa, sb, i, j) or explain(sa.jsonable(i), sb.jsonable(j)),
        actual_record_id=sb.ident(j),
    )


def _session_detail(sa: _Side, sb: _Side, i: int, j: int, limit: int = 3) -> str | None:
    """Two versions of a session: its steps are a trace too, so diff them aligned.

    A positional deepdiff of the steps would report every step after an
    inserted call; the first divergent *step* is what a reader needs.
    """
    ra, rb = sa.raw(i), sb.raw(j)
    if not (isinstance(ra, dict) and isinstance(rb, dict)):
        return None
    if ra.get("kind") != "session" or rb.get("kind") != "session":
        return None
    steps_a, steps_b = ra.get("children"), rb.get("children")
    if not isinstance(steps_a, list) or not isinstance(steps_b, list):
        return None
    # Same constructor call (that is how sessions align): only steps and outcome can differ.
    lines: list[str] = []
    steps = compare_traces(steps_a, steps_b, ignore_meta=sa.ignore_meta)
    if steps.divergences:
        first = steps.divergences[0]
        lines.append(
            f"steps: {steps.expected_count} vs {steps.actual_count}, "
            f"{len(steps.divergences)} divergence points, first at step {first.position}:"
        )
        for point in steps.divergences[:limit]:
            described = point.describe()
            if point.kind == "inserted":
                step = steps_b[point.actual_position or 0]
            else:
                step = steps_a[point.position]
            if isinstance(step, Mapping):
                method = _label(step).rsplit(".", 1)[-1]
                call = _child_text({**step, "key": method})
                described.insert(1, "    recorded: " if point.kind != "inserted" else "    new: ")
                described[1] += _clip(call, 110)
            lines.extend("  " + line for line in described)
        if len(steps.divergences) > limit:
            lines.append(f"  ... and {len(steps.divergences) - limit} more step divergences")
    rest = {k: v for k, v in ra.items() if k not in ("id", "args", "kwargs", "children", "meta")}
    other = {k: v for k, v in rb.items() if k not in ("id", "args", "kwargs", "children", "meta")}
    if rest != other:
        lines.append("session outcome (calls, state snapshots) differs:")
        differences = explain(
            codec.to_jsonable(strip_meta(rest)), codec.to_jsonable(strip_meta(other)), limit=5
        )
        lines.extend("  " + line for line in differences.splitlines())
    return "\n".join(lines) or None


def _deleted(sa: _Side, i: int) -> Divergence:
    return Divergence(
        kind="deleted",
        position=i,
        actual_position=None,
        record_id=sa.ident(i),
        expected_hash=sa.hash(i),
        actual_hash=None,
        detail="missing from the actual trace: " + _clip(_event_text(sa.jsonable(i)), 300),
    )


def _inserted(sb: _Side, i: int, j: int) -> Divergence:
    return Divergence(
        kind="inserted",
        position=i,
        actual_position=j,
        record_id=sb.ident(j),
        expected_hash=None,
        actual_hash=sb.hash(j),
        detail="only in the actual trace: " + _clip(_event_text(sb.jsonable(j)), 300),
    )


def diff_traces(expected: Trace, actual: Trace, *, ignore_meta: bool = True) -> list[Divergence]:
    """The divergence points between two traces, first one first.

    Each point has the position, the record id, the expected and actual event
    hashes and a human-readable deepdiff of the two events. Insertions and
    deletions are aligned. Volatile metadata (``meta``: durations, node ids)
    is ignored unless ``ignore_meta=False``.
    """
    return list(compare_traces(expected, actual, ignore_meta=ignore_meta).divergences)


# --------------------------------------------------------------------------- directories


@dataclass(frozen=True)
class DirectoryComparison:
    """Two cassette directories paired by key."""

    expected_dir: Path
    actual_dir: Path
    removed: dict[str, Path]
    added: dict[str, Path]
    compared: dict[str, TraceComparison]

    @property
    def identical(self) -> bool:
        return (
            not self.removed and not self.added and all(c.identical for c in self.compared.values())
        )

    def render(self, limit: int = 20) -> Iterator[str]:
        changed = {k: c for k, c in self.compared.items() if not c.identical}
        verdict = "identical" if self.identical else "diverged"
        yield (
            f"{verdict}: {self.expected_dir} -> {self.actual_dir}: {len(self.compared)} keys "
            f"in both ({len(changed)} diverged), {len(self.removed)} removed, "
            f"{len(self.added)} added"
        )
        for key, path in self.removed.items():
            yield f"removed key {key} (only in {self.expected_dir}: {path.name})"
        for key, path in self.added.items():
            yield f"added key {key} (only in {self.actual_dir}: {path.name})"
        for key, comparison in changed.items():
            yield f"key {key}:"
            yield from ("  " + line for line in comparison.render(limit))
        for comparison in self.compared.values():
            if comparison.identical:
                yield from (line for line in comparison.render(0) if line.startswith("note:"))


def _index_directory(directory: Path) -> dict[str, Path]:
    by_key: dict[str, Path] = {}
    for path in sorted(directory.rglob("*.cassette")):
        relative = path.relative_to(directory)
        # Hidden names are temp files of an atomic write or tool state, not cassettes.
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        key = Cassette.open(path).key
        if key in by_key:
            raise TimelineError(
                f"{directory}: key {key!r} is in two cassettes ({by_key[key]} and {path}); "
                f"remove the stale copy so the directory pairs by key"
            )
        by_key[key] = path
    return by_key


def diff_directories(
    expected_dir: str | os.PathLike[str],
    actual_dir: str | os.PathLike[str],
    *,
    ignore_meta: bool = True,
) -> DirectoryComparison:
    """Pair the cassettes of two directories by key and compare each pair.

    Keys only in ``expected_dir`` are *removed*, keys only in ``actual_dir``
    are *added*. Raises :class:`TimelineError` when a path is not a directory
    or a key appears twice, and :class:`CassetteError` for a bad cassette.
    """
    a, b = Path(expected_dir), Path(actual_dir)
    for path in (a, b):
        if not path.is_dir():
            raise TimelineError(f"{path}: not a directory")
    left, right = _index_directory(a), _index_directory(b)
    removed = {k: p for k, p in left.items() if k not in right}
    added = {k: p for k, p in right.items() if k not in left}
    compared = {
        key: compare_traces(left[key], right[key], ignore_meta=ignore_meta)
        for key in sorted(left.keys() & right.keys())
    }
    return DirectoryComparison(a, b, removed, added, compared)


# --------------------------------------------------------------------------- explaining


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def _value_text(raw: Any, width: int = 80) -> str:
    try:
        value = codec.to_jsonable(raw)
    except (codec.CodecError, ValueError, TypeError):
        value = raw
    return _clip(repr(value), width)


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return f"{error.get('type', '?')}: {_clip(str(error.get('message', '')), 200)}"
    return _value_text(error)


def _inputs_text(inputs: Mapping[str, Any]) -> str:
    if "args" in inputs or "kwargs" in inputs:
        parts = [_value_text(a, 40) for a in inputs.get("args") or ()]
        kwargs = inputs.get("kwargs") or {}
        if isinstance(kwargs, Mapping):
            parts += [f"{k}={_value_text(v, 40)}" for k, v in kwargs.items()]
        return ", ".join(parts)
    return ", ".join(f"{k}={_value_text(v, 40)}" for k, v in inputs.items())


def _call_text(label: str, inputs: Mapping[str, Any]) -> str:
    return f"{label}({_clip(_inputs_text(inputs), 120)})"


def _child_text(child: Mapping[str, Any]) -> str:
    inputs = {"args": child.get("args") or [], "kwargs": child.get("kwargs") or {}}
    if child.get("error") is not None:
        outcome = "raised " + _error_text(child["error"])
    else:
        outcome = "-> " + _value_text(child.get("result"))
    return f"{_call_text(_label(child), inputs)} {outcome}"


def _event_text(jsonable: Any) -> str:
    if isinstance(jsonable, dict) and "key" in jsonable:
        return _child_text(jsonable)
    return repr(jsonable)


def explain(expected: Any, actual: Any, *, limit: int = 12) -> str:
    """Human-readable lines ``path: expected → actual`` for two values.

    The same rendering as a replay failure (``compare.explain``, deepdiff
    imported only here, when a difference is explained); paths are sorted so
    the text is stable. At most ``limit`` lines, then a count.
    """
    from .compare import explain as differences_of

    found = differences_of(expected, actual)
    if not found:
        return "no difference in content"
    text = [difference.line() for difference in found[:limit]]
    if len(found) > limit:
        text.append(f"... and {len(found) - limit} more differences")
    return "\n".join(text)
