"""Redaction rules and the built-in secret scanner.

Two mechanisms decide what never reaches a cassette:

- **rules** (``@replay_trace(redact=[...])``): parameter names or dotted/glob
  paths into the bound arguments (``"password"``, ``"headers.Authorization"``,
  ``"*.api_key"``) or into the result (``"return.token"``). Always applied.
- the **scanner**: recognises secrets by their shape (bearer/basic
  credentials, JWTs, AWS access keys, private key blocks, API keys with known
  prefixes such as ``sk-``, passwords in URLs) or by the name they are stored
  under (a parameter or mapping key named like password, secret, token,
  api_key ...). On by default; ``--replay-allow-secrets`` turns it off.

A hit replaces the whole value with ``codec.Redacted(reason)``. The reason
names the rule or the kind of secret, never the secret.

The scanner first runs one compiled pattern over the *encoded* bytes
(:func:`might_contain_secret`): almost every value has nothing that could
match, and a C-level regex search over bytes is far cheaper than walking the
value. Only on a possible hit is the value walked and checked precisely.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import fnmatch
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .trace import TraceSpec

__all__ = [
    "DETECTORS",
    "RuleSet",
    "Scrubber",
    "find_secret",
    "is_secret_name",
    "might_contain_secret",
    "scrub_inputs",
    "scrub_value",
]

# ---------------------------------------------------------------------------- names

# A name is split into words (snake, kebab, dotted and camelCase); it is a
# secret name when a word is one of these ...
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pwd",
        "secret",
        "secrets",
        "token",
        "auth",
        "oauth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "apikey",
    }
)
# ... or when the words run together contain one of these.
_SECRET_JOINED = (
    "password",
    "passwd",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "clientsecret",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "sessiontoken",
    "idtoken",
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_NON_WORD = re.compile(r"[^A-Za-z0-9]+")


def is_secret_name(name: object) -> bool:
    """True when ``name`` (a parameter or mapping key) is named like a secret."""
    return isinstance(name, str) and bool(name) and _secret_name(name)


@lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    spaced = _CAMEL.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", name))
    words = [w for w in _NON_WORD.split(spaced.lower()) if w]
    if any(word in _SECRET_WORDS for word in words):
        return True
    joined = "".join(words)
    return any(fragment in joined for fragment in _SECRET_JOINED)


# ---------------------------------------------------------------------------- shapes


def _basic_credentials(match: re.Match[str]) -> bool:
    # "Basic <base64(user:password)>"; plain prose such as "basic information"
    # is not valid base64 of a user:password pair.
    token = match.group(1)
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


_NAME_IN_QUERY = (
    r"(?:password|passwd|pwd|pass|secret|token|api[_-]?key|apikey|access[_-]?token|"
    r"refresh[_-]?token|auth|client[_-]?secret)"
)

#: (kind, pattern, validator): the scanner's catalogue of secret shapes.
DETECTORS: tuple[tuple[str, str, Any], ...] = (
    ("private key block", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----", None),
    ("JWT", r"\beyJ[A-Za-z0-9_-]{9,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{4,}", None),
    ("bearer token", r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*", None),
    ("basic auth credentials", r"(?i)\bbasic\s+([A-Za-z0-9+/]{6,}={0,2})", _basic_credentials),
    (
        "AWS access key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
        None,
    ),
    (
        "AWS secret key",
        r"(?i)aws.{0,30}?(?:secret|private).{0,30}?[A-Za-z0-9/+]{40}",
        None,
    ),
    ("API key (sk-)", r"\bsk-[A-Za-z0-9_-]{16,}", None),
    ("Stripe key", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}", None),
    ("GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})", None),
    ("GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}", None),
    ("Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", None),
    ("Google API key", r"\bAIza[0-9A-Za-z_-]{35}", None),
    ("Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}", None),
    ("npm token", r"\bnpm_[A-Za-z0-9]{36}", None),
    ("SendGrid key", r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", None),
    ("password in URL", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@", None),
    ("secret in query string", rf"(?i)(?:^|[?&;\s]){_NAME_IN_QUERY}=[^&\s]+", None),
    (
        "authorization header",
        r"(?i)\b(?:authorization|proxy-authorization|x-api-key|api-key)\s*[:=]\s*\S+",
        None,
    ),
)

_COMPILED = tuple((kind, re.compile(pattern), check) for kind, pattern, check in DETECTORS)

# The pre-check over encoded bytes, run on every recorded value. It may say
# "maybe" for harmless data (the value is then walked and checked precisely);
# it must never say "no" when a detector or a secret name could match, so it
# holds a literal that every detector's match and every secret name contains
# (lower-cased: a prefix such as "eyj", "akia", "sk-", a context such as
# "bearer", "://", "-----", or a name fragment such as "pass", "token", "auth").
# Every alternative starts with a literal character, which lets the regex
# engine skip positions with a one-byte class test: ~10x faster than the
# detectors themselves. tests/test_redact.py checks it against every detector.
_PRECHECK = re.compile(
    rb"a(?:uth|ws|pi|ccess|kia|sia|bia|cca|gpa|ida|roa|ipa|npa|nva|pka|iza)"
    rb"|b(?:earer|asic)|c(?:ookie|red)|p(?:ass|wd|rivate|k_)|s(?:ecret|k-|k_|g\.)|rk_"
    rb"|token|://|-----|eyj|gh[pousr]_|github_pat|glpat|xox|hf_|npm_"
)


def might_contain_secret(data: bytes) -> bool:
    """Fast check over encoded bytes: ``False`` means certainly nothing to redact."""
    return _PRECHECK.search(data.lower()) is not None


def find_secret(text: str) -> str | None:
    """The kind of the first secret found in ``text`` (``"JWT"`` ...), or ``None``."""
    for kind, regex, check in _COMPILED:
        for match in regex.finditer(text):
            if check is None or check(match):
                return kind
    return None


# ---------------------------------------------------------------------------- rules


class RuleSet:
    """Compiled ``redact=[...]`` rules: names, dotted paths and globs."""

    def __init__(self, rules: Iterable[str]) -> None:
        self.rules = tuple(rules)
        for rule in self.rules:
            if not isinstance(rule, str) or not rule.strip():
                raise ValueError(f"redact rule must be a non-empty string, got {rule!r}")
        self._exact = frozenset(r for r in self.rules if not any(c in r for c in "*?["))
        self._globs = tuple(r for r in self.rules if r not in self._exact)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, path: str) -> str | None:
        """The rule matching ``path`` (``"headers.Authorization"``), or ``None``."""
        if path in self._exact:
            return path
        for rule in self._globs:
            if fnmatch.fnmatchcase(path, rule):
                return rule
        return None


@lru_cache(maxsize=1024)
def _ruleset(rules: tuple[str, ...]) -> RuleSet:
    return RuleSet(rules)


# ---------------------------------------------------------------------------- walking


class Scrubber:
    """Walks a value and returns a copy with redacted parts replaced by markers.

    Containers are copied only where something changed. Dataclasses, attrs
    classes and named tuples are rebuilt with the redacted fields; any other
    object is checked through its encoded form and replaced as a whole when it
    holds a secret.
    """

    def __init__(
        self,
        rules: RuleSet | None,
        *,
        scan: bool,
        relative_to: str = "",
        taint: Sequence[str] = (),
    ) -> None:
        from .codec import Redacted

        self.rules = rules if rules else None
        # Walking a result ("return..."): rules also match the path below the root.
        self._strip = len(relative_to) + 1 if relative_to else 0
        self.scan = scan
        # Texts redacted from this call's inputs: wherever they show up again
        # (echoed in the result, an error message, a nested call) they go too.
        self.taint = tuple(taint)
        self.secrets = 0  # scanner hits
        self.rule_hits = 0
        #: the texts this walk replaced (the next walks' taint)
        self.removed: list[str] = []
        self._marker = Redacted

    def walk(self, value: Any, path: str, secret_name: str | None = None) -> Any:
        rules = self.rules
        if rules is not None:
            rule = rules.match(path)
            if rule is None and self._strip and len(path) > self._strip:
                rule = rules.match(path[self._strip :])
            if rule is not None:
                self.rule_hits += 1
                _collect_text(value, self.removed, 0)
                return self._marker(f"redact rule {rule!r}")
        if value is None or isinstance(value, (bool, int, float, complex)):
            return value
        if isinstance(value, str):
            return self._text(value, value, secret_name)
        if isinstance(value, (bytes, bytearray)):
            return self._text(value, bytes(value).decode("latin-1"), secret_name)
        if isinstance(value, dict):
            return self._mapping(value, path, secret_name)
        if isinstance(value, (list, tuple)):
            return self._sequence(value, path, secret_name)
        if isinstance(value, (set, frozenset)):
            items = [self.walk(item, f"{path}.*", secret_name) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return type(value)(items) if type(value) in (set, frozenset) else set(items)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            names = [f.name for f in dataclasses.fields(value) if f.init]
            return self._rebuild(value, path, secret_name, names, dataclasses.replace)
        if hasattr(type(value), "__attrs_attrs__"):
            import attr

            names = [a.name for a in type(value).__attrs_attrs__ if a.init]
            return self._rebuild(value, path, secret_name, names, attr.evolve)
        return self._leaf(value, secret_name)

    def _text(self, value: Any, text: str, secret_name: str | None) -> Any:
        if not text:
            return value
        if self.taint and _tainted(text, self.taint):
            self.secrets += 1
            self.removed.append(text)
            return self._marker("secret: a redacted input value")
        if not self.scan:
            return value
        if secret_name is not None:
            self.secrets += 1
            self.removed.append(text)
            return self._marker(f"secret: value named {secret_name!r}")
        kind = find_secret(text)
        if kind is not None:
            self.secrets += 1
            self.removed.append(text)
            return self._marker(f"secret: {kind}")
        return value

    def _child_secret(self, name: object, inherited: str | None) -> str | None:
        if inherited is not None:
            return inherited
        if self.scan and is_secret_name(name):
            return str(name)
        return None

    def _mapping(self, value: dict[Any, Any], path: str, secret_name: str | None) -> Any:
        changed = False
        items: list[tuple[Any, Any]] = []
        for key, item in value.items():
            new_key = key
            if isinstance(key, (str, bytes)) and self.scan:
                text = key if isinstance(key, str) else key.decode("latin-1")
                new_key = self._text(key, text, None)
            sub = f"{path}.{key}" if isinstance(key, str) else f"{path}.{key!r}"
            new_item = self.walk(item, sub, self._child_secret(key, secret_name))
            changed = changed or new_item is not item or new_key is not key
            items.append((new_key, new_item))
        if not changed:
            return value
        if type(value) is dict:
            return dict(items)
        try:
            copy = value.copy()
            copy.clear()
            copy.update(items)
            return copy
        except Exception:
            return dict(items)

    def _sequence(self, value: Sequence[Any], path: str, secret_name: str | None) -> Any:
        fields = getattr(type(value), "_fields", None) if isinstance(value, tuple) else None
        if fields is not None:
            items = [
                self.walk(item, f"{path}.{name}", self._child_secret(name, secret_name))
                for name, item in zip(fields, value, strict=False)
            ]
        else:
            items = [self.walk(item, f"{path}.{i}", secret_name) for i, item in enumerate(value)]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        if fields is not None:
            return type(value)(*items)
        return items if isinstance(value, list) else tuple(items)

    def _rebuild(
        self, value: Any, path: str, secret_name: str | None, names: list[str], rebuild: Any
    ) -> Any:
        changes = {}
        for name in names:
            try:
                old = getattr(value, name)
            except AttributeError:
                continue
            new = self.walk(old, f"{path}.{name}", self._child_secret(name, secret_name))
            if new is not old:
                changes[name] = new
        if not changes:
            return value
        try:
            return rebuild(value, **changes)
        except Exception:
            # Validation in __init__/__post_init__ rejects the marker: the whole
            # object goes, rather than any chance of the secret staying.
            return self._marker(f"secret in {type(value).__name__} (could not rebuild)")

    def _leaf(self, value: Any, secret_name: str | None) -> Any:
        if not self.scan and not self.taint:
            return value
        from . import codec

        data = codec.dumps(value)
        if self.taint and contains_tainted(data, self.taint):
            self.secrets += 1
            return self._marker(f"secret: a redacted input value in {type(value).__name__}")
        if not self.scan or not might_contain_secret(data):
            return value
        kind = _raw_secret(codec.loads_raw(data), secret_name, depth=0)
        if kind is None:
            return value
        self.secrets += 1
        return self._marker(f"secret: {kind} in {type(value).__name__}")


# Shorter tainted texts only match whole values: "pw" must not redact "pwned".
_TAINT_MIN = 4


def _tainted(text: str, taint: Sequence[str]) -> bool:
    for secret in taint:
        if text == secret or (len(secret) >= _TAINT_MIN and secret in text):
            return True
    return False


def contains_tainted(data: bytes, taint: Sequence[str]) -> bool:
    """Whether encoded ``data`` may hold one of the ``taint`` texts (cheap, may say yes wrongly)."""
    for secret in taint:
        encoded = secret.encode("utf-8", "surrogatepass")
        if encoded in data:
            return True
    return False


def _collect_text(value: Any, out: list[str], depth: int) -> None:
    if depth > 32:
        return
    if isinstance(value, str):
        if value:
            out.append(value)
    elif isinstance(value, (bytes, bytearray)):
        if value:
            out.append(bytes(value).decode("latin-1"))
    elif isinstance(value, dict):
        for item in value.values():
            _collect_text(item, out, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect_text(item, out, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _collect_text(getattr(value, f.name, None), out, depth + 1)


def _raw_secret(raw: Any, secret_name: str | None, depth: int) -> str | None:
    """Secret kind inside a raw msgpack tree (ext payloads unpacked when they are msgpack)."""
    import msgpack

    if depth > 64:
        return "deeply nested value"
    if isinstance(raw, (str, bytes)):
        text = raw if isinstance(raw, str) else raw.decode("latin-1")
        if not text:
            return None
        if secret_name is not None:
            return f"value named {secret_name!r}"
        return find_secret(text)
    if isinstance(raw, dict):
        for key, item in raw.items():
            name = secret_name or (str(key) if is_secret_name(key) else None)
            found = _raw_secret(key, None, depth + 1) or _raw_secret(item, name, depth + 1)
            if found:
                return found
        return None
    if isinstance(raw, (list, tuple)):
        for item in raw:
            found = _raw_secret(item, secret_name, depth + 1)
            if found:
                return found
        return None
    if isinstance(raw, msgpack.ExtType):
        try:
            inner = msgpack.unpackb(raw.data, raw=False, strict_map_key=False)
        except Exception:
            inner = raw.data
        return _raw_secret(inner, secret_name, depth + 1)
    return None


# ---------------------------------------------------------------------------- entry points


def scrub_inputs(
    spec: TraceSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    scan: bool,
    taint: Sequence[str] = (),
) -> tuple[list[Any], dict[str, Any], Scrubber]:
    """Apply ``spec.redact`` rules and (when ``scan``) the scanner to canonical inputs.

    Paths start with the parameter name; extra ``*args`` are ``<name>.<i>``.
    ``taint``: texts redacted from an enclosing call, redacted here too.
    """
    scrubber = Scrubber(_ruleset(spec.redact) if spec.redact else None, scan=scan, taint=taint)
    names = spec._arg_names
    var = spec._var_positional or "args"
    new_args = []
    for index, value in enumerate(args):
        name = names[index] if index < len(names) else f"{var}.{index - len(names)}"
        top = name.split(".", 1)[0]
        secret = top if scan and top in spec._secret_params else None
        new_args.append(scrubber.walk(value, name, secret))
    new_kwargs = {}
    for name, value in kwargs.items():
        secret = name if scan and (name in spec._secret_params or is_secret_name(name)) else None
        new_kwargs[name] = scrubber.walk(value, name, secret)
    return new_args, new_kwargs, scrubber


def scrub_value(
    value: Any, root: str, rules: tuple[str, ...], *, scan: bool, taint: Sequence[str] = ()
) -> tuple[Any, Scrubber]:
    """Redact a single value (a result, an error's args, metadata) under path ``root``.

    A rule matches the full path (``return.profile.ssn``) or the path below
    the root (``profile.ssn``), so a rule for an input also covers the same
    field in the result.
    """
    scrubber = Scrubber(
        _ruleset(rules) if rules else None, scan=scan, relative_to=root, taint=taint
    )
    return scrubber.walk(value, root), scrubber
