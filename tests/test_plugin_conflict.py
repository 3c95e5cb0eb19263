"""The unrelated `pytest-replay` distribution cannot be installed beside us: say so clearly."""

from __future__ import annotations

import pytest


def test_other_pytest_replay_distribution_stops_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dist-info folder is all importlib.metadata needs to see an installed
    # distribution, so this is what an installed `pytest-replay` looks like.
    site = pytester.mkdir("fake_site")
    dist_info = site / "pytest_replay-1.16.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pytest-replay\nVersion: 1.16.0\n", encoding="utf-8"
    )
    pytester.makepyfile("def test_nothing():\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(site))

    result = pytester.runpytest_subprocess()

    assert result.ret != 0
    result.stderr.fnmatch_lines(
        ["*pytest-replay-trace cannot run beside the unrelated 'pytest-replay'*pip uninstall*"]
    )
    assert "passed" not in result.stdout.str()


def test_without_the_other_distribution_the_plugin_loads(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--replay-dir=cassettes")
    result.assert_outcomes(passed=1)


def test_disabled_with_p_no(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:replay_trace", "--replay")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --replay*"])
