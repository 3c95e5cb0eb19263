"""History file formats: the parsers on the real corpus and on every error path, and the writers."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.history import (
    MAX_DEPTH,
    MAX_LINE_LENGTH,
    Event,
    FrozenDict,
    HistoryFormatError,
    Keyword,
    detect_format,
    dump_edn,
    dump_jsonl,
    load,
    parse_edn,
    parse_jepsen_log,
    parse_jsonl,
    read_edn,
    validate,
)

# Same location as the `linearizability_data` fixture (tests/conftest.py); read at
# collection time to parametrize one test per corpus file.
_MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/linearizability/MANIFEST.tsv"
_ROWS: list[dict[str, str]] = (
    list(csv.DictReader(_MANIFEST.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
    if _MANIFEST.is_file()
    else []
)


# --------------------------------------------------------------------------- the corpus


@pytest.mark.parametrize("row", _ROWS, ids=[r["path"] for r in _ROWS])
def test_every_corpus_file_parses_and_round_trips(
    linearizability_data: Path, row: dict[str, str]
) -> None:
    path = linearizability_data / row["path"]
    events = load(path, format=row["format"])  # type: ignore[arg-type]
    assert load(path) == events, "auto-detection must pick the manifest's format"
    assert detect_format(path.read_text(encoding="utf-8")) == row["format"]
    assert events, "every corpus file has events"
    assert [e.index for e in events] == list(range(len(events)))
    lines = [e.line for e in events]
    assert all(line is not None for line in lines)
    assert lines == sorted(lines)
    validate(events)
    # Writers: both formats read back to the same events, and JSONL is stable.
    text = dump_jsonl(events)
    assert parse_jsonl(text) == events
    assert parse_edn(dump_edn(events)) == events
    assert dump_jsonl(parse_edn(dump_edn(events))) == text
    if row["format"] == "jepsen-log":
        n_event_lines = sum(
            1 for line in path.read_text().splitlines() if line.startswith("INFO  jepsen.util")
        )
        assert len(events) == n_event_lines
        assert all(type(e.process) is int and e.f in ("read", "write", "cas") for e in events)
    if row["model"] == "kv":
        assert all(isinstance(e.key, str) for e in events)


def test_corpus_manifest_is_not_empty(linearizability_data: Path) -> None:
    # Guards the parametrization above: an unreadable manifest would run nothing.
    assert len(_ROWS) >= 100


def test_etcd_log_events(linearizability_data: Path) -> None:
    events = parse_jepsen_log(linearizability_data / "porcupine/etcd/etcd_000.log")
    assert events[:3] == [
        Event(0, 0, "invoke", "read", None),
        Event(1, 3, "invoke", "read", None),
        Event(2, 2, "invoke", "write", 4),
    ]
    assert events[0].line == 1
    cas = next(e for e in events if e.f == "cas")
    assert cas.value == (3, 0)
    timed_out = next(e for e in events if e.type == "info")
    assert timed_out.value == Keyword("timed-out")


def test_kv_edn_events(linearizability_data: Path) -> None:
    events = parse_edn(linearizability_data / "porcupine/kv/c01-ok.txt")
    assert events[0] == Event(0, 0, "invoke", "append", "x 0 0 y", key="0")
    assert events[1] == Event(1, 0, "ok", "append", "x 0 0 y", key="0")
    assert {e.f for e in events} <= {"get", "put", "append"}


def test_knossos_files(linearizability_data: Path) -> None:
    base = linearizability_data / "knossos"
    multi = parse_edn(base / "multi-register/good/multi-register.edn")
    assert multi[0] == Event(
        0, 3, "invoke", "txn", ((Keyword("read"), Keyword("x"), None),), time=7686455705
    )
    assert multi[0].line == 2  # line 1 is a comment; the map spans lines 2-6
    assert multi[1].line == 7
    nemesis = [e for e in multi if e.process == "nemesis"]
    assert nemesis
    assert all(e.type == "info" for e in nemesis)
    assert multi[-1].value == "fully connected"
    failure = parse_edn(base / "cas-register/bad/immediate-failure.edn")
    assert failure[2].error == (Keyword("temporarily-unavailable"), None)
    assert failure[2].type == "fail"
    # A list instead of a vector, with comments between the ops.
    rethink = parse_edn(base / "cas-register/bad/rethink-fail-minimal.edn")
    assert [e.line for e in rethink] == [1, 2, 4, 5, 7, 8, 12, 13]
    # A missing comma between entries (commas are whitespace in EDN).
    bad = parse_edn(base / "cas-register/bad/bad-analysis.edn")
    assert bad[-4].process == 22


# --------------------------------------------------------------------------- jepsen-log


def _log(*rows: str) -> str:
    return "".join(f"INFO  jepsen.util - {row}\n" for row in rows)


def test_log_fields_split_on_any_whitespace_and_other_lines_are_ignored() -> None:
    text = (
        "2017-01-01 INFO  jepsen.core - Running test\n"
        "\n"
        "INFO  jepsen.util - Relative time begins now\n"
        "INFO  jepsen.util - 0 :invoke :cas [1 2]\n"
        "INFO  jepsen.util - 0\t:ok   \t:cas\t[1 2]\n"
        "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 1\t:fail\t:read\t:timed-out\tconnection refused\n"
    )
    events = parse_jepsen_log(text)
    assert events == [
        Event(0, 0, "invoke", "cas", (1, 2)),
        Event(1, 0, "ok", "cas", (1, 2)),
        Event(2, "nemesis", "info", "start", None),
        Event(3, 1, "invoke", "read", None),
        Event(4, 1, "fail", "read", Keyword("timed-out"), error="connection refused"),
    ]
    assert [e.line for e in events] == [4, 5, 6, 7, 8]


def test_log_crlf_and_strings() -> None:
    events = parse_jepsen_log('INFO  jepsen.util - 0\t:invoke\t:put\t"a b"\r\n')
    assert events[0].value == "a b"


def test_empty_log_is_an_empty_history() -> None:
    assert parse_jepsen_log("") == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x1\t:invoke\t:read\tnil", None),  # not an event line: ignored
        ("0\t:invok\t:read\tnil", "type ':invok' must be one of :invoke, :ok, :fail, :info"),
        ("0\tinvoke\t:read\tnil", None),  # no ':' on the type: not an event line
        ("0\t:invoke\tread\tnil", "operation 'read' must be a keyword"),
        ("0\t:invoke", "needs '<process> <type> <f> <value>'"),
        ("0\t:invoke\t:read", "no value after :read (write nil when there is none)"),
        ("0\t:invoke\t:read\t[1 2", "never closed"),
        ("0\t:invoke\t:read\tfoo", "unexpected symbol 'foo'"),
        ('0\t:invoke\t:read\t"abc', "unterminated string"),
        (":ne$mesis\t:invoke\t:read\tnil", "process ':ne$mesis' must be an integer or a keyword"),
    ],
)
def test_log_malformed_event_lines(line: str, message: str | None) -> None:
    text = _log("5\t:invoke\t:write\t1", "5\t:ok\t:write\t1", line)
    if message is None:
        assert len(parse_jepsen_log(text, name="x.log")) == 2
        return
    with pytest.raises(HistoryFormatError) as info:
        parse_jepsen_log(text, name="x.log")
    assert info.value.file == "x.log"
    assert info.value.line == 3
    assert message in info.value.reason
    assert str(info.value).startswith("x.log:3: ")


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        (["0 :invoke :read nil", "0 :invoke :write 1"], 2, "still pending"),
        (["0 :ok :read nil"], 1, "has no pending invoke"),
        (
            ["0 :invoke :read nil", "0 :ok :write 1"],
            2,
            "its pending op, invoked at line 1, is :read",
        ),
        (
            ["0 :invoke :write 1", "0 :info :write :timed-out", "0 :invoke :read nil"],
            3,
            "invokes again after its :info at line 2",
        ),
    ],
)
def test_log_process_sequence_errors(rows: list[str], line: int, message: str) -> None:
    with pytest.raises(HistoryFormatError) as info:
        parse_jepsen_log(_log(*rows), name="seq.log")
    assert (info.value.file, info.value.line) == ("seq.log", line)
    assert message in info.value.reason
    # check=False skips the sequence checks (for tools that repair histories).
    assert len(parse_jepsen_log(_log(*rows), check=False)) == len(rows)


# --------------------------------------------------------------------------- EDN


def test_edn_values() -> None:
    text = (
        "; a comment\n"
        '{:process 0, :type :invoke, :f :w, :value [1 -2 3N 1.5 -0.25e2 "a\\"b\\n\\u00e9" '
        '\\a \\newline \\u0041 true false nil :k/x #{1 2} {:a 1, "b" [2]} (3 4) #_ :gone]}\n'
    )
    (event,) = parse_edn(text)
    assert event.value == (
        1,
        -2,
        3,
        1.5,
        -25.0,
        'a"b\né',
        "a",
        "\n",
        "A",
        True,
        False,
        None,
        Keyword("k/x"),
        frozenset({1, 2}),
        FrozenDict({Keyword("a"): 1, "b": (2,)}),
        (3, 4),
    )
    assert event.line == 2
    hash(event.value)  # parsed values are hashable


def test_edn_one_per_line_vector_and_list_forms_agree() -> None:
    ops = [
        "{:process 0, :type :invoke, :f :read, :value nil}",
        '{:process 0, :type :ok, :f :read, :value 3, :time 10, :index 1, :node "n1"}',
    ]
    per_line = parse_edn("\n".join(ops))
    assert per_line == parse_edn("[" + "\n ".join(ops) + "]")
    assert per_line == parse_edn("(" + "\n".join(ops) + "\n)\n; trailing comment\n")
    assert per_line[1].time == 10
    assert per_line[1].extra == (("node", "n1"),)
    assert [e.line for e in per_line] == [1, 2]


def test_edn_discard_of_an_op_and_empty_inputs() -> None:
    text = "#_{:process 9} {:process 0, :type :invoke, :f :read}"
    (event,) = parse_edn(text)
    assert event.value is None  # :value may be absent
    assert parse_edn("") == []
    assert parse_edn("; only a comment\n") == []
    assert parse_edn("[]") == []


def test_edn_nemesis_ops_are_kept_and_not_sequence_checked() -> None:
    text = (
        "{:process :nemesis, :type :info, :f :start, :value nil}\n"
        '{:process :nemesis, :type :info, :f :start, :value "partitioned"}\n'
    )
    events = parse_edn(text)
    assert [e.process for e in events] == ["nemesis", "nemesis"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[{:process 0, :type :invoke, :f :read}\n", 1, "'[' opened here is never closed"),
        ("[{:process 0\n :type :invoke, :f :read)]", 2, "')' closes '{' opened on line 1"),
        ("]", 1, "unexpected ']'"),
        ('{:process 0, :type :invoke, :f :w, :value "abc}\n', 1, "unterminated string"),
        ('{:process 0, :type :invoke, :f :w, :value "a\\qb"}', 1, "unknown string escape"),
        ("{:process 0, :type :invoke, :f}", 1, "key without a value"),
        ("{:process 0, :process 1, :type :invoke, :f :w}", 1, "duplicate key"),
        ("{:process 0, :type :invoke, :f :w, :value #{1 1}}", 1, "duplicate element"),
        ('{:process 0, :type :invoke, :f :w, :value #inst "2020"}', 1, "tagged literal"),
        ("{:process 0, :type :invoke, :f :w, :value foo}", 1, "unexpected symbol 'foo'"),
        ("{:process 0, :type :invoke, :f :w, :value 1.5M}", 1, "unsupported number"),
        ("{:process 0, :type :invoke, :f :w, :value 1/2}", 1, "unsupported number"),
        ("{:process 0, :type :invoke, :f :w, :value 1e999}", 1, "unsupported number"),
        ("{:process 0, :type :invoke, :f :w, :value 01}", 1, "unsupported number"),
        ("{:process 0, :type :invoke, :f :w, :value :a$b}", 1, "malformed keyword"),
        ("{:process 0, :type :invoke, :f :w, :value \\foo}", 1, "unknown character literal"),
        ("{:process 0, :type :invoke, :f :w, :value #_}", 1, "'#_' must be followed"),
        ("{:process 0, :type :invoke, :f :w}\n#_", 2, "'#_' must be followed"),
        ("{:process 0, :type :invoke, :f :w, :value @x}", 1, "unexpected symbol '@x'"),
        ("[1]", 1, "expected an op map"),
        ("\n\n:read", 3, "expected an op map"),
        ('{"process" 0, :type :invoke, :f :w}', 1, "op map keys must be keywords"),
        ("{:type :invoke, :f :w}", 1, "op has no :process"),
        ("{:process 0, :f :w}", 1, "op has no :type"),
        ("{:process 0, :type :invoke}", 1, "op has no :f"),
        ("{:process 0, :type :invok, :f :w}", 1, ":type is :invok; it must be one of"),
        ('{:process 0, :type "invoke", :f :w}', 1, ":type must be a keyword"),
        ('{:process 0, :type :invoke, :f "w"}', 1, ":f must be a keyword"),
        ('{:process "0", :type :invoke, :f :w}', 1, ":process must be an integer"),
        ("{:process 1.5, :type :invoke, :f :w}", 1, ":process must be an integer"),
        ("{:process 0, :type :invoke, :f :w, :time 1.5}", 1, ":time must be an integer"),
        ("{:process 0, :type :invoke, :f :w, :index -1}", 1, ":index must be a non-negative"),
        ("[{:process 0, :type :invoke, :f :w}] {:process 1}", 1, "after the history's closing"),
        ('{:process 0, :type :invoke, :f :w, :value "\\ud800"}', 1, "unpaired UTF-16"),
        ("{:process 0, :type :invoke, :f :w, :value 1" + "0" * 5000 + "}", 1, "too long"),
    ],
)
def test_edn_malformed(text: str, line: int, message: str) -> None:
    with pytest.raises(HistoryFormatError) as info:
        parse_edn(text, name="h.edn")
    assert (info.value.file, info.value.line) == ("h.edn", line), info.value
    assert message in info.value.reason


def test_edn_nesting_is_bounded() -> None:
    deep_ok = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    (event,) = parse_edn("{:process 0, :type :invoke, :f :w, :value " + deep_ok + "}")
    assert isinstance(event.value, tuple)
    too_deep = "[" * 100_000
    with pytest.raises(HistoryFormatError, match=f"nest deeper than {MAX_DEPTH}"):
        parse_edn("{:process 0, :type :invoke, :f :w, :value " + too_deep + "}")
    with pytest.raises(HistoryFormatError, match=f"nest deeper than {MAX_DEPTH}"):
        read_edn(too_deep)


def test_lines_are_bounded() -> None:
    long_line = "{:process 0, :type :invoke, :f :w, :value " + "1 " * MAX_LINE_LENGTH + "}"
    text = "{:process 1, :type :invoke, :f :w}\n" + long_line
    with pytest.raises(HistoryFormatError) as info:
        parse_edn(text, name="big.edn")
    assert info.value.line == 2
    assert "over the limit" in info.value.reason
    for parser in (parse_jsonl, parse_jepsen_log):
        with pytest.raises(HistoryFormatError, match="over the limit"):
            parser("x" * (MAX_LINE_LENGTH + 1))


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "h.edn"
    path.write_bytes(b"{:process 0, :type :invoke, :f :w}\n{:process 0, :value \xff}\n")
    for fmt in ("auto", "jepsen-edn"):
        with pytest.raises(HistoryFormatError) as info:
            load(path, format=fmt)  # type: ignore[arg-type]
        assert (info.value.file, info.value.line) == (str(path), 2)
        assert "not valid UTF-8" in info.value.reason


# --------------------------------------------------------------------------- JSON lines


def test_jsonl_values_and_tags() -> None:
    text = (
        '{"process": 0, "type": "invoke", "f": "w", "value": [1, {"$kw": "k"}], "key": "a"}\n'
        "\n"
        '{"process": 0, "type": "ok", "f": "w", "value": {"$set": [1, 2]}, "time": 5, "x": 1}\n'
        '{"process": "nemesis", "type": "info", "f": "kill", '
        '"value": {"$map": [[1, "one"], [{"$kw": "a"}, null]]}, "error": {"a": [true]}}\r\n'
    )
    events = parse_jsonl(text)
    assert events == [
        Event(0, 0, "invoke", "w", (1, Keyword("k")), key="a"),
        Event(1, 0, "ok", "w", frozenset({1, 2}), time=5, extra=(("x", 1),)),
        Event(
            2,
            "nemesis",
            "info",
            "kill",
            FrozenDict({1: "one", Keyword("a"): None}),
            error=FrozenDict({"a": (True,)}),
        ),
    ]
    assert [e.line for e in events] == [1, 3, 4]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"process": 0, "process": 1}', "duplicate key 'process'"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": NaN}', "NaN is not allowed"),
        ("[1, 2]", "each line must be a JSON object"),
        ('{"type": "invoke", "f": "w"}', "op has no 'process'"),
        ('{"process": true, "type": "invoke", "f": "w"}', "'process' must be an integer"),
        ('{"process": "", "type": "invoke", "f": "w"}', "'process' must be an integer"),
        ('{"process": 0, "type": ":invoke", "f": "w"}', "it must be one of invoke, ok"),
        ('{"process": 0, "type": "invoke", "f": ""}', "'f' must be a non-empty string"),
        ('{"process": 0, "type": "invoke", "f": "w", "time": "1"}', "'time' must be an integer"),
        ('{"process": 0, "type": "invoke", "f": "w", "index": 1.0}', "'index' must be"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": {"$x": 1}}', "reserved"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": {"$kw": 1}}', "keyword name"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": {"$kw": "a b"}}', "keyword name"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": {"$set": 1}}', "needs a list"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": {"$set": [1, 1]}}', "duplicate"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": {"$map": [[1]]}}', "pairs"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": {"$map": [[1, 2], [1, 3]]}}', "dup"),
        ('{"process": 0, "type": "invoke", "f": "w", "value": "\\udc00"}', "unpaired UTF-16"),
        (
            '{"process": 0, "type": "invoke", "f": "w", "value": ' + "[" * 70 + "]" * 70 + "}",
            "nest",
        ),
        ('{"process": 0, "type": "invoke", "f": "w", "value": ' + "[" * 10**5 + "}", "nest"),
    ],
)
def test_jsonl_malformed(line: str, message: str) -> None:
    text = '{"process": 0, "type": "invoke", "f": "w"}\n{"process": 0, "type": "ok", "f": "w"}\n'
    with pytest.raises(HistoryFormatError) as info:
        parse_jsonl(text + line + "\n", name="h.jsonl")
    assert (info.value.file, info.value.line) == ("h.jsonl", 3), info.value
    assert message in info.value.reason


# --------------------------------------------------------------------------- sources and load


def test_sources_text_bytes_path_and_streams(tmp_path: Path) -> None:
    text = "{:process 0, :type :invoke, :f :read, :value nil}\n"
    path = tmp_path / "h.edn"
    path.write_text(text)
    expected = [Event(0, 0, "invoke", "read")]
    assert parse_edn(text) == expected
    assert parse_edn(text.encode()) == expected
    assert parse_edn(path) == expected
    assert parse_edn(io.StringIO(text)) == expected
    with path.open("rb") as fh:
        assert parse_edn(fh) == expected
    with pytest.raises(TypeError, match=r"pass pathlib\.Path"):
        parse_edn(str(path))
    with pytest.raises(HistoryFormatError) as info:
        parse_edn(io.StringIO("[{:process 0"), name="stream-name")
    assert info.value.file == "stream-name"
    with pytest.raises(HistoryFormatError) as info:
        parse_edn(b"\x80")
    assert info.value.file == "<bytes>"


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        ("INFO  jepsen.core - hello\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n", "jepsen-log"),
        ("; comment\n{:process 0, :type :invoke, :f :read}\n", "jepsen-edn"),
        ("\n[{:process 0, :type :invoke, :f :read}]\n", "jepsen-edn"),
        ("{:process 0, :type :invoke, :f :read}\n", "jepsen-edn"),
        ('\n{"process": 0, "type": "invoke", "f": "read"}\n', "jsonl"),
    ],
)
def test_load_detects_the_format(tmp_path: Path, content: str, fmt: str) -> None:
    path = tmp_path / "history.txt"
    path.write_text(content)
    assert detect_format(content) == fmt
    events = load(path)
    assert events == [Event(0, 0, "invoke", "read")]
    assert load(path, format=fmt) == events  # type: ignore[arg-type]


def test_load_empty_and_eventless_files(tmp_path: Path) -> None:
    for content in ("", "\n\n", "INFO  jepsen.core - nothing happened\n"):
        path = tmp_path / "empty.log"
        path.write_text(content)
        assert load(path) == []


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.edn")
    path = tmp_path / "h.jsonl"
    path.write_text('{"process": 0, "type": "invoke", "f": "read"}\n')
    with pytest.raises(ValueError, match="unknown history format 'yaml'"):
        load(path, format="yaml")  # type: ignore[arg-type]
    with pytest.raises(HistoryFormatError) as info:
        load(path, format="jepsen-edn")
    assert info.value.file == str(path)
    assert info.value.line == 1
    path.write_text("garbage that is no format at all\n")
    assert detect_format(path.read_text()) is None
    assert load(path) == []  # no events: an unrecognised log is an empty history


# --------------------------------------------------------------------------- writers


def _rich_events() -> list[Event]:
    return [
        Event(0, 0, "invoke", "txn", ((Keyword("r"), 1, None), [Keyword("w"), 2, 3]), time=1),
        Event(1, 1, "invoke", "put", 'quote " back \\ nl \n tab \t é 😀 \x01', key=("k", 1)),
        Event(2, 0, "ok", "txn", frozenset({1, "a", Keyword("z")}), time=7),
        Event(3, 1, "fail", "put", FrozenDict({1: 2.5, "x": None}), error="boom", key=("k", 1)),
        Event(4, "nemesis", "info", "kill", FrozenDict({"$odd": True}), extra=(("node", "n1"),)),
        Event(5, 2, "invoke", "add", -(10**30)),
        Event(6, 2, "info", "add", False, error=Keyword("timed-out")),
    ]


@pytest.mark.parametrize(("dump", "parse"), [(dump_jsonl, parse_jsonl), (dump_edn, parse_edn)])
def test_writers_round_trip(tmp_path: Path, dump: Any, parse: Any) -> None:
    events = _rich_events()
    text = dump(events)
    assert text.count("\n") == len(events)  # one event per line
    back = parse(text)
    # Lists come back as tuples; everything else is identical.
    assert back[0].value == ((Keyword("r"), 1, None), (Keyword("w"), 2, 3))
    assert back[1:] == events[1:]
    assert [e.line for e in back] == list(range(1, len(events) + 1))
    path = tmp_path / "out"
    assert dump(events, path) == text
    assert path.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary file left


@pytest.mark.parametrize("dump", [dump_jsonl, dump_edn])
def test_writers_reject_unwritable_values(dump: Any) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    events = [Event(0, 0, "invoke", "w", 1), Event(1, 0, "ok", "w", [Opaque()])]
    with pytest.raises(TypeError, match=r"event 1: cannot write a value of type Opaque"):
        dump(events)
    assert "<opaque>" in dump(events, default=repr)
    with pytest.raises(ValueError, match=r"event 0: .*nan"):
        dump([Event(0, 0, "invoke", "w", float("nan"))])
    with pytest.raises(ValueError, match="clashes with a standard field"):
        dump([Event(0, 0, "invoke", "w", extra=(("type", 1),))])
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ValueError, match="nests deeper"):
        dump([Event(0, 0, "invoke", "w", deep)])


def test_edn_writer_rejects_names_that_are_not_keywords() -> None:
    with pytest.raises(ValueError, match="cannot be written as an EDN keyword"):
        dump_edn([Event(0, 0, "invoke", "has space")])
    with pytest.raises(ValueError, match="cannot be written as an EDN keyword"):
        dump_edn([Event(0, 0, "invoke", "w", Keyword("a b"))])


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    dump_jsonl([Event(0, 0, "invoke", "w", 1)], path)
    before = path.read_text()
    with pytest.raises(TypeError):
        dump_jsonl([Event(0, 0, "invoke", "w", object())], path)
    assert path.read_text() == before


def test_validate_checks_indices() -> None:
    with pytest.raises(HistoryFormatError, match="event 5 has index 5, expected 0"):
        validate([Event(5, 0, "invoke", "w")])
