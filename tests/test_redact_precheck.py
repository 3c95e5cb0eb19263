"""The scanner's pre-check (redact.PRECHECKS): it may say "maybe" wrongly, never "no" wrongly.

Every value the recorder writes is searched for *triggers* (literals that every
detector match and every secret name contains) before anything is walked. These
tests hold each link of that chain:

- every match of every detector, and every secret name, holds a trigger;
- each pre-check build finds every trigger, in any case, anywhere in encoded data;
- what the recorder relies on besides: views that differ only in bytes no
  trigger uses give the same verdict, and checking a marker match exactly decides.
"""

from __future__ import annotations

import base64
import itertools
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay import codec, redact

BUILDS = pytest.mark.parametrize(
    "build", redact.PRECHECKS, ids=[f"build{i}" for i in range(len(redact.PRECHECKS))]
)
TRIGGERS = redact._TRIGGERS
COMPILED = {kind: (re.compile(pattern), check) for kind, pattern, check in redact.DETECTORS}


def detects(kind: str, text: str) -> bool:
    regex, check = COMPILED[kind]
    return any(check is None or check(match) for match in regex.finditer(text))


def holds_trigger_exactly(data: bytes) -> bool:
    """The trigger rule written the slow, obvious way (the reference for has_trigger)."""
    lower = data.lower()
    return any(
        text.encode("ascii") in lower if any_case else text.encode("utf-8") in data
        for text, any_case in TRIGGERS
    )


def encodings(text: str) -> list[bytes]:
    """How a text can reach the pre-check: alone, in containers, as a key, as bytes."""
    return [
        codec.dumps(text),
        codec.dumps({"note": [1.5, {"v": text}]}),
        codec.dumps({text: 1}),
        codec.dumps(text.encode("utf-8")),
        codec.dumps((text,)),  # a tuple: an ext value, its payload searched as well
    ]


def assert_every_build_says_maybe(text: str) -> None:
    for data in encodings(text):
        assert redact.has_trigger(data), (text, data)
        for index, build in enumerate(redact.PRECHECKS):
            assert redact.might_contain_secret(data, build), (index, text, data)


# --------------------------------------------------------------------------- detectors

# Detectors without a validator: hypothesis writes texts that match them.
PLAIN_KINDS = [kind for kind, _, check in redact.DETECTORS if check is None]


@pytest.mark.parametrize("kind", PLAIN_KINDS)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_match_of_a_plain_detector_holds_a_trigger(kind: str, data: st.DataObject) -> None:
    pattern = COMPILED[kind][0].pattern
    text = data.draw(st.from_regex(pattern), label="text")
    if detects(kind, text):
        assert_every_build_says_maybe(text)


def test_every_detector_is_covered_by_a_strategy_here() -> None:
    # A new detector with a validator needs its own strategy below.
    validated = {kind for kind, _, check in redact.DETECTORS if check is not None}
    assert validated == {
        "basic auth credentials",
        "secret in query string",
        "secret in JSON text",
    }


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from(sorted({c.lower(), c.upper()})) for c in word)).map("".join)


@settings(max_examples=120, deadline=None)
@given(
    word=any_case("basic"),
    user=st.text("abcXYZ019_.", min_size=2, max_size=12),
    password=st.text("abcXYZ019!#", min_size=2, max_size=12),
    space=st.sampled_from([" ", "  ", "\t"]),
    before=st.sampled_from(["", "Authorization: ", "x "]),
)
def test_every_basic_credentials_match_holds_a_trigger(
    word: str, user: str, password: str, space: str, before: str
) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    text = f"{before}{word}{space}{token}"
    assert detects("basic auth credentials", text)
    assert_every_build_says_maybe(text)


# Secret names as people write them: the name rules' words, and their joined
# fragments split where the words naturally part, in any style and case.
NATURAL_PARTS = {
    "password": ["pass", "word"],
    "passwd": ["pass", "wd"],
    "apikey": ["api", "key"],
    "accesskey": ["access", "key"],
    "privatekey": ["private", "key"],
    "secretkey": ["secret", "key"],
    "clientsecret": ["client", "secret"],
    "authtoken": ["auth", "token"],
    "accesstoken": ["access", "token"],
    "refreshtoken": ["refresh", "token"],
    "sessiontoken": ["session", "token"],
    "idtoken": ["id", "token"],
}


def test_the_name_rules_are_all_known_here() -> None:
    # A new joined fragment needs its natural parts here, and a trigger.
    assert set(NATURAL_PARTS) == set(redact._SECRET_JOINED)
    for fragment, parts in NATURAL_PARTS.items():
        assert "".join(parts) == fragment
    name_triggers = [text for text, case in TRIGGERS if case]
    for word in redact._SECRET_WORDS:
        assert any(trigger in word for trigger in name_triggers), word
    for parts in NATURAL_PARTS.values():
        assert any(trigger in part for part in parts for trigger in name_triggers), parts


@st.composite
def secret_names(draw: st.DrawFn) -> str:
    source = draw(
        st.sampled_from([[w] for w in sorted(redact._SECRET_WORDS)] + list(NATURAL_PARTS.values()))
    )
    affixes = ["", "db", "user", "my", "x", "new", "main", "v2"]
    parts = [draw(st.sampled_from(affixes)), *source, draw(st.sampled_from(affixes))]
    parts = [part for part in parts if part]
    separator = draw(st.sampled_from(["", "_", "-", ".", " ", "__", "camel"]))
    if separator == "camel":
        name = parts[0] + "".join(part.title() for part in parts[1:])
    else:
        name = separator.join(parts)
    style = draw(st.sampled_from(["as is", "upper", "title", "random"]))
    if style == "upper":
        return name.upper()
    if style == "title":
        return name.title()
    if style == "random":
        return "".join(draw(st.sampled_from(sorted({c.lower(), c.upper()}))) for c in name)
    return name


@settings(max_examples=300, deadline=None)
@given(name=secret_names())
def test_every_secret_name_holds_a_trigger(name: str) -> None:
    if redact.is_secret_name(name):
        for data in (codec.dumps({name: "x"}), codec.dumps([{"a": 1, name: None}])):
            assert redact.has_trigger(data)
            for build in redact.PRECHECKS:
                assert redact.might_contain_secret(data, build), (name, build.anchors)


@settings(max_examples=200, deadline=None)
@given(
    name=secret_names(),
    value=st.text("abcXYZ0129+/_-", min_size=1, max_size=20),
    before=st.sampled_from(["", "?", "&", ";", ",", " ", "x=1&", "https://h/p?a=1&"]),
    quote=st.sampled_from(['"', "'", '\\"']),
)
def test_every_named_value_in_text_holds_a_trigger(
    name: str, value: str, before: str, quote: str
) -> None:
    if " " in name or not redact.is_secret_name(name):
        return
    form = f"{before}{name}={value}"
    if detects("secret in query string", form):
        assert_every_build_says_maybe(form)
    json_text = "{" + f"{quote}{name}{quote}: {quote}{value}{quote}" + "}"
    if detects("secret in JSON text", json_text):
        assert_every_build_says_maybe(json_text)


@pytest.mark.parametrize(
    "text",
    [
        # Characters that (?i) matching or str.lower() equate with ASCII letters.
        "Ba\u017fic YWxhZGRpbjpvcGVuc2VzYW1l",  # long s
        "aws_\u017fecret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "x-api-\u212aey: abcdef",  # Kelvin sign
        "x-ap\u0130-key: zzz",  # dotted capital I
        "Author\u0130zation: tok123",
        "ap\u0131-key: q1w2e3",  # dotless i
    ],
)
def test_secrets_spelled_with_case_folding_letters_are_found(text: str) -> None:
    assert redact.find_secret(text) is not None
    assert_every_build_says_maybe(text)


@pytest.mark.parametrize("name", ["to\u212aen", "ap\u0130key", "ACCESS\u212aEY"])
def test_names_spelled_with_case_folding_letters_pass_the_precheck(name: str) -> None:
    assert redact.is_secret_name(name)
    for build in redact.PRECHECKS:
        assert redact.might_contain_secret(codec.dumps({name: "x"}), build)


# --------------------------------------------------------------------------- the builds


def case_variants(text: str, any_case: bool) -> list[str]:
    if not any_case:
        return [text]
    options = [sorted({c.lower(), c.upper()}) for c in text]
    variants = ["".join(combo) for combo in itertools.product(*options)]
    return variants if len(variants) <= 256 else variants[::7]


@BUILDS
@pytest.mark.parametrize(("trigger", "any_case_"), TRIGGERS, ids=[t for t, _ in TRIGGERS])
def test_each_build_finds_every_trigger_in_every_case(
    build: redact.Precheck, trigger: str, any_case_: bool
) -> None:
    for variant in case_variants(trigger, any_case_):
        for before, after in [("", ""), ("x", "y"), ("\u00e9 ", " \u00e9"), ("pas", "ken")]:
            data = codec.dumps(f"{before}{variant}{after}")
            marked = data.translate(build.table)
            match = build.marked_full.search(marked)
            assert match is not None, (variant, before, after)
            assert redact.confirm_marked(data, marked, match)
            if len(data.translate(None, redact.BIN_HEADERS)) == len(data):
                # what the recorder searches in data without bin header bytes
                hit = build.marked.search(data.translate(build.table, redact.BIN_HEADERS))
                assert hit is not None, (variant, before, after)


# Random bytes made of trigger pieces and msgpack-like filler: the marker
# search (a superset by construction) against the exact rule.
PIECES = sorted(
    {text.encode("utf-8") for text, _ in TRIGGERS}
    | {text.upper().encode() for text, case in TRIGGERS if case}
    | {text.encode()[i:j] for text, _ in TRIGGERS for i in range(3) for j in range(i + 1, i + 4)}
    | {b"\xa3", b"\xcb@", b"\xc4\x02", b"\x84", b"\xaa", b"\xb0", b"_", b"-", b"0", b"q", b" "}
)


@BUILDS
@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(PIECES), max_size=12))
def test_the_marker_search_never_misses_a_trigger(
    build: redact.Precheck, parts: list[bytes]
) -> None:
    data = b"".join(parts)
    exact = holds_trigger_exactly(data)
    assert redact.has_trigger(data) is exact
    assert redact.might_contain_secret(data, build) is exact
    if exact:
        assert build.marked_full.search(data.translate(build.table)) is not None
    scanned = data.translate(build.table, redact.BIN_HEADERS)
    if len(scanned) == len(data):
        hit = build.marked.search(scanned)
        assert (hit is not None and redact.confirm_marked(data, scanned, hit)) is exact


@BUILDS
@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(PIECES), max_size=10), seed=st.randoms())
def test_views_that_differ_only_where_no_trigger_looks_agree(
    build: redact.Precheck, parts: list[bytes], seed: Any
) -> None:
    # The recorder remembers views it found clean: two inputs with the same
    # view must get the same verdict, so the table may only merge bytes that
    # stand in no trigger.
    data = b"".join(parts)
    blank = [byte for byte in range(256) if build.table[byte] == 0]
    assert 0x30 in blank  # digits blank out
    assert 0xCB in blank  # and msgpack headers
    other = bytes(seed.choice(blank) if build.table[b] == 0 else b for b in data)
    assert other.translate(build.table) == data.translate(build.table)
    assert holds_trigger_exactly(other) is holds_trigger_exactly(data)


def test_the_builds_differ_where_they_are_meant_to() -> None:
    # The recorder picks a build per traced function by the markers it finds.
    counts = [
        codec.dumps({"sku": "SKU-1", "unit_price": 1.5, "customer": "u1"})
        .translate(b.table)
        .count(redact.MARKER)
        for b in redact.PRECHECKS
    ]
    prose = [
        codec.dumps("the other thing which they had thought through")
        .translate(b.table)
        .count(redact.MARKER)
        for b in redact.PRECHECKS
    ]
    assert counts[1] < counts[0]
    assert prose[0] < prose[1]
