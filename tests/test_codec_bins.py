"""Bin header bytes in the codec's output and the bytearray question they raise.

The C packer writes a bytearray like bytes (as bin), so the codec must notice
one and encode it exactly. A bin header byte (0xc4-0xc6) in the output makes it
look; most such bytes sit inside floats, ints or text. These tests hold the
cheap answers (the types of a flat value, a second packing with bytes-like
values given str headers) to the exact one.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay import codec

# floats whose 8 bytes hold a bin header byte
BIN_FLOATS = [508.43, 115.1, 412.25]


class Tagged(list):  # type: ignore[type-arg]
    """A list subclass: downcast and packed in place by the codec."""


def test_the_sample_floats_hold_bin_header_bytes() -> None:
    for number in BIN_FLOATS:
        packed = msgpack.packb(number)
        assert any(header in packed for header in (b"\xc4", b"\xc5", b"\xc6"))


def exact_round_trip(value: Any) -> Any:
    back = codec.loads(codec.dumps(value))
    assert back == value
    return back


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (bytearray(), ()),
        ([BIN_FLOATS[0], bytearray()], (1,)),
        ({"a": [BIN_FLOATS[1], {"b": bytearray(b"\xc4x")}]}, ("a", 1, "b")),
        ([[[[bytearray(b"deep")]]], 412.25], (0, 0, 0, 0)),
        ({"blob": b"\xc5", "mut": bytearray(b"y"), "n": BIN_FLOATS}, ("mut",)),
        (OrderedDict(x=[BIN_FLOATS[2], bytearray(b"z")]), ("x", 1)),
        (Tagged([BIN_FLOATS[0], bytearray(b"t")]), (1,)),
    ],
)
def test_a_bytearray_anywhere_comes_back_as_a_bytearray(value: Any, path: tuple[Any, ...]) -> None:
    back = exact_round_trip(value)
    for step in path:
        back = back[step]
    assert type(back) is bytearray


@pytest.mark.parametrize(
    "value",
    [
        BIN_FLOATS,
        {"rows": [{"id": i, "score": BIN_FLOATS[i % 3], "tags": ["a"]} for i in range(50)]},
        {"blob": b"\xc4\xc5\xc6", "nested": [b"x", {"k": memoryview(b"mv")}]},
        [196, 197, 198, 50000, -40000],
        "\u0100\u0140\u0180 text whose UTF-8 holds 0xc4 0xc5 0xc6",
    ],
)
def test_values_without_a_bytearray_keep_the_packers_bytes(value: Any) -> None:
    plain = msgpack.packb(value, strict_types=True, use_bin_type=True)
    assert codec.dumps(value) == plain


def test_plain_nested_values_are_decided_without_a_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_walk(value: Any) -> bool:
        raise AssertionError("walked a value that holds no bytes-like value")

    monkeypatch.setattr(codec, "_has_bytearray", no_walk)
    value = {
        "rows": [{"id": i, "score": BIN_FLOATS[i % 3], "tags": ["a", "b"]} for i in range(200)]
    }
    assert codec.dumps(value) == msgpack.packb(value, strict_types=True, use_bin_type=True)
    flat = {f"k{i}": BIN_FLOATS[i % 3] for i in range(200)}
    assert codec.dumps(flat) == msgpack.packb(flat, strict_types=True, use_bin_type=True)


def test_values_holding_bytes_are_still_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[Any] = []
    real = codec._has_bytearray

    def counting(value: Any) -> bool:
        walked.append(value)
        return real(value)

    monkeypatch.setattr(codec, "_has_bytearray", counting)
    value = {"rows": [{"blob": b"\x00", "score": BIN_FLOATS[0]}]}
    assert codec.dumps(value) == msgpack.packb(value, strict_types=True, use_bin_type=True)
    assert walked == [value]


LEAVES = st.one_of(
    st.sampled_from(BIN_FLOATS),
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.binary(max_size=5).map(bytearray),
    st.none(),
    st.booleans(),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


def has_bytearray(value: Any) -> bool:
    if type(value) is bytearray:
        return True
    if isinstance(value, dict):
        return any(has_bytearray(v) for v in value.values())
    if isinstance(value, list):
        return any(has_bytearray(v) for v in value)
    return False


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_the_cheap_answers_agree_with_a_walk(value: Any) -> None:
    data = msgpack.packb(value, strict_types=True, use_bin_type=True)
    if any(header in data for header in (b"\xc4", b"\xc5", b"\xc6")):
        assert codec._may_hold_bytearray(value, data) is has_bytearray(value)
    back = codec.loads(codec.dumps(value))
    assert back == value
    assert has_bytearray(back) is has_bytearray(value)


def test_a_big_plain_value_is_exact() -> None:
    rng = random.Random(7)
    value = {"rows": [{"id": i, "score": rng.random(), "name": f"n{i}"} for i in range(20_000)]}
    data = codec.dumps(value)
    assert data == msgpack.packb(value, strict_types=True, use_bin_type=True)
    value["rows"][-1]["late"] = bytearray(b"!")
    assert type(codec.loads(codec.dumps(value))["rows"][-1]["late"]) is bytearray  # type: ignore[index]


def test_a_big_value_holding_bytes_is_walked_without_packing_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class NoSecondPacking:
        def pack(self, value: Any) -> bytes:
            raise AssertionError("packed again although the sample shows bytes")

    monkeypatch.setattr(codec, "_STR_BIN_POOL", [NoSecondPacking()] * 4)
    rows = [{"id": i, "blob": b"\x00\x01", "score": BIN_FLOATS[i % 3]} for i in range(5_000)]
    value = {"rows": rows}
    assert codec.dumps(value) == msgpack.packb(value, strict_types=True, use_bin_type=True)
    rows[-1]["blob"] = bytearray(b"\x02")
    back = codec.loads(codec.dumps(value))
    assert type(back["rows"][-1]["blob"]) is bytearray  # type: ignore[index]
