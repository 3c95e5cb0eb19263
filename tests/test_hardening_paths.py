"""Hostile keys, import paths and symlinks cannot make the plugin read or write
outside the replay directory.

Keys are mapped to safe file names as docs/cassette-format.md ("File name")
specifies; :func:`_documented_name` re-implements that text independently, so
the code and the spec cannot drift apart. Every test snapshots the directories
around the replay dir and checks that nothing there changed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_replay import codec, trace
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.record import Record, record_id

HOSTILE_KEYS: dict[str, str] = {
    "dotdot": "../../outside/evil",
    "dotdot only": "..",
    "dot only": ".",
    "absolute": "/etc/passwd",
    "windows absolute": "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "unc path": "\\\\server\\share\\x",
    "nul byte": "a\x00b",
    "control chars": "a\nb\tc\x1b[31m",
    "over-long": "k" * 4000,
    "just over 120": "k" * 121,
    "device CON": "CON",
    "device nul.txt": "nul.txt",
    "device com1.log": "com1.log",
    "device LPT9": "LPT9",
    "device CON dot": "CON.",
    "device with space": "AUX ",
    "leading dash": "-rf",
    "hidden": ".bashrc",
    "tilde": "~/.ssh/authorized_keys",
    "unicode dotdot": "é/../ü",
    "right-to-left override": "\u202eexe.txt",
    "fullwidth dots and slash": "\uff0e\uff0e\uff0fx",
    "trailing dot": "name.",
    "space": " ",
    "colon": "a:b",
    "percent encoded": "%2e%2e%2fetc",
}

_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{base}{n}" for base in ("COM", "LPT") for n in "123456789"
}


def _device(stem: str) -> bool:
    return stem.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES


def _documented_name(key: str) -> str:
    """The file name for ``key``, written from docs/cassette-format.md, not from the code."""
    allowed = re.compile(r"[A-Za-z0-9._-]*\Z")
    if len(key) <= 120 and allowed.match(key) and key and key[0] not in ".-" and not _device(key):
        return key + ".cassette"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", key).lstrip(".-")[:100] or "key"
    if _device(stem):
        stem = "_" + stem
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=6).hexdigest()[:12]
    return f"{stem}-{digest}.cassette"


def _snapshot(root: Path, skip: Path | None = None) -> dict[str, Any]:
    """Every entry under ``root`` (not following symlinks) with its content or target."""
    state: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        if skip is not None and (base == skip or skip in base.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = base / name
            if skip is not None and path == skip:
                continue
            rel = str(path.relative_to(root))
            if path.is_symlink():
                state[rel] = ("link", os.readlink(path))
            elif path.is_file():
                state[rel] = ("file", path.read_bytes(), path.stat().st_mode)
            else:
                state[rel] = ("dir",)
    return state


def _assert_safe_name(name: str) -> None:
    assert name.endswith(".cassette"), name
    assert not set(name) & {"/", "\\", "\x00"}
    assert not name.startswith((".", "-"))
    assert all(32 < ord(c) < 127 for c in name), name
    assert len(name) < 140
    assert not _device(name[: -len(".cassette")])


@pytest.mark.parametrize("label", sorted(HOSTILE_KEYS))
def test_key_maps_to_the_documented_safe_name(tmp_path: Path, label: str) -> None:
    key = HOSTILE_KEYS[label]
    path = cassette_path(tmp_path, key)
    assert path.parent == tmp_path
    assert path.name == _documented_name(key)
    _assert_safe_name(path.name)


def test_documented_example_and_distinctness(tmp_path: Path) -> None:
    # the example given in the spec, byte for byte
    assert cassette_path(tmp_path, "a/../b").name == "a_.._b-8485bef9dfba.cassette"
    names = {cassette_path(tmp_path, key).name for key in HOSTILE_KEYS.values()}
    assert len(names) == len(HOSTILE_KEYS)  # the hash suffix keeps distinct keys distinct
    assert cassette_path(tmp_path, "a/b").name != cassette_path(tmp_path, "a\\b").name


@pytest.fixture
def traced() -> Iterator[Callable[[str], Callable[[int], int]]]:
    made: list[Any] = []

    def make(key: str) -> Callable[[int], int]:
        def echo(x: int) -> int:
            return x * 2

        echo.__qualname__ = f"echo_{len(made)}"
        fn = trace.replay_trace(key=key)(echo)
        made.append(fn)
        return fn  # type: ignore[no-any-return]

    yield make
    for fn in made:
        trace._unregister(fn.__replay_spec__)


def test_hostile_keys_record_only_inside_the_replay_dir(
    tmp_path: Path,
    traced: Callable[[str], Callable[[int], int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "root"
    replay_dir = root / "cassettes"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "evil").write_text("keep")
    (root / "src").mkdir(parents=True)
    before = _snapshot(tmp_path, skip=replay_dir)
    functions = {key: traced(key) for key in HOSTILE_KEYS.values()}
    with trace.recording(replay_dir) as session:
        for fn in functions.values():
            assert fn(21) == 42
    assert session.report.errors == []
    assert _snapshot(tmp_path, skip=replay_dir) == before
    files = sorted(p for p in replay_dir.iterdir() if p.suffix == ".cassette")
    assert len(files) == len(HOSTILE_KEYS)
    for key in HOSTILE_KEYS.values():
        path = replay_dir / _documented_name(key)
        cassette = Cassette.open(path)
        assert cassette.key == key  # the header keeps the real key
        (record,) = list(cassette.records())
        assert record["key"] == key
    with capsys.disabled():
        print(
            f"\npaths: {len(HOSTILE_KEYS)} hostile keys recorded, {len(files)} files, all inside "
            f"the replay dir, 0 files changed outside it"
        )


@pytest.mark.parametrize("xdist", [[], ["-n", "0"], ["-n", "2"]], ids=["no-xdist", "n0", "n2"])
def test_hostile_keys_end_to_end(pytester: pytest.Pytester, xdist: list[str]) -> None:
    """Record with hostile keys, then replay: everything stays inside cassettes/."""
    keys = ["../../escape", "/etc/passwd", "CON", "nul.txt", "a\x00b", "~/x", "k" * 300]
    lines = ["from pytest_replay import replay_trace", ""]
    for i, key in enumerate(keys):
        lines += [f"@replay_trace(key={key!r})", f"def f{i}(x):", "    return x + 1", ""]
    lines += ["def test_all():"] + [f"    assert f{i}({i}) == {i + 1}" for i in range(len(keys))]
    pytester.makepyfile(test_keys="\n".join(lines))
    outside = pytester.path.parent / f"{pytester.path.name}-outside"
    outside.mkdir()
    before = _snapshot(pytester.path, skip=pytester.path / "cassettes")
    result = pytester.runpytest("--replay-record", "-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    files = sorted(p.name for p in (pytester.path / "cassettes").iterdir())
    assert [f for f in files if f.endswith(".cassette")] == sorted(
        _documented_name(k) for k in keys
    )
    replayed = pytester.runpytest("--replay", "-m", "replay", "-p", "no:cacheprovider", *xdist)
    replayed.assert_outcomes(passed=len(keys))
    after = _snapshot(pytester.path, skip=pytester.path / "cassettes")
    assert {k: v for k, v in after.items() if "__pycache__" not in k} == before
    assert list(outside.iterdir()) == []


def test_over_limit_key_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="""
        from pytest_replay import replay_trace

        @replay_trace(key="k" * 5000)
        def long(x):
            return x

        @replay_trace(key="zzz")
        def later(x):
            return x

        def test_x():
            assert long(1) == 1
            assert later(2) == 2
        """
    )
    result = pytester.runpytest("--replay-record")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        ["ERROR: *: cassette key is 5000 characters long, over 4096 (its new records were not*"]
    )
    # one bad key never costs the other cassettes
    assert Cassette.open(pytester.path / "cassettes" / "zzz.cassette").key == "zzz"


def _crafted(path: Path, key: str, rows: list[tuple[str, list[Any]]]) -> None:
    records = []
    for target, args in rows:
        rid = record_id(key, codec.dumps([args, {}]))
        records.append(Record(rid, key, target, args, {}, result=None).to_map())
    Cassette.create(path, key, records)


def test_hostile_recorded_import_paths_are_unreplayable(pytester: pytest.Pytester) -> None:
    victim = pytester.path.parent / f"{pytester.path.name}-victim.txt"
    victim.write_text("precious")
    targets = [
        "../../etc:passwd",
        "/abs/module:f",
        "a\x00b:c",
        "CON:x",
        "nul.txt:y",
        "pkg/../../x:f",
        "x" * 5000 + ":y",
        "no-colon",
        ":",
    ]
    _crafted(
        pytester.path / "cassettes" / "dots.cassette",
        "dots",
        [(t, [str(victim), i]) for i, t in enumerate(targets)],
    )
    before = _snapshot(pytester.path.parent, skip=pytester.path)
    result = pytester.runpytest("--replay", "--replay-update", "--replay-prune")
    outcomes = result.parseoutcomes()
    # not module:qualname at all -> stale (skipped, prunable); the rest fail as unreplayable
    assert outcomes == {"failed": len(targets) - 2, "skipped": 2}
    assert "INTERNALERROR" not in result.stdout.str()
    assert _snapshot(pytester.path.parent, skip=pytester.path) == before
    assert victim.read_text() == "precious"


def test_replay_runs_only_traced_targets(pytester: pytest.Pytester) -> None:
    """A cassette naming any importable callable (os:remove) never makes replay call it."""
    victim = pytester.path.parent / f"{pytester.path.name}-victim.txt"
    victim.write_text("precious")
    _crafted(pytester.path / "cassettes" / "evil.cassette", "evil", [("os:remove", [str(victim)])])
    result = pytester.runpytest("--replay")
    assert victim.exists(), "replaying a crafted cassette deleted a file outside the replay dir"
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*reason:   target os:remove is not traced by pytest-replay; refusing to call it"]
    )


# --------------------------------------------------------------------------- symlinks


RECORD_TWO = """
from pytest_replay import replay_trace

@replay_trace(key="k")
def add(a, b):
    return a + b

def test_x():
    assert add(1, 2) == 3
    assert add({a}, 2) == {a} + 2
"""


def _outside_cassette(pytester: pytest.Pytester) -> Path:
    """A valid cassette for key "k" in a project next to the pytester project."""
    other = pytester.path.parent / f"{pytester.path.name}-other"
    other.mkdir()
    records = []
    for a in (1, 30):
        rid = record_id("k", codec.dumps([[a, 2], {}]))
        records.append(Record(rid, "k", "test_a:add", [a, 2], {}, result=a + 2).to_map())
    path = other / "cassettes" / "k.cassette"
    Cassette.create(path, "k", records)
    return path


def test_replay_dir_that_is_a_symlink_outside_rootdir(pytester: pytest.Pytester) -> None:
    """The replay dir itself may be a link: it is resolved once and used, nothing else."""
    real = pytester.path.parent / f"{pytester.path.name}-shared-cassettes"
    real.mkdir()
    (pytester.path / "cassettes").symlink_to(real, target_is_directory=True)
    pytester.makepyfile(test_a=RECORD_TWO.format(a=3))
    neighbours = _snapshot(pytester.path.parent, skip=real)
    neighbours = {k: v for k, v in neighbours.items() if k.startswith(real.name)}
    result = pytester.runpytest("--replay-record")
    assert result.ret == 0
    assert sorted(p.name for p in real.iterdir()) == ["k.cassette"]
    assert (pytester.path / "cassettes").is_symlink()
    replayed = pytester.runpytest("--replay", "--replay-update", "-m", "replay")
    assert replayed.ret == 0
    after = _snapshot(pytester.path.parent, skip=real)
    assert {k: v for k, v in after.items() if k.startswith(real.name)} == neighbours


def test_symlinked_replay_dir_is_collected_once(pytester: pytest.Pytester) -> None:
    real = pytester.path.parent / f"{pytester.path.name}-shared-cassettes"
    real.mkdir()
    (pytester.path / "cassettes").symlink_to(real, target_is_directory=True)
    pytester.makepyfile(test_a=RECORD_TWO.format(a=3))
    assert pytester.runpytest("--replay-record").ret == 0
    pytester.runpytest("--replay", "-m", "replay").assert_outcomes(passed=2, deselected=1)


def test_cassette_symlink_to_outside_is_never_written(pytester: pytest.Pytester) -> None:
    outside = _outside_cassette(pytester)
    before = outside.read_bytes()
    (pytester.path / "cassettes").mkdir()
    (pytester.path / "cassettes" / "k.cassette").symlink_to(outside)
    pytester.makepyfile(test_a=RECORD_TWO.format(a=3))
    result = pytester.runpytest("--replay-record")
    assert outside.read_bytes() == before
    result.stdout.fnmatch_lines(["ERROR: *k.cassette: is a symbolic link; recording only *"])


def test_lock_file_symlink_is_never_followed(pytester: pytest.Pytester) -> None:
    victim = pytester.path.parent / f"{pytester.path.name}-bashrc"
    victim.write_text("export PATH=/usr/bin\n")
    (pytester.path / "cassettes").mkdir()
    (pytester.path / "cassettes" / ".pytest-replay.lock").symlink_to(victim)
    pytester.makepyfile(test_a=RECORD_TWO.format(a=3))
    pytester.runpytest("--replay-record")
    assert victim.read_text() == "export PATH=/usr/bin\n"


def test_symlinked_subdirectory_is_not_updated(pytester: pytest.Pytester) -> None:
    outside = _outside_cassette(pytester)
    before = outside.read_bytes()
    (pytester.path / "cassettes").mkdir()
    (pytester.path / "cassettes" / "ext").symlink_to(outside.parent, target_is_directory=True)
    # the function changed: every record diverges, so --replay-update wants to rewrite them
    pytester.makepyfile(test_a=RECORD_TWO.format(a=3).replace("return a + b", "return a - b"))
    pytester.runpytest("--replay", "--replay-update", "-m", "replay")
    assert outside.read_bytes() == before
