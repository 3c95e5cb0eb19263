"""``pytest --replay --replay-report=PATH``: the HTML report of a real replay run."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

PRICING = """
from pytest_replay import replay_trace


def _usage(call):
    return {"model": "fake-1", "tokens": call.arguments["qty"] * 10}


@replay_trace(metadata=_usage)
def quote(sku: str, qty: int) -> dict:
    unit = 9.5 if qty >= 10 else 10.0
    return {"sku": sku, "qty": qty, "total": unit * qty}
"""

TESTS = """
from pricing import quote


def test_quotes():
    assert quote("A-1", 2)["total"] == 20.0
    assert quote("A-1", 9)["total"] == 90.0
    assert quote("A-1", 12)["total"] > 0
"""


class _Rows(HTMLParser):
    """The report's item rows: (record id, outcome) and every text node."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict[str, str | None]] = []
        self.changed: list[str | None] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "tr" and "item" in classes:
            self.rows.append(attributes)
        if tag == "div" and "changed" in classes:
            self.changed.append(attributes.get("data-path"))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _read(path: Path) -> _Rows:
    parser = _Rows()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(params=[[], ["-n", "0"], ["-n", "2"]], ids=["no-xdist", "n0", "n2"])
def xdist_args(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


def _recorded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(pricing=PRICING, test_pricing=TESTS)
    result = pytester.runpytest_subprocess("--replay-record", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "cassettes" / "pricing.quote.cassette").is_file()


def _break_bulk_price(pytester: pytest.Pytester) -> None:
    path = pytester.path / "pricing.py"
    path.write_text(path.read_text().replace("9.5 if qty", "9.0 if qty"))


def test_report_of_a_diverged_run(pytester: pytest.Pytester, xdist_args: list[str]) -> None:
    _recorded(pytester)
    _break_bulk_price(pytester)
    result = pytester.runpytest_subprocess(
        "--replay", "-m", "replay", "--replay-report=out/report.html", "-p", "no:cacheprovider",
        *xdist_args,
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)  # xdist: deselection happens on workers
    report = pytester.path / "out" / "report.html"
    result.stdout.fnmatch_lines([f"replay report: {report} (2 matched, 1 diverged)"])
    page = _read(report)
    # ordered by test id, so the page does not depend on -n or on scheduling
    nodeids = [str(row["data-search"]).split()[2] for row in page.rows]
    assert nodeids == sorted(nodeids)
    assert len(nodeids) == 3
    assert sorted(str(row["data-outcome"]) for row in page.rows) == [
        "diverged",
        "matched",
        "matched",
    ]
    text = "".join(page.text)
    # the diverged item: inputs, the change, both sides, the recorded metadata
    assert "qty" in text
    assert "'total': 114.0," in text
    assert "'total': 108.0," in text
    assert page.changed == ["total", "total"]
    assert "fake-1" in text
    assert "120" in text  # tokens recorded for qty=12
    # written once, by the controller: no worker leftovers next to it
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]


def test_ini_report_path_is_relative_to_the_rootdir(pytester: pytest.Pytester) -> None:
    _recorded(pytester)
    pytester.makeini("[pytest]\nreplay_report = reports/replay.html\n")
    sub = pytester.mkdir("sub")
    result = pytester.runpytest_subprocess("--replay", "-p", "no:cacheprovider", str(sub.parent))
    result.assert_outcomes(passed=4)
    page = _read(pytester.path / "reports" / "replay.html")
    assert [row["data-outcome"] for row in page.rows] == ["matched"] * 3


def test_no_report_option_means_no_report_plugin(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    assert config.pluginmanager.get_plugin("replay-report") is None
    config = pytester.parseconfigure("--replay-report=x.html")
    assert config.pluginmanager.get_plugin("replay-report") is not None


def test_report_without_replay_items_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--replay-report=r.html", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["replay report: *r.html (no replay items)"])
    assert "No replay items ran in this session." in (pytester.path / "r.html").read_text()


def test_unwritable_report_path_is_reported_and_does_not_change_the_outcome(
    pytester: pytest.Pytester,
) -> None:
    _recorded(pytester)
    (pytester.path / "blocker").write_text("a file where a directory should be")
    result = pytester.runpytest_subprocess(
        "--replay", "--replay-report=blocker/report.html", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["replay report NOT written to *blocker/report.html: *"])
    assert (pytester.path / "blocker").read_text() == "a file where a directory should be"


def test_hostile_recorded_data_is_escaped_end_to_end(pytester: pytest.Pytester) -> None:
    hostile = "</script><img src=x onerror=alert(1)>"
    pytester.makepyfile(
        echo=(
            "from pytest_replay import replay_trace\n\n"
            "@replay_trace\n"
            "def echo(text):\n"
            "    return {'said': text}\n"
        ),
        test_echo=f"from echo import echo\n\ndef test_echo():\n    echo({hostile!r})\n",
    )
    pytester.runpytest_subprocess("--replay-record", "-p", "no:cacheprovider").assert_outcomes(
        passed=1
    )
    path = pytester.path / "echo.py"
    path.write_text(path.read_text().replace("{'said': text}", "{'said': text + '!'}"))
    result = pytester.runpytest_subprocess(
        "--replay", "-m", "replay", "--replay-report=r.html", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1, deselected=1)
    raw = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert "<img" not in raw
    assert raw.count("<script") == 1
    page = _read(pytester.path / "r.html")
    assert "img" not in page.tags
    assert hostile in "".join(page.text)


def test_unreplayable_and_corrupt_cassettes_are_listed(pytester: pytest.Pytester) -> None:
    _recorded(pytester)
    # the traced function disappears: its records can no longer be replayed
    (pytester.path / "pricing.py").write_text("# quote() was removed\n")
    (pytester.path / "test_pricing.py").unlink()
    (pytester.path / "cassettes" / "junk.cassette").write_bytes(b"not a cassette at all")
    result = pytester.runpytest_subprocess(
        "--replay", "--replay-report=r.html", "-p", "no:cacheprovider"
    )
    assert result.ret == 1
    page = _read(pytester.path / "r.html")
    outcomes = sorted(str(row["data-outcome"]) for row in page.rows)
    assert outcomes == ["error", "unreplayable", "unreplayable", "unreplayable"]
    text = "".join(page.text)
    assert "junk.cassette" in text
    assert "unreplayable record: pricing.quote" in text


def test_updated_and_nondeterministic_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        noisy=(
            "import itertools\n"
            "from pytest_replay import replay_trace\n\n"
            "_ticks = itertools.count()\n\n"
            "@replay_trace\n"
            "def stamp(name):\n"
            "    return {'name': name, 'tick': next(_ticks)}\n"
        ),
        test_noisy="from noisy import stamp\n\ndef test_stamp():\n    stamp('a')\n",
    )
    pytester.runpytest_subprocess("--replay-record", "-p", "no:cacheprovider").assert_outcomes(
        passed=1
    )
    args = ["-m", "replay", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess("--replay-twice", "--replay-report=twice.html", *args)
    result.assert_outcomes(failed=1)
    page = _read(pytester.path / "twice.html")
    assert [row["data-outcome"] for row in page.rows] == ["nondeterministic"]
    assert "tick" in "".join(page.text)  # the path that differed between the two runs
    source = pytester.path / "noisy.py"
    source.write_text(source.read_text().replace("count()", "count(5)"))
    result = pytester.runpytest_subprocess("--replay-update", "--replay-report=update.html", *args)
    result.assert_outcomes(passed=1)
    page = _read(pytester.path / "update.html")
    assert [row["data-outcome"] for row in page.rows] == ["updated"]
    assert page.changed == ["tick", "tick"]  # what the update changed, side by side
