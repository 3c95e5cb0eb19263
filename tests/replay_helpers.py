"""What the ``pytest --replay`` tests share: the pricing project, records as the
recorder would write them, cassettes, and running pytest in a pytester project.

Used by ``test_replay.py`` and ``test_replay_workflow.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_replay import codec
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.record import ErrorInfo, Record, record_id

PRICING = """
from pytest_replay import replay_trace

@replay_trace(boundary=True)
def rate(currency):
    raise RuntimeError("the network must not be called during a replay")

@replay_trace
def quote(sku, qty):
    total = qty * 10.0 * rate("EUR")
    return {"sku": sku, "total": total, "lines": [{"id": i, "qty": 1} for i in range(qty)]}
"""


def spec_of(fn: Any) -> Any:
    return getattr(fn, "__replay_spec__", None) or fn.__func__.__replay_spec__


def rec(
    fn: Any,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    result: Any = None,
    error: BaseException | None = None,
    children: list[Record] | None = None,
    meta: dict[str, Any] | None = None,
    unreplayable: str | None = None,
    target: str | None = None,
    key: str | None = None,
) -> Record:
    """A record as the recorder would write it for ``fn(*args, **kwargs)``."""
    spec = spec_of(fn)
    cargs, ckwargs = spec.bind(args, kwargs or {})
    key = key or spec.key
    return Record(
        id=record_id(key, codec.dumps([cargs, ckwargs])),
        key=key,
        target=target if target is not None else spec.target,
        args=cargs,
        kwargs=ckwargs,
        result=result,
        error=(
            ErrorInfo(
                f"{type(error).__module__}.{type(error).__qualname__}", str(error), error.args
            )
            if error is not None
            else None
        ),
        children=children or [],
        boundary=spec.boundary,
        meta=meta if meta is not None else {"duration_ms": 2.5},
        unreplayable=unreplayable,
    )


def write(directory: Path, records: list[Record], key: str | None = None) -> Path:
    key = key or records[0].key
    path = cassette_path(directory / "cassettes", key)
    path.parent.mkdir(parents=True, exist_ok=True)
    Cassette.create(path, key, [r.to_map() for r in records])
    return path


def load(pytester: pytest.Pytester, name: str, source: str) -> Any:
    """Write ``name.py`` into the test project and import it here (fresh)."""
    pytester.makepyfile(**{name: source})
    pytester.syspathinsert()
    sys.modules.pop(name, None)
    __import__(name)
    return sys.modules[name]


def quote_record(
    pricing: Any,
    sku: str,
    qty: int,
    *,
    rate: float = 1.5,
    total: float | None = None,
    currency: str = "EUR",
) -> Record:
    child = rec(pricing.rate, (currency,), result=rate)
    result = {
        "sku": sku,
        "total": qty * 10.0 * rate if total is None else total,
        "lines": [{"id": i, "qty": 1} for i in range(qty)],
    }
    return rec(pricing.quote, (sku, qty), result=result, children=[child])


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # hypothesis' plugin costs ~2 s per in-process run and is not needed here
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)
