import time

from pytest_replay import replay_trace


@replay_trace(boundary=True)
def now() -> float:
    return time.time()


@replay_trace
def quote(sku: str, qty: int) -> dict:
    unit = 9.5 if qty >= 10 else 10.0
    return {"sku": sku, "qty": qty, "total": unit * qty, "valid_until": now() + 3600}
