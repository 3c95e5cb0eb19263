"""The HTML report in a real, headless Chromium: filter, open, sort, stay inert.

Needs the ``report-test`` extra (playwright, used only as a DevTools client: it
drives the system's Chromium and never downloads a browser) and a Chromium
binary (Debian: ``apt-get install chromium``; or set ``PYTEST_REPLAY_CHROMIUM``).
Without them the tests are skipped with the reason; ``.ci/run`` installs both
and runs this file explicitly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.report import ReplayReport, ReportItem

HOSTILE = '</script><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _chromium() -> str | None:
    configured = os.environ.get("PYTEST_REPLAY_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    # CI sets PYTEST_REPLAY_REQUIRE_BROWSER after installing the browser, so a
    # broken install fails the run instead of quietly skipping these tests.
    if os.environ.get("PYTEST_REPLAY_REQUIRE_BROWSER"):
        pytest.fail(f"PYTEST_REPLAY_REQUIRE_BROWSER is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from playwright import sync_api
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[report-test]'")
    executable = _chromium()
    if executable is None:
        configured = os.environ.get("PYTEST_REPLAY_CHROMIUM")
        _unavailable(
            f"PYTEST_REPLAY_CHROMIUM={configured} is not a file"
            if configured
            else "no Chromium installed (apt-get install chromium, or set "
            "PYTEST_REPLAY_CHROMIUM to a Chromium binary)"
        )
    assert executable is not None
    profile = tmp_path_factory.mktemp("chromium-profile")  # empty --user-data-dir
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def _items() -> list[ReportItem]:
    def item(record_id: str, outcome: str, key: str = "pricing.quote", **kw: Any) -> ReportItem:
        return ReportItem.create(
            nodeid=f"cassettes/{key}.cassette::{key.rsplit('.', 1)[-1]}[{record_id}]",
            key=key,
            record_id=record_id,
            outcome=outcome,
            **kw,
        )

    return [
        item("aaaa0001", "matched", duration_ms_recorded=1.0, duration_ms_new=1.2),
        item(
            "bbbb0002",
            "diverged",
            duration_ms_recorded=1.1,
            duration_ms_new=9.0,
            inputs={"sku": "A-1", "qty": 12},
            expected={"sku": "A-1", "qty": 12, "total": 114.0},
            actual={"sku": "A-1", "qty": 12, "total": 108.0},
            has_expected=True,
            has_actual=True,
            differences=[("total", 114.0, 108.0)],
        ),
        item(
            "cccc0003",
            "diverged",
            key="llm.answer",
            duration_ms_recorded=812.0,
            duration_ms_new=3.0,
            metadata={"model": "fake-1", "tokens": 312},
            inputs={"question": HOSTILE},
            expected=HOSTILE,
            actual="fine",
            has_expected=True,
            has_actual=True,
            differences=[("<root>", HOSTILE, "fine")],
            message=HOSTILE,
        ),
        item("dddd0004", "unreplayable", message="input 'conn' is opaque (socket)"),
        item("eeee0005", "nondeterministic", differences=[("ts", 1, 2)]),
        item("ffff0006", "updated", duration_ms_recorded=5.0, duration_ms_new=4.0),
    ]


def _visible_ids(page: Any) -> list[str]:
    return [
        row.get_attribute("id")
        for row in page.locator("#item-rows tr.item").all()
        if row.is_visible()
    ]


def test_filter_to_diverged_open_one_and_read_the_diff(browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    report = ReplayReport(_items(), generated_at="fixed").write(tmp_path / "report.html")
    requests: list[str] = []
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(report.as_uri())
    assert page.locator("#shown-count").inner_text() == "6 shown"
    assert len(_visible_ids(page)) == 6

    # filter to the diverged items with the summary bar
    page.locator("#summary button[data-outcome=diverged]").click()
    assert _visible_ids(page) == ["item-1", "item-2"]
    assert page.locator("#shown-count").inner_text() == "2 shown"
    assert page.locator("#filter-outcome").input_value() == "diverged"
    button = page.locator("#summary button[data-outcome=diverged]")
    assert button.get_attribute("aria-pressed") == "true"

    # narrow further by text, then open the item
    page.locator("#filter-text").fill("pricing")
    assert _visible_ids(page) == ["item-1"]
    assert not page.locator("#detail-1").is_visible()
    page.locator("#item-1").click()
    detail = page.locator("#detail-1")
    assert detail.is_visible()
    assert page.locator("#item-1").get_attribute("aria-expanded") == "true"
    changes = detail.locator("table.changes tbody tr").all_inner_texts()
    assert len(changes) == 1
    assert changes[0].split() == ["total", "114.0", "→", "108.0"]
    inputs = detail.locator("table.inputs").inner_text()
    assert "sku" in inputs
    assert "'A-1'" in inputs
    old = detail.locator(".side.old .line.changed").all_inner_texts()
    new = detail.locator(".side.new .line.changed").all_inner_texts()
    assert [line.strip() for line in old] == ["'total': 114.0,"]
    assert [line.strip() for line in new] == ["'total': 108.0,"]
    # unchanged lines are shown, not highlighted
    assert "'sku': 'A-1'," in detail.locator(".side.old").inner_text()

    # clearing the text filter keeps the outcome filter; clicking again closes the item
    page.locator("#filter-text").fill("")
    assert _visible_ids(page) == ["item-1", "item-2"]
    page.locator("#item-1").click()
    assert not detail.is_visible()

    # hostile data is text: nothing ran, nothing was fetched
    page.locator("#item-2").click()
    detail2 = page.locator("#detail-2")
    assert HOSTILE in detail2.locator("pre.message").inner_text()
    assert HOSTILE in detail2.locator("table.inputs").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert dialogs == []
    assert errors == []
    assert requests == [report.as_uri()]


def test_sort_by_new_duration_both_ways(browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    report = ReplayReport(_items(), generated_at="fixed").write(tmp_path / "report.html")
    page.goto(report.as_uri())
    header = page.locator("#items th", has_text="new ms")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    # numbers first in ascending order, items without a duration last
    assert _visible_ids(page) == ["item-0", "item-2", "item-5", "item-1", "item-3", "item-4"]
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert _visible_ids(page) == ["item-1", "item-5", "item-2", "item-0", "item-3", "item-4"]
    # an open detail row travels with its item
    page.locator("#item-1").click()
    rows = page.locator("#item-rows > tr").evaluate_all("rows => rows.map(r => r.id)")
    assert rows[rows.index("item-1") + 1] == "detail-1"


def test_outcome_in_the_url_preselects_the_filter(browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    report = ReplayReport(_items(), generated_at="fixed").write(tmp_path / "report.html")
    page.goto(report.as_uri() + "#outcome=unreplayable")
    assert _visible_ids(page) == ["item-3"]


def test_report_written_by_a_real_replay_run(browser_page: Any, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        pricing=(
            "from pytest_replay import replay_trace\n\n"
            "@replay_trace\n"
            "def quote(sku, qty):\n"
            "    unit = 9.5 if qty >= 10 else 10.0\n"
            "    return {'sku': sku, 'qty': qty, 'total': unit * qty}\n"
        ),
        test_pricing=(
            "from pricing import quote\n\n"
            "def test_quotes():\n"
            "    assert quote('A-1', 2) and quote('A-1', 12)\n"
        ),
    )
    pytester.runpytest_subprocess("--replay-record", "-p", "no:cacheprovider").assert_outcomes(
        passed=1
    )
    source = pytester.path / "pricing.py"
    source.write_text(source.read_text().replace("9.5 if qty", "9.0 if qty"))
    result = pytester.runpytest_subprocess(
        "--replay", "--replay-report=report.html", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1)
    page = browser_page
    page.goto((pytester.path / "report.html").as_uri())
    assert page.locator("#summary button[data-outcome=diverged] .n").inner_text() == "1"
    page.locator("#summary button[data-outcome=diverged]").click()
    rows = page.locator("#item-rows tr.item")
    visible = [row for row in rows.all() if row.is_visible()]
    assert len(visible) == 1
    assert visible[0].locator("td").first.inner_text() == "pricing.quote"
    visible[0].click()
    detail = page.locator("tr.detail:visible")
    assert detail.locator("table.changes tbody tr").inner_text().split() == [
        "total",
        "114.0",
        "→",
        "108.0",
    ]
    assert "qty" in detail.locator("table.inputs").inner_text()
    assert detail.locator(".side.new .line.changed").inner_text().strip() == "'total': 108.0,"
