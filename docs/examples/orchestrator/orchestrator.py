"""A pipeline orchestrator: the worked example of stateful sessions (docs/orchestrator.md).

Batches of work items are submitted with an idempotency key and get a sequence
number. At most ``max_in_flight`` batches run at once (backpressure: the rest
wait in the queue, in sequence order). A failed batch is retried until it has
failed ``max_attempts`` times, then it goes to the dead-letter queue. An
operator can pause and resume dispatching, and requeue a dead batch.

``@replay_trace`` on the class records one session per instance: the
constructor arguments, then every public method call with its outcome.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pytest_replay import replay_trace

RETRY = "retry"
DEAD_LETTER = "dead-letter"


class OrchestratorError(Exception):
    """An operation that is not allowed in the current state."""


def retry_decision(attempts: int, max_attempts: int) -> str:
    """The retry policy: retry until a batch has failed ``max_attempts`` times."""
    return DEAD_LETTER if attempts >= max_attempts else RETRY


@replay_trace
class Orchestrator:
    def __init__(self, max_in_flight: int = 2, max_attempts: int = 3) -> None:
        if max_in_flight < 1 or max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.next_seq = 1
        self.batches: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}  # idempotency key -> batch id
        self.queue: list[str] = []  # waiting, in sequence order
        self.in_flight: list[str] = []
        self.done: list[str] = []
        self.dead_letter: list[str] = []
        self.paused = False

    # ------------------------------------------------------------------ producers

    def submit(self, idempotency_key: str, items: list[str]) -> dict[str, Any]:
        """Queue a batch; the same key submitted again returns the first batch."""
        if idempotency_key in self.keys:
            batch_id = self.keys[idempotency_key]
            return {"batch": batch_id, "seq": self.batches[batch_id]["seq"], "duplicate": True}
        if not items:
            raise OrchestratorError("a batch needs at least one item")
        seq = self.next_seq
        self.next_seq += 1
        batch_id = f"b{seq:04d}"
        self.batches[batch_id] = {
            "key": idempotency_key,
            "seq": seq,
            "items": list(items),
            "attempts": 0,
            "state": "queued",
            "errors": [],
        }
        self.keys[idempotency_key] = batch_id
        self.queue.append(batch_id)
        return {"batch": batch_id, "seq": seq, "duplicate": False}

    # ------------------------------------------------------------------ workers

    def dispatch(self) -> list[str]:
        """Start queued batches up to the in-flight limit; nothing while paused."""
        if self.paused:
            return []
        started = []
        while self.queue and len(self.in_flight) < self.max_in_flight:
            batch_id = self.queue.pop(0)
            batch = self.batches[batch_id]
            batch["state"] = "running"
            batch["attempts"] += 1
            self.in_flight.append(batch_id)
            started.append(batch_id)
        return started

    def _running(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise OrchestratorError(f"unknown batch {batch_id}")
        if batch_id not in self.in_flight:
            raise OrchestratorError(f"batch {batch_id} is not in flight (it is {batch['state']})")
        return batch

    def complete(self, batch_id: str) -> dict[str, Any]:
        batch = self._running(batch_id)
        self.in_flight.remove(batch_id)
        batch["state"] = "done"
        self.done.append(batch_id)
        return {"batch": batch_id, "attempts": batch["attempts"]}

    def fail(self, batch_id: str, reason: str) -> str:
        """A run of the batch failed: retry it, or dead-letter it after too many attempts."""
        batch = self._running(batch_id)
        self.in_flight.remove(batch_id)
        batch["errors"].append(reason)
        decision = retry_decision(batch["attempts"], self.max_attempts)
        if decision == RETRY:
            batch["state"] = "queued"
            self._enqueue(batch_id)
        else:
            batch["state"] = "dead"
            self.dead_letter.append(batch_id)
        return decision

    def _enqueue(self, batch_id: str) -> None:
        # A retried batch keeps its place: the queue stays in sequence order.
        seq = self.batches[batch_id]["seq"]
        position = 0
        while position < len(self.queue) and self.batches[self.queue[position]]["seq"] < seq:
            position += 1
        self.queue.insert(position, batch_id)

    # ------------------------------------------------------------------ operators

    def pause(self) -> bool:
        """Stop dispatching (running batches finish); returns whether it was running."""
        was_running = not self.paused
        self.paused = True
        return was_running

    def resume(self) -> list[str]:
        """Dispatch again; returns the batches started right away."""
        self.paused = False
        return self.dispatch()

    def requeue(self, batch_id: str) -> int:
        """Give a dead batch a fresh set of attempts; returns its sequence number."""
        if batch_id not in self.dead_letter:
            raise OrchestratorError(f"batch {batch_id} is not in the dead-letter queue")
        self.dead_letter.remove(batch_id)
        batch = self.batches[batch_id]
        batch["attempts"] = 0
        batch["state"] = "queued"
        self._enqueue(batch_id)
        return int(batch["seq"])

    # ------------------------------------------------------------------ observers

    def status(self) -> dict[str, Any]:
        return {
            "queued": len(self.queue),
            "in_flight": len(self.in_flight),
            "done": len(self.done),
            "dead_letter": len(self.dead_letter),
            "paused": self.paused,
        }

    def signature(self) -> str:
        """A stable hash of the whole state: equal states, equal signatures."""
        state = {
            "batches": self.batches,
            "queue": self.queue,
            "in_flight": self.in_flight,
            "done": self.done,
            "dead_letter": self.dead_letter,
            "paused": self.paused,
            "next_seq": self.next_seq,
        }
        text = json.dumps(state, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def problems(self) -> list[str]:
        """Every broken invariant, as text (empty when the state is valid)."""
        found = []
        if len(self.in_flight) > self.max_in_flight:
            found.append(f"{len(self.in_flight)} in flight, limit {self.max_in_flight}")
        places = {"queued": self.queue, "running": self.in_flight, "done": self.done,
                  "dead": self.dead_letter}  # fmt: skip
        for batch_id, batch in self.batches.items():
            homes = [state for state, ids in places.items() if batch_id in ids]
            if homes != [batch["state"]]:
                found.append(f"{batch_id} is {batch['state']} but listed in {homes}")
            if batch["attempts"] > self.max_attempts:
                found.append(f"{batch_id} ran {batch['attempts']} times, max {self.max_attempts}")
            if batch["state"] == "dead" and batch["attempts"] < self.max_attempts:
                found.append(f"{batch_id} dead after only {batch['attempts']} attempts")
            if self.keys.get(batch["key"]) != batch_id:
                found.append(f"{batch_id}: idempotency key {batch['key']!r} maps elsewhere")
        seqs = [self.batches[b]["seq"] for b in self.queue]
        if seqs != sorted(seqs):
            found.append(f"queue out of sequence order: {seqs}")
        if sorted(b["seq"] for b in self.batches.values()) != list(range(1, self.next_seq)):
            found.append("sequence numbers are not 1..n without gaps")
        return found

    def valid(self) -> bool:
        return not self.problems()
