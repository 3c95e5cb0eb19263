"""The ``history`` fixture and ``--replay-lin-html``: what a failing test's report carries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_replay.history import parse_jsonl

XDIST_MODES = {"no-xdist": [], "n0": ["-n", "0"], "n2": ["-n", "2"]}

_HISTORY_TESTS = """
from pytest_replay.history import Keyword


class Opaque:
    def __repr__(self):
        return "<opaque>"


def test_passes(history):
    history.op("write", 1, lambda: None)
    assert history.name.endswith("test_passes")


def test_fails_with_history(history):
    history.op("write", 1, lambda: None)
    history.op("read", None, lambda: 1)
    history.invoke("cas", (1, Opaque()))
    assert False, "boom"


def test_fails_without_events(history):
    assert False, "nothing recorded"


def test_fails_without_the_fixture():
    assert False, "no history here"
"""


@pytest.mark.parametrize("mode", list(XDIST_MODES))
def test_failing_test_gets_timeline_and_file(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_inner=_HISTORY_TESTS)
    basetemp = pytester.path / "basetemp"
    result = pytester.runpytest_subprocess(*XDIST_MODES[mode], f"--basetemp={basetemp}", "-rA")
    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    # Exactly one report carries a history: the failing test that recorded events.
    assert out.count("- replay history -") == 1, out
    result.stdout.fnmatch_lines(
        [
            "*_ test_fails_with_history _*",
            "*- replay history -*",
            "full history (5 events, JSON lines): *replay-history.jsonl",
            "5 events, 3 ops, 1 processes, 1 pending",
            "  p0 | [0-1] write 1 -> ok  [2-3] read -> ok 1  [4-] cas (1, <opaque>) -> pending",
        ]
    )
    match = re.search(r"full history \(5 events, JSON lines\): (\S+)", out)
    assert match is not None
    path = Path(match.group(1))
    assert path.name == "replay-history.jsonl"
    assert path.parent.name.startswith("test_fails_with_history")  # the test's own tmp_path
    events = parse_jsonl(path)
    assert [(e.type, e.f, e.value) for e in events] == [
        ("invoke", "write", 1),
        ("ok", "write", None),
        ("invoke", "read", None),
        ("ok", "read", 1),
        ("invoke", "cas", (1, "<opaque>")),  # what JSON cannot hold is written as its repr
    ]
    # Nothing is written for the passing test, nor for the failing one without events.
    assert [p.parent.name for p in basetemp.rglob("replay-history.jsonl")] == [path.parent.name]


_ILLEGAL_REGISTER = """
from pytest_replay import assert_linearizable


def test_stale_read(history):
    history.op("write", 1, lambda: None)
    history.op("read", None, lambda: 2)  # nobody wrote 2
    assert_linearizable(history, "cas-register")


def test_linearizable(history):
    history.op("write", 1, lambda: None)
    history.op("read", None, lambda: 1)
    assert_linearizable(history, "cas-register")
"""


@pytest.mark.parametrize("mode", list(XDIST_MODES))
def test_lin_html_writes_the_counterexample(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_inner=_ILLEGAL_REGISTER)
    html_dir = pytester.path / "lin"
    result = pytester.runpytest_subprocess(*XDIST_MODES[mode], "--replay-lin-html=lin")
    result.assert_outcomes(passed=1, failed=1)
    assert "HTML counterexample:" in result.stdout.str(), (
        "assert_linearizable must attach its CheckResult to the AssertionError it raises, "
        "as `.result`, for --replay-lin-html to find it"
    )
    result.stdout.fnmatch_lines(["*- replay linearizability -*", "HTML counterexample: *.html"])
    (page,) = html_dir.iterdir()
    assert page.name == "test_inner.py_test_stale_read.html"
    assert "<html" in page.read_text(encoding="utf-8").lower()


# A stand-in for the checker's result, to pin the plugin's side of the contract
# (an AssertionError carrying ``.result`` with ``verdict`` and ``to_html``)
# independently of the checker's own output.
_CONTRACT = """
import pathlib


class Result:
    def __init__(self, verdict):
        self.verdict = verdict

    def to_html(self, path):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<html>" + self.verdict + "</html>")
        return path


def _fail(verdict):
    err = AssertionError("not linearizable")
    err.result = Result(verdict)
    raise err


def test_illegal():
    _fail("illegal")


def test_wrapped():
    try:
        _fail("unknown")
    except AssertionError as exc:
        raise RuntimeError("wrapped") from exc


def test_ok_result_writes_nothing():
    _fail("ok")


def test_plain_failure():
    assert False
"""


def test_lin_html_ini_twin_and_exception_chain(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nreplay_lin_html = out/html\n")
    pytester.makepyfile(test_contract=_CONTRACT)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=4)
    written = sorted(p.name for p in (pytester.path / "out/html").iterdir())
    assert written == ["test_contract.py_test_illegal.html", "test_contract.py_test_wrapped.html"]
    assert result.stdout.str().count("HTML counterexample:") == 2


def test_lin_html_unwritable_dir_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_contract=_CONTRACT)
    (pytester.path / "blocked").write_text("a file where the directory should be")
    result = pytester.runpytest_inprocess("--replay-lin-html=blocked", "-k", "illegal")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["could not write the HTML counterexample to *blocked*"])


def test_lin_html_is_off_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_contract=_CONTRACT)
    result = pytester.runpytest_inprocess("-k", "illegal")
    result.assert_outcomes(failed=1)
    assert "replay linearizability" not in result.stdout.str()
    assert not list(pytester.path.rglob("*.html"))


def test_option_is_in_the_replay_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(["replay-based regression testing*", "*--replay-lin-html=DIR*"])
