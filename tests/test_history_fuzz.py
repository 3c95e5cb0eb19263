"""Fuzzing the history parsers: whatever the input, only HistoryFormatError escapes,
quickly; and the writers round-trip every value the parsers can produce."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay.history import (
    Event,
    FrozenDict,
    HistoryFormatError,
    Keyword,
    detect_format,
    dump_edn,
    dump_jsonl,
    parse_edn,
    parse_jepsen_log,
    parse_jsonl,
)

PARSERS: list[Callable[..., list[Event]]] = [parse_edn, parse_jepsen_log, parse_jsonl]

# Generous: a parse of a few kilobytes takes well under a millisecond; the
# deadline only has to catch super-linear blow-ups, on a loaded 2-core machine.
FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)

_SEEDS = [
    "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 0\t:ok\t:cas\t[1 2]\n"
    "INFO  jepsen.util - 1\t:invoke\t:write\t3\nINFO  jepsen.util - 1\t:info\t:write\t:timed-out\n",
    "[{:process 0, :type :invoke, :f :txn, :value [[:read :x nil]], :time 5}\n"
    ' ; comment\n {:process 0, :type :ok, :f :txn, :value [[:read :x 0]] :error #{"a" \\b}}\n'
    " {:process :nemesis, :type :info, :f :start, :value {:a (1 2.5 -3N)}}]\n",
    '{"process": 0, "type": "invoke", "f": "w", "value": [1, {"$kw": "k"}], "key": "a"}\n'
    '{"process": 0, "type": "ok", "f": "w", "value": {"$set": [1]}, "time": 5}\n',
]

_ALPHABET = st.sampled_from(list('[](){}#_;:,"\\ \t\n\r0123456789-+.eENMabcnilux$\x00\xff😀'))


def _parse_only_format_errors(parser: Callable[..., list[Event]], text: str | bytes) -> None:
    start = time.perf_counter()
    error: HistoryFormatError | None = None
    try:
        events = parser(text)
    except HistoryFormatError as exc:
        error = exc
    else:
        assert [e.index for e in events] == list(range(len(events)))
    assert time.perf_counter() - start < 2.0
    if error is not None:
        # The message always names where: "<file>:<line>: ..." or "<file>: ...".
        assert str(error).startswith(error.file)
        assert error.line is None or error.line >= 1


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(text=st.text(alphabet=_ALPHABET, max_size=300))
def test_random_text(parser: Callable[..., list[Event]], text: str) -> None:
    _parse_only_format_errors(parser, text)
    detect_format(text)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(parser: Callable[..., list[Event]], data: bytes) -> None:
    _parse_only_format_errors(parser, data)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            text = (
                text[:pos] + draw(st.text(alphabet=_ALPHABET, min_size=1, max_size=5)) + text[pos:]
            )
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)) :]
        elif action == "replace":
            text = text[:pos] + draw(_ALPHABET) + text[pos + 1 :]
        else:
            end = min(len(text), pos + draw(st.integers(1, 40)))
            text = text[:end] + text[pos:end] + text[end:]
    return text


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(text=_mutated())
def test_mutated_histories(parser: Callable[..., list[Event]], text: str) -> None:
    _parse_only_format_errors(parser, text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000,
        "{" * 200_000,
        "#{" * 100_000,
        "#_" * 200_000,
        '"' + "\\" * 500_001,
        '"' + "a" * 900_000,
        ":" * 900_000,
        "1" * 900_000,
        '{"value": ' + "[" * 300_000,
        "INFO  jepsen.util - 0 :invoke :read " + "[" * 300_000,
        "INFO  jepsen.util - 0 :invoke :read nil\n" * 30_000,
        "\n" * 1_000_000,
    ],
    ids=lambda t: f"{t[:12]!r}x{len(t)}",
)
@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
def test_pathological_inputs_are_fast(parser: Callable[..., list[Event]], text: str) -> None:
    _parse_only_format_errors(parser, text)


# --------------------------------------------------------------------------- round trips

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=10),
    st.from_regex(r"[a-z][a-z0-9\-]{0,6}(/[a-z]{1,3})?", fullmatch=True).map(Keyword),
)
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(inner.filter(lambda v: not isinstance(v, float)), max_size=4),
        st.dictionaries(_scalars.filter(lambda v: not isinstance(v, float)), inner, max_size=3).map(
            FrozenDict
        ),
    ),
    max_leaves=6,
)


@st.composite
def _histories(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    pending: dict[int, str] = {}
    for _ in range(draw(st.integers(0, 8))):
        process = draw(st.integers(0, 3))
        f = pending.get(process) or draw(st.sampled_from(["read", "write", "cas", "txn"]))
        etype = "invoke" if process not in pending else draw(st.sampled_from(["ok", "fail"]))
        if etype == "invoke":
            pending[process] = f
        else:
            del pending[process]
        events.append(
            Event(
                len(events),
                process,
                etype,  # type: ignore[arg-type]
                f,
                draw(_values),
                time=draw(st.none() | st.integers(0, 2**62)),
                key=draw(st.none() | _scalars.filter(lambda v: v is not None)),
                error=draw(st.none() | _values),
                extra=tuple(
                    draw(st.dictionaries(st.sampled_from(["node", "debug"]), _values)).items()
                ),
            )
        )
    return events


@settings(
    max_examples=80,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(events=_histories())
def test_writers_round_trip_any_parsed_value(events: list[Event]) -> None:
    assert parse_jsonl(dump_jsonl(events)) == events
    assert parse_edn(dump_edn(events)) == events
