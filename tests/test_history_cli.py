"""``pytest-replay check-history``: verdicts, output, exit codes 0/1/2/3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_replay.cli import main
from pytest_replay.history import History


def _history_file(tmp_path: Path, name: str, read_value: int) -> Path:
    h = History()
    h.op("write", 1, lambda: None)
    h.op("read", None, lambda: read_value)
    path = tmp_path / name
    h.dump(path)
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return _history_file(tmp_path, "good.jsonl", 1)


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    return _history_file(tmp_path, "bad.jsonl", 2)  # nobody wrote 2


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["check-history", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_linearizable_exits_0(capsys: pytest.CaptureFixture[str], good: Path) -> None:
    code, out, err = _run(capsys, good, "--model", "cas-register")
    assert code == 0
    assert out.splitlines()[0].startswith(f"{good}: ok (2 ops, model cas-register, knossos ")
    assert err == ""


def test_not_linearizable_exits_1_with_the_counterexample(
    capsys: pytest.CaptureFixture[str], good: Path, bad: Path
) -> None:
    code, out, err = _run(capsys, good, bad, "--model", "cas-register")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{good}: ok ")
    assert lines[1].startswith(f"{bad}: ILLEGAL (2 ops, ")
    # The counterexample follows, indented, and names the read that cannot be placed.
    body = [line for line in lines[2:] if line.startswith("  ")]
    assert body
    assert any("read" in line and "2" in line for line in body)
    assert lines[-1] == "2 files: 1 ok, 1 illegal"
    assert err == ""


def test_json_one_object_per_file(
    capsys: pytest.CaptureFixture[str], good: Path, bad: Path, tmp_path: Path
) -> None:
    html = tmp_path / "pages"
    code, out, _ = _run(
        capsys, good, bad, "--model", "cas-register", "--json", "--html", html, "--timeout", "30"
    )
    assert code == 1
    first, second = (json.loads(line) for line in out.splitlines())
    assert (first["file"], first["verdict"], first["ops"]) == (str(good), "ok", 2)
    assert (second["file"], second["verdict"], second["ops"]) == (str(bad), "illegal", 2)
    for record in (first, second):
        assert isinstance(record["seconds"], float)
        assert 0 <= record["seconds"] < 30
    # Pages only for histories that are not linearizable; named after the input path.
    assert "html" not in first
    page = Path(second["html"])
    assert page.parent == html
    assert page.name.endswith("bad.jsonl.html")
    assert page.is_file()
    assert [p.name for p in html.iterdir()] == [page.name]


def test_html_in_text_mode(capsys: pytest.CaptureFixture[str], bad: Path, tmp_path: Path) -> None:
    code, out, _ = _run(capsys, bad, "--model", "cas-register", "--html", tmp_path / "h")
    assert code == 1
    (page,) = (tmp_path / "h").iterdir()
    assert f"  HTML: {page}" in out.splitlines()


def test_missing_file_exits_2_and_the_others_are_still_checked(
    capsys: pytest.CaptureFixture[str], good: Path, bad: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.edn"
    code, out, err = _run(capsys, missing, good, bad, "--model", "cas-register")
    assert code == 2  # unusable input wins over an illegal history
    assert err.splitlines() == [
        f"pytest-replay: error: {missing}: cannot read: No such file or directory"
    ]
    assert f"{good}: ok" in out
    assert f"{bad}: ILLEGAL" in out
    assert out.splitlines()[-1] == "3 files: 1 ok, 1 illegal, 1 unusable"


def test_parse_error_exits_2_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.edn"
    path.write_text(
        "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :value 1}\n"
    )
    code, out, err = _run(capsys, path, "--model", "cas-register")
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"pytest-replay: error: {path}:2: op has no :f")
    assert line.endswith("(fix that line, or name the format with --format)")


def test_forced_format_that_does_not_match_exits_2(
    capsys: pytest.CaptureFixture[str], good: Path
) -> None:
    code, _, err = _run(capsys, good, "--model", "cas-register", "--format", "jepsen-edn")
    assert code == 2
    assert f"{good}:1: " in err


def test_unknown_model_exits_2(capsys: pytest.CaptureFixture[str], good: Path) -> None:
    code, out, err = _run(capsys, good, "--model", "no-such-model")
    assert code == 2
    assert out == ""
    assert "unknown model 'no-such-model'" in err
    assert "cas-register" in err  # lists what exists


def test_model_that_does_not_fit_the_history_exits_2(
    capsys: pytest.CaptureFixture[str], good: Path
) -> None:
    code, _, err = _run(capsys, good, "--model", "kv")
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(f"pytest-replay: error: {good}: ")
    assert line.endswith("(is --model kv the right model for this file?)")


@pytest.mark.parametrize(
    "argv",
    [
        ["--timeout", "0"],
        ["--timeout", "-1"],
        ["--timeout", "soon"],
        ["--conventions", "jepsen"],
        ["--format", "yaml"],
    ],
)
def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], good: Path, argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-history", str(good), "--model", "cas-register", *argv])
    assert info.value.code == 2
    assert "check-history: error:" in capsys.readouterr().err


def test_model_is_required(capsys: pytest.CaptureFixture[str], good: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-history", str(good)])
    assert info.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_empty_history_is_linearizable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_text("")
    code, out, _ = _run(capsys, path, "--model", "cas-register", "--conventions", "porcupine")
    assert code == 0
    assert out.startswith(f"{path}: ok (0 ops")


# --------------------------------------------------------------------------- on the real corpus


def test_corpus_etcd_files(capsys: pytest.CaptureFixture[str], linearizability_data: Path) -> None:
    etcd = linearizability_data / "porcupine/etcd"
    args = ("--model", "cas-register", "--conventions", "porcupine", "--json")
    code, out, _ = _run(capsys, etcd / "etcd_005.log", *args)
    assert code == 0
    assert json.loads(out)["verdict"] == "ok"
    code, out, _ = _run(capsys, etcd / "etcd_005.log", etcd / "etcd_000.log", *args)
    assert code == 1
    assert [json.loads(line)["verdict"] for line in out.splitlines()] == ["ok", "illegal"]


def test_corpus_knossos_and_kv(
    capsys: pytest.CaptureFixture[str], linearizability_data: Path
) -> None:
    good = linearizability_data / "knossos/cas-register/good/memstress3-1.edn"
    bad = linearizability_data / "knossos/cas-register/bad/rethink-fail-minimal.edn"
    assert _run(capsys, good, "--model", "cas-register", "--conventions", "knossos")[0] == 0
    assert _run(capsys, bad, "--model", "cas-register", "--conventions", "knossos")[0] == 1
    kv = linearizability_data / "porcupine/kv/c01-ok.txt"
    assert _run(capsys, kv, "--model", "kv", "--conventions", "porcupine")[0] == 0


def test_corpus_undecided_exits_3(
    capsys: pytest.CaptureFixture[str], linearizability_data: Path, tmp_path: Path
) -> None:
    # The 50-client kv history checked whole (no partitioning) is far beyond 10 ms.
    hard = linearizability_data / "porcupine/kv/c50-ok.txt"
    args = ("--model", "kv-whole", "--conventions", "porcupine", "--timeout", "0.01")
    code, out, _ = _run(capsys, hard, *args, "--json")
    assert code == 3
    record = json.loads(out)
    assert record["verdict"] == "unknown"
    assert record["ops"] > 1000
    # Illegal wins over unknown; unusable wins over both.
    bad = linearizability_data / "porcupine/kv/c01-bad.txt"
    assert _run(capsys, hard, bad, *args)[0] == 1
    assert _run(capsys, hard, tmp_path / "missing.txt", *args)[0] == 2


def test_console_entry_point(good: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_replay", "check-history", str(good), "--model", "register"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{good}: ok")
