from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
LINEARIZABILITY_DATA = SHARED / "data" / "linearizability"


@pytest.fixture(scope="session")
def linearizability_data() -> Path:
    """The shared linearizability corpus; tests that need it skip when it is absent."""
    if not (LINEARIZABILITY_DATA / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {LINEARIZABILITY_DATA} (../shared/ is absent)")
    return LINEARIZABILITY_DATA
