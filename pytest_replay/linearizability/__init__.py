"""Linearizability checking of Jepsen-style histories.

``check_linearizable(history, model)`` returns a ``CheckResult`` whose
``verdict`` is ``"ok"``, ``"illegal"`` (with a ``counterexample``) or
``"unknown"`` (out of time or memory: never a guess);
``assert_linearizable`` raises ``AssertionError`` with the counterexample.
Models live in ``pytest_replay.models``. Usable without pytest.
"""

from __future__ import annotations

from ._check import DEFAULT_MAX_MEMORY, assert_linearizable, check_linearizable
from ._counterexample import Candidate, Counterexample, Step
from ._model import ALL, Inconsistent, ModelError, OneOf
from ._ops import UNKNOWN, Operation
from ._result import (
    CheckResult,
    Explored,
    LinearizabilityWarning,
    NotLinearizableError,
    PartitionStatus,
)

__all__ = [
    "ALL",
    "DEFAULT_MAX_MEMORY",
    "UNKNOWN",
    "Candidate",
    "CheckResult",
    "Counterexample",
    "Explored",
    "Inconsistent",
    "LinearizabilityWarning",
    "ModelError",
    "NotLinearizableError",
    "OneOf",
    "Operation",
    "PartitionStatus",
    "Step",
    "assert_linearizable",
    "check_linearizable",
]
