"""Tests of pytest_replay.codec: round trips, determinism, opaque markers, extension, hostility."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import os
import pathlib
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import typing
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_replay import codec
from pytest_replay.codec import CodecError, Opaque, Redacted

# The recursive strategies below have a repr of several kB, which Hypothesis
# warns about when it describes a generated value; the warning is noise here.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

try:
    import attrs
except ImportError:  # pragma: no cover - attrs is a test extra
    attrs = None  # type: ignore[assignment]

try:
    import pydantic
except ImportError:  # optional: the worked example runs only where pydantic is installed
    pydantic = None


# --- module-level types (importable by path, as the codec requires) -----------------


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    CRIMSON = 1  # an alias of RED


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Mode(str, enum.Enum):
    FAST = "fast"
    SLOW = "slow"


class Point(typing.NamedTuple):
    x: int
    y: Any = None


Pair = collections.namedtuple("Pair", ["left", "right"])


@dataclasses.dataclass
class Item:
    name: str
    tags: list[Any] = dataclasses.field(default_factory=list)
    derived: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.derived = len(self.name)


@dataclasses.dataclass(frozen=True)
class FrozenItem:
    key: Any
    value: Any = None


@dataclasses.dataclass(slots=True)
class SlotItem:
    a: Any
    b: Any = 2


@dataclasses.dataclass
class Node:
    value: Any
    next: Any = None


class Money:
    """A type the codec does not know (for register_type / hook tests)."""

    def __init__(self, cents: int, currency: str) -> None:
        self.cents = cents
        self.currency = currency

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and (self.cents, self.currency) == (other.cents, other.currency)  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((self.cents, self.currency))

    def __repr__(self) -> str:
        return f"Money({self.cents}, {self.currency!r})"


class Euro(Money):
    pass


class MyInt(int):
    pass


class MyStr(str):
    pass


class MyList(list):  # type: ignore[type-arg]
    pass


class Unknown:
    def __repr__(self) -> str:
        return "<Unknown thing>"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


if attrs is not None:

    @attrs.define
    class AttrsItem:
        name: str
        count: int = 0
        tags: list[Any] = attrs.Factory(list)

    @attrs.frozen
    class AttrsFrozen:
        key: Any
else:  # pragma: no cover
    AttrsItem = AttrsFrozen = None  # type: ignore[assignment,misc]


# --- comparison: value AND type identical, floats bit-exact ----------------------------


def _float_bits(x: float) -> bytes:
    return struct.pack(">d", x)


def same(a: Any, b: Any) -> bool:
    """Exact equality: same types all the way down, floats and Decimals bit-exact."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return _float_bits(a) == _float_bits(b)
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, dt.datetime | dt.time):
        return (
            a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.fold == b.fold
            and type(a.tzinfo) is type(b.tzinfo)
            and repr(a.tzinfo) == repr(b.tzinfo)
        )
    if isinstance(a, list | tuple) and not hasattr(a, "_fields"):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "_fields"):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(k1, k2) and same(v1, v2)
            for (k1, v1), (k2, v2) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, set | frozenset):
        return len(a) == len(b) and same(sorted(a, key=codec.dumps), sorted(b, key=codec.dumps))
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if attrs is not None and attrs.has(type(a)):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return bool(a == b)


def roundtrip(value: Any) -> Any:
    data = codec.dumps(value)
    assert isinstance(data, bytes)
    return codec.loads(data)


def nan_with(bits: int) -> float:
    value: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    return value


class FixedTz(dt.tzinfo):
    """A tzinfo that is neither timezone nor ZoneInfo (like pytz/dateutil)."""

    def utcoffset(self, d: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(hours=-3, minutes=-30)

    def tzname(self, d: dt.datetime | None) -> str:
        return "NST"

    def dst(self, d: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)


NY = ZoneInfo("America/New_York")

ROUND_TRIP_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**400,
    -(10**400),
    0.0,
    -0.0,
    1.5,
    math.inf,
    -math.inf,
    math.nan,
    nan_with(0xFFF8000000000123),
    nan_with(0x7FF0000000000001),
    5e-324,
    "",
    "héllo ✓ 𝄞",
    "\ud800 lone surrogate",
    b"",
    b"\x00\xff",
    bytearray(),
    bytearray(b"\x00mutable"),
    [],
    [1, "two", [3.0, None]],
    (),
    (1,),
    (1, (2, (3, ()))),
    {},
    {"a": 1, "b": [2]},
    {2: "b", 1: "a", "z": None},
    {(1, 2): "tuple key", frozenset({1}): "frozenset key", None: 0, 1.5: "float", b"k": "bytes"},
    {3, 1, 2},
    set(),
    {"x", ("t", 1), frozenset({"inner"})},
    frozenset(),
    frozenset({1, "a", (2, 3)}),
    complex(1.5, -2.0),
    complex(math.nan, -0.0),
    range(0),
    range(1, 10, 3),
    range(10, -(2**70), -7),
    dt.datetime(2024, 2, 29, 23, 59, 58, 999999),
    dt.datetime(1, 1, 1),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-1), "Custom")),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(microseconds=-1))),
    dt.datetime(2024, 7, 1, 9, tzinfo=NY),
    dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NY),
    dt.datetime(2024, 11, 3, 1, 30, fold=0, tzinfo=NY),
    dt.date(2024, 2, 29),
    dt.date.max,
    dt.time(),
    dt.time(23, 59, 59, 999999),
    dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.time(1, 2, fold=1, tzinfo=NY),
    dt.timedelta(),
    dt.timedelta(days=-1, seconds=5, microseconds=7),
    dt.timedelta.max,
    dt.timezone.utc,
    dt.timezone(dt.timedelta(hours=-8), "PST"),
    NY,
    decimal.Decimal("1.10"),
    decimal.Decimal("1E+3"),
    decimal.Decimal("-0"),
    decimal.Decimal("0E-30"),
    decimal.Decimal("NaN"),
    decimal.Decimal("-NaN123"),
    decimal.Decimal("sNaN"),
    decimal.Decimal("-Infinity"),
    decimal.Decimal("3.14159265358979323846264338327950288419716939937510"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    uuid.UUID(int=0),
    pathlib.PurePosixPath("/etc/passwd"),
    pathlib.PurePosixPath("relative/x"),
    pathlib.PureWindowsPath(r"C:\Users\me\file.txt"),
    pathlib.PureWindowsPath(r"\\server\share\x"),
    pathlib.Path("some/relative/path"),
    pathlib.Path("/abs"),
    Color.RED,
    Color.GREEN,
    Level.HIGH,
    Perm.R,
    Perm.R | Perm.W,
    Perm(0),
    Mode.SLOW,
    Point(1, 2),
    Point(1, (2, 3)),
    Pair([1], {"x": 2}),
    Item("abc", ["t"]),
    FrozenItem((1, 2), frozenset({3})),
    SlotItem(1, [2]),
    Node(1, Node(2, Node(3))),
    Opaque("socket.socket", "<socket>"),
    Redacted("redact rule 'password'"),
    [Opaque("a", "b"), {"k": Redacted("x")}],
    [bytearray(b"nested"), {"k": (bytearray(b"in tuple"),)}],
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=lambda v: type(v).__name__)
def test_round_trip_is_exact(value: Any) -> None:
    result = roundtrip(value)
    assert same(result, value), (value, result)


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=lambda v: type(v).__name__)
def test_walk_writes_the_same_bytes_as_the_fast_path(value: Any) -> None:
    # Which encoder runs must not change the bytes (determinism of record ids).
    assert codec._dumps_walk(value) == codec.dumps(value)


@pytest.mark.skipif(attrs is None, reason="attrs not installed")
def test_attrs_round_trip() -> None:
    for value in (AttrsItem("a", 2, ["x"]), AttrsFrozen((1, "k"))):
        result = roundtrip(value)
        assert type(result) is type(value)
        assert result == value


def test_dataclass_is_restored_without_running_init() -> None:
    item = Item("abc")
    item.derived = 99  # state that __post_init__ would overwrite
    result = roundtrip(item)
    assert result.derived == 99
    assert result == item


def test_dict_order_and_key_types_are_kept() -> None:
    value = {3: "c", "1": "a", 1: "one", (1,): "t", 2.5: "float", None: "none"}
    result = roundtrip(value)
    assert list(result.items()) == list(value.items())
    assert [type(k) for k in result] == [type(k) for k in value]


def test_float_bits_survive() -> None:
    for bits in (0x7FF8000000000000, 0xFFF8000000000000, 0x7FF4000000000001, 0x8000000000000000):
        value = nan_with(bits)
        assert _float_bits(roundtrip(value)) == _float_bits(value)


def test_int_boundaries_choose_native_or_ext() -> None:
    assert codec.dumps(2**64 - 1) == msgpack.packb(2**64 - 1)
    assert codec.dumps(-(2**63)) == msgpack.packb(-(2**63))
    big = msgpack.unpackb(codec.dumps(2**64))
    assert isinstance(big, msgpack.ExtType)
    assert big.code == codec.BIGINT
    huge = 7**30000  # beyond int <-> str conversion limits
    assert roundtrip(huge) == huge
    assert roundtrip(-huge) == -huge


def test_utc_decodes_to_the_singleton() -> None:
    assert roundtrip(dt.timezone.utc) is dt.timezone.utc
    assert roundtrip(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)).tzinfo is dt.timezone.utc


def test_unknown_tzinfo_is_stored_as_its_fixed_offset() -> None:
    value = dt.datetime(2024, 1, 1, 12, tzinfo=FixedTz())
    result = roundtrip(value)
    assert result == value  # the same instant
    assert result.utcoffset() == value.utcoffset()
    assert result.tzname() == "NST"
    assert type(result.tzinfo) is dt.timezone


def test_path_of_the_other_os_decodes_to_its_pure_flavour() -> None:
    other = "WindowsPath" if os.name != "nt" else "PosixPath"
    raw = msgpack.ExtType(codec.PATH, msgpack.packb([other, "a/b"]))
    result = codec.loads(msgpack.packb(raw))
    expected = pathlib.PureWindowsPath if other == "WindowsPath" else pathlib.PurePosixPath
    assert type(result) is expected
    assert result == expected("a/b")


def test_subclasses_of_builtins_are_written_as_the_base_type() -> None:
    value = [
        MyInt(5),
        MyStr("s"),
        MyList([1, (2,)]),
        collections.OrderedDict(a=1),
        collections.Counter("aab"),
        MyInt(2**70),
    ]
    result = roundtrip(value)
    assert result == value
    assert [type(x) for x in result] == [int, str, list, dict, dict, int]


def test_subclasses_of_supported_types_are_written_as_the_supported_base() -> None:
    class MyPath(type(pathlib.Path())):  # type: ignore[misc]
        pass

    class MyDate(dt.date):
        pass

    result = roundtrip([MyPath("a/b"), MyDate(2024, 1, 2), Point(1, 2)._replace(x=3)])
    assert result == [pathlib.Path("a/b"), dt.date(2024, 1, 2), Point(3, 2)]
    assert [type(x) for x in result] == [type(pathlib.Path()), dt.date, Point]


def test_memoryview_is_written_as_bytes() -> None:
    assert roundtrip(memoryview(b"abc")) == b"abc"


def test_enum_alias_and_flag_values() -> None:
    assert roundtrip(Color.CRIMSON) is Color.RED
    assert roundtrip(Perm.R | Perm.X) is (Perm.R | Perm.X)
    assert codec.to_jsonable(codec.loads_raw(codec.dumps(Color.RED))) == {
        "$enum": f"{__name__}.Color.RED"
    }


def test_shared_references_are_not_cycles() -> None:
    shared = [1, 2]
    value = {"a": shared, "b": shared, "c": (shared, shared)}
    data, reasons = codec.dumps_checked(value)
    assert reasons == ()
    assert codec.loads(data) == value


# --- determinism -----------------------------------------------------------------------------


def test_set_bytes_do_not_depend_on_insertion_order() -> None:
    words = [f"w{i}" for i in range(50)]
    forward = set(words)
    backward: set[str] = set()
    for word in reversed(words):
        backward.add(word)
    assert codec.dumps(forward) == codec.dumps(backward)
    assert codec.dumps(frozenset(words)) == codec.dumps(frozenset(reversed(words)))


DETERMINISM_SNIPPET = textwrap.dedent(
    """
    import datetime, decimal, sys, uuid
    from pytest_replay import codec
    value = {
        "set": {"alpha", "beta", "gamma", "delta", ("t", 1), frozenset({"x", "y"})},
        "frozen": frozenset(f"k{i}" for i in range(40)),
        "dt": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "dec": decimal.Decimal("1.50"),
        "id": uuid.UUID(int=7),
        "lock": __import__("threading").Lock(),
        "nested": [{"s": {"q", "r", "s"}}, (1, 2.5, None)],
    }
    sys.stdout.write(codec.dumps(value).hex())
    """
)


def test_bytes_are_identical_across_processes_with_different_hash_seeds() -> None:
    outputs = set()
    for seed in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SNIPPET],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert outputs.pop()  # not empty


def test_opaque_repr_has_no_memory_address() -> None:
    lock = threading.Lock()
    first = codec.dumps(lock)
    assert b" at 0x..." in first
    assert codec.dumps(threading.Lock()) == first


def test_importing_the_codec_does_not_import_pytest() -> None:
    snippet = (
        "import sys, pytest_replay.codec, pytest_replay.hookspecs; "
        "bad = [m for m in ('pytest', 'deepdiff', 'attrs', '_pytest') if m in sys.modules]; "
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


# --- opaque values, cycles, depth ----------------------------------------------------------


def _generator() -> typing.Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (threading.Lock, "_thread.lock"),
        (_generator, "builtins.generator"),
        (lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM), "socket.socket"),
        (Unknown, f"{__name__}.Unknown"),
        (lambda: {}.keys(), "builtins.dict_keys"),
    ],
)
def test_unencodable_values_become_opaque(make: Any, type_name: str) -> None:
    value = make()
    try:
        data, reasons = codec.dumps_checked({"x": [value]})
        assert codec.dumps({"x": [value]}) == data
        result = codec.loads(data)
    finally:
        if isinstance(value, socket.socket):
            value.close()
    marker = result["x"][0]
    assert isinstance(marker, Opaque)
    assert marker.type_name == type_name
    assert len(reasons) == 1
    assert type_name in reasons[0]


def test_opaque_markers_compare_by_value() -> None:
    assert Opaque("t", "r") == Opaque("t", "r")
    assert Opaque("t", "r") != Opaque("t", "other")
    assert {Opaque("t", "r"), Opaque("t", "r")} == {Opaque("t", "r")}
    assert Redacted("x") == Redacted("x")
    assert roundtrip(Opaque("t", "r")) == Opaque("t", "r")


def test_opaque_repr_is_truncated_and_survives_a_broken_repr() -> None:
    class Long:
        def __repr__(self) -> str:
            return "x" * 10_000

    marker = roundtrip(Long())
    assert len(marker.repr) <= 200
    assert marker.repr.endswith("...")
    broken = roundtrip(BadRepr())
    assert broken == Opaque(f"{__name__}.BadRepr", "<repr() raised RuntimeError>")


def test_already_opaque_values_are_reported_as_unreplayable() -> None:
    _, reasons = codec.dumps_checked([Opaque("socket.socket", "<s>")])
    assert reasons == ("unencodable value of type socket.socket: <s>",)
    _, reasons = codec.dumps_checked([Redacted("secret")])
    assert reasons == ()


def test_plain_values_have_no_reasons() -> None:
    data, reasons = codec.dumps_checked({"a": [1, (2, 3)], "b": Item("x")})
    assert reasons == ()
    assert data == codec.dumps({"a": [1, (2, 3)], "b": Item("x")})


def test_self_referencing_list_is_cut_at_the_back_reference() -> None:
    value: list[Any] = [1]
    value.append(value)
    data, reasons = codec.dumps_checked(value)
    assert codec.loads(data) == [1, Opaque("builtins.list", "<cycle>")]
    assert reasons == ("cyclic reference: a builtins.list contains itself",)


def test_cycles_through_dicts_tuples_dataclasses_and_subclasses() -> None:
    d: dict[str, Any] = {}
    d["self"] = d
    assert roundtrip(d) == {"self": Opaque("builtins.dict", "<cycle>")}

    inner: list[Any] = []
    t = (inner,)
    inner.append(t)
    assert roundtrip(t) == ([Opaque("builtins.tuple", "<cycle>")],)

    node = Node(1)
    node.next = node
    result = roundtrip(node)
    assert result.value == 1
    assert result.next == Opaque(f"{__name__}.Node", "<cycle>")

    sub = MyList([1])
    sub.append(sub)
    assert roundtrip(sub) == [1, Opaque(f"{__name__}.MyList", "<cycle>")]


def test_cycle_elsewhere_keeps_the_rest_exact() -> None:
    loop: list[Any] = []
    loop.append(loop)
    value = {"ok": [(1, 2), {3}, bytearray(b"z"), 2**80], "loop": loop}
    result = roundtrip(value)
    assert same(result["ok"], value["ok"])
    assert result["loop"] == [Opaque("builtins.list", "<cycle>")]


def _nest_lists(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _nest_tuples(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = (value,)
    return value


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list | tuple):
        value = value[0]
        depth += 1
    return depth


def test_deep_lists_are_kept_up_to_the_native_limit() -> None:
    value = _nest_lists(codec.NATIVE_DEPTH)
    data, reasons = codec.dumps_checked(value)
    assert reasons == ()
    assert _depth(codec.loads(data)) == codec.NATIVE_DEPTH


def test_too_deep_lists_are_cut_with_a_marker() -> None:
    value = _nest_lists(codec.NATIVE_DEPTH + 500)
    data, reasons = codec.dumps_checked(value)
    assert len(reasons) == 1
    assert "nested deeper than" in reasons[0]
    result = codec.loads(data)
    assert _depth(result) == codec.NATIVE_DEPTH
    innermost = result
    for _ in range(codec.NATIVE_DEPTH):
        innermost = innermost[0]
    assert innermost == Opaque("builtins.list", f"<nested deeper than {codec.NATIVE_DEPTH} levels>")


def test_too_deep_ext_nesting_is_cut_and_still_decodes() -> None:
    ok = _nest_tuples(codec.MAX_DEPTH - 2)
    assert roundtrip(ok) == ok
    value = _nest_tuples(codec.MAX_DEPTH + 300)
    data, reasons = codec.dumps_checked(value)
    assert len(reasons) == 1
    assert "nested deeper than" in reasons[0]
    result = codec.loads(data)
    assert _depth(result) == codec.MAX_DEPTH - 2
    assert codec.to_jsonable(codec.loads_raw(data))  # displayable too


def test_deep_dataclass_chain_is_cut_not_crashed() -> None:
    head = Node(0)
    for i in range(1, 1000):
        head = Node(i, head)
    data, reasons = codec.dumps_checked(head)
    assert len(reasons) == 1
    result = codec.loads(data)
    assert result.value == 999


def test_encoding_works_from_a_deep_call_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    # Close to the recursion limit the fast path fails; the iterative walk
    # must take over and write the same bytes.
    value = {"t": _nest_tuples(50), "s": {1, 2}, "b": [1.5]}
    expected = codec.dumps(value)
    walks: list[int] = []
    walk = codec._dumps_walk

    def counting_walk(v: Any) -> bytes:
        walks.append(1)
        return walk(v)

    monkeypatch.setattr(codec, "_dumps_walk", counting_walk)

    def dive(n: int) -> bytes:
        if n == 0:
            return codec.dumps(value)
        return dive(n - 1)

    limit = sys.getrecursionlimit()
    for margin in (40, 80, 160, 400):
        assert dive(limit - margin - len(_stack())) == expected
    assert walks  # the fallback really ran for the deepest dives


def _stack() -> list[Any]:
    import inspect

    return inspect.stack(0)


def test_oversized_values_become_opaque(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_SIZE", 100)
    data, reasons = codec.dumps_checked(["x" * 200])
    assert isinstance(codec.loads(data), Opaque)
    assert reasons
    assert "over the 100 byte limit" in reasons[0]


def test_dumps_is_thread_safe() -> None:
    values = [{"i": i, "t": (i, {i, str(i)}), "d": Item(str(i))} for i in range(200)]
    expected = [codec.dumps(v) for v in values]
    results: list[list[bytes]] = [[] for _ in range(4)]

    def work(slot: int) -> None:
        for _ in range(5):
            results[slot] = [codec.dumps(v) for v in values]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r == expected for r in results)


def test_local_classes_are_flagged_and_refused_on_decode() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    data, reasons = codec.dumps_checked(Local(1))
    assert len(reasons) == 1
    assert "defined inside a function" in reasons[0]
    with pytest.raises(CodecError, match="defined inside a function"):
        codec.loads(data)
    assert codec.to_jsonable(codec.loads_raw(data)) == {
        "$dataclass": {"type": f"{__name__}.{Local.__qualname__}", "fields": {"x": 1}}
    }


# --- extension: register_type --------------------------------------------------------------


@pytest.fixture
def money_type() -> typing.Iterator[None]:
    codec.register_type(
        Money,
        lambda m: [m.cents, m.currency],
        lambda data: Money(data[0], data[1]),
        tag="test.money",
    )
    yield
    codec.unregister_type(Money)


@pytest.mark.usefixtures("money_type")
def test_register_type_round_trip() -> None:
    value = {"price": Money(1999, "EUR"), "many": (Money(1, "USD"),)}
    data, reasons = codec.dumps_checked(value)
    assert reasons == ()
    assert codec.loads(data) == value
    assert codec.to_jsonable(codec.loads_raw(codec.dumps(Money(5, "EUR")))) == {
        "$custom": {"tag": "test.money", "data": [5, "EUR"]}
    }


@pytest.mark.usefixtures("money_type")
def test_registered_type_covers_subclasses_unless_they_register() -> None:
    result = roundtrip(Euro(3, "EUR"))
    assert type(result) is Money
    codec.register_type(Euro, lambda e: e.cents, lambda c: Euro(c, "EUR"), tag="test.euro")
    try:
        assert type(roundtrip(Euro(3, "EUR"))) is Euro
    finally:
        codec.unregister_type(Euro)


@pytest.mark.usefixtures("money_type")
def test_register_type_refuses_tag_clashes_and_builtins() -> None:
    with pytest.raises(ValueError, match="already registered"):
        codec.register_type(Unknown, repr, repr, tag="test.money")
    with pytest.raises(ValueError, match="built-in support"):
        codec.register_type(dt.datetime, repr, repr, tag="dt")
    with pytest.raises(ValueError, match="non-empty"):
        codec.register_type(Unknown, repr, repr, tag="")
    with pytest.raises(TypeError, match="needs a class"):
        codec.register_type(Unknown(), repr, repr, tag="x")  # type: ignore[arg-type]
    # re-registering the same class under a new tag moves it
    codec.register_type(Money, lambda m: m.cents, lambda c: Money(c, "?"), tag="test.money2")
    assert roundtrip(Money(1, "X")) == Money(1, "?")
    codec.register_type(Unknown, lambda u: 0, lambda d: Unknown(), tag="test.money")
    codec.unregister_type(Unknown)


def test_unknown_tag_on_decode_names_the_tag_and_the_fix() -> None:
    codec.register_type(Money, lambda m: m.cents, lambda c: Money(c, "X"), tag="test.gone")
    try:
        data = codec.dumps(Money(1, "X"))
    finally:
        codec.unregister_type(Money)
    with pytest.raises(CodecError, match=r"no decoder for tag 'test.gone'.*register_type"):
        codec.loads(data)
    # still displayable without the decoder
    assert codec.to_jsonable(codec.loads_raw(data)) == {"$custom": {"tag": "test.gone", "data": 1}}


def test_failing_encoder_and_decoder() -> None:
    def bad_encode(m: Money) -> Any:
        raise RuntimeError("boom")

    def bad_decode(data: Any) -> Money:
        raise RuntimeError("bang")

    codec.register_type(Money, bad_encode, bad_decode, tag="test.bad")
    try:
        data, reasons = codec.dumps_checked(Money(1, "X"))
        assert isinstance(codec.loads(data), Opaque)
        assert "RuntimeError" in reasons[0]
        codec.register_type(Money, lambda m: m.cents, bad_decode, tag="test.bad")
        with pytest.raises(CodecError, match=r"decoder for tag 'test\.bad' raised RuntimeError"):
            codec.loads(codec.dumps(Money(1, "X")))
    finally:
        codec.unregister_type(Money)


# --- extension: pluggy hooks -----------------------------------------------------------------


class FakeHooks:
    """Stands in for pluggy's HookRelay (keyword-only calls, firstresult semantics)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pytest_replay_encode(self, *, value: Any) -> Any:
        self.calls.append(type(value).__name__)
        if type(value) is Money:
            return ("hook.money", {"c": value.cents, "cur": value.currency})
        if type(value) is BadRepr:
            return "not a tuple"
        return None

    def pytest_replay_decode(self, *, tag: str, data: Any) -> Any:
        if tag == "hook.money":
            return Money(data["c"], data["cur"])
        return None


@pytest.fixture
def fake_hooks() -> typing.Iterator[FakeHooks]:
    hooks = FakeHooks()
    previous = codec.install_hooks(hooks)
    yield hooks
    codec.install_hooks(previous)


def test_install_hooks_encodes_and_decodes(fake_hooks: FakeHooks) -> None:
    value = [Money(5, "EUR"), Item("x")]
    data, reasons = codec.dumps_checked(value)
    assert reasons == ()
    assert codec.loads(data) == value
    # built-in and dataclass support come first: the hook only saw Money
    assert fake_hooks.calls == ["Money"]


def test_hook_returning_garbage_gives_an_opaque_with_the_reason(fake_hooks: FakeHooks) -> None:
    data, reasons = codec.dumps_checked(BadRepr())
    assert isinstance(codec.loads(data), Opaque)
    assert "pytest_replay_encode returned 'not a tuple'" in reasons[0]


def test_registered_types_win_over_hooks(fake_hooks: FakeHooks, money_type: None) -> None:
    assert codec.to_jsonable(codec.loads_raw(codec.dumps(Money(1, "X"))))["$custom"]["tag"] == (
        "test.money"
    )
    assert fake_hooks.calls == []


def test_uninstalled_hooks_leave_hook_tags_undecodable(fake_hooks: FakeHooks) -> None:
    data = codec.dumps(Money(5, "EUR"))
    previous = codec.install_hooks(None)
    try:
        with pytest.raises(CodecError, match=r"no decoder for tag 'hook\.money'"):
            codec.loads(data)
        assert isinstance(roundtrip(Money(1, "X")), Opaque)
    finally:
        codec.install_hooks(previous)


def test_conftest_hooks_are_used_by_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        class Temperature:
            def __init__(self, kelvin):
                self.kelvin = kelvin
            def __eq__(self, other):
                return isinstance(other, Temperature) and other.kelvin == self.kelvin

        def pytest_replay_encode(value):
            if isinstance(value, Temperature):
                return ("conftest.temperature", value.kelvin)

        def pytest_replay_decode(tag, data):
            if tag == "conftest.temperature":
                return Temperature(data)
        """
    )
    pytester.makepyfile(
        """
        from conftest import Temperature
        from pytest_replay import codec

        def test_round_trip():
            data, reasons = codec.dumps_checked([Temperature(300)])
            assert reasons == ()
            assert codec.loads(data) == [Temperature(300)]
        """
    )
    before = codec._HOOK
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert codec._HOOK is before  # the nested session put the outer relay back


def test_hookspecs_are_firstresult() -> None:
    from pytest_replay import hookspecs

    for name in ("pytest_replay_encode", "pytest_replay_decode"):
        opts = getattr(hookspecs, name).pytest_spec
        assert opts["firstresult"] is True


# --- decoding hostile input ------------------------------------------------------------------


def ext(code: int, payload: Any) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(payload)))


HOSTILE: list[tuple[str, bytes, str]] = [
    ("empty", b"", "malformed"),
    ("reserved byte", b"\xc1", "malformed"),
    ("truncated str", b"\xa5ab", "malformed"),
    ("extra data", b"\x01\x02", "malformed"),
    ("huge array", b"\xdd\xff\xff\xff\xff", "malformed"),
    ("huge map", b"\xdf\xff\xff\xff\xff", "malformed"),
    ("huge str", b"\xdb\xff\xff\xff\xff", "malformed"),
    ("huge bin", b"\xc6\xff\xff\xff\xff", "malformed"),
    ("huge ext", b"\xc9\xff\xff\xff\xff\x01", "malformed"),
    ("deep arrays", b"\x91" * 5000 + b"\xc0", "malformed"),
    ("invalid utf-8", b"\xa2\xff\xfe", "malformed"),
    ("list as map key", b"\x81\x91\x01\x02", "malformed"),
    ("unknown ext code", msgpack.packb(msgpack.ExtType(99, b"\xc0")), "unknown ext code 99"),
    ("garbage ext data", msgpack.packb(msgpack.ExtType(codec.TUPLE, b"\xc1")), "tuple"),
    ("ext trailing data", msgpack.packb(msgpack.ExtType(codec.TUPLE, b"\x90\x90")), "tuple"),
    ("tuple of str", ext(codec.TUPLE, "abc"), "tuple"),
    ("set of lists", ext(codec.SET, [[1]]), "set"),
    ("bigint not bytes", ext(codec.BIGINT, 5), "int"),
    ("complex of str", ext(codec.COMPLEX, ["a", "b"]), "complex"),
    ("range step 0", ext(codec.RANGE, [0, 1, 0]), "range"),
    ("datetime month 13", ext(codec.DATETIME, [2024, 13, 1, 0, 0, 0, 0, 0, None]), "datetime"),
    ("datetime short", ext(codec.DATETIME, [2024]), "datetime"),
    ("datetime bad tz", ext(codec.DATETIME, [2024, 1, 1, 0, 0, 0, 0, 0, "UTC"]), "datetime"),
    ("date floats", ext(codec.DATE, [2024.0, 1, 1]), "date"),
    ("time bad fold", ext(codec.TIME, [1, 2, 3, 4, 7, None]), "time"),
    ("timedelta overflow", ext(codec.TIMEDELTA, [10**12, 0, 0]), "timedelta"),
    ("timezone too big", ext(codec.TIMEZONE, [1, 0, 0, None]), "timezone"),
    ("zoneinfo traversal", ext(codec.ZONEINFO, "../../../etc/passwd"), "zoneinfo"),
    ("zoneinfo unknown", ext(codec.ZONEINFO, "No/Such_Zone"), "zoneinfo"),
    ("decimal garbage", ext(codec.DECIMAL, "1.2.3"), "decimal"),
    ("uuid short", ext(codec.UUID, b"\x00" * 5), "uuid"),
    ("path unknown kind", ext(codec.PATH, ["EvilPath", "/"]), "path"),
    ("enum bad module", ext(codec.ENUM, ["os; rm", "X", "A"]), "bad module name"),
    ("enum missing module", ext(codec.ENUM, ["no_such_module_xyz", "X", "A"]), "cannot import"),
    ("enum not a class", ext(codec.ENUM, ["os", "system", "A"]), "not a class"),
    ("enum not an enum", ext(codec.ENUM, ["collections", "OrderedDict", "A"]), "not an Enum"),
    ("enum no member", ext(codec.ENUM, [__name__, "Color", "BLUE"]), "no member 'BLUE'"),
    ("enum no value", ext(codec.ENUM, [__name__, "Color", None, 42]), "no value 42"),
    ("dataclass of builtins.eval", ext(codec.DATACLASS, ["builtins", "eval", {}]), "not a class"),
    ("dataclass not a dataclass", ext(codec.DATACLASS, [__name__, "Money", {}]), "not a dataclass"),
    ("dataclass new field", ext(codec.DATACLASS, [__name__, "Item", {"nope": 1}]), "nope"),
    ("dataclass missing field", ext(codec.DATACLASS, [__name__, "FrozenItem", {}]), "'key'"),
    ("namedtuple wrong size", ext(codec.NAMEDTUPLE, [__name__, "Point", [1, 2, 3]]), "3 were"),
    ("namedtuple not one", ext(codec.NAMEDTUPLE, ["builtins", "tuple", []]), "not a NamedTuple"),
    ("attrs not attrs", ext(codec.ATTRS, [__name__, "Item", {}]), "not an attrs class"),
    ("custom no tag", ext(codec.CUSTOM, [None, 1]), "custom"),
    ("opaque short", ext(codec.OPAQUE, ["x"]), "opaque"),
    ("redacted int", ext(codec.REDACTED, [1]), "redacted"),
]


@pytest.mark.parametrize(("data", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_input_raises_codec_error_only(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        codec.loads(data)


def _nested_ext(depth: int) -> bytes:
    data = msgpack.packb(0)
    for _ in range(depth):
        data = msgpack.packb(msgpack.ExtType(codec.TUPLE, b"\x91" + data))
    return data


def test_deep_ext_nesting_is_refused_without_crashing() -> None:
    ok = _nested_ext(codec.MAX_DEPTH - 1)
    assert _depth(codec.loads(ok)) == codec.MAX_DEPTH - 1
    with pytest.raises(CodecError, match="levels deep"):
        codec.loads(_nested_ext(codec.MAX_DEPTH))
    with pytest.raises(CodecError, match="levels deep"):
        codec.loads(_nested_ext(5000))
    with pytest.raises(CodecError, match="levels deep"):
        codec.to_jsonable(codec.loads_raw(_nested_ext(5000)))


def test_deep_ext_nesting_in_a_small_thread_stack() -> None:
    # Nested unpackb calls would each hold msgpack's ~40 KB parse stack; the
    # decoder must not nest them.
    outcome: list[Any] = []

    def work() -> None:
        try:
            value = _nest_tuples(codec.MAX_DEPTH - 2)
            outcome.append(codec.loads(codec.dumps(value)) == value)
            codec.loads(_nested_ext(codec.MAX_DEPTH))
        except CodecError as exc:
            outcome.append(str(exc))

    old = threading.stack_size(512 * 1024)
    try:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    assert outcome[0] is True
    assert "levels deep" in outcome[1]


def test_decoding_never_calls_the_named_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    with pytest.raises(CodecError):
        codec.loads(ext(codec.DATACLASS, ["os", "system", {"x": "echo hi"}]))
    assert called == []


def test_msgpack_timestamps_decode_to_msgpack_timestamp() -> None:
    # ext -1 is msgpack's own; pytest-replay never writes it (documented).
    assert codec.loads(msgpack.packb(msgpack.Timestamp(1, 2))) == msgpack.Timestamp(1, 2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_raise_codec_error(data: bytes) -> None:
    try:
        codec.loads(data)
    except CodecError:
        pass
    try:
        raw = codec.loads_raw(data)
    except CodecError:
        return
    try:
        json.dumps(codec.to_jsonable(raw), allow_nan=False)
    except CodecError:
        pass


SAMPLE = codec.dumps(
    {
        "t": (1, "a", None),
        "s": {1, 2},
        "d": dt.datetime(2024, 1, 1, tzinfo=NY),
        "e": Color.RED,
        "dc": Item("x", [Point(1, 2)]),
        "b": bytearray(b"q"),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255), st.integers(0, 3))
def test_fuzz_mutated_encodings_only_raise_codec_error(index: int, byte: int, mode: int) -> None:
    data = bytearray(SAMPLE)
    if mode == 0:
        data[index] = byte
    elif mode == 1:
        del data[index:]
    elif mode == 2:
        data.insert(index, byte)
    else:
        data[index] ^= 1 << (byte % 8)
    try:
        codec.loads(bytes(data))
    except CodecError:
        pass


# --- raw trees, decode(), to_jsonable() -------------------------------------------------------


def test_loads_raw_leaves_ext_values_and_decode_finishes_the_job() -> None:
    value = {"args": [(1, 2), Color.GREEN], "n": 2**70}
    raw = codec.loads_raw(codec.dumps(value))
    assert isinstance(raw, dict)
    assert isinstance(raw["args"][0], msgpack.ExtType)
    snapshot = msgpack.packb(raw)
    assert codec.decode(raw) == value
    assert codec.decode(raw["args"]) == value["args"]
    assert msgpack.packb(raw) == snapshot  # decode() did not modify the raw tree


def test_decode_of_a_non_raw_tree_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="not a raw msgpack tree"):
        codec.decode({"x": object()})


def test_loads_raw_rejects_garbage() -> None:
    with pytest.raises(CodecError, match="malformed msgpack data"):
        codec.loads_raw(b"\xc1")


def test_unpack_limits_fit_msgpack_unpacker() -> None:
    unpacker = msgpack.Unpacker(
        strict_map_key=False, max_buffer_size=1 << 20, **codec.UNPACK_LIMITS
    )
    unpacker.feed(codec.dumps([1, (2,)]))
    assert list(unpacker) == [[1, msgpack.ExtType(codec.TUPLE, msgpack.packb([2]))]]


JSONABLE_CASES: list[tuple[Any, Any]] = [
    ((1, [2]), {"$tuple": [1, [2]]}),
    (b"\x00\x01", {"$bytes": "AAE="}),
    (bytearray(b"\x00"), {"$bytearray": "AA=="}),
    (2**70, {"$int": str(2**70)}),
    ({3, 1}, {"$set": [1, 3]}),
    (frozenset({"a"}), {"$frozenset": ["a"]}),
    (math.nan, {"$float": "nan"}),
    (-math.inf, {"$float": "-inf"}),
    (-0.0, -0.0),
    ("\udcff", {"$str": "\\udcff"}),
    (complex(1, 2), {"$complex": [1.0, 2.0]}),
    (range(3), {"$range": [0, 3, 1]}),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 6), {"$datetime": "2024-01-02T03:04:05.000006"}),
    (
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
        {"$datetime": "2024-01-02T00:00:00-05:30"},
    ),
    (
        dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NY),
        {"$datetime": "2024-11-03T01:30:00[America/New_York]", "fold": 1},
    ),
    (dt.date(2024, 1, 2), {"$date": "2024-01-02"}),
    (dt.time(1, 2, tzinfo=dt.timezone.utc), {"$time": "01:02:00+00:00"}),
    (dt.timedelta(days=1, seconds=2), {"$timedelta": [1, 2, 0]}),
    (dt.timezone(dt.timedelta(hours=1), "CET"), {"$timezone": "+01:00(CET)"}),
    (NY, {"$zoneinfo": "America/New_York"}),
    (decimal.Decimal("1.50"), {"$decimal": "1.50"}),
    (uuid.UUID(int=1), {"$uuid": "00000000-0000-0000-0000-000000000001"}),
    (pathlib.PurePosixPath("/a"), {"$path": ["PurePosixPath", "/a"]}),
    (Perm.R | Perm.W, {"$enum": f"{__name__}.Perm", "value": 6}),
    (Point(1, 2), {"$namedtuple": {"type": f"{__name__}.Point", "fields": [1, 2]}}),
    (
        FrozenItem(1),
        {"$dataclass": {"type": f"{__name__}.FrozenItem", "fields": {"key": 1, "value": None}}},
    ),
    (Opaque("t", "r"), {"$opaque": {"type": "t", "repr": "r"}}),
    (Redacted("why"), {"$redacted": "why"}),
    ({1: "a"}, {"$dict": [[1, "a"]]}),
    ({"$tuple": 1}, {"$dict": [["$tuple", 1]]}),
    ({"plain": [None, True]}, {"plain": [None, True]}),
]


@pytest.mark.parametrize(("value", "expected"), JSONABLE_CASES, ids=lambda v: type(v).__name__)
def test_to_jsonable_tags(value: Any, expected: Any) -> None:
    result = codec.to_jsonable(codec.loads_raw(codec.dumps(value)))
    assert result == expected or (
        isinstance(expected, float) and _float_bits(result) == _float_bits(expected)
    )
    json.dumps(result, allow_nan=False)


def test_to_jsonable_of_unknown_ext_and_timestamp() -> None:
    raw = codec.loads_raw(msgpack.packb([msgpack.ExtType(99, b"\x01"), msgpack.Timestamp(1, 2)]))
    assert codec.to_jsonable(raw) == [
        {"$ext": {"code": 99, "data": "AQ=="}},
        {"$timestamp": [1, 2]},
    ]


def test_to_jsonable_imports_nothing() -> None:
    data = ext(codec.ENUM, ["pytest_replay_no_such_module", "Thing", "A"])
    before = set(sys.modules)
    assert codec.to_jsonable(codec.loads_raw(data)) == {
        "$enum": "pytest_replay_no_such_module.Thing.A"
    }
    assert set(sys.modules) == before
    with pytest.raises(CodecError, match="cannot import"):
        codec.loads(data)


def test_to_jsonable_rejects_malformed_ext_data() -> None:
    with pytest.raises(CodecError, match="datetime"):
        codec.to_jsonable(codec.loads_raw(ext(codec.DATETIME, [1])))
    with pytest.raises(CodecError, match="not a raw msgpack tree"):
        codec.to_jsonable({"x": object()})


# --- optional third-party worked examples (docs/codec.md) --------------------------------------


def test_numpy_worked_example() -> None:
    np = pytest.importorskip("numpy")
    codec.register_type(
        np.ndarray,
        lambda a: [str(a.dtype), list(a.shape), a.tobytes()],
        lambda d: np.frombuffer(d[2], dtype=d[0]).reshape(d[1]).copy(),
        tag="numpy.ndarray",
    )
    try:
        array = np.arange(6, dtype="float32").reshape(2, 3)
        result = roundtrip(array)
        assert result.dtype == array.dtype
        assert (result == array).all()
    finally:
        codec.unregister_type(np.ndarray)


def test_numpy_scalars_worked_example() -> None:
    np = pytest.importorskip("numpy")
    codec.register_type(
        np.generic,
        lambda x: [str(x.dtype), x.item()],
        lambda d: np.dtype(d[0]).type(d[1]),
        tag="numpy.generic",
    )
    try:
        for scalar in (np.float32(1.5), np.int64(-3), np.float64(2.5)):
            result = roundtrip(scalar)
            assert type(result) is type(scalar)
            assert result == scalar
    finally:
        codec.unregister_type(np.generic)


def _encode_model(model: Any) -> Any:
    cls = type(model)
    return [cls.__module__, cls.__qualname__, model.model_dump(mode="python")]


def _decode_model(data: Any) -> Any:
    import importlib

    module, qualname, fields = data
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls.model_validate(fields)


if pydantic is not None:

    class User(pydantic.BaseModel):
        name: str
        joined: dt.date
        tags: tuple[str, ...] = ()


@pytest.mark.skipif(pydantic is None, reason="pydantic not installed")
def test_pydantic_worked_example() -> None:
    codec.register_type(pydantic.BaseModel, _encode_model, _decode_model, tag="pydantic.model")
    try:
        user = User(name="a", joined=dt.date(2024, 1, 2), tags=("x",))
        result = roundtrip(user)
        assert type(result) is User
        assert result == user
    finally:
        codec.unregister_type(pydantic.BaseModel)


# --- property tests -----------------------------------------------------------------------------


def _nan_floats() -> st.SearchStrategy[float]:
    return st.integers(0, 2**52 - 1).map(lambda m: nan_with(0x7FF0000000000000 | m | 1))


floats = st.floats(allow_nan=True, allow_infinity=True) | _nan_floats()
hashable_floats = st.floats(allow_nan=False)
texts = st.text(max_size=8) | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3
)
fixed_offsets = st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23)),
) | st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)),
    st.text(st.characters(codec="ascii"), min_size=1, max_size=5),
)
zones = st.sampled_from([NY, ZoneInfo("Europe/Paris"), ZoneInfo("UTC")])
tzinfos = st.none() | fixed_offsets | zones
paths = st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=10)

hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    hashable_floats,
    texts,
    st.binary(max_size=8),
    st.complex_numbers(allow_nan=False),
    st.datetimes(timezones=tzinfos),
    st.dates(),
    st.times(timezones=tzinfos),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.builds(range, st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 5)),
    st.sampled_from([*Color, *Level, *Perm, Perm.R | Perm.W, *Mode]),
    st.builds(pathlib.PurePosixPath, paths),
    st.builds(pathlib.PureWindowsPath, paths),
    st.builds(pathlib.Path, paths),
    st.builds(Opaque, texts, texts),
    st.builds(Redacted, texts),
)
leaves = hashable_leaves | st.one_of(
    floats,
    st.complex_numbers(),
    st.decimals(allow_nan=True),
    st.binary(max_size=8).map(bytearray),
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple),
        st.frozensets(inner, max_size=3),
        st.builds(Point, inner, inner),
        st.builds(FrozenItem, inner, inner),
    ),
    max_leaves=4,
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    options = [
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.dictionaries(texts, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.builds(Point, inner, inner),
        st.builds(Pair, inner, inner),
        st.builds(Item, texts, st.lists(inner, max_size=3)),
        st.builds(SlotItem, inner, inner),
        st.builds(Node, inner, inner),
    ]
    if attrs is not None:
        options.append(st.builds(AttrsItem, texts, st.integers(), st.lists(inner, max_size=3)))
    return st.one_of(options)


values = st.recursive(leaves, _containers, max_leaves=16)


def _count_opaque(value: Any) -> int:
    if isinstance(value, Opaque):
        return 1
    if isinstance(value, dict):
        return sum(_count_opaque(k) + _count_opaque(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return sum(_count_opaque(v) for v in value)
    if dataclasses.is_dataclass(value):
        return sum(_count_opaque(getattr(value, f.name)) for f in dataclasses.fields(value))
    if attrs is not None and attrs.has(type(value)):
        return sum(_count_opaque(getattr(value, f.name)) for f in attrs.fields(type(value)))
    return 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_property_round_trip_is_exact(value: Any) -> None:
    data, reasons = codec.dumps_checked(value)
    assert len(reasons) == _count_opaque(value)
    assert same(codec.loads(data), value)
    assert codec.decode(codec.loads_raw(data)) is not None or value is None
    json.dumps(codec.to_jsonable(codec.loads_raw(data)), allow_nan=False)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_property_walk_and_fast_path_agree(value: Any) -> None:
    assert codec._dumps_walk(value) == codec.dumps(value)


@settings(max_examples=100, deadline=None)
@given(st.sets(hashables, max_size=6))
def test_property_set_bytes_are_canonical(value: set[Any]) -> None:
    items = list(value)
    rebuilt: set[Any] = set()
    for item in reversed(items):
        rebuilt.add(item)
    assume(len(rebuilt) == len(value))
    assert codec.dumps(rebuilt) == codec.dumps(value)
