"""Secrets in JSON / form *text*, and secrets echoed elsewhere in a record.

The scanner recognises ``"password": "..."`` inside JSON text and
``password=...`` in form or ``key=value`` text by the secret *name*; and every
secret redacted from any input of a call tree is searched for, as an exact
substring, in the whole record (inputs, result, error, nested calls, metadata).
Each test greps the written files for the secret bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay import codec, redact, trace
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.record import record_id
from pytest_replay.redact import find_secret, secret_parts


def disk(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the detectors

IN_TEXT = {
    "json body": json.dumps({"user": "bob", "password": "JsonPass-77-Zebra!"}),
    "nested json key": json.dumps({"auth": {"token": "tok-JSON-5f4e3d2c"}}),
    "json inside a json string": json.dumps({"body": json.dumps({"api_key": "k-9911x"})}),
    "python repr text": str({"client_secret": "cs-hidden-1"}),
    "compact json": '{"db_password":"pw-compact-7"}',
    "form body": "user=bob&db_password=Zq1-plain-pw&remember=1",
    "key=value text": "--password=cli-pass-3 --verbose",
    "semicolon separated": "a=1;refresh_token=rt-abc-123",
}
NOT_SECRETS = [
    '{"tokens": "abc"}',
    '{"max_tokens": 100}',
    '{"password": ""}',
    '{"password": null}',
    '{"password": 1234}',  # a number under a secret name is kept, as in a dict
    "max_tokens=100&tokens=5",
    "a=b&c=d",
    "The token count is 5",
    "compass=north",
]


@pytest.mark.parametrize("label", sorted(IN_TEXT))
def test_secrets_in_text_are_found_by_name(label: str) -> None:
    text = IN_TEXT[label]
    assert find_secret(text) in ("secret in JSON text", "secret in query string")
    assert redact.might_contain_secret(codec.dumps({"body": text}))  # the pre-check agrees


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ordinary_text_with_names_is_left_alone(text: str) -> None:
    assert find_secret(text) is None


@settings(max_examples=150, deadline=None)
@given(
    word=st.sampled_from(["password", "secret", "token", "api_key", "apikey", "auth", "pwd"]),
    prefix=st.from_regex(r"[a-z]{0,5}", fullmatch=True),
    value=st.from_regex(r"[A-Za-z0-9!@#%^*()_+\-]{1,24}", fullmatch=True),
    form=st.booleans(),
    upper=st.booleans(),
)
def test_precheck_never_misses_a_named_secret_in_text(
    word: str, prefix: str, value: str, form: bool, upper: bool
) -> None:
    name = f"{prefix}_{word}" if prefix else word
    name = name.upper() if upper else name
    text = f"x=1&{name}={value}" if form else json.dumps({"id": 1, name: value})
    assert find_secret(text) is not None
    assert redact.might_contain_secret(codec.dumps([text]))


def test_secret_parts_are_the_secrets_without_their_text() -> None:
    assert secret_parts("Bearer tok-AAAABBBBCCCC") == ["tok-AAAABBBBCCCC"]
    assert secret_parts(IN_TEXT["json body"]) == ["JsonPass-77-Zebra!"]
    assert secret_parts(IN_TEXT["form body"]) == ["Zq1-plain-pw"]
    assert secret_parts("postgresql://admin:S3cr3t-pg@db:5432/x") == ["S3cr3t-pg"]
    assert secret_parts("Authorization: Token 0f2c8a9d7e6b5a4f") == [
        "Token 0f2c8a9d7e6b5a4f",
        "0f2c8a9d7e6b5a4f",
    ]
    assert secret_parts("nothing to see") == []


# --------------------------------------------------------------------------- recording


@pytest.fixture
def traced() -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
        wrapped = trace.replay_trace(key=f"echo.{fn.__name__}", **options)(fn)
        made.append(wrapped)
        return wrapped  # type: ignore[no-any-return]

    yield make
    for fn in made:
        trace._unregister(fn.__replay_spec__)


def records(directory: Path, key: str) -> list[dict[str, Any]]:
    return [codec.decode(r) for r in Cassette.open(cassette_path(directory, key)).records()]


def test_json_and_form_bodies_and_their_echoes(tmp_path: Path, traced: Any) -> None:
    def post_json(body: str) -> str:
        return "welcome back " + json.loads(body)["password"]

    def post_form(body: str) -> dict[str, str]:
        return {"pw_len": str(len(body)), "echo": body.split("db_password=")[1].split("&")[0]}

    post_json, post_form = traced(post_json), traced(post_form)
    with trace.recording(tmp_path) as session:
        assert post_json(IN_TEXT["json body"]) == "welcome back JsonPass-77-Zebra!"
        assert post_form(IN_TEXT["form body"])["echo"] == "Zq1-plain-pw"
    data = disk(tmp_path)
    for secret in (b"JsonPass-77-Zebra!", b"Zq1-plain-pw"):
        assert secret not in data
    (stored,) = records(tmp_path, "echo.post_json")
    assert stored["args"] == [codec.Redacted("secret: secret in JSON text")]
    assert stored["result"] == codec.Redacted(redact.ECHO_REASON)
    (form,) = records(tmp_path, "echo.post_form")
    assert form["result"]["pw_len"] == str(len(IN_TEXT["form body"]))  # the rest stays
    assert session.report is not None
    assert session.report.secrets_redacted >= 4


def test_a_token_echoed_without_its_header(tmp_path: Path, traced: Any) -> None:
    def fetch(url: str, headers: dict[str, str]) -> dict[str, str]:
        token = headers["Authorization"].split()[1]
        raise PermissionError(f"token {token} expired", token)

    fetch = traced(fetch)
    with trace.recording(tmp_path), pytest.raises(PermissionError):
        fetch("https://x.io", {"Authorization": "Bearer tok-AAAABBBBCCCC"})
    assert b"tok-AAAABBBBCCCC" not in disk(tmp_path)
    (stored,) = records(tmp_path, "echo.fetch")
    assert stored["error"]["type"] == "builtins.PermissionError"
    assert "tok-AAAA" not in stored["error"]["message"]


def test_a_secret_found_in_a_nested_call_is_redacted_from_the_whole_record(
    tmp_path: Path, traced: Any
) -> None:
    """The caller's input key ("pw") is no secret name; the nested call's parameter is."""
    seen: list[str] = []

    def note(text: str) -> None:
        seen.append(text)

    def login(user: str, password: str) -> bool:
        return True

    note, login = traced(note), traced(login)

    def sync(cfg: dict[str, str]) -> dict[str, Any]:
        note(f"syncing with {cfg['pw']}")  # before the secret is known as one
        login("svc", cfg["pw"])
        return {"log": "used " + cfg["pw"], "user": "svc"}

    sync = traced(sync, metadata=lambda call: {"echo": call.arguments["cfg"]["pw"]})
    with trace.recording(tmp_path):
        assert sync({"pw": "hunter2-secretish"})["user"] == "svc"
    assert b"hunter2-secretish" not in disk(tmp_path)
    assert seen == ["syncing with hunter2-secretish"]  # the code saw the real value
    (stored,) = records(tmp_path, "echo.sync")
    assert stored["args"] == [{"pw": codec.Redacted(redact.ECHO_REASON)}]
    assert stored["result"] == {"log": codec.Redacted(redact.ECHO_REASON), "user": "svc"}
    assert [child["key"] for child in stored["children"]] == ["echo.note", "echo.login"]
    # the id still hashes the inputs as written, so dedup and replay agree on it
    assert stored["id"] == record_id("echo.sync", codec.dumps([stored["args"], stored["kwargs"]]))
    # the nested call recorded before the secret was known has its own record: amended
    (noted,) = records(tmp_path, "echo.note")
    assert noted["args"] == [codec.Redacted(redact.ECHO_REASON)]
    assert noted["id"] == stored["children"][0]["id"]
    assert noted["id"] == record_id("echo.note", codec.dumps([noted["args"], {}]))


def test_echoes_inside_objects_and_bytes(tmp_path: Path, traced: Any) -> None:
    def wrap(password: str) -> tuple[str, bytes]:
        return ("pw", b"raw " + password.encode())

    wrap = traced(wrap)
    with trace.recording(tmp_path):
        wrap("Tuple-Echo-9876")
    assert b"Tuple-Echo-9876" not in disk(tmp_path)


def test_allow_secrets_writes_text_as_it_is(tmp_path: Path, traced: Any) -> None:
    def post_json(body: str) -> int:
        return len(body)

    post_json = traced(post_json)
    with trace.recording(tmp_path, allow_secrets=True):
        post_json(IN_TEXT["json body"])
    assert b"JsonPass-77-Zebra!" in disk(tmp_path)


def test_a_call_without_secrets_is_written_unchanged(tmp_path: Path, traced: Any) -> None:
    def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    add = traced(add)
    with trace.recording(tmp_path):
        add(1, 2)
    (stored,) = records(tmp_path, "echo.add")
    assert stored["result"] == {"sum": 3}
    assert stored["id"] == record_id("echo.add", codec.dumps([[1, 2], {}]))


def test_scrub_record_leaves_markers_and_clean_records_alone() -> None:
    marker = codec.Redacted("secret: value named 'password'")
    record = {
        "id": "0" * 16,
        "key": "k",
        "target": "m:k",
        "kind": "call",
        "args": [marker, "clean"],
        "kwargs": {},
        "result": None,
        "children": [],
        "boundary": False,
        "meta": {"nodeid": "tests/test_password.py::test_x"},
        "unreplayable": None,
    }
    payload = codec.dumps(record)
    # "password" is a taint text here; the marker's reason and the node id hold it
    assert redact.scrub_record(payload, ("password",)) == (payload, 0, None)
