"""Update and hygiene: ``--replay-update``, the stale report, ``--replay-prune``,
``--replay-twice``, and the record → change → replay → update loop end to end, under
no xdist / -n 0 / -n 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from replay_helpers import PRICING, load, quote_record, rec, run, write

from pytest_replay import codec
from pytest_replay.cassette import Cassette

pytest_plugins = ["pytester"]

XDIST = [
    pytest.param((), id="no-xdist"),
    pytest.param(("-n", "0"), id="n0"),
    pytest.param(("-n", "2"), id="n2"),
]


def payloads(path: Path) -> list[bytes]:
    return list(Cassette.open(path).payloads())


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\npythonpath = .\n")
    return pytester


# --------------------------------------------------------------------------- --replay-update


@pytest.mark.parametrize("xdist", XDIST)
def test_update_rewrites_only_the_changed_record(
    project: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    pricing = load(project, "pricing", PRICING)
    good, stale_output = quote_record(pricing, "A", 1), quote_record(pricing, "B", 2, total=31.0)
    path = write(project.path, [good, stale_output])
    before = payloads(path)

    result = run(project, "--replay-update", *xdist)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*2 replayed: 1 matched, 0 diverged, 1 updated, 0 non-deterministic; 0 unreplayable",
            "updated 1 record in cassettes/pricing.quote.cassette",
        ]
    )
    after = payloads(path)
    assert after[0] == before[0]
    assert after[1] != before[1]
    record = codec.loads(after[1])
    assert isinstance(record, dict)
    assert record["id"] == stale_output.id
    assert record["result"]["total"] == 30.0
    assert record["children"] == codec.loads(before[1])["children"]  # type: ignore[index]
    assert Cassette.open(path).verify().ok

    run(project, "--replay", *xdist).assert_outcomes(passed=2)
    # Nothing changed: the cassette is not rewritten at all.
    stamp = path.stat().st_mtime_ns, path.read_bytes()
    again = run(project, "--replay-update", *xdist)
    again.assert_outcomes(passed=2)
    assert "updated 1 record" not in again.stdout.str()
    assert (path.stat().st_mtime_ns, path.read_bytes()) == stamp


def test_update_can_turn_a_result_into_an_error(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    project.makepyfile(
        pricing=PRICING.replace(
            "    total = qty",
            "    if qty > 5:\n        raise ValueError('too many')\n    total = qty",
        )
    )
    sys.modules.pop("pricing", None)
    path = write(project.path, [quote_record(pricing, "A", 9)])
    run(project, "--replay").assert_outcomes(failed=1)
    run(project, "--replay-update").assert_outcomes(passed=1)
    record = codec.loads(payloads(path)[0])
    assert isinstance(record, dict)
    assert "result" not in record
    assert record["error"] == {
        "type": "builtins.ValueError",
        "message": "too many",
        "args": ["too many"],
    }
    run(project, "--replay").assert_outcomes(passed=1)


def test_update_never_touches_unreplayable_or_mismatched_records(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    mismatched = rec(
        pricing.quote, ("A", 1), result={}, children=[rec(pricing.rate, ("USD",), result=1.0)]
    )
    path = write(project.path, [mismatched])
    before = path.read_bytes()
    result = run(project, "--replay-update")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["boundary call with no recorded answer: pricing.rate"])
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- stale and prune


def stale_project(project: pytest.Pytester) -> tuple[Path, Path]:
    pricing = load(project, "pricing", PRICING)
    good = write(project.path, [quote_record(pricing, "A", 1)])
    gone = [
        rec(pricing.quote, (sku, 1), result={}, key="pricing.old_quote", target="pricing:old_quote")
        for sku in "XY"
    ]
    return good, write(project.path, gone)


def test_stale_records_fail_strictly_and_are_listed_on_green_runs(project: pytest.Pytester) -> None:
    _, gone = stale_project(project)
    strict = run(project, "--replay")
    strict.assert_outcomes(passed=1, failed=2)
    strict.stdout.fnmatch_lines(
        ["  fix:      *if it is gone, remove it with pytest --replay --replay-prune"]
    )
    assert "stale records (target" not in strict.stdout.str()  # not a green run

    lenient = run(project, "--replay", "--replay-no-strict")
    lenient.assert_outcomes(passed=1, skipped=2)
    lenient.stdout.fnmatch_lines(
        [
            "2 stale records (target no longer exists):",
            "  cassettes/pricing.old_quote.cassette [[]*[]] pricing:old_quote",
            "  cassettes/pricing.old_quote.cassette [[]*[]] pricing:old_quote",
            "remove the stale records with: pytest --replay --replay-prune",
        ]
    )
    assert len(payloads(gone)) == 2  # listing never removes anything


@pytest.mark.parametrize("xdist", XDIST)
def test_prune_removes_stale_records(project: pytest.Pytester, xdist: tuple[str, ...]) -> None:
    good, gone = stale_project(project)
    before = good.read_bytes()
    result = run(project, "--replay-prune", *xdist)
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        ["pruned 2 stale records from cassettes/pricing.old_quote.cassette (no record left*"]
    )
    assert not gone.exists()  # no record left: the file goes too
    assert good.read_bytes() == before
    run(project, "--replay").assert_outcomes(passed=1)


@pytest.mark.parametrize("xdist", [XDIST[0], XDIST[2]])
def test_prune_refuses_when_tests_were_deselected(
    project: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    _, gone = stale_project(project)
    result = run(project, "--replay-prune", "-m", "not replay", *xdist)
    result.stdout.fnmatch_lines(
        ["prune refused: 3 tests deselected (-k, -m, --lf, ...): a partial run cannot tell*"]
    )
    assert len(payloads(gone)) == 2


def test_prune_refuses_when_a_test_failed(project: pytest.Pytester) -> None:
    _, gone = stale_project(project)
    project.makepyfile(test_broken="def test_broken():\n    assert False\n")
    result = run(project, "--replay-prune")
    result.assert_outcomes(passed=1, skipped=2, failed=1)
    result.stdout.fnmatch_lines(["prune refused: 1 test failed; nothing was removed"])
    assert len(payloads(gone)) == 2


def test_prune_with_nothing_stale_says_so(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    write(project.path, [quote_record(pricing, "A", 1)])
    result = run(project, "--replay-prune")
    result.stdout.fnmatch_lines(["nothing to prune: every record's target exists"])


# --------------------------------------------------------------------------- --replay-twice

NOISY = """
import itertools
import random
from pytest_replay import replay_trace

_ids = itertools.count()

@replay_trace
def order(sku):
    return {"sku": sku, "id": next(_ids), "items": [{"id": next(_ids), "sku": sku}]}

@replay_trace
def sample(n):
    return {"n": n, "pick": random.random()}

@replay_trace
def stable(n):
    return n * 2
"""


def test_twice_reports_non_determinism_with_paths_and_fixes(project: pytest.Pytester) -> None:
    noisy = load(project, "noisy", NOISY)
    write(
        project.path,
        [rec(noisy.order, ("A",), result={"sku": "A", "id": 0, "items": [{"id": 1, "sku": "A"}]})],
    )
    write(project.path, [rec(noisy.sample, (3,), result={"n": 3, "pick": 0.5})])
    write(project.path, [rec(noisy.stable, (3,), result=6)])
    result = run(project, "--replay-twice")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "non-deterministic: noisy.order [[]*[]]: two runs on the same recorded inputs "
            "disagree (first → second):",
            "    id: 0 → 2",
            "    items[0].id: 1 → 3",
            "  fix: trace the source of the noise*boundary=True*",
            "  or, if these fields are noise, leave them out of the comparison: "
            '@replay_trace(ignore=["id", "items[*].id"]) or ini: '
            "replay_compare = noisy.order: ignore=id,items[*].id",
            "  this call draws from `random`: record it with @replay_trace(seed_random=True)",
            "*3 replayed: 1 matched, 0 diverged, 0 updated, 2 non-deterministic; 0 unreplayable",
            "  non-deterministic: cassettes/noisy.order.cassette::order[[]*[]]: "
            "id, items[[]0[]].id*",
        ]
    )


# --------------------------------------------------------------------------- end to end

SHOP = """
from pytest_replay import replay_trace

@replay_trace(boundary=True)
def exchange_rate(currency):
    return {"EUR": 1.0, "USD": 1.1}[currency]

@replay_trace
def price(sku, qty, currency="EUR"):
    unit = {"apple": 0.5, "pear": 0.8, "fig": 2.0}[sku]
    discount = 0.1 if qty >= 10 else 0.0
    total = round(unit * qty * (1 - discount) * exchange_rate(currency), 2)
    return {"sku": sku, "qty": qty, "total": total, "discount": discount}
"""

SHOP_TESTS = """
import pytest
from shop import price

@pytest.mark.parametrize("sku, qty, currency", [
    ("apple", 3, "EUR"), ("pear", 12, "USD"), ("fig", 1, "EUR"), ("apple", 20, "USD"),
])
def test_price(sku, qty, currency):
    assert price(sku, qty, currency)["total"] > 0
"""


@pytest.mark.parametrize("xdist", XDIST)
def test_recorded_regression_is_caught_and_updated(
    project: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    project.makepyfile(shop=SHOP, test_shop=SHOP_TESTS)
    sys.modules.pop("shop", None)
    run(project, "--replay-record", *xdist).assert_outcomes(passed=4)
    path = project.path / "cassettes" / "shop.price.cassette"
    before = payloads(path)
    assert len(before) == 4
    run(project, "--replay", *xdist).assert_outcomes(passed=8)

    # One branch changes: bulk discounts now start at 20.
    project.makepyfile(shop=SHOP.replace("qty >= 10", "qty >= 20 "))
    sys.modules.pop("shop", None)
    result = run(project, "--replay", *xdist)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        [
            "replay diverged from the recording: shop.price [[]*[]]",
            "  inputs:   sku='pear', qty=12, currency='USD'",
            "  2 differences (expected → actual):",
            "    discount: 0.1 → 0.0",
            "    total: 9.5 → 10.56",
        ]
    )

    run(project, "--replay-update", *xdist).assert_outcomes(passed=8)
    after = payloads(path)
    assert len(after) == 4
    changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert changed == [1]
    run(project, "--replay", *xdist).assert_outcomes(passed=8)
