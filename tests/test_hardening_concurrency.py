"""Two independent `pytest --replay-record` runs (not xdist) on one cassette directory,
and the lock that keeps them apart, including a lock left by a crashed holder.

The runs are made to collide on purpose, not by luck: the test holds the
directory lock while both runs execute their tests, and releases it only once
both are waiting for it at session end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_replay.cassette import Cassette
from pytest_replay.store import LOCK_NAME, DirectoryLock

HELPERS = Path(__file__).parent

PROJECT = """
import os

from pytest_replay import replay_trace


@replay_trace(key="conc.square")
def square(i):
    return i * i


@replay_trace(key="conc.label")
def label(run, i):
    return f"{run}:{i}"


def test_calls():
    start, stop = int(os.environ["CONC_START"]), int(os.environ["CONC_STOP"])
    run = os.environ["CONC_RUN"]
    for i in range(start, stop):
        assert square(i) == i * i
        assert label(run, i) == f"{run}:{i}"
"""

CONFTEST = """
import os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # The tests are done; the recorder is about to take the lock and merge.
    if not hasattr(session.config, "workerinput"):
        Path(os.environ["CONC_MARKER"]).write_text("waiting")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(extra)
    return env


def _start(
    project: Path, run: str, start: int, stop: int, marker: Path, *args: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--replay-record",
         "--replay-max-records=100000", "--replay-lock-timeout=120", *args],
        cwd=project,
        env=_env(CONC_START=str(start), CONC_STOP=str(stop), CONC_RUN=run,
                 CONC_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _wait_for(paths: list[Path], processes: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for process in processes:
            if process.poll() is not None:
                out = process.stdout.read() if process.stdout else ""
                pytest.fail(f"a run ended before reaching its merge: {out}")
        assert time.monotonic() < deadline, "the runs never reached their merge"
        time.sleep(0.05)


ROUNDS = [
    # (run A range, run B range, extra args of run B)
    ((0, 300), (150, 450), ()),
    ((1000, 1200), (1000, 1200), ()),  # the very same calls twice
    ((2000, 2300), (2200, 2600), ("-n", "2")),  # xdist on one side only
]


@pytest.mark.slow
def test_two_runs_collide_on_one_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_calls.py").write_text(PROJECT)
    (project / "conftest.py").write_text(CONFTEST)
    replay_dir = project / "cassettes"
    replay_dir.mkdir()
    expected: dict[str, set[object]] = {"conc.square": set(), "conc.label": set()}
    for number, ((a0, a1), (b0, b1), extra) in enumerate(ROUNDS):
        markers = [tmp_path / f"a{number}", tmp_path / f"b{number}"]
        gate = DirectoryLock(replay_dir, timeout=30)
        gate.acquire()
        try:
            runs = [
                _start(project, "a", a0, a1, markers[0]),
                _start(project, "b", b0, b1, markers[1], *extra),
            ]
            _wait_for(markers, runs, timeout=120)
            time.sleep(0.2)  # both are now polling for the lock
        finally:
            gate.release()
        outputs = [run.communicate(timeout=180)[0] for run in runs]
        for run, output in zip(runs, outputs, strict=True):
            assert run.returncode == 0, output
            assert "ERROR" not in output
        for i in [*range(a0, a1), *range(b0, b1)]:
            expected["conc.square"].add((i,))
        # label(run, i) differs between the runs: both sets of records are kept
        expected["conc.label"] |= {("a", i) for i in range(a0, a1)}
        expected["conc.label"] |= {("b", i) for i in range(b0, b1)}
        for key, wanted in expected.items():
            cassette = Cassette.open(replay_dir / f"{key}.cassette")
            assert cassette.verify().ok
            inputs = [tuple(record["args"]) for record in cassette.records()]
            assert len(inputs) == len(set(inputs)), f"round {number}: {key} holds a duplicate"
            assert set(inputs) == wanted, f"round {number}: {key} lost records"
    assert not (replay_dir / LOCK_NAME).exists()
    total = sum(len(v) for v in expected.values())
    with capsys.disabled():
        print(
            f"\nconcurrency: {len(ROUNDS)} rounds of 2 colliding runs (one with -n 2): "
            f"{total} records, each exactly once, 0 lost, 0 duplicated"
        )


def _holder(replay_dir: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-m", "hardening_helpers.lockholder", str(replay_dir)],
        cwd=HELPERS,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_calls.py").write_text(PROJECT)
    return project


def _record(project: Path, *args: str, timeout: float = 60) -> tuple[int, str, float]:
    start = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--replay-record",
         *args],
        cwd=project,
        env=_env(CONC_START="0", CONC_STOP="20", CONC_RUN="a"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )  # fmt: skip
    return process.returncode, process.stdout + process.stderr, time.perf_counter() - start


def test_lock_left_by_a_killed_holder_is_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    replay_dir = project / "cassettes"
    replay_dir.mkdir()
    with _holder(replay_dir) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    stale = (replay_dir / LOCK_NAME).read_text()
    assert stale.split()[0] == str(holder.pid)  # the crashed holder's stamp is still there
    code, output, seconds = _record(project, "--replay-lock-timeout=30")
    assert code == 0, output
    assert seconds < 25  # taken over at once, not after the timeout
    assert not (replay_dir / LOCK_NAME).exists()
    assert len(list(Cassette.open(replay_dir / "conc.square.cassette").records())) == 20
    with capsys.disabled():
        print(f"\nstale lock of killed pid {holder.pid}: taken over, run took {seconds:.1f} s")


def test_lock_file_with_garbage_is_not_a_lock(tmp_path: Path) -> None:
    project = _project(tmp_path)
    replay_dir = project / "cassettes"
    replay_dir.mkdir()
    (replay_dir / LOCK_NAME).write_bytes(b"\x00\xff 99999999 elsewhere\n")
    code, output, _ = _record(project, "--replay-lock-timeout=30")
    assert code == 0, output
    assert not (replay_dir / LOCK_NAME).exists()


def test_live_holder_gives_a_clear_timeout(tmp_path: Path) -> None:
    project = _project(tmp_path)
    replay_dir = project / "cassettes"
    code, output, _ = _record(project)
    assert code == 0, output
    before = {p.name: p.read_bytes() for p in replay_dir.glob("*.cassette")}
    (project / "test_calls.py").write_text(PROJECT.replace("i * i", "i * i + 0"))
    with _holder(replay_dir) as holder:
        try:
            code, output, _ = _record(project, "--replay-lock-timeout=1")
        finally:
            holder.kill()
    assert code == 1, output
    assert "1 passed" in output  # the tests themselves ran and passed
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert errors[0].startswith(f"ERROR: {replay_dir}: locked by another pytest-replay run ")
    assert f"pid {holder.pid} on " in errors[0]
    assert "for more than 1s" in errors[0]
    assert {p.name: p.read_bytes() for p in replay_dir.glob("*.cassette")} == before
