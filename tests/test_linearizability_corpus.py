"""Every history of the shared corpus gets the verdict its source asserts.

The corpus (Porcupine's and Knossos's own test histories) lives in
``../shared/data/linearizability/``; these tests skip when it is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pytest_replay import history, models
from pytest_replay.linearizability import check_linearizable

_MANIFEST = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "data"
    / "linearizability"
    / "MANIFEST.tsv"
)


def _rows() -> list[dict[str, str]]:
    if not _MANIFEST.is_file():
        return [{"path": "corpus-absent"}]
    with _MANIFEST.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _rows()


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_manifest_verdict(linearizability_data: Path, row: dict[str, str]) -> None:
    events = history.load(linearizability_data / row["path"], row["format"])  # type: ignore[arg-type]
    result = check_linearizable(events, row["model"], conventions=row["conventions"], timeout=60)
    assert result.verdict == row["expected"], result.explain()
    if result.verdict == "ok":
        assert result.linearization is not None
    else:
        assert result.counterexample is not None


@pytest.mark.parametrize(
    ("name", "expected"), [("c01-ok", "ok"), ("c01-bad", "illegal"), ("c10-ok", "ok")]
)
def test_kv_files_checked_whole(linearizability_data: Path, name: str, expected: str) -> None:
    events = history.load(linearizability_data / "porcupine" / "kv" / f"{name}.txt")
    result = check_linearizable(events, "kv-whole", conventions="porcupine", timeout=60)
    assert result.verdict == expected
    assert not result.partitioned


def test_a_real_counterexample(linearizability_data: Path) -> None:
    events = history.load(linearizability_data / "porcupine" / "etcd" / "etcd_000.log")
    result = check_linearizable(events, "cas-register", conventions="porcupine")
    cex = result.counterexample
    assert cex is not None
    assert cex.op_text == "read -> 2"
    assert (cex.op.invoke_index, cex.op.complete_index) == (84, 85)
    assert cex.state == 1
    assert cex.candidates[0].reason == "read 2, but the register holds 1"
    # the prefix replays through the model, step by step, to the states it reports
    model = models.CasRegister().for_conventions("porcupine")
    state = model.init()
    for step in cex.prefix:
        state = model.step(state, step.op)
        assert state == step.state
    # every op of the prefix was invoked before the failing op completed
    assert all(step.op.call < (cex.op.ret or 0) for step in cex.prefix)
    assert "<- cannot be linearized" in cex.timeline()


def test_c50_bad_fails_fast_in_one_key(linearizability_data: Path) -> None:
    events = history.load(linearizability_data / "porcupine" / "kv" / "c50-bad.txt")
    result = check_linearizable(events, "kv", conventions="porcupine", timeout=60)
    assert result.verdict == "illegal"
    # some keys of c50-bad take millions of steps to refute; the first refuted ends the check
    assert result.explored.steps < 500_000
    undecided = [p for p in result.explored.partitions if p.verdict == "undecided"]
    assert undecided, "the other keys were left undecided, not searched to the end"
