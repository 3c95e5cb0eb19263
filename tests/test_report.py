"""The HTML replay report as a pure object: content, escaping, bounds, transport."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.report import (
    OUTCOMES,
    ReplayReport,
    ReportItem,
    parse_path,
    to_view,
)

HOSTILE = "</script><img src=x onerror=alert(1)>\"'&<!--"


def _item(**overrides: Any) -> ReportItem:
    fields: dict[str, Any] = {
        "nodeid": "cassettes/pricing.quote.cassette::quote[3f2a9c1d]",
        "key": "pricing.quote",
        "record_id": "3f2a9c1d",
        "outcome": "diverged",
        "duration_ms_recorded": 1.5,
        "duration_ms_new": 2.0,
        "inputs": {"sku": "A-1", "qty": 12},
        "expected": {"sku": "A-1", "qty": 12, "total": 114.0},
        "actual": {"sku": "A-1", "qty": 12, "total": 108.0},
        "has_expected": True,
        "has_actual": True,
        "differences": [("total", 114.0, 108.0)],
    }
    fields.update(overrides)
    return ReportItem.create(**fields)


class _Page(HTMLParser):
    """Collects what the tests look at: elements by tag/class, texts, scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._raw: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._raw = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._raw:
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw == "script":
            self.scripts[-1] += data
        elif self._raw == "style":
            self.styles[-1] += data
        else:
            self.text.append(data)

    def with_class(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag and cls in (attrs.get("class") or "").split()
        ]


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def test_summary_counts_every_outcome_and_table_has_one_row_per_item() -> None:
    items = [_item(record_id=f"id{i}", outcome=o) for i, o in enumerate(OUTCOMES)]
    items.append(_item(record_id="extra", outcome="diverged"))
    report = ReplayReport(items, generated_at="fixed")
    assert report.counts() == {
        "matched": 1,
        "diverged": 2,
        "unreplayable": 1,
        "nondeterministic": 1,
        "updated": 1,
    }
    page = _parse(report.render())
    buttons = {attrs["data-outcome"]: attrs for name, attrs in page.elements if name == "button"}
    assert set(buttons) == {"", *OUTCOMES}  # no "error"/"skipped" buttons when none occurred
    rows = page.with_class("tr", "item")
    assert [row["data-outcome"] for row in rows] == [*OUTCOMES, "diverged"]
    assert len(page.with_class("tr", "detail")) == len(items)
    assert list(report.summary_lines()) == [
        "replay report: 6 items",
        "1 matched, 2 diverged, 1 unreplayable, 1 non-deterministic, 1 updated",
    ]


def test_error_outcome_gets_a_button_only_when_it_occurs() -> None:
    page = _parse(ReplayReport([_item(outcome="error")]).render())
    outcomes = [attrs["data-outcome"] for name, attrs in page.elements if name == "button"]
    assert "error" in outcomes
    assert "skipped" not in outcomes


def test_unknown_outcome_is_rejected_with_the_item_named() -> None:
    with pytest.raises(ValueError, match=r"unknown report outcome 'exploded' for node-x"):
        _item(nodeid="node-x", outcome="exploded")


def test_diverged_item_shows_inputs_changes_and_highlights_changed_path() -> None:
    page_text = ReplayReport([_item()], generated_at="fixed").render()
    page = _parse(page_text)
    text = "".join(page.text)
    assert "'A-1'" in text
    assert "12" in text
    changed = page.with_class("div", "changed")
    # one highlighted line per side: 'total': 114.0 / 108.0
    assert [attrs["data-path"] for attrs in changed] == ["total", "total"]
    assert "'total': 114.0," in text
    assert "'total': 108.0," in text
    unchanged_paths = {
        attrs["data-path"]
        for attrs in page.with_class("div", "line")
        if "changed" not in (attrs.get("class") or "")
    }
    assert {"sku", "qty"} <= unchanged_paths


@pytest.mark.parametrize("path", ["total", "root['total']", 'root["total"]', ".total"])
def test_changed_path_forms_all_highlight_the_same_line(path: str) -> None:
    page = _parse(ReplayReport([_item(differences=[(path, 114.0, 108.0)])]).render())
    assert [a["data-path"] for a in page.with_class("div", "changed")] == ["total", "total"]


def test_changed_container_highlights_everything_below_it() -> None:
    item = _item(
        expected={"lines": [{"id": 1, "p": 9.5}], "n": 1},
        actual={"lines": [{"id": 1, "p": 9.0}], "n": 1},
        differences=[("root['lines'][0]", {"id": 1, "p": 9.5}, {"id": 1, "p": 9.0})],
    )
    page = _parse(ReplayReport([item]).render())
    changed = [a["data-path"] for a in page.with_class("div", "changed")]
    # per side: the dict's opening line, both fields, the closing line
    assert changed == ["lines[0]", "lines[0].id", "lines[0].p", "lines[0]"] * 2


def test_missing_side_is_said_not_invented() -> None:
    item = _item(actual=None, has_actual=False, outcome="error", message="fixture 'db' not found")
    page = ReplayReport([item]).render()
    assert "(nothing: this side does not exist)" in page
    assert "fixture &#x27;db&#x27; not found" in page


def test_hostile_strings_are_escaped_everywhere() -> None:
    item = ReportItem.create(
        nodeid=HOSTILE,
        key=HOSTILE,
        record_id=HOSTILE,
        outcome="diverged",
        cassette=HOSTILE,
        metadata={HOSTILE: HOSTILE},
        inputs={HOSTILE: HOSTILE},
        expected={HOSTILE: [HOSTILE]},
        actual={HOSTILE: HOSTILE},
        has_expected=True,
        has_actual=True,
        differences=[(HOSTILE, HOSTILE, HOSTILE)],
        message=HOSTILE,
    )
    report = ReplayReport([item], title=HOSTILE, context={HOSTILE: HOSTILE}, generated_at=HOSTILE)
    page_text = report.render()
    assert page_text.count("<script") == 1
    assert page_text.count("</script>") == 1
    assert "<img" not in page_text
    assert "<!--" not in page_text
    assert "onerror=alert(1)" in page_text.replace("&#x27;", "'")  # present, as text only
    page = _parse(page_text)
    assert [tag for tag, _ in page.elements if tag == "img"] == []
    # every attribute value that carries user data survived escaping intact
    rows = page.with_class("tr", "item")
    assert rows[0]["data-search"] is not None
    assert HOSTILE.lower() in rows[0]["data-search"]
    assert HOSTILE in "".join(page.text)


def test_page_needs_no_network_and_csp_allows_only_its_own_blocks() -> None:
    page_text = ReplayReport([_item()]).render()
    assert not re.search(r"(?:src|href)\s*=", page_text), "no external resources at all"
    assert "http://" not in page_text
    assert "https://" not in page_text
    page = _parse(page_text)
    csp = next(
        attrs["content"]
        for tag, attrs in page.elements
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert csp is not None
    assert "default-src 'none'" in csp

    def sha(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert page.scripts
    assert page.styles
    assert f"script-src 'sha256-{sha(page.scripts[0])}'" in csp
    assert f"style-src 'sha256-{sha(page.styles[0])}'" in csp
    # no inline style attributes: the style hash would block them anyway
    assert all("style" not in attrs for _, attrs in page.elements)


def test_render_is_deterministic_for_fixed_inputs() -> None:
    def make() -> str:
        return ReplayReport([_item(), _item(record_id="b")], generated_at="t").render()

    assert make() == make()


def test_empty_report_says_so() -> None:
    page = ReplayReport([], generated_at="t").render()
    assert "No replay items ran in this session." in page
    assert ReplayReport([]).counts() == dict.fromkeys(OUTCOMES, 0)


def test_metadata_columns_put_model_and_tokens_first_and_are_capped() -> None:
    items = [
        _item(metadata={"zeta": 1, "tokens": {"in": 10, "out": 5}, "model": "fake-1"}),
        _item(metadata={f"k{i}": i for i in range(10)}),
    ]
    report = ReplayReport(items)
    columns = report.metadata_columns()
    assert columns[:2] == ["model", "tokens"]
    assert len(columns) == 6
    page = report.render()
    assert "{&#x27;in&#x27;: 10, &#x27;out&#x27;: 5}" in page


def test_durations_and_delta_are_sortable_numbers() -> None:
    page = _parse(ReplayReport([_item(duration_ms_recorded=812.0, duration_ms_new=3.0)]).render())
    sorts = [attrs.get("data-sort") for tag, attrs in page.elements if tag == "td"]
    assert sorts[3:6] == ["812.0", "3.0", "-809.0"]
    assert page.with_class("td", "faster")


def test_missing_or_bogus_durations_render_as_dash() -> None:
    item = _item(duration_ms_recorded=None, duration_ms_new=float("nan"))
    assert item.duration_ms_recorded is None
    assert item.duration_ms_new is None
    page = _parse(ReplayReport([item]).render())
    cells = [attrs for tag, attrs in page.elements if tag == "td"][3:6]
    assert [c.get("data-sort") for c in cells] == ["", "", ""]


def test_to_dict_round_trips_through_json() -> None:
    @dataclass
    class Point:
        x: int
        y: int

    item = _item(
        metadata={"model": "fake-1", "tokens": 42},
        expected={"p": Point(1, 2), "s": {3, 1, 2}, "t": (1, "a")},
        actual=None,
        has_actual=False,
    )
    wire = json.loads(json.dumps(item.to_dict()))
    again = ReportItem.from_dict(wire)
    assert again == item
    assert (
        ReplayReport([again], generated_at="t").render()
        == ReplayReport([item], generated_at="t").render()
    )


def test_differences_accept_objects_with_path_expected_actual() -> None:
    @dataclass
    class Difference:
        path: str
        expected: object
        actual: object

    item = _item(differences=[Difference("total", 114.0, 108.0)])
    assert [(d.path, d.expected, d.actual) for d in item.differences] == [
        ("total", "114.0", "108.0")
    ]


def test_write_is_atomic_and_creates_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "report.html"
    written = ReplayReport([_item()]).write(target)
    assert written == target
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_write_failure_leaves_no_temp_file_and_keeps_the_old_report(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old report", encoding="utf-8")
    report = ReplayReport([_item()])

    def boom() -> str:
        raise RuntimeError("render failed")

    report.render = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="render failed"):
        report.write(target)
    assert target.read_text(encoding="utf-8") == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# --------------------------------------------------------------------------- views


def test_view_bounds_wide_containers() -> None:
    view = to_view(list(range(1000)), max_items=5)
    assert view[0] == "seq"
    assert len(view[3]) == 5
    assert view[4] == 995
    page = ReplayReport([_item(expected=list(range(1000)), differences=[])]).render()
    assert "… 800 more" in page


def test_view_bounds_depth_and_total_nodes() -> None:
    deep: Any = "bottom"
    for _ in range(100):
        deep = [deep]
    view = to_view(deep, max_depth=3)
    assert json.dumps(view).count('"seq"') == 3
    wide = [[[i, i] for i in range(100)] for _ in range(100)]  # 20,000 leaves
    nodes = json.dumps(to_view(wide, max_nodes=500)).count('"leaf"')
    assert nodes < 700


def test_view_survives_cycles_and_failing_repr() -> None:
    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("nope")

    loop: list[Any] = [1]
    loop.append(loop)
    view = to_view({"loop": loop, "bad": Bad()})
    text = json.dumps(view)
    assert "<cycle: list>" in text
    assert "<Bad (repr failed: RuntimeError)>" in text


def test_view_truncates_long_strings() -> None:
    view = to_view("x" * 10_000)
    assert view[0] == "leaf"
    assert len(view[1]) < 2100
    assert view[1].endswith("more characters)")


@pytest.mark.parametrize(
    ("path", "elements"),
    [
        ("<root>", ()),
        ("root", ()),
        ("total", ("total",)),
        ("root['total']", ("total",)),
        ('root["a b"][3]', ("a b", 3)),
        ("items[0].id", ("items", 0, "id")),
        ("root[0]['x']", (0, "x")),
        ("root['it\\'s']", ("it's",)),
        ("a[(1, 2)]", ("a", "(1, 2)")),
        ("error.message", ("error", "message")),
    ],
)
def test_parse_path(path: str, elements: tuple[object, ...]) -> None:
    assert parse_path(path) == elements
