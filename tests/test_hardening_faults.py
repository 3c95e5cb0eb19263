"""Disk full and read-only replay directory, injected at the write calls.

For every fault and every point where it can strike (the disk fills after 0,
1, 37, ... bytes of the write; fsync reports ENOSPC; the directory is
read-only): the code under test keeps working, the recording ends with one
clear error naming the directory, the previous cassette is byte-for-byte
intact, nothing half-written is left behind, and once the fault is gone the
next recording succeeds.

The faults are simulated in-process (tests/hardening_helpers/faultfs.py):
running as root, a directory cannot be made read-only with chmod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hardening_helpers import faultfs

from pytest_replay import trace
from pytest_replay.cassette import Cassette

BUDGETS = [0, 1, 37, 600, 2_000, 10_000]
CASES = [
    pytest.param(
        ("enospc", budget),
        id=f"enospc-after-{budget}-bytes",
    )
    for budget in BUDGETS
] + [pytest.param(("enospc-fsync", 0), id="enospc-fsync"), pytest.param(("eacces", 0), id="eacces")]
MESSAGES = {
    "enospc": "No space left on device",
    "enospc-fsync": "No space left on device",
    "eacces": "Permission denied",
}


@pytest.fixture
def traced() -> Iterator[Callable[[int], dict[str, Any]]]:
    def compute(i: int) -> dict[str, Any]:
        return {"i": i, "square": i * i, "blob": "x" * 400}

    fn = trace.replay_trace(key="faults.compute")(compute)
    yield fn
    trace._unregister(fn.__replay_spec__)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".cassette"))


def _case_id(case: tuple[str, int]) -> str:
    return f"{case[0]}-after-{case[1]}-bytes" if case[0] == "enospc" else case[0]


@pytest.mark.parametrize("mode", ["new", "rewrite", "first-recording"])
@pytest.mark.parametrize("case", CASES)
def test_write_fault(
    tmp_path: Path,
    traced: Callable[[int], dict[str, Any]],
    case: tuple[str, int],
    mode: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fault, budget = case
    directory = tmp_path / "cassettes"
    cassette = directory / "faults.compute.cassette"
    if mode != "first-recording":
        with trace.recording(directory):
            for i in range(5):
                traced(i)
    before = cassette.read_bytes() if cassette.exists() else None
    results = []
    with pytest.raises(trace.RecordingError) as info:  # noqa: PT012
        with faultfs.inject(directory, fault, budget=budget) as faults:
            with trace.recording(directory, mode="rewrite" if mode == "rewrite" else "new") as s:
                for i in range(5, 25):
                    results.append(traced(i))  # the code under test is never broken
    assert results == [{"i": i, "square": i * i, "blob": "x" * 400} for i in range(5, 25)]
    message = str(info.value)
    assert message.startswith(f"cannot write cassettes to {directory}: {MESSAGES[fault]}")
    assert message.endswith("the previous cassettes are left intact")
    assert s.report.errors == [message]  # one error, not one per record or per file
    assert faults.injected >= 1
    if before is None:
        assert not cassette.exists()
    else:
        assert cassette.read_bytes() == before
    if directory.exists():
        assert _leftovers(directory) == []  # no temp file, no stale lock
    # the fault is gone: the next recording writes everything, and only once
    with trace.recording(directory, lock_timeout=5):
        for i in range(25):
            traced(i)
    records = list(Cassette.open(cassette).records())
    assert sorted(r["args"][0] for r in records) == list(range(25))
    with capsys.disabled():
        print(f"\nfault {_case_id(case)} ({mode}): {message}")


def test_full_disk_while_stamping_the_lock(
    tmp_path: Path, traced: Callable[[int], dict[str, Any]]
) -> None:
    directory = tmp_path / "cassettes"
    with trace.recording(directory):
        traced(1)
    with pytest.raises(trace.RecordingError), faultfs.inject(directory, "enospc", budget=0):
        with trace.recording(directory):
            traced(2)
    with trace.recording(directory, lock_timeout=2):
        traced(3)


CONFTEST = """
import pytest

import faultfs

_active = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # Before the recorder's own sessionfinish: its cassette writes hit the fault.
    if not hasattr(session.config, "workerinput"):
        manager = faultfs.inject(session.config.rootpath / "cassettes", {fault!r}, budget={budget})
        manager.__enter__()
        _active.append(manager)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    while _active:
        _active.pop().__exit__(None, None, None)
"""

PROJECT = """
from pytest_replay import replay_trace

@replay_trace(key="faults.price")
def price(n):
    return {{"n": n, "total": n * 3}}

def test_prices():
    for n in range({n}):
        assert price(n) == {{"n": n, "total": n * 3}}
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "0"], ["-n", "2"]], ids=["no-xdist", "n0", "n2"])
@pytest.mark.parametrize(("fault", "budget"), [("enospc", 100), ("eacces", 0)])
def test_pytest_run_with_a_write_fault(
    pytester: pytest.Pytester, fault: str, budget: int, xdist: list[str]
) -> None:
    pytester.makepyfile(test_prices=PROJECT.format(n=5))
    assert pytester.runpytest("--replay-record").ret == 0
    cassette = pytester.path / "cassettes" / "faults.price.cassette"
    before = cassette.read_bytes()
    pytester.makepyfile(
        test_prices=PROJECT.format(n=40),
        faultfs=Path(faultfs.__file__).read_text(),
        conftest=CONFTEST.format(fault=fault, budget=budget),
    )
    result = pytester.runpytest("--replay-record", *xdist)
    result.assert_outcomes(passed=1)  # the tests ran and passed under the recorder
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # ... but the run says it failed
    errors = [line for line in result.outlines if line.startswith("ERROR:")]
    assert errors == [
        f"ERROR: cannot write cassettes to {pytester.path / 'cassettes'}: {MESSAGES[fault]}"
        + ("" if fault == "enospc" else f" ({pytester.path / 'cassettes' / '.pytest-replay.lock'})")
        + "; the previous cassettes are left intact"
    ]
    assert cassette.read_bytes() == before
    assert _leftovers(pytester.path / "cassettes") == []


def test_oversized_record_costs_only_its_own_cassette(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record over the payload limit (64 MiB; lowered here) is refused with a clear
    error; the other functions' cassettes are written and the code ran normally."""
    from pytest_replay import cassette as cassette_module

    monkeypatch.setattr(cassette_module, "MAX_PAYLOAD_BYTES", 100_000)

    def big(n: int) -> bytes:
        return b"x" * n

    def small(n: int) -> int:
        return n

    fns = [trace.replay_trace(key=k)(f) for k, f in (("faults.big", big), ("faults.zsmall", small))]
    try:
        with pytest.raises(trace.RecordingError) as info:  # noqa: PT012
            with trace.recording(tmp_path) as session:
                assert fns[0](200_000) == b"x" * 200_000
                assert fns[1](3) == 3
        assert str(info.value).startswith(f"{tmp_path / 'faults.big.cassette'}: record payload is")
        assert "over the 100000-byte limit" in str(info.value)
        assert len(session.report.errors) == 1
        assert not (tmp_path / "faults.big.cassette").exists()
        assert len(list(Cassette.open(tmp_path / "faults.zsmall.cassette").records())) == 1
    finally:
        for fn in fns:
            trace._unregister(fn.__replay_spec__)
