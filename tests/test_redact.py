"""Redaction rules and the secret scanner: nothing secret reaches a cassette by default."""

from __future__ import annotations

import collections
import dataclasses
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay import codec, redact, trace
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.redact import RuleSet, Scrubber, find_secret, is_secret_name
from pytest_replay.trace import recording, registry, replay_trace

# 30+ realistic secrets, each in the shape it is usually found in. None of
# these bytes may appear in any file of the replay directory after recording.
SECRETS: dict[str, str] = {
    "bearer header": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz",
    "bearer opaque": "Bearer 8f14e45fceea167a5a36dedd4bea2543",
    "basic header": "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    "jwt alone": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhY21lIn0.Zm9vYmFyYmF6cXV4",
    "aws access key": "AKIAIOSFODNN7EXAMPLE",
    "aws temp key": "ASIAY34FZKBOKMUTVV7A",
    "aws secret in text": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "rsa private key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    ),
    "ec private key": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----",
    "pkcs8 private key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
    "openssh private key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r\n-----END",
    "openai key": "sk-proj-4fGh7Jk9Lm2Np5Qr8St1Uv3Wx6Yz0Ab",
    "openai legacy key": "sk-9aB8cD7eF6gH5iJ4kL3mN2oP1qR0sT9uV8wX7yZ",
    "anthropic key": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "stripe live key": "sk_live_51HxYzAbCdEfGhIjKlMnOp",
    "stripe restricted": "rk_test_51HxYzAbCdEfGhIjKlMnOp",
    "github pat classic": "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    "github fine grained": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "github oauth": "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "gitlab token": "glpat-x1y2z3A4B5C6D7E8F9G0",
    "slack bot token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
    "google api key": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "hugging face token": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    "npm token": "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "sendgrid key": "SG.AbCdEfGhIjKlMnOpQrSt.UvWxYz0123456789AbCdEfGhIjKlMn",
    "postgres url": "postgresql://admin:S3cr3tPa55@db.internal:5432/app",
    "https url with password": "https://deploy:hunter2hunter2@git.example.com/repo.git",
    "query string": "https://api.example.com/v1/items?user=bob&api_key=Zx9Yw8Vu7Ts6",
    "form body": "username=bob&password=CorrectHorseBattery&remember=1",
    "header line": "Authorization: Token 0f2c8a9d7e6b5a4f3e2d1c0b",
    "x-api-key header": "X-API-Key: q1w2e3r4t5y6u7i8o9p0",
    "api key in text": "use api-key=Qm9iIGlzIG15IHVuY2xl to call it",
}
# Secrets recognised by the name they are stored under, not by their shape.
NAMED: dict[str, str] = {
    "password": "plainTextPw1",
    "db_password": "pg-pass-7781",
    "clientSecret": "cs_91ab27ff",
    "apiKey": "ak_1029384756",
    "X-Auth-Token": "tok_5566778899",
    "refresh_token": "rt.abc.def",
    "aws_secret_access_key": "wJalrXUtnFEMIK7MDENG",
    "private_key": "k3y-m4t3r14l",
    "session_cookie": "sess=abcdef012345",
}


def all_cassette_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the scanner


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_every_secret_shape_is_found_and_passes_the_precheck(kind: str) -> None:
    secret = SECRETS[kind]
    assert find_secret(secret) is not None, kind
    assert find_secret(f"some text around it: {secret} and after") is not None
    for value in (secret, {"note": secret}, [1, (secret,)], secret.encode()):
        assert redact.might_contain_secret(codec.dumps(value)), kind


@pytest.mark.parametrize(
    "text",
    [
        "basic information about the order",
        "The token count is 5",
        "https://example.org/docs/getting-started",
        "user@example.org",
        "2024-05-01T12:00:00+00:00",
        "SKU-000123",
        "skip the first line",
        "a-----b",  # five dashes, but no key block
        "",
    ],
)
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert find_secret(text) is None


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        *[(name, True) for name in NAMED],
        ("pwd", True), ("passphrase", True), ("authorization", True), ("Cookie", True),
        ("accessToken", True), ("idToken", True), ("credentials", True), ("x-api-key", True),
        ("tokens", False), ("max_tokens", False), ("author", False), ("passenger", False),
        ("key", False), ("monkey", False), ("secretary_name", False), ("compass", False),
        ("", False),
    ],
)  # fmt: skip
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    kind=st.sampled_from(sorted(SECRETS)),
)
def test_precheck_never_misses_a_detectable_secret(before: str, after: str, kind: str) -> None:
    text = f"{before} {SECRETS[kind]} {after}"
    if find_secret(text) is not None:
        assert redact.might_contain_secret(codec.dumps({"v": [text]}))


NAME_STYLES = [
    "{p}_{w}_{s}",  # snake
    "{P}_{W}",  # upper snake
    "{p}-{w}",  # kebab
    "{p}{Wc}{Sc}",  # camel
    "{w}",
]


@settings(max_examples=200, deadline=None)
@given(
    style=st.sampled_from(NAME_STYLES),
    word=st.sampled_from(["password", "secret", "token", "api_key", "apikey", "auth", "pwd"]),
    prefix=st.from_regex(r"[a-z]{1,6}", fullmatch=True),
    suffix=st.from_regex(r"[a-z]{1,6}", fullmatch=True),
)
def test_precheck_never_misses_a_secret_name(
    style: str, word: str, prefix: str, suffix: str
) -> None:
    name = style.format(
        p=prefix, P=prefix.upper(), w=word, W=word.upper(), s=suffix,
        Wc=word.title().replace("_", ""), Sc=suffix.title(),
    )  # fmt: skip
    assert is_secret_name(name)
    assert redact.might_contain_secret(codec.dumps({name: "x"}))


def test_precheck_passes_ordinary_data_without_walking() -> None:
    data = codec.dumps(
        {"sku": "SKU-1", "qty": 3, "unit_price": 9.99, "tags": ["web", "promo"], "when": 1.5}
    )
    assert not redact.might_contain_secret(data)


# --------------------------------------------------------------------------- walking


@dataclasses.dataclass(frozen=True)
class Creds:
    user: str
    password: str


@dataclasses.dataclass(frozen=True)
class Strict:
    note: str

    def __post_init__(self) -> None:
        if not isinstance(self.note, str):
            raise TypeError("note must be a str")


@attrs.frozen
class Session:
    id: int
    cookie: str


Pair = collections.namedtuple("Pair", ["name", "token"])


def scrub(value: Any, rules: tuple[str, ...] = (), scan: bool = True) -> tuple[Any, Scrubber]:
    scrubber = Scrubber(RuleSet(rules) if rules else None, scan=scan)
    return scrubber.walk(value, "arg"), scrubber


def test_secrets_inside_containers_and_objects_are_replaced_in_place() -> None:
    bearer = SECRETS["bearer opaque"]
    value = {
        "headers": {"Authorization": bearer, "Accept": "json"},
        "creds": Creds("bob", "pw-1"),
        "session": Session(7, "abc"),
        "pair": Pair("x", "t-1"),
        "items": [1, (2, bearer)],
        "tags": {"a", bearer},
        "max_tokens": 100,  # a number under a secret-looking name is not a secret
        "raw": bearer.encode(),
    }
    new, scrubber = scrub(value)
    marker = codec.Redacted
    assert new["headers"] == {"Authorization": marker("secret: value named 'Authorization'"),
                              "Accept": "json"}  # fmt: skip
    assert new["creds"] == Creds("bob", marker("secret: value named 'password'"))  # type: ignore[arg-type]
    assert new["session"] == Session(7, marker("secret: value named 'cookie'"))  # type: ignore[arg-type]
    assert new["pair"] == Pair("x", marker("secret: value named 'token'"))
    assert new["items"] == [1, (2, marker("secret: bearer token"))]
    assert new["tags"] == {"a", marker("secret: bearer token")}
    assert new["max_tokens"] == 100
    assert new["raw"] == marker("secret: bearer token")
    assert scrubber.secrets == 7
    assert value["headers"]["Authorization"] == bearer  # the caller's objects are untouched


def test_an_object_that_refuses_the_marker_is_replaced_whole() -> None:
    new, scrubber = scrub([Strict(SECRETS["openai key"])])
    assert new == [codec.Redacted("secret in Strict (could not rebuild)")]
    assert scrubber.secrets == 1


def test_an_opaque_object_holding_a_secret_is_replaced_whole() -> None:
    class Holder:
        def __init__(self) -> None:
            self.key = SECRETS["github pat classic"]

    codec.register_type(Holder, lambda h: {"key": h.key}, lambda d: Holder(), tag="test.Holder")
    try:
        (new,), scrubber = scrub([Holder()])
    finally:
        codec.unregister_type(Holder)
    assert new == codec.Redacted("secret: GitHub token in Holder")
    assert scrubber.secrets == 1


def test_nothing_changes_when_nothing_matches() -> None:
    value = {"a": [1, 2, {"b": "plain"}], "c": Creds("bob", "")}
    new, scrubber = scrub(value)
    assert new is value
    assert scrubber.secrets == scrubber.rule_hits == 0


@pytest.mark.parametrize(
    ("rules", "path", "hit"),
    [
        (("password",), "password", "password"),
        (("password",), "user.password", None),
        (("headers.*",), "headers.Authorization", "headers.*"),
        (("*.api_key",), "config.nested.api_key", "*.api_key"),
        (("return.token",), "return.token", "return.token"),
        (("items.?",), "items.3", "items.?"),
    ],
)
def test_rules_match_names_dotted_paths_and_globs(
    rules: tuple[str, ...], path: str, hit: str | None
) -> None:
    assert RuleSet(rules).match(path) == hit


def test_rules_apply_even_when_secrets_are_allowed() -> None:
    value = {"note": "public", "card": "4111 1111 1111 1111", "token": "t"}
    new, scrubber = scrub(value, rules=("arg.card",), scan=False)
    assert new == {"note": "public", "card": codec.Redacted("redact rule 'arg.card'"), "token": "t"}
    assert (scrubber.rule_hits, scrubber.secrets) == (1, 0)


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        RuleSet([""])


# --------------------------------------------------------------------------- end to end


@replay_trace(redact=["card", "profile.ssn", "return.session_id", "*.iban"])
def checkout(user: str, card: str, profile: dict[str, Any], password: str = "") -> dict[str, Any]:
    return {"session_id": "S-" + user, "ok": True, "profile": profile}


@replay_trace
def call_api(url: str, headers: dict[str, str], body: Any = None) -> dict[str, Any]:
    return {"echo": headers, "body": body}


@replay_trace
def fail_loudly(token: str) -> None:
    raise PermissionError(f"rejected {SECRETS['bearer opaque']}", token)


def test_no_secret_byte_reaches_any_file(tmp_path: Path) -> None:
    with recording(tmp_path) as session:
        for kind, secret in SECRETS.items():
            call_api("https://api.example.com", {"X-Note": secret}, body={"text": [secret]})
            call_api(secret, {}, body=secret.encode())
            del kind
        call_api("https://api.example.com", NAMED, body=[NAMED])
        checkout("bob", "4111111111111111", {"ssn": "078-05-1120", "iban": "DE89370400440532"},
                 password="pw-secret-1")  # fmt: skip
        with pytest.raises(PermissionError):
            fail_loudly("tok-998877")
    data = all_cassette_bytes(tmp_path)
    leaked = [k for k, v in {**SECRETS, **NAMED}.items() if v.encode() in data]
    assert leaked == []
    for plain in (b"4111111111111111", b"078-05-1120", b"DE89370400440532", b"pw-secret-1",
                  b"S-bob", b"tok-998877"):  # fmt: skip
        assert plain not in data
    report = session.report
    assert report is not None
    assert report.secrets_redacted >= len(SECRETS) * 2
    assert report.rule_redactions == 6  # card, ssn and iban in, session_id, ssn and iban out
    (rec,) = [codec.decode(r) for r in Cassette.open(cassette_path(tmp_path, f"{__name__}.checkout")).records()]  # type: ignore[union-attr]  # noqa: E501
    assert rec["args"][1] == codec.Redacted("redact rule 'card'")  # type: ignore[index]
    assert rec["result"]["session_id"] == codec.Redacted("redact rule 'return.session_id'")  # type: ignore[index]
    assert rec["args"][2]["iban"] == codec.Redacted("redact rule '*.iban'")  # type: ignore[index]


def test_the_error_message_and_args_are_scanned_too(tmp_path: Path) -> None:
    with recording(tmp_path), pytest.raises(PermissionError):
        fail_loudly("plain")
    (raw,) = Cassette.open(cassette_path(tmp_path, f"{__name__}.fail_loudly")).records()
    error = codec.decode(raw["error"])
    # the message holds both a bearer token and the value of the `token` parameter
    assert error["message"].startswith("[redacted: secret: ")  # type: ignore[index]
    assert error["args"] == [  # type: ignore[index]
        codec.Redacted("secret: bearer token"),
        codec.Redacted("secret: a redacted input value"),  # echoed from the input
    ]


def test_allow_secrets_records_them_as_they_are(tmp_path: Path) -> None:
    secret = SECRETS["aws access key"]
    with recording(tmp_path, allow_secrets=True) as session:
        call_api("https://x", {"Authorization": secret})
    assert secret.encode() in all_cassette_bytes(tmp_path)
    assert session.report is not None
    assert session.report.secrets_redacted == 0


def test_record_ids_hash_the_redacted_inputs(tmp_path: Path) -> None:
    # Two calls differing only in a secret are one record: the id must not
    # carry information about the secret (a hash of it could be brute-forced).
    with recording(tmp_path) as session:
        call_api("https://x", {"Authorization": "Bearer aaaaaaaaaaaaaaaa"})
        call_api("https://x", {"Authorization": "Bearer bbbbbbbbbbbbbbbb"})
    assert session.report is not None
    assert (session.report.new, session.report.duplicates) == (1, 1)


def test_metadata_is_scanned(tmp_path: Path) -> None:
    @replay_trace(key="test_redact.llm", metadata=lambda call: {"api_key": "ak-123", "tokens": 9})
    def llm(prompt: str) -> str:
        return prompt

    try:
        with recording(tmp_path):
            llm("hi")
    finally:
        trace._unregister(registry()["test_redact.llm"])
    assert b"ak-123" not in all_cassette_bytes(tmp_path)
    (raw,) = Cassette.open(cassette_path(tmp_path, "test_redact.llm")).records()
    assert codec.decode(raw["meta"])["user"]["tokens"] == 9  # type: ignore[index]


def test_detector_catalogue_is_documented() -> None:
    page = (Path(__file__).parent.parent / "docs" / "security.md").read_text(encoding="utf-8")
    for kind, _pattern, _check in redact.DETECTORS:
        assert re.search(re.escape(kind), page, re.IGNORECASE), f"{kind} missing in security.md"
