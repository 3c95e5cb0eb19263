"""Load figures at full size: a 1,000,000-record cassette, and a 200,000-call recording
run across 8 threads and `-n 2`.

    python benchmarks/bench_load.py [--records N] [--calls N] [--skip-cassette] [--skip-run]

1. Cassette: a child process writes N records (~290 bytes each); a fresh child
   opens, verifies and iterates them, reporting wall times and its peak RSS
   above the interpreter (``VmHWM`` minus the RSS after imports). Baseline in
   the same run: a bare ``msgpack.Unpacker`` pass over the same file.
   Target: peak RSS < 200 MB above the interpreter (streaming).
2. Recording run: the project of tests/hardening_helpers/loadproject.py (8 tests
   x 8 threads, every 10th call repeated) recorded with no xdist, ``-n 0`` and
   ``-n 2``. Checks: exact record counts per cassette, no duplicates, the
   every cassette byte-identical across the three runs, including the one
   that 8 threads of one test write at once. Baseline in the same run: the same project
   without ``--replay-record``.

Prints PASS/MISS per target; the exit code is 0 unless a correctness check fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hardening_helpers import loadproject  # noqa: E402

from pytest_replay.cassette import Cassette  # noqa: E402

RSS_TARGET_MB = 200.0


def _child(*args: str) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "-m", "hardening_helpers.bigcassette", *args],
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(process.stdout)  # type: ignore[no-any-return]


def _raw_pass(path: Path) -> float:
    """Frames unpacked and each payload decoded by bare msgpack: no hashing, no limits."""
    unpackb = msgpack.unpackb
    start = time.perf_counter()
    with path.open("rb") as stream:
        for payload, _digest in msgpack.Unpacker(stream, max_buffer_size=64 * 2**20):
            unpackb(payload)
    return time.perf_counter() - start


def bench_cassette(records: int, workdir: Path) -> bool:
    path = workdir / "big.cassette"
    written = _child("write", str(path), str(records))
    read = _child("read", str(path))
    raw = _raw_pass(path)
    ok = read["records"] == records and read["valid"] and read["verified"] == records
    total = read["open_s"] + read["verify_s"] + read["iterate_s"]
    peak = read["peak_above_base_mb"]
    print(f"cassette: {records:,} records, {written['bytes'] / 2**20:.0f} MB on disk")
    print(f"  write (Cassette.create, streaming)  {written['write_s']:8.2f} s")
    print(f"  open                                {read['open_s'] * 1000:8.2f} ms")
    print(f"  verify (hash chain + decode)        {read['verify_s']:8.2f} s")
    print(
        f"  iterate records() (hash + decode)   {read['iterate_s']:8.2f} s   bare msgpack "
        f"unpack+decode pass {raw:.2f} s   ratio {read['iterate_s'] / raw:.2f}x"
    )
    print(f"  open+verify+iterate                 {total:8.2f} s")
    verdict = "PASS" if peak < RSS_TARGET_MB else "MISS"
    print(
        f"  peak RSS above the interpreter      {peak:8.1f} MB  "
        f"(interpreter {read['base_rss_mb']:.0f} MB; target < {RSS_TARGET_MB:.0f} MB) {verdict}"
    )
    print(f"  all {records:,} records verified: {'yes' if ok else 'NO'}")
    return ok


def _cassettes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.cassette"))}


def bench_recording(calls: int, workdir: Path) -> bool:
    expected = loadproject.expected(calls)
    record = ["--replay-record", "--replay-max-records=10000000", "--replay-record-durations=off"]
    runs = {
        "baseline (no recording)": ([], "baseline"),
        "record, no xdist": (record, "plain"),
        "record, -n 0": ([*record, "-n", "0"], "n0"),
        "record, -n 2": ([*record, "-n", "2"], "n2"),
    }
    ok = True
    outputs: dict[str, dict[str, bytes]] = {}
    times: dict[str, float] = {}
    print(
        f"recording run: {expected['__calls__']:,} traced calls, {loadproject.TESTS} tests x "
        f"{loadproject.THREADS} threads ({expected['__repeats__']:,} repeated calls)"
    )
    for label, (args, name) in runs.items():
        project = workdir / name
        loadproject.write_project(project, calls)
        process, seconds = loadproject.run_pytest(project, args, timeout=1800)
        times[label] = seconds
        if process.returncode != 0:
            print(f"  {label}: pytest exited {process.returncode}\n{process.stdout[-2000:]}")
            ok = False
            continue
        if name == "baseline":
            print(f"  {label:28} {seconds:7.2f} s")
            continue
        outputs[name] = _cassettes(project / "cassettes")
        counted = 0
        for file in outputs[name]:
            cassette = Cassette.open(project / "cassettes" / file)
            ids = [r["id"] for r in cassette.records()]
            key = file.removesuffix(".cassette")
            good = len(ids) == expected.get(key) and len(set(ids)) == len(ids)
            good = good and cassette.verify().ok
            counted += len(ids)
            if not good:
                print(f"  {label}: {file}: {len(ids)} records, expected {expected.get(key)}")
                ok = False
        again = f"calls seen again, not stored twice: {expected['__repeats__']}"
        if again not in process.stdout:
            print(f"  {label}: the summary does not say '{again}'")
            ok = False
        ratio = seconds / times["baseline (no recording)"]
        print(
            f"  {label:28} {seconds:7.2f} s   {counted:,} records, 0 duplicates   "
            f"ratio to baseline {ratio:.2f}x"
        )
    if len(outputs) == 3:
        names = sorted(outputs["plain"])
        same = all(outputs[m][n] == outputs["plain"][n] for m in ("n0", "n2") for n in names)
        print(
            f"  all {len(names)} cassettes (load.shared.cassette: 8 threads of one test) "
            f"byte-identical across no xdist / -n 0 / -n 2: {'yes' if same else 'NO'}"
        )
        ok = ok and same
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--skip-cassette", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, msgpack {'.'.join(map(str, msgpack.version))}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        if not args.skip_cassette:
            ok = bench_cassette(args.records, Path(tmp)) and ok
        if not args.skip_run:
            ok = bench_recording(args.calls, Path(tmp)) and ok
    print("correctness: " + ("all checks passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
