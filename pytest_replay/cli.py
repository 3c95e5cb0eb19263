"""The ``pytest-replay`` command line (argparse; no pytest import).

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in
``build_parser``. Exit codes: 0 success, 1 a check failed (invalid cassette,
divergence, non-linearizable history), 2 unusable input or usage error,
3 undecided (a linearizability check that ran out of time or memory).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2
EXIT_UNKNOWN = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-replay",
        description="Inspect, verify and compare pytest-replay cassettes and histories.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # Subcommands are registered below, one block per area.
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        return int(handler(args))
    except BrokenPipeError:  # e.g. `pytest-replay show x | head`
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
