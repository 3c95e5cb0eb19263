"""The quickstart, end to end: record, replay, break something, watch the replay catch it.

Run from a checkout (the README's demo command):

    python3 -m venv .venv && .venv/bin/pip install -q -e . \\
        && .venv/bin/python docs/examples/quickstart/demo.py

It works in a temporary copy of this directory (pricing.py, test_pricing.py), so
nothing here is modified. Steps:

1. ``pytest --replay-record``: the ordinary tests run and every ``quote()`` call
   is written to ``cassettes/pricing.quote.cassette``.
2. ``pytest --replay``: each recorded call is replayed as a test; all pass.
3. A small scripted change to pricing.py (the bulk price 9.5 becomes 9.0). The
   ordinary tests still pass; ``pytest --replay`` fails and shows the diff.
4. The change is restored and the replay is green again.

Exit status 0 means the regression was caught exactly as expected; anything
else exits 1 and says which step did not behave.

Options: ``--keep`` keeps the temporary directory; ``--report PATH`` also writes
the HTML replay report of the failing run to PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("pricing.py", "test_pricing.py")
# The scripted change: a "harmless" rounding of the bulk unit price.
BEFORE = "unit = 9.5 if qty >= 10 else 10.0"
AFTER = "unit = 9.0 if qty >= 10 else 10.0"
# What the caught regression must show: the changed path, the old and new value.
EXPECTED_DIFF = ("total", "114.0", "108.0")


class DemoFailed(Exception):
    """A step did not do what the demo promises."""


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def pytest(workdir: Path, *args: str, expect: int) -> str:
    """Run pytest in ``workdir`` with this interpreter; check its exit status."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    print("$ pytest " + " ".join(args), flush=True)
    env = dict(os.environ)
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)  # the plugin comes in by entry point
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_REPLAY_RECORD", None)
    proc = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    print(_indent(output), flush=True)
    if proc.returncode != expect:
        raise DemoFailed(
            f"`pytest {' '.join(args)}` exited {proc.returncode}, expected {expect}"
        )
    return output


def _indent(text: str, limit: int = 60) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > limit:
        lines = [*lines[: limit // 2], f"... ({len(lines) - limit} lines)", *lines[-limit // 2 :]]
    return "\n".join("    " + line for line in lines)


def run(workdir: Path, report: Path | None) -> None:
    for name in FILES:
        shutil.copy2(HERE / name, workdir / name)
    pricing = workdir / "pricing.py"
    original = pricing.read_text(encoding="utf-8")
    if BEFORE not in original:
        raise DemoFailed(f"pricing.py no longer contains {BEFORE!r}; update demo.py")

    say("1. record: run the ordinary tests with --replay-record")
    pytest(workdir, "--replay-record", "-q", expect=0)
    cassettes = sorted(p.name for p in (workdir / "cassettes").glob("*.cassette"))
    print(f"    cassettes/: {', '.join(cassettes) or '(none)'}")
    if "pricing.quote.cassette" not in cassettes:
        raise DemoFailed("recording wrote no cassettes/pricing.quote.cassette")

    say("2. replay: every recorded call is a test item now")
    pytest(workdir, "--replay", "-q", expect=0)

    say(f"3. a harmless-looking change: {BEFORE!r} -> {AFTER!r}")
    pricing.write_text(original.replace(BEFORE, AFTER), encoding="utf-8")
    try:
        print("    the ordinary tests do not notice:")
        pytest(workdir, "-q", expect=0)
        print("    the replay does:")
        extra = [f"--replay-report={report}"] if report else []
        output = pytest(workdir, "--replay", "-q", *extra, expect=1)
    finally:
        say("4. restore the change")
        pricing.write_text(original, encoding="utf-8")
    diff_lines = [line for line in output.splitlines() if all(s in line for s in EXPECTED_DIFF)]
    if not diff_lines:
        raise DemoFailed(
            "the replay failed, but its output has no line showing "
            f"{EXPECTED_DIFF[0]}: {EXPECTED_DIFF[1]} → {EXPECTED_DIFF[2]}"
        )
    pytest(workdir, "--replay", "-q", expect=0)

    say("result")
    print("    regression caught as expected:")
    for line in diff_lines:
        print("    " + line.strip())
    if report:
        print(f"    HTML report of the failing replay: {report}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--report", type=Path, help="write the failing run's HTML report here")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pytest-replay-demo-"))
    report = args.report.resolve() if args.report else None
    try:
        run(workdir, report)
    except DemoFailed as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        print(f"(files kept in {workdir})", file=sys.stderr)
        return 1
    if args.keep:
        print(f"    files kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
