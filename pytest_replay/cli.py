"""The ``pytest-replay`` command line (argparse; no pytest import).

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in
``build_parser``. Exit codes: 0 success, 1 a check failed (invalid cassette,
divergence, non-linearizable history), 2 unusable input or usage error,
3 undecided (a linearizability check that ran out of time or memory).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

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
    _add_cassette_commands(sub)
    _add_timeline_commands(sub)
    _add_history_commands(sub)
    return parser


# --- cassettes: show, verify, textconv -------------------------------------------


def _add_cassette_commands(sub: Any) -> None:
    show = sub.add_parser(
        "show",
        help="print the records of a cassette",
        description="Print the records of a cassette: readable, or one JSON object per line.",
    )
    show.add_argument("path", metavar="PATH", help="a .cassette file")
    show.add_argument(
        "--json", action="store_true", help="one JSON object per record per line (default: off)"
    )
    show.add_argument(
        "--at", type=int, metavar="N", default=None, help="show only record N (default: all)"
    )
    show.set_defaults(handler=_cmd_show)

    verify = sub.add_parser(
        "verify",
        help="check the hash chain and framing of cassettes",
        description="Check every frame of each cassette. Exit 0 when all are VALID, 1 otherwise.",
    )
    verify.add_argument("paths", nargs="+", metavar="PATH", help=".cassette files")
    verify.set_defaults(handler=_cmd_verify)

    textconv = sub.add_parser(
        "textconv",
        help="stable text of a cassette, for `git diff`",
        description="Print a cassette as stable, diff-friendly text (git diff textconv driver).",
    )
    textconv.add_argument("path", metavar="PATH", help="a .cassette file")
    textconv.set_defaults(handler=_cmd_textconv)


def _error(message: str) -> int:
    print(f"pytest-replay: error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _cmd_show(args: argparse.Namespace) -> int:
    from .cassette import Cassette, CassetteError
    from .codec import to_jsonable

    at: int | None = args.at
    if at is not None and at < 0:
        return _error(f"{args.path}: --at {at}: a record index is 0 or more")
    if (
        getattr(args, "first_fault", False)
        or getattr(args, "step", None) is not None
        or (at is not None and not args.json)
    ):
        return _show_event(args)  # one event with its neighbours (timeline section)
    try:
        cassette = Cassette.open(args.path)
        if not args.json:
            header = cassette.header
            print(f"cassette {args.path}")
            print(
                f"key {cassette.key}  format {header.get('format')} {header.get('version')}  "
                f"plugin {header.get('plugin')}"
            )
        count = 0
        for index, record in enumerate(cassette.records()):
            count = index + 1
            if at is not None and index != at:
                continue
            view = _record_view(record, to_jsonable, args.path, index)
            if args.json:
                print(json.dumps({"index": index, **view}, ensure_ascii=True, allow_nan=False))
            else:
                print()
                print("\n".join(_readable_record(index, view)))
            if at is not None:
                break
    except CassetteError as exc:
        return _error(str(exc))
    torn = cassette.torn_tail
    if at is not None and count <= at:
        valid = f"0..{count - 1}" if count else "none: it has no records"
        return _error(
            f"{args.path}: --at {at} is out of range: the cassette has {count} records "
            f"(valid indexes: {valid})"
        )
    if not args.json and at is None:
        print()
        print(f"{count} records")
    if torn is not None:
        print(f"pytest-replay: warning: {args.path}: {torn.describe()}", file=sys.stderr)
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from .cassette import Cassette, CassetteError

    status = EXIT_OK
    for path in args.paths:
        try:
            report = Cassette.open(path).verify()
        except CassetteError as exc:
            status = max(status, _error(str(exc)))
            continue
        except OSError as exc:
            status = max(status, _error(f"{path}: cannot be read ({exc.strerror or exc})"))
            continue
        print(f"{path}: {report.text}")
        for problem in report.problems:
            print(f"  - {problem}")
        if not report.ok:
            status = max(status, EXIT_FAILED)
    return status


# Record fields in the order record.py writes them; any other field follows, sorted.
_FIELD_ORDER = (
    "id", "key", "target", "kind", "args", "kwargs", "result", "error",
    "children", "boundary", "unreplayable", "meta",
)  # fmt: skip


def _record_view(
    record: dict[str, Any], to_jsonable: Any, path: str = "<cassette>", index: int | None = None
) -> dict[str, Any]:
    """The JSON-able form of a record map with exactly one of ``result`` / ``error``.

    Raises :class:`CassetteError` (naming ``path`` and ``index``) when a value
    cannot be shown (malformed or too deeply nested ext data).
    """
    from .cassette import CassetteError

    try:
        view = {str(name): to_jsonable(value) for name, value in record.items()}
    except (ValueError, RecursionError) as exc:  # CodecError: malformed ext data
        raise CassetteError(
            path,
            f"record cannot be shown ({exc or type(exc).__name__})",
            index=index,
            hint="re-record it, or upgrade pytest-replay-trace if a newer version wrote it",
        ) from None
    if view.get("error") is not None:
        view.pop("result", None)
    else:
        view.pop("error", None)
        view.setdefault("result", None)
    ordered = {name: view[name] for name in _FIELD_ORDER if name in view}
    ordered.update((name, view[name]) for name in sorted(view) if name not in ordered)
    return ordered


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)


def _readable_record(index: int, view: dict[str, Any]) -> list[str]:
    lines = [f"#{index}  id {view.get('id')}  key {view.get('key')}"]
    lines.append(f"  target:   {view.get('target')}")
    lines.append(f"  args:     {_compact(view.get('args'))}")
    lines.append(f"  kwargs:   {_compact(view.get('kwargs'))}")
    error = view.get("error")
    if error is not None:
        if isinstance(error, dict):
            lines.append(f"  error:    {error.get('type')}: {error.get('message')}")
        else:
            lines.append(f"  error:    {_compact(error)}")
    else:
        lines.append(f"  result:   {_compact(view.get('result'))}")
    children = view.get("children")
    lines.append(f"  children: {len(children) if isinstance(children, list) else 0}")
    if view.get("boundary"):
        lines.append("  boundary: yes (its result is replayed, not recomputed)")
    if view.get("unreplayable"):
        lines.append(f"  unreplayable: {view['unreplayable']}")
    lines.append(f"  meta:     {_compact(view.get('meta'))}")
    extra = [name for name in view if name not in _FIELD_ORDER]
    lines.extend(f"  {name}: {_compact(view[name])}" for name in extra)
    return lines


def _cmd_textconv(args: argparse.Namespace) -> int:
    from .cassette import Cassette, CassetteError
    from .codec import to_jsonable

    out: list[str] = []
    try:
        cassette = Cassette.open(args.path)
        header = cassette.header
        out.append(f"# pytest-replay cassette {header.get('format')} {header.get('version')}")
        out.append(f"key: {cassette.key}")
        out.append(f"plugin: {header.get('plugin')}")
        for index, record in enumerate(cassette.records()):
            out.append("")
            out.append(f"## record {index}")
            for name, value in _record_view(record, to_jsonable, args.path, index).items():
                # meta is volatile (durations): one line, so a re-record is a one-line change.
                if name == "meta":
                    text = _compact(value)
                else:
                    text = json.dumps(
                        value, ensure_ascii=False, sort_keys=True, indent=2, default=repr
                    ).replace("\n", "\n  ")  # continuation lines stay inside the field
                out.append(f"{name}: {text}")
    except CassetteError as exc:
        return _error(str(exc))
    if cassette.torn_tail is not None:
        out.append("")
        out.append(f"# {cassette.torn_tail.describe()}")
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


# --- timelines: diff, show --at N / --first-fault ---------------------------------


def _add_timeline_commands(sub: Any) -> None:
    diff = sub.add_parser(
        "diff",
        help="compare two recordings: the divergence points, first one first",
        description=(
            "Compare two cassettes of the same key, or two directories of cassettes paired "
            "by key. Exit 0 when identical, 1 when they diverge, 2 for unusable input."
        ),
    )
    diff.add_argument(
        "expected", metavar="A", help="the expected recording: a .cassette or a directory"
    )
    diff.add_argument(
        "actual", metavar="B", help="the actual recording: a .cassette or a directory"
    )
    diff.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="divergence points shown per cassette (default: 20)",
    )
    diff.add_argument(
        "--include-meta",
        action="store_true",
        help="also compare volatile metadata such as durations (default: off)",
    )
    diff.set_defaults(handler=_cmd_diff)
    show = sub.choices["show"]
    show.add_argument(
        "--first-fault",
        action="store_true",
        help="show the first record that raised, with its neighbours (default: off)",
    )
    show.add_argument(
        "--context",
        type=int,
        default=2,
        metavar="K",
        help="with --at or --first-fault: neighbours listed on each side (default: 2)",
    )
    show.add_argument(
        "--step",
        type=int,
        default=None,
        metavar="M",
        help="with --at/--first-fault on a session record: center on step M "
        "(default: its first fault, else step 0)",
    )


def _cmd_diff(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .cassette import Cassette, CassetteError
    from .timeline import TimelineError, compare_traces, diff_directories

    if args.limit < 0:
        return _error(f"--limit {args.limit}: the number of points shown is 0 or more")
    expected, actual = Path(args.expected), Path(args.actual)
    for path in (expected, actual):
        if not path.exists():
            return _error(
                f"{path}: no such file or directory; pass two .cassette files or two directories"
            )
    if expected.is_dir() != actual.is_dir():
        kinds = ["directory" if p.is_dir() else "file" for p in (expected, actual)]
        return _error(
            f"{expected} is a {kinds[0]} and {actual} is a {kinds[1]}: pass two cassettes "
            f"or two directories"
        )
    result: Any
    try:
        if expected.is_dir():
            result = diff_directories(expected, actual, ignore_meta=not args.include_meta)
        else:
            left, right = Cassette.open(expected), Cassette.open(actual)
            if left.key != right.key:
                return _error(
                    f"{expected} records key {left.key!r} but {actual} records key "
                    f"{right.key!r}: diff compares two recordings of the same function"
                )
            result = compare_traces(left, right, ignore_meta=not args.include_meta)
    except (CassetteError, TimelineError) as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"{exc.filename or expected}: cannot be read ({exc.strerror or exc})")
    for line in result.render(args.limit):
        print(line)
    return EXIT_OK if result.identical else EXIT_FAILED


def _show_event(args: argparse.Namespace) -> int:
    from .cassette import Cassette, CassetteError
    from .codec import to_jsonable
    from .timeline import TraceIndexError, first_fault, snapshot_window

    if args.context < 0:
        return _error(f"--context {args.context}: the number of neighbours is 0 or more")
    if args.step is not None and args.at is None and not args.first_fault:
        return _error("--step M needs --at N or --first-fault (it picks a step of that session)")
    try:
        cassette = Cassette.open(args.path)
        if args.first_fault:
            fault = first_fault(cassette)
            if fault is None:
                count = sum(1 for _ in cassette.payloads())
                print(f"{args.path}: no fault: none of the {count} records raised")
                return EXIT_OK
            at = fault.index
        else:
            at = args.at
        window = snapshot_window(cassette, at, args.context)
        event = next(s for s in window if s.index == at)
        view = _record_view(dict(event.raw), to_jsonable, args.path, at)
    except TraceIndexError as exc:
        count = exc.count
        valid = f"0..{count - 1}" if count else "none: it has no records"
        return _error(
            f"{args.path}: --at {args.at} is out of range: the cassette has {count} records "
            f"(valid indexes: {valid})"
        )
    except CassetteError as exc:
        return _error(str(exc))
    session_lines: list[str] = []
    if event.kind == "session":
        try:
            session_lines = event.describe_steps(args.step, args.context)
        except TraceIndexError as exc:
            return _error(f"{args.path}: record {at}: {exc}")
    elif args.step is not None:
        return _error(f"{args.path}: --step: record {at} is a {event.kind!r} record, not a session")
    if args.json:
        print(json.dumps({"index": at, **view}, ensure_ascii=True, allow_nan=False))
        return EXIT_OK
    header = cassette.header
    print(f"cassette {args.path}")
    print(
        f"key {cassette.key}  format {header.get('format')} {header.get('version')}  "
        f"plugin {header.get('plugin')}"
    )
    if event.fault is not None:
        prefix = "first fault" if args.first_fault else "fault"
        print(f"{prefix}: record {at} {event.fault}")
    print()
    if session_lines:
        # A session's result holds its state snapshots: too big to print whole.
        print(f"#{at}  id {view.get('id')}  key {view.get('key')}  (session)")
        print("\n".join("  " + line for line in session_lines))
    else:
        print("\n".join(_readable_record(at, view)))
    print(f"  state signature: {event.signature}")
    print()
    print(f"neighbours (records {window[0].index}..{window[-1].index}):")
    for snap in window:
        marker = ">" if snap.index == at else " "
        print(f"  {marker} {snap.index:>4} | {snap.summary(100)}")
    if cassette.torn_tail is not None:
        torn = cassette.torn_tail.describe()
        print(f"pytest-replay: warning: {args.path}: {torn}", file=sys.stderr)
    return EXIT_OK


# --- histories: check-history ----------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the timeout must be a positive number")
    return value


def _add_history_commands(sub: Any) -> None:
    check = sub.add_parser(
        "check-history",
        help="check that histories are linearizable",
        description=(
            "Check each history FILE for linearizability against --model. Exit 0 when all "
            "are linearizable, 1 when any is not, 3 when any is undecided (timeout or memory "
            "cap) and none is illegal, 2 when an input is unusable (missing file, parse error, "
            "unknown model); 2 wins over 1, 1 over 3."
        ),
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="history files")
    check.add_argument(
        "--model",
        required=True,
        metavar="NAME",
        help="a registered model: cas-register, register, kv, kv-whole, multi-register, set, "
        "counter, fifo-queue, unordered-queue, mutex (required)",
    )
    check.add_argument(
        "--conventions",
        choices=("knossos", "porcupine"),
        default=None,
        help="how fail ops and nil reads are read (default: knossos)",
    )
    check.add_argument(
        "--format",
        choices=("auto", "jepsen-log", "jepsen-edn", "jsonl"),
        default="auto",
        help="the files' format (default: auto, from the content)",
    )
    check.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="give up on a file after S seconds: its verdict is unknown (default: no limit)",
    )
    check.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per file per line: {"file", "verdict", "ops", "seconds", ...} '
        "(default: readable text)",
    )
    check.add_argument(
        "--html",
        metavar="DIR",
        default=None,
        help="write an interactive HTML page to DIR for each file that is not linearizable "
        "or undecided (default: none)",
    )
    check.set_defaults(handler=_cmd_check_history)


def _html_name(path: str) -> str:
    """A file name for ``path``'s page, unique per input path (good/x.edn vs bad/x.edn)."""
    import os
    import re

    try:
        shown = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        shown = os.path.abspath(path)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", shown).strip("_.")[:150] + ".html"


def _cmd_check_history(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path
    from types import SimpleNamespace

    from .history import HistoryFormatError, load
    from .linearizability import ModelError, check_linearizable
    from .models import get as get_model

    try:
        get_model(args.model)
    except ModelError as exc:
        return _error(str(exc))
    counts = {"ok": 0, "illegal": 0, "unknown": 0}
    unusable = 0
    for index, file in enumerate(args.files):
        try:
            events = load(file, format=args.format)
        except HistoryFormatError as exc:
            unusable += 1
            _error(f"{exc} (fix that line, or name the format with --format)")
            continue
        except OSError as exc:
            unusable += 1
            _error(f"{file}: cannot read: {exc.strerror or exc}")
            continue
        # The checker names the history in its messages from `.name`.
        named = SimpleNamespace(events=events, name=file)
        started = time.perf_counter()
        try:
            result = check_linearizable(
                named, args.model, conventions=args.conventions, timeout=args.timeout
            )
        except (ModelError, HistoryFormatError) as exc:
            unusable += 1
            _error(f"{exc} (is --model {args.model} the right model for this file?)")
            continue
        seconds = time.perf_counter() - started  # the check alone: parsing is excluded
        verdict: str = result.verdict
        counts[verdict] += 1
        html: Path | None = None
        if args.html is not None and verdict != "ok":
            html = result.to_html(Path(args.html) / _html_name(file))
        if args.json:
            record: dict[str, Any] = {"file": file, **result.to_dict()}
            record.update(verdict=verdict, ops=result.ops, seconds=round(seconds, 6))
            if html is not None:
                record["html"] = str(html)
            print(json.dumps(record, ensure_ascii=False, default=str), flush=True)
            continue
        head = f"{file}: {verdict.upper() if verdict == 'illegal' else verdict}"
        detail = f"{result.ops} ops, model {result.model}, {result.conventions} conventions"
        took = f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
        print(f"{head} ({detail}, {took})")
        if verdict != "ok":
            for line in result.explain().splitlines():
                print(f"  {line}" if line else "")
        if html is not None:
            print(f"  HTML: {html}")
        if index < len(args.files) - 1 and verdict != "ok":
            print()
    if not args.json and len(args.files) > 1:
        parts = [f"{n} {name}" for name, n in counts.items() if n]
        if unusable:
            parts.append(f"{unusable} unusable")
        print(f"{len(args.files)} files: " + ", ".join(parts))
    if unusable:
        return EXIT_UNUSABLE
    if counts["illegal"]:
        return EXIT_FAILED
    if counts["unknown"]:
        return EXIT_UNKNOWN
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    from .cassette import CassetteError

    try:
        return int(handler(args))
    except BrokenPipeError:  # e.g. `pytest-replay show x | head`
        return EXIT_OK
    except CassetteError as exc:  # safety net: one line, never a traceback
        return _error(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
