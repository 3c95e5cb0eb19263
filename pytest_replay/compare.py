"""Comparing a replayed outcome with the recorded one, and explaining the difference.

Pure: no pytest. deepdiff is imported only when a difference has to be
explained, so an unchanged output costs one ``==``.

The order of checks (see ``compare_values``):

1. ``expected == actual``: the fast path, nothing else is built.
2. The new value goes through the codec round trip (``roundtrip``) so both
   sides have the same representation (tuples stay tuples, unencodable values
   become ``Opaque`` markers), then ``==`` again.
3. DeepDiff, with the per-function options: ``ignore`` rules, significant
   digits, ignore order. Recorded ``Redacted`` values match anything; two
   ``Opaque`` markers match when they stand for the same type.

A ``compare(expected, actual)`` callable given by the user replaces the
equality test (it is always called); deepdiff then only explains a ``False``.
"""

from __future__ import annotations

import fnmatch
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .record import ErrorInfo

__all__ = [
    "MISSING",
    "ROOT",
    "CompareOptions",
    "CompareRule",
    "Comparison",
    "Difference",
    "Outcome",
    "compare_outcomes",
    "compare_values",
    "error_info",
    "explain",
    "format_inputs",
    "format_value",
    "generalize_path",
    "ignore_regex",
    "options_for",
    "parse_compare_rules",
    "render_failure",
    "roundtrip",
    "suggest_ignore",
    "type_path",
]

#: Shown in place of a whole value that has no path below it.
ROOT = "<root>"
#: How many differences a failure lists before "... and N more".
MAX_DIFFERENCES = 10


class _Missing:
    """The side of a difference where a key or item does not exist."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class CompareOptions:
    """How one function's outputs are compared (from the decorator and/or ini)."""

    ignore: tuple[str, ...] = ()
    significant_digits: int | None = None
    ignore_order: bool = False
    compare: Callable[[Any, Any], object] | None = None

    def merged(self, other: CompareOptions) -> CompareOptions:
        """``other`` layered on top: ignore rules add up, set scalars win."""
        return CompareOptions(
            ignore=tuple(dict.fromkeys((*self.ignore, *other.ignore))),
            significant_digits=(
                other.significant_digits
                if other.significant_digits is not None
                else self.significant_digits
            ),
            ignore_order=self.ignore_order or other.ignore_order,
            compare=other.compare if other.compare is not None else self.compare,
        )


@dataclass(frozen=True)
class Difference:
    """One difference: where, and the value on each side (``MISSING`` if absent)."""

    path: str
    expected: Any
    actual: Any

    def line(self, width: int = 60) -> str:
        expected = format_value(self.expected, width)
        return f"{self.path}: {expected} → {format_value(self.actual, width)}"


@dataclass(frozen=True)
class Outcome:
    """What a call did: returned ``value``, or raised (``error`` is set)."""

    value: Any = None
    error: ErrorInfo | None = None

    @property
    def raised(self) -> bool:
        return self.error is not None

    @classmethod
    def from_exception(cls, exc: BaseException) -> Outcome:
        return cls(error=error_info(exc))

    def describe(self, width: int = 60) -> str:
        if self.error is not None:
            return f"raised {_error_text(self.error, width)}"
        return f"returned {format_value(self.value, width)}"


@dataclass(frozen=True)
class Comparison:
    """The verdict: ``equal``, and if not, the differences and/or a note."""

    equal: bool
    differences: tuple[Difference, ...] = ()
    note: str | None = None

    def lines(self, limit: int = MAX_DIFFERENCES, width: int = 60) -> list[str]:
        out: list[str] = []
        if self.note:
            out.append(self.note)
        shown = self.differences[:limit]
        out.extend(diff.line(width) for diff in shown)
        rest = len(self.differences) - len(shown)
        if rest > 0:
            out.append(f"... and {rest} more difference{'s' if rest != 1 else ''}")
        return out


EQUAL = Comparison(True)


# --------------------------------------------------------------------------- values


def roundtrip(value: object) -> object:
    """``value`` as it would read back from a cassette (codec encode + decode)."""
    from . import codec

    return codec.loads(codec.dumps(value))


def type_path(cls: type) -> str:
    """``module.qualname`` of a class; the form records use for exception types."""
    return f"{cls.__module__}.{cls.__qualname__}"


def error_info(exc: BaseException) -> ErrorInfo:
    return ErrorInfo(type_path(type(exc)), str(exc), tuple(exc.args))


def _normal_type(name: str) -> str:
    # "pkg.mod:Error" and "pkg.mod.Error" name the same class.
    return name.replace(":", ".")


def _short_type(name: str) -> str:
    name = _normal_type(name)
    return name[len("builtins.") :] if name.startswith("builtins.") else name


def _error_text(error: ErrorInfo, width: int) -> str:
    message = _truncate(error.message, width)
    return f"{_short_type(error.type)}: {message}" if message else _short_type(error.type)


_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxdict = 8
_REPR.maxlist = 8
_REPR.maxtuple = 8
_REPR.maxset = 8
_REPR.maxstring = 200
_REPR.maxother = 200


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def format_value(value: object, width: int = 60) -> str:
    """A one-line repr of ``value``, at most ``width`` characters.

    reprlib keeps this cheap for huge containers (it never renders them whole).
    """
    if value is MISSING:
        return "<missing>"
    from .codec import Opaque, Redacted

    if isinstance(value, Redacted):
        return "<redacted>"
    if isinstance(value, Opaque):
        return f"<opaque {value.type_name}>"
    try:
        text = _REPR.repr(value)
    except Exception as exc:  # a user __repr__ that fails must not hide the diff
        text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    return _truncate(text.replace("\n", "\\n"), width)


def format_inputs(inputs: Mapping[str, Any], width: int = 200) -> str:
    """``name=value, ...`` truncated to ``width`` characters."""
    text = ", ".join(f"{name}={format_value(value, 60)}" for name, value in inputs.items())
    return _truncate(text, width) if text else "(no arguments)"


# --------------------------------------------------------------------------- paths

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def display_path(elements: Sequence[Any]) -> str:
    """``['items', 0, 'id']`` -> ``items[0].id`` (the same syntax ``ignore`` accepts)."""
    out: list[str] = []
    for element in elements:
        if isinstance(element, str) and _IDENT.match(element):
            out.append(f".{element}" if out else element)
        elif isinstance(element, int) and not isinstance(element, bool):
            out.append(f"[{element}]")
        else:
            out.append(f"[{element!r}]")
    return "".join(out) or ROOT


_INDEX = re.compile(r"\[\d+\]")


def generalize_path(path: str) -> str:
    """``items[3].id`` -> ``items[*].id``: a path that names every list position."""
    return _INDEX.sub("[*]", path)


# One segment of a deepdiff path string: ['key'], ["key"], [0], [(1, 2)] or .attr
_ANY_SEGMENT = r"(?:\[[^\]]*\]|\.[^.\[]+)"
_PATTERN_TOKEN = re.compile(
    r"""
    \[\s*(?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*\]   # ['key'] / ["key"]
  | \[\s*(?P<index>\*|-?\d+)\s*\]                               # [0] / [*]
  | \.?(?P<name>[^.\[\]]+)                                      # name / .name / * / **
    """,
    re.VERBOSE,
)


def _name_regex(name: str, *, in_quotes: bool) -> str:
    # fnmatch-style wildcards inside one key name; they never cross a segment.
    star = r"[^'\"\]]*" if in_quotes else r"[^.\[]*"
    out: list[str] = []
    for char in name:
        if char == "*":
            out.append(star)
        elif char == "?":
            out.append(star[:-1])
        else:
            out.append(re.escape(char))
    return "".join(out)


def ignore_regex(pattern: str) -> re.Pattern[str]:
    """Compile an ``ignore`` rule to a regex over deepdiff path strings.

    Accepted forms: deepdiff paths (``root['a'][0]``), dotted globs
    (``a.b``, ``items[*].id``, ``*_at``), ``**`` for any number of segments,
    and a leading ``*.`` meaning "at any depth" (``*.created_at``). Ignoring a
    path ignores everything below it. Raises ``ValueError`` for a malformed rule.
    """
    text = pattern.strip()
    if not text:
        raise ValueError("empty ignore rule")
    if text == "root" or text.startswith(("root[", "root.")):
        text = text[4:]
    elif text.startswith("*.") or text.startswith("**."):
        text = "**" + text[text.index(".") :]
    parts: list[str] = []
    position = 0
    while position < len(text):
        match = _PATTERN_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(
                f"cannot parse ignore rule {pattern!r} at character {position + 1}: "
                "use dotted paths like 'items[*].id' or deepdiff paths like \"root['a'][0]\""
            )
        position = match.end()
        if match.group("quoted") is not None:
            key = match.group("quoted")[1:-1]
            parts.append(r"\[(?:'|\")" + re.escape(key) + r"(?:'|\")\]")
        elif match.group("index") is not None:
            index = match.group("index")
            parts.append(r"\[[^\]]*\]" if index == "*" else r"\[" + re.escape(index) + r"\]")
        else:
            name = match.group("name")
            if name == "**":
                parts.append(_ANY_SEGMENT + "*")
            elif name == "*":
                parts.append(_ANY_SEGMENT)
            else:
                parts.append(
                    r"(?:\[(?:'|\")"
                    + _name_regex(name, in_quotes=True)
                    + r"(?:'|\")\]|\."
                    + _name_regex(name, in_quotes=False)
                    + r"|\["
                    + _name_regex(name, in_quotes=False)
                    + r"\])"
                )
    return re.compile("^root" + "".join(parts) + "$")


# --------------------------------------------------------------------------- comparing


def compare_values(
    expected: Any, actual: Any, options: CompareOptions | None = None, *, decoded: bool = False
) -> Comparison:
    """Compare a recorded (decoded) value with a new one.

    ``decoded=True`` says ``actual`` already went through the codec round trip.
    """
    options = options or _DEFAULT_OPTIONS
    custom = options.compare
    # The fast path: most replays are unchanged, and `==` on two values is the
    # cheapest complete check there is. Nothing else is built when it holds.
    if custom is None:
        try:
            if expected == actual:
                return EQUAL
        except Exception:  # an __eq__ that raises: fall through to the codec form
            pass
    if not decoded:
        actual = roundtrip(actual)
        if custom is None:
            try:
                if expected == actual:
                    return EQUAL
            except Exception:
                pass
    note: str | None = None
    if custom is not None:
        try:
            verdict = custom(expected, actual)
        except AssertionError as exc:
            verdict = False
            note = f"compare(expected, actual) failed: {exc}" if str(exc) else None
        if verdict:
            return EQUAL
        note = note or "compare(expected, actual) returned False"
    differences = explain(expected, actual, options)
    if not differences and note is None:
        return EQUAL
    return Comparison(False, tuple(differences), note)


_DEFAULT_OPTIONS = CompareOptions()


class _MarkerOperator:
    """deepdiff operator: recorded ``Redacted`` matches anything; ``Opaque`` by type name."""

    def __init__(self) -> None:
        from .codec import Opaque, Redacted

        self._opaque = Opaque
        self._redacted = Redacted

    def match(self, level: Any) -> bool:
        return isinstance(level.t1, self._redacted) or (
            isinstance(level.t1, self._opaque) and isinstance(level.t2, self._opaque)
        )

    def give_up_diffing(self, level: Any, diff_instance: Any) -> bool:
        if isinstance(level.t1, self._opaque) and level.t1.type_name != level.t2.type_name:
            diff_instance.custom_report_result("values_changed", level)
        return True

    def normalize_value_for_hashing(self, parent: Any, obj: Any) -> Any:
        return obj


def explain(expected: Any, actual: Any, options: CompareOptions | None = None) -> list[Difference]:
    """The differences between two values, as readable paths (empty when equal)."""
    from deepdiff import DeepDiff

    options = options or _DEFAULT_OPTIONS
    kwargs: dict[str, Any] = {
        "view": "tree",
        "ignore_nan_inequality": True,
        "custom_operators": [_MarkerOperator()],
        "ignore_order": options.ignore_order,
        # Multiset, not set, semantics: a duplicated item is a regression.
        "report_repetition": options.ignore_order,
    }
    if options.ignore:
        kwargs["exclude_regex_paths"] = [ignore_regex(rule) for rule in options.ignore]
    if options.significant_digits is not None:
        kwargs["significant_digits"] = options.significant_digits
    tree = DeepDiff(expected, actual, **kwargs)
    found: list[tuple[tuple[Any, ...], Difference]] = []
    for report_type, levels in tree.items():
        for level in levels:
            found.append(_difference(report_type, level))
    found.sort(key=lambda item: item[0])
    return [difference for _, difference in found]


class _Shown(str):
    """Text shown as is in a difference line (not quoted like a string value)."""

    def __repr__(self) -> str:
        return str(self)


def _sort_key(elements: Sequence[Any]) -> tuple[Any, ...]:
    return tuple((0, e, "") if isinstance(e, int) else (1, 0, str(e)) for e in elements)


def _difference(report_type: str, level: Any) -> tuple[tuple[Any, ...], Difference]:
    try:
        elements = list(level.path(output_format="list"))
    except Exception:  # paths deepdiff cannot express as a list (rare set/object cases)
        elements = [level.path()]
    if report_type.startswith("set_item"):
        # The last element of a set item's path is not addressable; show the
        # set's own path with the item as the value.
        elements = [e for e in elements if e is not None]
    expected = level.t1
    actual = level.t2
    if report_type.endswith("_added"):
        expected = MISSING
    elif report_type.endswith("_removed"):
        actual = MISSING
    elif report_type == "repetition_change":
        extra = getattr(level, "additional", {}).get("repetition", {})
        expected = _Shown(f"{extra.get('old_repeat', '?')}× {format_value(level.t1, 40)}")
        actual = _Shown(f"{extra.get('new_repeat', '?')}× {format_value(level.t1, 40)}")
    return _sort_key(elements), Difference(display_path(elements), expected, actual)


def compare_outcomes(
    expected: Outcome, actual: Outcome, options: CompareOptions | None = None
) -> Comparison:
    """Compare what a call did now with what it did when recorded."""
    if expected.error is None and actual.error is None:
        return compare_values(expected.value, actual.value, options)
    if expected.error is not None and actual.error is not None:
        differences: list[Difference] = []
        if _normal_type(expected.error.type) != _normal_type(actual.error.type):
            differences.append(
                Difference(
                    "error.type", _short_type(expected.error.type), _short_type(actual.error.type)
                )
            )
        if expected.error.message != actual.error.message:
            differences.append(
                Difference("error.message", expected.error.message, actual.error.message)
            )
        return Comparison(not differences, tuple(differences))
    if actual.error is not None:
        return Comparison(
            False,
            (Difference(ROOT, expected.value, _RaisedMarker(actual.error)),),
            f"raised {_error_text(actual.error, 120)}, expected a result",
        )
    assert expected.error is not None
    return Comparison(
        False,
        (Difference(ROOT, _RaisedMarker(expected.error), actual.value),),
        f"returned a result, expected it to raise {_error_text(expected.error, 120)}",
    )


@dataclass(frozen=True)
class _RaisedMarker:
    error: ErrorInfo

    def __repr__(self) -> str:
        return f"raised {_error_text(self.error, 50)}"


# --------------------------------------------------------------------------- reports


def render_failure(
    *,
    key: str,
    record_id: str,
    inputs: Mapping[str, Any] | str,
    comparison: Comparison,
    headline: str = "replay diverged from the recording",
    cassette: str | None = None,
    limit: int = MAX_DIFFERENCES,
) -> str:
    """The failure text of one item: short, one difference per line."""
    lines = [f"{headline}: {key} [{record_id}]"]
    if cassette:
        lines.append(f"  cassette: {cassette}")
    shown_inputs = inputs if isinstance(inputs, str) else format_inputs(inputs)
    lines.append(f"  inputs:   {shown_inputs}")
    body = comparison.lines(limit)
    count = len(comparison.differences)
    if count:
        lines.append(f"  {count} difference{'s' if count != 1 else ''} (expected → actual):")
    lines.extend(f"    {line}" for line in body)
    return "\n".join(lines)


def suggest_ignore(differences: Iterable[Difference]) -> str | None:
    """An ``ignore=[...]`` line covering these differences (``None`` if one is the root)."""
    paths: list[str] = []
    for difference in differences:
        if difference.path == ROOT:
            return None
        path = generalize_path(difference.path)
        if path not in paths:
            paths.append(path)
    if not paths:
        return None
    return "ignore=[" + ", ".join(_quote(path) for path in paths) + "]"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- ini rules


@dataclass(frozen=True)
class CompareRule:
    """One ``replay_compare`` ini line: options for the keys matching ``pattern``."""

    pattern: str
    options: CompareOptions = field(default_factory=CompareOptions)

    def applies_to(self, key: str) -> bool:
        return fnmatch.fnmatchcase(key, self.pattern)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_compare_rules(lines: Iterable[str]) -> list[CompareRule]:
    """Parse ``replay_compare`` ini lines: ``KEY-GLOB: option=value; option=value``.

    Options: ``ignore=a,b`` (rules as in ``ignore_regex``), ``significant_digits=N``,
    ``ignore_order=true|false``. Raises ``ValueError`` naming the line.
    """
    rules: list[CompareRule] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, rest = line.partition(":")
        if not sep or not pattern.strip():
            raise ValueError(
                f"replay_compare line {number} {line!r}: expected "
                "'KEY-GLOB: ignore=a,b; significant_digits=N; ignore_order=true'"
            )
        options = CompareOptions()
        for item in rest.split(";"):
            item = item.strip()
            if not item:
                continue
            name, eq, value = item.partition("=")
            name = name.strip()
            value = value.strip()
            if name == "ignore_order" and not eq:
                value, eq = "true", "="
            if not eq:
                raise ValueError(f"replay_compare line {number} {line!r}: {item!r} needs '='")
            if name == "ignore":
                rules_text = tuple(part.strip() for part in value.split(",") if part.strip())
                for rule in rules_text:
                    try:
                        ignore_regex(rule)
                    except ValueError as exc:
                        raise ValueError(f"replay_compare line {number}: {exc}") from None
                options = replace(options, ignore=options.ignore + rules_text)
            elif name == "significant_digits":
                try:
                    digits = int(value)
                except ValueError:
                    digits = -1
                if digits < 0:
                    raise ValueError(
                        f"replay_compare line {number} {line!r}: significant_digits must be "
                        f"a non-negative integer, got {value!r}"
                    )
                options = replace(options, significant_digits=digits)
            elif name == "ignore_order":
                if value.lower() not in _TRUE | _FALSE:
                    raise ValueError(
                        f"replay_compare line {number} {line!r}: ignore_order must be "
                        f"true or false, got {value!r}"
                    )
                options = replace(options, ignore_order=value.lower() in _TRUE)
            else:
                raise ValueError(
                    f"replay_compare line {number} {line!r}: unknown option {name!r} "
                    "(known: ignore, significant_digits, ignore_order)"
                )
        rules.append(CompareRule(pattern.strip(), options))
    return rules


def options_for(key: str, base: CompareOptions, rules: Iterable[CompareRule]) -> CompareOptions:
    """``base`` (from the decorator) with every ini rule matching ``key`` layered on top."""
    options = base
    for rule in rules:
        if rule.applies_to(key):
            options = options.merged(rule.options)
    return options
