"""Interrupted `--replay-update` / `--replay-prune`: SIGKILL mid-rewrite leaves the old
cassette or the new one, byte for byte, never a mix.

Two kinds of kill: at every step of the atomic rewrite (creating the temp file,
after N bytes of it, fsync, chmod, just before and just after the rename),
injected by tests/hardening_helpers/killer.py in the pytest process; and at
seeded random moments of the whole run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hardening_helpers import killer

from pytest_replay.cassette import Cassette

N = 60

APP = """
from pytest_replay import replay_trace


@replay_trace(key="upd.f")
def f(i):
    return {{"i": i, "v": i * {factor}, "pad": "x" * 40}}
{g}

def test_calls():
    for i in range({n}):
        f(i)
{g_calls}
"""
G = """

@replay_trace(key="upd.g")
def g(i):
    return [i, "gone soon"]
"""

CONFTEST = """
import os

import killer

if os.environ.get("HARDEN_KILL"):
    killer.install(os.path.join(os.path.dirname(__file__), "cassettes"), os.environ["HARDEN_KILL"])
"""

KILL_POINTS = {
    # an update rewrites upd.f.cassette atomically (temp file, fsync, rename)
    "update": ["create", "write:0", "write:100", "write:4000", "fsync", "chmod", "replace",
               "replaced"],
    # pruning every record of upd.g deletes its cassette
    "prune": ["unlink", "unlinked"],
}  # fmt: skip
LAST_OLD = {"update": "replace", "prune": "unlink"}
RANDOM_KILLS = 4
REPAIRED = {"write:100", "replace", "unlink"}  # where the next run is shown to finish the job
SEED = 7


def _app(factor: int, *, with_g: bool) -> str:
    return APP.format(
        factor=factor,
        n=N,
        g=G if with_g else "",
        g_calls="        g(i)" if with_g else "",
    )


def _env(kill: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HARDEN_"))}
    if kill is not None:
        env["HARDEN_KILL"] = kill
    return env


def _pytest(project: Path, args: list[str], kill: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=_env(kill),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(project: Path, args: list[str], kill: str | None = None) -> tuple[int, str]:
    with _pytest(project, args, kill) as process:
        out, _ = process.communicate(timeout=120)
    return process.returncode, out


def _state(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "cassettes").glob("*.cassette"))}


def _pristine(tmp_path: Path, change: str) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A recorded project, then changed; its cassettes before and after an uninterrupted run."""
    project = tmp_path / "pristine"
    project.mkdir()
    (project / "killer.py").write_text(Path(killer.__file__).read_text())
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_app.py").write_text(_app(2, with_g=True))
    code, out = _run(project, ["--replay-record", "--replay-max-records=1000"])
    assert code == 0, out
    if change == "update":
        (project / "test_app.py").write_text(_app(3, with_g=True))  # every f record diverges
    else:
        (project / "test_app.py").write_text(_app(2, with_g=False))  # every g record is stale
    old = _state(project)
    reference = tmp_path / "reference"
    shutil.copytree(project, reference)
    code, out = _run(reference, ARGS[change])
    assert code == 0, out
    new = _state(reference)
    changed = [name for name in old if old[name] != new.get(name)]
    assert changed == (["upd.f.cassette"] if change == "update" else ["upd.g.cassette"])
    return project, old, new


ARGS = {"update": ["--replay", "--replay-update"], "prune": ["--replay", "--replay-prune"]}
Pristine = tuple[Path, dict[str, bytes], dict[str, bytes]]


@pytest.fixture(scope="module")
def pristine_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pristine]:
    """Recorded once per module: each test copies the project it kills."""
    return {
        change: _pristine(tmp_path_factory.mktemp(f"pristine-{change}"), change) for change in ARGS
    }


def _outcome(project: Path, old: dict[str, bytes], new: dict[str, bytes]) -> str:
    """ "old" or "new"; fails on anything else (a file that is neither, or half the files)."""
    state = _state(project)
    for name in old:
        # a pruned-away cassette is absent in the new state
        assert state.get(name) in (old[name], new.get(name)), f"{name} is neither old nor new"
    for name in state:
        assert Cassette.open(project / "cassettes" / name).verify().ok
    assert state in (old, new), "some cassettes are old and others new"
    return "new" if state == new else "old"


@pytest.mark.slow
@pytest.mark.parametrize("change", ["update", "prune"])
def test_kill_at_every_step_of_the_rewrite(
    tmp_path: Path,
    change: str,
    pristine_projects: dict[str, Pristine],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pristine, old, new = pristine_projects[change]
    outcomes: dict[str, str] = {}
    leftovers = 0
    for point in KILL_POINTS[change]:
        project = tmp_path / f"kill-{point.replace(':', '-')}"
        shutil.copytree(pristine, project)
        code, out = _run(project, ARGS[change], kill=point)
        assert code == -signal.SIGKILL, f"{point}: the kill point was never reached: {out}"
        outcomes[point] = _outcome(project, old, new)
        leftovers += len(list((project / "cassettes").glob(".*.tmp")))
        if point in REPAIRED:  # the next run finishes the job
            code, out = _run(project, ARGS[change])
            assert code == 0, out
            assert _state(project) == new
    # up to the rename (or the deletion) the old file stands; after it, the new state
    points = KILL_POINTS[change]
    cut = points.index(LAST_OLD[change])
    assert outcomes == {p: "old" if i <= cut else "new" for i, p in enumerate(points)}
    with capsys.disabled():
        print(
            f"\nrewrite ({change}): killed at {len(KILL_POINTS[change])} steps: "
            + ", ".join(f"{p} -> {o}" for p, o in outcomes.items())
            + f"; 0 mixed; {leftovers} orphaned temp files left (hidden, never read)"
        )


@pytest.mark.slow
@pytest.mark.parametrize("change", ["update", "prune"])
def test_kill_at_random_moments(
    tmp_path: Path,
    change: str,
    pristine_projects: dict[str, Pristine],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pristine, old, new = pristine_projects[change]
    reference = tmp_path / "timing"
    shutil.copytree(pristine, reference)
    start = time.perf_counter()
    code, _ = _run(reference, ARGS[change])
    runtime = time.perf_counter() - start
    assert code == 0
    rng = random.Random(f"{SEED}-{change}")
    counts = {"old": 0, "new": 0}
    for k in range(RANDOM_KILLS):
        project = tmp_path / f"random-{k}"
        shutil.copytree(pristine, project)
        with _pytest(project, ARGS[change]) as process:
            # the rewrite ends the session, but interpreter exit still takes a
            # while: these kills land before, around and after it
            time.sleep(rng.uniform(0.05, 0.6) * runtime)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=120)
        counts[_outcome(project, old, new)] += 1
    assert sum(counts.values()) == RANDOM_KILLS
    with capsys.disabled():
        print(
            f"\nrewrite ({change}): {RANDOM_KILLS} kills at random moments of a "
            f"{runtime:.1f} s run: {counts['old']} old, {counts['new']} new, 0 mixed"
        )
