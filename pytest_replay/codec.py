"""Encode Python values to deterministic msgpack bytes and back.

Plain data (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``,
``dict``) is written by msgpack's C packer without a Python-level walk; every
other supported type becomes a msgpack ext value whose data is itself one
msgpack object (see docs/codec.md for the byte-level spec). Values that
cannot be encoded become :class:`Opaque` markers; :func:`dumps` never raises
for them.

Decoding never unpickles. :func:`loads` / :func:`decode` may import the
module that defines an Enum, NamedTuple, dataclass or attrs class (by the
import path stored in the data); :func:`loads_raw` and :func:`to_jsonable`
import nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import importlib
import json
import math
import pathlib
import re
import struct
import threading
import uuid
from collections.abc import Callable, Generator
from itertools import chain, islice
from typing import Any
from zoneinfo import ZoneInfo

import msgpack

__all__ = [
    "MAX_DEPTH",
    "MAX_SIZE",
    "NATIVE_DEPTH",
    "UNPACK_LIMITS",
    "CodecError",
    "Opaque",
    "Redacted",
    "decode",
    "dumps",
    "dumps_checked",
    "install_hooks",
    "loads",
    "loads_raw",
    "register_type",
    "to_jsonable",
    "unregister_type",
]


class CodecError(ValueError):
    """Encoded data is malformed or cannot be turned back into values."""


@dataclasses.dataclass(frozen=True)
class Opaque:
    """Stands in for a value that could not be encoded.

    Compares by value, so a replayed opaque value equals the recorded marker
    when type name and repr match.
    """

    type_name: str
    repr: str


@dataclasses.dataclass(frozen=True)
class Redacted:
    """What a redacted value becomes on disk."""

    reason: str


# --- limits -------------------------------------------------------------------

#: Most non-native values (tuples, sets, dataclasses, ...) nested inside one
#: another. The encoder writes an Opaque marker in place of the value at this
#: depth; the decoder rejects deeper ext nesting with CodecError.
MAX_DEPTH = 200

#: Most lists/maps nested inside one another within one value (msgpack's own
#: unpacker limit). The encoder writes an Opaque marker in place of a
#: list/dict at this depth.
NATIVE_DEPTH = 1024

# Ext depth at which the encoder writes an Opaque marker instead of the value
# (the marker itself is then the deepest ext, below MAX_DEPTH).
_EXT_CUTOFF = MAX_DEPTH - 1

#: Largest str/bin/ext/array/map accepted by the decoder, and the largest
#: encoded value the encoder writes as is (bigger values become Opaque).
MAX_SIZE = 256 * 1024 * 1024

#: Keyword arguments bounding ``msgpack.Unpacker`` / ``msgpack.unpackb``.
UNPACK_LIMITS: dict[str, int] = {
    "max_str_len": MAX_SIZE,
    "max_bin_len": MAX_SIZE,
    "max_ext_len": MAX_SIZE,
    "max_array_len": MAX_SIZE,
    "max_map_len": MAX_SIZE,
}

# --- ext codes (the on-disk contract; documented in docs/codec.md) -----------

TUPLE = 1
BIGINT = 2
SET = 3
FROZENSET = 4
BYTEARRAY = 5
SURROGATE_STR = 6
COMPLEX = 7
RANGE = 8
DATETIME = 10
DATE = 11
TIME = 12
TIMEDELTA = 13
TIMEZONE = 14
ZONEINFO = 15
DECIMAL = 20
UUID = 21
PATH = 22
ENUM = 30
NAMEDTUPLE = 31
DATACLASS = 32
ATTRS = 33
CUSTOM = 34
OPAQUE = 40
REDACTED = 41

_CODE_NAMES: dict[int, str] = {
    TUPLE: "tuple",
    BIGINT: "int",
    SET: "set",
    FROZENSET: "frozenset",
    BYTEARRAY: "bytearray",
    SURROGATE_STR: "str",
    COMPLEX: "complex",
    RANGE: "range",
    DATETIME: "datetime",
    DATE: "date",
    TIME: "time",
    TIMEDELTA: "timedelta",
    TIMEZONE: "timezone",
    ZONEINFO: "zoneinfo",
    DECIMAL: "decimal",
    UUID: "uuid",
    PATH: "path",
    ENUM: "enum",
    NAMEDTUPLE: "namedtuple",
    DATACLASS: "dataclass",
    ATTRS: "attrs",
    CUSTOM: "custom",
    OPAQUE: "opaque",
    REDACTED: "redacted",
}

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_REPR_LIMIT = 200
_NATIVE_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


class _Fallback(Exception):
    """Raised inside the fast path: this value needs the careful walk."""


class _State(threading.local):
    # Per thread, because the C packer calls back into Python (``default``)
    # and another thread may encode at the same time.
    depth: int = 0
    sink: list[str] | None = None


_STATE = _State()

# --- type registry and hooks -------------------------------------------------

_Encoder = Callable[[Any], Any]
_Decoder = Callable[[Any], Any]

_REGISTRY: dict[type, tuple[str, _Encoder]] = {}
_TAG_DECODERS: dict[str, tuple[type, _Decoder]] = {}
_HOOK: Any = None


def register_type(
    cls: type, encode: Callable[[Any], Any], decode: Callable[[Any], Any], *, tag: str
) -> None:
    """Teach the codec a type: ``encode(obj)`` returns encodable data, ``decode(data)`` the object.

    ``tag`` names the type on disk and must stay stable. Subclasses of ``cls``
    are encoded with ``encode`` too (nearest registered base wins). Registering
    the same class again replaces its functions; a tag used by another class
    is refused.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_type() needs a class, got {cls!r}")
    if not isinstance(tag, str) or not tag:
        raise ValueError("register_type() needs a non-empty str tag")
    if cls in _NATIVE_SCALARS or cls in (list, dict) or cls in _EXACT:
        raise ValueError(
            f"{cls.__qualname__} has built-in support in the codec and cannot be "
            "registered; register a subclass instead"
        )
    owner = _TAG_DECODERS.get(tag)
    if owner is not None and owner[0] is not cls:
        raise ValueError(
            f"tag {tag!r} is already registered for {_type_path(owner[0])}; choose another tag"
        )
    old = _REGISTRY.get(cls)
    if old is not None and old[0] != tag:
        del _TAG_DECODERS[old[0]]
    _REGISTRY[cls] = (tag, encode)
    _TAG_DECODERS[tag] = (cls, decode)
    _SLOW_CACHE.clear()


def unregister_type(cls: type) -> None:
    """Forget a type registered with :func:`register_type` (no error if unknown)."""
    entry = _REGISTRY.pop(cls, None)
    if entry is not None:
        _TAG_DECODERS.pop(entry[0], None)
    _SLOW_CACHE.clear()


def install_hooks(hook: Any | None) -> Any | None:
    """Use pluggy hooks ``pytest_replay_encode`` / ``pytest_replay_decode`` (``None`` uninstalls).

    ``hook`` is a pluggy ``HookRelay`` (``config.hook``) or anything with those
    two attributes taking keyword arguments. Returns the previously installed
    relay, so a nested pytest session can put it back.
    """
    global _HOOK
    previous = _HOOK
    _HOOK = hook
    _SLOW_CACHE.clear()
    return previous


# --- encoding: helpers ----------------------------------------------------------


def _type_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")


def _safe_repr(obj: object) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # a broken __repr__ must not break recording
        text = f"<repr() raised {type(exc).__name__}>"
    # Memory addresses change every run; keeping them would make the bytes
    # (and so record ids) of the same call differ between runs.
    text = _ADDRESS.sub(" at 0x...", text)
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return text


def _note(reason: str) -> None:
    sink = _STATE.sink
    if sink is not None:
        sink.append(reason)


def _opaque_plan(obj: object, reason: str | None = None) -> tuple[int, Any]:
    name = _type_path(type(obj))
    text = _safe_repr(obj)
    _note(reason or f"unencodable value of type {name}: {text}")
    return OPAQUE, [name, text]


def _class_ref(cls: type) -> list[str]:
    module, qualname = cls.__module__, cls.__qualname__
    if "<locals>" in qualname or module == "__main__":
        _note(
            f"value of type {module}.{qualname} cannot be decoded in another process: "
            "its class is defined inside a function or in __main__; move it to a module"
        )
    return [module, qualname]


def _bigint_bytes(value: int) -> bytes:
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


# A plan is (code, payload): code None means "write payload natively in
# place of the value" (a downcast); SET/FROZENSET payloads are element lists
# that are encoded one by one and sorted by their bytes.
_Plan = tuple[int | None, Any]


def _plan_tuple(obj: tuple[Any, ...]) -> _Plan:
    return TUPLE, list(obj)


def _plan_int(obj: int) -> _Plan:
    value = int(obj)
    if _INT64_MIN <= value <= _UINT64_MAX:
        return None, value
    return BIGINT, _bigint_bytes(value)


def _plan_set(obj: set[Any]) -> _Plan:
    return SET, list(obj)


def _plan_frozenset(obj: frozenset[Any]) -> _Plan:
    return FROZENSET, list(obj)


def _plan_bytearray(obj: bytearray) -> _Plan:
    return BYTEARRAY, bytes(obj)


def _plan_complex(obj: complex) -> _Plan:
    return COMPLEX, [obj.real, obj.imag]


def _plan_range(obj: range) -> _Plan:
    return RANGE, [obj.start, obj.stop, obj.step]


def _tz_for(obj: _dt.datetime | _dt.time) -> Any:
    tz = obj.tzinfo
    if tz is None or type(tz) is _dt.timezone or type(tz) is ZoneInfo:
        return tz
    if any(base in _REGISTRY for base in type(tz).__mro__):
        return tz
    # Unknown tzinfo implementations (pytz, dateutil) are stored as the fixed
    # offset and name they give for this value.
    offset = obj.utcoffset()
    if offset is None:
        return None
    name = obj.tzname()
    return _dt.timezone(offset) if name is None else _dt.timezone(offset, name)


def _plan_datetime(obj: _dt.datetime) -> _Plan:
    return DATETIME, [
        obj.year,
        obj.month,
        obj.day,
        obj.hour,
        obj.minute,
        obj.second,
        obj.microsecond,
        obj.fold,
        _tz_for(obj),
    ]


def _plan_date(obj: _dt.date) -> _Plan:
    return DATE, [obj.year, obj.month, obj.day]


def _plan_time(obj: _dt.time) -> _Plan:
    return TIME, [obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold, _tz_for(obj)]


def _plan_timedelta(obj: _dt.timedelta) -> _Plan:
    return TIMEDELTA, [obj.days, obj.seconds, obj.microseconds]


def _plan_timezone(obj: _dt.timezone) -> _Plan:
    offset = obj.utcoffset(None)
    name = obj.tzname(None)
    # timezone(offset) generates its name; store one only when it was given.
    default_name = _dt.timezone(offset).tzname(None)
    return TIMEZONE, [
        offset.days,
        offset.seconds,
        offset.microseconds,
        None if name == default_name else name,
    ]


def _plan_zoneinfo(obj: ZoneInfo) -> _Plan:
    if obj.key is None:
        return _opaque_plan(obj, f"ZoneInfo without a key cannot be encoded: {obj!r}")
    return ZONEINFO, obj.key


def _plan_decimal(obj: decimal.Decimal) -> _Plan:
    return DECIMAL, str(obj)


def _plan_uuid(obj: uuid.UUID) -> _Plan:
    return UUID, obj.bytes


def _plan_path(obj: pathlib.PurePath) -> _Plan:
    # The nearest known flavour, so user subclasses of Path are written as it.
    kind = next(_PATH_KIND[c] for c in type(obj).__mro__ if c in _PATH_KIND)
    return PATH, [kind, str(obj)]


def _plan_opaque(obj: Opaque) -> _Plan:
    _note(f"unencodable value of type {obj.type_name}: {obj.repr}")
    return OPAQUE, [obj.type_name, obj.repr]


def _plan_redacted(obj: Redacted) -> _Plan:
    return REDACTED, [obj.reason]


_PATH_KIND: dict[type, str] = {
    pathlib.PurePosixPath: "PurePosixPath",
    pathlib.PureWindowsPath: "PureWindowsPath",
    pathlib.PosixPath: "PosixPath",
    pathlib.WindowsPath: "WindowsPath",
}

# Exact type -> plan. Checked first, by dict lookup, because it is the common case.
_EXACT: dict[type, Callable[[Any], _Plan]] = {
    tuple: _plan_tuple,
    int: _plan_int,
    set: _plan_set,
    frozenset: _plan_frozenset,
    bytearray: _plan_bytearray,
    complex: _plan_complex,
    range: _plan_range,
    _dt.datetime: _plan_datetime,
    _dt.date: _plan_date,
    _dt.time: _plan_time,
    _dt.timedelta: _plan_timedelta,
    _dt.timezone: _plan_timezone,
    ZoneInfo: _plan_zoneinfo,
    decimal.Decimal: _plan_decimal,
    uuid.UUID: _plan_uuid,
    pathlib.PurePosixPath: _plan_path,
    pathlib.PureWindowsPath: _plan_path,
    pathlib.PosixPath: _plan_path,
    pathlib.WindowsPath: _plan_path,
    Opaque: _plan_opaque,
    Redacted: _plan_redacted,
}

# Subclasses of these are written as the base type (the subclass is lost).
_DOWNCAST: dict[type, Callable[[Any], Any]] = {
    float: float,
    str: str,
    bytes: bytes,
    list: list,
    dict: dict,
}


def _plan_enum(obj: enum.Enum) -> _Plan:
    cls = type(obj)
    ref = _class_ref(cls)
    name = obj.name
    if name is not None and cls.__members__.get(name) is obj:
        return ENUM, [*ref, name]
    # Composite flags have no member of their own; store the value.
    return ENUM, [*ref, None, obj.value]


def _plan_namedtuple(obj: tuple[Any, ...]) -> _Plan:
    return NAMEDTUPLE, [*_class_ref(type(obj)), list(obj)]


def _plan_dataclass(obj: Any) -> _Plan:
    fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return DATACLASS, [*_class_ref(type(obj)), fields]


def _plan_attrs(obj: Any) -> _Plan:
    fields = {a.name: getattr(obj, a.name) for a in type(obj).__attrs_attrs__}
    return ATTRS, [*_class_ref(type(obj)), fields]


def _plan_hook(obj: Any) -> _Plan | None:
    hook = _HOOK
    if hook is None:
        return None
    result = hook.pytest_replay_encode(value=obj)
    if result is None:
        return None
    if not (
        isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], str) and result[0]
    ):
        return _opaque_plan(
            obj,
            f"pytest_replay_encode returned {_safe_repr(result)} for a "
            f"{_type_path(type(obj))}; it must return (tag, data) or None",
        )
    return CUSTOM, [result[0], result[1]]


_SLOW_CACHE: dict[type, Callable[[Any], _Plan]] = {}
_SLOW_CACHE_SIZE = 4096


def _slow_planner(cls: type) -> Callable[[Any], _Plan]:
    """Pick how to encode a non-native, non-exact type (the lookup order is documented)."""
    for base in cls.__mro__:
        entry = _REGISTRY.get(base)
        if entry is not None:
            tag, encode = entry
            return lambda obj: (CUSTOM, [tag, encode(obj)])
    if issubclass(cls, enum.Enum):
        return _plan_enum
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return _plan_namedtuple
    if dataclasses.is_dataclass(cls):
        return _plan_dataclass
    if getattr(cls, "__attrs_attrs__", None) is not None:
        return _plan_attrs

    fallback: Callable[[Any], _Plan] = _opaque_plan
    for base in cls.__mro__[1:]:
        plan = _EXACT.get(base)
        if plan is not None:
            fallback = plan
            break
        downcast = _DOWNCAST.get(base)
        if downcast is not None:
            fallback = _downcast_plan(downcast)
            break

    def with_hook(obj: Any) -> _Plan:
        planned = _plan_hook(obj)
        return fallback(obj) if planned is None else planned

    return with_hook


def _downcast_plan(base: Callable[[Any], Any]) -> Callable[[Any], _Plan]:
    return lambda obj: (None, base(obj))


def _plan(obj: object) -> _Plan:
    """How to write ``obj``; never raises (user code failing makes the value Opaque)."""
    cls = type(obj)
    plan = _EXACT.get(cls)
    if plan is None:
        plan = _SLOW_CACHE.get(cls)
        if plan is None:
            plan = _slow_planner(cls)
            if len(_SLOW_CACHE) >= _SLOW_CACHE_SIZE:
                _SLOW_CACHE.clear()  # classes created on the fly must not pile up
            _SLOW_CACHE[cls] = plan
    try:
        return plan(obj)
    except Exception as exc:
        return _opaque_plan(
            obj,
            f"encoding a {_type_path(cls)} raised {type(exc).__name__}: {_safe_repr(exc)}",
        )


# --- encoding: fast path ---------------------------------------------------------


def _has_bytearray(value: Any) -> bool:
    """True when a ``bytearray`` sits in ``value`` or its nested lists/dicts.

    The C packer writes ``bytearray`` as plain bin, so its type would be lost.
    Only called on values the C packer already packed (so they are acyclic)
    and only when the output holds a bin header byte. Breadth first, with a
    fixed number of C calls per level and no Python loop over elements; a
    level of only lists (or only dicts) is not filtered at all.
    """
    if type(value) is bytearray:
        return True
    if not isinstance(value, list | dict):
        return False
    items: Any = dict.values(value) if isinstance(value, dict) else value
    while True:
        distinct = set(map(type, items))
        if distinct <= _NATIVE_SCALARS:
            return False
        if bytearray in distinct:
            return True
        if distinct == _ONLY_LIST:
            items = list(chain.from_iterable(items))
            continue
        if distinct == _ONLY_DICT:
            items = list(chain.from_iterable(map(dict.values, items)))
            continue
        lists = list(filter(_IS_LIST, items)) if _list_like(distinct) else ()
        dicts = list(filter(_IS_DICT, items)) if _dict_like(distinct) else ()
        if not lists and not dicts:
            return False
        items = list(
            chain(chain.from_iterable(lists), chain.from_iterable(map(dict.values, dicts)))
        )


_IS_DICT = dict.__instancecheck__
_IS_LIST = list.__instancecheck__
_ONLY_LIST = frozenset({list})
_ONLY_DICT = frozenset({dict})


def _list_like(kinds: set[type]) -> bool:
    return any(issubclass(kind, list) for kind in kinds)


def _dict_like(kinds: set[type]) -> bool:
    return any(issubclass(kind, dict) for kind in kinds)


_BIN_HEADERS = b"\xc4\xc5\xc6"
_POOL: list[Any] = []
# Packers writing bytes-like values with str headers, for _may_hold_bytearray.
_STR_BIN_POOL: list[Any] = []


def _may_hold_bytearray(value: Any, data: bytes) -> bool:
    """Whether ``value``, packed as ``data`` which holds bin header bytes, holds a bytearray.

    Such bytes mostly sit inside floats, ints or text, not in front of a
    bytes-like value. A flat list or dict is answered by the types of its
    items (one C pass). Otherwise the value is packed again with bytes-like
    values given str headers (never 0xc4-0xc6) and every other byte
    unchanged: a plain value holding no bytes-like value at all shows as many
    of those bytes, which decides in one more C pass where walking nested
    data costs several times the packing. Only a value that does hold
    bytes-like values (or ext values) is walked; a large one is sampled first,
    and walked straight away when the sample holds bytes (the second packing
    could not settle it).
    """
    if isinstance(value, list | dict):
        items = dict.values(value) if isinstance(value, dict) else value
        kinds = set(map(type, items))
        if kinds <= _NATIVE_SCALARS:
            return False
        if bytearray in kinds:
            return True
        if len(data) > _SAMPLE_ABOVE and _sample_holds_bytes(items):
            return _has_bytearray(value)
    else:
        return type(value) is bytearray
    try:
        packer = _STR_BIN_POOL.pop()
    except IndexError:
        packer = msgpack.Packer(strict_types=True, use_bin_type=False, autoreset=True)
    try:
        again: bytes = packer.pack(value)
    except Exception:  # not plain data (ext values): walk
        return _has_bytearray(value)
    finally:
        _STR_BIN_POOL.append(packer)
    bins = len(data) - len(data.translate(None, _BIN_HEADERS))
    if len(again) - len(again.translate(None, _BIN_HEADERS)) == bins:
        return False
    return _has_bytearray(value)


_SAMPLE_ABOVE = 1 << 16
_BYTES_LIKE = frozenset({bytes, bytearray, memoryview})


def _sample_holds_bytes(items: Any) -> bool:
    """Whether the first few items of the first few levels hold a bytes-like value."""
    level = list(islice(items, 16))
    for _ in range(4):
        if not _BYTES_LIKE.isdisjoint(map(type, level)):
            return True
        nested = [item for item in level if isinstance(item, list | dict)]
        if not nested:
            return False
        level = list(
            islice(
                chain.from_iterable(
                    dict.values(item) if isinstance(item, dict) else item for item in nested
                ),
                16,
            )
        )
    return False


def _new_packer() -> Any:
    return msgpack.Packer(default=_default, strict_types=True, use_bin_type=True, autoreset=True)


def _pack(value: Any) -> bytes:
    # Packers are reused (constructing one costs more than packing a small
    # dict); a pool rather than one global keeps re-entrant calls from
    # ``_default`` and other threads safe.
    try:
        packer = _POOL.pop()
    except IndexError:
        packer = _new_packer()
    try:
        data: bytes = packer.pack(value)
    finally:
        _POOL.append(packer)
    # A bytearray is written as bin; memchr over the output is far cheaper
    # than looking at the value, so that runs only when a bin header byte
    # (0xc4-0xc6) occurs at all.
    if (b"\xc4" in data or b"\xc5" in data or b"\xc6" in data) and _may_hold_bytearray(value, data):
        raise _Fallback
    return data


def _default(obj: Any) -> Any:
    # Called by the C packer for every value it does not write natively.
    code, payload = _plan(obj)
    if code is None:
        # A downcast list/dict is packed in place; the caller's bytearray
        # check covers its contents.
        return payload
    state = _STATE
    depth = state.depth + 1
    if depth >= _EXT_CUTOFF:
        raise _Fallback
    state.depth = depth
    try:
        if code == SET or code == FROZENSET:
            parts = sorted(_pack(item) for item in payload)
            return msgpack.ExtType(code, _array_header(len(parts)) + b"".join(parts))
        return msgpack.ExtType(code, _pack(payload))
    finally:
        state.depth = depth - 1


# --- encoding: careful walk ------------------------------------------------------

_Frame = Generator[tuple[Any, int, int], Any, Any]


class _Walk:
    """Iterative encoder for what the fast path cannot take.

    It writes the same bytes as the fast path wherever both succeed, so the
    output does not depend on which one ran; in addition it replaces cycles
    and too-deep parts with Opaque markers and keeps bytearray and
    non-UTF-8 strings exact. Iterative (a stack of generators) so that deep
    values cannot hit the interpreter's recursion limit.
    """

    def __init__(self) -> None:
        self.active: set[int] = set()

    def run(self, root: Any, depth: int) -> Any:
        return _drive(self.convert, (root, 0, depth))

    def convert(self, value: Any, level: int, ext_depth: int) -> _Leaf | _Frame:
        t = type(value)
        if t is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return self.ext(
                    value, SURROGATE_STR, value.encode("utf-8", "surrogatepass"), ext_depth
                )
            return _Leaf(value)
        if t is int:
            if _INT64_MIN <= value <= _UINT64_MAX:
                return _Leaf(value)
            return self.ext(value, BIGINT, _bigint_bytes(value), ext_depth)
        if t in _NATIVE_SCALARS or t is msgpack.ExtType or t is msgpack.Timestamp:
            return _Leaf(value)
        if t is memoryview:
            return _Leaf(bytes(value))
        if id(value) in self.active:
            name = _type_path(t)
            _note(f"cyclic reference: a {name} contains itself")
            return self.marker(Opaque(name, "<cycle>"))
        if t is list or t is dict:
            return self.native(value, level, ext_depth)
        code, payload = _plan(value)
        if code is None:
            return self.downcast(value, payload, level, ext_depth)
        return self.ext(value, code, payload, ext_depth)

    def marker(self, opaque: Opaque) -> _Leaf:
        return _Leaf(msgpack.ExtType(OPAQUE, msgpack.packb([opaque.type_name, opaque.repr])))

    def too_deep(self, value: Any, limit: int) -> _Leaf:
        name = _type_path(type(value))
        _note(f"value nested deeper than {limit} levels: a {name} was cut off")
        return self.marker(Opaque(name, f"<nested deeper than {limit} levels>"))

    def native(self, value: Any, level: int, ext_depth: int) -> _Leaf | _Frame:
        if level >= NATIVE_DEPTH:
            return self.too_deep(value, NATIVE_DEPTH)
        return self.native_frame(value, level, ext_depth)

    def native_frame(self, value: Any, level: int, ext_depth: int) -> _Frame:
        key = id(value)
        self.active.add(key)
        try:
            if type(value) is list:
                out_list: list[Any] = []
                for item in value:
                    out_list.append((yield (item, level + 1, ext_depth)))
                return out_list
            out: dict[Any, Any] = {}
            for k, v in value.items():
                new_key = yield (k, level + 1, ext_depth)
                out[new_key] = yield (v, level + 1, ext_depth)
            return out
        finally:
            self.active.discard(key)

    def downcast(self, value: Any, payload: Any, level: int, ext_depth: int) -> _Leaf | _Frame:
        if type(payload) is list or type(payload) is dict:
            if level >= NATIVE_DEPTH:
                return self.too_deep(value, NATIVE_DEPTH)
        return self.downcast_frame(value, payload, level, ext_depth)

    def downcast_frame(self, value: Any, payload: Any, level: int, ext_depth: int) -> _Frame:
        key = id(value)
        self.active.add(key)
        try:
            return (yield (payload, level, ext_depth))
        finally:
            self.active.discard(key)

    def ext(self, value: Any, code: int, payload: Any, ext_depth: int) -> _Leaf | _Frame:
        if ext_depth + 1 >= _EXT_CUTOFF:
            return self.too_deep(value, _EXT_CUTOFF)
        return self.ext_frame(value, code, payload, ext_depth + 1)

    def ext_frame(self, value: Any, code: int, payload: Any, ext_depth: int) -> _Frame:
        key = id(value)
        self.active.add(key)
        try:
            if code == SET or code == FROZENSET:
                parts = []
                for item in payload:
                    parts.append(_pack_plain((yield (item, 0, ext_depth))))
                parts.sort()
                return msgpack.ExtType(code, _array_header(len(parts)) + b"".join(parts))
            return msgpack.ExtType(code, _pack_plain((yield (payload, 0, ext_depth))))
        finally:
            self.active.discard(key)


class _Leaf:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _pack_plain(tree: Any) -> bytes:
    # The walk's output holds only native values and ExtType leaves.
    data: bytes = msgpack.packb(tree, strict_types=True, use_bin_type=True)
    return data


def _dumps_walk(value: Any) -> bytes:
    try:
        return _pack_plain(_Walk().run(value, _STATE.depth))
    except Exception as exc:  # last resort: recording must go on
        name = _type_path(type(value))
        _note(f"encoding a {name} failed ({type(exc).__name__}: {_safe_repr(exc)})")
        return _pack_plain(msgpack.ExtType(OPAQUE, _pack_plain([name, _safe_repr(value)])))


def _too_big(value: Any, size: int) -> bytes:
    name = _type_path(type(value))
    _note(f"encoded {name} is {size} bytes, over the {MAX_SIZE} byte limit")
    text = f"<{size} bytes encoded, over the {MAX_SIZE} byte limit>"
    return _pack_plain(msgpack.ExtType(OPAQUE, _pack_plain([name, text])))


def dumps(value: object) -> bytes:
    """Deterministic msgpack bytes for ``value``; never raises for unencodable values.

    This is the recording hot path, kept flat on purpose: plain data is
    packed by the C packer in one go and only non-native values call back
    into Python (``_default``). Everything the C packer cannot do exactly
    (cycles, bytearray, non-UTF-8 str, too deep) falls back to the walk,
    which writes the same bytes wherever both can.
    """
    try:
        data = _pack(value)
    except Exception:  # _Fallback, cycles, non-UTF-8 str, RecursionError, >4 GiB
        data = _dumps_walk(value)
    if len(data) > MAX_SIZE:
        return _too_big(value, len(data))
    return data


def dumps_checked(value: object) -> tuple[bytes, tuple[str, ...]]:
    """Like :func:`dumps`, plus one reason per Opaque marker written (``()`` = replayable).

    Reasons also name values whose class cannot be imported in another
    process (defined inside a function or in ``__main__``).
    """
    state = _STATE
    previous = state.sink
    sink: list[str] = []
    state.sink = sink
    try:
        try:
            data = _pack(value)
        except Exception:
            sink.clear()
            data = _dumps_walk(value)
        if len(data) > MAX_SIZE:
            sink.clear()
            data = _too_big(value, len(data))
    finally:
        state.sink = previous
    return data, tuple(sink)


# --- decoding ------------------------------------------------------------------------


_NO_LIMITS: dict[str, int] = {}


def _limits(size: int) -> dict[str, int]:
    # unpackb bounds every declared length by the input size (each element
    # takes at least one byte), which stops huge length prefixes from
    # pre-allocating; UNPACK_LIMITS only matter for inputs larger than them.
    # Passing no limits for the usual case is also measurably faster.
    if size <= MAX_SIZE:
        return _NO_LIMITS
    return UNPACK_LIMITS


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, _BadShape):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def loads_raw(data: bytes) -> object:
    """Parse msgpack ``data`` into native values, ext values left as ``msgpack.ExtType``.

    Imports nothing and runs no user code.
    """
    try:
        return msgpack.unpackb(data, strict_map_key=False, **_limits(len(data)))
    except Exception as exc:
        raise CodecError(f"malformed msgpack data ({_describe(exc)})") from exc


def loads(data: bytes) -> object:
    """Decode bytes written by :func:`dumps` into values.

    May import the modules that define Enum, NamedTuple, dataclass and attrs
    values (by the path stored in the data) and runs registered decoders and
    ``pytest_replay_decode`` hooks; never unpickles. Malformed data raises
    :class:`CodecError` and nothing else.
    """
    try:
        return _loads(data)
    except CodecError:
        raise
    except RecursionError as exc:
        raise CodecError("encoded data is nested too deeply to decode") from exc
    except Exception as exc:
        raise CodecError(f"malformed encoded data ({_describe(exc)})") from exc


def decode(raw: object) -> object:
    """Turn a raw tree (from :func:`loads_raw` or a cassette record map) into values.

    The raw tree is not modified.
    """
    try:
        data: bytes = msgpack.packb(raw, use_bin_type=True)
    except Exception as exc:
        raise CodecError(f"not a raw msgpack tree ({_describe(exc)})") from exc
    return loads(data)


class _Node:
    """An ext value met while parsing, decoded once its own ext children are."""

    __slots__ = ("code", "data", "depth", "nested", "payload", "value")

    def __init__(self, code: int, data: bytes, depth: int) -> None:
        self.code = code
        self.data = data
        self.depth = depth
        self.nested = False
        self.payload: Any = None
        self.value: Any = None


def _loads(data: bytes) -> object:
    # Ext payloads are parsed breadth first in a loop, never by calling
    # unpackb from inside the ext hook: each unpackb call keeps a ~40 KB parse
    # stack on the C stack, so nesting them would overflow thread stacks.
    nodes: list[_Node] = []
    level = 1

    def hook(code: int, ext_data: bytes) -> _Node:
        if code not in _DECODERS:
            raise CodecError(
                f"unknown ext code {code}: the data was written by a newer or different "
                "encoder; upgrade pytest-replay-trace or re-record"
            )
        if level >= MAX_DEPTH:
            raise CodecError(f"ext values nested {MAX_DEPTH} or more levels deep")
        node = _Node(code, ext_data, level)
        nodes.append(node)
        return node

    root = msgpack.unpackb(data, ext_hook=hook, strict_map_key=False, **_limits(len(data)))
    if not nodes:
        return root
    index = 0
    while index < len(nodes):
        node = nodes[index]
        index += 1
        level = node.depth + 1
        before = len(nodes)
        try:
            node.payload = msgpack.unpackb(node.data, ext_hook=hook, strict_map_key=False)
        except CodecError:
            raise
        except Exception as exc:
            raise _malformed(node.code, exc) from exc
        node.nested = len(nodes) > before
    # Children come after their parent in ``nodes``, so walking it backwards
    # decodes every ext value after the ext values inside it.
    for node in reversed(nodes):
        payload = _resolve(node.payload) if node.nested else node.payload
        try:
            node.value = _DECODERS[node.code](payload)
        except CodecError:
            raise
        except Exception as exc:
            raise _malformed(node.code, exc) from exc
    return _resolve(root)


def _malformed(code: int, exc: BaseException) -> CodecError:
    return CodecError(f"malformed {_CODE_NAMES[code]} value (ext code {code}): {_describe(exc)}")


def _resolve(tree: Any) -> Any:
    """Replace decoded ``_Node`` leaves in a freshly parsed tree, in place and iteratively."""
    if type(tree) is _Node:
        return tree.value
    if type(tree) is not list and type(tree) is not dict:
        return tree
    stack: list[Any] = [tree]
    while stack:
        container = stack.pop()
        if type(container) is list:
            kinds = set(map(type, container))
            if kinds <= _NATIVE_SCALARS:
                continue
            # Children are collected before nodes are replaced, so decoded
            # values (which may be lists) are never walked.
            stack.extend(filter(_IS_LIST, container))
            stack.extend(filter(_IS_DICT, container))
            if _Node in kinds:
                for i, item in enumerate(container):
                    if type(item) is _Node:
                        container[i] = item.value
            continue
        kinds = set(map(type, container.values()))
        stack.extend(filter(_IS_LIST, container.values()))
        stack.extend(filter(_IS_DICT, container.values()))
        if _Node in set(map(type, container)):
            items = list(container.items())
            container.clear()
            for key, value in items:
                container[key.value if type(key) is _Node else key] = value
        if _Node in kinds:
            for key in [k for k, v in container.items() if type(v) is _Node]:
                container[key] = container[key].value
    return tree


class _BadShape(Exception):
    """A payload of the wrong shape; reported as CodecError naming the ext code."""


def _expect_list(payload: Any, size: int, what: str) -> list[Any]:
    if type(payload) is not list or len(payload) != size:
        raise _BadShape(f"expected a list of {size} items, got {_shape(payload)}")
    return payload


def _expect(payload: Any, kind: type, what: str) -> Any:
    if type(payload) is not kind:
        raise _BadShape(f"expected {kind.__name__}, got {_shape(payload)}")
    return payload


def _shape(value: Any) -> str:
    if type(value) is list:
        return f"a list of {len(value)} items"
    return type(value).__name__


def _dec_tuple(payload: Any) -> tuple[Any, ...]:
    return tuple(_expect(payload, list, "tuple"))


def _dec_bigint(payload: Any) -> int:
    return int.from_bytes(_expect(payload, bytes, "int"), "big", signed=True)


def _dec_set(payload: Any) -> set[Any]:
    return set(_expect(payload, list, "set"))


def _dec_frozenset(payload: Any) -> frozenset[Any]:
    return frozenset(_expect(payload, list, "frozenset"))


def _dec_bytearray(payload: Any) -> bytearray:
    return bytearray(_expect(payload, bytes, "bytearray"))


def _dec_surrogate(payload: Any) -> str:
    return _expect(payload, bytes, "str").decode("utf-8", "surrogatepass")  # type: ignore[no-any-return]


def _dec_complex(payload: Any) -> complex:
    real, imag = _expect_list(payload, 2, "complex")
    return complex(_expect(real, float, "complex"), _expect(imag, float, "complex"))


def _dec_range(payload: Any) -> range:
    start, stop, step = _expect_list(payload, 3, "range")
    return range(_int(start), _int(stop), _int(step))


def _int(value: Any) -> int:
    if type(value) is not int:
        raise _BadShape(f"expected int, got {_shape(value)}")
    return value


def _tz(value: Any) -> _dt.tzinfo | None:
    if value is None or isinstance(value, _dt.tzinfo):
        return value
    raise _BadShape(f"expected a tzinfo, got {_shape(value)}")


def _dec_datetime(payload: Any) -> _dt.datetime:
    y, mo, d, h, mi, s, us, fold, tz = _expect_list(payload, 9, "datetime")
    return _dt.datetime(
        _int(y), _int(mo), _int(d), _int(h), _int(mi), _int(s), _int(us), _tz(tz), fold=_int(fold)
    )


def _dec_date(payload: Any) -> _dt.date:
    y, mo, d = _expect_list(payload, 3, "date")
    return _dt.date(_int(y), _int(mo), _int(d))


def _dec_time(payload: Any) -> _dt.time:
    h, mi, s, us, fold, tz = _expect_list(payload, 6, "time")
    return _dt.time(_int(h), _int(mi), _int(s), _int(us), _tz(tz), fold=_int(fold))


def _dec_timedelta(payload: Any) -> _dt.timedelta:
    days, seconds, us = _expect_list(payload, 3, "timedelta")
    return _dt.timedelta(days=_int(days), seconds=_int(seconds), microseconds=_int(us))


def _dec_timezone(payload: Any) -> _dt.timezone:
    days, seconds, us, name = _expect_list(payload, 4, "timezone")
    offset = _dt.timedelta(days=_int(days), seconds=_int(seconds), microseconds=_int(us))
    if name is None:
        return _dt.timezone.utc if not offset else _dt.timezone(offset)
    return _dt.timezone(offset, _expect(name, str, "timezone"))


def _dec_zoneinfo(payload: Any) -> ZoneInfo:
    return ZoneInfo(_expect(payload, str, "zoneinfo"))


def _dec_decimal(payload: Any) -> decimal.Decimal:
    return decimal.Decimal(_expect(payload, str, "decimal"))


def _dec_uuid(payload: Any) -> uuid.UUID:
    return uuid.UUID(bytes=_expect(payload, bytes, "uuid"))


_PATH_CLASSES: dict[str, type[pathlib.PurePath]] = {
    "PurePosixPath": pathlib.PurePosixPath,
    "PureWindowsPath": pathlib.PureWindowsPath,
    "PosixPath": pathlib.PosixPath,
    "WindowsPath": pathlib.WindowsPath,
}
# A concrete path of the other OS cannot be instantiated here; its pure
# flavour keeps the same parts and comparisons.
_PURE_FALLBACK: dict[str, type[pathlib.PurePath]] = {
    "PosixPath": pathlib.PurePosixPath,
    "WindowsPath": pathlib.PureWindowsPath,
}


def _dec_path(payload: Any) -> pathlib.PurePath:
    kind, text = _expect_list(payload, 2, "path")
    cls = _PATH_CLASSES.get(kind)
    if cls is None:
        raise CodecError(f"malformed path value: unknown path type {kind!r}")
    text = _expect(text, str, "path")
    try:
        return cls(text)
    except NotImplementedError:
        return _PURE_FALLBACK[kind](text)


_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _import_class(module: Any, qualname: Any, what: str) -> type:
    if type(module) is not str or not _IDENTIFIER_PATH.match(module):
        raise CodecError(f"malformed {what} value: bad module name {module!r}")
    if type(qualname) is not str or not qualname:
        raise CodecError(f"malformed {what} value: bad class name {qualname!r}")
    where = f"{module}.{qualname}"
    if "<locals>" in qualname:
        raise CodecError(
            f"cannot decode {what} {where}: the class was defined inside a function; "
            "move it to module level and re-record"
        )
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise CodecError(
            f"cannot import {where} to decode a {what} value ({_describe(exc)}); make "
            "the module importable (sys.path) or re-record if the class was renamed"
        ) from exc
    if not isinstance(obj, type):
        raise CodecError(f"cannot decode {what} {where}: it is not a class")
    return obj


def _dec_enum(payload: Any) -> enum.Enum:
    if type(payload) is not list or len(payload) not in (3, 4):
        raise CodecError("malformed enum value: expected a list of 3 or 4 items")
    cls = _import_class(payload[0], payload[1], "enum")
    where = f"{payload[0]}.{payload[1]}"
    if not issubclass(cls, enum.Enum):
        raise CodecError(f"cannot decode enum {where}: it is not an Enum")
    if len(payload) == 3:
        name = _expect(payload[2], str, "enum")
        try:
            return cls[name]
        except KeyError:
            raise CodecError(f"enum {where} has no member {name!r} any more; re-record") from None
    if payload[2] is not None:
        raise CodecError("malformed enum value: a value-form member has a name")
    try:
        return cls(payload[3])
    except ValueError as exc:
        raise CodecError(f"enum {where} has no value {payload[3]!r} any more; re-record") from exc


def _dec_namedtuple(payload: Any) -> tuple[Any, ...]:
    module, qualname, values = _expect_list(payload, 3, "namedtuple")
    cls = _import_class(module, qualname, "namedtuple")
    fields = getattr(cls, "_fields", None)
    if not issubclass(cls, tuple) or not isinstance(fields, tuple):
        raise CodecError(f"cannot decode namedtuple {module}.{qualname}: it is not a NamedTuple")
    values = _expect(values, list, "namedtuple")
    if len(values) != len(fields):
        raise CodecError(
            f"namedtuple {module}.{qualname} has {len(fields)} fields but {len(values)} were "
            "recorded; the class changed since recording, re-record"
        )
    # tuple.__new__ rebuilds the state without running a user-defined __new__.
    return tuple.__new__(cls, values)


_MISSING: Any = object()


def _restore(
    cls: type, where: str, what: str, values: Any, defaults: dict[str, Callable[[], Any]]
) -> Any:
    values = _expect(values, dict, what)
    unknown = [name for name in values if name not in defaults]
    if unknown:
        raise CodecError(
            f"{what} {where} has no field(s) {', '.join(map(str, unknown))} any more; "
            "the class changed since recording, re-record"
        )
    # object.__new__ + setattr restores the recorded state without running
    # __init__/__post_init__ (no user code, works for frozen and slotted classes).
    obj: Any = object.__new__(cls)
    for name, default in defaults.items():
        value = values.get(name, _MISSING)
        if value is _MISSING:
            value = default()
            if value is _MISSING:
                raise CodecError(
                    f"{what} {where} has a field {name!r} that was not recorded; "
                    "the class changed since recording, re-record"
                )
        object.__setattr__(obj, name, value)
    return obj


def _no_default() -> Any:
    return _MISSING


def _dataclass_default(field: dataclasses.Field[Any]) -> Callable[[], Any]:
    if field.default is not dataclasses.MISSING:
        value = field.default
        return lambda: value
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory
    return _no_default


def _dec_dataclass(payload: Any) -> Any:
    module, qualname, values = _expect_list(payload, 3, "dataclass")
    cls = _import_class(module, qualname, "dataclass")
    if not dataclasses.is_dataclass(cls):
        raise CodecError(f"cannot decode dataclass {module}.{qualname}: it is not a dataclass")
    defaults = {f.name: _dataclass_default(f) for f in dataclasses.fields(cls)}
    return _restore(cls, f"{module}.{qualname}", "dataclass", values, defaults)


def _attrs_default(attribute: Any) -> Callable[[], Any]:
    default = attribute.default
    factory = getattr(default, "factory", None)
    if factory is not None and type(default).__name__ == "Factory":
        if getattr(default, "takes_self", False):
            return _no_default
        return factory  # type: ignore[no-any-return]
    if type(default).__name__ == "_Nothing":
        return _no_default
    return lambda: default


def _dec_attrs(payload: Any) -> Any:
    module, qualname, values = _expect_list(payload, 3, "attrs")
    cls = _import_class(module, qualname, "attrs")
    attributes = getattr(cls, "__attrs_attrs__", None)
    if attributes is None:
        raise CodecError(f"cannot decode attrs class {module}.{qualname}: it is not an attrs class")
    defaults = {a.name: _attrs_default(a) for a in attributes}
    return _restore(cls, f"{module}.{qualname}", "attrs class", values, defaults)


def _dec_custom(payload: Any) -> Any:
    tag, data = _expect_list(payload, 2, "custom")
    tag = _expect(tag, str, "custom")
    entry = _TAG_DECODERS.get(tag)
    try:
        if entry is not None:
            return entry[1](data)
        hook = _HOOK
        if hook is not None:
            result = hook.pytest_replay_decode(tag=tag, data=data)
            if result is not None:
                return result
    except Exception as exc:
        raise CodecError(f"decoder for tag {tag!r} raised {_describe(exc)}") from exc
    raise CodecError(
        f"no decoder for tag {tag!r}: call pytest_replay.register_type(cls, encode, decode, "
        f"tag={tag!r}) or install the plugin implementing pytest_replay_decode for it "
        "before loading ('pytest-replay show' displays the raw data)"
    )


def _dec_opaque(payload: Any) -> Opaque:
    name, text = _expect_list(payload, 2, "opaque")
    return Opaque(_expect(name, str, "opaque"), _expect(text, str, "opaque"))


def _dec_redacted(payload: Any) -> Redacted:
    (reason,) = _expect_list(payload, 1, "redacted")
    return Redacted(_expect(reason, str, "redacted"))


_DECODERS: dict[int, Callable[[Any], Any]] = {
    TUPLE: _dec_tuple,
    BIGINT: _dec_bigint,
    SET: _dec_set,
    FROZENSET: _dec_frozenset,
    BYTEARRAY: _dec_bytearray,
    SURROGATE_STR: _dec_surrogate,
    COMPLEX: _dec_complex,
    RANGE: _dec_range,
    DATETIME: _dec_datetime,
    DATE: _dec_date,
    TIME: _dec_time,
    TIMEDELTA: _dec_timedelta,
    TIMEZONE: _dec_timezone,
    ZONEINFO: _dec_zoneinfo,
    DECIMAL: _dec_decimal,
    UUID: _dec_uuid,
    PATH: _dec_path,
    ENUM: _dec_enum,
    NAMEDTUPLE: _dec_namedtuple,
    DATACLASS: _dec_dataclass,
    ATTRS: _dec_attrs,
    CUSTOM: _dec_custom,
    OPAQUE: _dec_opaque,
    REDACTED: _dec_redacted,
}


# --- JSON-able tagged form -----------------------------------------------------------


def to_jsonable(raw: object) -> object:
    """A stable JSON-able form of a raw tree: non-JSON values become ``{"$tag": ...}``.

    Imports nothing and runs no user code (ext data is parsed as msgpack
    only). Iterative, so deep values cannot hit the recursion limit. See
    docs/codec.md for the tags.
    """
    try:
        return _drive(_json_step, (raw, 0))
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"cannot display the value ({_describe(exc)})") from exc


_JsonFrame = Generator[tuple[Any, int], Any, Any]


def _json_step(raw: Any, depth: int) -> _Leaf | _JsonFrame:
    t = type(raw)
    if raw is None or t is bool or t is int or t is str:
        return _Leaf(raw)
    if t is float:
        if math.isfinite(raw):
            return _Leaf(raw)
        return _Leaf({"$float": "nan" if math.isnan(raw) else ("inf" if raw > 0 else "-inf")})
    if t is bytes:
        return _Leaf({"$bytes": base64.b64encode(raw).decode("ascii")})
    if t is list or t is tuple:
        return _json_list(raw, depth)
    if t is dict:
        return _json_dict(raw, depth)
    if t is msgpack.ExtType:
        code, data = raw.code, raw.data
        if depth + 1 >= MAX_DEPTH:
            raise CodecError(f"ext values nested {MAX_DEPTH} or more levels deep")
        if code not in _CODE_NAMES:
            return _Leaf({"$ext": {"code": code, "data": base64.b64encode(data).decode("ascii")}})
        return _json_ext(code, _raw_payload(data, code), depth + 1)
    if t is msgpack.Timestamp:
        return _Leaf({"$timestamp": [raw.seconds, raw.nanoseconds]})
    raise CodecError(f"not a raw msgpack tree: found a {_type_path(t)}")


def _json_list(raw: Any, depth: int) -> _JsonFrame:
    out = []
    for item in raw:
        out.append((yield (item, depth)))
    return out


def _json_dict(raw: dict[Any, Any], depth: int) -> _JsonFrame:
    # Maps with non-str keys, or str keys that could be mistaken for a tag,
    # are written as a list of pairs so the tagged form stays unambiguous.
    if all(type(k) is str and not k.startswith("$") for k in raw):
        plain = {}
        for key, value in raw.items():
            plain[key] = yield (value, depth)
        return plain
    pairs = []
    for key, value in raw.items():
        pairs.append([(yield (key, depth)), (yield (value, depth))])
    return {"$dict": pairs}


def _drive(step: Callable[..., Any], request: tuple[Any, ...] | None) -> Any:
    """Run ``step`` over a tree without recursion: a stack of generators.

    ``step(*request)`` returns a ``_Leaf`` (done) or a generator that yields
    requests for its children and receives their results.
    """
    stack: list[Generator[Any, Any, Any]] = []
    send: Any = None
    while True:
        if request is not None:
            result = step(*request)
            request = None
            if isinstance(result, _Leaf):
                send = result.value
                if not stack:
                    return send
            else:
                stack.append(result)
                send = None
        try:
            request = stack[-1].send(send)
        except StopIteration as stop:
            stack.pop()
            send = stop.value
            if not stack:
                return send


def _raw_payload(data: bytes, code: int) -> Any:
    try:
        return msgpack.unpackb(data, strict_map_key=False, **_limits(len(data)))
    except Exception as exc:
        raise CodecError(
            f"malformed {_CODE_NAMES.get(code, 'ext')} value (ext code {code}): {_describe(exc)}"
        ) from exc


def _offset_text(days: int, seconds: int, micros: int) -> str:
    total = _dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    sign = "-" if total < _dt.timedelta(0) else "+"
    total = abs(total)
    hours, rest = divmod(total.seconds + total.days * 86400, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}"
    if secs or total.microseconds:
        text += f":{secs:02d}"
    if total.microseconds:
        text += f".{total.microseconds:06d}"
    return text


def _tz_text(raw_tz: Any, depth: int) -> Generator[tuple[Any, int], Any, str]:
    if raw_tz is None:
        return ""
    if type(raw_tz) is msgpack.ExtType and raw_tz.code == TIMEZONE:
        days, seconds, micros, name = _expect_list(
            _raw_payload(raw_tz.data, TIMEZONE), 4, "timezone"
        )
        text = _offset_text(_int(days), _int(seconds), _int(micros))
        return text if name is None else f"{text}({_text(name)})"
    if type(raw_tz) is msgpack.ExtType and raw_tz.code == ZONEINFO:
        return f"[{_expect(_raw_payload(raw_tz.data, ZONEINFO), str, 'zoneinfo')}]"
    # a registered tzinfo type: show its tagged form
    shown = yield (raw_tz, depth)
    return f"[{json.dumps(shown, sort_keys=True)}]"


def _text(value: Any) -> str:
    """A str inside an ext payload, as displayed (non-UTF-8 strings are ext values too)."""
    if type(value) is msgpack.ExtType and value.code == SURROGATE_STR:
        raw = _expect(_raw_payload(value.data, SURROGATE_STR), bytes, "str")
        return raw.decode("utf-8", "surrogatepass").encode("utf-8", "backslashreplace").decode()  # type: ignore[no-any-return]
    return _expect(value, str, "str")  # type: ignore[no-any-return]


def _json_ext(code: int, payload: Any, depth: int) -> _JsonFrame:
    try:
        return (yield from _json_known(code, payload, depth))
    except CodecError:
        raise
    except Exception as exc:
        raise _malformed(code, exc) from exc


def _json_known(code: int, payload: Any, depth: int) -> _JsonFrame:
    name = _CODE_NAMES[code]
    result: dict[str, Any]
    if code in (TUPLE, SET, FROZENSET, COMPLEX, RANGE, TIMEDELTA):
        return {f"${name}": (yield (_expect(payload, list, name), depth))}
    if code == BIGINT:
        value = _dec_bigint(payload)
        return {"$int": str(value) if value.bit_length() < 10000 else hex(value)}
    if code == BYTEARRAY:
        return {"$bytearray": base64.b64encode(_expect(payload, bytes, name)).decode("ascii")}
    if code == SURROGATE_STR:
        text = _expect(payload, bytes, name).decode("utf-8", "surrogatepass")
        return {"$str": text.encode("utf-8", "backslashreplace").decode("utf-8")}
    if code == DATETIME:
        y, mo, d, h, mi, s, us, fold, tz = _expect_list(payload, 9, name)
        moment = _dt.datetime(_int(y), _int(mo), _int(d), _int(h), _int(mi), _int(s), _int(us))
        result = {"$datetime": moment.isoformat() + (yield from _tz_text(tz, depth))}
        if _int(fold):
            result["fold"] = fold
        return result
    if code == DATE:
        y, mo, d = _expect_list(payload, 3, name)
        return {"$date": _dt.date(_int(y), _int(mo), _int(d)).isoformat()}
    if code == TIME:
        h, mi, s, us, fold, tz = _expect_list(payload, 6, name)
        clock = _dt.time(_int(h), _int(mi), _int(s), _int(us))
        result = {"$time": clock.isoformat() + (yield from _tz_text(tz, depth))}
        if _int(fold):
            result["fold"] = fold
        return result
    if code == TIMEZONE:
        zone = msgpack.ExtType(TIMEZONE, _pack_plain(payload))
        return {"$timezone": (yield from _tz_text(zone, depth))}
    if code == ZONEINFO:
        return {"$zoneinfo": _expect(payload, str, name)}
    if code == DECIMAL:
        return {"$decimal": _expect(payload, str, name)}
    if code == UUID:
        return {"$uuid": str(uuid.UUID(bytes=_expect(payload, bytes, name)))}
    if code == PATH:
        kind, text = _expect_list(payload, 2, name)
        return {"$path": [_text(kind), _text(text)]}
    if code == ENUM:
        if type(payload) is not list or len(payload) not in (3, 4):
            raise CodecError("malformed enum value: expected a list of 3 or 4 items")
        where = f"{_text(payload[0])}.{_text(payload[1])}"
        if len(payload) == 3:
            return {"$enum": f"{where}.{_text(payload[2])}"}
        return {"$enum": where, "value": (yield (payload[3], depth))}
    if code in (NAMEDTUPLE, DATACLASS, ATTRS):
        module, qualname, fields = _expect_list(payload, 3, name)
        where = f"{_text(module)}.{_text(qualname)}"
        return {f"${name}": {"type": where, "fields": (yield (fields, depth))}}
    if code == CUSTOM:
        tag, data = _expect_list(payload, 2, name)
        return {"$custom": {"tag": _text(tag), "data": (yield (data, depth))}}
    if code == OPAQUE:
        type_name, text = _expect_list(payload, 2, name)
        return {"$opaque": {"type": _text(type_name), "repr": _text(text)}}
    (reason,) = _expect_list(payload, 1, name)
    return {"$redacted": _text(reason)}
