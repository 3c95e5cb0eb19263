"""The replay report: one self-contained HTML page, built from plain item results.

Pure: no pytest, no deepdiff, no network. ``ReplayReport(items).render()``
returns a complete HTML document (inline CSS and JS, a Content-Security-Policy
that forbids every fetch, so it works from ``file://`` and leaks nothing).

Every piece of user data (keys, inputs, outputs, metadata, messages) reaches
the page through ``html.escape`` as element text or a quoted attribute value;
nothing user-controlled is ever placed inside the ``<script>`` or ``<style>``
blocks. The script only reads ``data-*`` attributes back from the DOM. As a
second line of defence the CSP allows exactly the one inline script and style
block by hash, so an injected ``<script>`` or ``onerror=`` would not run.

Values are turned into *views* (``to_view``) as soon as an item is built:
nested plain lists/dicts/strings that render the value as a Python-like tree
with each node's path. Views are plain data so that items cross xdist's
channel (``ReportItem.to_dict``/``from_dict``) unchanged; they are also
bounded (items per container, depth, string length) so a huge output cannot
make a report of hundreds of megabytes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import math
import os
import re
import reprlib
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "OUTCOMES",
    "DiffLine",
    "Raised",
    "ReplayReport",
    "ReportItem",
    "parse_path",
    "to_view",
]

#: Outcomes counted in the summary bar, in display order. ``error`` (the item
#: failed for a reason other than a divergence, e.g. a fixture error) and
#: ``skipped`` are shown in the table but have no summary button of their own
#: unless they occur.
OUTCOMES: tuple[str, ...] = ("matched", "diverged", "unreplayable", "nondeterministic", "updated")
_EXTRA_OUTCOMES: tuple[str, ...] = ("error", "skipped")
_LABELS = {
    "matched": "matched",
    "diverged": "diverged",
    "unreplayable": "unreplayable",
    "nondeterministic": "non-deterministic",
    "updated": "updated",
    "error": "error",
    "skipped": "skipped",
}

# Bounds on what one value contributes to the page.
MAX_ITEMS = 200  # children shown per container
MAX_NODES = 4000  # nodes of one value in total (bounds wide *and* deep values)
MAX_DEPTH = 24  # nesting shown
MAX_STR = 2000  # characters of one string shown
MAX_LINES = 600  # lines of one side of a side-by-side diff
MAX_DIFF_LINES = 100  # "path: expected → actual" lines per item
MAX_META_COLUMNS = 6

# A view node is plain data (JSON/execnet safe):
#   ["leaf", text]
#   ["seq", open, close, [[element, node], ...], omitted]
#   ["map", open, close, [[element, label, node], ...], omitted]
# where ``element`` is the path element of the child (str or int) and
# ``label`` the key as displayed.
View = list[Any]

_REPR = reprlib.Repr()
_REPR.maxstring = 200
_REPR.maxother = 200
_REPR.maxlevel = 3


def _safe_repr(value: object, limit: int = MAX_STR) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user __repr__ that fails must not lose the report
        text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit} more characters)"
    return text


def short_repr(value: object, width: int = 120) -> str:
    """One line, at most ``width`` characters (reprlib keeps huge values cheap)."""
    if isinstance(value, str) and len(value) <= width - 2:
        text = repr(value)
    else:
        try:
            text = _REPR.repr(value)
        except Exception as exc:
            text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def _element(key: object) -> str | int:
    if isinstance(key, bool):
        return repr(key)
    if isinstance(key, (str, int)):
        return key
    return _safe_repr(key, 200)


def to_view(
    value: object,
    *,
    max_items: int = MAX_ITEMS,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> View:
    """A bounded, plain-data rendering of ``value`` as a tree with path elements."""
    return _view(value, max_items, max_depth, set(), [max_nodes])


def _view(value: object, max_items: int, depth: int, active: set[int], budget: list[int]) -> View:
    budget[0] -= 1
    if isinstance(value, str):
        return ["leaf", _safe_repr(value)]
    if value is None or isinstance(value, (bool, int, float, bytes)):
        return ["leaf", _safe_repr(value)]
    if depth <= 0 or budget[0] <= 0:
        return ["leaf", short_repr(value, 80)]
    if id(value) in active:  # a cycle: show it, never recurse into it
        return ["leaf", f"<cycle: {type(value).__name__}>"]
    active.add(id(value))
    try:
        if isinstance(value, Mapping):
            entries: list[list[Any]] = []
            for index, (key, child) in enumerate(value.items()):
                if index >= max_items:
                    break
                entries.append(
                    [
                        _element(key),
                        _safe_repr(key, 200),
                        _view(child, max_items, depth - 1, active, budget),
                    ]
                )
            open_, close = (
                ("{", "}") if type(value) is dict else (f"{type(value).__name__}({{", "})")
            )
            return ["map", open_, close, entries, max(len(value) - max_items, 0)]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = [f.name for f in dataclasses.fields(value)]
            entries = [
                [
                    name,
                    name + "=",
                    _view(getattr(value, name, None), max_items, depth - 1, active, budget),
                ]
                for name in fields[:max_items]
            ]
            return [
                "map",
                f"{type(value).__name__}(",
                ")",
                entries,
                max(len(fields) - max_items, 0),
            ]
        if isinstance(value, (list, tuple, set, frozenset)):
            if isinstance(value, (set, frozenset)):
                try:
                    children: list[Any] = sorted(value)  # stable display for the two sides
                except TypeError:
                    children = list(value)
            else:
                children = list(value)
            brackets = {
                list: ("[", "]"),
                tuple: ("(", ")"),
                set: ("{", "}"),
                frozenset: ("frozenset({", "})"),
            }
            open_, close = brackets.get(type(value), (f"{type(value).__name__}([", "])"))
            items = [
                [index, _view(child, max_items, depth - 1, active, budget)]
                for index, child in enumerate(children[:max_items])
            ]
            return ["seq", open_, close, items, max(len(children) - max_items, 0)]
        return ["leaf", _safe_repr(value)]
    finally:
        active.discard(id(value))


# --------------------------------------------------------------------------- paths

_PATH_TOKEN = re.compile(
    r"""
    \[\s*'((?:[^'\\]|\\.)*)'\s*\]      # ['key']
  | \[\s*"((?:[^"\\]|\\.)*)"\s*\]      # ["key"]
  | \[\s*(-?\d+)\s*\]                  # [0]
  | \[([^\]]*)\]                       # [anything else], kept as text
  | \.?([^.\[\]]+)                     # name / .name
    """,
    re.VERBOSE,
)


def parse_path(path: str) -> tuple[str | int, ...]:
    """Path elements of a difference path, in deepdiff (``root['a'][0]``) or dotted
    (``a[0].b``) form; ``<root>`` and ``root`` are the empty path."""
    text = path.strip()
    if text in ("", "<root>", "root"):
        return ()
    if text.startswith(("root[", "root.")):
        text = text[4:]
    elements: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PATH_TOKEN.match(text, position)
        if match is None or match.end() == position:
            # Unparseable rest: keep it whole so it still matches itself.
            elements.append(text[position:])
            break
        position = match.end()
        single, double, number, other, name = match.groups()
        if single is not None:
            elements.append(single.replace("\\'", "'").replace("\\\\", "\\"))
        elif double is not None:
            elements.append(double.replace('\\"', '"').replace("\\\\", "\\"))
        elif number is not None:
            elements.append(int(number))
        elif other is not None:
            elements.append(other)
        else:
            elements.append(name)
    return tuple(elements)


# --------------------------------------------------------------------------- items


@dataclass(frozen=True)
class Raised:
    """Stands for "the call raised" on one side of a diff (shown, not quoted)."""

    type: str
    message: str = ""

    def __repr__(self) -> str:
        name = self.type[len("builtins.") :] if self.type.startswith("builtins.") else self.type
        return f"raised {name}: {self.message}" if self.message else f"raised {name}"


@dataclass(frozen=True)
class DiffLine:
    """One difference as shown: the path, and each side as short text."""

    path: str
    expected: str
    actual: str


@dataclass(frozen=True)
class ReportItem:
    """One replayed record, as the report shows it. Plain data only.

    Build it with ``ReportItem.create`` from live values; the constructor takes
    the already-rendered form (what ``from_dict`` restores).
    """

    nodeid: str
    key: str
    record_id: str
    outcome: str
    cassette: str = ""
    duration_ms_recorded: float | None = None
    duration_ms_new: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    inputs: Sequence[tuple[str, str]] = ()
    expected: View | None = None
    actual: View | None = None
    differences: Sequence[DiffLine] = ()
    message: str = ""

    @classmethod
    def create(
        cls,
        *,
        nodeid: str,
        key: str,
        record_id: str,
        outcome: str,
        cassette: str = "",
        duration_ms_recorded: float | None = None,
        duration_ms_new: float | None = None,
        metadata: Mapping[str, object] | None = None,
        inputs: Mapping[str, object] | None = None,
        expected: object = None,
        actual: object = None,
        has_expected: bool = False,
        has_actual: bool = False,
        differences: Iterable[object] = (),
        message: str = "",
    ) -> ReportItem:
        """Render live values into a report item.

        ``differences`` holds objects with ``path``/``expected``/``actual``
        attributes (``compare.Difference``) or ``(path, expected, actual)``
        tuples. ``has_expected``/``has_actual`` say whether the two sides exist
        (``None`` is a legitimate output, so it cannot mean "absent").
        """
        if outcome not in OUTCOMES and outcome not in _EXTRA_OUTCOMES:
            raise ValueError(
                f"unknown report outcome {outcome!r} for {nodeid}; "
                f"expected one of {', '.join(OUTCOMES + _EXTRA_OUTCOMES)}"
            )
        lines: list[DiffLine] = []
        for difference in differences:
            if isinstance(difference, tuple):
                path, old, new = difference
            else:
                path = getattr(difference, "path")  # noqa: B009 - duck-typed on purpose
                old = getattr(difference, "expected")  # noqa: B009
                new = getattr(difference, "actual")  # noqa: B009
            lines.append(DiffLine(str(path), short_repr(old), short_repr(new)))
        return cls(
            nodeid=nodeid,
            key=key,
            record_id=record_id,
            outcome=outcome,
            cassette=cassette,
            duration_ms_recorded=_float_or_none(duration_ms_recorded),
            duration_ms_new=_float_or_none(duration_ms_new),
            metadata={str(k): _meta_text(v) for k, v in (metadata or {}).items()},
            inputs=tuple((str(k), short_repr(v, 400)) for k, v in (inputs or {}).items()),
            expected=to_view(expected) if has_expected else None,
            actual=to_view(actual) if has_actual else None,
            differences=tuple(lines),
            message=message,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for xdist's workeroutput or JSON)."""
        data = dataclasses.asdict(self)
        data["metadata"] = dict(self.metadata)
        data["inputs"] = [list(pair) for pair in self.inputs]
        data["differences"] = [[d.path, d.expected, d.actual] for d in self.differences]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportItem:
        return cls(
            nodeid=str(data["nodeid"]),
            key=str(data["key"]),
            record_id=str(data["record_id"]),
            outcome=str(data["outcome"]),
            cassette=str(data.get("cassette", "")),
            duration_ms_recorded=_float_or_none(data.get("duration_ms_recorded")),
            duration_ms_new=_float_or_none(data.get("duration_ms_new")),
            metadata={str(k): str(v) for k, v in dict(data.get("metadata") or {}).items()},
            inputs=tuple((str(k), str(v)) for k, v in data.get("inputs") or ()),
            expected=data.get("expected"),
            actual=data.get("actual"),
            differences=tuple(DiffLine(*map(str, d)) for d in data.get("differences") or ()),
            message=str(data.get("message", "")),
        )


def _float_or_none(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _meta_text(value: object) -> str:
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:199] + "…"
    return short_repr(value, 200)


# --------------------------------------------------------------------------- the report


class ReplayReport:
    """A replay run as one HTML page. ``render()`` is deterministic for given inputs."""

    def __init__(
        self,
        items: Iterable[ReportItem],
        *,
        title: str = "pytest-replay report",
        generated_at: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> None:
        self.items: list[ReportItem] = list(items)
        self.title = title
        self.generated_at = generated_at or datetime.now(timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
        self.context: dict[str, str] = dict(context or {})

    def counts(self) -> dict[str, int]:
        """Items per outcome: every summary outcome, plus extra ones that occur."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for item in self.items:
            counts[item.outcome] = counts.get(item.outcome, 0) + 1
        return counts

    def summary_lines(self) -> Iterator[str]:
        """The summary as terminal lines (the same counts as the page's bar)."""
        counts = self.counts()
        yield f"replay report: {len(self.items)} item{'s' if len(self.items) != 1 else ''}"
        yield ", ".join(f"{n} {_LABELS.get(o, o)}" for o, n in counts.items())

    def metadata_columns(self) -> list[str]:
        """Metadata keys shown as table columns: the common LLM ones first."""
        seen: dict[str, None] = {}
        for item in self.items:
            for name in item.metadata:
                seen.setdefault(name, None)
        preferred = [name for name in ("model", "tokens", "cost") if name in seen]
        rest = sorted(name for name in seen if name not in preferred)
        return (preferred + rest)[:MAX_META_COLUMNS]

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page atomically (temp file in the same directory, then rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.render().encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    # ------------------------------------------------------------------ rendering

    def render(self) -> str:
        meta_columns = self.metadata_columns()
        body = "\n".join(
            [
                self._render_header(),
                self._render_summary(),
                self._render_controls(),
                self._render_table(meta_columns),
            ]
        )
        return _PAGE.format(
            csp=_CSP,
            title=_e(self.title),
            style=_STYLE,
            script=_SCRIPT,
            body=body,
        )

    def _render_header(self) -> str:
        context = "".join(
            f"<span><b>{_e(name)}</b> {_e(value)}</span>" for name, value in self.context.items()
        )
        return (
            f'<header><h1>{_e(self.title)}</h1><p class="context">'
            f"<span>generated {_e(self.generated_at)}</span>{context}</p></header>"
        )

    def _render_summary(self) -> str:
        counts = self.counts()
        buttons = [
            f'<button type="button" class="count all" data-outcome="" aria-pressed="true">'
            f'<span class="n">{len(self.items)}</span> all</button>'
        ]
        for outcome, number in counts.items():
            if outcome in _EXTRA_OUTCOMES and number == 0:
                continue
            buttons.append(
                f'<button type="button" class="count o-{_e(outcome)}" data-outcome="{_e(outcome)}"'
                f' aria-pressed="false"><span class="n">{number}</span> '
                f"{_e(_LABELS.get(outcome, outcome))}</button>"
            )
        return f'<nav class="summary" id="summary">{"".join(buttons)}</nav>'

    def _render_controls(self) -> str:
        options = "".join(
            f'<option value="{_e(o)}">{_e(_LABELS.get(o, o))}</option>'
            for o in (*OUTCOMES, *_EXTRA_OUTCOMES)
        )
        return (
            '<div class="controls">'
            '<input id="filter-text" type="search" placeholder="filter by key, record id, test…"'
            ' aria-label="filter by text">'
            '<select id="filter-outcome" aria-label="filter by outcome">'
            f'<option value="">all outcomes</option>{options}</select>'
            '<span id="shown-count" aria-live="polite"></span>'
            "</div>"
        )

    def _render_table(self, meta_columns: list[str]) -> str:
        if not self.items:
            return '<p class="empty">No replay items ran in this session.</p>'
        head = [
            ("key", "text"),
            ("record id", "text"),
            ("outcome", "text"),
            ("recorded ms", "num"),
            ("new ms", "num"),
            ("Δ ms", "num"),
        ] + [(name, "meta") for name in meta_columns]
        header = "".join(
            f'<th data-type="{kind}" data-col="{index}" tabindex="0" aria-sort="none">'
            f"{_e(label)}</th>"
            for index, (label, kind) in enumerate(head)
        )
        rows = "\n".join(
            self._render_item(index, item, meta_columns, len(head))
            for index, item in enumerate(self.items)
        )
        return (
            f'<table id="items"><thead><tr>{header}</tr></thead>'
            f'<tbody id="item-rows">\n{rows}\n</tbody></table>'
        )

    def _render_item(
        self, index: int, item: ReportItem, meta_columns: list[str], width: int
    ) -> str:
        old, new = item.duration_ms_recorded, item.duration_ms_new
        delta = new - old if old is not None and new is not None else None
        search = " ".join([item.key, item.record_id, item.nodeid, item.outcome, item.cassette])
        cells = [
            _td(item.key, item.key, title=item.nodeid),
            _td(item.record_id, item.record_id, cls="mono"),
            _td(
                _LABELS.get(item.outcome, item.outcome),
                item.outcome,
                cls=f"outcome o-{item.outcome}",
            ),
            _td(_ms(old), _num(old), cls="num"),
            _td(_ms(new), _num(new), cls="num"),
            _td(_ms(delta, signed=True), _num(delta), cls="num" + _delta_class(old, new)),
        ]
        for name in meta_columns:
            value = item.metadata.get(name, "")
            cells.append(_td(value, _meta_sort(value)))
        detail = self._render_detail(item)
        main = (
            f'<tr class="item" id="item-{index}" data-index="{index}"'
            f' data-outcome="{_e(item.outcome)}" data-search="{_e(search.lower())}"'
            f' tabindex="0" aria-expanded="false" aria-controls="detail-{index}">'
            f"{''.join(cells)}</tr>"
        )
        return (
            f'{main}\n<tr class="detail" id="detail-{index}" data-index="{index}" hidden>'
            f'<td colspan="{width}">{detail}</td></tr>'
        )

    def _render_detail(self, item: ReportItem) -> str:
        parts = ['<div class="detail-body">', "<dl class=facts>"]
        facts = [("test id", item.nodeid), ("key", item.key), ("record id", item.record_id)]
        if item.cassette:
            facts.append(("cassette", item.cassette))
        facts.append(("outcome", _LABELS.get(item.outcome, item.outcome)))
        for name, value in item.metadata.items():
            facts.append((f"metadata: {name}", value))
        parts.extend(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
        parts.append("</dl>")
        if item.message:
            parts.append(f'<pre class="message">{_e(item.message)}</pre>')
        parts.append("<h3>inputs</h3>")
        if item.inputs:
            rows = "".join(
                f'<tr><th scope="row">{_e(name)}</th><td class="mono">{_e(value)}</td></tr>'
                for name, value in item.inputs
            )
            parts.append(f'<table class="inputs">{rows}</table>')
        else:
            parts.append('<p class="muted">(no arguments)</p>')
        if item.differences:
            shown = item.differences[:MAX_DIFF_LINES]
            rows = "".join(
                f'<tr><td class="mono path">{_e(d.path)}</td>'
                f'<td class="mono old">{_e(d.expected)}</td>'
                f'<td class="arrow">→</td><td class="mono new">{_e(d.actual)}</td></tr>'
                for d in shown
            )
            rest = len(item.differences) - len(shown)
            more = f'<p class="muted">… and {rest} more</p>' if rest > 0 else ""
            parts.append(
                f"<h3>changes ({len(item.differences)})</h3>"
                '<table class="changes"><thead><tr><th>path</th><th>expected</th><th></th>'
                f"<th>actual</th></tr></thead><tbody>{rows}</tbody></table>{more}"
            )
        if item.expected is not None or item.actual is not None:
            changed = [parse_path(d.path) for d in item.differences]
            parts.append(
                '<h3>expected vs actual</h3><div class="sbs">'
                + _side("expected (recorded)", item.expected, changed, "old")
                + _side("actual (replayed)", item.actual, changed, "new")
                + "</div>"
            )
        parts.append("</div>")
        return "".join(parts)


# --------------------------------------------------------------------------- helpers


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _td(text: str, sort: str, *, cls: str = "", title: str = "") -> str:
    attributes = f' data-sort="{_e(sort)}"'
    if cls:
        attributes += f' class="{_e(cls)}"'
    if title:
        attributes += f' title="{_e(title)}"'
    return f"<td{attributes}>{_e(text)}</td>"


def _ms(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    # Replayed calls are often far below a millisecond: keep their digits.
    digits = 3 if abs(value) < 10 else 1
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)


def _delta_class(old: float | None, new: float | None) -> str:
    if old is None or new is None or old <= 0:
        return ""
    if new > old * 1.5:
        return " slower"
    if new < old / 1.5:
        return " faster"
    return ""


def _meta_sort(value: str) -> str:
    try:
        return repr(float(value))
    except ValueError:
        return value


def _covered(path: tuple[str | int, ...], changed: list[tuple[str | int, ...]]) -> bool:
    """True when ``path`` is a changed path or lies below one."""
    return any(path[: len(c)] == c for c in changed)


def _side(label: str, view: View | None, changed: list[tuple[str | int, ...]], cls: str) -> str:
    if view is None:
        body = '<div class="line muted">(nothing: this side does not exist)</div>'
    else:
        lines: list[str] = []
        _lines(view, (), "", 0, "", changed, lines)
        if len(lines) > MAX_LINES:
            rest = len(lines) - MAX_LINES
            lines = [*lines[:MAX_LINES], f'<div class="line muted">… {rest} more lines</div>']
        body = "".join(lines)
    return (
        f'<section class="side {cls}"><h4>{_e(label)}</h4>'
        f'<div class="tree mono">{body}</div></section>'
    )


def _line(
    depth: int, text: str, path: tuple[str | int, ...], changed: list[tuple[str | int, ...]]
) -> str:
    hit = _covered(path, changed)
    display = _display_path(path)
    return (
        f'<div class="line{" changed" if hit else ""}" data-path="{_e(display)}"'
        f' data-depth="{depth}">{"  " * depth}{_e(text)}</div>'
    )


def _lines(
    node: View,
    path: tuple[str | int, ...],
    prefix: str,
    depth: int,
    suffix: str,
    changed: list[tuple[str | int, ...]],
    out: list[str],
) -> None:
    # Iterative enough for MAX_DEPTH; the view is already bounded in depth.
    kind = node[0] if node else "leaf"
    if kind == "leaf":
        out.append(_line(depth, f"{prefix}{node[1]}{suffix}", path, changed))
        return
    if kind == "seq":
        _, open_, close, children, omitted = node
        if not children and not omitted:
            out.append(_line(depth, f"{prefix}{open_}{close}{suffix}", path, changed))
            return
        out.append(_line(depth, f"{prefix}{open_}", path, changed))
        for element, child in children:
            _lines(child, (*path, element), "", depth + 1, ",", changed, out)
    else:
        _, open_, close, entries, omitted = node
        if not entries and not omitted:
            out.append(_line(depth, f"{prefix}{open_}{close}{suffix}", path, changed))
            return
        out.append(_line(depth, f"{prefix}{open_}", path, changed))
        separator = "" if open_.endswith("(") else ": "
        for element, label, child in entries:
            _lines(child, (*path, element), f"{label}{separator}", depth + 1, ",", changed, out)
    if omitted:
        out.append(_line(depth + 1, f"… {omitted} more", path, []))
    out.append(_line(depth, f"{close}{suffix}", path, changed))


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _display_path(path: tuple[str | int, ...]) -> str:
    out: list[str] = []
    for element in path:
        if isinstance(element, str) and _IDENTIFIER.match(element):
            out.append(f".{element}" if out else element)
        elif isinstance(element, int):
            out.append(f"[{element}]")
        else:
            out.append(f"[{element!r}]")
    return "".join(out) or "<root>"


# --------------------------------------------------------------------------- page assets
# Nothing below is formatted with user data: the page template gets only the
# escaped title and the body built above, the style and script are constants.

_STYLE = """
:root{--bg:#fff;--fg:#1d232a;--muted:#6b7580;--line:#e3e7eb;--head:#f5f7f9;
--matched:#1a7f37;--diverged:#cf222e;--unreplayable:#9a6700;--nondeterministic:#8250df;
--updated:#0969da;--error:#cf222e;--skipped:#6b7580;--old:#ffebe9;--new:#dafbe1}
*{box-sizing:border-box}
body{margin:0;padding:1rem 1.5rem;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--fg);background:var(--bg)}
h1{font-size:1.35rem;margin:0 0 .25rem}
h3{font-size:.95rem;margin:1rem 0 .35rem}
h4{font-size:.85rem;margin:0 0 .35rem;color:var(--muted)}
.context{margin:0 0 1rem;color:var(--muted)}
.context span{margin-right:1.25rem}
.mono,.tree,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.summary{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:.75rem}
.count{border:1px solid var(--line);background:var(--head);border-radius:6px;padding:.35rem .8rem;
cursor:pointer;font:inherit}
.count .n{font-weight:700;font-size:1.05rem;margin-right:.2rem}
.count[aria-pressed=true]{outline:2px solid var(--fg)}
.o-matched{color:var(--matched)}.o-diverged{color:var(--diverged)}
.o-unreplayable{color:var(--unreplayable)}.o-nondeterministic{color:var(--nondeterministic)}
.o-updated{color:var(--updated)}.o-error{color:var(--error)}.o-skipped{color:var(--skipped)}
.controls{display:flex;gap:.5rem;align-items:center;margin-bottom:.75rem}
.controls input{flex:0 1 28rem;padding:.35rem .5rem;font:inherit}
.controls select{padding:.3rem;font:inherit}
#shown-count{color:var(--muted)}
table{border-collapse:collapse}
#items{width:100%}
#items th{position:sticky;top:0;background:var(--head);text-align:left;cursor:pointer;
user-select:none;white-space:nowrap}
#items th[aria-sort=ascending]::after{content:" ▲"}
#items th[aria-sort=descending]::after{content:" ▼"}
#items td,#items th{border-bottom:1px solid var(--line);padding:.3rem .5rem;vertical-align:top}
tr.item{cursor:pointer}
tr.item:hover,tr.item:focus{background:#f6f8fa}
tr.item[aria-expanded=true]{background:#eef4ff}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.slower{color:var(--diverged)}td.faster{color:var(--matched)}
td.outcome{font-weight:600}
tr.detail>td{background:#fbfcfd;padding:.5rem 1rem 1rem}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:0}
.facts dt{color:var(--muted)}.facts dd{margin:0;word-break:break-all}
.inputs th{text-align:left;padding-right:1rem;font-weight:600;vertical-align:top}
.inputs td{white-space:pre-wrap;word-break:break-all}
.changes td,.changes th{padding:.15rem .6rem;text-align:left;vertical-align:top}
.changes .old{background:var(--old)}.changes .new{background:var(--new)}
.changes .path{font-weight:600}
.sbs{display:grid;grid-template-columns:1fr 1fr;gap:.75rem}
.side{border:1px solid var(--line);border-radius:6px;padding:.5rem;overflow:auto;max-height:36rem}
.tree .line{white-space:pre;min-height:1.2em}
.side.old .line.changed{background:var(--old)}
.side.new .line.changed{background:var(--new)}
.muted{color:var(--muted)}
pre.message{background:var(--head);padding:.5rem;white-space:pre-wrap;word-break:break-word}
.empty{color:var(--muted)}
"""

_SCRIPT = """
"use strict";
(function () {
  var tbody = document.getElementById("item-rows");
  var text = document.getElementById("filter-text");
  var select = document.getElementById("filter-outcome");
  var shown = document.getElementById("shown-count");
  var buttons = Array.prototype.slice.call(document.querySelectorAll("#summary .count"));
  if (!tbody) { return; }
  function pairs() {
    return Array.prototype.slice.call(tbody.querySelectorAll("tr.item")).map(function (row) {
      return [row, document.getElementById("detail-" + row.getAttribute("data-index"))];
    });
  }
  function toggle(row, open) {
    var detail = document.getElementById("detail-" + row.getAttribute("data-index"));
    var expand = open === undefined ? row.getAttribute("aria-expanded") !== "true" : open;
    row.setAttribute("aria-expanded", expand ? "true" : "false");
    detail.hidden = !expand || row.hidden;
  }
  function apply() {
    var needle = text.value.trim().toLowerCase();
    var outcome = select.value;
    var count = 0;
    pairs().forEach(function (pair) {
      var row = pair[0];
      var ok = (!outcome || row.getAttribute("data-outcome") === outcome) &&
        (!needle || row.getAttribute("data-search").indexOf(needle) !== -1);
      row.hidden = !ok;
      pair[1].hidden = !ok || row.getAttribute("aria-expanded") !== "true";
      if (ok) { count += 1; }
    });
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-outcome") === outcome ? "true" : "false");
    });
    shown.textContent = count + " shown";
  }
  function sortBy(th) {
    var col = Number(th.getAttribute("data-col"));
    var numeric = th.getAttribute("data-type") !== "text";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (other) {
      other.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var list = pairs();
    function value(pair) { return pair[0].children[col].getAttribute("data-sort"); }
    list.sort(function (a, b) {
      var x = value(a), y = value(b), result;
      // Cells without a value stay at the bottom whichever way the column is sorted.
      if ((x === "") !== (y === "")) { return x === "" ? 1 : -1; }
      var nx = parseFloat(x), ny = parseFloat(y);
      if (numeric && !isNaN(nx) && !isNaN(ny)) { result = nx - ny; }
      else { result = x < y ? -1 : (x > y ? 1 : 0); }
      if (result === 0) {
        return Number(a[0].getAttribute("data-index")) - Number(b[0].getAttribute("data-index"));
      }
      return ascending ? result : -result;
    });
    list.forEach(function (pair) { tbody.appendChild(pair[0]); tbody.appendChild(pair[1]); });
  }
  tbody.addEventListener("click", function (event) {
    var row = event.target.closest("tr.item");
    if (row) { toggle(row); }
  });
  tbody.addEventListener("keydown", function (event) {
    var row = event.target.closest("tr.item");
    if (row && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      toggle(row);
    }
  });
  document.querySelectorAll("#items th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { sortBy(th); }
    });
  });
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      select.value = b.getAttribute("data-outcome");
      apply();
    });
  });
  text.addEventListener("input", apply);
  select.addEventListener("change", apply);
  var initial = (window.location.hash.match(/outcome=([a-z]+)/) || [])[1];
  if (initial) { select.value = initial; }
  apply();
})();
"""


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# default-src 'none': no fetch, image, font, frame or connection of any kind;
# only the page's own script and style blocks (by hash) may run.
_CSP = (
    "default-src 'none'; "
    f"script-src {_csp_hash(_SCRIPT)}; "
    f"style-src {_csp_hash(_STYLE)}; "
    "base-uri 'none'; form-action 'none'"
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pytest-replay">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
<script>{script}</script>
</body>
</html>
"""
