"""The result of a check: the verdict, and what explains it."""

from __future__ import annotations

import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._counterexample import Counterexample
from ._model import ResolvedModel
from ._ops import Operation, OpList

__all__ = [
    "CheckResult",
    "Explored",
    "LinearizabilityWarning",
    "NotLinearizableError",
    "PartitionStatus",
    "Verdict",
]

Verdict = Literal["ok", "illegal", "unknown"]


class LinearizabilityWarning(UserWarning):
    """Issued by ``assert_linearizable(..., on_unknown="warn")`` for an undecided check."""


class NotLinearizableError(AssertionError):
    """What ``assert_linearizable`` raises: the text is the explanation, ``result`` the
    ``CheckResult`` (the pytest plugin writes its HTML page from it)."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.explain())
        self.result = result


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """How far the search went in one partition."""

    key: Hashable
    ops: int
    verdict: str  # "ok", "illegal" or "undecided"
    configurations: int | None  # cache size, for an undecided partition
    steps: int
    furthest: int | None  # ops with a known result placed, in completion order
    known_ops: int


@dataclass(frozen=True, slots=True)
class Explored:
    """What the search did: steps, and each partition's status."""

    steps: int
    partitions: list[PartitionStatus]
    memory_estimate: int

    def summary(self) -> str:
        parts = self.partitions
        decided = [p for p in parts if p.verdict != "undecided"]
        lines = [
            f"{self.steps:,} search steps; {len(decided)} of {len(parts)} partition(s) decided"
            + (" (all linearizable)" if decided and all(p.verdict == "ok" for p in decided) else "")
        ]
        for p in parts:
            if p.verdict == "undecided":
                where = "" if p.key is None else f"partition {p.key!r}: "
                lines.append(
                    f"  {where}undecided after {p.configurations or 0:,} configurations; "
                    f"furthest point: op {p.furthest} of {p.known_ops} with a known result "
                    f"({p.ops} ops in all)"
                )
        return "\n".join(lines)


@dataclass(slots=True, eq=False)
class CheckResult:
    """What ``check_linearizable`` returns.

    ``verdict``: ``"ok"`` (linearizable), ``"illegal"`` (not), ``"unknown"``
    (undecided within the time or memory given; ``reason`` says which).
    ``linearization``: when ok, an order of the ops that took effect (ops with
    an unknown result that were not needed are left out);
    ``linearizations`` the same per partition. ``counterexample``: when
    illegal. ``seconds``: the check alone. ``str(result)`` explains it all.
    """

    verdict: Verdict
    model: str
    conventions: str
    ops: int
    seconds: float
    explored: Explored
    partitioned: bool
    linearization: list[Operation] | None = None
    linearizations: dict[Hashable, list[Operation]] | None = None
    counterexample: Counterexample | None = None
    reason: str = ""
    #: when ok: the model state after each linearized op, by op id
    states: dict[int, Any] | None = field(default=None, repr=False)
    oplist: OpList | None = field(default=None, repr=False)
    resolved_model: ResolvedModel | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def __bool__(self) -> bool:
        return self.verdict == "ok"

    @property
    def key(self) -> Hashable:
        """The partition the check failed in (``None`` when not illegal or not partitioned)."""
        cex = self.counterexample
        return cex.key if cex is not None and cex.partitioned else None

    def explain(self) -> str:
        """A text for a person: the counterexample, or what was explored."""
        head = (
            f"{self.ops} op(s), model {self.model}, {self.conventions} conventions, "
            f"checked in {self.seconds:.3f} s"
        )
        if self.verdict == "ok":
            return f"Linearizable: {head}."
        if self.verdict == "illegal":
            assert self.counterexample is not None
            return f"{self.counterexample}\n\n({head})"
        return (
            f"Linearizability unknown: {self.reason} ({head}); nothing is claimed either way.\n"
            + self.explored.summary()
            + "\nGive it more time (timeout=) or memory (max_memory=), or record a shorter history."
        )

    def __str__(self) -> str:
        return self.explain()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``check-history --json`` prints)."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "ops": self.ops,
            "seconds": self.seconds,
            "model": self.model,
            "conventions": self.conventions,
        }
        if self.reason:
            out["reason"] = self.reason
        cex = self.counterexample
        if cex is not None:
            out["op"] = {
                "process": cex.op.process,
                "invoke_index": cex.op.invoke_index,
                "complete_index": cex.op.complete_index,
                "op": cex.op_text,
            }
            if cex.partitioned:
                out["key"] = repr(cex.key)
        return out

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-contained interactive page (no network) and return its path.

        A directory (existing, or a path without a suffix) gets a file named
        ``linearizability.html`` in it.
        """
        from ._html import render

        target = Path(path)
        if target.is_dir() or (not target.suffix and not target.exists()):
            target.mkdir(parents=True, exist_ok=True)
            target = target / "linearizability.html"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(render(self), encoding="utf-8")
        os.replace(tmp, target)
        return target
