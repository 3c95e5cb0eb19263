"""Sessions through pytest: `--replay-record` records them, `--replay` runs each as one item."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.cassette import Cassette, cassette_path

APP = """
from pytest_replay import replay_trace


@replay_trace(snapshot_every=2)
class Account:
    def __init__(self, owner, overdraft=0):
        self.owner = owner
        self.overdraft = overdraft
        self.balance = 0

    def deposit(self, amount):
        self.balance += amount
        return self.balance

    def withdraw(self, amount):
        if self.balance - amount < -self.overdraft:
            raise ValueError("insufficient funds")
        self.balance -= amount
        return self.balance
"""

TESTS = """
import pytest
from app import Account


def test_ann():
    account = Account("ann", overdraft=10)
    account.deposit(30)
    account.withdraw(35)
    with pytest.raises(ValueError):
        account.withdraw(100)
    account.deposit(5)


def test_bob():
    account = Account("bob")
    account.deposit(1)


def test_fails():
    Account("carl").deposit(7)
    assert False
"""

XDIST = [
    pytest.param([], id="no-xdist"),
    pytest.param(["-n", "0"], id="n0"),
    pytest.param(["-n", "2"], id="n2"),
]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(app=APP, test_app=TESTS)
    pytester.makeini("[pytest]\n")
    pytester.syspathinsert()
    return pytester


def sessions(directory: Path) -> list[dict[str, object]]:
    return list(Cassette.open(cassette_path(directory, "app.Account")).records())


@pytest.mark.parametrize("xdist", XDIST)
def test_record_sessions_with_replay_record(project: pytest.Pytester, xdist: list[str]) -> None:
    result = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "--replay-record", "--replay-record-durations=off", *xdist
    )
    result.assert_outcomes(passed=2, failed=1)
    assert "records: 2 new, 0 unchanged, 0 changed" in result.stdout.str()
    ann, bob = sessions(project.path / "cassettes")  # carl's test failed: not recorded
    assert ann["kind"] == "session"
    assert ann["args"] == ["ann", 10]
    steps = ann["children"]
    assert isinstance(steps, list)
    assert [s["key"] for s in steps] == [
        "app.Account.deposit", "app.Account.withdraw", "app.Account.withdraw",
        "app.Account.deposit",
    ]  # fmt: skip
    assert steps[2]["error"]["message"] == "insufficient funds"
    assert ann["meta"] == {"snapshot_every": 2, "nodeid": "test_app.py::test_ann"}
    assert bob["args"] == ["bob"]  # defaults are not recorded, as for traced calls
    # the same run again: unchanged, byte for byte
    before = cassette_path(project.path / "cassettes", "app.Account").read_bytes()
    again = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "--replay-record", "--replay-record-durations=off", *xdist
    )
    assert "records: 0 new, 2 unchanged, 0 changed" in again.stdout.str()
    assert cassette_path(project.path / "cassettes", "app.Account").read_bytes() == before


def test_replay_runs_each_session_as_one_item(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("-p", "no:cacheprovider", "--replay-record")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--replay", "-m", "replay")
    result.assert_outcomes(passed=2)
    # a regression in withdraw: the overdraft is no longer honoured
    app = project.path / "app.py"
    app.write_text(app.read_text().replace("< -self.overdraft", "< 0"))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--replay", "-m", "replay")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "session app.Account [[]*[]] diverged at step 1 of 4 steps",
            "  constructed as Account('ann', 10)",
            "  step 1: withdraw(35)",
            "  expected:  returned -5",
            "  actual:    raised ValueError: insufficient funds",
            "  last matching step: 0: deposit(30) returned 30",
        ]
    )
