"""What application code pays for `import pytest_replay`: no pytest, no deepdiff."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pytest_replay

PROGRAM = textwrap.dedent(
    """
    import sys
    import pytest_replay
    from pytest_replay import replay_trace, recording

    @replay_trace
    def add(a, b):
        return a + b

    assert add(1, 2) == 3                      # inactive path
    with recording(sys.argv[1]):
        assert add(2, 3) == 5                  # recording path, flushed on exit
    heavy = sorted(m for m in ("pytest", "deepdiff", "_pytest") if m in sys.modules)
    print("HEAVY:" + ",".join(heavy))
    """
)


def test_application_code_never_imports_pytest_or_deepdiff(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(PROGRAM, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cassettes")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY:\n" in done.stdout, done.stdout
    assert list((tmp_path / "cassettes").glob("*.cassette")), "the recording was not written"


def test_every_public_name_resolves() -> None:
    for name in pytest_replay.__all__:
        assert getattr(pytest_replay, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        pytest_replay.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_module_entry_point_matches_console_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_replay", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"pytest-replay {pytest_replay.__version__}"
