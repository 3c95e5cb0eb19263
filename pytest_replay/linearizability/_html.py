"""A self-contained interactive page for a check result (inline CSS and JS, no network).

One row per process; each op is a bar from its invoke to its completion on a
compressed time axis (one column per event shown, so long idle gaps take no
room). The (longest partial) linearization is highlighted and numbered; a
slider steps through it; hovering an op shows its events, the state after it,
or why the model rejected it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from ._ops import Operation

if TYPE_CHECKING:
    from ._result import CheckResult

__all__ = ["render"]

_MAX_OPS = 2_000  # bars drawn; a browser stays responsive and the page small


def render(result: CheckResult) -> str:
    """The page for ``result`` as one HTML string."""
    payload = _payload(result)
    data = json.dumps(payload, ensure_ascii=True).replace("</", "<\\/")
    title = f"Linearizability: {result.verdict}"
    return _TEMPLATE.replace("{{title}}", html.escape(title)).replace("{{data}}", data)


def _payload(result: CheckResult) -> dict[str, Any]:
    model = result.resolved_model
    describe_op = model.describe_op if model is not None else Operation.describe
    describe_state = model.describe_state if model is not None else repr
    oplist = result.oplist
    events = oplist.events if oplist is not None else []
    all_ops = oplist.ops if oplist is not None else []
    roles: dict[int, str] = {}
    order: dict[int, int] = {}
    states: dict[int, str] = {}
    reasons: dict[int, str] = {}
    steps: list[dict[str, Any]] = []
    shown: Sequence[Operation]
    cex = result.counterexample
    key_text = ""
    if cex is not None:
        shown = cex.partition_ops
        key_text = repr(cex.key) if cex.partitioned else ""
        for n, st in enumerate(cex.prefix, 1):
            roles[st.op.id] = "prefix"
            order[st.op.id] = n
            states[st.op.id] = st.state_text
            steps.append({"op": st.op.id, "state": st.state_text})
        for cand in cex.candidates:
            roles[cand.op.id] = "candidate"
            reasons[cand.op.id] = cand.reason
        roles[cex.op.id] = "fail"
        reasons.setdefault(cex.op.id, "cannot be linearized here")
        shown = _clip(shown, cex.op, {c.op.id for c in cex.candidates})
    else:
        shown = all_ops[:_MAX_OPS]
        after = result.states or {}
        key_of = model.partition if model is not None and result.partitioned else None
        for n, op in enumerate(result.linearization or [], 1):
            roles[op.id] = "prefix"
            order[op.id] = n
            if op.id in after:
                # a partitioned model's state is the op's partition's state
                where = f"[{key_of(op)!r}] " if key_of is not None else ""
                states[op.id] = where + describe_state(after[op.id])
            steps.append({"op": op.id, "state": states.get(op.id, "")})
    positions = sorted({p for o in shown for p in (o.call, o.ret) if p is not None})
    column = {p: n for n, p in enumerate(positions)}
    processes = sorted({o.process for o in shown}, key=lambda p: (str(type(p)), p))
    row = {p: n for n, p in enumerate(processes)}
    ops_json = []
    for o in shown:
        done = "…" if o.complete_index is None else o.complete_index
        ops_json.append(
            {
                "id": o.id,
                "row": row[o.process],
                "x0": column[o.call],
                "x1": None if o.ret is None else column[o.ret],
                "label": describe_op(o),
                "events": f"{o.invoke_index}-{done}",
                "status": o.status if o.known else "unknown result",
                "role": roles.get(o.id, "other" if o.known else "unknown"),
                "order": order.get(o.id),
                "state": states.get(o.id),
                "reason": reasons.get(o.id),
            }
        )
    return {
        "verdict": result.verdict,
        "model": result.model,
        "conventions": result.conventions,
        "seconds": round(result.seconds, 6),
        "nops": result.ops,
        "key": key_text,
        "text": result.explain(),
        "processes": [f"p{p}" for p in processes],
        "columns": [events[p].index if p < len(events) else p for p in positions],
        "ops": ops_json,
        "steps": steps,
        "initial": cex.initial_text if cex is not None else "",
        "clipped": (len(cex.partition_ops) if cex is not None else len(all_ops)) > len(shown),
    }


def _clip(ops: Sequence[Operation], failing: Operation, keep: set[Hashable]) -> list[Operation]:
    """At most ``_MAX_OPS`` ops, the ones nearest before the failure, and the candidates."""
    end = failing.ret if failing.ret is not None else max(o.call for o in ops)
    early = [o for o in ops if o.call <= end]
    early.sort(key=lambda o: o.call)
    chosen = {o.id: o for o in early[-_MAX_OPS:]}
    for o in ops:
        if o.id in keep or o.id == failing.id:
            chosen[o.id] = o
    return sorted(chosen.values(), key=lambda o: o.call)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.ok { color: #1a7f37; } .illegal { color: #cf222e; } .unknown { color: #9a6700; }
.meta { color: #555; margin-bottom: 1em; }
#wrap { overflow-x: auto; border: 1px solid #ddd; border-radius: 6px; padding: 6px 0; }
svg text { font: 11px ui-monospace, monospace; }
.bar { stroke-width: 1; cursor: pointer; }
.bar.prefix { fill: #cfe3ff; stroke: #1f6feb; }
.bar.prefix.on { fill: #1f6feb; }
.bar.fail { fill: #ffd6d6; stroke: #cf222e; stroke-width: 2; }
.bar.candidate { fill: #fff1c2; stroke: #bf8700; }
.bar.other { fill: #eee; stroke: #999; }
.bar.unknown { fill: #f6f6f6; stroke: #aaa; stroke-dasharray: 3 2; }
.bar.hl { stroke: #000; stroke-width: 2; }
.rowlabel { fill: #444; }
.tick { fill: #888; }
#tip { position: fixed; pointer-events: none; background: #222; color: #fff; padding: 6px 8px;
  border-radius: 4px; font: 12px ui-monospace, monospace; max-width: 40em; white-space: pre-wrap;
  display: none; z-index: 2; }
#controls { margin: .8em 0; }
#stateout { font-family: ui-monospace, monospace; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border-radius: 6px; }
.legend span { display: inline-block; margin-right: 1.2em; }
.sw { display: inline-block; width: 1em; height: .8em; vertical-align: middle; margin-right: .3em;
  border: 1px solid #999; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div class="meta" id="meta"></div>
<div class="legend">
<span><i class="sw" style="background:#1f6feb"></i>linearized (numbered in order)</span>
<span><i class="sw" style="background:#ffd6d6;border-color:#cf222e"></i>cannot be linearized</span>
<span><i class="sw" style="background:#fff1c2;border-color:#bf8700"></i>candidate then</span>
<span><i class="sw" style="background:#f6f6f6;border-style:dashed"></i>unknown result</span>
</div>
<div id="controls"></div>
<div id="wrap"><svg id="svg" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="tip"></div>
<h2>Explanation</h2>
<pre id="text"></pre>
<script type="application/json" id="data">{{data}}</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var title = document.getElementById("title");
  title.textContent = D.verdict === "ok" ? "Linearizable" :
    D.verdict === "illegal" ? "Not linearizable" : "Undecided (unknown)";
  title.className = D.verdict;
  document.getElementById("meta").textContent = D.nops + " ops, model " + D.model + ", " +
    D.conventions + " conventions, checked in " + D.seconds + " s" +
    (D.key ? ", failed in partition " + D.key : "") +
    (D.clipped ? " (showing " + D.ops.length + " ops)" : "");
  document.getElementById("text").textContent = D.text;
  var colW = Math.max(8, Math.min(36, Math.floor(1400 / Math.max(1, D.columns.length))));
  var rowH = 26, left = 70, top = 24;
  var svg = document.getElementById("svg");
  var width = left + colW * (D.columns.length + 1) + 20;
  var height = top + rowH * D.processes.length + 10;
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    svg.appendChild(e);
    return e;
  }
  var every = Math.max(1, Math.ceil(40 / colW));
  D.columns.forEach(function (ix, c) {
    if (c % every === 0) {
      el("text", {x: left + c * colW, y: 12, "class": "tick"}, String(ix));
    }
  });
  D.processes.forEach(function (p, r) {
    el("text", {x: 4, y: top + r * rowH + 16, "class": "rowlabel"}, p);
    el("line", {x1: left, x2: width, y1: top + r * rowH + rowH - 2, y2: top + r * rowH + rowH - 2,
                stroke: "#f0f0f0"});
  });
  var tip = document.getElementById("tip");
  var bars = {};
  D.ops.forEach(function (o) {
    var x0 = left + o.x0 * colW + 2;
    var x1 = o.x1 === null ? width - 10 : left + o.x1 * colW + colW - 2;
    var y = top + o.row * rowH + 3;
    var r = el("rect", {x: x0, y: y, width: Math.max(4, x1 - x0), height: rowH - 8, rx: 3,
                        "class": "bar " + o.role});
    bars[o.id] = r;
    var label = (o.order ? "#" + o.order + " " : "") + o.label;
    var room = Math.floor((x1 - x0 - 6) / 6.6);
    if (room > 2) {
      el("text", {x: x0 + 3, y: y + 13, "pointer-events": "none"},
         label.length > room ? label.slice(0, room - 1) + "\\u2026" : label);
    }
    r.addEventListener("mousemove", function (ev) {
      var lines = [label, "events " + o.events + " (" + o.status + ")"];
      if (o.state !== null) { lines.push("state after: " + o.state); }
      if (o.reason !== null) { lines.push(o.reason); }
      tip.textContent = lines.join("\\n");
      tip.style.display = "block";
      tip.style.left = (ev.clientX + 14) + "px";
      tip.style.top = (ev.clientY + 14) + "px";
    });
    r.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  });
  if (D.steps.length) {
    var box = document.getElementById("controls");
    var lab = document.createElement("label");
    lab.textContent = "Step through the linearization: ";
    var slider = document.createElement("input");
    slider.type = "range"; slider.min = 0;
    slider.max = D.steps.length; slider.value = D.steps.length;
    var out = document.createElement("span");
    out.id = "stateout";
    lab.appendChild(slider); box.appendChild(lab); box.appendChild(out);
    var show = function () {
      var n = Number(slider.value);
      D.steps.forEach(function (s, i) {
        var b = bars[s.op];
        if (b) { b.classList.toggle("on", i < n); b.classList.toggle("hl", i === n - 1); }
      });
      var st = n ? D.steps[n - 1].state : D.initial;
      out.textContent = " " + n + " of " + D.steps.length + (st ? ", state: " + st : "");
    };
    slider.addEventListener("input", show);
    show();
  }
})();
</script>
</body>
</html>
"""
