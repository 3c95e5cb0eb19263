"""The CLI spine: show, verify, textconv; exit codes and error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pytest_replay import codec
from pytest_replay.cassette import Cassette
from pytest_replay.cli import main


def record(i: int, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"{i:016x}",
        "key": "app.pricing.total",
        "target": "app.pricing:total",
        "kind": "call",
        "args": [i],
        "kwargs": {"currency": "EUR"},
        "result": i * 10,
        "children": [],
        "boundary": False,
        "meta": {"duration_ms": 1.5},
        "unreplayable": None,
    }
    data.update(extra)
    return data


FAILED = record(
    1,
    error={"type": "builtins.ValueError", "message": "negative total", "args": ["negative total"]},
)
del FAILED["result"]
# a value JSON cannot hold as is: codec.dumps turns it into an ext type / tagged form
ODD_ARGS = [b"\x00\xff", (1, 2), {3, 4}]
ODD = record(2, args=ODD_ARGS, children=[record(9)])


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    path = tmp_path / "app.pricing.total.cassette"
    Cassette.create(path, "app.pricing.total", [record(0), FAILED, ODD])
    return path


def lines(text: str) -> list[str]:
    return text.splitlines()


# --------------------------------------------------------------------------- show


def test_show_readable(cassette: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(cassette)]) == 0
    out = capsys.readouterr().out
    assert f"cassette {cassette}" in out
    assert "key app.pricing.total" in out
    assert "#0  id 0000000000000000  key app.pricing.total" in out
    assert "  target:   app.pricing:total" in out
    assert "  args:     [0]" in out
    assert '  kwargs:   {"currency": "EUR"}' in out
    assert "  result:   0" in out
    assert "  error:    builtins.ValueError: negative total" in out
    assert "  children: 1" in out
    assert '  meta:     {"duration_ms": 1.5}' in out
    assert out.rstrip().endswith("3 records")


def test_show_json_lines(cassette: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--json", str(cassette)]) == 0
    rows = [json.loads(line) for line in lines(capsys.readouterr().out)]
    assert [row["index"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert {"index", "key", "args", "kwargs"} <= row.keys()
        assert ("result" in row) != ("error" in row)
    assert rows[0]["result"] == 0
    assert rows[1]["error"]["message"] == "negative total"
    raw = codec.loads_raw(codec.dumps(ODD_ARGS))
    assert rows[2]["args"] == codec.to_jsonable(raw)
    assert rows[2]["children"][0]["id"] == record(9)["id"]


def test_show_at(cassette: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--json", "--at", "1", str(cassette)]) == 0
    rows = [json.loads(line) for line in lines(capsys.readouterr().out)]
    assert len(rows) == 1
    assert rows[0]["index"] == 1
    assert "error" in rows[0]
    assert main(["show", "--at", "2", str(cassette)]) == 0
    out = capsys.readouterr().out
    assert "#2 " in out
    assert "#0 " not in out
    assert "#1 " not in out


@pytest.mark.parametrize("at", ["3", "99", "-1"])
def test_show_at_out_of_range(cassette: Path, capsys: pytest.CaptureFixture[str], at: str) -> None:
    assert main(["show", "--at", at, str(cassette)]) == 2
    err = capsys.readouterr().err
    assert len(lines(err)) == 1
    assert str(cassette) in err
    assert "0..2" in err or "0 or more" in err


def test_show_at_on_empty_cassette(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "e.cassette"
    Cassette.create(path, "e")
    assert main(["show", "--at", "0", str(path)]) == 2
    assert "has 0 records" in capsys.readouterr().err


def test_show_warns_about_torn_tail(cassette: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cassette.write_bytes(cassette.read_bytes()[:-4])
    assert main(["show", "--json", str(cassette)]) == 0
    captured = capsys.readouterr()
    assert len(lines(captured.out)) == 2
    assert "torn tail: record 2" in captured.err


# --------------------------------------------------------------------------- verify


def test_verify_valid(cassette: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(cassette)]) == 0
    assert capsys.readouterr().out == (
        f"{cassette}: Verification: 3/3 events verified, 0 failures, 0 mismatches - VALID\n"
    )


def test_verify_mixed_files(
    cassette: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "damaged.cassette"
    data = bytearray(cassette.read_bytes())
    data[-30] ^= 0x10  # inside the last record's payload
    damaged.write_bytes(data)
    assert main(["verify", str(cassette), str(damaged)]) == 1
    out = lines(capsys.readouterr().out)
    assert out[0].endswith("- VALID")
    assert out[1] == (
        f"{damaged}: Verification: 2/3 events verified, 0 failures, 1 mismatches - INVALID"
    )
    assert out[2].startswith("  - record 2 at byte ")


def test_verify_unusable_input(
    cassette: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.cassette"
    text = tmp_path / "notes.cassette"
    text.write_text("hello")
    assert main(["verify", str(missing), str(text), str(cassette)]) == 2
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert len(err) == 2
    assert str(missing) in err[0]
    assert "no such file" in err[0]
    assert str(text) in err[1]
    assert "not a pytest-replay cassette" in err[1]
    assert captured.out.endswith("- VALID\n")


# --------------------------------------------------------------------------- textconv


def test_textconv_is_stable_and_blocked(
    cassette: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["textconv", str(cassette)]) == 0
    first = capsys.readouterr().out
    copy = tmp_path / "copy.cassette"
    Cassette.create(copy, "app.pricing.total", [record(0), FAILED, ODD])
    assert main(["textconv", str(copy)]) == 0
    assert capsys.readouterr().out == first
    blocks = first.split("\n\n")
    assert blocks[0].splitlines()[1] == "key: app.pricing.total"
    assert [b.splitlines()[0] for b in blocks[1:]] == ["## record 0", "## record 1", "## record 2"]
    fields = [line.split(":")[0] for line in blocks[1].splitlines()[1:] if not line[0].isspace()]
    assert fields == [
        "id", "key", "target", "kind", "args", "kwargs", "result",
        "children", "boundary", "unreplayable", "meta",
    ]  # fmt: skip


def test_textconv_one_changed_result_is_a_small_diff(
    cassette: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["textconv", str(cassette)])
    before = lines(capsys.readouterr().out)
    changed = tmp_path / "changed.cassette"
    Cassette.create(changed, "app.pricing.total", [record(0, result=1), FAILED, ODD])
    main(["textconv", str(changed)])
    after = lines(capsys.readouterr().out)
    assert len(before) == len(after)
    assert [(a, b) for a, b in zip(before, after, strict=True) if a != b] == [
        ("result: 0", "result: 1")
    ]


def test_textconv_sorts_map_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.cassette", tmp_path / "b.cassette"
    Cassette.create(a, "k", [record(0, meta={"x": 1, "a": 2}, kwargs={"z": 1, "b": 2})])
    Cassette.create(b, "k", [record(0, meta={"a": 2, "x": 1}, kwargs={"b": 2, "z": 1})])
    main(["textconv", str(a)])
    out_a = capsys.readouterr().out
    main(["textconv", str(b)])
    assert capsys.readouterr().out == out_a


def test_textconv_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.cassette"
    path.write_bytes(b"\x00\x01\x02")
    assert main(["textconv", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(lines(captured.err)) == 1
    assert str(path) in captured.err


def test_show_errors_name_file_and_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.cassette"
    Cassette.create(path, "k", [record(0), record(1)])
    data = bytearray(path.read_bytes())
    data[-25] ^= 0x01
    path.write_bytes(data)
    assert main(["show", str(path)]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1
    assert str(path) in err[0]
    assert "record 1" in err[0]
    assert "re-record" in err[0]


@pytest.mark.parametrize(
    "command", [["show"], ["show", "--json"], ["show", "--at", "1"], ["textconv"]]
)
def test_record_that_cannot_be_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # well-formed msgpack with a known ext code, but not a datetime inside
    bad = record(1, result=msgpack.ExtType(codec.DATETIME, msgpack.packb("soon")))
    path = tmp_path / "odd.cassette"
    Cassette.create(path, "k", [record(0), codec.dumps(bad)])
    assert main([*command, str(path)]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1
    assert f"{path}: record 1: record cannot be shown (malformed datetime value" in err[0]


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["show"])
    assert info.value.code == 2


# --------------------------------------------------------------------------- python -m


def test_python_dash_m(cassette: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "pytest_replay", "verify", str(cassette)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("3/3 events verified, 0 failures, 0 mismatches - VALID")
    missing = subprocess.run(
        [sys.executable, "-m", "pytest_replay", "show", str(tmp_path / "none.cassette")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "none.cassette" in missing.stderr
