"""The ``Record`` type: one recorded call, as it is stored in a cassette.

A record is stored as a msgpack map (see docs/cassette-format.md). User values
(``args``, ``kwargs``, ``result``, error args, metadata) are encoded by
``pytest_replay.codec``; the record map itself only uses msgpack-native types,
so tools can read a cassette without importing anything of the user's code.

Field names on disk (the map keys) are part of the format:

=============  ==============================================================
``id``         content id: 16 hex chars, ``record_id(key, args, kwargs)``
``key``        the traced function's key (``module.qualname`` by default)
``target``     import path ``module:qualname`` of the traced function
``kind``       ``"call"`` (a traced function call) or ``"session"`` (a stateful object)
``args``       canonical positional arguments (``inspect.BoundArguments.args``)
``kwargs``     canonical keyword arguments (``inspect.BoundArguments.kwargs``)
``result``     the return value (present only when the call returned)
``error``      ``{"type": "pkg.mod.Error", "message": str, "args": [...]}``
               (present only when the call raised)
``children``   nested traced calls, in call order, as record maps
``boundary``   true when the function is a boundary (its result is replayed, not recomputed)
``meta``       ``{"duration_ms": float, "nodeid": str | None, "seed": int | None,
               "user": {...}}`` and other metadata; volatile, not part of the id
``unreplayable`` ``None`` or the reason the record cannot be replayed
=============  ==============================================================

Exactly one of ``result`` / ``error`` is present.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ErrorInfo", "Record", "record_id"]


def record_id(key: str, encoded_inputs: bytes) -> str:
    """The stable content id of a call: a hash of its key and its encoded inputs.

    ``encoded_inputs`` is ``codec.dumps([args, kwargs])``; because the codec's
    bytes are deterministic, the same call always gets the same id. This is
    also the idempotency key used to deduplicate recordings.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(key.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(encoded_inputs)
    return digest.hexdigest()


@dataclass(frozen=True)
class ErrorInfo:
    """A raised exception as recorded: type path, message and args."""

    type: str
    message: str
    args: tuple[Any, ...] = ()

    def to_map(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "args": list(self.args)}

    @classmethod
    def from_map(cls, data: Mapping[str, Any]) -> ErrorInfo:
        return cls(str(data["type"]), str(data["message"]), tuple(data.get("args") or ()))


_NO_RESULT: Any = object()


@dataclass
class Record:
    """One recorded call. Values may be raw (as read from disk) or decoded."""

    id: str
    key: str
    target: str
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any = _NO_RESULT
    error: ErrorInfo | None = None
    children: list[Record] = field(default_factory=list)
    boundary: bool = False
    kind: str = "call"
    meta: dict[str, Any] = field(default_factory=dict)
    unreplayable: str | None = None

    @property
    def has_result(self) -> bool:
        return self.result is not _NO_RESULT

    def to_map(self) -> dict[str, Any]:
        """The on-disk map (field order is fixed so bytes are deterministic)."""
        data: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "target": self.target,
            "kind": self.kind,
            "args": self.args,
            "kwargs": self.kwargs,
        }
        if self.error is not None:
            data["error"] = self.error.to_map()
        else:
            data["result"] = None if self.result is _NO_RESULT else self.result
        data["children"] = [child.to_map() for child in self.children]
        data["boundary"] = self.boundary
        data["meta"] = self.meta
        data["unreplayable"] = self.unreplayable
        return data

    @classmethod
    def from_map(cls, data: Mapping[str, Any]) -> Record:
        """Build a record from its on-disk map; raises ``KeyError``/``TypeError`` when malformed."""
        error = data.get("error")
        return cls(
            id=str(data["id"]),
            key=str(data["key"]),
            target=str(data.get("target", "")),
            args=list(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            result=data["result"] if "result" in data else _NO_RESULT,
            error=ErrorInfo.from_map(error) if error is not None else None,
            children=[cls.from_map(child) for child in data.get("children") or ()],
            boundary=bool(data.get("boundary", False)),
            kind=str(data.get("kind", "call")),
            meta=dict(data.get("meta") or {}),
            unreplayable=data.get("unreplayable"),
        )
