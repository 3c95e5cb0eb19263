"""pytest wiring only: options, fixtures, collection, xdist and the summary.

All behaviour lives in the pure core modules; this file translates between
pytest and them. Plugin state lives in ``config.stash``.

Every option is registered in the single ``replay`` option group with an
explicit ``dest`` and, where it makes sense, an ini twin (``_add_option``).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

__all__: list[str] = []

# The unrelated plugin published on the package index as "pytest-replay" uses
# the same import name and a `--replay` option; the two cannot be installed
# together, and argparse would otherwise fail with a confusing message.
_CONFLICTING_DISTRIBUTION = "pytest-replay"


def _conflicting_plugin_installed() -> bool:
    try:
        importlib.metadata.distribution(_CONFLICTING_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _add_option(
    group: pytest.OptionGroup,
    parser: pytest.Parser,
    flag: str,
    *,
    dest: str,
    help: str,
    ini: str | None = None,
    ini_type: Any = None,
    default: Any = None,
    **kwargs: Any,
) -> None:
    """Register ``flag`` in the replay group, and its ini twin when ``ini`` is given.

    The command-line default is ``None`` so that ``get_option`` can tell
    "not given" from "given" and fall back to the ini value, then ``default``.
    """
    group.addoption(flag, dest=dest, default=None, help=help, **kwargs)
    if ini is not None:
        parser.addini(ini, help=help, type=ini_type, default=default)
    _OPTION_DEFAULTS[dest] = (ini, default)


# dest -> (ini name or None, default); filled by _add_option.
_OPTION_DEFAULTS: dict[str, tuple[str | None, Any]] = {}


def get_option(config: pytest.Config, dest: str) -> Any:
    """The option's value: command line, else its ini twin, else its default."""
    value = config.getoption(dest)
    if value is not None:
        return value
    ini, default = _OPTION_DEFAULTS[dest]
    if ini is not None:
        ini_value = config.getini(ini)
        if ini_value not in (None, "", []):
            return ini_value
    return default


def pytest_addoption(parser: pytest.Parser) -> None:
    if _conflicting_plugin_installed():
        raise pytest.UsageError(
            "pytest-replay-trace cannot run beside the unrelated 'pytest-replay' "
            "distribution (both use the module name 'pytest_replay' and a --replay "
            "option). Uninstall one of them: pip uninstall pytest-replay"
        )
    group = parser.getgroup("replay", "replay-based regression testing (pytest-replay-trace)")
    # --- recording (trace.py / store.py) ---
    # --- replay (replayer.py / compare.py) ---
    # --- reports ---
    # --- histories and linearizability ---
    del group
