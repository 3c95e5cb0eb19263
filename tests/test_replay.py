"""``pytest --replay``: collection, running one item, boundaries, unreplayable records.

Cassettes are written by the test itself (``Cassette.create`` with record maps
built from the traced function's own ``spec.bind``), so these tests exercise
replay independently of the recorder; ``test_replay_workflow.py`` covers the
record → change → replay → update loop end to end.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from replay_helpers import PRICING, load, quote_record, rec, run, write

from pytest_replay import codec
from pytest_replay.record import Record, record_id

pytest_plugins = ["pytester"]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\npythonpath = .\n")
    return pytester


def ids_of(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.outlines if "::" in line]


# --------------------------------------------------------------------------- collection


def test_cassettes_are_collected_next_to_the_normal_tests(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    a, b = quote_record(pricing, "A", 2), quote_record(pricing, "B", 1)
    write(project.path, [a, b])
    project.makeini("[pytest]\npythonpath = .\ntestpaths = tests\n")
    project.mkdir("tests")
    (project.path / "tests" / "test_plain.py").write_text("def test_plain():\n    pass\n")

    result = run(project, "--replay", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "tests/test_plain.py::test_plain PASSED*",
            f"cassettes/pricing.quote.cassette::quote[[]{a.id[:8]}[]] PASSED*",
            f"cassettes/pricing.quote.cassette::quote[[]{b.id[:8]}[]] PASSED*",
            "*2 replayed: 2 matched, 0 diverged, 0 updated, 0 non-deterministic; 0 unreplayable*",
        ]
    )
    run(project).assert_outcomes(passed=1)  # without --replay, cassettes are not tests
    marked = run(project, "--replay", "-m", "replay")
    marked.assert_outcomes(passed=2, deselected=1)


def test_one_cassette_on_the_command_line_runs_just_that_cassette(
    project: pytest.Pytester,
) -> None:
    pricing = load(project, "pricing", PRICING)
    write(project.path, [quote_record(pricing, "A", 2)])
    other = rec(pricing.quote, ("Z", 1), result={}, key="pricing.other")
    write(project.path, [other])
    run(project, "--replay").assert_outcomes(passed=1, failed=1)
    result = run(project, "--replay", "cassettes/pricing.quote.cassette")
    result.assert_outcomes(passed=1)


def test_cassettes_outside_the_replay_dir_are_only_collected_when_named(
    project: pytest.Pytester,
) -> None:
    pricing = load(project, "pricing", PRICING)
    write(project.path / "data", [quote_record(pricing, "A", 2)])
    project.makepyfile(test_x="def test_x():\n    pass\n")
    run(project, "--replay", "--replay-dir", "elsewhere").assert_outcomes(passed=1)
    named = run(project, "--replay", "data/cassettes")
    named.assert_outcomes(passed=1)
    named.stdout.fnmatch_lines(["data/cassettes/pricing.quote.cassette *"])


def test_ini_replay_turns_replay_on(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    write(project.path, [quote_record(pricing, "A", 2)])
    project.makeini("[pytest]\npythonpath = .\nreplay = true\n")
    run(project).assert_outcomes(passed=1)


def test_missing_replay_dir_is_a_note_not_an_error(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="def test_x():\n    pass\n")
    result = run(project, "--replay")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*no cassettes to replay: *cassettes does not exist*"])


def test_item_ids_depend_only_on_key_and_content(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    a, b, c = (quote_record(pricing, sku, 1) for sku in "ABC")
    write(project.path, [a, b])
    first = ids_of(run(project, "--replay", "--collect-only", "-q"))
    write(project.path, [c, b, a])  # reordered, one record added
    second = ids_of(run(project, "--replay", "--collect-only", "-q"))
    assert len(first) == 2
    assert len(second) == 3
    assert set(first) <= set(second)


# --------------------------------------------------------------------------- outcomes


def test_a_changed_output_fails_with_the_path_of_the_change(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    good = quote_record(pricing, "A", 1)
    bad = quote_record(pricing, "B", 2, total=31.0)
    write(project.path, [good, bad])
    result = run(project, "--replay")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"replay diverged from the recording: pricing.quote [[]{bad.id}[]]",
            "  cassette: cassettes/pricing.quote.cassette",
            "  inputs:   sku='B', qty=2",
            "  1 difference (expected → actual):",
            "    total: 31.0 → 30.0",
            "*2 replayed: 1 matched, 1 diverged, 0 updated, 0 non-deterministic; 0 unreplayable*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


EXCEPTIONS = """
from pytest_replay import replay_trace

@replay_trace
def parse(text):
    if not text.isdigit():
        raise ValueError(f"not a number: {text!r}")
    return int(text)
"""


def test_exceptions_compare_by_type_and_message(project: pytest.Pytester) -> None:
    parsing = load(project, "parsing", EXCEPTIONS)
    records = [
        rec(parsing.parse, ("x",), error=ValueError("not a number: 'x'")),  # same: passes
        rec(parsing.parse, ("y",), error=ValueError("not a number")),  # message differs
        rec(parsing.parse, ("z",), result=0),  # now raises, a result was expected
        rec(parsing.parse, ("7",), error=KeyError("7")),  # now returns, an error was expected
    ]
    write(project.path, records)
    result = run(project, "--replay")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*error.message: 'not a number' → \"not a number: 'y'\"",
            "*raised ValueError: not a number: 'z', expected a result",
            "*<root>: 0 → raised ValueError: not a number: 'z'",
            "*the replayed call raised (innermost frames):",
            "*returned a result, expected it to raise KeyError: '7'",
        ]
    )


# --------------------------------------------------------------------------- unreplayable

SHAPES = """
from pytest_replay import replay_trace

@replay_trace
def area(width, height):
    return width * height
"""


def unreplayable_records(shapes: Any) -> list[Record]:
    return [
        rec(shapes.area, (2, 3), result=6),  # fine
        rec(shapes.area, (codec.Opaque("socket.socket", "<socket fd=3>"), 3), result=0),
        rec(shapes.area, (2, 3), result=6, target="shapes:perimeter", key="shapes.perimeter"),
        Record(
            id=record_id("shapes.area", codec.dumps([[1, 2, 3], {}])),
            key="shapes.area",
            target="shapes:area",
            args=[1, 2, 3],
            kwargs={},
            result=6,
        ),
        rec(shapes.area, (4, 4), result=16, unreplayable="input 'conn': opaque Connection"),
    ]


def test_unreplayable_records_fail_with_reason_and_fix(project: pytest.Pytester) -> None:
    shapes = load(project, "shapes", SHAPES)
    records = unreplayable_records(shapes)
    write(project.path, [records[0], records[1], records[3], records[4]], key="shapes.area")
    write(project.path, [records[2]], key="shapes.perimeter")
    result = run(project, "--replay")
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines_random(
        [
            "  reason:   input 'width' was recorded as an opaque socket.socket (<socket fd=3>)",
            "  reason:   the target no longer exists: shapes has no perimeter, *",
            "  fix:      if the function moved, give it @replay_trace(key='shapes.perimeter')*",
            "  reason:   the recorded arguments no longer bind to shapes:area(width, height): "
            "too many positional arguments",
            "  reason:   recorded as unreplayable: input 'conn': opaque Connection",
            "*1 replayed: 1 matched, 0 diverged, 0 updated, 0 non-deterministic; 4 unreplayable*",
        ]
    )
    skipped = run(project, "--replay", "--replay-no-strict", "-rs")
    skipped.assert_outcomes(passed=1, skipped=4)
    skipped.stdout.fnmatch_lines_random(
        [
            "SKIPPED * unreplayable: input 'width' was recorded as an opaque socket.socket*",
            "SKIPPED * unreplayable: the recorded arguments no longer bind*",
        ]
    )
    project.makeini("[pytest]\npythonpath = .\nreplay_strict = false\n")
    run(project, "--replay").assert_outcomes(passed=1, skipped=4)
    run(project, "--replay", "--replay-strict").assert_outcomes(passed=1, failed=4)


def test_missing_top_level_package_is_not_called_stale(project: pytest.Pytester) -> None:
    shapes = load(project, "shapes", SHAPES)
    record = rec(shapes.area, (1, 1), result=1, target="gone_pkg:area", key="gone_pkg.area")
    write(project.path, [record])
    result = run(project, "--replay", "--replay-no-strict", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*module 'gone_pkg' cannot be imported*pythonpath*"])
    assert "stale record" not in result.stdout.str()
    assert "no longer exists" not in result.stdout.str()


def test_moved_function_is_found_by_its_key(project: pytest.Pytester) -> None:
    new_home = load(
        project,
        "new_home",
        "from pytest_replay import replay_trace\n\n"
        "@replay_trace(key='old_home.area')\ndef area(w, h):\n    return w * h\n",
    )
    write(project.path, [rec(new_home.area, (2, 5), result=10, target="old_home:area")])
    project.makeconftest("import new_home  # registers the key\n")
    run(project, "--replay").assert_outcomes(passed=1)


# --------------------------------------------------------------------------- running

RESOURCES = """
from pytest_replay import replay_trace

@replay_trace(resources={"conn": "db"})
def lookup(conn, sku, qty=1):
    return conn[sku] * qty
"""

RESOURCE_CONFTEST = """
import pytest

EVENTS = []

@pytest.fixture(scope="module")
def db():
    EVENTS.append("setup")
    yield {"A": 3, "B": 4}
    EVENTS.append("teardown")

def pytest_sessionfinish(session):
    with open("events.txt", "w") as f:
        f.write(",".join(EVENTS))
"""


def test_resources_come_from_fixtures_with_their_scope(project: pytest.Pytester) -> None:
    shop = load(project, "shop_db", RESOURCES.replace("def lookup", "def lookup"))
    project.makeconftest(RESOURCE_CONFTEST)
    records = [
        rec(shop.lookup, (None, "A"), {"qty": 2}, result=6),
        rec(shop.lookup, (None, "B"), result=4),
    ]
    assert records[0].args == []  # the resource is not recorded
    assert "conn" not in records[0].kwargs
    write(project.path, records)
    run(project, "--replay").assert_outcomes(passed=2)
    assert (project.path / "events.txt").read_text() == "setup,teardown"


def test_missing_resource_fixture_is_a_setup_error(project: pytest.Pytester) -> None:
    shop = load(project, "shop_db", RESOURCES)
    write(project.path, [rec(shop.lookup, (None, "A"), result=3)])
    result = run(project, "--replay")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'db' not found*"])


METHODS = """
from dataclasses import dataclass
from pytest_replay import replay_trace

@dataclass
class Cart:
    items: list

    @replay_trace
    def total(self, tax):
        return round(sum(self.items) * (1 + tax), 2)

    @replay_trace
    @staticmethod
    def double(x):
        return 2 * x

    @replay_trace
    @classmethod
    def empty(cls, tax):
        return cls([]).total(tax)
"""


def test_methods_static_and_class_methods(project: pytest.Pytester) -> None:
    carts = load(project, "carts", METHODS)
    cart = carts.Cart([1, 2])
    records = [
        rec(carts.Cart.total, (cart, 0.5), result=4.5),
        rec(carts.Cart.__dict__["double"], (21,), result=42),
        rec(carts.Cart.__dict__["empty"], (carts.Cart, 0.1), result=0),
    ]
    for record in records:
        write(project.path, [record])
    result = run(project, "--replay", "-v")
    result.assert_outcomes(passed=3)
    bad = rec(carts.Cart.total, (carts.Cart([1, 1]), 0.5), result=4.5)
    write(project.path, [bad])
    result = run(project, "--replay", "cassettes/carts.Cart.total.cassette")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["  inputs:   self=Cart(items=[1, 1]), tax=0.5", "*<root>: 4.5 → 3.0"]
    )


def test_boundary_calls_are_answered_from_the_record(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    write(project.path, [quote_record(pricing, "A", 2, rate=1.25)])
    # rate() would raise if it ran: the item passes only because it was answered.
    result = run(project, "--replay")
    result.assert_outcomes(passed=1)


REPEATS = """
from pytest_replay import replay_trace

@replay_trace(boundary=True)
def now():
    raise RuntimeError("no clock during a replay")

@replay_trace(boundary=True)
def fetch(url):
    raise RuntimeError("no network during a replay")

@replay_trace
def elapsed(times):
    marks = [now() for _ in range(times)]
    return marks[-1] - marks[0]

@replay_trace
def guarded(url):
    try:
        return fetch(url)
    except Exception:
        return "fallback"
"""


def test_repeated_identical_boundary_calls_answer_in_recorded_order(
    project: pytest.Pytester,
) -> None:
    clock = load(project, "clock", REPEATS)
    marks = [rec(clock.now, (), result=value) for value in (100.0, 103.5, 110.0)]
    write(project.path, [rec(clock.elapsed, (3,), result=10.0, children=marks)])
    run(project, "--replay").assert_outcomes(passed=1)
    # One more call than recorded: the fourth has no answer.
    write(project.path, [rec(clock.elapsed, (4,), result=10.0, children=marks)])
    result = run(project, "--replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "boundary call with no recorded answer: clock.now",
            "  inputs: (no arguments)",
            "  this exact call was recorded 3 times and every recorded answer was already used*",
        ]
    )


def test_boundary_mismatch_lists_the_closest_recorded_calls(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    write(project.path, [quote_record(pricing, "A", 2, currency="USD")])
    result = run(project, "--replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "replay of pricing.quote [[]*[]] failed",
            "  inputs:   sku='A', qty=2",
            "boundary call with no recorded answer: pricing.rate",
            "  inputs: currency='EUR'",
            "  1 call to pricing.rate was recorded; the closest (recorded → now):",
            "    #1 rate[[]*[]]:",
            "      currency: 'USD' → 'EUR'",
            "  fix: if the change is intended, re-record it*",
        ]
    )


def test_unknown_boundary_key_lists_what_was_recorded(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    clock = load(project, "clock", REPEATS)
    record = rec(pricing.quote, ("A", 1), result={}, children=[rec(clock.now, (), result=1.0)])
    write(project.path, [record])
    result = run(project, "--replay")
    result.stdout.fnmatch_lines(
        [
            "  no call to pricing.rate was recorded in this record",
            "  recorded boundary calls: clock.now ×1",
        ]
    )


def test_a_caught_mismatch_still_fails_the_item(project: pytest.Pytester) -> None:
    clock = load(project, "clock", REPEATS)
    answer = rec(clock.fetch, ("https://a",), result="page")
    write(project.path, [rec(clock.guarded, ("https://b",), result="fallback", children=[answer])])
    result = run(project, "--replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*url: 'https://a' → 'https://b'"])


def test_recorded_boundary_exceptions_are_raised_again(project: pytest.Pytester) -> None:
    clock = load(project, "clock", REPEATS)
    answer = rec(clock.fetch, ("https://a",), error=ConnectionError("refused"))
    write(project.path, [rec(clock.guarded, ("https://a",), result="fallback", children=[answer])])
    run(project, "--replay").assert_outcomes(passed=1)


ASYNC = """
import asyncio
from pytest_replay import replay_trace

@replay_trace(boundary=True)
async def remote(x):
    raise RuntimeError("no network")

@replay_trace
async def fetch_all(xs):
    values = await asyncio.gather(*(remote(x) for x in xs))
    return sorted(values)
"""


def test_async_targets_run_on_an_event_loop(project: pytest.Pytester) -> None:
    aio = load(project, "aio", ASYNC)
    answers = [rec(aio.remote, (x,), result=x * 10) for x in (1, 2, 3)]
    write(project.path, [rec(aio.fetch_all, ([3, 1, 2],), result=[10, 20, 30], children=answers)])
    run(project, "--replay").assert_outcomes(passed=1)


DICE = """
import random
from pytest_replay import replay_trace

@replay_trace(seed_random=True)
def roll(n):
    return [random.randint(1, 6) for _ in range(n)]

@replay_trace
def game(n):
    return roll(n) + [random.randint(1, 6)]
"""


def test_seed_random_records_are_reseeded(project: pytest.Pytester) -> None:
    dice = load(project, "dice", DICE)
    template = rec(dice.roll, (20,))
    seed = int(template.id[:8], 16)
    random.seed(seed)
    rolls = [random.randint(1, 6) for _ in range(20)]
    write(project.path, [rec(dice.roll, (20,), result=rolls, meta={"seed": seed})])
    # A nested seed_random call is re-seeded the way the recorder seeded it,
    # so everything drawn after it in the caller is reproduced too.
    extra = random.randint(1, 6)
    write(project.path, [rec(dice.game, (20,), result=[*rolls, extra])])
    run(project, "--replay").assert_outcomes(passed=2)


CONTEXT = """
import threading
import pytest_replay
from pytest_replay import replay_trace

@replay_trace
def where(tag):
    ctx = pytest_replay.replay_context()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(pytest_replay.replay_context()))
    thread.start()
    thread.join()
    return [tag, ctx.key, ctx.record_id, ctx.cassette.name, ctx.is_pytest, ctx.mode, seen[0]]
"""


def test_replay_context_inside_and_outside(project: pytest.Pytester) -> None:
    places = load(project, "places", CONTEXT)
    template = rec(places.where, ("x",))
    expected = ["x", "places.where", template.id, "places.where.cassette", True, "pytest", None]
    write(project.path, [rec(places.where, ("x",), result=expected)])
    project.makepyfile(
        test_outside="import pytest_replay\n\n"
        "def test_outside():\n    assert pytest_replay.replay_context() is None\n"
    )
    run(project, "--replay").assert_outcomes(passed=2)


NOISY = """
import itertools
from pytest_replay import replay_trace

_counter = itertools.count()

@replay_trace(ignore=["*.created_at"])
def make(name):
    return {"name": name, "created_at": next(_counter), "price": 10 / 3}
"""


def test_compare_options_from_decorator_and_ini(project: pytest.Pytester) -> None:
    noisy = load(project, "noisy", NOISY)
    write(
        project.path,
        [rec(noisy.make, ("a",), result={"name": "a", "created_at": -1, "price": 3.3333})],
    )
    result = run(project, "--replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["    price: 3.3333 → 3.333333*"])
    assert "created_at" not in result.stdout.str()
    project.makeini(
        "[pytest]\npythonpath = .\nreplay_compare =\n    noisy.*: significant_digits=3\n"
    )
    run(project, "--replay").assert_outcomes(passed=1)
    project.makeini("[pytest]\npythonpath = .\nreplay_compare = noisy.make ignore=x\n")
    result = run(project, "--replay")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*replay_compare line 1*expected 'KEY-GLOB: *"])


def test_corrupt_cassette_fails_one_item_and_the_rest_runs(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    records = [quote_record(pricing, sku, 1) for sku in "ABC"]
    path = write(project.path, records)
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF  # inside the last record's frame
    path.write_bytes(bytes(data))
    result = run(project, "--replay", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::corrupt[[]record-2[]] FAILED*",
            "*pricing.quote.cassette: record 2*",
        ]
    )


def test_boundary_records_at_top_level_are_not_replayed(project: pytest.Pytester) -> None:
    pricing = load(project, "pricing", PRICING)
    write(project.path, [rec(pricing.rate, ("EUR",), result=1.5)])
    result = run(project, "--replay")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
