"""pytest wiring only: options, fixtures, collection, xdist and the summary.

All behaviour lives in the pure core modules; this file translates between
pytest and them. Plugin state lives in ``config.stash``.

Every option is registered in the single ``replay`` option group with an
explicit ``dest`` and, where it makes sense, an ini twin (``_add_option``).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .history import History

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
    _add_option(
        group,
        parser,
        "--replay-record",
        dest="replay_record",
        action="store_true",
        help="record the calls of traced functions into cassettes; a plain flag, the mode "
        "comes from --replay-record-mode (default: off)",
    )
    _add_option(
        group,
        parser,
        "--replay-record-mode",
        dest="replay_record_mode",
        ini="replay_record_mode",
        default="new",
        choices=("new", "rewrite"),
        help="new: add calls whose inputs are not recorded yet and keep every existing "
        "record; rewrite: replace the cassettes of the functions called in this run "
        "(default: new)",
    )
    _add_option(
        group,
        parser,
        "--replay-dir",
        dest="replay_dir",
        ini="replay_dir",
        default="cassettes",
        metavar="DIR",
        help="directory of the cassettes; the ini value and the default are relative to the "
        "rootdir, the command-line value to the current directory (default: cassettes)",
    )
    _add_option(
        group,
        parser,
        "--replay-max-records",
        dest="replay_max_records",
        ini="replay_max_records",
        default=100,
        type=int,
        metavar="N",
        help="distinct inputs kept per traced function; on the command line it overrides "
        "max_records= of the decorator, in the ini file it is the default for functions "
        "without one (default: 100)",
    )
    _add_option(
        group,
        parser,
        "--replay-record-failed",
        dest="replay_record_failed",
        ini="replay_record_failed",
        ini_type="bool",
        default=False,
        action="store_true",
        help="also record the calls made by tests that failed, which are dropped so that a "
        "failing run cannot poison the baseline (default: false)",
    )
    _add_option(
        group,
        parser,
        "--replay-allow-secrets",
        dest="replay_allow_secrets",
        ini="replay_allow_secrets",
        ini_type="bool",
        default=False,
        action="store_true",
        help="turn off the built-in secret scanner that redacts tokens, keys and passwords "
        "before they are written; redact= rules still apply (default: false)",
    )
    _add_option(
        group,
        parser,
        "--replay-record-durations",
        dest="replay_record_durations",
        ini="replay_record_durations",
        default="on",
        choices=("on", "off"),
        help="store each call's duration_ms in its record; off makes fresh recordings "
        "byte-identical from run to run (default: on)",
    )
    _add_option(
        group,
        parser,
        "--replay-trace",
        dest="replay_trace",
        ini="replay_trace",
        ini_type="linelist",
        default=[],
        action="append",
        metavar="MODULE:QUALNAME",
        help="trace a function or method you cannot decorate (e.g. sqlparse.format or "
        "myapp.pricing:Quote.total), wrapped at session start; repeatable, adds to the "
        "ini list (default: none)",
    )
    _add_option(
        group,
        parser,
        "--replay-boundary",
        dest="replay_boundary",
        ini="replay_boundary",
        ini_type="linelist",
        default=[],
        action="append",
        metavar="MODULE:QUALNAME",
        help="like --replay-trace, as a boundary whose answers are replayed, never "
        "recomputed (e.g. requests.sessions:Session.request); repeatable (default: none)",
    )
    _add_option(
        group,
        parser,
        "--replay-lock-timeout",
        dest="replay_lock_timeout",
        ini="replay_lock_timeout",
        default=60.0,
        type=float,
        metavar="SECONDS",
        help="how long to wait for another run that holds the replay directory's lock "
        "(default: 60)",
    )
    # --- replay (replayer.py / compare.py) ---
    _add_option(
        group,
        parser,
        "--replay",
        dest="replay",
        ini="replay",
        ini_type="bool",
        default=False,
        action="store_true",
        help="turn every recorded call in the cassettes under the replay directory into a "
        "test item, next to the normal tests; `pytest --replay path/x.cassette` runs just "
        "that cassette (default: off)",
    )
    _add_option(
        group,
        parser,
        "--replay-strict",
        dest="replay_strict",
        ini="replay_strict",
        ini_type="bool",
        default=True,
        action="store_true",
        help="unreplayable records (opaque input, target gone, signature no longer binds) "
        "fail with the reason and the fix (default: on)",
    )
    group.addoption(
        "--replay-no-strict",
        dest="replay_strict",
        default=None,
        action="store_false",
        help="skip unreplayable records with the reason instead of failing them "
        "(default: off, see --replay-strict)",
    )
    _add_option(
        group,
        parser,
        "--replay-update",
        dest="replay_update",
        default=False,
        action="store_true",
        help="rewrite the records whose output changed with the new output, atomically; "
        "they are reported as updated, not failed; implies --replay (default: off)",
    )
    _add_option(
        group,
        parser,
        "--replay-prune",
        dest="replay_prune",
        default=False,
        action="store_true",
        help="remove the records whose target no longer exists; refused unless nothing was "
        "deselected and nothing failed; implies --replay (default: off)",
    )
    _add_option(
        group,
        parser,
        "--replay-twice",
        dest="replay_twice",
        ini="replay_twice",
        ini_type="bool",
        default=False,
        action="store_true",
        help="run every replay item twice and report outputs that differ between the two "
        "runs as non-deterministic; implies --replay (default: off)",
    )
    parser.addini(
        "replay_compare",
        type="linelist",
        default=[],
        help="per-function comparison options, one line per key glob, e.g. "
        "'pricing.*: ignore=*.created_at,items[*].id; significant_digits=2; "
        "ignore_order=true'; added to the decorator's options (default: none)",
    )
    # --- reports ---
    _add_option(
        group,
        parser,
        "--replay-report",
        dest="replay_report",
        ini="replay_report",
        metavar="PATH",
        help="write a self-contained HTML report of the replayed items to PATH "
        "(default: no report)",
    )
    # --- histories and linearizability ---
    _add_option(
        group,
        parser,
        "--replay-lin-html",
        dest="replay_lin_html",
        ini="replay_lin_html",
        metavar="DIR",
        help="when an assert_linearizable fails in a test, write its interactive HTML "
        "counterexample to DIR/<test id>.html (default: no HTML)",
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


# codec hook relay installed before this session configured (None outside pytest)
_CODEC_HOOK_KEY = pytest.StashKey[Any]()


# Each area's hooks live on its own plugin object, registered in
# pytest_configure, so the areas never share (and silently overwrite) a
# module-level hook function. Module-level hooks below only dispatch.
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "replay: a test item replaying one recorded call")
    # --- configure: codec hooks ---
    from . import codec

    # The previous relay is kept so a nested session (pytester) restores it.
    config.stash[_CODEC_HOOK_KEY] = codec.install_hooks(config.hook)
    # --- configure: recording ---
    config.pluginmanager.register(_RecordingPlugin(config), "replay-recording")
    # --- configure: replay ---
    config.pluginmanager.register(_ReplayPlugin(config), "replay-replay")
    # --- configure: reports ---
    report_path = resolve_report_path(config)
    if report_path is not None:
        config.pluginmanager.register(_ReportPlugin(config, report_path), "replay-report")
    # --- configure: histories and linearizability ---
    config.pluginmanager.register(_HistoryPlugin(config), "replay-histories")


def pytest_unconfigure(config: pytest.Config) -> None:
    # --- unconfigure: codec hooks ---
    if _CODEC_HOOK_KEY in config.stash:
        from . import codec

        codec.install_hooks(config.stash[_CODEC_HOOK_KEY])
    # --- unconfigure: recording ---
    # --- unconfigure: replay ---
    pass


# --- recording ---
_RECORDING_KEY = pytest.StashKey["_RecordingPlugin"]()


def resolve_replay_dir(config: pytest.Config) -> Path:
    """The replay directory: ``--replay-dir`` (relative to the invocation directory),
    else ini ``replay_dir`` (relative to the rootdir), else ``<rootdir>/cassettes``."""
    given = config.getoption("replay_dir")
    if given:
        return Path(config.invocation_params.dir, str(given)).resolve()
    ini_value = config.getini("replay_dir")
    return Path(config.rootpath, str(ini_value or "cassettes")).resolve()


def _max_records_options(config: pytest.Config) -> tuple[int | None, int]:
    """(command-line override or None, default for functions without max_records=)."""
    given = config.getoption("replay_max_records")
    ini_value = config.getini("replay_max_records")
    try:
        default = int(ini_value) if ini_value not in (None, "") else 100
    except ValueError:
        raise pytest.UsageError(
            f"ini replay_max_records: {ini_value!r} is not a whole number"
        ) from None
    for name, value in (("--replay-max-records", given), ("ini replay_max_records", default)):
        if value is not None and value < 1:
            raise pytest.UsageError(f"{name} must be at least 1, got {value}")
    return given, default


def _choice(config: pytest.Config, dest: str, ini: str, choices: tuple[str, ...]) -> str:
    value = str(get_option(config, dest)).strip()
    if value not in choices:
        raise pytest.UsageError(f"ini {ini}: {value!r} is not one of {', '.join(choices)}")
    return value


class _RecordingPlugin:
    """``--replay-record``, ``--replay-trace``/``--replay-boundary`` and the xdist glue.

    Controller (or a run without xdist): records, merges worker shards at session
    end, prints the summary. Worker: records into a shard file whose path goes
    back in ``workeroutput["replay_shard"]``; prints nothing.
    """

    def __init__(self, config: pytest.Config) -> None:
        from . import trace

        self.config = config
        self.workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.wrapped: list[trace.WrappedTarget] = []
        self.recorder: trace.RecordingSession | None = None
        self.report: Any = None
        self.positions: dict[str, int] = {}
        self.shards: list[Path] = []
        self.problems: list[str] = []
        self.shard_dir: Path | None = None
        self._current_failed = False
        config.stash[_RECORDING_KEY] = self
        self._wrap_targets(config)
        if not config.getoption("replay_record"):
            return
        try:
            cap_override, cap_default = _max_records_options(config)
            lock_timeout = float(get_option(config, "replay_lock_timeout"))
        except ValueError as exc:
            self._restore()
            raise pytest.UsageError(f"replay_lock_timeout: {exc}") from None
        except pytest.UsageError:
            self._restore()
            raise
        try:
            mode = _choice(config, "replay_record_mode", "replay_record_mode", ("new", "rewrite"))
            durations = _choice(
                config, "replay_record_durations", "replay_record_durations", ("on", "off")
            )
        except pytest.UsageError:
            self._restore()
            raise
        self.recorder = trace.RecordingSession(
            resolve_replay_dir(config),
            mode=mode,
            max_records=cap_override,
            default_max_records=cap_default,
            allow_secrets=bool(get_option(config, "replay_allow_secrets")),
            record_failed=bool(get_option(config, "replay_record_failed")),
            durations=durations == "on",
            lock_timeout=lock_timeout,
        ).start()

    def _wrap_targets(self, config: pytest.Config) -> None:
        from . import trace

        targets = [
            (name, False)
            for name in [*config.getini("replay_trace"), *(config.getoption("replay_trace") or [])]
        ] + [
            (name, True)
            for name in [
                *config.getini("replay_boundary"),
                *(config.getoption("replay_boundary") or []),
            ]
        ]
        seen: set[str] = set()
        for name, boundary in targets:
            name = name.strip()
            if not name or name in seen:
                continue
            seen.add(name)
            flag = "--replay-boundary" if boundary else "--replay-trace"
            try:
                self.wrapped.append(trace.wrap_target(name, boundary=boundary))
            except (trace.TraceTargetError, TypeError, ValueError) as exc:
                self._restore()
                raise pytest.UsageError(f"{flag}/replay_{flag[9:]}: {exc}") from None

    def _restore(self) -> None:
        while self.wrapped:
            self.wrapped.pop().restore()

    # -- xdist (controller side)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.recorder is None:
            return
        if self.shard_dir is None:
            import tempfile

            self.shard_dir = Path(tempfile.mkdtemp(prefix="pytest-replay-shards-"))
        node.workerinput["replay_shard_dir"] = str(self.shard_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if self.recorder is None:
            return
        output = getattr(node, "workeroutput", None) or {}
        shard = output.get("replay_shard")
        if shard:
            self.shards.append(Path(shard))
        problem = output.get("replay_shard_error")
        if problem:
            self.problems.append(str(problem))
        elif not shard:
            worker = getattr(getattr(node, "gateway", None), "id", "?")
            self.problems.append(
                f"worker {worker} went down without its shard ({error or 'no shard'}): "
                "the calls it recorded are lost"
            )

    # -- attribution of calls to tests

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Before other plugins reorder (randomly, ...): collection order is the
        # sort order of records, the same on every xdist worker.
        self.positions = {item.nodeid: index for index, item in enumerate(items)}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        recorder = self.recorder
        if recorder is None:
            return (yield)
        self._current_failed = False
        recorder.begin_test(self.positions.get(item.nodeid, len(self.positions)), item.nodeid)
        try:
            return (yield)
        finally:
            recorder.end_test(failed=self._current_failed)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._current_failed = True

    # -- the end

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        recorder.stop()
        from . import store

        workerinput = self.workerinput
        if workerinput is not None:
            worker = str(workerinput.get("workerid", "gw"))
            directory = workerinput.get("replay_shard_dir")
            path = Path(str(directory)) / f"{worker}.shard" if directory else None
            output: dict[str, Any] = self.config.workeroutput  # type: ignore[attr-defined]
            if path is None:
                output["replay_shard_error"] = f"worker {worker}: no shard directory was given"
                return
            try:
                store.write_shard(recorder.collect(), path)
            except OSError as exc:
                output["replay_shard_error"] = (
                    f"worker {worker}: cannot write its shard {path}: {exc.strerror or exc}; "
                    "its recorded calls are lost"
                )
            else:
                output["replay_shard"] = str(path)
            return
        extra = []
        for shard in self.shards:
            try:
                extra.append(store.read_shard(shard))
            except store.ShardError as exc:
                self.problems.append(f"{exc}; the calls in it are lost")
        report = recorder.flush(extra)
        report.errors[:0] = self.problems
        self.report = report
        self._remove_shards()
        if report.errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _remove_shards(self) -> None:
        if self.shard_dir is not None:
            import shutil

            shutil.rmtree(self.shard_dir, ignore_errors=True)
            self.shard_dir = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None or self.workerinput is not None:
            return
        terminalreporter.section("replay recording")
        for line in self.report.lines():
            terminalreporter.write_line(line, red=line.startswith("ERROR"))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.recorder is not None:
            self.recorder.stop()
        self._remove_shards()
        self._restore()


# --- replay ---
_REPLAY_KEY = pytest.StashKey["_ReplayPlugin"]()


class ReplayFailed(Exception):
    """A replay item's failure; its text is shown as is (no traceback of the plugin)."""


class _ReplayPlugin:
    """``--replay``: collection of cassettes, the items, update/prune, xdist and the summary.

    Workers send their updates, stale records and deselection count back in
    ``workeroutput["replay"]``; the controller (or a run without xdist)
    rewrites the cassettes and prints the summary. Item outcomes travel in
    ``report.user_properties``, so the controller counts them from the reports.
    """

    def __init__(self, config: pytest.Config) -> None:
        from .compare import parse_compare_rules
        from .replayer import ReplaySummary

        self.config = config
        self.update = bool(config.getoption("replay_update"))
        self.prune = bool(config.getoption("replay_prune"))
        self.twice = bool(get_option(config, "replay_twice"))
        self.enabled = bool(get_option(config, "replay")) or self.update or self.prune
        self.enabled = self.enabled or bool(config.getoption("replay_twice"))
        self.strict = bool(get_option(config, "replay_strict"))
        try:
            self.rules = parse_compare_rules(config.getini("replay_compare"))
        except ValueError as exc:
            raise pytest.UsageError(f"ini {exc}") from None
        self.lock_timeout = 60.0
        if self.enabled:
            try:
                self.lock_timeout = float(get_option(config, "replay_lock_timeout"))
            except ValueError as exc:
                raise pytest.UsageError(f"replay_lock_timeout: {exc}") from None
        self.is_worker = hasattr(config, "workerinput")
        self.replay_dir = resolve_replay_dir(config)
        self.summary = ReplaySummary()
        # cassette path -> record id -> new payload / stale target
        self.updates: dict[str, dict[str, bytes]] = {}
        self.stale: dict[str, dict[str, str]] = {}
        self.deselected = 0
        # Cassettes are collected from the replay directory and from paths the
        # user named; other *.cassette files a directory walk meets (test data
        # of some other tool) are left alone.
        self.roots = [self.replay_dir]
        # Real paths of the cassettes collected so far: a replay dir reached both
        # through a symlink and at its resolved path is collected once.
        self.collected: set[Path] = set()
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            invocation = config.invocation_params.dir
            self.roots += [Path(invocation, a.split("::", 1)[0]).resolve() for a in config.args]
        config.stash[_REPLAY_KEY] = self
        if self.enabled:
            self._add_replay_dir(config)

    def _add_replay_dir(self, config: pytest.Config) -> None:
        """Collect the replay directory too, unless the arguments already name cassettes."""
        replay_dir = self.replay_dir
        if not replay_dir.is_dir():
            self.summary.notes.append(
                f"no cassettes to replay: {replay_dir} does not exist "
                "(record some with pytest --replay-record, or set --replay-dir)"
            )
            return
        invocation = config.invocation_params.dir
        for arg in config.args:
            path = Path(invocation, arg.split("::", 1)[0]).resolve()
            if path.suffix == ".cassette" or path == replay_dir or replay_dir in path.parents:
                return  # explicit cassettes (or a part of the replay directory): just those
            if path.is_dir() and path in replay_dir.parents:
                return  # the directory walk reaches the cassettes anyway
        config.args.append(str(replay_dir))

    # -- collection

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> Any:
        if not self.enabled or file_path.suffix != ".cassette":
            return None
        resolved = file_path.resolve()
        if resolved in self.collected:
            return None
        if any(root == resolved or root in resolved.parents for root in self.roots):
            self.collected.add(resolved)
            return CassetteFile.from_parent(parent, path=file_path)
        return None

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += len(items)

    # -- outcomes

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and not report.passed):
            return
        for name, value in report.user_properties:
            if name == "replay" and isinstance(value, dict):
                self.summary.add(
                    str(value.get("status", "")),
                    report.nodeid,
                    str(value.get("reason", "")),
                    str(value.get("detail", "")),
                )

    def queue_update(self, cassette: Path, record_id: str, payload: bytes) -> None:
        self.updates.setdefault(str(cassette), {})[record_id] = payload

    def note_stale(self, cassette: Path, record_id: str, target: str) -> None:
        self.stale.setdefault(str(cassette), {})[record_id] = target

    # -- xdist

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = (getattr(node, "workeroutput", None) or {}).get("replay")
        if not isinstance(output, dict):
            return
        for path, updates in (output.get("updates") or {}).items():
            self.updates.setdefault(path, {}).update(updates)
        for path, stale in (output.get("stale") or {}).items():
            self.stale.setdefault(path, {}).update(stale)
        # Every worker collects (and deselects) the same items: not a sum.
        self.deselected = max(self.deselected, int(output.get("deselected") or 0))
        self.summary.notes.extend(output.get("notes") or ())

    # -- the end

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.enabled:
            return
        if self.is_worker:
            self.config.workeroutput["replay"] = {  # type: ignore[attr-defined]
                "updates": self.updates,
                "stale": self.stale,
                "deselected": self.deselected,
                "notes": [n for n in self.summary.notes if not n.startswith("no cassettes")],
            }
            return
        from .replayer import apply_changes

        lock_timeout = self.lock_timeout
        notes = self.summary.notes
        for path, updates in sorted(self.updates.items()):
            report = apply_changes(Path(path), updates, lock_timeout=lock_timeout)
            if report.error:
                notes.append(f"not updated: {report.error}")
            elif report.changed:
                notes.append(
                    f"updated {_plural(report.updated, 'record')} in {self._label(path)}"
                )
        refusal = self._prune_refusal(session, exitstatus)
        if refusal is None:
            for path, stale in sorted(self.stale.items()):
                for record_id, target in sorted(stale.items()):
                    self.summary.stale.append((self._label(path), record_id, target))
        if not self.prune:
            if self.stale and refusal is None:
                notes.append("remove the stale records with: pytest --replay --replay-prune")
            return
        if refusal is not None:
            notes.append(f"prune refused: {refusal}; nothing was removed")
            return
        if not self.stale:
            notes.append("nothing to prune: every record's target exists")
            return
        for path, stale in sorted(self.stale.items()):
            report = apply_changes(Path(path), {}, stale, lock_timeout=lock_timeout)
            if report.error:
                notes.append(f"not pruned: {report.error}")
            elif report.changed:
                gone = " (no record left: the file was removed)" if report.deleted else ""
                notes.append(
                    f"pruned {_plural(report.removed, 'stale record')} from "
                    f"{self._label(path)}{gone}"
                )

    def _label(self, path: str) -> str:
        try:
            return str(Path(path).relative_to(self.config.rootpath))
        except ValueError:
            return path

    def _prune_refusal(self, session: pytest.Session, exitstatus: int) -> str | None:
        reasons = []
        if self.deselected:
            reasons.append(
                f"{_plural(self.deselected, 'test')} deselected (-k, -m, --lf, ...): "
                "a partial run cannot tell which records are stale"
            )
        if session.testsfailed:
            reasons.append(f"{_plural(session.testsfailed, 'test')} failed")
        elif exitstatus != pytest.ExitCode.OK:
            reasons.append(f"the run did not finish cleanly (exit status {int(exitstatus)})")
        return "; ".join(reasons) or None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.enabled or self.is_worker:
            return
        lines = list(self.summary.lines())
        if not lines:
            return
        terminalreporter.section("replay")
        for line in lines:
            terminalreporter.write_line(line)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class CassetteFile(pytest.Module):
    """One cassette: a collector with one item per record.

    A ``Module`` (never imported: ``_getobj`` returns an empty module) so that
    module-scoped fixtures requested as ``resources=`` have a node to live on.
    """

    _fixture_info: Any = None

    def _getobj(self) -> Any:
        import types

        return types.ModuleType(f"cassette:{self.path.name}")

    def collect(self) -> Any:
        from .replayer import CassetteProblem, item_names, iter_cassette

        self.add_marker("replay")
        plugin = self.config.stash[_REPLAY_KEY]
        cases: list[Any] = []
        problems = []
        for entry in iter_cassette(self.path):
            if isinstance(entry, CassetteProblem):
                if entry.fatal:
                    problems.append(entry)
                else:
                    plugin.summary.notes.append(entry.message)
            else:
                cases.append(entry)
        for name, case in zip(item_names(cases), cases, strict=True):
            yield ReplayItem.from_parent(self, name=name, case=case)
        for problem in problems:
            where = "file" if problem.index is None else f"record-{problem.index}"
            yield CassetteProblemItem.from_parent(self, name=f"corrupt[{where}]", problem=problem)

    def fixture_info(self, item: pytest.Item) -> Any:
        # Autouse fixtures are the same for every record of a cassette: compute once.
        if self._fixture_info is None:
            manager = self.session._fixturemanager
            self._fixture_info = manager.getfixtureinfo(node=item, func=None, cls=None)
        return self._fixture_info


class CassetteProblemItem(pytest.Item):
    """Stands for the unreadable part of a cassette, so the rest of the run goes on."""

    def __init__(self, *, problem: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem

    def runtest(self) -> None:
        raise ReplayFailed(self.problem.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ReplayFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"unreadable cassette {self.path.name}"


class ReplayItem(pytest.Item):
    """One recorded call, replayed (``replayer.prepare`` / ``execute`` / ``judge``)."""

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.prepared: Any = None
        self.problem: Any = None
        self.resource_values: dict[str, Any] = {}
        self.fixturenames: list[str] = []
        self.funcargs: dict[str, Any] = {}
        self.obj: Any = None
        #: set by runtest: the last run and verdict (for reports built from the item)
        self.replay_run: Any = None
        self.replay_verdict: Any = None
        self.replay_status: str | None = None

    @property
    def plugin(self) -> _ReplayPlugin:
        return self.config.stash[_REPLAY_KEY]

    @property
    def cassette_label(self) -> str:
        try:
            return str(self.path.relative_to(self.config.rootpath))
        except ValueError:
            return str(self.path)

    def setup(self) -> None:
        from .replayer import Unreplayable, prepare

        if self.case.record.kind == "session":
            return
        try:
            self.prepared = prepare(self.case, self.plugin.rules)
        except Unreplayable as exc:
            self.problem = exc
            return
        # FixtureLookupError shows the requesting function's source from item.obj.
        self.obj = self.prepared.call
        assert isinstance(self.parent, CassetteFile)
        info = self.parent.fixture_info(self)
        if not info.names_closure and not self.prepared.resources:
            return  # nothing to set up: skip the request machinery (10,000 items add up)
        from _pytest.fixtures import TopRequest

        self._fixtureinfo = info
        self.fixturenames = list(info.names_closure)
        self._request = TopRequest(self, _ispytest=True)  # type: ignore[arg-type]
        self._request._fillfixtures()
        # Requested through the fixture machinery, so scopes and teardown behave
        # exactly as for a test that names the fixture.
        self.resource_values = {
            name: self._request.getfixturevalue(fixture)
            for name, fixture in self.prepared.resources.items()
        }

    def _record(self, status: str, reason: str = "", detail: str = "") -> None:
        self.replay_status = status
        entry: dict[str, str] = {"status": status}
        if reason:
            entry["reason"] = reason
        if detail:
            entry["detail"] = detail
        self.user_properties.append(("replay", entry))

    def runtest(self) -> None:
        from .replayer import Unreplayable

        if self.case.record.kind == "session":
            self._run_session()
            return
        try:
            if self.problem is not None:
                raise self.problem
            self._run_call()
        except Unreplayable as exc:
            self._unreplayable(exc)

    def _run_call(self) -> None:
        from .replayer import check_twice, execute, judge, updated_payload

        plugin = self.plugin
        prepared = self.prepared
        run = execute(
            prepared,
            resources=self.resource_values,
            mode="pytest",
            nodeid=self.nodeid,
            track_random=plugin.twice,
        )
        self.replay_run = run
        if plugin.twice and run.mismatch is None:
            second = execute(
                prepared,
                resources=self.resource_values,
                mode="pytest",
                nodeid=self.nodeid,
                track_random=True,
            )
            unstable = check_twice(prepared, run, second)
            if unstable is not None:
                self.replay_verdict = unstable
                detail = ", ".join(unstable.paths[:5]) + (
                    f" → {unstable.suggestion}" if unstable.suggestion else ""
                )
                self._record("nondeterministic", detail=detail)
                raise ReplayFailed(unstable.text)
        verdict = judge(prepared, run, cassette=self.cassette_label)
        self.replay_verdict = verdict
        if verdict.ok:
            self._record("matched")
            return
        if plugin.update and verdict.comparison is not None:
            plugin.queue_update(self.case.cassette, self.case.id, updated_payload(prepared, run))
            self._record("updated")
            return
        self._record("diverged")
        raise ReplayFailed(verdict.text)

    def _run_session(self) -> None:
        from .compare import CompareOptions, options_for
        from .replayer import Unreplayable
        from .session import SessionError, run_session_record

        try:
            outcome = run_session_record(
                self.case.record.record_map(),
                cassette=self.cassette_label,
                options=options_for(self.case.key, CompareOptions(), self.plugin.rules),
            )
        except SessionError as exc:
            self._unreplayable(Unreplayable(str(exc), "re-record the session, or prune it"))
            return
        if outcome.ok:
            self._record("matched")
            return
        self._record("diverged")
        raise ReplayFailed(outcome.text)

    def _unreplayable(self, exc: Any) -> None:
        plugin = self.plugin
        if exc.stale:
            plugin.note_stale(self.case.cassette, self.case.id, self.case.record.target)
            if plugin.prune:
                self._record("unreplayable", reason="stale: the target no longer exists")
                pytest.skip(f"stale record, to be pruned: {exc.reason}")
        self._record("unreplayable", reason=exc.reason)
        if plugin.strict:
            from .replayer import short_name

            raise ReplayFailed(
                f"unreplayable record: {short_name(self.case.key)} [{self.case.id}]\n"
                f"  cassette: {self.cassette_label}\n"
                f"  reason:   {exc.reason}\n"
                f"  fix:      {exc.fix}\n"
                "  (--replay-no-strict skips unreplayable records instead)"
            )
        pytest.skip(f"unreplayable: {exc.reason} (fix: {exc.fix})")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ReplayFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        from .replayer import short_name

        return self.path, None, f"replay {short_name(self.case.key)} [{self.case.id}]"


# --- reports ---
_REPORT_KEY = pytest.StashKey["_ReportPlugin"]()
# An item that failed without saying how it replayed (setup error, a bug).
_FALLBACK_STATUS = {"failed": "error", "skipped": "skipped", "passed": "matched"}


def resolve_report_path(config: pytest.Config) -> Path | None:
    """``--replay-report`` (relative to the invocation directory), else ini
    ``replay_report`` (relative to the rootdir), else ``None``."""
    given = config.getoption("replay_report")
    if given:
        return Path(config.invocation_params.dir, str(given)).resolve()
    ini_value = config.getini("replay_report")
    if ini_value:
        return Path(config.rootpath, str(ini_value)).resolve()
    return None


class _ReportPlugin:
    """``--replay-report``: the HTML report of the replay items (``report.py``).

    Registered only when a report is asked for, so a plain replay run pays
    nothing. Each item is turned into plain data where it ran (a worker, or the
    only process); workers send theirs in ``workeroutput["replay_report"]`` and
    the controller writes the page once, at session end. Items are ordered by
    node id, so the page does not depend on ``-n`` or on scheduling.
    """

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.is_worker = hasattr(config, "workerinput")
        self.items: list[dict[str, Any]] = []
        self.outcome: str | None = None
        config.stash[_REPORT_KEY] = self

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not isinstance(item, (ReplayItem, CassetteProblemItem)):
            return report
        if report.when == "call" or (report.when == "setup" and not report.passed):
            try:
                self.items.append(_report_entry(item, report))
            except Exception as exc:  # the report must never break the run it reports on
                self.items.append(_broken_entry(item, report, exc))
        return report

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        entries = (getattr(node, "workeroutput", None) or {}).get("replay_report")
        if isinstance(entries, list):
            self.items.extend(entry for entry in entries if isinstance(entry, dict))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            self.config.workeroutput["replay_report"] = self.items  # type: ignore[attr-defined]
            return
        from .report import ReplayReport, ReportItem

        items = sorted((ReportItem.from_dict(e) for e in self.items), key=lambda i: i.nodeid)
        report = ReplayReport(items, context={"rootdir": str(self.config.rootpath)})
        try:
            report.write(self.path)
        except OSError as exc:
            self.outcome = f"replay report NOT written to {self.path}: {exc}"
            return
        counts = ", ".join(f"{n} {o}" for o, n in report.counts().items() if n)
        self.outcome = f"replay report: {self.path} ({counts or 'no replay items'})"

    @pytest.hookimpl(trylast=True)  # after the replay summary it belongs to
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.outcome is not None:
            terminalreporter.write_line(self.outcome)


def _report_entry(item: pytest.Item, report: pytest.TestReport) -> dict[str, Any]:
    from .report import Raised, ReportItem

    if isinstance(item, CassetteProblemItem):
        return ReportItem.create(
            nodeid=item.nodeid,
            key=item.path.name,
            record_id="",
            outcome="error",
            cassette=str(item.path),
            message=item.problem.message,
        ).to_dict()
    assert isinstance(item, ReplayItem)
    status = item.replay_status or _FALLBACK_STATUS.get(report.outcome, "error")
    if report.when == "setup":
        status = "skipped" if report.skipped else "error"
    prepared, run, verdict = item.prepared, item.replay_run, item.replay_verdict
    fields: dict[str, Any] = {}
    if prepared is not None:
        fields.update(
            inputs=prepared.inputs,
            metadata=prepared.user_metadata,
            duration_ms_recorded=prepared.recorded_duration_ms,
        )
    if run is not None:
        fields["duration_ms_new"] = run.duration_ms
    if verdict is not None and verdict.comparison is not None:
        fields["differences"] = verdict.comparison.differences
    # Both sides in full only where someone will look at them: not for the
    # (usually many) matched items, and not for a non-determinism verdict,
    # whose two sides are two new runs rather than recorded vs new.
    if status in ("diverged", "updated", "error") and prepared is not None and run is not None:
        from .compare import roundtrip

        expected = prepared.expected()
        fields.update(
            expected=expected.value
            if expected.error is None
            else Raised(expected.error.type, expected.error.message),
            has_expected=True,
            has_actual=True,
        )
        if run.exception is not None:
            fields["actual"] = Raised(
                f"{type(run.exception).__module__}.{type(run.exception).__qualname__}",
                str(run.exception),
            )
        else:
            try:  # the same representation the comparison used
                fields["actual"] = roundtrip(run.value)
            except Exception:
                fields["actual"] = run.value
    message = verdict.text if verdict is not None and not verdict.ok else ""
    if not message and not report.passed:
        message = report.longreprtext
    return ReportItem.create(
        nodeid=item.nodeid,
        key=item.case.key,
        record_id=item.case.id,
        outcome=status,
        cassette=item.cassette_label,
        message=message,
        **fields,
    ).to_dict()


def _broken_entry(item: pytest.Item, report: pytest.TestReport, exc: Exception) -> dict[str, Any]:
    from .report import ReportItem

    case = getattr(item, "case", None)
    return ReportItem.create(
        nodeid=item.nodeid,
        key=str(getattr(case, "key", item.name)),
        record_id=str(getattr(case, "id", "")),
        outcome="error",
        message=f"(the report could not describe this item: {type(exc).__name__}: {exc})\n"
        + report.longreprtext,
    ).to_dict()


# --- histories and linearizability ---
_HISTORY_KEY = pytest.StashKey["tuple[History, Path]"]()
_HISTORY_FILE = "replay-history.jsonl"


@pytest.fixture
def history(request: pytest.FixtureRequest, tmp_path: Path) -> History:
    """A fresh Jepsen-style history recorder (``pytest_replay.History``) for this test.

    When the test fails, its report gets a "replay history" section (a
    per-process timeline) and the whole history is written as JSON lines to
    the test's ``tmp_path``.
    """
    from .history import History

    recorder = History(name=request.node.nodeid)
    request.node.stash[_HISTORY_KEY] = (recorder, tmp_path)
    return recorder


class _HistoryPlugin:
    """Attaches recorded histories and linearizability counterexamples to failing reports."""

    def __init__(self, config: pytest.Config) -> None:
        html_dir = get_option(config, "replay_lin_html")
        self.html_dir: Path | None = (
            None if not html_dir else config.invocation_params.dir / str(html_dir)
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when == "call" and report.failed:
            attached = item.stash.get(_HISTORY_KEY, None)
            if attached is not None:
                section = _history_section(*attached)
                if section is not None:
                    report.sections.append(("replay history", section))
            if self.html_dir is not None and call.excinfo is not None:
                written = _write_lin_html(call.excinfo.value, self.html_dir, item.nodeid)
                if written is not None:
                    report.sections.append(("replay linearizability", written))
        return report


def _history_section(recorder: History, tmp_path: Path) -> str | None:
    from .history import dump_jsonl, format_timeline

    events = recorder.events
    if not events:
        return None
    path = tmp_path / _HISTORY_FILE
    try:
        # default=repr: a value that JSON cannot hold must not cost the report.
        dump_jsonl(events, path, default=repr)
        saved = f"full history ({len(events)} events, JSON lines): {path}"
    except (OSError, ValueError) as exc:
        saved = f"the full history could not be written to {path}: {exc}"
    return "\n".join([saved, *format_timeline(events)])


def _write_lin_html(exc: BaseException, html_dir: Path, nodeid: str) -> str | None:
    """Write the HTML counterexample of a failed ``assert_linearizable`` found on
    ``exc`` (or its cause/context); the section text naming the file, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        result = getattr(current, "result", None)
        to_html = getattr(result, "to_html", None)
        if callable(to_html) and getattr(result, "verdict", "ok") != "ok":
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150] or "test"
            target = html_dir / f"{name}.html"
            try:
                written = to_html(target)
            except OSError as err:
                return f"could not write the HTML counterexample to {target}: {err}"
            return f"HTML counterexample: {written}"
        current = current.__cause__ or current.__context__
    return None
