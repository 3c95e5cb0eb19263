"""A deterministic day in the life of an orchestrator: the session the tests record.

Seeded, so the same code always makes the same calls in the same order.
"""

from __future__ import annotations

import random

from orchestrator import Orchestrator, OrchestratorError

REASONS = ("timeout", "out of memory", "bad input")


def run_day(orchestrator: Orchestrator, *, seed: int = 7, rounds: int = 30) -> list[str]:
    """Drive the orchestrator through ``rounds`` hours; returns the invariant violations seen."""
    rng = random.Random(seed)
    violations: list[str] = []
    submitted = 0
    for hour in range(rounds):
        for _ in range(rng.randint(0, 2)):
            submitted += 1
            # Producers retry too: now and then a key is submitted a second time.
            key = f"order-{rng.randint(max(1, submitted - 3), submitted)}"
            items = [f"item-{submitted}-{i}" for i in range(rng.randint(1, 3))]
            orchestrator.submit(key, items)
        if hour == 10:
            orchestrator.pause()  # the operator drains the pipeline for maintenance
        if hour == 13:
            orchestrator.resume()
        orchestrator.dispatch()
        for batch_id in list(orchestrator.in_flight):
            roll = rng.random()
            if roll < 0.4:
                orchestrator.complete(batch_id)
            elif roll < 0.8:
                orchestrator.fail(batch_id, rng.choice(REASONS))
        if hour == 5:
            try:  # an operator mistake: a recorded fault (and a state snapshot)
                orchestrator.complete("b9999")
            except OrchestratorError:
                pass
        if hour == 20 and orchestrator.dead_letter:
            orchestrator.requeue(orchestrator.dead_letter[0])
        if hour % 5 == 4:
            if not orchestrator.valid():
                violations.extend(f"hour {hour}: {p}" for p in orchestrator.problems())
            orchestrator.signature()
    orchestrator.status()
    return violations
