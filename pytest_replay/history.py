"""Jepsen-style operation histories: the recorder and history file formats.

Usable without pytest. The checker lives in ``pytest_replay.linearizability``.

A history is a ``list[Event]`` in real-time order: each operation is an
``invoke`` event followed (later, by the same process) by one completion:
``ok`` (it happened, ``value`` is its result), ``fail`` (it certainly did not
happen) or ``info`` (unknown outcome: it may have happened at any time after
its invoke, or never). An invoke with no completion at the end of the history
is treated exactly like ``info``.

Three file formats are read and two are written, all strictly: a malformed
record raises ``HistoryFormatError`` naming the file, the line and what is
wrong; nothing is guessed. Lines are at most ``MAX_LINE_LENGTH`` characters and
values nest at most ``MAX_DEPTH`` deep, so every parser runs in time and memory
linear in its input.

- ``jepsen-log``: Jepsen's text log (``INFO  jepsen.util - 0\\t:invoke\\t:read\\tnil``).
- ``jepsen-edn``: EDN op maps, one per line or inside one ``[...]`` vector.
- ``jsonl``: one JSON object per line (what ``dump_jsonl`` writes).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeVar, overload

__all__ = [
    "FORMATS",
    "MAX_DEPTH",
    "MAX_LINE_LENGTH",
    "Event",
    "EventType",
    "FrozenDict",
    "History",
    "HistoryFormat",
    "HistoryFormatError",
    "Keyword",
    "Op",
    "OpContext",
    "OpSpan",
    "detect_format",
    "dump_edn",
    "dump_jsonl",
    "format_timeline",
    "load",
    "parse_edn",
    "parse_jepsen_log",
    "parse_jsonl",
    "read_edn",
    "spans",
    "validate",
]

EventType = Literal["invoke", "ok", "fail", "info"]
_EVENT_TYPES: frozenset[str] = frozenset(("invoke", "ok", "fail", "info"))

HistoryFormat = Literal["auto", "jepsen-log", "jepsen-edn", "jsonl"]
FORMATS: tuple[str, ...] = ("jepsen-log", "jepsen-edn", "jsonl")

#: Longest accepted line, in characters. Real histories have lines of a few
#: hundred characters; the cap keeps a corrupted file (one giant line) from
#: being scanned into memory as a single value.
MAX_LINE_LENGTH = 1 << 20
#: Deepest accepted nesting of vectors/maps/sets inside one event's value.
#: The EDN reader recurses once per level; the cap keeps it far from Python's
#: recursion limit whatever the input.
MAX_DEPTH = 64

#: What a parser accepts: the text itself (``str`` or UTF-8 ``bytes``), a path
#: (``pathlib.Path`` or any ``os.PathLike``; a plain ``str`` is always text), or
#: an open file.
Source = str | bytes | os.PathLike[str] | IO[str] | IO[bytes]

_T = TypeVar("_T")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Keyword:
    """An EDN keyword value such as ``:timed-out`` (``Keyword("timed-out")``)."""

    name: str

    def __repr__(self) -> str:
        return ":" + self.name


class FrozenDict(Mapping[Any, Any]):
    """An immutable, hashable mapping: what EDN and JSON maps inside values become.

    Parsed values are always hashable (tuples, ``frozenset``, ``FrozenDict``,
    ``Keyword`` and scalars), so a checker can put them in its states.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()) -> None:
        self._data: dict[Any, Any] = dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a history: an invocation or a completion of an operation.

    ``index`` is the position in the history (index order is real-time order);
    parsers and the recorder guarantee ``events[i].index == i``.
    ``process`` is the client id (an int), or a string such as ``"nemesis"`` for
    ops that are not client operations. ``f`` is the operation name without a
    leading colon (``"read"``, ``"write"``, ``"cas"``, ``"append"``, ``"txn"`` ...).
    ``value`` is the argument on an invoke and the result on an ``ok``; on
    ``fail``/``info`` it is whatever the source wrote (Jepsen repeats the
    argument, or writes ``:timed-out``) and says nothing about a result.
    Vectors and lists are tuples, ``nil`` is ``None``, EDN keywords are
    ``Keyword``, maps are ``FrozenDict`` and sets ``frozenset``.
    ``time`` is in nanoseconds (the recorder: since the history was created).
    ``key`` is the ``:key`` of key-value histories (``None`` when absent).
    ``error`` is the reason of a ``fail``/``info`` (``None`` when absent).
    ``extra`` holds any other keys of the source's op map, in order.
    ``line`` is the 1-based line in the source file (``None`` when recorded);
    it is not part of equality.
    """

    index: int
    process: int | str
    type: EventType
    f: str
    value: Any = None
    time: int | None = None
    key: Any = None
    error: Any = None
    extra: tuple[tuple[str, Any], ...] = ()
    # Not part of equality: an event read back from a file equals the event written.
    line: int | None = field(default=None, compare=False)


class HistoryFormatError(ValueError):
    """A history file (or text) that cannot be read: names the file, line and problem.

    ``str(error)`` is ``"FILE:LINE: what is wrong (what to do)"``; the parts are
    also attributes: ``file``, ``line`` (1-based, ``None`` when not tied to a
    line), ``reason``.
    """

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {reason}")


# --------------------------------------------------------------------------- reading input


def _read_source(source: Source, name: str | None) -> tuple[str, str]:
    """(text, name for messages). Decodes UTF-8 strictly, naming the bad line."""
    data: str | bytes
    if isinstance(source, str):
        if len(source) < 4096 and "\n" not in source and source and os.path.isfile(source):
            # A one-line str that names a file is a mistake, not a history.
            raise TypeError(
                f"{source!r} is a file name, but a str is parsed as history text: "
                "pass pathlib.Path(...) or use pytest_replay.history.load(path)"
            )
        return source, name or "<string>"
    if isinstance(source, bytes):
        data, label = source, name or "<bytes>"
    elif isinstance(source, os.PathLike):
        path = os.fspath(source)
        label = name or path
        with open(path, "rb") as fh:
            data = fh.read()
    else:
        data = source.read()
        label = name or str(getattr(source, "name", "<stream>"))
    if isinstance(data, str):
        return data, label
    try:
        return data.decode("utf-8"), label
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HistoryFormatError(
            label, line, f"not valid UTF-8 ({exc.reason}); history files are UTF-8 text"
        ) from None


def _check_line_lengths(text: str, name: str) -> None:
    if len(text) <= MAX_LINE_LENGTH:
        return
    start = 0
    line = 1
    while True:
        end = text.find("\n", start)
        stop = len(text) if end < 0 else end
        if stop - start > MAX_LINE_LENGTH:
            raise HistoryFormatError(
                name,
                line,
                f"line is {stop - start} characters long, over the limit of {MAX_LINE_LENGTH} "
                "(is this a history file? split huge values over several lines)",
            )
        if end < 0:
            return
        start = end + 1
        line += 1


_DIGITS = frozenset("0123456789")
_UINT = re.compile(r"[0-9]+")


def _lines(text: str) -> list[str]:
    """Lines split on "\n" only (str.splitlines also splits on \u2028, \x1c, ...,
    which may appear inside a JSON or EDN string); a trailing "\r" is dropped."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _no_lone_surrogates(text: str, error: Callable[[str], Exception]) -> str:
    """``text`` with escaped UTF-16 surrogate pairs joined; a lone surrogate is an error
    (it cannot be written back as UTF-8)."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise error("string has an unpaired UTF-16 surrogate escape") from None


def _no_lone_surrogates_in(value: Any, error: Callable[[str], Exception]) -> None:
    if isinstance(value, str):
        _no_lone_surrogates(value, error)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _no_lone_surrogates_in(item, error)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_lone_surrogates_in(k, error)
            _no_lone_surrogates_in(v, error)


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


# --------------------------------------------------------------------------- EDN reader

# One token per match. Strings use the "unrolled loop" form, which is linear
# even on an unterminated string (a nested quantifier would backtrack
# exponentially there).
_EDN_TOKEN = re.compile(
    r"""
    (?P<ws>(?:[\s,]+|;[^\n]*)+)
  | (?P<open>[\[({]|\#\{)
  | (?P<close>[\])}])
  | (?P<discard>\#_)
  | (?P<str>"[^"\\]*(?:\\.[^"\\]*)*")
  | (?P<char>\\(?:u[0-9a-fA-F]{4}|[a-z]+|.))
  | (?P<atom>[^\s,;()\[\]{}"\\]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_EDN_INT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)N?")
_EDN_FLOAT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_EDN_KEYWORD = re.compile(r":[A-Za-z0-9*+!_?<>=.\-][A-Za-z0-9*+!_?<>=.\-/#':]*")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_EDN_STRING_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_EDN_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "b": "\b", "f": "\f"}
_EDN_CHARS = {
    "newline": "\n",
    "space": " ",
    "tab": "\t",
    "return": "\r",
    "formfeed": "\f",
    "backspace": "\b",
}
_EDN_CLOSER = {"[": "]", "(": ")", "{": "}", "#{": "}"}
_KEYWORDS: dict[str, Keyword] = {}  # interned: histories repeat a handful of keywords


def _keyword(name: str) -> Keyword:
    kw = _KEYWORDS.get(name)
    if kw is None:
        if len(_KEYWORDS) < 4096:  # bounded: a hostile file cannot grow it without limit
            kw = _KEYWORDS[name] = Keyword(name)
        else:
            kw = Keyword(name)
    return kw


class _EdnReader:
    """A small strict EDN reader: nil, booleans, ints, floats, strings, chars,
    keywords, vectors and lists (both become tuples), maps (``FrozenDict``) and
    sets (``frozenset``), ``;`` comments and ``#_`` discards. Symbols other
    than nil/true/false, tagged literals and ratios are rejected."""

    __slots__ = ("name", "pos", "text")

    def __init__(self, text: str, name: str, pos: int = 0) -> None:
        self.text = text
        self.name = name
        self.pos = pos

    def error(self, pos: int, reason: str) -> HistoryFormatError:
        return HistoryFormatError(self.name, _line_at(self.text, pos), reason)

    def token(self) -> tuple[str, str, int] | None:
        """The next (kind, text, start) skipping whitespace and comments; None at the end."""
        text = self.text
        while self.pos < len(text):
            m = _EDN_TOKEN.match(text, self.pos)
            if m is None:
                if text[self.pos] == '"':
                    raise self.error(self.pos, "unterminated string (a '\"' is missing)")
                raise self.error(self.pos, f"unexpected character {text[self.pos]!r}")
            self.pos = m.end()
            kind = m.lastgroup
            assert kind is not None
            if kind != "ws":
                return kind, m.group(), m.start()
        return None

    def form(self, kind: str, tok: str, start: int, depth: int) -> Any:
        if kind == "atom":
            return self.atom(tok, start)
        if kind == "str":
            return self.string(tok, start)
        if kind == "open":
            return self.collection(tok, start, depth)
        if kind == "close":
            raise self.error(start, f"unexpected {tok!r} with no matching opening bracket")
        if kind == "char":
            return self.char(tok, start)
        # discard: "#_" drops the next form; the value is the form after it.
        while kind == "discard":
            self.discard(start, depth + 1)
            nxt = self.token()
            if nxt is None:
                raise self.error(start, "nothing follows the form discarded by '#_'")
            kind, tok, start = nxt
        return self.form(kind, tok, start, depth)

    def discard(self, start: int, depth: int) -> None:
        # "#_ #_ a b" discards both: each nested "#_" counts as a nesting level.
        if depth >= MAX_DEPTH:
            raise self.error(start, f"'#_' discards nest deeper than {MAX_DEPTH} levels")
        nxt = self.token()
        if nxt is None or nxt[0] == "close":
            raise self.error(start, "'#_' must be followed by a form to discard")
        self.form(*nxt, depth)

    def collection(self, opener: str, start: int, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            raise self.error(start, f"values nest deeper than {MAX_DEPTH} levels")
        closer = _EDN_CLOSER[opener]
        items: list[Any] = []
        while True:
            tok = self.token()
            if tok is None:
                raise self.error(start, f"{opener!r} opened here is never closed with {closer!r}")
            kind, text, pos = tok
            if kind == "close":
                if text != closer:
                    raise self.error(
                        pos,
                        f"{text!r} closes {opener!r} opened on line "
                        f"{_line_at(self.text, start)}; expected {closer!r}",
                    )
                break
            if kind == "discard":
                self.discard(pos, depth + 1)
                continue
            items.append(self.form(kind, text, pos, depth + 1))
        if opener in ("[", "("):
            return tuple(items)
        # Every parsed value is hashable, so sets and map keys need no check for that.
        if opener == "#{":
            result = frozenset(items)
            if len(result) != len(items):
                raise self.error(start, "set literal has a duplicate element")
            return result
        if len(items) % 2:
            raise self.error(start, "map literal has a key without a value")
        mapping = FrozenDict(zip(items[::2], items[1::2], strict=True))
        if len(mapping) * 2 != len(items):
            raise self.error(start, "map literal has a duplicate key")
        return mapping

    def atom(self, tok: str, start: int) -> Any:
        first = tok[0]
        if first == ":":
            if _EDN_KEYWORD.fullmatch(tok) is None:
                raise self.error(start, f"malformed keyword {tok!r}")
            return _keyword(tok[1:])
        if first in _DIGITS or (first in "+-" and len(tok) > 1 and tok[1] in _DIGITS):
            if _EDN_INT.fullmatch(tok):
                try:
                    return int(tok.rstrip("N"))
                except ValueError:  # over Python's int-from-string digit limit
                    raise self.error(start, f"integer of {len(tok)} digits is too long") from None
            if _EDN_FLOAT.fullmatch(tok):
                value = float(tok)
                if math.isfinite(value):
                    return value
            raise self.error(
                start,
                f"malformed or unsupported number {tok!r} "
                "(integers and decimal floats are supported)",
            )
        if tok == "nil":
            return None
        if tok == "true":
            return True
        if tok == "false":
            return False
        if first == "#":
            raise self.error(
                start,
                f"tagged literal {tok!r} is not supported "
                "(write plain values: strings, numbers, keywords, vectors, maps)",
            )
        raise self.error(
            start,
            f"unexpected symbol {tok!r} (only nil, true and false are "
            "allowed; quote strings and prefix keywords with ':')",
        )

    def string(self, tok: str, start: int) -> str:
        body = tok[1:-1]
        if "\\" not in body:
            return body

        def unescape(m: re.Match[str]) -> str:
            esc = m.group(1)
            if len(esc) == 5:
                return chr(int(esc[1:], 16))
            out = _EDN_ESCAPES.get(esc)
            if out is None:
                raise self.error(start + m.start(), f"unknown string escape '\\{esc}'")
            return out

        out = _EDN_STRING_ESCAPE.sub(unescape, body)
        return _no_lone_surrogates(out, lambda why: self.error(start, why))

    def char(self, tok: str, start: int) -> str:
        body = tok[1:]
        if len(body) == 1:
            return body
        if body[0] == "u" and len(body) == 5 and _HEX4.fullmatch(body, 1):
            return chr(int(body[1:], 16))
        named = _EDN_CHARS.get(body)
        if named is None:
            raise self.error(start, f"unknown character literal {tok!r}")
        return named

    def read_one(self, depth: int = 0) -> tuple[Any, int] | None:
        """The next complete form and its start offset, or None at the end."""
        while (tok := self.token()) is not None:
            kind, text, start = tok
            if kind != "discard":
                return self.form(kind, text, start, depth), start
            self.discard(start, depth + 1)
        return None


def read_edn(text: str, *, name: str = "<string>") -> list[Any]:
    """Every top-level EDN form in ``text`` (strict, bounded; see the module doc)."""
    _check_line_lengths(text, name)
    reader = _EdnReader(text, name)
    out: list[Any] = []
    while (item := reader.read_one()) is not None:
        out.append(item[0])
    return out


# --------------------------------------------------------------------------- events from maps

_KNOWN_KEYS = frozenset(("index", "process", "type", "f", "value", "time", "key", "error"))


def _event(
    name: str,
    line: int,
    index: int,
    fields: Mapping[str, Any],
    *,
    keywords: bool,
) -> Event:
    """Validate one op map (field name -> parsed value) and build its Event.

    ``keywords``: EDN spells process names, types and ``f`` as keywords;
    JSON as strings.
    """

    def bad(reason: str) -> HistoryFormatError:
        return HistoryFormatError(name, line, reason)

    def name_of(field_name: str, value: Any, example: str) -> str:
        if keywords:
            if type(value) is Keyword:
                return value.name
            raise bad(
                f"{_show(field_name, keywords)} must be a keyword such as {example}, "
                f"got {_short(value)}"
            )
        if isinstance(value, str) and value:
            return value
        raise bad(
            f"{_show(field_name, keywords)} must be a non-empty string such as "
            f"{example.lstrip(':')!r}, got {_short(value)}"
        )

    for required in ("process", "type", "f"):
        if required not in fields:
            raise bad(
                f"op has no {_show(required, keywords)} (every op needs "
                f"{_show('process', keywords)}, {_show('type', keywords)} and "
                f"{_show('f', keywords)})"
            )
    process = fields["process"]
    if type(process) is int:
        pass
    elif keywords and type(process) is Keyword:
        process = process.name
    elif not keywords and isinstance(process, str) and process:
        pass
    else:
        raise bad(
            f"{_show('process', keywords)} must be an integer (a client) or "
            f"{':nemesis' if keywords else repr('nemesis')}, got {_short(process)}"
        )
    etype = name_of("type", fields["type"], ":invoke")
    if etype not in _EVENT_TYPES:
        raise bad(
            f"{_show('type', keywords)} is {_short(fields['type'])}; it must be one of "
            + ", ".join((":" if keywords else "") + t for t in ("invoke", "ok", "fail", "info"))
        )
    f = name_of("f", fields["f"], ":read")
    time_ns = fields.get("time")
    if time_ns is not None and type(time_ns) is not int:
        raise bad(
            f"{_show('time', keywords)} must be an integer (nanoseconds), got {_short(time_ns)}"
        )
    source_index = fields.get("index")
    if source_index is not None and (type(source_index) is not int or source_index < 0):
        raise bad(
            f"{_show('index', keywords)} must be a non-negative integer, got {_short(source_index)}"
        )
    extra: tuple[tuple[str, Any], ...] = ()
    if len(fields) > 3:
        extra = tuple((k, v) for k, v in fields.items() if k not in _KNOWN_KEYS)
    return Event(
        index,
        process,
        etype,  # type: ignore[arg-type]  # checked against _EVENT_TYPES above
        f,
        fields.get("value"),
        time_ns,
        fields.get("key"),
        fields.get("error"),
        extra,
        line,
    )


def _show(field_name: str, keywords: bool) -> str:
    return ":" + field_name if keywords else repr(field_name)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _edn_op(name: str, line: int, index: int, form: Any) -> Event:
    if not isinstance(form, FrozenDict):
        raise HistoryFormatError(
            name,
            line,
            f"expected an op map such as {{:process 0, :type :invoke, :f :read, "
            f":value nil}}, got {_short(form)}",
        )
    fields: dict[str, Any] = {}
    for k, v in form.items():
        if type(k) is not Keyword:
            raise HistoryFormatError(name, line, f"op map keys must be keywords, got {_short(k)}")
        fields[k.name] = v
    return _event(name, line, index, fields, keywords=True)


# --------------------------------------------------------------------------- parsers


def parse_edn(source: Source, *, name: str | None = None, check: bool = True) -> list[Event]:
    """Parse a Jepsen EDN history: op maps one after another (usually one per
    line), or all inside one ``[...]`` vector or ``(...)`` list.

    Known keys become ``Event`` fields (``:process :type :f :value :time :key
    :error``; ``:index``, when present, is checked to be an integer but the
    event's ``index`` is its position); other keys go to ``Event.extra``.
    ``check`` also validates that every process is sequential (``validate``).
    """
    text, label = _read_source(source, name)
    _check_line_lengths(text, label)
    reader = _EdnReader(text, label)
    events: list[Event] = []
    line = 1
    counted = 0  # newlines are counted incrementally: text.count over the whole prefix is O(n^2)

    def line_of(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    first = reader.token()
    if first is None:
        return events
    kind, tok, start = first
    if kind == "open" and tok in ("[", "("):
        closer = _EDN_CLOSER[tok]
        while True:
            nxt = reader.token()
            if nxt is None:
                raise reader.error(start, f"{tok!r} opened here is never closed with {closer!r}")
            k, t, pos = nxt
            if k == "close" and t == closer:
                break
            if k == "discard":
                reader.discard(pos, 1)
                continue
            form = reader.form(k, t, pos, 1)
            events.append(_edn_op(label, line_of(pos), len(events), form))
        trailing = reader.token()
        if trailing is not None:
            raise reader.error(
                trailing[2],
                "unexpected content after the history's closing "
                f"{closer!r} (a file holds one vector of ops, or ops one per line)",
            )
    else:
        top: tuple[str, str, int] | None = first
        while top is not None:
            k, t, pos = top
            if k == "discard":
                reader.discard(pos, 0)
            else:
                form = reader.form(k, t, pos, 0)
                events.append(_edn_op(label, line_of(pos), len(events), form))
            top = reader.token()
    if check:
        validate(events, name=label)
    return events


# A Jepsen log line is an event when "jepsen.util" is followed by a process (an
# integer or a :keyword) and a :keyword; other lines of jepsen.util (such as
# "Relative time begins now") and of other loggers are not events.
_LOG_EVENT = re.compile(r"\bjepsen\.util(?:\s+-|:)?\s+(?=(?:[0-9]+|:\S+)\s+:)")
_LOG_FIELDS = re.compile(r"(\S+)\s+(\S+)\s+(\S+)")


def parse_jepsen_log(source: Source, *, name: str | None = None, check: bool = True) -> list[Event]:
    """Parse Jepsen's text log: ``INFO  jepsen.util - <process> <type> <f> <value>``.

    Fields are separated by any whitespace; ``value`` is one EDN form (``nil``,
    ``3``, ``[1 2]``, ``:timed-out``, ...) and any text after it becomes
    ``Event.error``. Lines that are not events are ignored; an event line that
    does not parse is an error.
    """
    text, label = _read_source(source, name)
    _check_line_lengths(text, label)
    events: list[Event] = []
    for lineno, raw in enumerate(_lines(text), 1):
        m = _LOG_EVENT.search(raw)
        if m is None:
            continue
        events.append(_log_event(raw, m.end(), label, lineno, len(events)))
    if check:
        validate(events, name=label)
    return events


def _log_event(raw: str, pos: int, name: str, lineno: int, index: int) -> Event:
    def bad(reason: str) -> HistoryFormatError:
        return HistoryFormatError(name, lineno, reason)

    m = _LOG_FIELDS.match(raw, pos)
    if m is None:
        raise bad("event line needs '<process> <type> <f> <value>' after 'jepsen.util -'")
    process_tok, type_tok, f_tok = m.groups()
    process: int | str
    if _UINT.fullmatch(process_tok):
        process = int(process_tok)
    elif _EDN_KEYWORD.fullmatch(process_tok):
        process = process_tok[1:]
    else:
        raise bad(f"process {process_tok!r} must be an integer or a keyword such as :nemesis")
    if type_tok[1:] not in _EVENT_TYPES or type_tok[0] != ":":
        raise bad(f"type {type_tok!r} must be one of :invoke, :ok, :fail, :info")
    if _EDN_KEYWORD.fullmatch(f_tok) is None:
        raise bad(f"operation {f_tok!r} must be a keyword such as :read")
    # The value is one EDN form; the reader works on this line only, so its
    # errors name the right line.
    reader = _EdnReader(raw, name, m.end())
    try:
        first = reader.read_one()
        if first is None:
            raise bad(f"event has no value after {f_tok} (write nil when there is none)")
    except HistoryFormatError as exc:
        raise bad(exc.reason) from None
    rest = raw[reader.pos :].strip()
    return Event(
        index,
        process,
        type_tok[1:],  # type: ignore[arg-type]  # checked against _EVENT_TYPES above
        f_tok[1:],
        first[0],
        None,
        None,
        rest or None,
        (),
        lineno,
    )


def parse_jsonl(source: Source, *, name: str | None = None, check: bool = True) -> list[Event]:
    """Parse JSON lines as written by ``dump_jsonl``: one op object per line.

    ``{"process": 0, "type": "invoke", "f": "write", "value": 3}``; optional
    ``"index"``, ``"time"``, ``"key"``, ``"error"``; other keys go to
    ``Event.extra``. Blank lines are skipped. Arrays become tuples; objects
    become ``FrozenDict``; ``{"$kw": "name"}``, ``{"$set": [...]}`` and
    ``{"$map": [[k, v], ...]}`` encode keywords, sets and maps with non-string keys.
    """
    text, label = _read_source(source, name)
    _check_line_lengths(text, label)
    events: list[Event] = []
    for lineno, raw in enumerate(_lines(text), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(
                raw, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys
            )
        except RecursionError:
            raise HistoryFormatError(
                label, lineno, f"values nest deeper than {MAX_DEPTH} levels"
            ) from None
        except ValueError as exc:
            raise HistoryFormatError(label, lineno, f"not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise HistoryFormatError(
                label,
                lineno,
                "each line must be a JSON object such as "
                '{"process": 0, "type": "invoke", "f": "read", "value": null}, '
                f"got {_short(obj)}",
            )
        try:
            if "\\u" in raw:  # only an escape can make a lone surrogate
                _no_lone_surrogates_in(obj, _JsonValueError)
            fields = {k: _from_json(v, 1) for k, v in obj.items()}
        except _JsonValueError as exc:
            raise HistoryFormatError(label, lineno, str(exc)) from None
        events.append(_event(label, lineno, len(events), fields, keywords=False))
    if check:
        validate(events, name=label)
    return events


class _JsonValueError(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup!r} in an object")
    return obj


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not allowed (JSON has no NaN or Infinity)")


_JSON_TAGS = ("$kw", "$set", "$map")


def _from_json(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    if depth >= MAX_DEPTH:
        raise _JsonValueError(f"values nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return tuple(_from_json(v, depth + 1) for v in value)
    assert isinstance(value, dict)
    tagged = [k for k in value if k.startswith("$")]
    if not tagged:
        return FrozenDict((k, _from_json(v, depth + 1)) for k, v in value.items())
    if len(value) != 1 or tagged[0] not in _JSON_TAGS:
        raise _JsonValueError(
            f"object keys starting with '$' are reserved for {', '.join(_JSON_TAGS)} "
            f"(each alone in its object), got {_short(sorted(value))}"
        )
    tag, body = tagged[0], value[tagged[0]]
    if tag == "$kw":
        if not isinstance(body, str) or _EDN_KEYWORD.fullmatch(":" + body) is None:
            raise _JsonValueError(f'{{"$kw": ...}} needs a keyword name string, got {_short(body)}')
        return _keyword(body)
    if not isinstance(body, list):
        raise _JsonValueError(f'{{"{tag}": ...}} needs a list, got {_short(body)}')
    items = [_from_json(v, depth + 1) for v in body]
    if tag == "$set":
        result = frozenset(items)
        if len(result) != len(items):
            raise _JsonValueError('{"$set": [...]} has a duplicate element')
        return result
    if not all(isinstance(p, tuple) and len(p) == 2 for p in items):
        raise _JsonValueError('{"$map": [...]} needs a list of [key, value] pairs')
    mapping = FrozenDict(items)
    if len(mapping) != len(items):
        raise _JsonValueError('{"$map": [...]} has a duplicate key')
    return mapping


def detect_format(text: str) -> str | None:
    """``"jepsen-log"``, ``"jepsen-edn"`` or ``"jsonl"`` from the content; None when
    the text has no events at all (empty, blank or only non-event log lines)."""
    for raw in _lines(text):
        line = raw.strip()
        if not line:
            continue
        if line[0] in "[(;":
            return "jepsen-edn"
        if line[0] == "{":
            rest = line[1:].lstrip()
            return "jsonl" if rest[:1] in ('"', "}") else "jepsen-edn"
        if _LOG_EVENT.search(line) is not None:
            return "jepsen-log"
    return None


_PARSERS: dict[str, Callable[..., list[Event]]] = {
    "jepsen-log": parse_jepsen_log,
    "jepsen-edn": parse_edn,
    "jsonl": parse_jsonl,
}


def load(path: str | os.PathLike[str], format: HistoryFormat = "auto") -> list[Event]:
    """Read a history file. ``format="auto"`` looks at the content: a line
    starting with ``{"`` is JSON lines, ``[``, ``(``, ``;`` or ``{:`` is EDN, a
    ``jepsen.util`` event line is the Jepsen log. A file with no events (empty,
    or only other log lines) is an empty history.

    Raises ``OSError`` when the file cannot be read and ``HistoryFormatError``
    when it cannot be parsed.
    """
    label = os.fspath(path)
    if format != "auto" and format not in _PARSERS:
        raise ValueError(
            f"unknown history format {format!r}; use one of auto, " + ", ".join(FORMATS)
        )
    with open(label, "rb") as fh:
        data = fh.read()
    text, label = _read_source(data, label)
    fmt = detect_format(text) if format == "auto" else format
    if fmt is None:
        return []
    return _PARSERS[fmt](text, name=label)


# --------------------------------------------------------------------------- validation


def validate(events: Iterable[Event], *, name: str = "<history>") -> None:
    """Check that the history is well formed, else raise ``HistoryFormatError``.

    Indices are ``0, 1, 2, ...``. Every client process (an int) is sequential:
    an invoke is followed by one completion of the same ``f`` before the
    process invokes again, a completion has a pending invoke, and a process
    never invokes again after an ``info`` completion (it crashed). Processes
    named by strings (the nemesis) are not clients and are not checked.
    """
    pending: dict[int, Event] = {}
    crashed: dict[int, Event] = {}
    for position, ev in enumerate(events):
        where = ev.line if ev.line is not None else None
        label = f"event {ev.index}" if where is None else f"line {where}"
        if ev.index != position:
            raise HistoryFormatError(
                name,
                where,
                f"{label} has index {ev.index}, expected "
                f"{position} (indices count events from 0 in order)",
            )
        if type(ev.process) is not int:
            continue
        open_ev = pending.get(ev.process)
        if ev.type == "invoke":
            if open_ev is not None:
                raise HistoryFormatError(
                    name,
                    where,
                    (
                        f"process {ev.process} invokes :{ev.f} while its :{open_ev.f} invoked at "
                        f"{_where(open_ev)} is still pending (a process runs one op at a time: "
                        "complete it with :ok, :fail or :info first)"
                    ),
                )
            gone = crashed.get(ev.process)
            if gone is not None:
                raise HistoryFormatError(
                    name,
                    where,
                    (
                        f"process {ev.process} invokes again after its :info at {_where(gone)} "
                        "(an :info op may still take effect, so that process crashed and never "
                        "invokes again; give its replacement a new process id, as Jepsen does)"
                    ),
                )
            pending[ev.process] = ev
        elif open_ev is None:
            raise HistoryFormatError(
                name,
                where,
                (
                    f"process {ev.process} completes :{ev.f} with :{ev.type} but has no pending "
                    "invoke (every completion follows an :invoke by the same process)"
                ),
            )
        elif open_ev.f != ev.f:
            raise HistoryFormatError(
                name,
                where,
                (
                    f"process {ev.process} completes :{ev.f} but its pending op, invoked at "
                    f"{_where(open_ev)}, is :{open_ev.f}"
                ),
            )
        else:
            del pending[ev.process]
            if ev.type == "info":
                crashed[ev.process] = ev


def _where(ev: Event) -> str:
    return f"line {ev.line}" if ev.line is not None else f"event {ev.index}"


# --------------------------------------------------------------------------- writers


def dump_jsonl(
    events: Iterable[Event],
    path: str | os.PathLike[str] | None = None,
    *,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """The history as JSON lines (one event per line); also written to ``path``
    when given. ``parse_jsonl(dump_jsonl(events)) == events`` for parsed values
    (tuples, ``FrozenDict``, ``frozenset``, ``Keyword``, scalars); lists come back
    as tuples. A value of another type raises ``TypeError`` naming the event,
    unless ``default`` converts it (``default=repr`` never fails).
    """
    lines: list[str] = []
    for ev in events:
        try:
            obj: dict[str, Any] = {
                "index": ev.index,
                "process": ev.process,
                "type": ev.type,
                "f": ev.f,
                "value": _to_json(ev.value, 0, default),
            }
            if ev.time is not None:
                obj["time"] = ev.time
            if ev.key is not None:
                obj["key"] = _to_json(ev.key, 0, default)
            if ev.error is not None:
                obj["error"] = _to_json(ev.error, 0, default)
            for k, v in ev.extra:
                if k in obj or k in _KNOWN_KEYS:
                    raise ValueError(f"extra field {k!r} clashes with a standard field")
                obj[k] = _to_json(v, 0, default)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"event {ev.index}: {exc}") from None
        lines.append(json.dumps(obj, ensure_ascii=False))
    text = "".join(line + "\n" for line in lines)
    if path is not None:
        _write_text(path, text)
    return text


def _to_json(value: Any, depth: int, default: Callable[[Any], Any] | None) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be written (JSON has no NaN or Infinity)")
        return value
    if depth >= MAX_DEPTH:
        raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, Keyword):
        return {"$kw": value.name}
    if isinstance(value, (tuple, list)):
        return [_to_json(v, depth + 1, default) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_to_json(v, depth + 1, default) for v in value]
        items.sort(key=lambda v: json.dumps(v, sort_keys=True))  # deterministic output
        return {"$set": items}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _to_json(v, depth + 1, default) for k, v in value.items()}
        return {
            "$map": [
                [_to_json(k, depth + 1, default), _to_json(v, depth + 1, default)]
                for k, v in value.items()
            ]
        }
    if default is not None:
        return _to_json(default(value), depth + 1, None)
    raise TypeError(
        f"cannot write a value of type {type(value).__name__} ({_short(value)}); "
        "record plain values (None, bool, int, float, str, tuple, list, dict, set, "
        "Keyword), or pass default=repr"
    )


def dump_edn(
    events: Iterable[Event],
    path: str | os.PathLike[str] | None = None,
    *,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """The history as Jepsen EDN, one op map per line (as Jepsen's
    ``history.edn``); also written to ``path`` when given.
    ``parse_edn(dump_edn(events)) == events`` for parsed values. Unsupported
    values raise ``TypeError`` naming the event, unless ``default`` converts them.
    """
    lines: list[str] = []
    for ev in events:
        try:
            process = ev.process if type(ev.process) is int else _edn_keyword(str(ev.process))
            parts = [f":process {process}", f":type :{ev.type}", f":f {_edn_keyword(ev.f)}"]
            if ev.key is not None:
                parts.append(":key " + _to_edn(ev.key, 0, default))
            parts.append(":value " + _to_edn(ev.value, 0, default))
            if ev.time is not None:
                parts.append(f":time {ev.time}")
            parts.append(f":index {ev.index}")
            if ev.error is not None:
                parts.append(":error " + _to_edn(ev.error, 0, default))
            for k, v in ev.extra:
                if k in _KNOWN_KEYS:
                    raise ValueError(f"extra field {k!r} clashes with a standard field")
                parts.append(f"{_edn_keyword(k)} {_to_edn(v, 0, default)}")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"event {ev.index}: {exc}") from None
        lines.append("{" + ", ".join(parts) + "}")
    text = "".join(line + "\n" for line in lines)
    if path is not None:
        _write_text(path, text)
    return text


def _edn_keyword(name: str) -> str:
    text = ":" + name
    if _EDN_KEYWORD.fullmatch(text) is None:
        raise ValueError(f"{name!r} cannot be written as an EDN keyword")
    return text


_EDN_STR_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}
_EDN_STR_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f]')


def _edn_string(value: str) -> str:
    return (
        '"'
        + _EDN_STR_NEEDS_ESCAPE.sub(
            lambda m: _EDN_STR_ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), value
        )
        + '"'
    )


def _to_edn(value: Any, depth: int, default: Callable[[Any], Any] | None) -> str:
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be written (only finite floats)")
        return repr(value)
    if isinstance(value, str):
        return _edn_string(value)
    if isinstance(value, Keyword):
        return _edn_keyword(value.name)
    if depth >= MAX_DEPTH:
        raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, (tuple, list)):
        return "[" + " ".join(_to_edn(v, depth + 1, default) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        return "#{" + " ".join(sorted(_to_edn(v, depth + 1, default) for v in value)) + "}"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(
                f"{_to_edn(k, depth + 1, default)} {_to_edn(v, depth + 1, default)}"
                for k, v in value.items()
            )
            + "}"
        )
    if default is not None:
        return _to_edn(default(value), depth + 1, None)
    raise TypeError(
        f"cannot write a value of type {type(value).__name__} ({_short(value)}); "
        "record plain values (None, bool, int, float, str, tuple, list, dict, set, "
        "Keyword), or pass default=repr"
    )


def _write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write via a temporary file and rename, so an existing file is never left half-written."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True, slots=True)
class OpSpan:
    """An op's span: its invoke paired with its completion (``None`` while pending)."""

    process: int | str
    f: str
    invoke: Event
    completion: Event | None

    @property
    def outcome(self) -> str:
        """``"ok"``, ``"fail"``, ``"info"`` or ``"pending"``."""
        return "pending" if self.completion is None else self.completion.type


def spans(events: Iterable[Event]) -> list[OpSpan]:
    """Pair each invoke with its completion, in invoke order.

    A completion with no pending invoke (the nemesis logs bare ``info`` events)
    becomes an operation of its own whose invoke and completion are that event.
    """
    ops: list[OpSpan | None] = []
    open_ops: dict[int | str, int] = {}
    for ev in events:
        if ev.type == "invoke":
            open_ops[ev.process] = len(ops)
            ops.append(OpSpan(ev.process, ev.f, ev, None))
            continue
        slot = open_ops.pop(ev.process, None)
        if slot is None:
            ops.append(OpSpan(ev.process, ev.f, ev, ev))
        else:
            op = ops[slot]
            assert op is not None
            ops[slot] = OpSpan(op.process, op.f, op.invoke, ev)
    return [op for op in ops if op is not None]


def format_timeline(
    events: Iterable[Event],
    *,
    max_ops_per_process: int = 8,
    max_processes: int = 16,
    width: int = 100,
) -> list[str]:
    """A compact per-process timeline: one block per process, its ops in order.

    Each op reads ``[invoke-completion] f value -> outcome``, with event indices,
    so overlapping ops are visible by their index ranges. Only the last
    ``max_ops_per_process`` ops of each process are shown (the end of a failing
    history is usually what matters); elided parts are counted.
    """
    evs = list(events)
    ops = spans(evs)
    by_process: dict[int | str, list[OpSpan]] = {}
    for op in ops:
        by_process.setdefault(op.process, []).append(op)
    pending = sum(1 for op in ops if op.completion is None)
    header = f"{len(evs)} events, {len(ops)} ops, {len(by_process)} processes" + (
        f", {pending} pending" if pending else ""
    )
    lines = [header]
    labels = {p: (f"p{p}" if isinstance(p, int) else str(p)) for p in by_process}
    label_width = max((len(v) for v in labels.values()), default=0)
    procs = sorted(
        by_process, key=lambda p: (isinstance(p, str), str(p) if isinstance(p, str) else p)
    )
    for proc in procs[:max_processes]:
        proc_ops = by_process[proc]
        shown = proc_ops[-max_ops_per_process:]
        items = [_describe_op(op) for op in shown]
        if len(proc_ops) > len(shown):
            items.insert(0, f"({len(proc_ops) - len(shown)} earlier)")
        prefix = f"  {labels[proc]:>{label_width}} | "
        current = prefix
        for item in items:
            sep = "" if current == prefix else "  "
            if current != prefix and len(current) + len(sep) + len(item) > width:
                lines.append(current)
                current = " " * (len(prefix) - 2) + "| " + item
            else:
                current += sep + item
        lines.append(current)
    if len(procs) > max_processes:
        lines.append(f"  ... {len(procs) - max_processes} more processes")
    return lines


def _describe_op(op: OpSpan) -> str:
    inv = op.invoke
    if op.completion is inv:  # a bare nemesis event
        return f"[{inv.index}] {inv.f} {inv.type} {_short(inv.value, 30)}"
    key = "" if inv.key is None else f"[{_short(inv.key, 16)}] "
    arg = "" if inv.value is None else " " + _short(inv.value, 30)
    head = f"{key}{op.f}{arg}"
    done = op.completion
    if done is None:
        return f"[{inv.index}-] {head} -> pending"
    span = f"[{inv.index}-{done.index}]"
    if done.type == "ok":
        result = "ok" if done.value is None else "ok " + _short(done.value, 30)
    else:
        err = done.error
        text = "" if err is None else (err if isinstance(err, str) else repr(err))
        reason = f" ({text[:37]}...)" if len(text) > 40 else f" ({text})" if text else ""
        result = done.type + reason
    return f"{span} {head} -> {result}"


# --------------------------------------------------------------------------- the recorder

_ExcTypes = type[BaseException] | tuple[type[BaseException], ...]


class _Worker:
    """One thread or task: the process ids it may reuse (idle, never crashed)."""

    __slots__ = ("__weakref__", "idle")

    def __init__(self) -> None:
        self.idle: list[int] = []


class Op:
    """A handle on one invoked operation.

    Returned by ``History.invoke`` and bound by ``with h.op(...) as op``.
    Complete it once with ``op.ok(result)``, ``op.fail(reason)`` or
    ``op.info(reason)`` (or the matching ``History`` methods). Inside a
    ``with`` block, set ``op.result`` instead: the block's normal exit records
    ``ok`` with it.
    """

    __slots__ = ("_history", "_worker", "completion", "exception", "invoke", "result")

    def __init__(self, history: History, worker: _Worker, invoke: Event) -> None:
        self._history = history
        self._worker = worker
        self.invoke = invoke
        #: The completion event once the op is done.
        self.completion: Event | None = None
        #: The value recorded by ``ok`` when a ``with`` block exits normally.
        self.result: Any = None
        #: The exception that ended a ``with`` block or wrapped call, if any.
        self.exception: BaseException | None = None

    @property
    def process(self) -> int:
        return self.invoke.process  # type: ignore[return-value]  # recorder processes are ints

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def value(self) -> Any:
        return self.invoke.value

    @property
    def key(self) -> Any:
        return self.invoke.key

    @property
    def done(self) -> bool:
        return self.completion is not None

    @property
    def outcome(self) -> str:
        """``"ok"``, ``"fail"``, ``"info"`` or ``"pending"``."""
        return "pending" if self.completion is None else self.completion.type

    def ok(self, value: Any = None) -> Event:
        return self._history._complete(self, "ok", value, None)

    def fail(self, reason: Any = None) -> Event:
        return self._history._complete(self, "fail", self.invoke.value, reason)

    def info(self, reason: Any = None) -> Event:
        return self._history._complete(self, "info", self.invoke.value, reason)

    def __repr__(self) -> str:
        return f"<Op {self.f} p{self.process} #{self.invoke.index} {self.outcome}>"


def _exception_reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OpContext:
    """What ``History.op(f, value)`` returns without ``fn``: a context manager
    (``with`` or ``async with``) that records the invoke on entry and the
    completion on exit: ``ok`` with ``op.result`` on a normal exit, ``fail``
    for an exception listed in ``fail_on`` (which is then suppressed: a failed
    op is an expected outcome), ``info`` for any other exception, which
    propagates. Nothing is recorded on exit when the block completed the op
    itself (``op.fail(...)``)."""

    __slots__ = ("_fail_on", "_history", "_key", "_op", "f", "value")

    def __init__(self, history: History, f: str, value: Any, key: Any, fail_on: _ExcTypes) -> None:
        self._history = history
        self.f = f
        self.value = value
        self._key = key
        self._fail_on = fail_on
        self._op: Op | None = None

    def __enter__(self) -> Op:
        if self._op is not None:
            raise RuntimeError("an h.op(...) context can be entered only once")
        self._op = self._history.invoke(self.f, self.value, key=self._key)
        return self._op

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        op = self._op
        assert op is not None, "__exit__ without __enter__"
        return _finish(op, exc, self._fail_on)

    async def __aenter__(self) -> Op:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)


def _finish(op: Op, exc: BaseException | None, fail_on: _ExcTypes) -> bool:
    """Complete ``op`` after its body ended with ``exc``; True to suppress ``exc``."""
    if exc is None:
        if not op.done:
            op.ok(op.result)
        return False
    op.exception = exc
    expected = isinstance(exc, fail_on)
    if not op.done:
        if expected:
            op.fail(_exception_reason(exc))
        else:
            op.info(_exception_reason(exc))
    return expected


class History:
    """A thread- and task-safe Jepsen-style history recorder.

    >>> h = History()
    >>> with h.op("write", 1):
    ...     register.put(1)
    >>> h.op("read", None, register.get)   # returns what register.get() returned
    >>> op = h.invoke("cas", (1, 2)); ...; h.fail(op, "mismatch")

    Every event gets its index and ``time.perf_counter_ns()`` timestamp under
    one lock, so index order is real-time order. Each thread and each asyncio
    task is a client with its own process id, reused for its next op; an op
    that ends in ``info`` retires its process id (the client "crashed": its
    op may still take effect), and the next op of that thread gets a new one.
    A thread that invokes while one of its own ops is pending (explicit
    ``invoke``/``ok`` calls) gets another process id for it, since a process
    runs one op at a time.

    ``events`` is the history in recording order. An op still pending at the
    end has only its invoke: consumers (the checker, the formats) treat it as
    ``info``, an unknown outcome. ``close()`` makes that explicit.
    """

    def __init__(self, name: str | None = None) -> None:
        #: What the history is called in messages (the ``history`` fixture
        #: uses the test id); ``check_linearizable`` reads it.
        self.name = name
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._pending: dict[int, Op] = {}  # invoke index -> op
        self._next_process = 0
        self._closed = False
        self._local = threading.local()
        self._task_workers: weakref.WeakKeyDictionary[Any, _Worker] = weakref.WeakKeyDictionary()
        self._t0 = time.perf_counter_ns()

    # -- who is calling

    def _worker(self) -> _Worker:
        # asyncio is looked up, not imported: if nobody imported it there is no task.
        aio = sys.modules.get("asyncio")
        if aio is not None:
            try:
                task = aio.current_task()
            except RuntimeError:  # no running event loop in this thread
                task = None
            if task is not None:
                with self._lock:
                    worker = self._task_workers.get(task)
                    if worker is None:
                        worker = self._task_workers[task] = _Worker()
                return worker
        worker = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = _Worker()
        return worker

    # -- recording

    def invoke(self, f: str, value: Any = None, *, key: Any = None) -> Op:
        """Record the invocation of ``f(value)`` by the calling thread/task."""
        if not isinstance(f, str) or not f:
            raise TypeError(f"the operation name must be a non-empty str, got {f!r}")
        worker = self._worker()
        with self._lock:
            if self._closed:
                raise RuntimeError("this history is closed; record into a new History")
            if worker.idle:
                process = worker.idle.pop()
            else:
                process = self._next_process
                self._next_process += 1
            ev = Event(
                len(self._events),
                process,
                "invoke",
                f,
                value,
                time.perf_counter_ns() - self._t0,
                key,
            )
            self._events.append(ev)
            op = Op(self, worker, ev)
            self._pending[ev.index] = op
        return op

    def ok(self, op: Op, value: Any = None) -> Event:
        """Record that ``op`` completed and returned ``value``."""
        return self._complete(op, "ok", value, None)

    def fail(self, op: Op, reason: Any = None) -> Event:
        """Record that ``op`` certainly did not take effect."""
        return self._complete(op, "fail", op.invoke.value, reason)

    def info(self, op: Op, reason: Any = None) -> Event:
        """Record that the outcome of ``op`` is unknown (it may or may not take effect)."""
        return self._complete(op, "info", op.invoke.value, reason)

    def _complete(self, op: Op, etype: EventType, value: Any, reason: Any) -> Event:
        if op._history is not self:
            raise ValueError(f"{op!r} was invoked on another History")
        with self._lock:
            if op.completion is not None:
                raise RuntimeError(f"{op!r} is already complete; an op completes once")
            if self._closed:
                raise RuntimeError(
                    f"{op!r} completes after the history was closed "
                    "(close() already recorded it as info)"
                )
            inv = op.invoke
            ev = Event(
                len(self._events),
                inv.process,
                etype,
                inv.f,
                value,
                time.perf_counter_ns() - self._t0,
                inv.key,
                reason,
            )
            self._events.append(ev)
            op.completion = ev
            del self._pending[inv.index]
            if etype != "info":
                op._worker.idle.append(op.process)
        return ev

    @overload
    def op(
        self,
        f: str,
        value: Any = None,
        fn: None = None,
        *,
        key: Any = None,
        fail_on: _ExcTypes = (),
    ) -> OpContext: ...

    @overload
    def op(
        self,
        f: str,
        value: Any,
        fn: Callable[[], _T],
        *,
        key: Any = None,
        fail_on: _ExcTypes = (),
    ) -> _T: ...

    def op(
        self,
        f: str,
        value: Any = None,
        fn: Callable[[], Any] | None = None,
        *,
        key: Any = None,
        fail_on: _ExcTypes = (),
    ) -> Any:
        """Record one operation around code that performs it.

        Without ``fn``, a context manager (``with`` / ``async with``, see
        ``OpContext``). With ``fn``, call it now and return its result:
        ``h.op("write", 3, lambda: reg.put(3))``. The outcome is ``ok`` with
        the result, ``fail`` for an exception in ``fail_on`` (suppressed; the
        call returns ``None``), ``info`` for any other exception (re-raised).
        If ``fn`` returns an awaitable (``fn`` is an ``async def``, or a lambda
        calling one), ``op`` returns a coroutine: ``await h.op("get", None,
        client.get)``. The invoke is recorded at the call, the completion when
        the awaitable finishes; an op that is never awaited stays pending.
        """
        ctx = OpContext(self, f, value, key, fail_on)
        if fn is None:
            return ctx
        op = ctx.__enter__()
        try:
            result = fn()
        except BaseException as exc:
            if _finish(op, exc, fail_on):
                return None
            raise
        if inspect.isawaitable(result):
            return self._await_op(op, result, fail_on)
        op.result = result
        _finish(op, None, fail_on)
        return result

    async def _await_op(self, op: Op, awaitable: Awaitable[Any], fail_on: _ExcTypes) -> Any:
        try:
            result = await awaitable
        except BaseException as exc:
            if _finish(op, exc, fail_on):
                return None
            raise
        op.result = result
        _finish(op, None, fail_on)
        return result

    # -- reading

    @property
    def events(self) -> list[Event]:
        """A snapshot of the history, in recording (= real-time) order."""
        with self._lock:
            return list(self._events)

    @property
    def pending(self) -> list[Op]:
        """Ops invoked and not yet completed, in invoke order."""
        with self._lock:
            return sorted(self._pending.values(), key=lambda op: op.invoke.index)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, reason: Any = "pending at close") -> list[Event]:
        """Record ``info`` for every pending op, refuse further recording, and
        return the events. Idempotent. A pending op completed after ``close()``
        raises ``RuntimeError`` (its outcome was already written as unknown)."""
        for op in self.pending:
            try:
                op.info(reason)
            except RuntimeError:  # completed by its thread meanwhile: that outcome stands
                if op.completion is None:
                    raise
        with self._lock:
            self._closed = True
            return list(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __repr__(self) -> str:
        with self._lock:
            n, p = len(self._events), len(self._pending)
        named = "" if self.name is None else f" {self.name!r}"
        return f"<History{named} {n} events, {p} pending{', closed' if self._closed else ''}>"

    def timeline(self, **kwargs: Any) -> str:
        """``format_timeline(self.events)`` as one string."""
        return "\n".join(format_timeline(self.events, **kwargs))

    def dump(
        self,
        path: str | os.PathLike[str],
        format: Literal["jsonl", "jepsen-edn"] = "jsonl",
        *,
        default: Callable[[Any], Any] | None = None,
    ) -> None:
        """Write the history to ``path`` as JSON lines or Jepsen EDN."""
        if format == "jsonl":
            dump_jsonl(self.events, path, default=default)
        elif format == "jepsen-edn":
            dump_edn(self.events, path, default=default)
        else:
            raise ValueError(f"cannot write format {format!r}; use 'jsonl' or 'jepsen-edn'")
