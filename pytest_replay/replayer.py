"""Running recorded calls again: one record at a time (a pytest item) or in bulk (``replay()``).

Pure: no pytest. The pytest glue (collector, items, options, the terminal
summary) lives in ``plugin.py`` and is a thin layer over this module.

Replaying one record:

1. :func:`prepare` resolves the target (its recorded import path, else the
   traced function registered under the same key; only ever a function
   traced under the record's key, see :func:`_resolve`), decodes and re-binds
   the recorded inputs. Whatever makes a record impossible to run raises
   :class:`Unreplayable` with the reason and the fix.
2. :func:`execute` calls it with this module's interceptor active: boundary
   calls are answered from the record's children (:class:`BoundaryAnswers`),
   ``random`` is re-seeded for ``seed_random`` records, and
   :func:`replay_context` says where the code is.
3. :func:`judge` compares the new outcome with the recorded one
   (``compare.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import importlib
import inspect
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from . import codec
from .compare import (
    ROOT,
    CompareOptions,
    CompareRule,
    Comparison,
    Difference,
    Outcome,
    compare_outcomes,
    error_info,
    explain,
    format_inputs,
    format_value,
    options_for,
    render_failure,
    roundtrip,
    suggest_ignore,
)
from .record import ErrorInfo

if TYPE_CHECKING:  # pragma: no cover
    from .trace import TraceSpec

__all__ = [
    "BoundaryAnswers",
    "BoundaryMismatch",
    "Case",
    "CassetteProblem",
    "Prepared",
    "RecordView",
    "ReplayContext",
    "ReplayResult",
    "ReplaySummary",
    "Run",
    "Unreplayable",
    "Verdict",
    "apply_changes",
    "execute",
    "item_names",
    "iter_cassette",
    "judge",
    "prepare",
    "replay",
    "replay_context",
]

FIX_RERECORD = "re-record it (pytest --replay-record --replay-record-mode=rewrite)"
FIX_PRUNE = "remove it with pytest --replay --replay-prune"


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class ReplayContext:
    """Where replayed code is running: which record, and in what kind of run."""

    record_id: str
    key: str
    cassette: Path | None
    mode: str  # "pytest" (a test item) or "programmatic" (``replay()``)
    nodeid: str | None = None

    @property
    def is_pytest(self) -> bool:
        return self.mode == "pytest"


# A contextvar, so threads started with copy_context() and asyncio tasks see
# the replay they belong to, and concurrent replays never see each other's.
_CONTEXT: contextvars.ContextVar[ReplayContext | None] = contextvars.ContextVar(
    "pytest_replay_context", default=None
)


def replay_context() -> ReplayContext | None:
    """``None`` outside a replay; inside one, the record id, key, cassette and mode."""
    return _CONTEXT.get()


# --------------------------------------------------------------------------- records


class RecordError(ValueError):
    """A record payload that is not a record map."""


# Fields read at collection time; the others stay as byte spans of the payload
# until a replay needs them, so collecting 10,000 records builds no value trees.
_SCALAR_FIELDS = frozenset({"id", "key", "target", "kind", "boundary", "unreplayable"})


class RecordView:
    """One record payload (``codec.dumps(record_map)``), parsed only as far as needed."""

    __slots__ = ("_spans", "boundary", "id", "key", "kind", "payload", "target", "unreplayable")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._spans: dict[str, tuple[int, int]] = {}
        scalars: dict[str, Any] = {}
        unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=False,
            max_buffer_size=max(len(payload), 1),
            **codec.UNPACK_LIMITS,
        )
        try:
            unpacker.feed(payload)
            size = unpacker.read_map_header()
            for _ in range(size):
                name = unpacker.unpack()
                if name in _SCALAR_FIELDS:
                    scalars[name] = unpacker.unpack()
                else:
                    start = unpacker.tell()
                    unpacker.skip()
                    self._spans[str(name)] = (start, unpacker.tell())
        except Exception as exc:
            raise RecordError(f"not a record map ({type(exc).__name__}: {exc})") from None
        record_id = scalars.get("id")
        key = scalars.get("key")
        if not isinstance(record_id, str) or not record_id or not isinstance(key, str) or not key:
            raise RecordError("the record map has no 'id' or 'key' string")
        self.id: str = record_id
        self.key: str = key
        self.target = str(scalars.get("target") or "")
        self.kind = str(scalars.get("kind") or "call")
        self.boundary = bool(scalars.get("boundary", False))
        reason = scalars.get("unreplayable")
        self.unreplayable: str | None = str(reason) if reason else None

    def has(self, name: str) -> bool:
        return name in self._spans

    def encoded(self, name: str) -> bytes | None:
        """The field's msgpack bytes, exactly as stored (``None`` when absent)."""
        span = self._spans.get(name)
        return None if span is None else self.payload[span[0] : span[1]]

    def raw(self, name: str, default: Any = None) -> Any:
        """The field as a raw tree (``codec.loads_raw``); imports nothing."""
        data = self.encoded(name)
        return default if data is None else codec.loads_raw(data)

    def decoded(self, name: str, default: Any = None) -> Any:
        """The field as Python values (``codec.loads``; may import classes by path)."""
        data = self.encoded(name)
        return default if data is None else codec.loads(data)

    def record_map(self) -> dict[str, Any]:
        """The whole record map (raw tree)."""
        data = codec.loads_raw(self.payload)
        if not isinstance(data, dict):  # pragma: no cover - checked in __init__
            raise RecordError("not a record map")
        return data


@dataclass(frozen=True)
class Case:
    """One record of one cassette, as collected."""

    cassette: Path
    index: int
    record: RecordView

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def key(self) -> str:
        return self.record.key


@dataclass(frozen=True)
class CassetteProblem:
    """Something wrong with a cassette file found while collecting it."""

    cassette: Path
    message: str
    index: int | None = None
    fatal: bool = True  # False: a torn tail, the records before it are fine


def iter_cassette(path: Path) -> Iterator[Case | CassetteProblem]:
    """Every replayable record of a cassette, then any problem with the file.

    Streaming: the hash chain is verified frame by frame. Records after a
    corrupt frame are not trusted; the records before it are still yielded.
    Top-level records of boundary functions are skipped: replaying them would
    call the real service.
    """
    from .cassette import Cassette, CassetteError

    index = -1
    try:
        cassette = Cassette.open(path)
        for index, payload in enumerate(cassette.payloads()):
            try:
                view = RecordView(payload)
            except RecordError as exc:
                yield CassetteProblem(
                    path,
                    f"{path}: record {index}: {exc}; {FIX_RERECORD}, or {FIX_PRUNE}",
                    index,
                )
                continue
            if view.boundary and view.kind == "call":
                continue
            yield Case(path, index, view)
        torn = cassette.torn_tail
        if torn is not None:
            yield CassetteProblem(
                path,
                f"{path}: {torn.describe()}; the records before it were replayed, "
                "the next recording repairs the file",
                None,
                fatal=False,
            )
    except CassetteError as exc:
        yield CassetteProblem(path, str(exc), exc.index if exc.index is not None else index + 1)


_ITEM_NAME_LIMIT = 64


def item_names(cases: Sequence[Case]) -> list[str]:
    """Stable item names: ``<function>[<first 8 hex of the record id>]``.

    The name depends only on the record's key and content id, so adding,
    reordering or re-recording other calls never renames an item. The full id
    is used for the (rare) records whose short ids collide in one cassette.
    The function part is cut at 64 characters.
    """
    short_count = Counter(case.id[:8] for case in cases)
    seen: Counter[str] = Counter()
    names: list[str] = []
    for case in cases:
        # A generated key can be thousands of characters: the record id keeps
        # the name unique, the function part is only there to be read.
        function = (case.key.rsplit(".", 1)[-1] or case.key)[:_ITEM_NAME_LIMIT]
        rid = case.id[:8] if short_count[case.id[:8]] == 1 else case.id
        name = f"{function}[{rid}]"
        seen[name] += 1
        if seen[name] > 1:  # the same record stored twice: keep ids unique
            name = f"{function}[{rid}-{seen[name]}]"
        names.append(name)
    return names


# --------------------------------------------------------------------------- preparing


class Unreplayable(Exception):
    """A record that cannot be run, with the reason and what to do about it."""

    def __init__(self, reason: str, fix: str, *, stale: bool = False) -> None:
        self.reason = reason
        self.fix = fix
        #: The target no longer exists (pruned by ``--replay-prune``).
        self.stale = stale
        super().__init__(f"{reason}; fix: {fix}")


class _Gone(Exception):
    """The target cannot be found; ``stale`` when it is certainly gone from the code."""

    def __init__(self, message: str, *, stale: bool = True) -> None:
        super().__init__(message)
        self.stale = stale


# Names in messages are cut to this many characters: a hostile or generated
# key or import path can be thousands long, and the message repeats it.
_NAME_LIMIT = 120


def short_name(name: str, limit: int = _NAME_LIMIT) -> str:
    """``name`` as shown in a message: the middle cut out when it is too long.

    Unprintable characters (NUL, terminal escapes, bidi overrides, lone
    surrogates) are shown escaped, so a hostile name cannot garble the output.
    """
    if not name.isprintable():
        name = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)
    if len(name) <= limit:
        return name
    keep = limit - 24
    head, tail = keep - keep // 4, keep // 4
    return f"{name[:head]}…[{len(name)} chars]…{name[-tail:]}"


def _import_target(target: str) -> Any:
    """Resolve ``module:qualname``; raise ``_Gone`` when the code no longer exists.

    A module that fails to import for another reason (a syntax error, a
    missing dependency) is *not* gone: that is reported as is, so pruning
    never deletes records because of a broken environment.
    """
    module_name, sep, qualname = target.partition(":")
    shown = short_name(target)
    module_shown = short_name(module_name)
    if not sep or not module_name or not qualname:
        raise _Gone(f"the recorded target {shown!r} is not module:qualname")
    try:
        owner: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        top = module_name.split(".", 1)[0]
        if missing == top:
            # A whole top-level package missing is far more often sys.path than
            # deleted code: never call it stale (pruning would delete records).
            top_shown = f" (no module named {short_name(top)!r})" if top != module_name else ""
            raise _Gone(
                f"module {module_shown!r} cannot be imported{top_shown}", stale=False
            ) from None
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise _Gone(f"module {module_shown!r} no longer exists") from None
        raise Unreplayable(
            f"importing {module_shown} failed: {type(exc).__name__}: {short_name(str(exc), 300)}",
            "fix the import error (the record itself is fine)",
        ) from None
    except Exception as exc:
        raise Unreplayable(
            f"importing {module_shown} failed: {type(exc).__name__}: {short_name(str(exc), 300)}",
            "fix the import error (the record itself is fine)",
        ) from None
    parts = qualname.split(".")
    for part in parts[:-1]:
        try:
            owner = getattr(owner, part)
        except AttributeError:
            raise _Gone(
                f"{module_shown} has no {short_name(qualname)} (no {short_name(part)!r})"
            ) from None
    name = parts[-1]
    namespace = getattr(owner, "__dict__", {})
    if name in namespace:
        raw = namespace[name]
        if isinstance(raw, classmethod):
            return getattr(owner, name)
        return raw
    try:
        return getattr(owner, name)
    except AttributeError:
        raise _Gone(f"{module_shown} has no {short_name(qualname)}") from None


def _spec_of(obj: Any) -> TraceSpec | None:
    from .trace import TraceSpec

    spec = getattr(obj, "__replay_spec__", None)
    if spec is None:
        spec = getattr(getattr(obj, "__func__", None), "__replay_spec__", None)
    # Only a spec made by @replay_trace / --replay-trace counts: never whatever
    # an object answers for any attribute name.
    return spec if isinstance(spec, TraceSpec) else None


def _resolve(key: str, target: str) -> tuple[Callable[..., Any], TraceSpec]:
    """The traced function a record names, and its spec.

    Security rule: a replay only ever calls a function traced by pytest-replay
    (decorated, or wrapped by ``--replay-trace``/ini ``replay_trace`` at session
    start) under the record's key. A cassette is data anyone can edit; its
    ``target`` naming ``os:remove`` must not make ``pytest --replay`` call it.
    Importing the named module is allowed (pytest imports test modules too);
    calling anything in it that is not traced is not.
    """
    from . import trace

    # The import comes first even when the key is registered: the module may
    # have been re-imported since (changed code), and the current one counts.
    try:
        obj = _import_target(target)
    except _Gone as exc:
        registered = trace.registry().get(key)
        if registered is not None:
            return _checked(registered, key, target)
        if not exc.stale:
            raise Unreplayable(
                f"{exc}, and no traced function is registered under key {short_name(key)!r}",
                "make the code importable (ini `pythonpath = .`, or a conftest.py at the "
                "rootdir); if the package was deleted, delete its cassettes",
            ) from None
        raise Unreplayable(
            f"the target no longer exists: {exc}, and no traced function is registered "
            f"under key {short_name(key)!r}",
            f"if the function moved, give it @replay_trace(key={short_name(key)!r}) and make "
            f"sure its module is imported (e.g. from conftest.py); if it is gone, {FIX_PRUNE}",
            stale=True,
        ) from None
    spec = _spec_of(obj)
    if spec is not None and spec.key == key:
        return _checked(spec, key, target)
    registered = trace.registry().get(key)
    if registered is not None:
        # The function moved (or its key did): the traced function registered
        # under the record's key is the one to run.
        return _checked(registered, key, target)
    shown, key_shown = short_name(target), short_name(key)
    if spec is not None:
        raise Unreplayable(
            f"target {shown} is traced under key {short_name(spec.key)!r}, not under this "
            f"record's key {key_shown!r}; refusing to call it",
            f"{FIX_RERECORD}, or give the function @replay_trace(key={key_shown!r})",
        )
    if isinstance(obj, type) or not callable(getattr(obj, "__func__", obj)):
        raise Unreplayable(
            f"the target {shown} is a {type(obj).__name__}, not a function",
            f"give the function now doing this job @replay_trace(key={key_shown!r}), "
            f"or {FIX_PRUNE}",
            stale=True,
        )
    raise Unreplayable(
        f"target {shown} is not traced by pytest-replay; refusing to call it",
        f"re-record, or trace it with @replay_trace(key={key_shown!r}) / "
        f"--replay-trace={shown}",
    )


def _checked(spec: TraceSpec, key: str, target: str) -> tuple[Callable[..., Any], TraceSpec]:
    if spec.boundary:
        # Its calls are answered from recordings; running one for real (an
        # HTTP request, a payment) is exactly what a replay must never do.
        raise Unreplayable(
            f"target {short_name(target)} is traced as a boundary (boundary=True): a replay "
            "answers boundary calls from recordings and never calls one for real",
            f"delete this record (a boundary's calls are stored inside its callers' records); "
            f"if {short_name(key)!r} is no longer a boundary, re-record it",
        )
    return _spec_caller(spec), spec


def _spec_caller(spec: TraceSpec) -> Callable[..., Any]:
    # spec.fn is the unwrapped original: the replayed call itself does not go
    # through the interceptor, only the traced calls it makes do.
    if spec.kind == "classmethod":

        def call_classmethod(*args: Any, **kwargs: Any) -> Any:
            return spec.invoke(args, kwargs)

        return call_classmethod
    return spec.fn


def _find_marker(value: Any, kind: type, path: str, depth: int = 0) -> tuple[str, Any] | None:
    """The first ``kind`` instance inside ``value`` (containers and dataclass-like objects)."""
    if isinstance(value, kind):
        return path, value
    if depth > 50:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_marker(item, kind, f"{path}[{key!r}]", depth + 1)
            if found:
                return found
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            found = _find_marker(item, kind, f"{path}[{index}]", depth + 1)
            if found:
                return found
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        try:
            attributes = vars(value)
        except TypeError:  # pragma: no cover - objects with a non-dict __dict__
            return None
        for name, item in attributes.items():
            found = _find_marker(item, kind, f"{path}.{name}", depth + 1)
            if found:
                return found
    return None


def _options_of(spec: TraceSpec | None) -> CompareOptions:
    if spec is None:
        return CompareOptions()
    return CompareOptions(
        ignore=tuple(spec.ignore),
        significant_digits=spec.significant_digits,
        ignore_order=spec.ignore_order,
        compare=spec.compare,
    )


@dataclass
class Prepared:
    """A record ready to run: the callable, its inputs and how to judge it."""

    case: Case
    call: Callable[..., Any]
    spec: TraceSpec | None
    args: list[Any]
    kwargs: dict[str, Any]
    #: parameter name -> fixture name, supplied at run time
    resources: dict[str, str]
    options: CompareOptions
    seed: int | None
    is_async: bool
    meta: dict[str, Any]
    signature: inspect.Signature | None

    @property
    def key(self) -> str:
        return self.case.key

    @property
    def record_id(self) -> str:
        return self.case.id

    @property
    def inputs(self) -> dict[str, Any]:
        """The recorded inputs by parameter name (for failure texts and reports)."""
        return _named_inputs(self.signature, self.args, self.kwargs)

    @property
    def recorded_duration_ms(self) -> float | None:
        value = self.meta.get("duration_ms")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def user_metadata(self) -> dict[str, Any]:
        user = self.meta.get("user")
        return dict(user) if isinstance(user, Mapping) else {}

    def expected(self) -> Outcome:
        """The recorded outcome, decoded."""
        view = self.case.record
        if view.has("error"):
            error = view.decoded("error")
            if not isinstance(error, Mapping):
                raise Unreplayable("the recorded error is malformed", FIX_RERECORD)
            return Outcome(error=ErrorInfo.from_map(error))
        return Outcome(value=view.decoded("result"))


def _named_inputs(
    signature: inspect.Signature | None, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    if signature is not None:
        try:
            return dict(signature.bind_partial(*args, **kwargs).arguments)
        except TypeError:
            pass
    named: dict[str, Any] = {f"args[{index}]": value for index, value in enumerate(args)}
    named.update(kwargs)
    return named


def prepare(case: Case, rules: Sequence[CompareRule] = ()) -> Prepared:
    """Resolve, decode and re-bind one record. Raises :class:`Unreplayable`."""
    view = case.record
    if view.unreplayable:
        raise Unreplayable(
            f"recorded as unreplayable: {view.unreplayable}",
            f"make the value encodable (a dataclass, attrs class or pytest_replay.register_type) "
            f"or a resources= fixture, then {FIX_RERECORD}; or {FIX_PRUNE}",
        )
    call, spec = _resolve(view.key, view.target)
    try:
        args = view.decoded("args", [])
        kwargs = view.decoded("kwargs", {})
        meta = view.decoded("meta", {})
    except codec.CodecError as exc:
        raise Unreplayable(f"the recorded inputs cannot be decoded: {exc}", FIX_RERECORD) from None
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise Unreplayable("the recorded inputs are malformed (args/kwargs)", FIX_RERECORD)
    args = list(args)
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    opaque = _find_marker([args, kwargs], codec.Opaque, "inputs")
    if opaque is not None:
        where, marker = opaque
        signature = spec.signature if spec is not None else _signature(call)
        name = _input_name(where, signature, args)
        raise Unreplayable(
            f"input {name} was recorded as an opaque {marker.type_name} ({marker.repr})",
            "make it encodable (a dataclass, attrs class or pytest_replay.register_type) or "
            f"a resources= fixture, then {FIX_RERECORD}; or {FIX_PRUNE}",
        )
    resources = dict(spec.resources) if spec is not None else {}
    signature = spec.signature if spec is not None else _signature(call)
    if signature is not None:
        try:
            signature.bind(*args, **kwargs, **dict.fromkeys(resources))
        except TypeError as exc:
            target = short_name(view.target or view.key)
            raise Unreplayable(
                f"the recorded arguments no longer bind to {target}{signature}: {exc}",
                f"{FIX_RERECORD}, or {FIX_PRUNE}",
            ) from None
    seed = meta.get("seed")
    is_async = spec.is_async if spec is not None else inspect.iscoroutinefunction(call)
    return Prepared(
        case=case,
        call=call,
        spec=spec,
        args=args,
        kwargs=kwargs,
        resources=resources,
        options=options_for(view.key, _options_of(spec), rules),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        is_async=is_async,
        meta=meta,
        signature=signature,
    )


def _signature(call: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(call)
    except (TypeError, ValueError):
        return None


def _input_name(where: str, signature: inspect.Signature | None, args: Sequence[Any]) -> str:
    # where is "inputs[0][i]..." (positional) or "inputs[1]['name']..." (keyword)
    if where.startswith("inputs[1]["):
        return where[len("inputs[1]") :]
    if where.startswith("inputs[0][") and signature is not None:
        index_text = where[len("inputs[0][") :].split("]", 1)[0]
        rest = where[len("inputs[0][") + len(index_text) + 1 :]
        if index_text.isdigit():
            names = [
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            index = int(index_text)
            if index < len(names):
                return repr(names[index]) + rest
    return where


# --------------------------------------------------------------------------- boundaries


class BoundaryMismatch(Exception):
    """A boundary call during a replay that has no recorded answer.

    Raised into the code under test; the item fails with this message even if
    the code catches it.
    """


class _RecordedCall:
    __slots__ = ("key", "order", "raw", "rid", "used")

    def __init__(self, order: int, raw: Mapping[str, Any]) -> None:
        self.order = order
        self.raw = raw
        self.key = str(raw.get("key", ""))
        self.rid = str(raw.get("id", ""))
        self.used = False

    def inputs(self) -> tuple[list[Any], dict[str, Any]]:
        args = codec.decode(self.raw.get("args") or [])
        kwargs = codec.decode(self.raw.get("kwargs") or {})
        return list(args) if isinstance(args, (list, tuple)) else [args], (
            dict(kwargs) if isinstance(kwargs, Mapping) else {}
        )


def _flatten_boundaries(children: Any, out: list[_RecordedCall]) -> None:
    if not isinstance(children, list):
        return
    for child in children:
        if not isinstance(child, Mapping):
            continue
        if child.get("boundary"):
            out.append(_RecordedCall(len(out), child))
        else:
            # A traced (non-boundary) call runs for real at replay; the
            # boundary calls it made are answered from its children.
            _flatten_boundaries(child.get("children"), out)


def input_id(key: str, args_b: bytes, kwargs_b: bytes) -> str:
    """The record id of a call, as the recorder computes it (``record.record_id``)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(key.encode("utf-8"))
    digest.update(b"\x00\x92")  # key separator, then msgpack fixarray(2) of [args, kwargs]
    digest.update(args_b)
    digest.update(kwargs_b)
    return digest.hexdigest()


class BoundaryAnswers:
    """The recorded boundary calls of one record, answered in recorded order.

    A call is matched by key and the hash of its canonical inputs (the record
    id); repeated identical calls take the recorded answers in order. When no
    hash matches, a recorded call of the same key whose inputs equal the new
    ones, with recorded ``Redacted`` values matching anything, is used: the
    recording never stores secrets, so the replay cannot hash them the same.
    """

    def __init__(self, children: Any) -> None:
        self.calls: list[_RecordedCall] = []
        _flatten_boundaries(children, self.calls)
        self._by_id: dict[tuple[str, str], list[_RecordedCall]] = {}
        for call in self.calls:
            self._by_id.setdefault((call.key, call.rid), []).append(call)
        self._lock = threading.Lock()

    def take(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The recorded answer of this call: its result, or its exception raised again."""
        cargs, ckwargs = spec.bind(args, kwargs)
        rid = input_id(spec.key, codec.dumps(cargs), codec.dumps(ckwargs))
        with self._lock:
            found = self._claim(spec, rid, cargs, ckwargs)
        if found is None:
            raise BoundaryMismatch(self.describe_miss(spec, rid, cargs, ckwargs))
        return _answer(found.raw)

    def _claim(
        self, spec: TraceSpec, rid: str, cargs: list[Any], ckwargs: dict[str, Any]
    ) -> _RecordedCall | None:
        for call in self._by_id.get((spec.key, rid), ()):
            if not call.used:
                call.used = True
                return call
        from .compare import compare_values

        for call in self.calls:
            if call.used or call.key != spec.key:
                continue
            try:
                recorded = call.inputs()
            except codec.CodecError:
                continue
            if compare_values(list(recorded), [cargs, ckwargs]).equal:
                call.used = True
                return call
        return None

    def unused(self) -> list[_RecordedCall]:
        return [call for call in self.calls if not call.used]

    def describe_miss(
        self, spec: TraceSpec, rid: str, cargs: list[Any], ckwargs: dict[str, Any]
    ) -> str:
        """vcrpy-style: the call, its inputs, and the closest recorded calls with what differed."""
        new_inputs = _named_inputs(spec.signature, cargs, ckwargs)
        name = spec.key.rsplit(".", 1)[-1]
        lines = [
            f"boundary call with no recorded answer: {spec.key}",
            f"  inputs: {format_inputs(new_inputs)}",
        ]
        same = [call for call in self.calls if call.key == spec.key]
        exact = [call for call in same if call.rid == rid]
        if exact:
            lines.append(
                f"  this exact call was recorded {len(exact)} time{'s' if len(exact) != 1 else ''}"
                f" and every recorded answer was already used: the code now makes it more often"
            )
        elif same:
            scored: list[tuple[int, int, _RecordedCall, list[Difference]]] = []
            for call in same:
                try:
                    rargs, rkwargs = call.inputs()
                except codec.CodecError:
                    continue
                recorded_inputs = _named_inputs(spec.signature, rargs, rkwargs)
                differences = explain(recorded_inputs, new_inputs)
                scored.append((len(differences), call.order, call, differences))
            scored.sort(key=lambda item: (item[0], item[1]))
            lines.append(
                f"  {len(same)} call{'s' if len(same) != 1 else ''} to {spec.key} "
                f"{'were' if len(same) != 1 else 'was'} recorded; the closest "
                "(recorded → now):"
            )
            for _count, order, call, differences in scored[:3]:
                used = " (already used)" if call.used else ""
                lines.append(f"    #{order + 1} {name}[{call.rid[:8]}]{used}:")
                lines.extend(f"      {difference.line(50)}" for difference in differences[:4])
                if len(differences) > 4:
                    lines.append(f"      ... and {len(differences) - 4} more")
        else:
            recorded = Counter(call.key for call in self.calls)
            listing = ", ".join(f"{key} ×{count}" for key, count in recorded.items()) or "none"
            lines.append(f"  no call to {spec.key} was recorded in this record")
            lines.append(f"  recorded boundary calls: {listing}")
        lines.append(
            f"  fix: if the change is intended, {FIX_RERECORD}; otherwise the code under test "
            "now calls the boundary differently"
        )
        return "\n".join(lines)


def _answer(raw: Mapping[str, Any]) -> Any:
    error = raw.get("error")
    if isinstance(error, Mapping):
        raise _rebuild_exception(ErrorInfo.from_map(error), error.get("args"))
    return codec.decode(raw.get("result"))


class ReplayedError(Exception):
    """A recorded boundary exception whose class cannot be rebuilt here."""

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        super().__init__(f"{type_name}: {message}")


def _rebuild_exception(error: ErrorInfo, raw_args: Any) -> BaseException:
    """The recorded exception, raised again from a boundary answer."""
    path = error.type.replace(":", ".")
    parts = path.split(".")
    cls: Any = None
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            break
        cls = obj
        break
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            args = codec.decode(raw_args) if raw_args is not None else ()
            exc = cls(*args) if isinstance(args, (list, tuple)) else cls(error.message)
        except Exception:
            try:
                exc = cls.__new__(cls)
                exc.args = (error.message,)
            except Exception:
                return ReplayedError(error.type, error.message)
        return exc
    return ReplayedError(error.type, error.message)


# --------------------------------------------------------------------------- running


class _State:
    """Per-replay state the interceptor reads (via a contextvar)."""

    __slots__ = ("answers", "mismatches")

    def __init__(self, answers: BoundaryAnswers) -> None:
        self.answers = answers
        self.mismatches: list[str] = []

    def answer(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return self.answers.take(spec, args, kwargs)
        except BoundaryMismatch as exc:
            self.mismatches.append(str(exc))
            raise

    def reseed(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # The recorder seeds each seed_random call with the first 8 hex digits
        # of its record id; a nested call re-seeds the same way here.
        try:
            cargs, ckwargs = spec.bind(args, kwargs)
        except TypeError:
            return
        rid = input_id(spec.key, codec.dumps(cargs), codec.dumps(ckwargs))
        random.seed(int(rid[:8], 16))


_STATE: contextvars.ContextVar[_State | None] = contextvars.ContextVar(
    "pytest_replay_state", default=None
)
# pytest runs one item at a time per process: threads the code under test
# starts without copying its context still find the running replay here.
_fallback_state: _State | None = None


class _Interceptor:
    """Plugged into every traced function while a replay runs."""

    def call(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state = _STATE.get() or _fallback_state
        if state is None:
            return spec.fn(*args, **kwargs)
        if spec.boundary:
            return state.answer(spec, args, kwargs)
        if spec.seed_random:
            state.reseed(spec, args, kwargs)
        return spec.fn(*args, **kwargs)

    async def acall(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state = _STATE.get() or _fallback_state
        if state is None:
            return await spec.fn(*args, **kwargs)
        if spec.boundary:
            return state.answer(spec, args, kwargs)
        if spec.seed_random:
            state.reseed(spec, args, kwargs)
        return await spec.fn(*args, **kwargs)


_INTERCEPTOR = _Interceptor()


@dataclass
class Run:
    """What one execution of a record did."""

    outcome: Outcome
    value: Any
    exception: BaseException | None
    duration_ms: float
    mismatch: str | None = None
    random_drawn: bool = False


def _begin(prepared: Prepared, mode: str, nodeid: str | None) -> tuple[_State, Any, Any]:
    state = _State(BoundaryAnswers(prepared.case.record.raw("children", [])))
    context = ReplayContext(prepared.record_id, prepared.key, prepared.case.cassette, mode, nodeid)
    return state, _STATE.set(state), _CONTEXT.set(context)


def _arguments(
    prepared: Prepared, resources: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    if not prepared.resources:
        return prepared.args, prepared.kwargs
    kwargs = dict(prepared.kwargs)
    for name, fixture in prepared.resources.items():
        if name in resources:
            kwargs[name] = resources[name]
        elif fixture in resources:
            kwargs[name] = resources[fixture]
        else:
            raise Unreplayable(
                f"parameter {name!r} is a resource (fixture {fixture!r}) and no value was given",
                f"pass resources={{{name!r}: ...}}",
            )
    return prepared.args, kwargs


def _finish(
    state: _State, value: Any, exception: BaseException | None, elapsed: float, drawn: bool
) -> Run:
    mismatch = state.mismatches[0] if state.mismatches else None
    if exception is not None:
        outcome = Outcome.from_exception(exception)
    else:
        outcome = Outcome(value=value)
    return Run(outcome, value, exception, elapsed * 1000.0, mismatch, drawn)


@contextlib.contextmanager
def _replaying(prepared: Prepared, mode: str, nodeid: str | None) -> Iterator[_State]:
    """The replay's state installed around one call of the target, random seeded.

    Only a pytest item sets the fallback state, and it puts back what it found,
    so a programmatic replay nested inside an item leaves the item's alone.
    """
    from . import trace

    global _fallback_state
    state, state_token, context_token = _begin(prepared, mode, nodeid)
    previous_fallback = _fallback_state
    if mode == "pytest":  # one item at a time: see _fallback_state
        _fallback_state = state
    activation = trace.activate(_INTERCEPTOR)
    try:
        if prepared.seed is not None:
            random.seed(prepared.seed)
        yield state
    finally:
        trace.deactivate(activation)
        if mode == "pytest":
            _fallback_state = previous_fallback
        _STATE.reset(state_token)
        _CONTEXT.reset(context_token)


def execute(
    prepared: Prepared,
    *,
    resources: Mapping[str, Any] | None = None,
    mode: str = "pytest",
    nodeid: str | None = None,
    track_random: bool = False,
) -> Run:
    """Run the record once. ``async`` targets get an event loop of their own."""
    if prepared.is_async:
        return asyncio.run(
            execute_async(
                prepared, resources=resources, mode=mode, nodeid=nodeid, track_random=track_random
            )
        )
    args, kwargs = _arguments(prepared, resources or {})
    value: Any = None
    exception: BaseException | None = None
    with _replaying(prepared, mode, nodeid) as state:
        before = random.getstate() if track_random else None
        start = time.perf_counter()
        try:
            value = prepared.call(*args, **kwargs)
        except Exception as exc:
            exception = exc
        elapsed = time.perf_counter() - start
        drawn = track_random and random.getstate() != before
    return _finish(state, value, exception, elapsed, drawn)


async def execute_async(
    prepared: Prepared,
    *,
    resources: Mapping[str, Any] | None = None,
    mode: str = "programmatic",
    nodeid: str | None = None,
    track_random: bool = False,
) -> Run:
    """Run the record once on the running event loop (sync targets run inline)."""
    args, kwargs = _arguments(prepared, resources or {})
    value: Any = None
    exception: BaseException | None = None
    with _replaying(prepared, mode, nodeid) as state:
        before = random.getstate() if track_random else None
        start = time.perf_counter()
        try:
            value = prepared.call(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            exception = exc
        elapsed = time.perf_counter() - start
        drawn = track_random and random.getstate() != before
    return _finish(state, value, exception, elapsed, drawn)


# --------------------------------------------------------------------------- judging


@dataclass
class Verdict:
    """How one replay ended, and the text to show when it did not match."""

    status: str  # matched | diverged | nondeterministic
    comparison: Comparison | None = None
    text: str = ""
    #: the new record payload, for --replay-update (diverged outputs only)
    update: bytes | None = None
    paths: tuple[str, ...] = ()
    suggestion: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "matched"


def judge(prepared: Prepared, run: Run, *, cassette: str | None = None) -> Verdict:
    """Compare a run with the recording."""
    view = prepared.case.record
    if run.mismatch is not None:
        return Verdict("diverged", None, _headline(prepared, run.mismatch, cassette))
    options = prepared.options
    if run.exception is None and options.compare is None and not view.has("error"):
        # The fastest check there is: the new output encodes to exactly the
        # recorded bytes. No decoding of either side, nothing else built.
        recorded = view.encoded("result")
        if recorded is not None:
            new = _plain_bytes(run.value)
            if new is None:
                new = codec.dumps(run.value)
            if new == recorded:
                return Verdict("matched")
    try:
        expected = prepared.expected()
    except codec.CodecError as exc:
        raise Unreplayable(f"the recorded output cannot be decoded: {exc}", FIX_RERECORD) from None
    comparison = compare_outcomes(expected, run.outcome, options)
    if comparison.equal:
        return Verdict("matched", comparison)
    text = render_failure(
        key=prepared.key,
        record_id=prepared.record_id,
        inputs=prepared.inputs,
        comparison=comparison,
        cassette=cassette,
    )
    if run.exception is not None:
        text += "\n" + _short_traceback(run.exception)
    return Verdict(
        "diverged",
        comparison,
        text,
        paths=tuple(difference.path for difference in comparison.differences),
    )


class _NotPlain(Exception):
    pass


def _refuse(obj: object) -> object:
    raise _NotPlain


def _plain_bytes(value: object) -> bytes | None:
    """``value`` packed exactly as the codec packs plain data, or ``None`` if it is not plain.

    The same packer settings as ``codec.dumps``, minus its scan for
    ``bytearray`` (which the C packer writes like ``bytes``): a scan that costs
    several times the packing on a large output. Skipping it is safe here
    because ``bytes == bytearray`` holds, so a match stays a match under the
    ``==`` rule; a recorded ``bytearray`` is an ext value and never matches
    plain bin bytes. Anything not plain (tuples, subclasses, huge ints) makes
    the packer call ``_refuse`` and the codec takes over.
    """
    try:
        data: bytes = msgpack.packb(value, default=_refuse, strict_types=True, use_bin_type=True)
    except Exception:
        return None
    return data


def _headline(prepared: Prepared, body: str, cassette: str | None) -> str:
    lines = [f"replay of {prepared.key} [{prepared.record_id}] failed"]
    if cassette:
        lines.append(f"  cassette: {cassette}")
    lines.append(f"  inputs:   {format_inputs(prepared.inputs)}")
    lines.append(body)
    return "\n".join(lines)


def _short_traceback(exc: BaseException, frames: int = 6) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-frames)
    return "  the replayed call raised (innermost frames):\n" + "".join(
        "    " + line for chunk in lines for line in chunk.rstrip("\n").splitlines(True)
    ).rstrip("\n").replace("\n", "\n    ")


def check_twice(prepared: Prepared, first: Run, second: Run) -> Verdict | None:
    """``None`` when two runs agree; otherwise a non-determinism verdict."""
    if first.exception is not None:
        expected = first.outcome
    else:
        expected = Outcome(value=roundtrip(first.value))
    comparison = compare_outcomes(expected, second.outcome, prepared.options)
    if comparison.equal:
        return None
    suggestion = suggest_ignore(comparison.differences)
    lines = [
        f"non-deterministic: {prepared.key} [{prepared.record_id}]: two runs on the same "
        "recorded inputs disagree (first → second):"
    ]
    lines.extend(f"    {line}" for line in comparison.lines())
    lines.append(
        "  fix: trace the source of the noise (a clock, uuid4, a counter, the network) with "
        "@replay_trace(boundary=True) so the replay answers it from the recording"
    )
    if first.random_drawn and not (prepared.spec is not None and prepared.spec.seed_random):
        lines.append(
            "  this call draws from `random`: record it with @replay_trace(seed_random=True)"
        )
    if suggestion:
        lines.append(
            f"  or, if these fields are noise, leave them out of the comparison: "
            f"@replay_trace({suggestion}) or ini: "
            f"replay_compare = {prepared.key}: ignore="
            + ",".join(generalized for generalized in _paths(comparison))
        )
    return Verdict(
        "nondeterministic",
        comparison,
        "\n".join(lines),
        paths=tuple(difference.path for difference in comparison.differences),
        suggestion=suggestion,
    )


def _paths(comparison: Comparison) -> list[str]:
    from .compare import generalize_path

    out: list[str] = []
    for difference in comparison.differences:
        path = generalize_path(difference.path)
        if path != ROOT and path not in out:
            out.append(path)
    return out


# --------------------------------------------------------------------------- updating


def updated_payload(prepared: Prepared, run: Run) -> bytes:
    """The record with its outcome replaced by the run's (``--replay-update``).

    Everything else (id, inputs, children, metadata) is kept, in the same
    field order, so only the outcome bytes change. The new output goes
    through the same redaction as a recording.
    """
    from . import redact

    spec = prepared.spec
    rules = tuple(spec.redact) if spec is not None else ()
    record = prepared.case.record.record_map()
    new: dict[str, Any]
    if run.exception is not None:
        exc_args, _ = redact.scrub_value(list(run.exception.args), "error", rules, scan=True)
        info = error_info(run.exception)
        new = {
            "error": {
                "type": info.type,
                "message": info.message,
                "args": codec.loads_raw(codec.dumps(exc_args)),
            }
        }
    else:
        value, _ = redact.scrub_value(run.value, "return", rules, scan=True)
        new = {"result": codec.loads_raw(codec.dumps(value))}
    out: dict[str, Any] = {}
    placed = False
    for name, item in record.items():
        if name in ("result", "error"):
            if not placed:
                out.update(new)
                placed = True
            continue
        out[name] = item
    if not placed:
        out.update(new)
    return codec.dumps(out)


@dataclass
class ChangeReport:
    """What :func:`apply_changes` did to one cassette."""

    path: Path
    updated: int = 0
    removed: int = 0
    missing: tuple[str, ...] = ()
    error: str | None = None
    #: the cassette was removed because no record was left
    deleted: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.updated or self.removed)


def apply_changes(
    path: Path,
    updates: Mapping[str, bytes],
    removals: Iterable[str] = (),
    *,
    lock_timeout: float = 60.0,
) -> ChangeReport:
    """Rewrite a cassette with updated and removed records, atomically.

    Untouched records keep their exact bytes; the file is rewritten only when
    something changed. A cassette that cannot be read is left as it is and
    the problem is returned in ``error``. The directory's lock is held
    throughout (a recording run appending to the same cassette meanwhile would
    otherwise lose its records), and temp files of interrupted rewrites found
    there are removed.
    """
    from .store import DirectoryLock, LockTimeout

    report = ChangeReport(path)
    lock = DirectoryLock(path.parent, timeout=lock_timeout)
    try:
        lock.acquire()
    except (OSError, LockTimeout) as exc:
        report.error = f"{path}: not rewritten: {exc}"
        return report
    try:
        lock.remove_orphans()
        _apply_changes(path, updates, set(removals), report)
    finally:
        lock.release()
    return report


def _apply_changes(
    path: Path, updates: Mapping[str, bytes], removal_ids: set[str], report: ChangeReport
) -> None:
    from .cassette import Cassette, CassetteError

    try:
        cassette = Cassette.open(path)
        payloads: list[bytes] = []
        seen: set[str] = set()
        for payload in cassette.payloads():
            try:
                view = RecordView(payload)
            except RecordError:
                payloads.append(payload)
                continue
            seen.add(view.id)
            if view.id in removal_ids:
                report.removed += 1
                continue
            new = updates.get(view.id)
            if new is not None and new != payload:
                payloads.append(new)
                report.updated += 1
            else:
                payloads.append(payload)
        if cassette.torn_tail is not None:
            report.error = f"{path}: {cassette.torn_tail.describe()}; not rewritten"
            report.updated = report.removed = 0
            return
        report.missing = tuple(sorted((set(updates) | removal_ids) - seen))
        if report.removed and not payloads:
            # Every record was pruned: an empty cassette is only noise in the repository.
            path.unlink()
            report.deleted = True
        elif report.changed:
            cassette.rewrite(payloads)
    except (CassetteError, OSError) as exc:
        report.error = str(exc)
        report.updated = report.removed = 0


# --------------------------------------------------------------------------- summary


@dataclass
class ReplaySummary:
    """The terminal summary of a replay run: a pure object that yields lines."""

    counts: Counter[str] = field(default_factory=Counter)
    unreplayable: dict[str, list[str]] = field(default_factory=dict)
    nondeterministic: list[tuple[str, str]] = field(default_factory=list)
    stale: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, status: str, nodeid: str, reason: str = "", detail: str = "") -> None:
        self.counts[status] += 1
        if status == "unreplayable":
            self.unreplayable.setdefault(reason or "unknown", []).append(nodeid)
        elif status == "nondeterministic":
            self.nondeterministic.append((nodeid, detail))

    @property
    def replayed(self) -> int:
        return sum(self.counts[s] for s in ("matched", "diverged", "updated", "nondeterministic"))

    def lines(self) -> Iterator[str]:
        c = self.counts
        if not (self.replayed or c["unreplayable"] or self.notes or self.stale):
            return
        yield (
            f"{self.replayed} replayed: {c['matched']} matched, {c['diverged']} diverged, "
            f"{c['updated']} updated, {c['nondeterministic']} non-deterministic; "
            f"{c['unreplayable']} unreplayable"
        )
        for reason, nodeids in sorted(self.unreplayable.items(), key=lambda kv: -len(kv[1])):
            more = f" (and {len(nodeids) - 1} more)" if len(nodeids) > 1 else ""
            yield f"  unreplayable: {nodeids[0]}{more}: {reason}"
        for nodeid, detail in self.nondeterministic[:20]:
            yield f"  non-deterministic: {nodeid}: {detail}"
        if len(self.nondeterministic) > 20:
            yield f"  ... and {len(self.nondeterministic) - 20} more non-deterministic"
        if self.stale:
            yield (
                f"{len(self.stale)} stale record{'s' if len(self.stale) != 1 else ''} "
                "(target no longer exists):"
            )
            for cassette, rid, target in self.stale[:20]:
                yield f"  {cassette} [{rid}] {short_name(target)}"
            if len(self.stale) > 20:
                yield f"  ... and {len(self.stale) - 20} more"
        yield from dict.fromkeys(self.notes)  # xdist workers report the same cassette notes


# --------------------------------------------------------------------------- replay()


@dataclass
class ReplayResult:
    """One record replayed by :func:`replay`."""

    key: str
    record_id: str
    status: str  # matched | diverged | unreplayable
    inputs: dict[str, Any]
    result: Any
    original: Any  # the recorded return value, or the recorded ErrorInfo
    error: BaseException | None
    duration_ms: float | None
    recorded_duration_ms: float | None
    metadata: dict[str, Any]
    diff: tuple[Difference, ...] = ()
    text: str = ""

    @property
    def matched(self) -> bool:
        return self.status == "matched"

    def __str__(self) -> str:
        head = f"{self.key} [{self.record_id[:8]}] {self.status}"
        if self.duration_ms is not None and self.recorded_duration_ms is not None:
            head += f" ({self.recorded_duration_ms:.1f} ms → {self.duration_ms:.1f} ms)"
        return head + ("\n" + self.text if self.text and not self.matched else "")


def _key_of(fn_or_key: Any) -> str:
    if isinstance(fn_or_key, str):
        return fn_or_key
    spec = _spec_of(fn_or_key)
    if spec is None:
        raise TypeError(
            f"replay() takes a function decorated with @replay_trace or its key, got {fn_or_key!r}"
        )
    return spec.key


def replay(
    fn_or_key: Any,
    cassette_dir: str | Path = "cassettes",
    *,
    limit: int | None = 5,
    ids: Iterable[str] | None = None,
    max_concurrency: int = 10,
    resources: Mapping[str, Any] | None = None,
    rules: Sequence[CompareRule] = (),
) -> list[ReplayResult]:
    """Replay recorded calls outside pytest, with the same machinery as ``pytest --replay``.

    ``fn_or_key`` is a traced function or its key; ``ids`` selects records by
    id (a prefix is enough); ``limit`` caps how many run (``None``: all).
    Sync targets run on threads, ``async`` targets as tasks on one event loop,
    at most ``max_concurrency`` at a time. ``resources`` gives values for
    ``resources=`` parameters (by parameter or fixture name). Returns one
    :class:`ReplayResult` per record, in cassette order.
    """
    from .cassette import cassette_path

    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or a non-negative int, got {limit!r}")
    key = _key_of(fn_or_key)
    path = cassette_path(Path(cassette_dir), key)
    if not path.is_file():
        raise FileNotFoundError(
            f"no cassette for key {key!r} at {path}: record it first "
            "(pytest --replay-record, or pytest_replay.recording())"
        )
    wanted = list(ids) if ids is not None else None
    cases: list[Case] = []
    for entry in iter_cassette(path):
        if isinstance(entry, CassetteProblem):
            if entry.fatal:
                raise ValueError(entry.message)
            continue
        if wanted is not None and not any(entry.id.startswith(prefix) for prefix in wanted):
            continue
        cases.append(entry)
    if wanted is not None:
        unknown = [p for p in wanted if not any(c.id.startswith(p) for c in cases)]
        if unknown:
            raise ValueError(f"{path}: no record with id {', '.join(map(repr, unknown))}")
    if limit is not None:
        cases = cases[:limit]
    given = dict(resources or {})
    results: list[ReplayResult | None] = [None] * len(cases)
    prepared: list[tuple[int, Prepared]] = []
    for position, case in enumerate(cases):
        try:
            prepared.append((position, prepare(case, rules)))
        except Unreplayable as exc:
            results[position] = _unreplayable_result(case, exc)
    sync_jobs = [(i, p) for i, p in prepared if not p.is_async]
    async_jobs = [(i, p) for i, p in prepared if p.is_async]
    if sync_jobs:
        with ThreadPoolExecutor(max_workers=min(max_concurrency, len(sync_jobs))) as pool:
            futures = [
                (i, pool.submit(contextvars.copy_context().run, _replay_one, p, given))
                for i, p in sync_jobs
            ]
            for i, future in futures:
                results[i] = future.result()
    if async_jobs:
        _run_async_jobs(async_jobs, given, max_concurrency, results)
    return [result for result in results if result is not None]


def _run_async_jobs(
    jobs: list[tuple[int, Prepared]],
    given: Mapping[str, Any],
    max_concurrency: int,
    results: list[ReplayResult | None],
) -> None:
    async def main() -> None:
        semaphore = asyncio.Semaphore(max_concurrency)

        async def one(index: int, item: Prepared) -> None:
            async with semaphore:
                results[index] = await _areplay_one(item, given)

        await asyncio.gather(*(one(i, p) for i, p in jobs))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    # Called from inside a running loop: run ours on a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, main()).result()


def _unreplayable_result(case: Case, exc: Unreplayable) -> ReplayResult:
    return ReplayResult(
        key=case.key,
        record_id=case.id,
        status="unreplayable",
        inputs={},
        result=None,
        original=None,
        error=exc,
        duration_ms=None,
        recorded_duration_ms=None,
        metadata={},
        text=str(exc),
    )


def _replay_one(prepared: Prepared, resources: Mapping[str, Any]) -> ReplayResult:
    try:
        run = execute(prepared, resources=resources, mode="programmatic")
    except Unreplayable as exc:
        return _unreplayable_result(prepared.case, exc)
    return _result(prepared, run)


async def _areplay_one(prepared: Prepared, resources: Mapping[str, Any]) -> ReplayResult:
    try:
        run = await execute_async(prepared, resources=resources, mode="programmatic")
    except Unreplayable as exc:
        return _unreplayable_result(prepared.case, exc)
    return _result(prepared, run)


def _result(prepared: Prepared, run: Run) -> ReplayResult:
    try:
        verdict = judge(prepared, run)
        expected = prepared.expected()
    except Unreplayable as exc:
        return _unreplayable_result(prepared.case, exc)
    original = expected.error if expected.error is not None else expected.value
    return ReplayResult(
        key=prepared.key,
        record_id=prepared.record_id,
        status=verdict.status,
        inputs=prepared.inputs,
        result=run.value,
        original=original,
        error=run.exception,
        duration_ms=run.duration_ms,
        recorded_duration_ms=prepared.recorded_duration_ms,
        metadata=prepared.user_metadata,
        diff=verdict.comparison.differences if verdict.comparison is not None else (),
        text=verdict.text,
    )


def describe_value(value: Any, width: int = 80) -> str:
    """A short one-line form of a value (re-exported for the plugin)."""
    return format_value(value, width)
