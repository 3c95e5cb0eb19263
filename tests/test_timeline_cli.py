"""CLI of the timeline: `pytest-replay diff`, `show --at N` neighbours, `show --first-fault`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_replay import codec
from pytest_replay.cassette import Cassette
from pytest_replay.cli import main
from pytest_replay.record import record_id

KEY = "app.pricing.total"


def rec(i: int, result: Any = None, *, error: str | None = None) -> dict[str, Any]:
    args: list[Any] = [i]
    kwargs: dict[str, Any] = {"currency": "EUR"}
    data: dict[str, Any] = {
        "id": record_id(KEY, codec.dumps([args, kwargs])),
        "key": KEY,
        "target": "app.pricing:total",
        "kind": "call",
        "args": args,
        "kwargs": kwargs,
    }
    if error is None:
        data["result"] = i * 10 if result is None else result
    else:
        data["error"] = {"type": "builtins.ValueError", "message": error, "args": [error]}
    data.update(children=[], boundary=False, meta={"duration_ms": 1.0}, unreplayable=None)
    return data


def write(path: Path, records: list[dict[str, Any]], key: str = KEY) -> Path:
    Cassette.create(path, key, records)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    records = [rec(i) for i in range(10)]
    a = write(tmp_path / "a.cassette", records)
    records[6] = rec(6, result=61)
    records.insert(2, rec(100))
    b = write(tmp_path / "b.cassette", records)
    return a, b


# --------------------------------------------------------------------------- diff


def test_diff_identical_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [rec(i) for i in range(5)]
    a = write(tmp_path / "a.cassette", records)
    b = write(tmp_path / "b.cassette", records)
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("identical: ")
    assert "(5 vs 5 events)" in out


def test_diff_divergent_exits_1_first_point_first(
    pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pair
    assert main(["diff", str(a), str(b)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"diverged: {a} -> {b} (10 vs 11 events): 2 divergence points")
    assert "first at #2" in lines[0]
    assert lines[1].startswith("  #2 inserted: record ")
    changed = next(i for i, line in enumerate(lines) if " changed: " in line)
    assert lines[changed].startswith("  #6 (actual #7) changed")
    assert lines[changed + 1].strip() == "result: 60 → 61"


def test_diff_limit(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pair
    assert main(["diff", "--limit", "1", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "... and 1 more divergence points" in out
    assert " changed: record" not in out
    assert main(["diff", "--limit", "-1", str(a), str(b)]) == 2
    assert "--limit -1" in capsys.readouterr().err


def test_diff_include_meta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [rec(i) for i in range(3)]
    a = write(tmp_path / "a.cassette", records)
    records[1]["meta"] = {"duration_ms": 9.0}
    b = write(tmp_path / "b.cassette", records)
    assert main(["diff", str(a), str(b)]) == 0
    capsys.readouterr()
    assert main(["diff", "--include-meta", str(a), str(b)]) == 1
    assert "meta.duration_ms: 1.0 → 9.0" in capsys.readouterr().out


def test_diff_directories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    write(old / "x.cassette", [rec(1)], key="app.removed")
    write(new / "y.cassette", [rec(1)], key="app.added")
    write(old / "p.cassette", [rec(1), rec(2)])
    write(new / "p.cassette", [rec(1), rec(2, result=0)])
    assert main(["diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "1 keys in both (1 diverged), 1 removed, 1 added" in out
    assert "removed key app.removed (only in" in out
    assert "added key app.added (only in" in out
    assert f"key {KEY}:" in out
    assert "#1 changed" in out
    assert main(["diff", str(old), str(old)]) == 0
    assert capsys.readouterr().out.startswith("identical: ")


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("pytest-replay: error: ")
    return lines[0]


def test_diff_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.cassette", [rec(0)])
    missing = tmp_path / "missing.cassette"
    assert main(["diff", str(a), str(missing)]) == 2
    assert str(missing) in error_line(capsys)


def test_diff_file_against_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.cassette", [rec(0)])
    assert main(["diff", str(a), str(tmp_path)]) == 2
    assert "is a file and" in error_line(capsys)


def test_diff_different_keys_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.cassette", [rec(0)])
    b = write(tmp_path / "b.cassette", [rec(0)], key="other.key")
    assert main(["diff", str(a), str(b)]) == 2
    line = error_line(capsys)
    assert "'app.pricing.total'" in line
    assert "'other.key'" in line
    assert "same function" in line


def test_diff_corrupt_cassette_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.cassette", [rec(i) for i in range(4)])
    b = write(tmp_path / "b.cassette", [rec(i) for i in range(4)])
    data = bytearray(b.read_bytes())
    data[-30] ^= 0x10
    b.write_bytes(bytes(data))
    assert main(["diff", str(a), str(b)]) == 2
    line = error_line(capsys)
    assert str(b) in line
    assert "record 3" in line


def test_diff_not_a_cassette_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.cassette", [rec(0)])
    junk = tmp_path / "junk.cassette"
    junk.write_text("hello")
    assert main(["diff", str(junk), str(a)]) == 2
    assert "not a pytest-replay cassette" in error_line(capsys)


def test_diff_duplicate_key_in_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "one.cassette", [rec(0)])
    write(tmp_path / "two.cassette", [rec(1)])
    assert main(["diff", str(tmp_path), str(tmp_path)]) == 2
    assert "is in two cassettes" in error_line(capsys)


def test_diff_runs_as_a_program(pair: tuple[Path, Path]) -> None:
    a, b = pair
    done = subprocess.run(
        [sys.executable, "-m", "pytest_replay", "diff", str(a), str(b)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("diverged: ")


# --------------------------------------------------------------------------- show


@pytest.fixture
def faulty(tmp_path: Path) -> Path:
    records = [rec(i) for i in range(8)]
    records[5] = rec(5, error="negative total")
    return write(tmp_path / "f.cassette", records)


def test_show_at_shows_neighbours(faulty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--at", "3", str(faulty)]) == 0
    out = capsys.readouterr().out
    assert "#3  id " in out
    assert "neighbours (records 1..5):" in out
    rows = [line for line in out.splitlines() if " | " in line]
    assert [row.split("|")[0].split() for row in rows] == [["1"], ["2"], [">", "3"], ["4"], ["5"]]
    assert rows[4].endswith("raised builtins.ValueError: negative total")
    assert "state signature: " in out


def test_show_context(faulty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--at", "0", "--context", "1", str(faulty)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if " | " in line]
    assert len(rows) == 2
    assert main(["show", "--at", "7", "--context", "0", str(faulty)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if " | " in line]
    assert len(rows) == 1
    assert main(["show", "--at", "1", "--context", "-2", str(faulty)]) == 2
    assert "--context -2" in error_line(capsys)


def test_show_first_fault(faulty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--first-fault", str(faulty)]) == 0
    out = capsys.readouterr().out
    assert "first fault: record 5 raised builtins.ValueError: negative total" in out
    assert "#5  id " in out
    assert "neighbours (records 3..7):" in out


def test_show_first_fault_json(faulty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--first-fault", "--json", str(faulty)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1
    assert rows[0]["index"] == 5
    assert rows[0]["error"]["message"] == "negative total"
    assert "result" not in rows[0]


def test_show_first_fault_when_nothing_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "ok.cassette", [rec(0), rec(1)])
    assert main(["show", "--first-fault", str(path)]) == 0
    assert "no fault: none of the 2 records raised" in capsys.readouterr().out


def test_show_at_out_of_range_and_bad_files(
    faulty: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--at", "8", str(faulty)]) == 2
    line = error_line(capsys)
    assert "the cassette has 8 records (valid indexes: 0..7)" in line
    missing = tmp_path / "missing.cassette"
    assert main(["show", "--first-fault", str(missing)]) == 2
    assert "no such file" in error_line(capsys)
    data = bytearray(faulty.read_bytes())
    data[-25] ^= 0x01
    faulty.write_bytes(bytes(data))
    assert main(["show", "--first-fault", str(faulty)]) == 2
    assert "record 7" in error_line(capsys)


def test_show_help_lists_the_timeline_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["show", "--help"])
    out = capsys.readouterr().out
    assert "--first-fault" in out
    assert "--context" in out
    assert "(default: 2)" in out


# --------------------------------------------------------------------------- sessions in show


@pytest.fixture
def session_cassette(tmp_path: Path) -> Path:
    from pytest_replay.session import capture_sessions, trace_class

    @trace_class(key="cli.Stack", snapshot_every=2)
    class Stack:
        def __init__(self, size: int) -> None:
            self.size = size
            self.items: list[int] = []

        def push(self, item: int) -> int:
            if len(self.items) >= self.size:
                raise OverflowError("stack full")
            self.items.append(item)
            return len(self.items)

    with capture_sessions() as capture:
        stack = Stack(3)
        for item in range(5):
            try:
                stack.push(item)
            except OverflowError:
                pass
    (path,) = capture.write(tmp_path)
    Cassette.open(path).append([rec(0)])  # a plain call record after the session
    return path


def test_show_first_fault_of_a_session_centers_on_the_step(
    session_cassette: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--first-fault", "--context", "1", str(session_cassette)]) == 0
    out = capsys.readouterr().out
    assert "first fault: record 0 step 3 (cli.Stack.push) raised builtins.OverflowError" in out
    assert "(session)" in out
    assert "constructed as Stack(3)" in out
    assert "5 steps; state snapshots before steps: 2, 4, 5" in out
    rows = [line for line in out.splitlines() if " | " in line]
    assert rows[0].split("|")[0].split() == ["2"]
    assert rows[1].split("|")[0].split() == [">", "3"]
    assert rows[1].endswith("push(3) raised builtins.OverflowError: stack full")
    assert '"snapshots"' not in out  # the state is not dumped whole


def test_show_step_of_a_session(session_cassette: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--at", "0", "--step", "0", "--context", "0", str(session_cassette)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if " | " in line]
    assert rows[0].split("|")[0].split() == [">", "0"]
    assert rows[0].endswith("push(0) -> 1")


def test_show_step_errors(session_cassette: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--at", "0", "--step", "9", str(session_cassette)]) == 2
    assert "step 9 is out of range, valid steps are 0..4" in error_line(capsys)
    assert main(["show", "--at", "1", "--step", "0", str(session_cassette)]) == 2
    assert "record 1 is a 'call' record, not a session" in error_line(capsys)
    assert main(["show", "--step", "0", str(session_cassette)]) == 2
    assert "--step M needs --at N or --first-fault" in error_line(capsys)
