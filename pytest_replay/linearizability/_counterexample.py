"""What a person needs to see why a history is not linearizable.

From the furthest configuration the search reached in the failing partition:
the op whose completion could not be reached, the longest linearizable
prefix with the model state after each step, every candidate that could have
come next with the model's reason for rejecting it, and a small window of the
history drawn per process with the original event indices.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._model import Inconsistent, OneOf, ResolvedModel
from ._ops import Operation, OpList
from ._partition import WHOLE
from ._search import PartitionSearch

__all__ = ["Candidate", "Counterexample", "Step", "build_counterexample", "timeline"]

_MAX_CANDIDATES = 12
_PREFIX_TAIL = 3  # prefix ops drawn in the window, besides the candidates
_MAX_WINDOW_OPS = 24
_PREFIX_SHOWN = 25  # prefix steps listed in the text (the HTML page shows them all)


@dataclass(frozen=True, slots=True)
class Step:
    """One op of the linearizable prefix and the model state after it."""

    op: Operation
    state: Any
    op_text: str
    state_text: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """An op that could have come next, and why it did not lead anywhere."""

    op: Operation
    op_text: str
    legal: bool
    reason: str


@dataclass(slots=True)
class Counterexample:
    """Why a history is not linearizable (``str()`` gives the full text)."""

    model: str
    key: Hashable
    partitioned: bool
    op: Operation
    op_text: str
    prefix: list[Step]
    state: Any
    state_text: str
    candidates: list[Candidate]
    window: list[Operation]
    window_start: int
    window_end: int
    partition_ops: list[Operation]
    known_ops: int
    #: when not 0: the counterexample covers only these many ops, a part of the
    #: history that is not linearizable even on its own
    restricted: int = 0
    initial_text: str = ""
    more_candidates: int = 0
    index_of: dict[int, int] = field(default_factory=dict)
    op_texts: dict[int, str] = field(default_factory=dict)

    def timeline(self) -> str:
        """The window of the history as a per-process ASCII timeline."""
        marks: dict[int, str] = {self.op.id: "<- cannot be linearized"}
        for n, step in enumerate(self.prefix, 1):
            marks.setdefault(step.op.id, f"#{n} of the prefix")
        for cand in self.candidates:
            marks.setdefault(cand.op.id, "candidate")
        return timeline(
            self.window, self.index_of, self.op_texts, marks, self.window_start, self.window_end
        )

    def __str__(self) -> str:
        lines: list[str] = []
        where = f" in partition {self.key!r}" if self.partitioned else ""
        lines.append(f"Not linearizable{where} (model {self.model}).")
        lines.append(f"Cannot linearize: {_op_line(self.op, self.op_text)}")
        if self.restricted:
            these = "This op is" if self.restricted == 1 else f"These {self.restricted} ops are"
            lines.append(
                f"({these} not linearizable even without the rest of the history, so the "
                "explanation below ignores the rest.)"
            )
        lines.append("")
        scope = "partition" if self.partitioned else "history"
        lines.append(
            f"Longest linearizable prefix: {len(self.prefix)} op(s) (the {scope} has "
            f"{self.known_ops} with a known result); state after each:"
        )
        if not self.prefix:
            lines.append(f"    (none: the initial state is {self.state_text})")
        shown = self.prefix[-_PREFIX_SHOWN:]
        width = max((len(_op_line(s.op, s.op_text)) for s in shown), default=0)
        skipped = len(self.prefix) - len(shown)
        if skipped:
            lines.append(f"    ... {skipped} earlier op(s) ...")
        for n, step in enumerate(shown, skipped + 1):
            line = _op_line(step.op, step.op_text)
            lines.append(f"  {n:>3}. {line:<{width}}  => {step.state_text}")
        lines.append("")
        lines.append(f"Then, in state {self.state_text}, every op that could come next fails:")
        for cand in self.candidates:
            lines.append(f"  - {_op_line(cand.op, cand.op_text)}: {cand.reason}")
        if self.more_candidates:
            lines.append(f"  ... and {self.more_candidates} more candidate(s)")
        lines.append("")
        lines.append("Timeline (columns are event indices):")
        lines.extend(("  " + row).rstrip() for row in self.timeline().splitlines())
        return "\n".join(lines)


def _op_line(op: Operation, text: str) -> str:
    done = "…" if op.complete_index is None else str(op.complete_index)
    return f"p{op.process} {text} [events {op.invoke_index}-{done}]"


def build_counterexample(
    search: PartitionSearch,
    oplist: OpList,
    model: ResolvedModel,
    *,
    whole: Sequence[Operation] | None = None,
) -> Counterexample:
    """The counterexample for a partition whose search ended illegal.

    ``whole``: the partition's ops, when ``search`` covered only some of them
    (a sub-history that is not linearizable by itself).
    """
    best = search.best
    steps = search.ops_of_path(best)
    L, state = best[-1]
    op = search.forced_op(L)
    assert op is not None, "an illegal search stops short of linearizing every known op"
    describe_op = model.describe_op
    describe_state = model.describe_state
    prefix = [Step(o, s, describe_op(o), describe_state(s)) for o, s in steps]
    cands_all = search.candidates_at(L)
    # the forced op first, then by invoke
    cands_all.sort(key=lambda o: (o is not op, o.call))
    candidates = [_candidate(c, state, model) for c in cands_all[:_MAX_CANDIDATES]]
    maker = None  # the op that set the current state
    for n in range(len(prefix) - 1, -1, -1):
        before = prefix[n - 1].state if n else search.init_state
        if prefix[n].state != before:
            maker = prefix[n].op
            break
    window, start, end = _window(op, [s.op for s in prefix], maker, cands_all, search.ops)
    events = oplist.events
    index_of = {
        pos: events[pos].index for o in window for pos in (o.call, o.ret) if pos is not None
    }
    return Counterexample(
        model=model.name,
        key=search.key,
        partitioned=search.key is not WHOLE,
        op=op,
        op_text=describe_op(op),
        prefix=prefix,
        state=state,
        state_text=describe_state(state),
        candidates=candidates,
        more_candidates=max(0, len(cands_all) - _MAX_CANDIDATES),
        window=window,
        window_start=start,
        window_end=end,
        partition_ops=list(search.ops),
        known_ops=search.n_known,
        restricted=len(search.ops) if whole is not None and len(whole) != len(search.ops) else 0,
        initial_text=describe_state(search.init_state),
        index_of=index_of,
        op_texts={o.id: describe_op(o) for o in window},
    )


def _candidate(op: Operation, state: Any, model: ResolvedModel) -> Candidate:
    text = model.describe_op(op)
    try:
        result = model.step(state, op)
    except Exception as exc:  # shown, not hidden: the search already called it without error
        return Candidate(op, text, False, f"the model raised {type(exc).__name__}: {exc}")
    unknown = "" if op.known else " (its result is unknown, so it may also never take effect)"
    if isinstance(result, Inconsistent):
        reason = result.reason or "the model says inconsistent"
        return Candidate(op, text, False, reason + unknown)
    if isinstance(result, OneOf):
        return Candidate(
            op,
            text,
            True,
            f"legal here ({len(result.states)} possible states), but no linearization "
            "continues from any of them" + unknown,
        )
    if not op.known and result == state:
        return Candidate(op, text, True, "would change nothing here" + unknown)
    return Candidate(
        op,
        text,
        True,
        f"legal here (state becomes {model.describe_state(result)}), but no linearization "
        "continues from there" + unknown,
    )


def _window(
    op: Operation,
    prefix: Sequence[Operation],
    maker: Operation | None,
    candidates: Sequence[Operation],
    partition_ops: Sequence[Operation],
) -> tuple[list[Operation], int, int]:
    """The few ops that explain the failure, and the stretch of time to draw.

    The failing op, its candidates, the last ops of the prefix and the one
    that set the current state (``maker``). Time runs from the earliest
    invoke among the failing op and those prefix ops to the failing op's
    completion; candidates invoked long before are drawn cut at the left edge.
    """
    assert op.ret is not None
    chosen: dict[int, Operation] = {op.id: op}
    for p in prefix[-_PREFIX_TAIL:]:
        chosen.setdefault(p.id, p)
    if maker is not None:
        chosen.setdefault(maker.id, maker)
    start = min(o.call for o in chosen.values())
    end = op.ret
    for c in candidates[:_MAX_CANDIDATES]:
        chosen.setdefault(c.id, c)
    # other ops of the partition wholly inside the window, while there is room
    for o in partition_ops:
        if len(chosen) >= _MAX_WINDOW_OPS:
            break
        if o.id not in chosen and o.call >= start and o.ret is not None and o.ret <= end:
            chosen[o.id] = o
    ops = sorted(chosen.values(), key=lambda o: (o.process, o.call))
    return ops, start, end


_TAGS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def timeline(
    ops: Sequence[Operation],
    index_of: dict[int, int],
    texts: dict[int, str],
    marks: dict[int, str] | None = None,
    start: int | None = None,
    end: int | None = None,
) -> str:
    """Draw ``ops`` as a per-process timeline, one column per event in ``[start, end]``.

    One row per process (a process runs one op at a time, so its ops share
    the row); each op is a bar tagged with a letter, and a legend below names
    the ops. ``[A===]`` spans an op's invoke to its completion, ``[A~~~>`` an
    op whose result is unknown (it may take effect any time after its invoke);
    ``<`` and ``>`` mark a bar cut at the edge of the window.
    """
    marks = marks or {}
    every = [p for o in ops for p in (o.call, o.ret) if p is not None]
    if not every:
        return ""
    lo = min(every) if start is None else start
    hi = max(every) if end is None else end
    positions = sorted({p for p in every if lo <= p <= hi} | {lo, hi})
    column = {p: n for n, p in enumerate(positions)}
    width = max(len(str(index_of.get(p, p))) for p in positions) + 1
    last = len(positions) - 1
    ordered = sorted(ops, key=lambda o: (o.process, o.call))
    tags = {o.id: _TAGS[n % len(_TAGS)] for n, o in enumerate(ordered)}
    # rows: (process, cells); a process gets a second row only if its ops overlap
    rows: list[tuple[int, list[str]]] = []
    spans: list[list[tuple[int, int]]] = []
    for o in ordered:
        fill = "=" if o.ret is not None else "~"
        cut_left = o.call < lo
        cut_right = o.ret is None or o.ret > hi
        a = 0 if cut_left else column[o.call]
        b = last if cut_right or o.ret is None else column[o.ret]
        row = next(
            (
                n
                for n, (p, _) in enumerate(rows)
                if p == o.process and all(b < x or a > y for x, y in spans[n])
            ),
            None,
        )
        if row is None:
            rows.append((o.process, [" " * width] * len(positions)))
            spans.append([])
            row = len(rows) - 1
        cells = rows[row][1]
        spans[row].append((a, b))
        bar = list((" " * (width - 1)) + ("<" if cut_left else "["))
        bar += list(fill * width * (b - a))
        if cut_left:
            bar = list("<" + fill * (width - 1)) + bar[width:]
        bar[-1] = ">" if cut_right else "]"
        opening = bar.index("<" if cut_left else "[")
        if opening + 1 < len(bar) - 1:
            bar[opening + 1] = tags[o.id]
        elif opening + 1 == len(bar) - 1:
            bar[opening] = tags[o.id]  # no room inside: the tag replaces the bracket
        text = "".join(bar)
        for c in range(a, b + 1):
            cells[c] = text[(c - a) * width : (c - a + 1) * width]
    label_width = max(len(f"p{p}") for p, _ in rows) + 1
    lines = [" " * label_width + "".join(str(index_of.get(p, p)).rjust(width) for p in positions)]
    for p, cells in rows:
        lines.append(f"p{p}".ljust(label_width) + "".join(cells).rstrip())
    lines.append("")
    texts_of = {o.id: f"p{o.process} {texts.get(o.id, o.describe())}" for o in ordered}
    text_width = min(max(len(t) for t in texts_of.values()), 60)
    for o in ordered:
        done = "…" if o.complete_index is None else o.complete_index
        mark = marks.get(o.id)
        lines.append(
            f"{tags[o.id]}  {texts_of[o.id]:<{text_width}}  [events {o.invoke_index}-{done}]"
            + (f"  {mark}" if mark else "")
        )
    return "\n".join(lines)
