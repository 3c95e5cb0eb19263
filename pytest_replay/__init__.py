"""pytest-replay: record calls to cassettes, replay them as regression tests.

This module is imported by application code (it holds the ``@replay_trace``
decorator), so it must stay light: it never imports pytest or deepdiff, and the
public names below are resolved lazily on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

# name -> module that defines it; resolved on first attribute access so that
# `import pytest_replay` costs one small module.
_EXPORTS: dict[str, str] = {
    # recording
    "replay_trace": "pytest_replay.trace",
    "recording": "pytest_replay.trace",
    # replay
    "replay": "pytest_replay.replayer",
    "replay_context": "pytest_replay.replayer",
    # codec
    "register_type": "pytest_replay.codec",
    # cassettes
    "Cassette": "pytest_replay.cassette",
    "CassetteError": "pytest_replay.cassette",
    # histories and linearizability
    "History": "pytest_replay.history",
    "check_linearizable": "pytest_replay.linearizability",
    "assert_linearizable": "pytest_replay.linearizability",
    "models": "pytest_replay.models",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover
    pass


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pytest_replay' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
