"""A corpus of realistic (fake) secrets and the traced calls that carry them.

Each entry is (name, secret, snippet): the snippet is Python code in a test
function that passes ``SECRET`` through traced functions of
:data:`PROJECT_HEADER` in one realistic way (an argument, a header, a URL, a
nested JSON body, bytes, a result, an exception, a boundary call...).
``cores`` are the distinctive parts of a secret: none of them may appear in
any file under the replay directory after recording.
"""

from __future__ import annotations

import base64
import json

# Fake but well-formed: every one matches the shape real tooling looks for.
_B64_KEY = base64.b64encode(bytes(range(48)) * 3).decode()
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    f"MIIEowIBAAKCAQEA{_B64_KEY[:48]}\n{_B64_KEY[48:112]}\n"
    "-----END RSA PRIVATE KEY-----\n"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1c2VyLTQyIiwiZXhwIjoxOTk5OTk5OTk5fQ."
    "Qm9ndXNTaWduYXR1cmVGb3JUZXN0aW5nT25seTEyMw"
)
BASIC = "Basic " + base64.b64encode(b"deploy:Tr0ub4dor&3-hunter2").decode()

CORPUS: list[tuple[str, str, str]] = [
    (
        "openai key as argument",
        "sk-proj-Zx81kQ0pLm4Rt7Yv2Nw9Bc3Df6Gh1Jk5",
        "call_llm(SECRET, 'hi')",
    ),
    (
        "anthropic key as kwarg",
        "sk-ant-api03-Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0Xc",
        "call_llm(key=SECRET, prompt='x')",
    ),
    (
        "bearer JWT header",
        JWT,
        "fetch('https://api.example.com/me', {'Authorization': 'Bearer ' + SECRET})",
    ),
    (
        "bearer opaque header",
        "ya29.a0AfH6SMBx9Kq2Lr7Tw3Zp8Nv4Mc1Hd6Gf5",
        "fetch('https://x.io', {'authorization': f'Bearer {SECRET}'})",
    ),
    ("basic auth header", BASIC, "fetch('https://x.io', {'Authorization': SECRET})"),
    (
        "x-api-key header",
        "a3f9c2e71b8d4056e9f1c7a2b4d8e0f6",
        "fetch('https://x.io', {'X-Api-Key': SECRET})",
    ),
    (
        "cookie header",
        "sess=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "fetch('https://x.io', {'Cookie': SECRET})",
    ),
    (
        "password in postgres URL",
        "S3cr3t!Pg-Passw0rd",
        "connect(f'postgresql://admin:{SECRET}@db.internal:5432/app')",
    ),
    (
        "password in https URL",
        "hunter2-Correct-Horse",
        "fetch(f'https://deploy:{SECRET}@git.example.com/repo.git', {})",
    ),
    (
        "api_key in query string",
        "qs9a8b7c6d5e4f3g2h1i0j",
        "fetch(f'https://api.example.com/v1/search?q=x&api_key={SECRET}', {})",
    ),
    (
        "access_token in query string",
        "at-7Hh2Kk9Ll4Mm1Nn6Pp3Qq8Rr",
        "fetch(f'https://api.example.com/cb?access_token={SECRET}&state=1', {})",
    ),
    ("password parameter", "P@ssw0rd-2024-Winter!", "login('alice', SECRET)"),
    (
        "client_secret kwarg",
        "cs_9Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk",
        "oauth('client-id-1', client_secret=SECRET)",
    ),
    (
        "nested dict password",
        "Db-Pa55-Nested-0987",
        "configure({'db': {'host': 'h', 'password': SECRET}, 'debug': True})",
    ),
    (
        "nested dict api_key in list",
        "nk-1a2b3c4d5e6f7g8h9i0j",
        "configure({'services': [{'name': 's', 'api_key': SECRET}]})",
    ),
    (
        "JSON body string with a bearer header",
        "json-bearer-5f4e3d2c1b0a9988",
        "post_body(json.dumps({'headers': {'Authorization': 'Bearer ' + SECRET}}))",
    ),
    (
        "JSON body string with a github token",
        "ghp_J5s0N8b1O9d2Y7t3K6e4N5f6O7r8G9i0T1h2",
        "post_body(json.dumps({'token': SECRET, 'q': 1}))",
    ),
    (
        "form body with a password",
        "Form-Passw0rd-31337",
        "post_body(f'user=bob&password={SECRET}&remember=1')",
    ),
    ("AWS access key id", "AKIAIOSFODNN7EXAMPLQ", "aws_call('s3', SECRET)"),
    (
        "AWS secret key",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_call('s3', 'AKIAIOSFODNN7EXAMPLQ', aws_secret_access_key=SECRET)",
    ),
    ("private key block", PEM, "sign(SECRET, b'payload')"),
    ("private key block as bytes", PEM.replace("RSA", "EC"), "sign(SECRET.encode(), b'payload')"),
    (
        "bearer header in bytes",
        "bytes-tok-8Kq2Lr7Tw3Zp8Nv4",
        "raw_request(b'GET / HTTP/1.1\\r\\nAuthorization: Bearer ' + SECRET.encode() + b'\\r\\n')",
    ),
    (
        "github classic token",
        "ghp_R7t2Y9u4I1o6P3a8S5d0F2g7H4j9K1l6Z3x8",
        "git_push('origin', token=SECRET)",
    ),
    (
        "github fine-grained token",
        "github_pat_11ABCDEFG0Zq9Xw8Ve7Ub6Ta5Sz4Ry3Qx2Pw1Ov0Nu9Mt8Ls7Kr6",
        "git_push('origin', SECRET)",
    ),
    ("gitlab token", "glpat-Xy7Zw8Vu9Ts0Rq1Po2Nm", "git_push('gitlab', SECRET)"),
    ("slack bot token", "xoxb-2048-4096-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8", "notify('#ops', SECRET)"),
    ("stripe live key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "charge(1000, SECRET)"),
    ("stripe restricted key", "rk_live_51H8z2KqLr7Tw3Zp8Nv4Mc1Hd", "charge(1000, api=SECRET)"),
    ("google api key", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "geocode('Berlin', SECRET)"),
    ("hugging face token", "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", "download_model('m', SECRET)"),
    ("npm token", "npm_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78", "publish('pkg', SECRET)"),
    (
        "sendgrid key",
        "SG.Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op.Qr8St9Uv0Wx1Yz2Ab3Cd4Ef5Gh6Ij7Kl8Mn9",
        "send_mail('a@b.c', SECRET)",
    ),
    (
        "token returned by the function",
        "ret-tok-5Zx8Yw7Vu6Ts5Rq4Po",
        "TOKENS['alice'] = SECRET; issue_token('alice')",
    ),
    (
        "secret in an exception message",
        "sk-exc9Aa8Bb7Cc6Dd5Ee4Ff3Gg",
        "expect_error(lambda: check_key(SECRET))",
    ),
    ("password in a dataclass field", "Dc-Passw0rd-Field-42", "store_creds(Creds('svc', SECRET))"),
    ("token in a boundary call", "bnd-tok-3Gg2Hh1Ii0Jj9Kk8Ll", "sync_user('alice', SECRET)"),
    ("api key in user metadata", "meta-key-6Mm5Nn4Oo3Pp2Qq1Rr", "metered('q', SECRET)"),
    (
        "redacted password echoed in an error",
        "Echo-Passw0rd-77",
        "expect_error(lambda: check_password(SECRET))",
    ),
    (
        "redacted api_key echoed in the result",
        "echo-key-6Mm5Nn4Oo3Pp2Qq1Rr",
        "echo_config(api_key=SECRET)",
    ),
]

PROJECT_HEADER = """
import dataclasses
import json

from pytest_replay import replay_trace


@replay_trace
def call_llm(key, prompt):
    return {"model": "m", "text": "ok"}


@replay_trace
def fetch(url, headers):
    return {"status": 200, "url_len": len(url)}


@replay_trace
def connect(dsn):
    return {"connected": True}


@replay_trace
def login(user, password):
    return user


@replay_trace
def oauth(client_id, client_secret):
    return {"client": client_id}


@replay_trace
def configure(settings):
    return sorted(settings)


@replay_trace
def post_body(body):
    return len(body)


@replay_trace
def aws_call(service, access_key_id, aws_secret_access_key=None):
    return service


@replay_trace
def sign(key, payload):
    return len(payload)


@replay_trace
def raw_request(data):
    return len(data)


@replay_trace
def git_push(remote, token):
    return remote


@replay_trace
def notify(channel, slack_token):
    return channel


@replay_trace
def charge(amount, api):
    return amount


@replay_trace
def geocode(city, key):
    return [52.5, 13.4]


@replay_trace
def download_model(name, hf_token):
    return name


@replay_trace
def publish(package, npm_token):
    return package


@replay_trace
def send_mail(to, sendgrid_key):
    return to


TOKENS = {}


@replay_trace
def issue_token(user):
    return {"user": user, "access_token": TOKENS[user]}


@replay_trace
def check_key(api_key):
    raise PermissionError(f"key {api_key} is revoked")


def expect_error(fn):
    try:
        fn()
    except PermissionError:
        return
    raise AssertionError("no error")


@dataclasses.dataclass
class Creds:
    user: str
    password: str


@replay_trace
def store_creds(creds):
    return creds.user


@replay_trace(boundary=True)
def remote_api(path, auth):
    return {"ok": True}


@replay_trace
def sync_user(user, token):
    return remote_api(f"/users/{user}", {"Authorization": "Bearer " + token})


@replay_trace(metadata=lambda call: {"billing": {"api_key": call.arguments["api_key"]}})
def metered(query, api_key):
    return query
"""


#: Realistic ways a secret reaches a traced call that the scanner once missed: a
#: password/token key inside JSON *text* (held as a strict xfail in
#: tests/test_hardening_secrets.py until the "secret in JSON text" detector).
KNOWN_GAPS: list[tuple[str, str, str]] = [
    (
        "JSON text with a password key",
        "JsonPass-77-Zebra!",
        "post_body(json.dumps({'user': 'bob', 'password': SECRET}))",
    ),
    (
        "JSON text with a token key",
        "tok-JSON-5f4e3d2c1b0a9988",
        "post_body(json.dumps({'auth': {'token': SECRET}}))",
    ),
]

GAP_FUNCTIONS = """

@replay_trace
def check_password(password):
    raise PermissionError(f"password {password} is too short")


@replay_trace
def echo_config(api_key):
    return {"config": f"api={api_key}"}
"""


def project_source(corpus: list[tuple[str, str, str]] | None = None) -> str:
    lines = [PROJECT_HEADER, GAP_FUNCTIONS]
    for index, (name, secret, snippet) in enumerate(CORPUS if corpus is None else corpus):
        lines.append(f"\n\ndef test_{index}():  # {name}\n    SECRET = {secret!r}\n    {snippet}\n")
    return "".join(lines)


def cores(secret: str) -> list[bytes]:
    """The secret and its distinctive parts: each must be absent from every file."""
    parts = {secret}
    if secret.startswith("-----BEGIN"):
        parts |= {line for line in secret.splitlines() if line and not line.startswith("-----")}
    if secret.startswith("Basic "):
        parts |= {secret[6:], base64.b64decode(secret[6:]).decode().split(":", 1)[1]}
    for prefix in ("sk-proj-", "sk-ant-", "ghp_", "github_pat_", "glpat-", "xoxb-", "sk_live_",
                   "rk_live_", "AIza", "hf_", "npm_", "SG.", "ya29."):  # fmt: skip
        if secret.startswith(prefix):
            parts.add(secret[len(prefix) :])
    if secret.count(".") == 2 and secret.startswith("eyJ"):
        parts |= set(secret.split("."))
    return [p.encode() for p in parts if len(p) >= 8] + [json.dumps(secret)[1:-1].encode()]
