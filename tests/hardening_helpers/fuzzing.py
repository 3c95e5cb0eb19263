"""Fuzz harness shared by tests/test_hardening_fuzz.py (a bounded slice, driven by
hypothesis) and benchmarks/fuzz_nightly.py (100,000 inputs, driven by a seeded
``random.Random``).

Every generator takes a ``random.Random`` and returns one input (``bytes``), so
hypothesis can drive the same generators through ``st.randoms()`` and shrink
what they produce, while the nightly script runs them without hypothesis'
per-example overhead.

Every target runs one input and may raise only its documented error types;
:func:`run_input` measures each input's wall time and its peak of traced
allocations (``tracemalloc``; msgpack's C buffers go through ``PyMem`` and are
counted) and raises :class:`FuzzFailure` when anything else escapes or a limit
is crossed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from pytest_replay import codec
from pytest_replay.cassette import Cassette, CassetteError
from pytest_replay.cli import main as cli_main
from pytest_replay.history import (
    HistoryFormatError,
    detect_format,
    parse_edn,
    parse_jepsen_log,
    parse_jsonl,
)
from pytest_replay.record import ErrorInfo, Record, record_id
from pytest_replay.store import ShardError, read_shard

#: Per-input limits from the issue: no input takes more than 1 s or 100 MB.
TIME_LIMIT = 1.0
MEMORY_LIMIT = 100 * 1024 * 1024

DIGEST = 16


# --------------------------------------------------------------------------- seeds


def _chain(header: bytes, payloads: list[bytes]) -> bytes:
    """A cassette's bytes from a packed header and payloads (docs/cassette-format.md)."""

    def frame(payload: bytes, digest: bytes) -> bytes:
        return msgpack.packb([payload, digest], use_bin_type=True)  # type: ignore[no-any-return]

    prev = hashlib.blake2b(header, digest_size=DIGEST).digest()
    out = [frame(header, prev)]
    for payload in payloads:
        prev = hashlib.blake2b(prev + payload, digest_size=DIGEST).digest()
        out.append(frame(payload, prev))
    return b"".join(out)


def header_bytes(key: str = "app.pricing.total", **extra: Any) -> bytes:
    header = {"format": "pytest-replay-cassette", "version": 1, "key": key, "plugin": "0.1.0"}
    header.update(extra)
    return msgpack.packb(header, use_bin_type=True)  # type: ignore[no-any-return]


def _record(key: str, args: list[Any], result: Any = None, error: bool = False) -> bytes:
    import datetime as dt
    import decimal
    import uuid

    rid = record_id(key, codec.dumps([args, {}]))
    record = Record(
        id=rid,
        key=key,
        target=f"app.pricing:{key.rsplit('.', 1)[-1]}",
        args=args,
        kwargs={"currency": "EUR", "when": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)},
        result=result,
        error=ErrorInfo("builtins.ValueError", "negative", ("negative",)) if error else None,
        meta={"duration_ms": 1.25, "nodeid": "tests/test_p.py::test_a", "seed": None},
        unreplayable=None,
    )
    data = record.to_map()
    data["extra"] = {
        "set": {1, 2, 3},
        "tuple": (1, "a", b"\x00\xff"),
        "dec": decimal.Decimal("1.10"),
        "uuid": uuid.UUID(int=7),
        "big": 2**100,
        "opaque": codec.Opaque("socket", "<socket>"),
        "redacted": codec.Redacted("secret: bearer token"),
        "nested": [[[{"k": -1.5}]]],
    }
    return codec.dumps(data)


def seed_payloads() -> list[bytes]:
    return [
        _record("app.pricing.total", [1, 2.5, "x"], {"total": 3.5, "items": [1, 2]}),
        _record("app.pricing.total", [[1] * 40, "é" * 30], None, error=True),
        _record("app.pricing.total", [{"a": {"b": {"c": [None, True]}}}], list(range(50))),
    ]


_SEED_CASSETTES: list[bytes] | None = None


def seed_cassettes() -> list[bytes]:
    """Valid cassettes written by :class:`Cassette` itself (plus a torn one)."""
    global _SEED_CASSETTES
    if _SEED_CASSETTES is None:
        payloads = seed_payloads()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "seed.cassette"
            Cassette.create(path, "app.pricing.total", payloads)
            full = path.read_bytes()
            Cassette.create(path, "app.pricing.total", [])
            empty = path.read_bytes()
        _SEED_CASSETTES = [full, empty, full[: len(full) - 7]]
    return _SEED_CASSETTES


HISTORY_SEEDS: list[str] = [
    "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 0\t:ok\t:cas\t[1 2]\n"
    "INFO  jepsen.util - 1\t:invoke\t:write\t3\nINFO  jepsen.util - 1\t:info\t:write\t:timed-out\n"
    "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n",
    "[{:process 0, :type :invoke, :f :txn, :value [[:read :x nil]], :time 5}\n"
    ' ; comment\n {:process 0, :type :ok, :f :txn, :value [[:read :x 0]] :error #{"a" \\b}}\n'
    " {:process :nemesis, :type :info, :f :start, :value {:a (1 2.5 -3N 4M)}}]\n",
    '{"process": 0, "type": "invoke", "f": "w", "value": [1, {"$kw": "k"}], "key": "a"}\n'
    '{"process": 0, "type": "ok", "f": "w", "value": {"$set": [1]}, "time": 5}\n'
    '{"process": 1, "type": "invoke", "f": "r", "value": {"$map": [[1, "\\ud83d\\ude00"]]}}\n'
    '{"process": 1, "type": "fail", "f": "r", "value": null, "error": "timeout"}\n',
]


# --------------------------------------------------------------------------- mutations

_INTERESTING_BYTES = bytes(
    [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x90, 0x91, 0x92, 0xC1, 0xC4, 0xC6, 0xC7, 0xC9, 0xD4, 0xDC,
     0xDD, 0xDE, 0xDF, 0xD8, 0xCE, 0xCF, 0xDB]
)  # fmt: skip
_INTERESTING_WORDS = [
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x04\x00\x00\x00",  # 64 MiB: the payload limit
    b"\x04\x00\x00\x01",
    b"\x00\x01\x00\x00",
    b"\x00\x00\x00\x00",
    b"\x80\x00\x00\x00",
]


def mutate(rng: random.Random, data: bytes, *, steps: int | None = None) -> bytes:
    """Byte-level mutations in the style of AFL's havoc stage."""
    buf = bytearray(data)
    for _ in range(steps if steps is not None else rng.randint(1, 6)):
        op = rng.randrange(10)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip one bit
            at = min(pos, len(buf) - 1)
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # interesting byte
            buf[min(pos, len(buf) - 1)] = rng.choice(_INTERESTING_BYTES)
        elif op == 2:  # interesting big-endian word (length prefixes)
            word = rng.choice(_INTERESTING_WORDS)[: rng.choice([1, 2, 4])]
            buf[pos : pos + len(word)] = word
        elif op == 3:  # insert random bytes
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 4:  # delete a range
            del buf[pos : pos + rng.randint(1, 32)]
        elif op == 5 and buf:  # duplicate a range
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[end:end] = buf[pos:end]
        elif op == 6:  # truncate
            del buf[pos:]
        elif op == 7 and buf:  # overwrite a range with one repeated byte
            buf[pos : pos + rng.randint(1, 8)] = bytes([rng.choice(_INTERESTING_BYTES)]) * 8
        elif op == 8 and buf:  # swap two ranges
            a, b = sorted((rng.randrange(len(buf)), rng.randrange(len(buf))))
            n = min(rng.randint(1, 16), b - a)
            buf[a : a + n], buf[b : b + n] = buf[b : b + n], buf[a : a + n]
        else:  # append random bytes
            buf += rng.randbytes(rng.randint(1, 8))
    return bytes(buf)


def _ext(code: int, data: bytes) -> bytes:
    """An ext8 value; written by hand because msgpack refuses to pack codes below 0."""
    return b"\xc7" + bytes([len(data)]) + code.to_bytes(1, "big", signed=True) + data


def _soup(rng: random.Random, budget: int) -> bytes:
    """Random msgpack-ish tokens: valid heads with lying lengths, deep nesting, ext values."""
    out = bytearray()
    while len(out) < budget:
        choice = rng.randrange(14)
        if choice == 0:
            out += b"\x91" * rng.randint(1, 3000)  # deep arrays
        elif choice == 1:
            out += b"\x81\xa1k" * rng.randint(1, 1500)  # deep maps
        elif choice == 2:  # array32/map32/str32/bin32/ext32 declaring a huge size
            out += bytes([rng.choice([0xDD, 0xDF, 0xDB, 0xC6, 0xC9])]) + rng.choice(
                _INTERESTING_WORDS
            )
        elif choice == 3:  # an ext value, known or unknown code, with small data
            data = rng.randbytes(rng.randint(0, 6))
            code = rng.choice([*codec._CODE_NAMES, rng.randint(-128, 127)])
            out += _ext(code, data)
        elif choice == 4:  # ext values nested in ext values
            inner = msgpack.packb(None)
            for _ in range(rng.randint(1, 400)):
                inner = msgpack.packb(msgpack.ExtType(rng.choice(list(codec._CODE_NAMES)), inner))
            out += inner
        elif choice == 5:
            out += msgpack.packb(rng.choice([2**64 - 1, -(2**63), 1e308, float("nan"), -0.0]))
        elif choice == 6:
            out += msgpack.packb(rng.randbytes(rng.randint(0, 40)).decode("latin-1"))
        elif choice == 7:  # invalid UTF-8 in a str
            out += b"\xa4\xff\xfe\xed\x80"
        elif choice == 8:  # the reserved byte
            out += b"\xc1"
        elif choice == 9:  # timestamps (ext -1) of every width
            out += rng.choice([b"\xd6\xff" + rng.randbytes(4), b"\xd7\xff" + rng.randbytes(8)])
        elif choice == 10:
            out += msgpack.packb({"id": "x" * rng.randint(0, 20), "key": 3, "args": None})
        elif choice == 11:
            out += bytes([rng.randrange(256)])
        elif choice == 12:  # a small array/map head
            out += bytes([rng.choice([0x90, 0x9F, 0x80, 0x8F, 0xDC, 0xDE])]) + rng.randbytes(2)
        else:
            out += rng.randbytes(rng.randint(1, 8))
    return bytes(out)


# --------------------------------------------------------------------------- generators


def gen_random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(0, 512))


def gen_mutated_cassette(rng: random.Random) -> bytes:
    return mutate(rng, rng.choice(seed_cassettes()))


def gen_valid_header_random_tail(rng: random.Random) -> bytes:
    """A good header frame followed by garbage: the frame reader's path."""
    head = seed_cassettes()[1]
    return head + rng.choice([rng.randbytes(rng.randint(1, 200)), _soup(rng, 200)])


def gen_chained_hostile_payload(rng: random.Random) -> bytes:
    """Hostile payloads with correct hashes, so they get past the chain to the decoder."""
    payloads = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            payloads.append(mutate(rng, rng.choice(seed_payloads()), steps=rng.randint(1, 4)))
        else:
            payloads.append(rng.choice([b"\x81\xa1k", b"\xde\x00\x01\xa1k", b""]) + _soup(rng, 300))
    return _chain(header_bytes(), payloads)


def gen_hostile_header(rng: random.Random) -> bytes:
    """Header maps with hostile fields, correctly hashed."""
    fields: dict[str, Any] = {
        "format": rng.choice(["pytest-replay-cassette", "other", "", 7]),
        "version": rng.choice([1, 0, -1, 2, 2**63, 2**64 - 1, "1", None, 1.0, True]),
        "key": rng.choice(["k", "", "../../etc/passwd", "x" * 5000, None, 5, ["k"]]),
        "plugin": rng.choice(["0.1.0", None, b"\xff"]),
    }
    for name in list(fields):
        if rng.random() < 0.15:
            del fields[name]
    header = msgpack.packb(fields, use_bin_type=True)
    if rng.random() < 0.3:
        header = mutate(rng, header, steps=1)
    tail = [] if rng.random() < 0.5 else [rng.choice(seed_payloads())]
    return _chain(header, tail)


CASSETTE_GENERATORS: dict[str, Callable[[random.Random], bytes]] = {
    "random-bytes": gen_random_bytes,
    "mutated-cassette": gen_mutated_cassette,
    "header-then-garbage": gen_valid_header_random_tail,
    "chained-hostile-payload": gen_chained_hostile_payload,
    "hostile-header": gen_hostile_header,
}

_EDN_TOKENS = [
    "[", "]", "(", ")", "{", "}", "#{", "#_", ";x\n", ":process", ":type", ":invoke", ":ok",
    ":fail", ":info", ":f", ":read", ":value", ":time", "nil", "true", "false", "0", "-1",
    "3N", "1.5M", "1e309", "-0.0", "99999999999999999999999", '"s"', '"\\u00e9"', '"\\ud800"',
    "\\a", "\\newline", "#inst", "#uuid", "##NaN", "##Inf", "/", ":a/b", ",", " ", "\n", "\t",
    "'", "`", "~@", "^", "#?", "#=", "\x00", "😀",
]  # fmt: skip
_JSON_TOKENS = [
    "{", "}", "[", "]", ",", ":", '"process"', '"type"', '"invoke"', '"ok"', '"f"', '"value"',
    '"time"', '"$kw"', '"$set"', '"$map"', '"$tuple"', "null", "true", "false", "0", "-1",
    "1e999", "NaN", "Infinity", "1" * 5000, '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"',
    "\n", " ", '"a"', "9007199254740993", "-0", "0.1e-400",
]  # fmt: skip
_LOG_TOKENS = [
    "INFO  jepsen.util - ", "0", "1", ":nemesis", "\t", " ", ":invoke", ":ok", ":fail", ":info",
    ":read", ":write", ":cas", "nil", "[1 2]", "{:a 1}", "#{}", "\n", "[", "]", '"x', "WARN ",
]  # fmt: skip


def _token_text(rng: random.Random, tokens: list[str], budget: int) -> str:
    parts: list[str] = []
    size = 0
    while size < budget:
        token = rng.choice(tokens)
        if rng.random() < 0.02:
            token = token * rng.randint(50, 2000)  # long runs: deep nesting, long numbers
        parts.append(token)
        size += len(token)
    return "".join(parts)


def gen_history_tokens(rng: random.Random) -> bytes:
    tokens = rng.choice([_EDN_TOKENS, _JSON_TOKENS, _LOG_TOKENS])
    text = _token_text(rng, tokens, rng.randint(1, 600))
    return text.encode("utf-8", "surrogatepass")


def gen_history_mutated(rng: random.Random) -> bytes:
    return mutate(rng, rng.choice(HISTORY_SEEDS).encode("utf-8"))


def gen_history_structured(rng: random.Random) -> bytes:
    """Well-formed JSON lines with hostile values (depth, sizes, tags, types)."""
    lines = []
    for _ in range(rng.randint(1, 6)):
        value: Any = rng.choice(
            [
                None,
                {"$kw": rng.choice(["k", "", 5, None])},
                {"$set": [1, 1]},
                {"$map": [[1, 2], [1, 3]]},
                {"$tuple": "x"},
                {"$other": []},
                2**80,
                -0.0,
                "x" * rng.randint(0, 100),
            ]
        )
        depth = rng.choice([0, 1, 10, 63, 64, 65, 200])
        for _ in range(depth):
            value = [value]
        event = {
            "process": rng.choice([0, 1, -1, "nemesis", None, 1.5, True, [0]]),
            "type": rng.choice(["invoke", "ok", "fail", "info", "bogus", 3]),
            "f": rng.choice(["read", "", None, {"$kw": "w"}]),
            "value": value,
        }
        if rng.random() < 0.3:
            event["time"] = rng.choice([0, -5, 2**70, "t", None])
        if rng.random() < 0.2:
            del event[rng.choice(list(event))]
        lines.append(json.dumps(event))
    return ("\n".join(lines) + "\n").encode()


HISTORY_GENERATORS: dict[str, Callable[[random.Random], bytes]] = {
    "random-bytes": gen_random_bytes,
    "tokens": gen_history_tokens,
    "mutated-history": gen_history_mutated,
    "structured-jsonl": gen_history_structured,
}


def shard_header(**changes: object) -> dict[str, object]:
    """A valid shard header map, with ``changes`` applied."""
    header: dict[str, object] = {
        "format": "pytest-replay-shard",
        "version": 1,
        "duplicates": 0,
        "dropped_failed": 0,
        "secrets_redacted": 0,
        "rule_redactions": 0,
        "warnings": [],
    }
    header.update(changes)
    return header


def gen_mutated_shard(rng: random.Random) -> bytes:
    entry = ["k", "m:f", 0, 1, "0123456789abcdef", seed_payloads()[0], None, 100]
    data = msgpack.packb(shard_header(), use_bin_type=True) + msgpack.packb(
        entry, use_bin_type=True
    )
    return mutate(rng, data)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """Something that reads untrusted bytes, and the errors it documents."""

    name: str
    run: Callable[[bytes, Path], object]
    allowed: tuple[type[BaseException], ...]
    generators: dict[str, Callable[[random.Random], bytes]]


def _read_cassette(data: bytes, workdir: Path) -> object:
    path = workdir / "fuzz.cassette"
    path.write_bytes(data)
    cassette = Cassette.open(path)
    report = cassette.verify()
    count = 0
    for record in cassette.records():
        codec.to_jsonable(record)  # what `show --json` does with each record
        count += 1
    signature = cassette.signature()
    list(cassette.payloads())
    # verify() and the streaming reader must agree on what is valid
    if report.ok and cassette.torn_tail is not None:
        raise AssertionError("verify() says VALID but the reader found a torn tail")
    return (count, signature)


_CLI_COMMANDS = (["show"], ["show", "--json"], ["textconv"], ["verify"])


def _cli(data: bytes, workdir: Path) -> object:
    path = workdir / "cli.cassette"
    path.write_bytes(data)
    codes = []
    for command in _CLI_COMMANDS:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main([*command, str(path)])
        if code not in (0, 1, 2):
            raise AssertionError(f"`pytest-replay {' '.join(command)}` exited {code}")
        if code == 2 and str(path) not in err.getvalue():
            raise AssertionError(f"exit 2 without naming the file: {err.getvalue()!r}")
        if code == 2 and err.getvalue().count("\n") != 1:
            raise AssertionError(f"exit 2 with more than one line: {err.getvalue()!r}")
        codes.append(code)
    return "exit " + "/".join(map(str, codes))


def _history(parser: Callable[..., Any]) -> Callable[[bytes, Path], object]:
    def run(data: bytes, workdir: Path) -> object:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            detect_format(text)
        try:
            return len(parser(data, name="fuzz.history"))
        except HistoryFormatError as exc:
            if not str(exc).startswith("fuzz.history"):
                raise AssertionError(f"error does not name the file: {exc}") from None
            raise

    return run


def _read_shard(data: bytes, workdir: Path) -> object:
    path = workdir / "fuzz.shard"
    path.write_bytes(data)
    return len(read_shard(path))


TARGETS: dict[str, Target] = {
    "cassette-reader": Target(
        "cassette-reader",
        _read_cassette,
        (CassetteError, codec.CodecError),
        CASSETTE_GENERATORS,
    ),
    "cli": Target("cli", _cli, (), CASSETTE_GENERATORS),
    "history-edn": Target(
        "history-edn", _history(parse_edn), (HistoryFormatError,), HISTORY_GENERATORS
    ),
    "history-jepsen-log": Target(
        "history-jepsen-log", _history(parse_jepsen_log), (HistoryFormatError,), HISTORY_GENERATORS
    ),
    "history-jsonl": Target(
        "history-jsonl", _history(parse_jsonl), (HistoryFormatError,), HISTORY_GENERATORS
    ),
    "shard-reader": Target(
        "shard-reader",
        _read_shard,
        (ShardError,),
        {"mutated-shard": gen_mutated_shard, "random-bytes": gen_random_bytes},
    ),
}


# --------------------------------------------------------------------------- running


class FuzzFailure(AssertionError):
    """An input made a target misbehave; the message says how, and where the input is."""


@dataclass
class Stats:
    """What a fuzz run tried and what came out."""

    inputs: int = 0
    documented_errors: int = 0
    accepted: int = 0
    max_seconds: float = 0.0
    max_peak: int = 0
    total_seconds: float = 0.0
    by_error: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)

    def add(
        self, seconds: float, peak: int, error: BaseException | None, outcome: object = None
    ) -> None:
        self.inputs += 1
        self.total_seconds += seconds
        self.max_seconds = max(self.max_seconds, seconds)
        self.max_peak = max(self.max_peak, peak)
        if error is None:
            self.accepted += 1
            if isinstance(outcome, str):
                self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
        else:
            self.documented_errors += 1
            name = type(error).__name__
            self.by_error[name] = self.by_error.get(name, 0) + 1

    def merge(self, other: Stats) -> None:
        self.inputs += other.inputs
        self.documented_errors += other.documented_errors
        self.accepted += other.accepted
        self.total_seconds += other.total_seconds
        self.max_seconds = max(self.max_seconds, other.max_seconds)
        self.max_peak = max(self.max_peak, other.max_peak)
        for name, count in other.by_error.items():
            self.by_error[name] = self.by_error.get(name, 0) + count
        for name, count in other.by_outcome.items():
            self.by_outcome[name] = self.by_outcome.get(name, 0) + count

    def line(self, name: str) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.by_error.items())) or "none"
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_outcome.items()))
        return (
            f"fuzz {name}: {self.inputs} inputs, {self.accepted} accepted"
            f"{f' ({outcomes})' if outcomes else ''}, "
            f"{self.documented_errors} documented errors ({errors}), 0 escaped; "
            f"slowest {self.max_seconds * 1000:.1f} ms (limit {TIME_LIMIT * 1000:.0f}), "
            f"peak {self.max_peak / 1024 / 1024:.2f} MB (limit {MEMORY_LIMIT // 2**20})"
        )


def _save(data: bytes, target: str, failures_dir: Path | None) -> str:
    if failures_dir is None:
        return f"input ({len(data)} bytes): {data[:200]!r}"
    failures_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.blake2b(data, digest_size=8).hexdigest()
    path = failures_dir / f"{target}-{name}.bin"
    path.write_bytes(data)
    return f"input saved to {path} ({len(data)} bytes)"


def run_input(
    target: Target,
    data: bytes,
    workdir: Path,
    stats: Stats,
    *,
    measure_memory: bool = True,
    check_time: bool = True,
    failures_dir: Path | None = None,
) -> None:
    """Run one input; record its time and peak memory; raise FuzzFailure on misbehaviour.

    With ``measure_memory`` the time includes tracemalloc's overhead (3-10x on
    allocation-heavy inputs), which only makes the time check stricter; for big
    inputs measure time and memory in two runs (``check_time=False`` for the
    memory run).
    """
    tracing = measure_memory and tracemalloc.is_tracing()
    if measure_memory and not tracing:
        tracemalloc.start()
    if measure_memory:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    error: BaseException | None = None
    outcome: object = None
    start = time.perf_counter()
    try:
        outcome = target.run(data, workdir)
    except target.allowed as exc:
        error = exc
    except Exception as exc:
        raise FuzzFailure(
            f"{target.name}: {type(exc).__name__} escaped ({exc}); "
            f"{_save(data, target.name, failures_dir)}"
        ) from exc
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base if measure_memory else 0
        if measure_memory and not tracing:
            tracemalloc.stop()
    stats.add(seconds, peak, error, outcome)
    if check_time and seconds > TIME_LIMIT:
        raise FuzzFailure(
            f"{target.name}: one input took {seconds:.2f} s (limit {TIME_LIMIT} s); "
            f"{_save(data, target.name, failures_dir)}"
        )
    if peak > MEMORY_LIMIT:
        raise FuzzFailure(
            f"{target.name}: one input peaked at {peak / 2**20:.1f} MB "
            f"(limit {MEMORY_LIMIT // 2**20} MB); {_save(data, target.name, failures_dir)}"
        )


# --------------------------------------------------------------------------- big inputs


READER = ("cassette-reader", "cli")
HISTORY = ("history-edn", "history-jepsen-log", "history-jsonl")


@functools.cache
def pathological_inputs() -> dict[str, tuple[tuple[str, ...], bytes]]:
    """Large hand-made hostile inputs: name -> (names of the targets to run, bytes)."""
    head = seed_cassettes()[1]
    deep = b"\x81\xa1k" + b"\x91" * 100_000 + b"\xc0"
    ext_chain = msgpack.packb(None)
    for _ in range(300):
        ext_chain = msgpack.packb(msgpack.ExtType(codec.TUPLE, ext_chain))
    full = seed_cassettes()[0]
    return {
        "bin32 frame claiming 4 GiB": (READER, head + b"\x92\xc6\xff\xff\xff\xff"),
        "bin32 frame claiming 64 MiB+1": (READER, head + b"\x92\xc6\x04\x00\x00\x01"),
        "2 MiB of zero bytes after header": (READER, head + b"\x00" * (2 << 20)),
        "10,000 empty-map records": (
            ("cassette-reader",),
            _chain(header_bytes(), [b"\x80"] * 10_000),
        ),
        "payload nested 100,000 deep": (READER, _chain(header_bytes(), [deep])),
        "ext values nested 300 deep": (
            READER,
            _chain(header_bytes(), [b"\x81\xa1k" + ext_chain]),
        ),
        "array32 claiming 2^32-1 items": (
            READER,
            _chain(header_bytes(), [b"\x81\xa1k\xdd\xff\xff\xff\xff"]),
        ),
        "map32 claiming 2^32-1 pairs": (
            READER,
            _chain(header_bytes(), [b"\xdf\xff\xff\xff\xff"]),
        ),
        "256 KiB payload of nil": (
            READER,
            _chain(header_bytes(), [b"\x81\xa1k\xdd\x00\x04\x00\x00" + b"\xc0" * (1 << 18)]),
        ),
        "cassette with 1,000 copies of a torn tail": (READER, full + full[-30:] * 1000),
        "CLI on 500 records": (("cli",), _chain(header_bytes(), [seed_payloads()[0]] * 500)),
        "EDN nested 200,000 deep": (HISTORY, b"[" * 200_000),
        "EDN 900,000-digit number": (HISTORY, b"1" * 900_000),
        "JSON 300,000-deep value": (HISTORY, b'{"value": ' + b"[" * 300_000),
        "200,000 newlines": (HISTORY, b"\n" * 200_000),
        "line over the 1 MiB limit": (HISTORY, b'"' + b"a" * (1 << 20) + b'"'),
        "10,000 log events": (
            HISTORY,
            b"INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
            b"INFO  jepsen.util - 0\t:ok\t:read\t1\n" * 5_000,
        ),
        "JSON 5,000-digit ints": (HISTORY, b'{"process": ' + b"7" * 5000 + b"}\n"),
    }
