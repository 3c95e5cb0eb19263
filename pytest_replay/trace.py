"""The ``@replay_trace`` decorator, the interceptor switch and the call recorder.

Everything that runs inside application code lives here, so it must stay cheap
to import (stdlib only at import time; the codec, the redactor and the store are
imported when a recording starts) and cheap to call: while nothing records or
replays, a traced function costs one module-global load and one identity test
more than a bare ``functools.wraps`` pass-through (``benchmarks/bench_trace.py``).

Recording and replay plug into the wrapper through an :class:`Interceptor`
made active with :func:`activate`. The recorder keeps the call tree in a
:class:`contextvars.ContextVar`, so nested traced calls become children of the
right parent in threads started with ``contextvars.copy_context()`` and in
asyncio tasks.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import hashlib
import importlib
import inspect
import itertools
import os
import random
import struct
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import msgpack

from . import redact as _redact_module
from .store import PendingRecord as _PendingRecord

if TYPE_CHECKING:  # pragma: no cover
    from .store import MergeReport, PendingRecord, RecordBuffer

_perf_counter = time.perf_counter
_get_ident = threading.get_ident
# The call order given to calls made off the recording's own thread: larger
# than any real sequence number (and within msgpack's int64 for shards).
_OFF_THREAD_ORDER = 2**62

__all__ = [
    "ENV_RECORD",
    "CallInfo",
    "Interceptor",
    "RecordingError",
    "RecordingSession",
    "TraceSpec",
    "TraceTargetError",
    "activate",
    "active",
    "deactivate",
    "recording",
    "registry",
    "replay_trace",
    "resolve_target",
    "wrap_target",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Environment variable naming a replay directory: when set, importing this
#: module starts recording every traced call of the process into it.
ENV_RECORD = "PYTEST_REPLAY_RECORD"

DEFAULT_MAX_RECORDS = 100


# --------------------------------------------------------------------------- the switch


class Interceptor(Protocol):
    """What recording and replay plug into every traced function.

    ``args``/``kwargs`` are the call's raw arguments (for a classmethod
    ``args[0]`` is the class); calling the original is
    ``spec.fn(*args, **kwargs)``. :meth:`TraceSpec.bind` turns them into the
    canonical recorded inputs.
    """

    def call(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    async def acall(
        self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


# The one flag the hot path reads. Only activate()/deactivate() assign it.
_active: Interceptor | None = None
# Activation stack (a recording context inside a pytest recording, replay
# inside recording ...): the last live entry is the active interceptor.
_stack: list[_Activation] = []
_stack_lock = threading.Lock()


class _Activation:
    __slots__ = ("interceptor", "live")

    def __init__(self, interceptor: Interceptor) -> None:
        self.interceptor = interceptor
        self.live = True


def activate(interceptor: Interceptor) -> object:
    """Make ``interceptor`` the active one; returns a token for :func:`deactivate`."""
    global _active
    token = _Activation(interceptor)
    with _stack_lock:
        _stack.append(token)
        _active = interceptor
    return token


def deactivate(token: object) -> None:
    """Undo one :func:`activate`. Out-of-order deactivation is allowed.

    The active interceptor becomes the most recent one still activated (or
    none). Deactivating the same token twice is a no-op.
    """
    global _active
    if not isinstance(token, _Activation):
        raise TypeError(f"deactivate() expects a token returned by activate(), got {token!r}")
    with _stack_lock:
        if not token.live:
            return
        token.live = False
        _stack[:] = [entry for entry in _stack if entry.live]
        _active = _stack[-1].interceptor if _stack else None


def active() -> Interceptor | None:
    """The interceptor traced calls currently go to, or ``None``."""
    return _active


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class CallInfo:
    """What a ``metadata=`` callable receives after each recorded call."""

    key: str
    arguments: Mapping[str, Any]
    result: Any
    error: BaseException | None
    duration_ms: float


@dataclass(frozen=True, eq=False)
class TraceSpec:
    """Everything known about one traced function.

    ``signature`` is the signature the recorded ``args``/``kwargs`` bind to:
    the function's own, except for classmethods, where ``cls`` is left out
    (it is implied by the target). ``kind`` is ``"function"`` (plain
    functions and methods, ``self`` is the first recorded argument),
    ``"staticmethod"`` or ``"classmethod"``.
    """

    key: str
    target: str
    fn: Callable[..., Any]
    boundary: bool = False
    ignore: tuple[str, ...] = ()
    redact: tuple[str, ...] = ()
    resources: Mapping[str, str] = field(default_factory=dict)
    max_records: int | None = None
    metadata: Callable[[CallInfo], Mapping[str, Any] | None] | None = None
    seed_random: bool = False
    is_async: bool = False
    signature: inspect.Signature = field(default_factory=inspect.Signature)
    compare: Callable[[Any, Any], Any] | None = None
    significant_digits: int | None = None
    ignore_order: bool = False
    kind: str = "function"
    # Derived once, used on every recorded call.
    _binder: Callable[[tuple[Any, ...], dict[str, Any]], tuple[list[Any], dict[str, Any]]] = (
        field(init=False, repr=False, compare=False)
    )
    _arg_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _var_positional: str | None = field(init=False, repr=False, compare=False)
    _secret_params: frozenset[str] = field(init=False, repr=False, compare=False)
    _id_hash: Any = field(init=False, repr=False, compare=False)
    _owner: list[type] = field(init=False, repr=False, compare=False)
    _head: bytes = field(init=False, repr=False, compare=False)
    _arity: int = field(init=False, repr=False, compare=False)
    _plain_arity: int = field(init=False, repr=False, compare=False)
    _precheck: _PrecheckChoice = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        params = list(self.signature.parameters.values())
        for name in self.resources:
            param = self.signature.parameters.get(name)
            if param is None:
                raise TypeError(
                    f"replay_trace({self.key!r}): resources names {name!r}, which is not a "
                    f"parameter of {self.target} {self.signature}"
                )
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise TypeError(
                    f"replay_trace({self.key!r}): resource parameter {name!r} is positional-only; "
                    "a resource is supplied by name at replay, make it a normal parameter"
                )
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = tuple(p.name for p in params if p.kind in positional)
        var_pos = next(
            (p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None
        )
        set_ = object.__setattr__
        set_(self, "_arg_names", names)
        set_(self, "_var_positional", var_pos)
        set_(self, "_binder", _make_binder(self.signature, tuple(self.resources)))
        set_(
            self,
            "_secret_params",
            frozenset(p.name for p in params if _redact_module.is_secret_name(p.name)),
        )
        # record_id(key, dumps([args, kwargs])) == blake2b(key || 0 || 0x92 || args || kwargs):
        # the constant prefix is hashed once here and copied per call.
        prefix = hashlib.blake2b(digest_size=8)
        prefix.update(self.key.encode("utf-8"))
        prefix.update(b"\x00\x92")  # the array header of [args, kwargs] too
        set_(self, "_id_hash", prefix)
        set_(self, "_owner", [])
        # Calls with exactly this many positional arguments and no keywords
        # bind to themselves (no defaults to apply, nothing to drop); the
        # recorder then skips the binder. -1: always bind.
        plain = (
            self.kind != "classmethod"
            and not self.resources
            and all(p.kind in positional for p in params)
        )
        set_(self, "_arity", len(params) if plain else -1)
        # The same, for calls the recorder takes on its flat path (call()):
        # also no rules, no seeding, no metadata callable, not a boundary, no
        # parameter named like a secret.
        simple = not (
            self.redact
            or self.seed_random
            or self.metadata is not None
            or self.boundary
            or self._secret_params
        )
        set_(self, "_plain_arity", self._arity if simple else -1)
        set_(self, "_precheck", _PrecheckChoice())
        # "key", key, "target", target, "kind", "call", "args": the constant
        # middle of every record map of this function, packed once.
        set_(
            self,
            "_head",
            b"".join(
                msgpack.packb(part, use_bin_type=True)
                for part in ("key", self.key, "target", self.target, "kind", "call", "args")
            ),
        )

    def bind(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Canonical recorded inputs of a call with raw ``args``/``kwargs``.

        The result is ``inspect.BoundArguments`` ``args``/``kwargs`` after
        ``apply_defaults()``, without ``resources`` parameters (parameters after
        a removed one move to ``kwargs``) and, for classmethods, without
        ``cls``. So ``f(1, b=2)`` and ``f(a=1, b=2)`` give the same inputs.
        Raises ``TypeError`` when the arguments do not bind.
        """
        if self.kind == "classmethod":
            args = tuple(args)[1:]
        return self._binder(tuple(args), dict(kwargs))

    def invoke(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call the original (unwrapped) function with canonical inputs.

        ``kwargs`` must also hold the values of ``resources`` parameters. For a
        classmethod the class is found from the target (or the class the
        method was defined in). For an ``async`` function this returns the
        coroutine.
        """
        if self.kind == "classmethod":
            return self.fn(self.owner(), *args, **kwargs)
        return self.fn(*args, **kwargs)

    def owner(self) -> type:
        """The class a classmethod belongs to (raises ``LookupError`` when it cannot be found)."""
        if self._owner:
            return self._owner[0]
        module_name, _, qualname = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split(".")[:-1]:
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise LookupError(f"cannot find the class of {self.target}: {exc}") from exc
        if not isinstance(obj, type):
            raise LookupError(f"cannot find the class of {self.target}: {obj!r} is not a class")
        return obj


def _make_binder(
    sig: inspect.Signature, resources: tuple[str, ...]
) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[list[Any], dict[str, Any]]]:
    params = list(sig.parameters.values())

    def slow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        for name in resources:
            bound.arguments.pop(name, None)
        return list(bound.args), dict(bound.kwargs)

    simple = all(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in params
    )
    if not simple or resources:
        return slow
    # The common case (only positional-or-keyword parameters, called
    # positionally) skips Signature.bind, which costs more than the rest of
    # recording a small call; the result is identical to slow().
    count = len(params)
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    defaults = [p.default for p in params]

    def fast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        if not kwargs:
            given = len(args)
            if given == count:
                return list(args), {}
            if required <= given < count:
                return [*args, *defaults[given:]], {}
        return slow(args, kwargs)

    return fast


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, TraceSpec] = {}
_registry_lock = threading.Lock()


def registry() -> Mapping[str, TraceSpec]:
    """key -> spec of every decorated or config-wrapped function (read-only view)."""
    return types.MappingProxyType(_REGISTRY)


def _register(spec: TraceSpec) -> None:
    with _registry_lock:
        old = _REGISTRY.get(spec.key)
        # The same target registering again is a module reload (or pytester
        # importing a test module afresh): the newest definition wins.
        if old is not None and old.target != spec.target:
            raise ValueError(
                f"replay_trace: key {spec.key!r} is already used by {old.target}; "
                f"{spec.target} needs its own key (pass key=...), otherwise both would "
                "write the same cassette"
            )
        _REGISTRY[spec.key] = spec


def _unregister(spec: TraceSpec) -> None:
    with _registry_lock:
        if _REGISTRY.get(spec.key) is spec:
            del _REGISTRY[spec.key]


# --------------------------------------------------------------------------- decorator


class _TracedClassMethod(classmethod):  # type: ignore[type-arg]
    """A classmethod that learns its class (replay calls it without one)."""

    def __set_name__(self, owner: type, name: str) -> None:
        spec: TraceSpec = self.__func__.__replay_spec__  # type: ignore[attr-defined]
        if not spec._owner:
            spec._owner.append(owner)


@overload
def replay_trace(fn: F, /) -> F: ...


@overload
def replay_trace(
    fn: None = None,
    /,
    *,
    key: str | None = ...,
    boundary: bool = ...,
    ignore: Sequence[str] = ...,
    redact: Sequence[str] = ...,
    resources: Mapping[str, str] | None = ...,
    max_records: int | None = ...,
    metadata: Callable[[CallInfo], Mapping[str, Any] | None] | None = ...,
    seed_random: bool = ...,
    compare: Callable[[Any, Any], Any] | None = ...,
    significant_digits: int | None = ...,
    ignore_order: bool = ...,
    snapshot_every: int | None = ...,
) -> Callable[[F], F]: ...


def replay_trace(
    fn: Any = None,
    /,
    *,
    key: str | None = None,
    boundary: bool = False,
    ignore: Sequence[str] = (),
    redact: Sequence[str] = (),
    resources: Mapping[str, str] | None = None,
    max_records: int | None = None,
    metadata: Callable[[CallInfo], Mapping[str, Any] | None] | None = None,
    seed_random: bool = False,
    compare: Callable[[Any, Any], Any] | None = None,
    significant_digits: int | None = None,
    ignore_order: bool = False,
    snapshot_every: int | None = None,
) -> Any:
    """Trace a function: its calls are recorded by ``pytest --replay-record``.

    Use as ``@replay_trace`` or ``@replay_trace(key=..., ...)`` on plain and
    ``async`` functions, methods, ``staticmethod`` and ``classmethod`` objects
    (put ``@replay_trace`` above ``@staticmethod``/``@classmethod``).

    - ``key``: names the cassette; defaults to ``module.qualname``.
    - ``boundary``: the result is answered from the recording at replay, never
      recomputed (HTTP, LLM, clock, DB); calls are stored in the caller's record.
    - ``ignore``: result paths (globs) left out of the replay comparison.
    - ``redact``: parameter names or dotted/glob paths (``"headers.*"``,
      ``"return.token"``) replaced by a redaction marker before anything is written.
    - ``resources``: ``{param: fixture_name}``: live objects not recorded,
      supplied by the pytest fixture at replay.
    - ``max_records``: distinct inputs kept per key (default 100).
    - ``metadata``: ``callable(CallInfo) -> mapping`` stored with each record.
    - ``seed_random``: seed :mod:`random` per call (seed stored in the record).
    - ``compare``/``significant_digits``/``ignore_order``: replay comparison options.

    On a class, it records a session per instance instead (see
    ``pytest_replay.session.trace_class``; ``snapshot_every`` applies there).
    """
    options: dict[str, Any] = {
        "key": key,
        "boundary": boundary,
        "ignore": tuple(ignore),
        "redact": tuple(redact),
        "resources": dict(resources or {}),
        "max_records": max_records,
        "metadata": metadata,
        "seed_random": seed_random,
        "compare": compare,
        "significant_digits": significant_digits,
        "ignore_order": ignore_order,
        "snapshot_every": snapshot_every,
    }
    if isinstance(ignore, str) or isinstance(redact, str):
        raise TypeError("replay_trace: ignore= and redact= take a list of paths, not a string")
    if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
        raise ValueError(f"replay_trace: max_records must be a positive int, got {max_records!r}")
    if fn is None:

        def decorate(func: Any) -> Any:
            return _trace(func, options)

        return decorate
    return _trace(fn, options)


def _trace(obj: Any, options: Mapping[str, Any]) -> Any:
    if isinstance(obj, type):
        from .session import trace_class

        class_options = {k: v for k, v in options.items() if v is not None}
        return trace_class(obj, **class_options)
    if options.get("snapshot_every") is not None:
        raise TypeError("replay_trace: snapshot_every= only applies to classes (sessions)")
    if isinstance(obj, staticmethod):
        return staticmethod(_wrap(obj.__func__, options, "staticmethod"))
    if isinstance(obj, classmethod):
        return _TracedClassMethod(_wrap(obj.__func__, options, "classmethod"))
    if not callable(obj):
        raise TypeError(f"replay_trace: {obj!r} is not callable")
    return _wrap(obj, options, "function")


def _default_names(fn: Any) -> tuple[str, str]:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname:
        raise TypeError(
            f"replay_trace: {fn!r} has no __module__/__qualname__; pass key=... explicitly"
        )
    return f"{module}.{qualname}", f"{module}:{qualname}"


def _signature_of(fn: Any, kind: str) -> inspect.Signature:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        # Some builtins have no introspectable signature: record them as they are called.
        sig = inspect.Signature(
            [
                inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
            ]
        )
        return sig
    if kind == "classmethod":
        params = list(sig.parameters.values())
        if params and params[0].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            sig = sig.replace(parameters=params[1:])
    return sig


def check_key(key: str, what: str) -> None:
    """Refuse a key that cannot be written: keys name cassettes and live in their UTF-8 headers.

    ``what`` names the traced function or class in the message.
    """
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = key[exc.start]
        raise ValueError(
            f"replay_trace on {what[:200]}: key {key[:200]!r} holds an unpaired surrogate "
            f"({bad!r} at index {exc.start}), which cannot be written as UTF-8 (cassette "
            "names and headers are UTF-8); pass a key of ordinary text, e.g. "
            "key='package.module.function'"
        ) from None


def _make_spec(
    fn: Any, options: Mapping[str, Any], kind: str, *, target: str | None = None
) -> TraceSpec:
    key = options.get("key")
    try:
        default_key, default_target = _default_names(fn)
    except TypeError:
        if key is None:
            raise
        default_key = default_target = ""
    key = key if key is not None else default_key
    if not isinstance(key, str) or not key:
        raise TypeError(f"replay_trace: key must be a non-empty string, got {key!r}")
    check_key(key, target or default_target or repr(fn))
    return TraceSpec(
        key=key,
        target=target or default_target or key,
        fn=fn,
        boundary=bool(options.get("boundary", False)),
        ignore=tuple(options.get("ignore", ())),
        redact=tuple(options.get("redact", ())),
        resources=dict(options.get("resources") or {}),
        max_records=options.get("max_records"),
        metadata=options.get("metadata"),
        seed_random=bool(options.get("seed_random", False)),
        is_async=inspect.iscoroutinefunction(fn),
        signature=_signature_of(fn, kind),
        compare=options.get("compare"),
        significant_digits=options.get("significant_digits"),
        ignore_order=bool(options.get("ignore_order", False)),
        kind=kind,
    )


def _wrap(fn: Any, options: Mapping[str, Any], kind: str, *, target: str | None = None) -> Any:
    if getattr(fn, "__replay_spec__", None) is not None:
        return fn  # already traced
    spec = _make_spec(fn, options, kind, target=target)
    wrapper = _make_wrapper(spec)
    _register(spec)
    return wrapper


def _make_wrapper(spec: TraceSpec) -> Callable[..., Any]:
    fn = spec.fn
    # Hot path: while nothing records or replays, one module-global load and one
    # identity test, then the call. No attribute lookups, no try/except, no
    # extra frames: bench_trace.py holds this to <= 1.3x a bare wraps wrapper.
    if spec.is_async:

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            interceptor = _active
            if interceptor is None:
                return await fn(*args, **kwargs)
            return await interceptor.acall(spec, args, kwargs)

        wrapper: Callable[..., Any] = async_wrapper
    else:

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            interceptor = _active
            if interceptor is None:
                return fn(*args, **kwargs)
            return interceptor.call(spec, args, kwargs)

        wrapper = sync_wrapper
    try:
        functools.update_wrapper(wrapper, fn)
    except AttributeError:  # pragma: no cover - exotic callables without __dict__
        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    wrapper.__replay_spec__ = spec  # type: ignore[attr-defined]
    return wrapper


# --------------------------------------------------------------------------- config targets


class TraceTargetError(ValueError):
    """A ``--replay-trace``/``--replay-boundary`` name that does not resolve."""


@dataclass
class WrappedTarget:
    """A function wrapped in place by :func:`wrap_target`; :meth:`restore` undoes it."""

    name: str
    owner: Any
    attribute: str
    original: Any
    spec: TraceSpec

    def restore(self) -> None:
        setattr(self.owner, self.attribute, self.original)
        _unregister(self.spec)


def resolve_target(name: str) -> tuple[Any, str, Any, str]:
    """Resolve ``module:qualname`` or ``module.qualname``.

    Returns ``(owner, attribute, raw_value, target)`` where ``raw_value`` is
    ``owner.__dict__[attribute]`` when present (so static/class methods are
    seen as such) and ``target`` is the canonical ``module:qualname``.
    Raises :class:`TraceTargetError` naming ``name`` and what went wrong.
    """
    text = name.strip()
    if not text:
        raise TraceTargetError("empty trace target name")
    if ":" in text:
        module_name, _, qualname = text.partition(":")
        module = _import(module_name, name)
    else:
        # module.qualname: import the longest prefix that is a module.
        parts = text.split(".")
        module = None
        module_name = qualname = ""
        for cut in range(len(parts) - 1, 0, -1):
            candidate = ".".join(parts[:cut])
            try:
                module = importlib.import_module(candidate)
            except ImportError:
                continue
            module_name, qualname = candidate, ".".join(parts[cut:])
            break
        if module is None:
            raise TraceTargetError(
                f"trace target {name!r}: no importable module in it "
                "(write module:qualname, e.g. myapp.pricing:Quote.total)"
            )
    if not qualname:
        raise TraceTargetError(f"trace target {name!r}: missing the function name after the module")
    owner: Any = module
    parts = qualname.split(".")
    for part in parts[:-1]:
        try:
            owner = getattr(owner, part)
        except AttributeError:
            raise TraceTargetError(
                f"trace target {name!r}: {module_name}:{qualname} not found "
                f"({type(owner).__name__} {getattr(owner, '__name__', owner)!r} has no attribute "
                f"{part!r})"
            ) from None
    attribute = parts[-1]
    namespace = getattr(owner, "__dict__", {})
    if attribute in namespace:
        raw = namespace[attribute]
    else:
        try:
            raw = getattr(owner, attribute)
        except AttributeError:
            raise TraceTargetError(
                f"trace target {name!r}: {module_name}:{qualname} not found "
                f"({getattr(owner, '__name__', owner)!r} has no attribute {attribute!r})"
            ) from None
    return owner, attribute, raw, f"{module_name}:{qualname}"


def _import(module_name: str, name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise TraceTargetError(
            f"trace target {name!r}: cannot import {module_name!r}: {exc}"
        ) from None


def wrap_target(name: str, *, boundary: bool = False) -> WrappedTarget:
    """Wrap the function or method ``name`` in place (``--replay-trace``/``--replay-boundary``).

    References taken before the wrap (``from m import f`` executed earlier)
    keep calling the original.
    """
    owner, attribute, raw, target = resolve_target(name)
    module_name, _, qualname = target.partition(":")
    options = {"key": f"{module_name}.{qualname}", "boundary": boundary}
    if getattr(raw, "__replay_spec__", None) is not None or getattr(
        getattr(raw, "__func__", None), "__replay_spec__", None
    ):
        raise TraceTargetError(f"trace target {name!r}: {target} is already traced")
    if isinstance(raw, staticmethod):
        wrapped: Any = staticmethod(_wrap(raw.__func__, options, "staticmethod", target=target))
    elif isinstance(raw, classmethod):
        wrapped = _TracedClassMethod(_wrap(raw.__func__, options, "classmethod", target=target))
        wrapped.__func__.__replay_spec__._owner.append(owner)
    elif callable(raw) and not isinstance(raw, type):
        wrapped = _wrap(raw, options, "function", target=target)
    else:
        raise TraceTargetError(
            f"trace target {name!r}: {target} is a {type(raw).__name__}, not a function or method"
        )
    spec: TraceSpec = getattr(wrapped, "__func__", wrapped).__replay_spec__
    try:
        setattr(owner, attribute, wrapped)
    except (AttributeError, TypeError) as exc:
        _unregister(spec)
        raise TraceTargetError(f"trace target {name!r}: cannot replace {target}: {exc}") from None
    return WrappedTarget(name, owner, attribute, raw, spec)


# --------------------------------------------------------------------------- the recorder


class _NotNative(Exception):
    """Raised by the fast packer at the first value msgpack cannot pack natively."""


def _refuse(obj: object) -> Any:
    raise _NotNative


# One Packer per thread: packb() would allocate a fresh Packer (and its
# buffer) per call, and a Packer is not safe to share between threads.
_tls = threading.local()


def _native_pack() -> Callable[[Any], bytes]:
    pack: Callable[[Any], bytes] = msgpack.Packer(
        use_bin_type=True, strict_types=True, default=_refuse
    ).pack
    _tls.pack = pack
    return pack


def _native_pack_raw() -> Callable[[Any], bytes]:
    pack: Callable[[Any], bytes] = msgpack.Packer(
        use_bin_type=False, strict_types=True, default=_refuse
    ).pack
    _tls.pack_raw = pack
    return pack


def _pack(value: Any) -> bytes:
    """msgpack bytes of a value the recorder built itself (ids, names, durations)."""
    try:
        pack = _tls.pack
    except AttributeError:
        pack = _native_pack()
    data: bytes = pack(value)
    return data


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _type_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# Fixed pieces of a record map (field order of Record.to_map()).
_HEAD = b"\x8b\xa2id"  # map of 11 entries, then "id"
_KWARGS = b"\xa6kwargs"
_EMPTY_MAP = b"\x80"
_RESULT = b"\xa6result"
_ERROR = b"\xa5error\x83\xa4type"
_MESSAGE = b"\xa7message"
_ERROR_ARGS = b"\xa4args"
_CHILDREN = b"\xa8children"
_BOUNDARY_TRUE = b"\xa8boundary\xc3"
_BOUNDARY_FALSE = b"\xa8boundary\xc2"
_META = b"\xa4meta"
_UNREPLAYABLE = b"\xacunreplayable"
_NIL = b"\xc0"
_BIN_HEADERS = b"\xc4\xc5\xc6"
_META_DURATION = b"\xabduration_ms\xcb"
_META_NODEID = b"\xa6nodeid"
_META_SEED = b"\xa4seed"
_pack_double = struct.Struct(">d").pack
_FIXMAP = [bytes((0x80 | n,)) for n in range(16)]
_FIXSTR_16 = b"\xb0"  # a record id: 16 hex characters
_HEAD_ID = _HEAD + _FIXSTR_16
_BOUNDARY_FALSE_META = _BOUNDARY_FALSE + _META
_NO_KWARGS_RESULT = _KWARGS + _EMPTY_MAP + _RESULT
#: The running test as the recorder needs it: (position in collection order,
#: node id, packed "nodeid" meta entry, then the constant runs of a plain
#: record's map around its duration: from "children" (none) to the duration's
#: float header, and from the node id to the end); _NO_TEST outside tests.
_TestInfo = tuple[int, str | None, bytes, bytes, bytes, bytes]


def _test_info(index: int, nodeid: str | None) -> _TestInfo:
    entry = _META_NODEID + _pack(nodeid) if nodeid is not None else b""
    head = _FIXMAP[2 if entry else 1] + _META_DURATION
    return (
        index,
        nodeid,
        entry,
        head,
        _CHILDREN + b"\x90" + _BOUNDARY_FALSE_META + head,
        entry + _UNREPLAYABLE + _NIL,
    )


_NO_TEST: _TestInfo = _test_info(-1, None)
#: Scan views remembered as clean per recording session (see _clean_inputs).
_CLEAN_INPUTS_MAX = 4096
# Pending records are drained into the deduplicating buffer in batches.
_DRAIN_AT = 4096

_maybe_secret = _redact_module.might_contain_secret
_confirm = _redact_module.confirm_marked
_PRECHECKS = _redact_module.PRECHECKS
_MARKER = _redact_module.MARKER
#: Encoded values of a traced function counted under every pre-check build
#: before it settles on the one that finds the fewest markers.
_CALIBRATE = 32


class _PrecheckChoice:
    """The redact.PRECHECKS build a traced function's values are scanned with.

    Both builds find every trigger; they differ in how many harmless bytes
    they stop at, which depends on the data. So the first _CALIBRATE values
    recorded on the flat path are counted under each, and the cheaper one
    stays (a race between threads only blurs the counts).
    """

    __slots__ = ("counts", "index", "left", "marked", "table")

    def __init__(self) -> None:
        self.counts = [0] * len(_PRECHECKS)
        self.left = _CALIBRATE
        self.use(0)

    def use(self, index: int) -> None:
        precheck = _PRECHECKS[index]
        self.index = index
        self.table = precheck.table
        self.marked = precheck.marked.search

    def count(self, data: bytes, scanned: bytes) -> None:
        counts = self.counts
        for index, precheck in enumerate(_PRECHECKS):
            view = scanned if index == self.index else data.translate(precheck.table)
            counts[index] += view.count(_MARKER)
        self.left -= 1
        if self.left <= 0:
            self.use(counts.index(min(counts)))


_new_frame = object.__new__

# The innermost traced call being recorded in this context (thread / task).
_CURRENT: contextvars.ContextVar[_Frame | None] = contextvars.ContextVar(
    "pytest_replay_current_call", default=None
)


class _Frame:
    """One traced call in flight.

    RecordingSession.call() fills one in without __init__ (see there); a new
    attribute must be set there too.
    """

    __slots__ = (
        "args",
        "args_b",
        "children",
        "kwargs",
        "kwargs_b",
        "order",
        "payload",
        "reasons",
        "rid",
        "seed",
        "spec",
        "taint",
        "test",
    )

    args_b: bytes
    kwargs_b: bytes
    rid: str

    def __init__(
        self,
        spec: TraceSpec,
        args: list[Any],
        kwargs: dict[str, Any],
        test: _TestInfo,
        order: int,
    ) -> None:
        self.spec = spec
        self.args = args
        self.kwargs = kwargs
        # (position in collection order, node id, packed "nodeid" meta entry)
        self.test = test
        self.order = order
        self.children: list[_Frame] = []
        self.payload: bytes | None = None
        self.reasons: list[str] = []
        self.seed: int | None = None
        # texts redacted from this call's (or an enclosing call's) inputs
        self.taint: tuple[str, ...] = ()


class RecordingError(OSError):
    """Recorded calls could not be written (names the directory and the cause)."""


class RecordingSession:
    """Records traced calls and flushes them into a replay directory.

    This is the :class:`Interceptor` used by ``pytest --replay-record``,
    :func:`recording` and ``PYTEST_REPLAY_RECORD``. Nothing here ever raises
    into the code under test: a value that cannot be encoded makes the record
    unreplayable (with the reason), and recorder failures become warnings in
    the report.

    Calls are attributed to the running test (:meth:`begin_test` /
    :meth:`end_test`); calls of a failed test are dropped unless
    ``record_failed``. :meth:`collect` returns the deduplicated
    :class:`~pytest_replay.store.RecordBuffer`, :meth:`flush` writes it.
    """

    def __init__(
        self,
        replay_dir: str | os.PathLike[str] | None = None,
        *,
        mode: str = "new",
        max_records: int | None = None,
        default_max_records: int = DEFAULT_MAX_RECORDS,
        allow_secrets: bool = False,
        record_failed: bool = False,
        durations: bool = True,
        lock_timeout: float = 60.0,
    ) -> None:
        from . import codec, store

        if mode not in ("new", "rewrite"):
            raise ValueError(f"recording mode must be 'new' or 'rewrite', got {mode!r}")
        for name, value in (
            ("max_records", max_records),
            ("default_max_records", default_max_records),
        ):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.replay_dir = Path(replay_dir) if replay_dir is not None else None
        self.mode = mode
        self.max_records = max_records
        self.default_max_records = default_max_records
        self.allow_secrets = allow_secrets
        self.scan = not allow_secrets
        self.record_failed = record_failed
        self.durations = durations
        self.lock_timeout = lock_timeout
        self.report: MergeReport | None = None
        self.buffer: RecordBuffer = store.RecordBuffer()
        self._codec = codec
        self._dumps_checked: Callable[[Any], tuple[bytes, tuple[str, ...]]] = (
            codec.dumps_checked
        )
        self._max_size = codec.MAX_SIZE
        self._holds_bytearray: Callable[[Any], bool] = codec._has_bytearray
        self._store = store
        self._seq = itertools.count()
        self._lock = threading.RLock()
        # (collection index, node id) of the running test; (-1, None) outside tests.
        # session.py reads it (and _seq, _emit) to place sessions in the order.
        self._test: tuple[int, str | None] = (-1, None)
        # Calls made on this thread (the one running the test, else the one
        # that made the session) keep their call order; calls from any other
        # thread have no order the scheduler does not decide, so they all get
        # _OFF_THREAD_ORDER and sort by record id after the thread's own calls.
        self._order_thread = threading.get_ident()
        # The same plus the packed "nodeid" meta entry, read once per call.
        self._current: _TestInfo = _NO_TEST
        self._pending: collections.deque[PendingRecord] = collections.deque()
        self._buckets: dict[int, RecordBuffer] = {}
        self._finished: dict[int, bool] = {}
        self._token: object | None = None
        # Views (data translated by a redact.PRECHECKS build, one set per
        # build) of inputs the pre-check found clean: calls often repeat their
        # inputs but for numbers, which a view blanks out, and a set lookup
        # is cheaper than the search. Only views without a marker match go
        # in, and equal views get equal matches, so none can hide a trigger.
        self._clean_inputs: list[set[bytes]] = [set() for _ in _PRECHECKS]

    # ------------------------------------------------------------ activation

    def start(self) -> RecordingSession:
        """Start intercepting traced calls (idempotent); returns ``self``."""
        if self._token is None:
            self._token = activate(self)
        return self

    def stop(self) -> None:
        """Stop intercepting; recorded calls stay until :meth:`flush`."""
        if self._token is not None:
            deactivate(self._token)
            self._token = None

    # ------------------------------------------------------------ test attribution

    def begin_test(self, index: int, nodeid: str) -> None:
        """Calls from now on belong to the test at ``index`` in collection order."""
        self._current = _test_info(index, nodeid)
        self._test = (index, nodeid)
        self._order_thread = threading.get_ident()

    def end_test(self, *, failed: bool = False) -> None:
        """The running test finished: keep its calls, or drop them when it failed."""
        index = self._test[0]
        self._current = _NO_TEST
        self._test = (-1, None)
        if index < 0:
            return
        keep = self.record_failed or not failed
        with self._lock:
            self._finished[index] = keep
            self._drain()
            bucket = self._buckets.pop(index, None)
            if bucket is None:
                return
            if keep:
                self.buffer.absorb(bucket)
            else:
                self.buffer.dropped_failed += (
                    len(bucket) + bucket.duplicates + sum(bucket.over_cap.values())
                )

    def _emit(self, record: PendingRecord) -> None:
        pending = self._pending
        pending.append(record)  # deque.append: atomic, no lock on the hot path
        if len(pending) >= _DRAIN_AT:
            with self._lock:
                self._drain()

    def _drain(self) -> None:
        """Move pending records into the buffer (or their test's bucket). Holds ``_lock``."""
        pending = self._pending
        count = len(pending)
        if not count:
            return
        popleft = pending.popleft
        ready: list[PendingRecord] = []
        held: dict[int, list[PendingRecord]] = {}
        finished = self._finished
        dropped = 0
        for _ in range(count):
            record = popleft()
            index = record[0]  # .test
            if index < 0:
                ready.append(record)
                continue
            keep = finished.get(index)
            if keep is None:  # its test is still running
                held.setdefault(index, []).append(record)
            elif keep:  # a call that outlived its test (a background thread)
                ready.append(record)
            else:
                dropped += 1
        self.buffer.dropped_failed += dropped
        if ready:
            self.buffer.commit(ready)
        for index, records in held.items():
            bucket = self._buckets.get(index)
            if bucket is None:
                bucket = self._buckets[index] = self._store.RecordBuffer()
            bucket.commit(records)

    # ------------------------------------------------------------ interceptor

    def call(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # The recording hot path. A plain call (positional arguments that bind
        # to themselves, plain msgpack data, no rules, nothing that looks like
        # a secret) is recorded right here, written out flat: no helper calls,
        # no __init__, one pack + one translate() + one regex search per
        # encoded part, the record map spliced from packed pieces. Each avoided
        # call or attribute access shows in bench_trace.py's recording figure.
        # Everything else goes the careful way (_enter/_exit, also used by
        # acall()), which writes the same record.
        parent = _CURRENT.get()
        if parent is None:
            if spec.boundary:
                # A boundary outside any traced call has no record to live in.
                return spec.fn(*args, **kwargs)
        elif parent.spec.boundary:
            # What happens inside a boundary is the boundary's own business.
            return spec.fn(*args, **kwargs)
        if kwargs or len(args) != spec._plain_arity or (parent is not None and parent.taint):
            return self._call(spec, args, kwargs, parent)
        frame = _new_frame(_Frame)
        frame.spec = spec
        frame.test = test = self._current
        frame.order = (
            next(self._seq) if _get_ident() == self._order_thread else _OFF_THREAD_ORDER
        )
        frame.children = []
        frame.payload = None
        frame.reasons = []
        frame.seed = None
        frame.taint = ()
        cargs = list(args)
        choice = spec._precheck
        try:
            pack = _tls.pack
        except AttributeError:
            pack = _native_pack()
        try:
            args_b: bytes = pack(cargs)
        except Exception:
            args_b = b""  # not plain data: the codec decides below
        size = len(args_b)
        if not size or size > self._max_size:
            plain = False
        # bin header bytes (a bytearray needs the codec) and the secret
        # pre-check's view of the bytes, in one pass
        elif len(scanned := args_b.translate(choice.table, _BIN_HEADERS)) == size:
            if not self.scan or scanned in self._clean_inputs[choice.index]:
                plain = True
            else:
                if choice.left:
                    choice.count(args_b, scanned)
                if (hit := choice.marked(scanned)) is None:
                    plain = True
                    self._remember_clean(choice.index, scanned)
                else:
                    plain = not _confirm(args_b, scanned, hit)
        else:
            plain = self._plain_despite_bins(cargs, args_b, size - len(scanned), choice.index)
        if plain:
            frame.args_b = args_b
            frame.kwargs_b = _EMPTY_MAP
        else:
            try:
                self._encode_inputs(frame, spec, cargs, {})
            except Exception as exc:  # a codec or redactor bug must not reach the code
                self._recorder_failure(frame, exc)
        hasher = spec._id_hash.copy()
        hasher.update(frame.args_b)
        hasher.update(frame.kwargs_b)
        frame.rid = rid = hasher.hexdigest()
        if parent is not None:
            parent.children.append(frame)  # list.append: atomic across threads
        token = _CURRENT.set(frame)
        start = _perf_counter()
        try:
            result = spec.fn(*args)
        except Exception as exc:
            elapsed = _perf_counter() - start
            _CURRENT.reset(token)
            self._exit(frame, parent, None, exc, elapsed)
            raise
        except BaseException:
            # KeyboardInterrupt, SystemExit, GeneratorExit: not an outcome of the code.
            _CURRENT.reset(token)
            raise
        elapsed = _perf_counter() - start
        _CURRENT.reset(token)
        try:
            outcome_b: bytes = pack(result)
        except Exception:
            outcome_b = b""
        size = len(outcome_b)
        if not size or size > self._max_size or frame.taint or not self.durations:
            plain = False
        elif len(scanned := outcome_b.translate(choice.table, _BIN_HEADERS)) == size:
            if not self.scan:
                plain = True
            else:
                if choice.left:
                    choice.count(outcome_b, scanned)
                plain = (hit := choice.marked(scanned)) is None or not _confirm(
                    outcome_b, scanned, hit
                )
        else:
            plain = self._plain_despite_bins(result, outcome_b, size - len(scanned), choice.index)
        if not plain:
            self._exit(frame, parent, result, None, elapsed)
            return result
        try:
            children = frame.children
            if children:
                done = [child.payload for child in children if child.payload is not None]
                middle = b"".join(
                    (_CHILDREN, _array_header(len(done)), *done, _BOUNDARY_FALSE_META, test[3])
                )
            else:
                middle = test[4]
            reasons = frame.reasons
            # Record.to_map() order: id, key, target, kind, args, kwargs (none
            # on this path), result, children, boundary, meta (duration_ms,
            # nodeid), unreplayable; constant runs come precomputed.
            payload = b"".join(
                (
                    _HEAD_ID,
                    rid.encode(),
                    spec._head,
                    frame.args_b,
                    _NO_KWARGS_RESULT,
                    outcome_b,
                    middle,
                    # microsecond resolution, without round()'s cost
                    _pack_double(int(elapsed * 1e6 + 0.5) / 1000.0),
                    (
                        test[2] + _UNREPLAYABLE + self._encode("; ".join(reasons))[0]
                        if reasons
                        else test[5]
                    ),
                )
            )
        except Exception as exc:  # never into the code under test
            self.buffer.warn(
                f"{spec.key}: call not recorded, recorder error {type(exc).__name__}: {exc}"
            )
            return result
        frame.payload = payload
        if reasons and parent is not None:
            parent.reasons.extend(r for r in reasons if r.startswith("boundary "))
        pending = self._pending
        pending.append(  # deque.append: atomic, no lock on the hot path
            tuple.__new__(
                _PendingRecord,
                (
                    test[0],
                    frame.order,
                    rid,
                    payload,
                    spec.key,
                    spec.target,
                    "; ".join(reasons) if reasons else None,
                    self.max_records or spec.max_records or self.default_max_records,
                ),
            )
        )
        if len(pending) >= _DRAIN_AT:
            with self._lock:
                self._drain()
        return result

    def _call(
        self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any], parent: _Frame | None
    ) -> Any:
        frame = self._enter(spec, args, kwargs, parent)
        if frame is None:
            return spec.fn(*args, **kwargs)
        token = _CURRENT.set(frame)
        start = _perf_counter()
        try:
            result = spec.fn(*args, **kwargs)
        except Exception as exc:
            elapsed = _perf_counter() - start
            _CURRENT.reset(token)
            self._exit(frame, parent, None, exc, elapsed)
            raise
        except BaseException:
            _CURRENT.reset(token)
            raise
        elapsed = _perf_counter() - start
        _CURRENT.reset(token)
        self._exit(frame, parent, result, None, elapsed)
        return result

    async def acall(self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        parent = _CURRENT.get()
        if parent is None:
            if spec.boundary:
                return await spec.fn(*args, **kwargs)
        elif parent.spec.boundary:
            return await spec.fn(*args, **kwargs)
        frame = self._enter(spec, args, kwargs, parent)
        if frame is None:
            return await spec.fn(*args, **kwargs)
        token = _CURRENT.set(frame)
        start = _perf_counter()
        try:
            result = await spec.fn(*args, **kwargs)
        except Exception as exc:
            elapsed = _perf_counter() - start
            _CURRENT.reset(token)
            self._exit(frame, parent, None, exc, elapsed)
            raise
        except BaseException:
            # Cancellation included: a cancelled call has no outcome to replay.
            _CURRENT.reset(token)
            raise
        elapsed = _perf_counter() - start
        _CURRENT.reset(token)
        self._exit(frame, parent, result, None, elapsed)
        return result

    # ------------------------------------------------------------ encoding

    def _encode(self, value: Any) -> tuple[bytes, tuple[str, ...]]:
        """``codec.dumps_checked(value)``, with plain data packed directly.

        For msgpack-native data (the common case) the codec writes exactly
        what a strict msgpack Packer writes; only values with other types go
        through the codec (tests check the bytes are the same).
        """
        try:
            pack = _tls.pack
        except AttributeError:
            pack = _native_pack()
        try:
            data: bytes = pack(value)
        except Exception:
            return self._dumps_checked(value)
        size = len(data)
        if size > self._max_size:
            return self._dumps_checked(value)
        bins = size - len(data.translate(None, _BIN_HEADERS))
        if bins and self._bytearray_in(value, bins):
            return self._dumps_checked(value)
        return data, ()

    def _bytearray_in(self, value: Any, bins: int) -> bool:
        """Whether ``value``, packed natively with ``bins`` bin header bytes, holds a bytearray.

        Most such bytes sit inside floats, ints or text. Packed again with
        ``use_bin_type=False``, bytes-like objects get str headers (never
        0xc4-0xc6) and every other byte keeps its value, so the same count
        means the value holds no bytes-like object at all; only otherwise is
        it walked.
        """
        try:
            pack = _tls.pack_raw
        except AttributeError:
            pack = _native_pack_raw()
        try:
            raw: bytes = pack(value)
        except Exception:
            return self._holds_bytearray(value)
        if len(raw) - len(raw.translate(None, _BIN_HEADERS)) == bins:
            return False
        return self._holds_bytearray(value)

    def _remember_clean(self, index: int, scanned: bytes) -> None:
        clean = self._clean_inputs[index]
        if len(clean) >= _CLEAN_INPUTS_MAX:
            clean.clear()  # bounded; recent inputs refill it
        clean.add(scanned)

    def _plain_despite_bins(self, value: Any, data: bytes, bins: int, precheck: int) -> bool:
        """The flat path's verdict on natively packed ``data`` holding bin header bytes."""
        if self._bytearray_in(value, bins):
            return False
        return not (self.scan and _maybe_secret(data, _PRECHECKS[precheck]))

    # ------------------------------------------------------------ entry / exit

    def _enter(
        self, spec: TraceSpec, args: tuple[Any, ...], kwargs: dict[str, Any], parent: _Frame | None
    ) -> _Frame | None:
        if not kwargs and len(args) == spec._arity:
            cargs: list[Any] = list(args)
            ckwargs: dict[str, Any] = {}
        else:
            try:
                if spec.kind == "classmethod":
                    cargs, ckwargs = spec._binder(args[1:], kwargs)
                else:
                    cargs, ckwargs = spec._binder(args, kwargs)
            except TypeError:
                return None  # the call does not bind: it raises on its own, nothing to record
        order = next(self._seq) if _get_ident() == self._order_thread else _OFF_THREAD_ORDER
        frame = _Frame(spec, cargs, ckwargs, self._current, order)
        try:
            if parent is not None and parent.taint:
                frame.taint = parent.taint
                self._encode_inputs_slow(frame, spec, cargs, ckwargs)
            elif spec.redact or (self.scan and spec._secret_params):
                self._encode_inputs_slow(frame, spec, cargs, ckwargs)
            else:
                # Plain data packed here, and one translate() over it both
                # finds bin header bytes (a bytearray would need the codec) and
                # prepares the secret pre-check (redact.py); a hit of either
                # takes the careful path, which decides exactly.
                try:
                    pack = _tls.pack
                except AttributeError:
                    pack = _native_pack()
                try:
                    args_b: bytes | None = pack(cargs)
                    kwargs_b = pack(ckwargs) if ckwargs else _EMPTY_MAP
                except Exception:
                    args_b = kwargs_b = None
                if args_b is None or kwargs_b is None:
                    self._encode_inputs(frame, spec, cargs, ckwargs)
                else:
                    data = args_b + kwargs_b if ckwargs else args_b
                    size = len(data)
                    choice = spec._precheck
                    scanned = data.translate(choice.table, _BIN_HEADERS)
                    if len(scanned) != size or size > self._max_size:
                        self._encode_inputs(frame, spec, cargs, ckwargs)
                    elif (
                        self.scan
                        and (hit := choice.marked(scanned)) is not None
                        and _confirm(data, scanned, hit)
                    ):
                        self._encode_inputs_slow(frame, spec, cargs, ckwargs)
                    else:
                        frame.args_b = args_b
                        frame.kwargs_b = kwargs_b
        except Exception as exc:  # a codec or redactor bug must not reach the code under test
            self._recorder_failure(frame, exc)
        hasher = spec._id_hash.copy()
        hasher.update(frame.args_b)
        hasher.update(frame.kwargs_b)
        frame.rid = rid = hasher.hexdigest()
        if parent is not None:
            parent.children.append(frame)  # list.append: atomic across threads
        if spec.seed_random:
            frame.seed = int(rid[:8], 16)
            random.seed(frame.seed)
        return frame

    def _encode_inputs(
        self, frame: _Frame, spec: TraceSpec, cargs: list[Any], ckwargs: dict[str, Any]
    ) -> None:
        """Inputs through the codec (values that are not plain msgpack data)."""
        args_b, reasons = self._encode(cargs)
        kwargs_b, kreasons = self._encode(ckwargs) if ckwargs else (_EMPTY_MAP, ())
        if self.scan and _maybe_secret(args_b + kwargs_b):
            self._encode_inputs_slow(frame, spec, cargs, ckwargs)
            return
        frame.args_b = args_b
        frame.kwargs_b = kwargs_b
        if reasons or kreasons:
            frame.reasons.extend(f"input {r}" for r in (*reasons, *kreasons))

    def _encode_inputs_slow(
        self, frame: _Frame, spec: TraceSpec, cargs: list[Any], ckwargs: dict[str, Any]
    ) -> None:
        """Inputs with redaction rules, the scanner's precise walk and taint applied."""
        taint = frame.taint
        cargs, ckwargs, scrubber = _redact_module.scrub_inputs(
            spec, cargs, ckwargs, scan=self.scan, taint=taint
        )
        self._count(scrubber)
        if scrubber.removed:
            frame.taint = (*taint, *dict.fromkeys(scrubber.removed))
        args_b, reasons = self._encode(cargs)
        kwargs_b, kreasons = self._encode(ckwargs) if ckwargs else (_EMPTY_MAP, ())
        frame.args_b = args_b
        frame.kwargs_b = kwargs_b
        if reasons or kreasons:
            frame.reasons.extend(f"input {r}" for r in (*reasons, *kreasons))

    def _count(self, scrubber: Any) -> None:
        if scrubber.secrets or scrubber.rule_hits:
            with self._lock:
                self.buffer.secrets_redacted += scrubber.secrets
                self.buffer.rule_redactions += scrubber.rule_hits

    def _encode_value(
        self, frame: _Frame, value: Any, root: str
    ) -> tuple[bytes, tuple[str, ...]]:
        """Encode a result / error args / metadata with rules, scanner and taint applied."""
        data, reasons = self._encode(value)
        spec = frame.spec
        taint = frame.taint
        if (
            spec.redact
            or (self.scan and _maybe_secret(data))
            or (taint and _redact_module.contains_tainted(data, taint))
        ):
            value, scrubber = _redact_module.scrub_value(
                value, root, spec.redact, scan=self.scan, taint=taint
            )
            if scrubber.secrets or scrubber.rule_hits:
                self._count(scrubber)
                data, reasons = self._encode(value)
        return data, reasons

    def _recorder_failure(self, frame: _Frame, exc: Exception) -> None:
        codec = self._codec
        opaque = codec.dumps(codec.Opaque(type_name=type(exc).__name__, repr=str(exc)[:200]))
        frame.args_b = b"\x91" + opaque
        frame.kwargs_b = _EMPTY_MAP
        frame.reasons.append(f"recorder error: {type(exc).__name__}: {exc}")
        self.buffer.warn(f"{frame.spec.key}: recorder error {type(exc).__name__}: {exc}")

    def _scrub_echoes(self, frame: _Frame, parent: _Frame | None, payload: bytes) -> bytes:
        """Redact the secrets of this call tree wherever they reappear in the record.

        ``frame.taint`` holds every text redacted from the inputs of this call,
        its callers and its nested calls. They are passed up to the caller
        first (its record holds this one, and its result may echo them), then
        searched for in the whole record: inputs packed before a nested call
        revealed a secret, the result, the error, earlier nested calls, the
        metadata (``redact.scrub_record``). Nested calls recorded before the
        secret was known have records of their own too: those are amended.
        """
        taint = frame.taint
        if parent is not None and taint is not parent.taint:
            with self._lock:
                known = set(parent.taint)
                fresh = [text for text in taint if text not in known]
                if fresh:
                    parent.taint = (*parent.taint, *fresh)
        if frame.children:
            self._amend_descendants(frame.children, taint)
        if not _redact_module.contains_tainted(payload, taint):
            return payload
        payload, hits, new_id = _redact_module.scrub_record(payload, taint)
        if hits:
            if new_id is not None:
                frame.rid = new_id  # the inputs changed: so did the id (dedup, order)
            with self._lock:
                self.buffer.secrets_redacted += hits
        return payload

    def _amend_descendants(self, children: list[_Frame], taint: tuple[str, ...]) -> None:
        """Scrub the own records of nested calls that were written before ``taint`` was known."""
        for child in children:
            if child.children:
                self._amend_descendants(child.children, taint)
            old = child.payload
            if child.spec.boundary or old is None:
                continue  # a boundary lives only inside its caller's record
            if not _redact_module.contains_tainted(old, taint):
                continue
            payload, hits, new_id = _redact_module.scrub_record(old, taint)
            if not hits:
                continue
            old_id = child.rid
            child.payload = payload
            if new_id is not None:
                child.rid = new_id
            key = child.spec.key
            with self._lock:
                self.buffer.secrets_redacted += hits
                self._drain()  # so that the record is in a buffer, wherever it went
                for buffer in (self.buffer, *self._buckets.values()):
                    by_id = buffer.records.get(key)
                    record = by_id.pop(old_id, None) if by_id is not None else None
                    if by_id is None or record is None:
                        continue
                    record = record._replace(id=child.rid, payload=payload)
                    present = by_id.get(child.rid)
                    if present is None or record < present:
                        by_id[child.rid] = record

    def _exit(
        self,
        frame: _Frame,
        parent: _Frame | None,
        result: Any,
        error: BaseException | None,
        elapsed: float,
    ) -> None:
        spec = frame.spec
        try:
            if error is None:
                # The result of plain data: packed and pre-checked here, like the
                # inputs in _enter (anything else goes through _outcome).
                try:
                    pack = _tls.pack
                except AttributeError:
                    pack = _native_pack()
                try:
                    outcome_b: bytes | None = pack(result)
                except Exception:
                    outcome_b = None
                if outcome_b is not None:
                    size = len(outcome_b)
                    choice = spec._precheck
                    scanned = outcome_b.translate(choice.table, _BIN_HEADERS)
                    if (
                        len(scanned) != size
                        or size > self._max_size
                        or spec.redact
                        or frame.taint
                        or (
                            self.scan
                            and (hit := choice.marked(scanned)) is not None
                            and _confirm(outcome_b, scanned, hit)
                        )
                    ):
                        outcome_b = None
                outcome = (
                    _RESULT + outcome_b
                    if outcome_b is not None
                    else self._outcome(frame, result, None)
                )
            else:
                outcome = self._outcome(frame, None, error)
            children = frame.children
            if children:
                done = [child.payload for child in children if child.payload is not None]
                children_b = _array_header(len(done)) + b"".join(done)
            else:
                children_b = b"\x90"
            if spec.metadata is None:
                # meta is msgpack-native: packed here, in the field order of the map.
                test = frame.test
                count = 0
                parts: list[bytes] = []
                if self.durations:
                    count += 1
                    # microsecond resolution, without round()'s cost
                    parts.append(_META_DURATION + _pack_double(int(elapsed * 1e6 + 0.5) / 1000.0))
                if test[2]:
                    count += 1
                    parts.append(test[2])
                if frame.seed is not None:
                    count += 1
                    parts.append(_META_SEED + _pack(frame.seed))
                meta_b = _FIXMAP[count] + b"".join(parts)
            else:
                meta_b = self._meta_with_user(frame, result, error, elapsed)
            reasons = frame.reasons
            # The record map's msgpack bytes, spliced from already-packed parts:
            # byte for byte what codec.dumps(Record(...).to_map()) gives for the
            # same record (tests hold it to that), without decoding and
            # re-encoding the inputs, which were packed at entry, before the
            # call could mutate them.
            payload = b"".join(
                (
                    _HEAD,
                    _FIXSTR_16,
                    frame.rid.encode(),
                    spec._head,
                    frame.args_b,
                    _KWARGS,
                    frame.kwargs_b,
                    outcome,
                    _CHILDREN,
                    children_b,
                    _BOUNDARY_TRUE if spec.boundary else _BOUNDARY_FALSE,
                    _META,
                    meta_b,
                    _UNREPLAYABLE,
                    self._encode("; ".join(reasons))[0] if reasons else _NIL,
                )
            )
            if frame.taint:  # rare: only records of calls that carried a secret
                payload = self._scrub_echoes(frame, parent, payload)
        except Exception as exc:  # never into the code under test
            self.buffer.warn(
                f"{spec.key}: call not recorded, recorder error {type(exc).__name__}: {exc}"
            )
            return
        frame.payload = payload
        if parent is not None and reasons:
            if spec.boundary:
                parent.reasons.extend(f"boundary {spec.key}: {r}" for r in reasons)
            else:
                parent.reasons.extend(r for r in reasons if r.startswith("boundary "))
        if spec.boundary:
            return  # lives only inside its caller's record
        pending = self._pending
        pending.append(  # deque.append: atomic, no lock on the hot path
            tuple.__new__(
                _PendingRecord,
                (
                    frame.test[0],
                    frame.order,
                    frame.rid,
                    payload,
                    spec.key,
                    spec.target,
                    "; ".join(reasons) if reasons else None,
                    self.max_records or spec.max_records or self.default_max_records,
                ),
            )
        )
        if len(pending) >= _DRAIN_AT:
            with self._lock:
                self._drain()

    def _outcome(self, frame: _Frame, result: Any, error: BaseException | None) -> bytes:
        """The packed ``"result"``/``"error"`` entries of the record map, the careful way."""
        spec = frame.spec
        if error is None:
            outcome_b, reasons = self._encode(result)
            if (
                spec.redact
                or (self.scan and _maybe_secret(outcome_b))
                or (frame.taint and _redact_module.contains_tainted(outcome_b, frame.taint))
            ):
                outcome_b, reasons = self._encode_value(frame, result, "return")
            if reasons:
                frame.reasons.extend(f"result {r}" for r in reasons)
            return _RESULT + outcome_b
        err_args_b, reasons = self._encode_value(frame, list(error.args), "error.args")
        if reasons:
            frame.reasons.extend(f"error args {r}" for r in reasons)
        return b"".join(
            (
                _ERROR,
                self._encode(_type_path(type(error)))[0],
                _MESSAGE,
                self._encode(self._error_message(frame, error))[0],
                _ERROR_ARGS,
                err_args_b,
            )
        )

    def _meta_with_user(
        self, frame: _Frame, result: Any, error: BaseException | None, elapsed: float
    ) -> bytes:
        meta: dict[str, Any] = {}
        if self.durations:
            meta["duration_ms"] = int(elapsed * 1e6 + 0.5) / 1000.0
        if frame.test[1] is not None:
            meta["nodeid"] = frame.test[1]
        if frame.seed is not None:
            meta["seed"] = frame.seed
        user = self._user_metadata(frame, result, error, meta.get("duration_ms", 0.0))
        if user:
            meta["user"] = user
        meta_b, meta_reasons = self._encode_value(frame, meta, "meta")
        if meta_reasons:
            self.buffer.warn(
                f"{frame.spec.key}: metadata not encodable: {'; '.join(meta_reasons)}"
            )
        return meta_b

    def _error_message(self, frame: _Frame, error: BaseException) -> str:
        try:
            message = str(error)
        except Exception:
            return f"<unprintable {type(error).__name__}>"
        if frame.taint and _redact_module._tainted(message, frame.taint):
            with self._lock:
                self.buffer.secrets_redacted += 1
            return "[redacted: secret: a redacted input value]"
        if self.scan:
            kind = _redact_module.find_secret(message)
            if kind is not None:
                with self._lock:
                    self.buffer.secrets_redacted += 1
                return f"[redacted: secret: {kind}]"
        return message

    def _user_metadata(
        self, frame: _Frame, result: Any, error: BaseException | None, duration_ms: float
    ) -> dict[str, Any] | None:
        spec = frame.spec
        assert spec.metadata is not None
        arguments = dict(zip(spec._arg_names, frame.args, strict=False))
        arguments.update(frame.kwargs)
        info = CallInfo(spec.key, arguments, result, error, duration_ms)
        try:
            user = spec.metadata(info)
            return dict(user) if user else None
        except Exception as exc:
            self.buffer.warn(f"{spec.key}: metadata callable raised {type(exc).__name__}: {exc}")
            return None

    # ------------------------------------------------------------ records from elsewhere

    def submit(self, record_map: Mapping[str, Any], *, max_records: int | None = None) -> None:
        """Add a ready-made record map (e.g. a recorded session) to this recording.

        It is attributed to the running test and deduplicated, capped and
        written like a traced call; it must hold ``id``, ``key`` and ``target``.
        """
        payload = self._codec.dumps(dict(record_map))
        key = str(record_map["key"])
        cap = self.max_records or max_records or self.default_max_records
        test = self._test
        self._emit(
            self._store.PendingRecord(
                test[0],
                next(self._seq),
                str(record_map["id"]),
                payload,
                key,
                str(record_map.get("target", key)),
                record_map.get("unreplayable"),
                cap,
            )
        )

    # ------------------------------------------------------------ flushing

    def collect(self) -> RecordBuffer:
        """Everything recorded so far, deduplicated (calls of unfinished tests included)."""
        # Sessions of traced classes (session.py) are emitted whole, now, each
        # attributed to the test that created its instance. Before the lock:
        # emitting may drain.
        from .session import emit_sessions

        emit_sessions(self)
        with self._lock:
            self._drain()
            for index in sorted(self._buckets):
                self.buffer.absorb(self._buckets.pop(index))
            return self.buffer

    def flush(self, extra: Sequence[RecordBuffer] = ()) -> MergeReport:
        """Merge what was recorded (and ``extra`` worker shards) into the cassettes.

        Returns the report (also kept as :attr:`report`); write problems are
        in ``report.errors`` and leave the previous cassettes intact. The
        recorded calls are consumed.
        """
        if self.replay_dir is None:
            raise ValueError("this RecordingSession has no replay_dir to flush to")
        with self._lock:
            buffer = self.collect()
            self.buffer = self._store.RecordBuffer()
        report = self._store.merge(
            [buffer, *extra],
            self.replay_dir,
            mode=self.mode,
            lock_timeout=self.lock_timeout,
        )
        self.report = report
        return report


@contextlib.contextmanager
def recording(
    replay_dir: str | os.PathLike[str],
    *,
    mode: str = "new",
    max_records: int | None = None,
    allow_secrets: bool = False,
    durations: bool = True,
    lock_timeout: float = 60.0,
) -> Iterator[RecordingSession]:
    """Record every traced call made inside the block into ``replay_dir``.

    The same files and rules as ``pytest --replay-record``: dedup by record
    id, ``max_records`` per key, mode ``new`` (add unseen inputs) or
    ``rewrite``. The cassettes are written when the block exits (also when it
    raises); a write failure raises :class:`RecordingError` naming the
    directory, unless the block itself raised. ``session.report`` holds the
    :class:`~pytest_replay.store.MergeReport` afterwards.
    """
    session = RecordingSession(
        replay_dir,
        mode=mode,
        max_records=max_records,
        allow_secrets=allow_secrets,
        durations=durations,
        lock_timeout=lock_timeout,
    )
    session.start()
    failed = False
    try:
        yield session
    except BaseException:
        failed = True
        raise
    finally:
        session.stop()
        report = session.flush()
        if report.errors and not failed:
            raise RecordingError(report.errors[0])


# --------------------------------------------------------------------------- PYTEST_REPLAY_RECORD

_env_session: RecordingSession | None = None


def _start_from_environment() -> None:
    global _env_session
    directory = os.environ.get(ENV_RECORD, "").strip()
    if not directory or _env_session is not None:
        return
    import atexit

    mode = os.environ.get("PYTEST_REPLAY_RECORD_MODE", "new").strip() or "new"
    cap = os.environ.get("PYTEST_REPLAY_MAX_RECORDS", "").strip()
    allow = os.environ.get("PYTEST_REPLAY_ALLOW_SECRETS", "").strip().lower()
    allow_secrets = allow in ("1", "true", "yes")
    try:
        session = RecordingSession(
            directory,
            mode=mode,
            max_records=int(cap) if cap else None,
            allow_secrets=allow_secrets,
        )
    except ValueError as exc:
        import sys

        print(f"pytest-replay: {ENV_RECORD} ignored: {exc}", file=sys.stderr)
        return
    _env_session = session.start()
    atexit.register(_flush_environment_session)


def _flush_environment_session() -> None:
    global _env_session
    session, _env_session = _env_session, None
    if session is None:
        return
    session.stop()
    import sys

    try:
        report = session.flush()
    except Exception as exc:  # at interpreter exit there is no one else to tell
        print(f"pytest-replay: recording not written: {exc}", file=sys.stderr)
        return
    for line in report.errors:
        print(f"pytest-replay: {line}", file=sys.stderr)


_start_from_environment()
