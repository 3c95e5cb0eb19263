"""The recorder's flat path (RecordingSession.call) against its careful path.

A plain call (positional arguments, plain data, no rules) is recorded by code
written out flat for speed; everything else goes through _enter/_exit. Both
must write the same record, and the flat path's shortcuts (one translate() for
bin headers and the secret pre-check, the memory of clean input views, the
per-function choice of pre-check build, the bytearray count) must never change
what is written.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest

from pytest_replay import codec
from pytest_replay.record import Record
from pytest_replay.trace import RecordingSession, replay_trace


@replay_trace
def echo(value: Any) -> Any:
    return value


@replay_trace
def pair(left: Any, right: Any) -> list[Any]:
    return [right, left]


@replay_trace
def outer(value: Any) -> Any:
    return [echo(value), pair(value, 1)]


@replay_trace
def boom(value: Any) -> None:
    raise ValueError("bad value", value)


@replay_trace
def hello(user: dict[str, str]) -> str:
    return f"hello {user['name']}, your password is {user['password']}"


TRACED = (echo, pair, outer, boom, hello)


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


# Floats whose 8 bytes hold a bin header byte (0xc4-0xc6): the flat path must
# tell them from bytes-like values.
BIN_BYTE_FLOATS = [508.43, 115.1, 412.25]

VALUES: list[Any] = [
    None,
    0,
    -7,
    2**40,
    2**70,  # a big int: the codec's ext
    1.5,
    *BIN_BYTE_FLOATS,
    "",
    "plain text",
    "\u00e9t\u00e9 \u2013 caf\u00e9",
    "\ud800",  # a lone surrogate: not UTF-8, the codec's ext
    b"\x00\xc4\xc5",
    bytearray(b"ba"),
    bytearray(),
    [1.5, bytearray(b"deep"), {"k": BIN_BYTE_FLOATS[0]}],
    {"floats": BIN_BYTE_FLOATS, "raw": b"\xc6"},
    {"sku": "SKU-1", "qty": 3, "unit_price": 9.99, "tags": ["web", "promo"]},
    (1, 2),
    {1, 2},
    Point(1.0, 2.5),
    [threading.Lock()],  # cannot be encoded: an Opaque marker and a reason
    # what the scanner must find
    "Bearer abcdefghijklmnopqrstuv",
    {"headers": {"Authorization": "Token 0f2c8a9d7e6b5a4f3e2d1c0b"}},
    {"db_password": "correct-horse"},
    ["AKIAIOSFODNN7EXAMPLE", 508.43],
    "https://deploy:hunter2hunter2@git.example.com/repo.git",
    # and what only looks alike
    "cassette compass process",
    {"max_tokens": 1000, "author": "x"},
]
SECRETS = [
    b"abcdefghijklmnopqrstuv",
    b"0f2c8a9d7e6b5a4f3e2d1c0b",
    b"correct-horse",
    b"hunter2hunter2",
]


def test_some_floats_hold_bin_header_bytes() -> None:
    for number in BIN_BYTE_FLOATS:
        packed = msgpack.packb(number)
        assert any(header in packed for header in (b"\xc4", b"\xc5", b"\xc6"))


def record(session: RecordingSession, calls: Callable[[], None]) -> list[bytes]:
    """The payloads ``calls`` records, in order, without their durations."""
    session.start()
    try:
        calls()
    finally:
        session.stop()
    buffer = session.collect()
    pending = sorted(r for by_id in buffer.records.values() for r in by_id.values())
    return [without_duration(r.payload) for r in pending]


def without_duration(payload: bytes) -> bytes:
    # the payload is exactly the codec's bytes of its record map
    decoded = Record.from_map(codec.loads(payload))  # type: ignore[arg-type]
    assert codec.dumps(decoded.to_map()) == payload
    raw = codec.loads_raw(payload)
    assert isinstance(raw, dict)
    maps = [raw]
    while maps:  # nested calls carry their own durations
        one = maps.pop()
        one["meta"].pop("duration_ms")
        maps.extend(one["children"])
    packed: bytes = msgpack.packb(raw, use_bin_type=True)
    return packed


@pytest.fixture
def careful() -> Iterator[Callable[[bool], None]]:
    """Sends every function traced here down the careful path (or back)."""
    specs = [fn.__replay_spec__ for fn in TRACED]  # type: ignore[attr-defined]
    saved = [spec._plain_arity for spec in specs]

    def switch(on: bool) -> None:
        for spec, arity in zip(specs, saved, strict=True):
            object.__setattr__(spec, "_plain_arity", -1 if on else arity)

    yield switch
    switch(False)


def flat_and_careful(
    careful: Callable[[bool], None], calls: Callable[[], None], **options: Any
) -> list[bytes]:
    careful(False)
    flat = record(RecordingSession(None, max_records=10_000, **options), calls)
    careful(True)
    slow = record(RecordingSession(None, max_records=10_000, **options), calls)
    careful(False)
    assert flat == slow
    return flat


@pytest.mark.parametrize("allow_secrets", [False, True], ids=["scanner on", "scanner off"])
def test_flat_and_careful_paths_write_the_same_records(
    careful: Callable[[bool], None], allow_secrets: bool
) -> None:
    def calls() -> None:
        for value in VALUES:
            echo(value)
            pair(value, 2)
            outer(value)
            with pytest.raises(ValueError, match="bad value"):
                boom(value)
        hello({"name": "ann", "password": "open sesame"})

    written = flat_and_careful(careful, calls, allow_secrets=allow_secrets)
    assert len(written) > 3 * len(VALUES)
    blob = b"".join(written)
    for secret in SECRETS:
        assert (secret in blob) is allow_secrets, secret
    # the password named as such in the input, echoed into the result
    assert (b"open sesame" in blob) is allow_secrets


def test_bytes_like_values_are_told_apart_exactly() -> None:
    # The flat path packs natively and, seeing bin header bytes, counts them
    # again with bytes-like values packed as str: a bytearray still needs the
    # codec (it would come back as bytes), bytes and floats need nothing.
    session = RecordingSession(None)
    for value in VALUES:
        assert session._encode(value) == codec.dumps_checked(value), value
    nested = [BIN_BYTE_FLOATS[1], {"a": [bytearray(b"\xc4deep")]}, b"\xc5"]
    (written,) = record(session, lambda: echo(nested))
    decoded = Record.from_map(codec.loads(written))  # type: ignore[arg-type]
    assert type(decoded.args[0][1]["a"][0]) is bytearray
    assert type(decoded.result[1]["a"][0]) is bytearray
    assert type(decoded.result[2]) is bytes


def test_clean_input_views_are_remembered_but_never_hide_a_secret() -> None:
    session = RecordingSession(None, max_records=10_000)
    spec = pair.__replay_spec__  # type: ignore[attr-defined]

    def calls() -> None:
        for n in range(40):  # one view: digits and these numbers blank out
            pair({"order": f"A-{n:04d}", "qty": n, "price": 9.99}, "EUR")
        pair({"order": "A-0001", "qty": 1, "note": "Bearer abcdefghijklmnopqrstuv"}, "EUR")
        pair({"order": "A-0001", "qty": 1, "password": "swordfish"}, "EUR")

    written = record(session, calls)
    assert len(written) == 42
    remembered = session._clean_inputs[spec._precheck.index]
    assert len(remembered) == 1
    blob = b"".join(written)
    assert b"abcdefghijklmnopqrstuv" not in blob
    assert b"swordfish" not in blob
    # each in the input and again in the result, which echoes the input
    assert session.buffer.secrets_redacted == 4


@pytest.mark.parametrize(
    ("value", "build"),
    [
        ({"sku": "SKU-1", "unit": "pcs", "customer": "cu1", "currency": "EUR"}, 1),
        ("the other thing which they had thought through with them", 0),
    ],
    ids=["keys full of u", "prose full of h"],
)
def test_each_function_settles_on_the_cheaper_precheck_build(value: Any, build: int) -> None:
    @replay_trace(key=f"{__name__}.calibrated.{build}")
    def calibrated(value: Any, n: int) -> Any:
        return value

    spec = calibrated.__replay_spec__  # type: ignore[attr-defined]
    assert (spec._precheck.index, spec._precheck.left) == (0, 32)
    session = RecordingSession(None, max_records=10_000)

    def calls() -> None:
        for n in range(40):
            calibrated(value, n)
        # whichever build it settled on, secrets are still found
        calibrated({"headers": {"authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}}, 0)
        calibrated(
            "x-api-key: q1w2e3r4t5y6u7i8o9p0 and gho_16C7e42F292c6912E7710c838347Ae178B4a", 0
        )

    written = record(session, calls)
    assert spec._precheck.index == build
    assert spec._precheck.left <= 0
    assert len(written) == 42
    blob = b"".join(written)
    for secret in (b"YWxhZGRpbjpvcGVuc2VzYW1l", b"q1w2e3r4t5y6u7i8o9p0", b"gho_16C7e42F292c"):
        assert secret not in blob
