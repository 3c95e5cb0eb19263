"""Child program: take a replay directory's lock, say so, and hold it until killed.

python -m hardening_helpers.lockholder DIR
"""

from __future__ import annotations

import sys
import time

from pytest_replay.store import DirectoryLock


def main(directory: str) -> int:
    lock = DirectoryLock(directory, timeout=30)
    lock.acquire()
    print("locked", flush=True)
    time.sleep(600)  # killed by the test long before
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
