"""Child program for the crash test: records in a loop and says what it flushed.

    python -m hardening_helpers.crashchild DIR START [--batches N] [--kill-after-bytes N]

Records calls of two traced functions (``crash.small``: a few bytes per record;
``crash.big``: ~2 KB per record, so appends take long enough to be torn) into
``DIR`` through :class:`pytest_replay.trace.RecordingSession`, flushing after
every batch of calls. After each flush returns (the records are fsynced) it
prints ``flushed FIRST LAST``: the inputs ``FIRST..LAST`` of both functions are
on disk. ``ready`` is printed once recording has started.

Without ``--batches`` it loops until killed. ``--kill-after-bytes N`` makes the
first append SIGKILL this process after writing N bytes of it, so the crash
lands inside a frame at a chosen offset.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import sys
from typing import Any

BATCH = 10


def _kill_inside_append(limit: int) -> None:
    """The first cassette append writes ``limit`` bytes, then the process dies."""
    real_open = pathlib.Path.open

    class Tearing:
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def write(self, data: Any) -> int:
            self._stream.write(bytes(data[:limit]))
            self._stream.flush()
            os.kill(os.getpid(), signal.SIGKILL)
            raise AssertionError("unreachable")  # pragma: no cover

        def __getattr__(self, name: str) -> Any:
            return getattr(self._stream, name)

        def __enter__(self) -> Tearing:
            return self

        def __exit__(self, *exc: object) -> None:
            self._stream.close()

    def tearing_open(self: pathlib.Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        stream = real_open(self, mode, *args, **kwargs)
        if mode == "r+b" and self.suffix == ".cassette":
            return Tearing(stream)
        return stream

    pathlib.Path.open = tearing_open  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("start", type=int)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--kill-after-bytes", type=int, default=None)
    args = parser.parse_args(argv)

    from pytest_replay import replay_trace
    from pytest_replay.trace import RecordingSession

    @replay_trace(key="crash.small")
    def small(i: int) -> int:
        return i * 3

    @replay_trace(key="crash.big")
    def big(i: int) -> dict[str, Any]:
        return {"i": i, "blob": bytes([i % 251]) * 2000}

    if args.kill_after_bytes is not None:
        _kill_inside_append(args.kill_after_bytes)
    session = RecordingSession(args.dir, mode="new", max_records=10**9, durations=False)
    session.start()
    print("ready", flush=True)
    i = args.start
    done = 0
    while args.batches is None or done < args.batches:
        first = i
        for _ in range(BATCH):
            small(i)
            big(i)
            i += 1
        report = session.flush()
        if report.errors:
            print("error " + " | ".join(report.errors), flush=True)
            return 3
        print(f"flushed {first} {i - 1}", flush=True)
        done += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
