"""Record the example's sessions into cassettes/ (the cassettes committed next to this file).

    python record_sessions.py [DIRECTORY]

Three days of work with different seeds and limits. Timings are left out, so
running this again on unchanged code rewrites byte-identical cassettes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator import Orchestrator
from scenario import run_day

from pytest_replay.cassette import cassette_path
from pytest_replay.session import capture_sessions

DAYS = [
    {"seed": 7, "max_in_flight": 2, "max_attempts": 3},
    {"seed": 11, "max_in_flight": 3, "max_attempts": 2},
    {"seed": 23, "max_in_flight": 1, "max_attempts": 3},
]


def record(directory: Path) -> Path:
    with capture_sessions(durations=False) as capture:
        for day in DAYS:
            orchestrator = Orchestrator(day["max_in_flight"], max_attempts=day["max_attempts"])
            run_day(orchestrator, seed=day["seed"])
    path = cassette_path(directory, "orchestrator.Orchestrator")
    path.unlink(missing_ok=True)  # a fresh recording, not an addition
    (written,) = capture.write(directory)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "cassettes"
    print(f"recorded {record(target)}")
