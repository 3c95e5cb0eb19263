"""Small items from the hardening report, fixed: orphaned temp files of killed
rewrites are cleaned up, updates take the directory lock, long names are cut
in messages, and keys with unpaired surrogates fail with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hardening_helpers import killer

from pytest_replay import codec, trace
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.record import Record, record_id
from pytest_replay.replayer import apply_changes, short_name
from pytest_replay.session import trace_class
from pytest_replay.store import DirectoryLock

HOUR = 3600


def _age(path: Path, seconds: float) -> None:
    when = time.time() + seconds
    os.utime(path, (when, when), follow_symlinks=False)


def _orphans(directory: Path) -> dict[str, Path]:
    """Temp-file look-alikes: only ``old`` may be removed."""
    directory.mkdir(parents=True, exist_ok=True)
    made = {
        "old": directory / ".k.cassette.ab_d1234.tmp",  # a killed rewrite's leftover
        "young": directory / ".k.cassette.young123.tmp",  # being written right now
        "other name": directory / ".notes.tmp",
        "not hidden": directory / "k.cassette.abcd1234.tmp",
        "directory": directory / ".d.cassette.abcdefgh.tmp",
        "symlink": directory / ".s.cassette.abcdefgh.tmp",
    }
    for label, path in made.items():
        if label == "directory":
            path.mkdir()
        elif label == "symlink":
            path.symlink_to(directory / ".notes.tmp")
        else:
            path.write_bytes(b"half a cassette")
    for label, path in made.items():
        _age(path, HOUR if label == "young" else -HOUR)
    return made


def _assert_only_old_removed(made: dict[str, Path]) -> None:
    left = {label for label, path in made.items() if path.exists() or path.is_symlink()}
    assert left == set(made) - {"old"}


def test_recording_removes_orphaned_temp_files(tmp_path: Path) -> None:
    made = _orphans(tmp_path)

    @trace.replay_trace(key="fixes.echo")
    def echo(x: int) -> int:
        return x

    try:
        with trace.recording(tmp_path) as session:
            echo(1)
    finally:
        trace._unregister(echo.__replay_spec__)  # type: ignore[attr-defined]
    assert session.report is not None
    assert session.report.errors == []
    _assert_only_old_removed(made)
    assert [r["args"] for r in Cassette.open(tmp_path / "fixes.echo.cassette").records()] == [[1]]


def _crafted(path: Path, key: str, rows: list[tuple[list[Any], Any]]) -> list[str]:
    ids = []
    records = []
    for args, result in rows:
        rid = record_id(key, codec.dumps([args, {}]))
        ids.append(rid)
        records.append(Record(rid, key, "m:f", args, {}, result=result).to_map())
    Cassette.create(path, key, records)
    return ids


def test_apply_changes_holds_the_lock_and_removes_orphans(tmp_path: Path) -> None:
    path = tmp_path / "k.cassette"
    ids = _crafted(path, "k", [([1], 1), ([2], 2)])
    updated = codec.dumps(
        Record(ids[0], "k", "m:f", [1], {}, result=100).to_map()  # a new outcome
    )
    before = path.read_bytes()
    holder = DirectoryLock(tmp_path)
    holder.acquire()  # another run is recording into this directory
    try:
        report = apply_changes(path, {ids[0]: updated}, lock_timeout=0.2)
    finally:
        holder.release()
    assert report.error is not None
    assert "locked by another pytest-replay run" in report.error
    assert (report.updated, report.removed) == (0, 0)
    assert path.read_bytes() == before
    made = _orphans(tmp_path)
    report = apply_changes(path, {ids[0]: updated}, [ids[1]], lock_timeout=0.2)
    assert (report.error, report.updated, report.removed) == (None, 1, 1)
    assert [codec.decode(r)["result"] for r in Cassette.open(path).records()] == [100]
    _assert_only_old_removed(made)
    assert not (tmp_path / ".pytest-replay.lock").exists()


def test_remove_orphans_needs_the_lock(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="needs the lock held"):
        DirectoryLock(tmp_path).remove_orphans()


APP = """
from pytest_replay import replay_trace


@replay_trace(key="upd.f")
def f(i):
    return {{"i": i, "v": i * {factor}, "pad": "x" * 40}}


def test_calls():
    for i in range(40):
        f(i)
"""
CONFTEST = """
import os

import killer

if os.environ.get("HARDEN_KILL"):
    killer.install(os.path.join(os.path.dirname(__file__), "cassettes"), os.environ["HARDEN_KILL"])
"""


def _run(project: Path, *args: str, kill: str | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HARDEN_"))}
    if kill is not None:
        env["HARDEN_KILL"] = kill
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_the_leftover_of_a_killed_update_is_removed_by_the_next_update(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "killer.py").write_text(Path(killer.__file__).read_text())
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_app.py").write_text(APP.format(factor=2))
    code, out = _run(project, "--replay-record")
    assert code == 0, out
    (project / "test_app.py").write_text(APP.format(factor=3))  # every record diverges
    cassettes = project / "cassettes"
    before = (cassettes / "upd.f.cassette").read_bytes()
    code, out = _run(project, "--replay", "--replay-update", kill="write:100")
    assert code == -signal.SIGKILL, out
    (leftover,) = cassettes.glob(".upd.f.cassette.*.tmp")
    assert (cassettes / "upd.f.cassette").read_bytes() == before
    # the next run comes later than the killed one (mtime resolution can be coarse)
    _age(leftover, -5)
    code, out = _run(project, "--replay", "--replay-update")
    assert code == 0, out
    assert not leftover.exists()
    assert list(cassettes.glob(".*.tmp")) == []
    assert (cassettes / "upd.f.cassette").read_bytes() != before
    code, out = _run(project, "--replay")
    assert code == 0, out


# --------------------------------------------------------------------------- long names


def test_short_name_cuts_the_middle_and_escapes() -> None:
    assert short_name("pricing:quote") == "pricing:quote"
    cut = short_name("x" * 5000 + ":y")
    assert len(cut) <= 130
    assert cut.startswith("xxx")
    assert cut.endswith("xx:y")
    assert "[5002 chars]" in cut
    assert short_name("a\x00b\x1b[31m\u202e") == "a\\x00b\\x1b[31m\\u202e"


def test_a_very_long_target_is_cut_in_the_failure_text(pytester: pytest.Pytester) -> None:
    key = "k" * 3000
    target = "x" * 5000 + ":y"
    rid = record_id(key, codec.dumps([[1], {}]))
    path = cassette_path(pytester.path / "cassettes", key)
    Cassette.create(path, key, [Record(rid, key, target, [1], {}, result=1).to_map()])
    result = pytester.runpytest("--replay", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "x" * 200 not in text
    assert "k" * 200 not in text
    result.stdout.fnmatch_lines(
        ["*reason:   module 'xxx*[5000 chars]*xxx' cannot be imported, and no traced function*"]
    )
    # every line of the failure and the summary stays readable
    assert max(len(line) for line in result.outlines if "chars]" in line) < 600


# --------------------------------------------------------------------------- surrogates


def _decorate(key: str) -> Callable[[Any], Any]:
    return trace.replay_trace(key=key)


def test_a_key_with_an_unpaired_surrogate_is_a_clear_error() -> None:
    def handler(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="unpaired surrogate") as info:
        _decorate("orders.\ud800handler")(handler)
    message = str(info.value)
    assert not isinstance(info.value, UnicodeError)
    assert f"{__name__}:test_a_key_with_an_unpaired_surrogate_is_a_clear_error" in message
    assert "'orders.\\ud800handler'" in message
    assert "at index 7" in message
    assert "pass a key of ordinary text" in message
    assert "orders.\ud800handler" not in trace.registry()


def test_a_class_key_with_an_unpaired_surrogate_is_a_clear_error() -> None:
    class Cart:
        def add(self, item: str) -> None:
            pass

    with pytest.raises(ValueError, match=r"class .*Cart: key 'cart\\udfff' holds an unpaired"):
        trace_class(Cart, key="cart\udfff")
    with pytest.raises(ValueError, match="unpaired surrogate"):
        trace.replay_trace(key="cart\udfff")(Cart)
