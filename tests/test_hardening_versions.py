"""Cassettes from the future (a higher format version) and from the past (a lower
one): every entry point says which versions are involved and what to do, and
nothing ever rewrites such a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
import pytest

from pytest_replay._version import __version__
from pytest_replay.cassette import FORMAT_NAME, FORMAT_VERSION, Cassette, CassetteError
from pytest_replay.cli import main as cli_main


def _cassette(path: Path, version: int, *, tail: bytes = b"") -> bytes:
    header = msgpack.packb(
        {"format": FORMAT_NAME, "version": version, "key": "k", "plugin": "9.9.9"}
    )
    digest = hashlib.blake2b(header, digest_size=16).digest()
    # A future format may put anything after its header: it is never parsed.
    data = msgpack.packb([header, digest]) + tail
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


CASES = {
    "future": (FORMAT_VERSION + 1, "newer", "upgrade pytest-replay-trace"),
    "far future": (2**40, "newer", "upgrade pytest-replay-trace"),
    "past": (FORMAT_VERSION - 1, "older", "re-record it"),
    "negative": (-3, "older", "re-record it"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_open_names_both_versions_and_the_fix(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    version, word, fix = CASES[case]
    path = tmp_path / "k.cassette"
    _cassette(path, version, tail=b"\x92\xc4\x01\x80future bytes")
    with pytest.raises(CassetteError) as info:
        Cassette.open(path)
    message = str(info.value)
    assert message.startswith(f"{path}: header: byte 0: format version {version} is {word}")
    assert f"(format version {FORMAT_VERSION}, pytest-replay-trace {__version__}" in message
    assert fix in message
    assert "\n" not in message
    # the CLI: exit 2, the same single line on stderr
    assert cli_main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"format version {version} is {word}" in err
    with capsys.disabled():
        print(f"\nversion {case}: {message}")


@pytest.mark.parametrize("mode", ["new", "rewrite"])
@pytest.mark.parametrize("case", ["future", "past"])
def test_recording_never_rewrites_another_version(
    pytester: pytest.Pytester, mode: str, case: str
) -> None:
    version = CASES[case][0]
    before = _cassette(pytester.path / "cassettes" / "k.cassette", version, tail=b"\x00future")
    pytester.makepyfile(
        test_a="""
        from pytest_replay import replay_trace

        @replay_trace(key="k")
        def add(a, b):
            return a + b

        @replay_trace(key="other")
        def sub(a, b):
            return a - b

        def test_x():
            assert add(1, 2) == 3
            assert sub(1, 2) == -1
        """
    )
    result = pytester.runpytest("--replay-record", f"--replay-record-mode={mode}")
    # the test itself passed; the run fails because a cassette could not be written
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"ERROR: *k.cassette: header: byte 0: format version {version}*"])
    assert (pytester.path / "cassettes" / "k.cassette").read_bytes() == before
    # the other function's cassette was still written
    assert Cassette.open(pytester.path / "cassettes" / "other.cassette").key == "other"


@pytest.mark.parametrize("case", ["future", "past"])
def test_replay_reports_the_version_as_an_item_error(pytester: pytest.Pytester, case: str) -> None:
    version = CASES[case][0]
    before = _cassette(pytester.path / "cassettes" / "k.cassette", version)
    result = pytester.runpytest("--replay", "--replay-update")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*k.cassette: header: byte 0: format version {version} is *"])
    assert (pytester.path / "cassettes" / "k.cassette").read_bytes() == before
