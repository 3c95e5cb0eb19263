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

The scanner first looks at the *encoded* bytes for a trigger, a literal that
every secret shape and secret name holds (:func:`might_contain_secret`, "the
pre-check" below): almost every value has none, and one ``bytes.translate()``
plus one C-level regex search is far cheaper than walking the value. Only on
a possible hit is the value walked and checked precisely.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import fnmatch
import itertools
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

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


def _named_value(match: re.Match[str]) -> bool:
    # "<name>=<value>" / "<name>": "<value>" in text: a secret when the name is
    # one (the same rule as for parameters and mapping keys). So every match
    # holds a secret name, hence a pre-check trigger.
    if not is_secret_name(match.group("n")):
        return False
    value = match.group("s") or ""
    return bool(value.strip(" \\"))

#: (kind, pattern, validator): the scanner's catalogue of secret shapes.
DETECTORS: tuple[tuple[str, str, Any], ...] = (
    ("private key block", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----", None),
    ("JWT", r"\beyJ[A-Za-z0-9_-]{9,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{4,}", None),
    ("bearer token", r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9\-._~+/]{8,}=*)", None),
    (
        "basic auth credentials",
        r"(?i)\bbasic\s+(?P<s>[A-Za-z0-9+/]{6,}={0,2})",
        _basic_credentials,
    ),
    (
        "AWS access key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
        None,
    ),
    (
        "AWS secret key",
        r"(?i)aws.{0,30}?(?:secret|private).{0,30}?(?P<s>[A-Za-z0-9/+]{40})",
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
    ("password in URL", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+:(?P<s>[^\s/@]+)@", None),
    # Query strings, form bodies, "key=value" text: any name that is a secret
    # name. These two match with zero width (all in a lookahead) so that a
    # name the validator turns down never hides the next name from finditer.
    (
        "secret in query string",
        r"(?:^|(?<=[?&;,\s]))(?=(?P<n>[A-Za-z0-9_.\-\[\]]{1,64})=(?P<s>[^&\s]+))",
        _named_value,
    ),
    # A request body or config passed as JSON (or Python repr) *text*:
    # "password": "...", also escaped once more inside another JSON string.
    (
        "secret in JSON text",
        r"(?=(?P<q>\\*[\"'])(?P<n>[^\"'\\\r\n]{1,64})(?P=q)\s*:\s*"
        r"(?P=q)(?P<s>(?:(?!(?P=q))[^\r\n])+))",
        _named_value,
    ),
    (
        "authorization header",
        r"(?i)\b(?:authorization|proxy-authorization|x-api-key|api-key)\s*[:=]\s*"
        r"(?P<s>\S+(?:[ \t]+\S{8,})?)",
        None,
    ),
)

_COMPILED = tuple((kind, re.compile(pattern), check) for kind, pattern, check in DETECTORS)

# ---------------------------------------------------------------------------- the pre-check
#
# Run over the encoded bytes of every recorded value, so it must be cheap. It
# may say "maybe" for harmless data (the value is then walked and checked
# precisely); it must never say "no" when a detector or a secret name could
# match. It looks for literal *triggers*: every detector match and every
# secret name contains one.

#: ``(text, any_case)``: ``any_case`` triggers match in any ASCII case (the
#: ``(?i)`` detectors, secret names), the others only as written. Derived from
#: DETECTORS and the name rules by hand, grouped by where they come from;
#: tests/test_redact_precheck.py checks that every match of every detector and
#: every secret name holds one.
_TRIGGERS: tuple[tuple[str, bool], ...] = (
    # Secret names (each word and joined fragment of the name rules holds one),
    # the names in "secret in query string" and "authorization header", "AWS
    # secret key" (secret|private) and "private key block" (PRIVATE KEY).
    *(
        (word, True)
        for word in ("pass", "pwd", "secret", "token", "auth", "cred", "cookie", "api", "access")
    ),
    ("private", True),
    ("bearer", True),  # bearer token
    ("basic", True),  # basic auth credentials
    ("eyJ", False),  # JWT
    # AWS access key
    *((f"A{p}", False) for p in ("KIA", "SIA", "BIA", "CCA", "GPA", "IDA", "ROA", "IPA", "NPA")),
    ("ANVA", False),
    ("APKA", False),
    ("sk-", False),  # API key (sk-)
    ("k_live_", False),  # Stripe key
    ("k_test_", False),
    *((f"gh{c}_", False) for c in "pousr"),  # GitHub token
    ("github_pat_", False),
    ("glpat-", False),  # GitLab token
    *((f"xox{c}-", False) for c in "abposr"),  # Slack token
    ("AIza", False),  # Google API key
    ("hf_", False),  # Hugging Face token
    ("npm_", False),  # npm token
    ("SG.", False),  # SendGrid key
    ("://", False),  # password in URL
    # Characters that (?i) matching or str.lower() equate with an ASCII letter
    # (long s ~ s, dotted and dotless I ~ i, Kelvin sign ~ k): a secret spelled
    # with one holds no ASCII trigger, so the character itself is a trigger.
    ("\u017f", False),
    ("\u0130", False),
    ("\u0131", False),
    ("\u212a", False),
)

# Why it is built this way: a regex alternation of the triggers is tried at
# every position starting with one of their first letters (most letters), ~10
# ns per byte. Instead one bytes.translate() folds ASCII case and maps a few
# *anchor* bytes, rare letters of which every trigger has one (in both cases
# when the trigger is any_case), to one marker byte; the regex then starts
# with that literal marker, which the engine finds with a plain byte loop,
# and checks the rest of a trigger only there (~25 ns per marker).
_MARK = 0xC1  # never written by msgpack (and not valid UTF-8)
#: The bin header bytes: the recorder deletes them in the same translate() (trace.py).
BIN_HEADERS = b"\xc4\xc5\xc6"
#: What the anchors become in the translated view.
MARKER = bytes((_MARK,))


def _trigger_bytes(text: str, any_case: bool) -> list[frozenset[int]]:
    """Per byte of a trigger, the bytes that may stand there."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if any_case and char.isascii() and char.isalpha():
            out.append(frozenset(char.lower().encode() + char.upper().encode()))
        else:
            out.append(frozenset((byte,)))
    return out


class Precheck(NamedTuple):
    """One build of the pre-check: a translate table and its marker patterns.

    ``marked`` is searched in ``data.translate(table, BIN_HEADERS)`` when that
    deleted nothing, ``marked_full`` in ``data.translate(table)``. No match
    means no trigger; a match may be none (anchors share the marker), which
    :func:`confirm_marked` decides.
    """

    anchors: bytes
    table: bytes
    marked: re.Pattern[bytes]
    marked_full: re.Pattern[bytes]


def _precheck(anchors: bytes) -> Precheck:
    table = bytearray(range(256))
    table[ord("A") : ord("Z") + 1] = table[ord("a") : ord("z") + 1]
    table[_MARK] = 0xC0  # so that the marker always stands for an anchor
    for byte in anchors:
        table[byte] = _MARK
    # Bytes that stand in no trigger all become one, so that values differing
    # only there (digits, numbers' bytes, msgpack headers) give the same view:
    # the recorder remembers views it found clean (trace.py).
    kept = {
        table[b] for text, any_case in _TRIGGERS for o in _trigger_bytes(text, any_case) for b in o
    }
    for byte in range(256):
        if table[byte] != _MARK and table[byte] not in kept:
            table[byte] = 0
    final = bytes(table)
    return Precheck(
        anchors,
        final,
        _marker_pattern(anchors, final, BIN_HEADERS),
        _marker_pattern(anchors, final, b""),
    )


def _translated(table: bytes, allowed: frozenset[int]) -> bytes:
    mapped = sorted({table[byte] for byte in allowed})
    if len(mapped) == 1:
        return re.escape(bytes(mapped))
    return b"[" + b"".join(re.escape(bytes((byte,))) for byte in mapped) + b"]"


def _marker_pattern(anchors: bytes, table: bytes, without: bytes) -> re.Pattern[bytes]:
    # Each trigger becomes: the marker (its anchor), the bytes after the
    # anchor, then, unless the anchor is its first byte, a look back at the
    # whole trigger. The bytes after the anchors are laid out as a trie so
    # that the engine's branch test at a marker is a few byte comparisons.
    # Triggers holding only bytes of ``without`` are left out (the recorder
    # searches data without bin header bytes with ``marked``).
    paths: list[tuple[bytes, tuple[bytes, ...]]] = []  # (bytes after the marker, look-behind)
    for text, any_case in _TRIGGERS:
        allowed = _trigger_bytes(text, any_case)
        if any(options <= frozenset(without) for options in allowed):
            continue
        anchored = [
            # prefer an anchor with bytes after it (a bare look-behind is
            # tried at every marker), then the earliest listed anchor
            (index == len(allowed) - 1, min(anchors.index(byte) for byte in options), index)
            for index, options in enumerate(allowed)
            if all(table[byte] == _MARK for byte in options)
        ]
        if not anchored:
            raise RuntimeError(f"pre-check trigger {text!r} holds no anchor byte")
        index = min(anchored)[2]
        behind = tuple(_translated(table, o) for o in allowed) if index else ()
        after = [sorted({table[byte] for byte in options}) for options in allowed[index + 1 :]]
        paths.extend((bytes(combo), behind) for combo in itertools.product(*after))
    return re.compile(re.escape(bytes((_MARK,))) + _trie(paths))


def _trie(paths: list[tuple[bytes, tuple[bytes, ...]]]) -> bytes:
    if any(not rest and not behind for rest, behind in paths):
        return b""  # a trigger ends here: the rest can only match less
    children: dict[int, list[tuple[bytes, tuple[bytes, ...]]]] = {}
    for rest, behind in paths:
        if rest:
            children.setdefault(rest[0], []).append((rest[1:], behind))
    alternatives = [re.escape(bytes((b,))) + _trie(children[b]) for b in sorted(children)]
    ends = sorted({behind for rest, behind in paths if not rest})
    if len(ends) > 1 and min(map(len, ends)) >= 3:
        # Look-behinds are tried one by one and cost more than a byte
        # test: several become one, over their last bytes (still every
        # trigger, a few more harmless matches).
        width = min(map(len, ends))
        lasts = sorted({b"".join(end[-width:]) for end in ends})
        alternatives.append(b"(?<=" + b"|".join(lasts) + b")")
    else:
        alternatives.extend(b"(?<=" + b"".join(end) + b")" for end in ends)
    if len(alternatives) == 1:
        return alternatives[0]
    return b"(?:" + b"|".join(alternatives) + b")"


#: Two builds that differ in where "auth" (and GitHub / Hugging Face tokens)
#: is anchored: on "u" (and "g", "f"), or on "h". Which one finds fewer
#: markers depends on the data: English prose is full of "h", keys and codes
#: of business data of "u" (sku, unit, customer, currency). The recorder
#: picks one per traced function from the values it sees (trace.py); both
#: find every trigger, and :func:`might_contain_secret` uses the first.
PRECHECKS = (
    _precheck(b"JAG:xkKfbBgpPuUcC\xe2\xc4\xc5"),
    _precheck(b"JAG:xkKhHbBpPcC\xe2\xc4\xc5"),
)
_EXACT_CASE = re.compile(
    b"|".join(re.escape(text.encode("utf-8")) for text, any_case in _TRIGGERS if not any_case)
)
_ANY_CASE = re.compile(
    b"|".join(re.escape(text.encode("ascii")) for text, any_case in _TRIGGERS if any_case)
)
_LONGEST = max(len(text.encode("utf-8")) for text, _ in _TRIGGERS)


def has_trigger(data: bytes) -> bool:
    """Whether ``data`` holds a trigger (exact, but slower than the marker search)."""
    return _EXACT_CASE.search(data) is not None or _ANY_CASE.search(data.lower()) is not None


def confirm_marked(data: bytes, marked: bytes, match: re.Match[bytes] | None) -> bool:
    """Whether one of the marker matches in ``marked`` is a real trigger in ``data``.

    ``marked`` is ``data`` translated (positions unchanged) and ``match`` the
    first match of the marker pattern in it. Every trigger in ``data`` is a
    marker match at its anchor, so checking the bytes around each match
    exactly (a trigger through the anchor lies within ``_LONGEST`` bytes of
    it) decides without an exact scan of all of ``data``.
    """
    pattern = match.re if match is not None else None
    while match is not None and pattern is not None:
        at = match.start()
        if has_trigger(data[max(0, at - _LONGEST + 1) : at + _LONGEST]):
            return True
        match = pattern.search(marked, at + 1)
    return False


def might_contain_secret(data: bytes, precheck: Precheck = PRECHECKS[0]) -> bool:
    """Fast check over encoded bytes: ``False`` means certainly nothing to redact."""
    marked = data.translate(precheck.table)
    match = precheck.marked_full.search(marked)
    return match is not None and confirm_marked(data, marked, match)


def find_secret(text: str) -> str | None:
    """The kind of the first secret found in ``text`` (``"JWT"`` ...), or ``None``."""
    for kind, regex, check in _COMPILED:
        for match in regex.finditer(text):
            if check is None or check(match):
                return kind
    return None


# A whitespace-separated piece of a found secret this long taints on its own.
_PIECE_MIN = 8


def secret_parts(text: str) -> list[str]:
    """The secrets the detectors find in ``text``, as substrings.

    A value redacted for holding a secret taints the rest of its record (see
    :class:`Scrubber`): these parts are what an echo of the secret holds
    without the text around it: the token of ``Bearer <token>``, the password
    of a JSON body or a form, the password of a URL. Only run on values being
    redacted anyway, so its cost does not matter.
    """
    parts: list[str] = []
    for _kind, regex, check in _COMPILED:
        named = "s" in regex.groupindex
        for match in regex.finditer(text):
            if check is not None and not check(match):
                continue
            found = ((match.group("s") if named else None) or match.group(0)).rstrip("\\")
            if not found:
                continue
            parts.append(found)
            if named:
                parts.extend(p for p in found.split() if len(p) >= _PIECE_MIN and p != found)
    return parts


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
            self.removed.extend(secret_parts(text))
            return self._marker(f"secret: value named {secret_name!r}")
        kind = find_secret(text)
        if kind is not None:
            self.secrets += 1
            self.removed.append(text)
            # The secret alone taints too: an echo rarely repeats the whole text.
            self.removed.extend(secret_parts(text))
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
        if not secret.isascii():
            # Texts taken from bytes values are their latin-1 decoding.
            try:
                if secret.encode("latin-1") in data:
                    return True
            except UnicodeEncodeError:
                pass
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


# ---------------------------------------------------------------------------- echoes

#: What a value holding an echoed secret becomes (its text names no secret).
ECHO_REASON = "secret: a redacted input value"


class _EchoWalker:
    """Replaces, in a raw record map (plain msgpack tree), every value holding a taint text."""

    def __init__(self, taint: Sequence[str]) -> None:
        import msgpack

        from . import codec

        self.taint = taint
        self.hits = 0
        self.marker: Any = msgpack.unpackb(codec.dumps(codec.Redacted(ECHO_REASON)))
        self._redacted_code = self.marker.code
        self._ext = msgpack.ExtType

    def record(self, record: dict[Any, Any], depth: int = 0) -> None:
        """Scrub one record map in place (its children too); recompute its id if inputs changed."""
        inputs_changed = False
        for name in ("args", "kwargs"):
            if name in record:
                new = self.value(record[name], depth)
                if new is not record[name]:
                    record[name] = new
                    inputs_changed = True
        if "result" in record:
            record["result"] = self.value(record["result"], depth)
        error = record.get("error")
        if isinstance(error, dict):
            if "args" in error:
                error["args"] = self.value(error["args"], depth)
            message = error.get("message")
            if isinstance(message, str) and _tainted(message, self.taint):
                self.hits += 1
                error["message"] = f"[redacted: {ECHO_REASON}]"
        meta = record.get("meta")
        if isinstance(meta, dict) and "user" in meta:
            meta["user"] = self.value(meta["user"], depth)
        reason = record.get("unreplayable")
        if isinstance(reason, str) and _tainted(reason, self.taint):
            self.hits += 1
            record["unreplayable"] = f"[redacted: {ECHO_REASON}]"
        children = record.get("children")
        if isinstance(children, list) and depth < 64:
            for child in children:
                if isinstance(child, dict):
                    self.record(child, depth + 1)
        key = record.get("key")
        if inputs_changed and isinstance(key, str):
            import msgpack

            from .record import record_id

            inputs = msgpack.packb([record.get("args", []), record.get("kwargs", {})])
            record["id"] = record_id(key, inputs)

    def value(self, value: Any, depth: int) -> Any:
        if isinstance(value, (str, bytes)):
            text = value if isinstance(value, str) else value.decode("latin-1")
            if text and _tainted(text, self.taint):
                self.hits += 1
                return self.marker
            return value
        if depth > 64:
            return value
        if isinstance(value, list):
            items = [self.value(item, depth + 1) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return items
        if isinstance(value, dict):
            pairs = [(self.value(k, depth + 1), self.value(v, depth + 1)) for k, v in value.items()]
            if all(
                nk is k and nv is v for (nk, nv), (k, v) in zip(pairs, value.items(), strict=True)
            ):
                return value
            return dict(pairs)
        if isinstance(value, self._ext) and value.code != self._redacted_code:
            # A tuple, dataclass, opaque marker ...: replaced whole when it holds
            # the secret anywhere, as the scanner does with objects.
            import msgpack

            try:
                inner = msgpack.unpackb(value.data, raw=False, strict_map_key=False)
            except Exception:
                inner = value.data
            hits = self.hits
            self.value(inner, depth + 1)
            if self.hits != hits:
                self.hits = hits + 1
                return self.marker
        return value


def scrub_record(payload: bytes, taint: Sequence[str]) -> tuple[bytes, int, str | None]:
    """Redact every echo of the ``taint`` texts from an encoded record.

    The recorder's last guard for a record holding redacted secrets: a secret
    redacted from any input of the call tree (this call's, its caller's, a
    nested call's) is searched for, as an exact substring, in every value of
    the record as written: the inputs, the result, the error's message and
    args, the nested calls, the user metadata. A value holding one becomes a
    ``Redacted`` marker. Returns the new payload, the number of values
    replaced and the record's id (recomputed when its inputs changed).
    """
    import msgpack

    try:
        record = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        return payload, 0, None
    if not isinstance(record, dict):
        return payload, 0, None
    walker = _EchoWalker(taint)
    walker.record(record)
    if not walker.hits:
        return payload, 0, None
    new_id = record.get("id")
    return (
        msgpack.packb(record, use_bin_type=True),
        walker.hits,
        new_id if isinstance(new_id, str) else None,
    )
