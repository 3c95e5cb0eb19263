"""compare.py: the equality fast path, deepdiff explanations, ignore rules and failure text."""

from __future__ import annotations

import dataclasses
import math
import sys

import pytest

from pytest_replay import codec
from pytest_replay.compare import (
    MISSING,
    ROOT,
    CompareOptions,
    Difference,
    Outcome,
    compare_outcomes,
    compare_values,
    error_info,
    format_inputs,
    format_value,
    generalize_path,
    ignore_regex,
    options_for,
    parse_compare_rules,
    render_failure,
    roundtrip,
    suggest_ignore,
)


@dataclasses.dataclass(frozen=True)
class Line:
    sku: str
    price: float


def lines_of(expected: object, actual: object, **options: object) -> list[str]:
    return compare_values(expected, actual, CompareOptions(**options)).lines()  # type: ignore[arg-type]


def test_equal_values_take_the_fast_path_without_deepdiff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "deepdiff", None)  # importing it would now fail
    value = {"a": [1, 2, {"b": (3, 4)}], "when": "2024-01-01"}
    assert compare_values(value, {"a": [1, 2, {"b": (3, 4)}], "when": "2024-01-01"}).equal


def test_new_output_goes_through_the_codec_round_trip() -> None:
    # A live object the codec stores as an opaque marker compares by that marker.
    recorded = roundtrip({"lock": __import__("threading").Lock(), "n": 1})
    assert isinstance(recorded, dict)
    assert isinstance(recorded["lock"], codec.Opaque)
    assert compare_values(recorded, {"lock": __import__("threading").Lock(), "n": 1}).equal
    # Tuples stay tuples: a list is a different value.
    assert not compare_values((1, 2), [1, 2]).equal


def test_differences_are_paths_with_both_sides() -> None:
    expected = {"total": 30.0, "items": [{"id": 1, "qty": 2}], "gone": True}
    actual = {"total": 33.0, "items": [{"id": 1, "qty": 3}], "new": "x"}
    assert lines_of(expected, actual) == [
        "gone: True → <missing>",
        "items[0].qty: 2 → 3",
        "new: <missing> → 'x'",
        "total: 30.0 → 33.0",
    ]


def test_dataclass_attributes_and_odd_keys_have_readable_paths() -> None:
    expected = {"line": Line("A", 1.0), "a key": 1, 2: "two"}
    actual = {"line": Line("A", 1.5), "a key": 2, 2: "deux"}
    assert lines_of(expected, actual) == [
        "[2]: 'two' → 'deux'",
        "['a key']: 1 → 2",
        "line.price: 1.0 → 1.5",
    ]


def test_index_paths_sort_numerically() -> None:
    expected = list(range(12))
    actual = [*range(2), 99, *range(3, 11), 98]
    assert [line.split(":")[0] for line in lines_of(expected, actual)] == ["[2]", "[11]"]


def test_root_value_difference() -> None:
    assert lines_of(1, 2) == [f"{ROOT}: 1 → 2"]


@pytest.mark.parametrize(
    ("rule", "ignored", "kept"),
    [
        ("*.created_at", ["created_at", "a.created_at", "a[0].b.created_at"], ["created_atx"]),
        ("items[*].id", ["items[0].id", "items[7].id"], ["items[0].qty", "id"]),
        ("a.b", ["a.b", "a.b.c"], ["a.bc", "x.a.b"]),
        ("*_at", ["created_at", "updated_at"], ["at", "a.created_at"]),
        ("**.id", ["id", "a.id", "a[1].b.id"], ["ids"]),
        ("root['a'][0]", ["a[0]", "a[0].z"], ["a[1]"]),
        ("a.*.c", ["a.x.c", "a[3].c"], ["a.c", "a.x.y.c"]),
    ],
)
def test_ignore_rules(rule: str, ignored: list[str], kept: list[str]) -> None:
    def nested(path: str, value: int) -> dict[str, object]:
        # Build {"a": {"b": ...}} / lists for "[n]" segments from a dotted path.
        import re

        tokens = re.findall(r"\[(\d+)\]|([^.\[\]]+)", path)
        result: object = value
        for index, name in reversed(tokens):
            result = [*([0] * int(index)), result] if index else {name: result}
        assert isinstance(result, dict)
        return result

    options = CompareOptions(ignore=(rule,))
    for path in ignored:
        assert compare_values(nested(path, 1), nested(path, 2), options).equal, (rule, path)
    for path in kept:
        comparison = compare_values(nested(path, 1), nested(path, 2), options)
        assert not comparison.equal, (rule, path)


def test_an_ignored_key_may_be_missing_on_one_side() -> None:
    options = CompareOptions(ignore=("*.created_at",))
    assert compare_values({"x": 1, "created_at": 5}, {"x": 1}, options).equal


def test_malformed_ignore_rule_names_the_rule() -> None:
    with pytest.raises(ValueError, match=r"cannot parse ignore rule 'a\[\]'"):
        ignore_regex("a[]")
    with pytest.raises(ValueError, match="empty ignore rule"):
        ignore_regex("  ")


def test_significant_digits_and_ignore_order() -> None:
    assert compare_values(
        {"x": 1.00001}, {"x": 1.00002}, CompareOptions(significant_digits=3)
    ).equal
    assert not compare_values(
        {"x": 1.001}, {"x": 1.002}, CompareOptions(significant_digits=3)
    ).equal
    assert compare_values([3, 1, 2], [1, 2, 3], CompareOptions(ignore_order=True)).equal
    assert not compare_values([3, 1, 2], [1, 2, 3]).equal


def test_ignore_order_counts_repeats() -> None:
    options = CompareOptions(ignore_order=True)
    assert compare_values([1, 1, 2], [2, 1, 1], options).equal
    assert lines_of([1, 1, 2], [1, 2], ignore_order=True) == ["[0]: 2× 1 → 1× 1"]


def test_nan_equals_nan() -> None:
    assert compare_values({"x": math.nan}, {"x": math.nan}).equal


def test_custom_compare_is_always_called_and_decides() -> None:
    calls: list[tuple[object, object]] = []

    def loose(expected: object, actual: object) -> bool:
        calls.append((expected, actual))
        return abs(expected["t"] - actual["t"]) < 1  # type: ignore[index,operator]

    options = CompareOptions(compare=loose)
    assert compare_values({"t": 1.0}, {"t": 1.5}, options).equal
    assert compare_values({"t": 1.0}, {"t": 1.0}, options).equal
    assert len(calls) == 2
    verdict = compare_values({"t": 1.0}, {"t": 3.0}, options)
    assert not verdict.equal
    assert verdict.lines() == ["compare(expected, actual) returned False", "t: 1.0 → 3.0"]


def test_custom_compare_assertion_message_is_shown() -> None:
    def strict(expected: object, actual: object) -> bool:
        raise AssertionError("totals differ by more than a cent")

    verdict = compare_values(1, 1, CompareOptions(compare=strict))
    assert not verdict.equal
    assert verdict.note == "compare(expected, actual) failed: totals differ by more than a cent"


def test_recorded_redaction_matches_any_value() -> None:
    expected = {"token": codec.Redacted("secret: bearer token"), "n": 1}
    assert compare_values(expected, {"token": "Bearer abc", "n": 1}).equal
    assert not compare_values(expected, {"token": "Bearer abc", "n": 2}).equal


def test_opaque_markers_compare_by_type() -> None:
    expected = {"handle": codec.Opaque("socket.socket", "<socket fd=3>")}
    assert compare_values(
        expected, {"handle": codec.Opaque("socket.socket", "<socket fd=9>")}
    ).equal
    verdict = compare_values(expected, {"handle": codec.Opaque("io.BytesIO", "<x>")})
    assert verdict.lines() == ["handle: <opaque socket.socket> → <opaque io.BytesIO>"]


def test_exceptions_compare_by_type_path_and_message() -> None:
    recorded = Outcome(error=error_info(ValueError("bad sku")))
    assert compare_outcomes(recorded, Outcome.from_exception(ValueError("bad sku"))).equal
    assert compare_outcomes(
        Outcome(error=dataclasses.replace(error_info(ValueError("x")), type="builtins:ValueError")),
        Outcome.from_exception(ValueError("x")),
    ).equal
    verdict = compare_outcomes(recorded, Outcome.from_exception(KeyError("bad sku")))
    assert verdict.lines() == [
        "error.type: 'ValueError' → 'KeyError'",
        "error.message: 'bad sku' → \"'bad sku'\"",
    ]


def test_raised_instead_of_result_and_the_reverse() -> None:
    verdict = compare_outcomes(
        Outcome({"total": 3}), Outcome.from_exception(ZeroDivisionError("x"))
    )
    assert verdict.lines() == [
        "raised ZeroDivisionError: x, expected a result",
        "<root>: {'total': 3} → raised ZeroDivisionError: x",
    ]
    verdict = compare_outcomes(Outcome(error=error_info(KeyError("k"))), Outcome(None))
    assert verdict.lines() == [
        "returned a result, expected it to raise KeyError: 'k'",
        "<root>: raised KeyError: 'k' → None",
    ]


def test_failure_text_is_short_and_capped() -> None:
    expected = {f"k{i:02}": i for i in range(30)}
    actual = {f"k{i:02}": i + 1 for i in range(30)}
    text = render_failure(
        key="pricing.quote",
        record_id="3f2a9c1d00000000",
        inputs={"sku": "A" * 500, "qty": 3},
        comparison=compare_values(expected, actual),
        cassette="cassettes/pricing.quote.cassette",
    )
    lines = text.splitlines()
    assert lines[0] == "replay diverged from the recording: pricing.quote [3f2a9c1d00000000]"
    assert lines[1] == "  cassette: cassettes/pricing.quote.cassette"
    assert lines[2].startswith("  inputs:   sku='AAAA")
    assert len(lines[2]) < 220
    assert lines[3] == "  30 differences (expected → actual):"
    assert lines[4] == "    k00: 0 → 1"
    assert lines[-1] == "    ... and 20 more differences"
    assert len(lines) == 15


def test_format_value_is_bounded_for_huge_values() -> None:
    huge = {f"key{i}": list(range(100)) for i in range(10_000)}
    text = format_value(huge, 60)
    assert len(text) <= 60
    assert text.endswith("…")
    assert format_value(MISSING) == "<missing>"
    assert format_value(codec.Redacted("x")) == "<redacted>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert format_value(Broken()).startswith("<Broken ")  # a failing __repr__ never hides a diff
    assert format_inputs({}) == "(no arguments)"


def test_suggested_ignore_line_generalizes_indices() -> None:
    differences = [
        Difference("items[0].id", 1, 2),
        Difference("items[3].id", 1, 2),
        Difference("created_at", "a", "b"),
    ]
    assert suggest_ignore(differences) == 'ignore=["items[*].id", "created_at"]'
    assert suggest_ignore([Difference(ROOT, 1, 2)]) is None
    assert generalize_path("a[1].b[22]") == "a[*].b[*]"


def test_ini_rules_parse_and_layer_on_the_decorator() -> None:
    rules = parse_compare_rules(
        [
            "# comment",
            "pricing.*: ignore=*.created_at, items[*].id; significant_digits=2",
            "pricing.quote: ignore_order",
            "",
        ]
    )
    base = CompareOptions(ignore=("meta",), significant_digits=5)
    options = options_for("pricing.quote", base, rules)
    assert options.ignore == ("meta", "*.created_at", "items[*].id")
    assert options.significant_digits == 2
    assert options.ignore_order is True
    assert options_for("search.rank", base, rules) == base


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("no colon here", "expected 'KEY-GLOB: ignore=a,b"),
        ("k: colour=red", "unknown option 'colour'"),
        ("k: significant_digits=many", "significant_digits must be a non-negative integer"),
        ("k: ignore_order=perhaps", "ignore_order must be true or false"),
        ("k: ignore=a[]", "cannot parse ignore rule 'a\\[\\]'"),
        ("k: ignore", "'ignore' needs '='"),
    ],
)
def test_bad_ini_rules_name_the_line(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_compare_rules(["ok.key: ignore=a", line])
    assert "line 2" in str(info.value)
