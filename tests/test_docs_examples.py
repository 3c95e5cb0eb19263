"""The examples under docs/examples/ do what the docs say they do."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "docs" / "examples" / "quickstart"
LLM = ROOT / "docs" / "examples" / "llm_pipeline"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["COLUMNS"] = "200"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def test_demo_records_replays_and_catches_the_regression(tmp_path: Path) -> None:
    before = _digest(QUICKSTART)
    report = tmp_path / "report.html"
    proc = _run(QUICKSTART / "demo.py", "--report", report, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "regression caught as expected" in output
    caught = output[output.index("regression caught as expected") :]
    assert re.search(r"total.*114\.0.*108\.0", caught), output
    # the failing replay's report shows the diverged item with its diff
    page = report.read_text(encoding="utf-8")
    assert 'data-outcome="diverged"' in page
    assert "114.0" in page
    assert "108.0" in page
    # the demo works in a temporary copy: the example directory is untouched
    assert _digest(QUICKSTART) == before
    assert not (QUICKSTART / "cassettes").exists()


def test_demo_fails_loudly_when_the_change_is_not_caught(tmp_path: Path) -> None:
    # Tests that never ask for a bulk quote: the scripted change is invisible
    # to the recording, so the demo's promise does not hold and it must say so.
    copy = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, copy, ignore=shutil.ignore_patterns("cassettes", "__pycache__"))
    (copy / "test_pricing.py").write_text(
        'from pricing import quote\n\n\ndef test_small():\n    assert quote("A-1", 2)\n'
    )
    proc = _run(copy / "demo.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert "demo FAILED: `pytest --replay -q` exited 0, expected 1" in proc.stderr


def test_demo_fails_when_its_scripted_change_no_longer_applies(tmp_path: Path) -> None:
    copy = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, copy, ignore=shutil.ignore_patterns("cassettes", "__pycache__"))
    pricing = copy / "pricing.py"
    pricing.write_text(pricing.read_text().replace("9.5 if qty", "9.25 if qty"))
    proc = _run(copy / "demo.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert "pricing.py no longer contains 'unit = 9.5 if qty >= 10 else 10.0'" in proc.stderr


def test_readme_demo_command_runs_this_demo() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- demo-command -->", 1)[1].split("<!-- /demo-command -->", 1)[0]
    command = block.strip().strip("`").removeprefix("bash").strip()
    assert command.endswith(".venv/bin/python docs/examples/quickstart/demo.py")
    assert "pip install -q -e ." in command
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    assert command in quickstart


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_llm_example_tests_pass_without_pytest_replay_options(
    tmp_path: Path, offline: bool
) -> None:
    copy = tmp_path / "llm"
    shutil.copytree(LLM, copy, ignore=shutil.ignore_patterns("cassettes", "__pycache__"))
    env_note = {"FAKE_LLM_OFFLINE": "1"} if offline else {}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=copy,
        env={**_env(), **env_note},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if offline:
        # the fake client really is unreachable offline: only a replay can answer
        assert proc.returncode == 1, proc.stdout
        assert "4 failed" in proc.stdout
        assert "FAKE_LLM_OFFLINE is set" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "4 passed" in proc.stdout
