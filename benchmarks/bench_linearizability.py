"""Linearizability checker vs Porcupine (Go) on the shared corpus.

    python benchmarks/bench_linearizability.py [--runs N] [--data DIR]

For every file of ``../shared/data/linearizability/MANIFEST.tsv`` the check is
run ``--runs`` times (parsing excluded: files are parsed once, before timing;
the time is ``CheckResult.seconds``, the check alone). Per family it prints our
total (the best run and the median run), the sum of the manifest's
``porcupine_go_ms`` (Porcupine's own check time on this machine kind), their
ratio and the target, with PASS or MISS. Also: ``c50-bad`` alone, the kv files
checked whole (model ``kv-whole``, no partitioning), the slowest Knossos file,
and the peak memory of the process. Every verdict is compared with the
manifest's. Exit status is 0 whatever the figures (see the printed PASS/MISS).
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import sys
from pathlib import Path

from pytest_replay import history
from pytest_replay.linearizability import check_linearizable

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "linearizability"

# Targets from issue 8 ("The algorithm and its numbers").
TARGET_ETCD = 0.5  # x Porcupine's total on the etcd family
TARGET_KV = 1.0  # x Porcupine's total on the kv family, partitioned
TARGET_C50_BAD_S = 0.1
PORCUPINE_KV_WHOLE_C10_OK_S = 1.8  # Porcupine's time on c10-ok without partitioning
TARGET_KV_WHOLE = 2.0  # x that
TARGET_KNOSSOS_EACH_S = 1.0
TARGET_PEAK_BYTES = 1 << 30


def verdict_mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def family_of(path: str) -> str:
    parts = path.split("/")
    return f"{parts[0]}/{parts[1]}" if parts[0] == "porcupine" else "knossos"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="checks per file (default: 3)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the corpus directory")
    parser.add_argument(
        "--whole-timeout",
        type=float,
        default=30.0,
        help="timeout for each kv-whole check, seconds (default: 30)",
    )
    args = parser.parse_args(argv)
    manifest = args.data / "MANIFEST.tsv"
    if not manifest.is_file():
        print(f"corpus not found: {manifest}", file=sys.stderr)
        return 2
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))

    parsed = {row["path"]: history.load(args.data / row["path"], row["format"]) for row in rows}
    times: dict[str, list[float]] = {}
    wrong: list[str] = []
    for row in rows:
        events = parsed[row["path"]]
        runs = []
        for _ in range(args.runs):
            result = check_linearizable(events, row["model"], conventions=row["conventions"])
            runs.append(result.seconds)
            if result.verdict != row["expected"]:
                wrong.append(f"{row['path']}: {result.verdict}, expected {row['expected']}")
        times[row["path"]] = runs

    print(f"pytest-replay linearizability benchmark ({args.runs} runs per file; check time only)")
    print()
    header = (
        f"{'family':<16}{'files':>6}{'ours best':>12}{'ours median':>13}"
        f"{'porcupine':>11}{'ratio':>8}{'target':>8}  result"
    )
    print(header)
    print("-" * len(header))
    families: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        families.setdefault(family_of(row["path"]), []).append(row)
    for family, members in families.items():
        per_run = [sum(times[r["path"]][n] for r in members) for n in range(args.runs)]
        best, median = min(per_run), statistics.median(per_run)
        go = [float(r["porcupine_go_ms"]) / 1000 for r in members if r["porcupine_go_ms"] != "-"]
        target = {"porcupine/etcd": TARGET_ETCD, "porcupine/kv": TARGET_KV}.get(family)
        if go:
            ratio = median / sum(go)
            mark = verdict_mark(ratio <= target) if target is not None else ""
            print(
                f"{family:<16}{len(members):>6}{best * 1000:>10.1f}ms{median * 1000:>11.1f}ms"
                f"{sum(go) * 1000:>9.1f}ms{ratio:>7.2f}x{target or 0:>7.1f}x  {mark}"
            )
        else:
            print(
                f"{family:<16}{len(members):>6}{best * 1000:>10.1f}ms{median * 1000:>11.1f}ms"
                f"{'-':>11}{'-':>8}{'-':>8}"
            )
    print("(ratio = our median total / Porcupine's total)")
    print()

    c50 = statistics.median(times["porcupine/kv/c50-bad.txt"])
    print(
        f"c50-bad illegal in {c50 * 1000:.1f} ms (median; target <= "
        f"{TARGET_C50_BAD_S * 1000:.0f} ms)  {verdict_mark(c50 <= TARGET_C50_BAD_S)}"
    )
    knossos = [(statistics.median(times[r["path"]]), r["path"]) for r in families["knossos"]]
    slowest, slowest_path = max(knossos)
    print(
        f"slowest Knossos history: {slowest * 1000:.1f} ms ({slowest_path}; target <= "
        f"{TARGET_KNOSSOS_EACH_S:.0f} s each)  {verdict_mark(slowest <= TARGET_KNOSSOS_EACH_S)}"
    )
    print()

    print("kv files checked whole (model kv-whole, no partitioning):")
    for name in ("c01-ok", "c01-bad", "c10-ok", "c10-bad"):
        row = next(r for r in rows if r["path"] == f"porcupine/kv/{name}.txt")
        runs = []
        verdict = ""
        for _ in range(args.runs if name == "c10-ok" else 1):
            result = check_linearizable(
                parsed[row["path"]],
                "kv-whole",
                conventions="porcupine",
                timeout=args.whole_timeout,
            )
            runs.append(result.seconds)
            verdict = result.verdict
            if verdict not in (row["expected"], "unknown"):
                wrong.append(f"{row['path']} (kv-whole): {verdict}, expected {row['expected']}")
        med = statistics.median(runs)
        line = f"  {name:<8} {verdict:<8} best {min(runs):7.3f} s  median {med:7.3f} s"
        if name == "c10-ok":
            limit = TARGET_KV_WHOLE * PORCUPINE_KV_WHOLE_C10_OK_S
            line += (
                f"  vs Porcupine {PORCUPINE_KV_WHOLE_C10_OK_S:.1f} s: "
                f"{med / PORCUPINE_KV_WHOLE_C10_OK_S:.2f}x (target <= {TARGET_KV_WHOLE:.0f}x)  "
                f"{verdict_mark(verdict == 'ok' and med <= limit)}"
            )
        print(line)
    print()

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        f"peak memory of this process (every check above): {peak / (1 << 20):.0f} MiB "
        f"(target <= {TARGET_PEAK_BYTES >> 20} MiB per check)  "
        f"{verdict_mark(peak <= TARGET_PEAK_BYTES)}"
    )
    print()
    if wrong:
        print("WRONG VERDICTS:")
        for w in wrong:
            print("  " + w)
    else:
        print(f"verdicts: all {len(rows)} files as the manifest expects  PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
