"""Load: a big cassette streams in bounded memory, and a threaded, distributed
recording run loses nothing, stores nothing twice and writes the same bytes
whatever ``-n`` is.

The suite runs scaled-down sizes (see docs/reliability.md);
benchmarks/bench_load.py runs the full ones (1,000,000 records; 200,000 calls).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hardening_helpers import loadproject

from pytest_replay.cassette import Cassette

HELPERS = Path(__file__).parent


def _child(*args: str) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "-m", "hardening_helpers.bigcassette", *args],
        cwd=HELPERS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_big_cassette_streams_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """open + verify + iterate: peak RSS does not grow with the number of records."""
    results = {}
    for n in (20_000, 200_000):
        path = tmp_path / f"big{n}.cassette"
        written = _child("write", str(path), str(n))
        read = _child("read", str(path))
        assert read["records"] == read["verified"] == n
        assert read["valid"] is True
        assert read["peak_above_base_mb"] < 200
        results[n] = (written, read)
    small, big = results[20_000][1], results[200_000][1]
    # 10x the records, 10x the bytes: the reader's peak must not follow
    growth = big["peak_above_base_mb"] - small["peak_above_base_mb"]
    assert growth < 8, f"peak RSS grew by {growth:.1f} MB from 20,000 to 200,000 records"
    with capsys.disabled():
        for n, (written, read) in results.items():
            print(
                f"\nload: {n} records ({written['bytes'] / 2**20:.0f} MB): write "
                f"{written['write_s']:.2f} s; open {read['open_s'] * 1000:.1f} ms, verify "
                f"{read['verify_s']:.2f} s, iterate {read['iterate_s']:.2f} s; peak RSS "
                f"{read['peak_above_base_mb']:.1f} MB above the interpreter "
                f"({read['base_rss_mb']:.0f} MB)"
            )


def _cassettes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.cassette"))}


CALLS = 20_000
RECORD = ["--replay-record", "--replay-max-records=1000000", "--replay-record-durations=off"]


@pytest.mark.slow
def test_threaded_distributed_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = loadproject.expected(CALLS)
    outputs: dict[str, dict[str, bytes]] = {}
    times = {}
    for mode, args in {"no xdist": [], "-n 0": ["-n", "0"], "-n 2": ["-n", "2"]}.items():
        project = tmp_path / mode.replace(" ", "")
        loadproject.write_project(project, CALLS)
        process, seconds = loadproject.run_pytest(project, [*RECORD, *args])
        assert process.returncode == 0, process.stdout + process.stderr
        assert f"calls seen again, not stored twice: {expected['__repeats__']}" in process.stdout
        outputs[mode] = _cassettes(project / "cassettes")
        times[mode] = seconds
        for name in outputs[mode]:
            records = list(Cassette.open(project / "cassettes" / name).records())
            key = name.removesuffix(".cassette")
            ids = [r["id"] for r in records]
            assert len(records) == expected[key], f"{mode}: {name}"
            assert len(set(ids)) == len(ids), f"{mode}: {name} holds a record twice"
            assert Cassette.open(project / "cassettes" / name).verify().ok
        assert sorted(outputs[mode]) == sorted(
            f"{k}.cassette" for k in expected if not k.startswith("__")
        )
    for mode in ("-n 0", "-n 2"):
        # Every cassette, including the one that 8 threads of one test write at
        # once: calls made off the test's thread sort by record id, not by the
        # scheduler's order.
        for name in outputs["no xdist"]:
            assert outputs[mode][name] == outputs["no xdist"][name], f"{mode}: {name} differs"
    total = sum(expected[k] for k in expected if not k.startswith("__"))
    with capsys.disabled():
        print(
            f"\nload: {expected['__calls__']} traced calls across {loadproject.TESTS} tests x "
            f"{loadproject.THREADS} threads: {total} records stored exactly, "
            f"{expected['__repeats__']} repeats counted not stored, 0 duplicates; "
            f"all {len(outputs['no xdist'])} cassettes byte-identical across no xdist "
            f"/ -n 0 / -n 2; times "
            + ", ".join(f"{mode} {seconds:.1f} s" for mode, seconds in times.items())
        )

