"""A directory of cassettes: pending records, shards, the merge, the lock, the report.

The recorder produces :class:`PendingRecord` objects (a record's packed payload
plus where it sorts); a :class:`RecordBuffer` deduplicates them by record id
and keeps at most ``max_records`` per key. Under pytest-xdist each worker
writes its buffer to a *shard* file; the controller :func:`merge` s its own
buffer and the shards into the cassettes. The merge is deterministic:

- records sort by ``(position of the producing test in collection order,
  call order within that test)``; calls outside any test have position -1;
- the same record id seen more than once keeps its first occurrence in that
  order (ties, which only happen between processes, break on the bytes);
- ``new`` mode keeps every existing record untouched and appends the unseen
  ids in that order, up to ``max_records``; ``rewrite`` mode replaces the
  cassettes of the keys recorded in this run;
- a record whose content did not change (everything but the volatile ``meta``:
  durations, node ids, user metadata) keeps its old bytes, and a cassette whose
  records did not change is not written at all.

Cassettes are read and written under a :class:`DirectoryLock`, so two
independent runs on the same directory never lose or duplicate a record.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import msgpack

__all__ = [
    "LOCK_NAME",
    "DirectoryLock",
    "KeyResult",
    "LockTimeout",
    "MergeReport",
    "PendingRecord",
    "RecordBuffer",
    "ShardError",
    "merge",
    "read_shard",
    "stable_bytes",
    "write_shard",
]

LOCK_NAME = ".pytest-replay.lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: The temp file of an atomic cassette rewrite (cassette.py: ``tempfile.mkstemp(
#: prefix=f".{name}.", suffix=".tmp")``, 8 random characters in between).
_TEMP_NAME = re.compile(r"\A\..+\.cassette\.[a-z0-9_]{8}\.tmp\Z")
SHARD_FORMAT = "pytest-replay-shard"
SHARD_VERSION = 1
#: Unreplayable records and warnings listed one by one in the report; the rest are counted.
REPORT_LIMIT = 10
#: A buffer holds every distinct call of a key up to this many (so that the
#: counts in the report are exact and the same under any -n); beyond it, it
#: keeps 2 x max_records and prunes back to max_records, which bounds memory
#: for a long-running recording (a repeat of a pruned call then counts again).
PRUNE_FLOOR = 1000


# --------------------------------------------------------------------------- pending records


class PendingRecord(NamedTuple):
    """One recorded call waiting to be written: its payload and where it sorts.

    Tuple order is sort order: (test position, call sequence, id, payload).
    """

    test: int  # position of the producing test in collection order; -1 outside tests
    seq: int  # call order within the process
    id: str
    payload: bytes
    key: str
    target: str
    unreplayable: str | None
    cap: int


class RecordBuffer:
    """Recorded calls of one process, deduplicated, at most ``cap`` per key kept.

    Which N are kept does not depend on arrival order: a key's buffer keeps
    the N smallest records by sort order, so the union of several buffers
    still contains the global first N (see :data:`PRUNE_FLOOR`).
    """

    def __init__(self) -> None:
        self.records: dict[str, dict[str, PendingRecord]] = {}
        # key -> calls dropped by pruning to max_records (see _prune)
        self.over_cap: dict[str, int] = {}
        self.duplicates = 0
        self.dropped_failed = 0
        self.secrets_redacted = 0
        self.rule_redactions = 0
        self.warnings: list[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(by_id) for by_id in self.records.values())

    def warn(self, message: str) -> None:
        with self._lock:
            if message not in self.warnings:
                self.warnings.append(message)

    def commit(self, records: Iterable[PendingRecord]) -> None:
        # Runs once per recorded call (in batches): locals and tuple unpacking
        # instead of attribute lookups keep it a fraction of a microsecond.
        with self._lock:
            store = self.records
            duplicates = 0
            for record in records:
                _test, _seq, rid, _payload, key, _target, _why, cap = record
                by_id = store.get(key)
                if by_id is None:
                    by_id = store[key] = {}
                old = by_id.get(rid)
                if old is None:
                    by_id[rid] = record
                    if len(by_id) > PRUNE_FLOOR and len(by_id) > 2 * cap:
                        self._prune(key, by_id, cap)
                    continue
                duplicates += 1
                if record < old:
                    by_id[rid] = record
            self.duplicates += duplicates

    def _prune(self, key: str, by_id: dict[str, PendingRecord], cap: int) -> None:
        # Amortised: prune to cap once 2*cap distinct ids are held. A pruned id
        # seen again is added (and pruned) again: counts are of calls.
        keep = sorted(by_id.values())[:cap]
        self.over_cap[key] = self.over_cap.get(key, 0) + len(by_id) - len(keep)
        by_id.clear()
        by_id.update((record.id, record) for record in keep)

    def absorb(self, other: RecordBuffer) -> None:
        """Add another buffer's records and counters (shards into the controller's buffer)."""
        for by_id in other.records.values():
            self.commit(by_id.values())
        for key, count in other.over_cap.items():
            self.over_cap[key] = self.over_cap.get(key, 0) + count
        self.duplicates += other.duplicates
        self.dropped_failed += other.dropped_failed
        self.secrets_redacted += other.secrets_redacted
        self.rule_redactions += other.rule_redactions
        for message in other.warnings:
            self.warn(message)


# --------------------------------------------------------------------------- shards


class ShardError(Exception):
    """A shard file that cannot be read (names the file and the problem)."""


def write_shard(buffer: RecordBuffer, path: str | os.PathLike[str]) -> Path:
    """Write ``buffer`` to ``path`` atomically (temp file in the same directory, rename)."""
    path = Path(path)
    header = {
        "format": SHARD_FORMAT,
        "version": SHARD_VERSION,
        "duplicates": buffer.duplicates,
        "dropped_failed": buffer.dropped_failed,
        "secrets_redacted": buffer.secrets_redacted,
        "rule_redactions": buffer.rule_redactions,
        "warnings": list(buffer.warnings),
        "over_cap": dict(buffer.over_cap),
    }
    packer = msgpack.Packer(use_bin_type=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(packer.pack(header))
            for key in sorted(buffer.records):
                for record in buffer.records[key].values():
                    out.write(
                        packer.pack(
                            [
                                record.test,
                                record.seq,
                                record.id,
                                record.payload,
                                record.key,
                                record.target,
                                record.unreplayable,
                                record.cap,
                            ]
                        )
                    )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_shard(path: str | os.PathLike[str]) -> RecordBuffer:
    """Read a shard written by :func:`write_shard`; raises :class:`ShardError`."""
    path = Path(path)
    buffer = RecordBuffer()
    try:
        with path.open("rb") as stream:
            unpacker = msgpack.Unpacker(stream, raw=False, strict_map_key=False)
            header = next(unpacker, None)
            if not isinstance(header, dict) or header.get("format") != SHARD_FORMAT:
                raise ShardError(f"{path}: not a pytest-replay shard")
            if header.get("version") != SHARD_VERSION:
                raise ShardError(
                    f"{path}: shard version {header.get('version')!r}, expected {SHARD_VERSION}"
                )
            buffer.duplicates = int(header["duplicates"])
            buffer.dropped_failed = int(header["dropped_failed"])
            buffer.secrets_redacted = int(header["secrets_redacted"])
            buffer.rule_redactions = int(header["rule_redactions"])
            buffer.warnings = [str(w) for w in header["warnings"]]
            buffer.over_cap = {str(k): int(v) for k, v in header["over_cap"].items()}
            batch = []
            for index, item in enumerate(unpacker):
                try:
                    test, seq, rid, payload, key, target, reason, cap = item
                    batch.append(
                        PendingRecord(
                            int(test), int(seq), str(rid), bytes(payload), str(key),
                            str(target), None if reason is None else str(reason), int(cap),
                        )
                    )  # fmt: skip
                except (TypeError, ValueError) as exc:
                    raise ShardError(f"{path}: entry {index} is malformed ({exc})") from None
            buffer.commit(batch)
    except OSError as exc:
        raise ShardError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (msgpack.UnpackException, ValueError, KeyError, TypeError) as exc:
        # TypeError: a field of the wrong type, or an unhashable map key
        raise ShardError(f"{path}: damaged shard ({exc})") from None
    return buffer


# --------------------------------------------------------------------------- the lock


class LockTimeout(Exception):
    """The replay directory stayed locked by another run for longer than the timeout."""


class DirectoryLock:
    """An exclusive lock on a replay directory, held while cassettes are read and written.

    The lock is an OS file lock (``flock``) on ``<dir>/.pytest-replay.lock``:
    if the holder crashes the kernel releases it, so a stale lock file left
    behind never blocks anyone. The file holds the holder's pid and host for
    the timeout message and is removed on release. Without ``fcntl``
    (Windows) the file itself is the lock (created exclusively); it is
    considered stale when its pid is no longer running on this host or it is
    older than ``stale_after`` seconds.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        timeout: float = 60.0,
        poll: float = 0.02,
        stale_after: float = 600.0,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.timeout = timeout
        self.poll = poll
        self.stale_after = stale_after
        self._fd: int | None = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _stamp(self) -> bytes:
        return f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n".encode()

    def holder(self) -> str:
        """Who holds the lock, as written in the lock file (for messages)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace").split()
        except OSError:
            return "unknown"
        if len(text) >= 2:
            return f"pid {text[0]} on {text[1]}"
        return "unknown"

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            self._acquire_exclusive(deadline)
            return
        while True:
            # O_NOFOLLOW: a lock "file" planted as a symlink must not make us
            # truncate and stamp whatever it points to.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                self._wait(deadline)
                continue
            # A releasing holder unlinks the file before unlocking: if the path
            # no longer names the file we locked, start again on the new one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, self._stamp())
            except OSError:
                # A full disk: give the lock back, or this process would hold it
                # (through a leaked fd) until it exits.
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                os.close(fd)
                raise
            self._fd = fd
            return

    def _acquire_exclusive(self, deadline: float) -> None:  # pragma: no cover - Windows
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._stale():
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)
                    continue
                self._wait(deadline)
                continue
            os.write(fd, self._stamp())
            self._fd = fd
            return

    def _stale(self) -> bool:  # pragma: no cover - Windows
        try:
            stamp = self.path.read_text(encoding="utf-8").split()
            age = time.time() - os.stat(self.path).st_mtime
        except (OSError, ValueError):
            return False
        if age > self.stale_after:
            return True
        if len(stamp) >= 2 and stamp[1] == socket.gethostname():
            try:
                os.kill(int(stamp[0]), 0)
            except (OSError, ValueError):
                return True
        return False

    def _wait(self, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"{self.directory}: locked by another pytest-replay run ({self.holder()}, "
                f"lock file {self.path}) for more than {self.timeout:g}s; wait for it to "
                "finish, or delete the lock file if that process is gone"
            )
        time.sleep(self.poll)

    def remove_orphans(self) -> list[str]:
        """Delete the temp files interrupted rewrites left; returns their names.

        Call it while holding the lock. Recording and ``--replay-update`` /
        ``--replay-prune`` write cassettes only under this lock, so a temp file
        of the rewrite's naming pattern that is older than the lock file we just
        stamped belongs to a writer that died mid-rewrite (the kernel released
        its lock). Younger ones, and anything not a regular file, are left
        alone: a program using the Cassette API without the lock may be
        writing one right now.
        """
        if self._fd is None:
            raise RuntimeError(f"{self.path}: remove_orphans() needs the lock held")
        try:
            since = os.fstat(self._fd).st_mtime_ns
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        removed: list[str] = []
        for entry in entries:
            if not _TEMP_NAME.match(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode) or info.st_mtime_ns >= since:
                    continue
                os.unlink(entry.path)
            except OSError:
                continue  # gone already, or not ours to delete: never fail a run for it
            removed.append(entry.name)
        return removed

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(fd)  # closing drops the flock


# --------------------------------------------------------------------------- merging


def strip_meta(raw: Any) -> Any:
    """A decoded record map without ``meta``, at every level of ``children``.

    What merging (:func:`stable_bytes`) and the timeline diff both compare.
    """
    if isinstance(raw, dict):
        out = {k: v for k, v in raw.items() if k != "meta"}
        children = out.get("children")
        if isinstance(children, list):
            out["children"] = [strip_meta(child) for child in children]
        return out
    return raw


def stable_bytes(payload: bytes) -> bytes:
    """A record payload without its volatile parts (``meta``, also in children).

    Two records with equal stable bytes are the same call with the same
    outcome; only durations, node ids or user metadata may differ.
    """
    raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    return bytes(msgpack.packb(strip_meta(raw), use_bin_type=True))


def _payload_id(payload: bytes) -> str:
    raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    if not isinstance(raw, dict) or "id" not in raw:
        raise ValueError("record has no id")
    return str(raw["id"])


@dataclass
class KeyResult:
    """What the merge did to one cassette."""

    key: str
    path: Path
    new: int = 0
    unchanged: int = 0
    changed: int = 0
    removed: int = 0
    over_cap: int = 0
    cap: int = 0
    written: bool = False


@dataclass
class MergeReport:
    """Outcome of a recording: per-cassette counts, problems, and the summary lines."""

    replay_dir: Path
    mode: str
    keys: list[KeyResult] = field(default_factory=list)
    duplicates: int = 0
    dropped_failed: int = 0
    secrets_redacted: int = 0
    rule_redactions: int = 0
    unreplayable: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def new(self) -> int:
        return sum(k.new for k in self.keys)

    @property
    def unchanged(self) -> int:
        return sum(k.unchanged for k in self.keys)

    @property
    def changed(self) -> int:
        return sum(k.changed for k in self.keys)

    @property
    def removed(self) -> int:
        return sum(k.removed for k in self.keys)

    @property
    def over_cap(self) -> int:
        return sum(k.over_cap for k in self.keys)

    def lines(self, *, hints: bool = True) -> Iterator[str]:
        """The summary, one line at a time (the terminal section's body)."""
        yield f"cassettes: {self.replay_dir} (mode: {self.mode})"
        yield f"functions recorded: {len(self.keys)}"
        changed = f"{self.changed} changed"
        if self.changed:
            if self.mode == "new":
                changed += " (kept as recorded"
                changed += "; --replay-record-mode=rewrite replaces them)" if hints else ")"
            else:
                changed += " (rewritten)"
        parts = [f"{self.new} new", f"{self.unchanged} unchanged", changed]
        if self.mode == "rewrite" and self.removed:
            parts.append(f"{self.removed} removed")
        yield "records: " + ", ".join(parts)
        if self.duplicates:
            yield f"calls seen again, not stored twice: {self.duplicates}"
        if self.over_cap:
            caps = sorted({k.cap for k in self.keys if k.over_cap})
            yield (
                f"calls over max_records ({', '.join(map(str, caps))}), not stored: "
                f"{self.over_cap}"
            )
        if self.dropped_failed:
            tail = " (--replay-record-failed keeps them)" if hints else ""
            yield f"calls from failed tests, not recorded: {self.dropped_failed}{tail}"
        if self.unreplayable:
            yield f"unreplayable records: {len(self.unreplayable)}"
            for key, rid, reason in self.unreplayable[:REPORT_LIMIT]:
                yield f"  {key} [{rid}]: {reason}"
            if len(self.unreplayable) > REPORT_LIMIT:
                yield f"  ... and {len(self.unreplayable) - REPORT_LIMIT} more"
        tail = " (built-in scanner; --replay-allow-secrets turns it off)" if hints else ""
        yield f"secrets redacted: {self.secrets_redacted}{tail}"
        if self.rule_redactions:
            yield f"values redacted by redact= rules: {self.rule_redactions}"
        for message in self.warnings[:REPORT_LIMIT]:
            yield f"warning: {message}"
        if len(self.warnings) > REPORT_LIMIT:
            yield f"warning: ... and {len(self.warnings) - REPORT_LIMIT} more"
        for message in self.errors:
            yield f"ERROR: {message}"


def merge(
    buffers: Sequence[RecordBuffer],
    replay_dir: str | os.PathLike[str],
    *,
    mode: str = "new",
    lock_timeout: float = 60.0,
) -> MergeReport:
    """Write the records of ``buffers`` into the cassettes of ``replay_dir``.

    Never raises for I/O problems: they are in ``report.errors`` (one message
    naming the directory), and cassettes that were not fully written keep
    their previous contents.
    """
    from .cassette import Cassette, CassetteError, cassette_path

    directory = Path(replay_dir)
    report = MergeReport(directory, mode)
    combined = RecordBuffer()
    for buffer in buffers:
        combined.absorb(buffer)
    report.duplicates = combined.duplicates
    report.dropped_failed = combined.dropped_failed
    report.secrets_redacted = combined.secrets_redacted
    report.rule_redactions = combined.rule_redactions
    report.warnings = list(combined.warnings)
    if not combined.records:
        return report
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(directory, timeout=lock_timeout)
        lock.acquire()
    except OSError as exc:
        report.errors.append(_io_error(directory, exc))
        return report
    except LockTimeout as exc:
        report.errors.append(str(exc))
        return report
    try:
        lock.remove_orphans()
        for key in sorted(combined.records):
            candidates = sorted(combined.records[key].values())
            cap = candidates[0].cap
            path = cassette_path(directory, key)
            result = KeyResult(key, path, cap=cap, over_cap=combined.over_cap.get(key, 0))
            try:
                _merge_key(Cassette, path, key, candidates, mode, result, report)
            except CassetteError as exc:
                report.errors.append(f"{exc} (its new records were not written)")
                continue
            except ValueError as exc:
                # Refused by the cassette format (a key over 4096 characters, a record
                # over the 64 MiB payload limit): this key only, never the whole run.
                report.errors.append(f"{path}: {exc} (its new records were not written)")
                continue
            except OSError as exc:
                report.errors.append(_io_error(directory, exc))
                break  # a full or read-only disk fails every next write too
            report.keys.append(result)
    finally:
        lock.release()
    return report


def _io_error(directory: Path, exc: OSError) -> str:
    return (
        f"cannot write cassettes to {directory}: {exc.strerror or exc}"
        f"{' (' + exc.filename + ')' if isinstance(exc.filename, str) else ''}; "
        "the previous cassettes are left intact"
    )


def _merge_key(
    cassette_cls: Any,
    path: Path,
    key: str,
    candidates: list[PendingRecord],
    mode: str,
    result: KeyResult,
    report: MergeReport,
) -> None:
    from .cassette import CassetteError

    cassette = None
    old: list[tuple[str, bytes]] = []
    if path.is_symlink():
        # Appending would write through the link, possibly outside the replay dir.
        raise CassetteError(
            path,
            "is a symbolic link; recording only writes regular files inside the replay "
            "directory",
            hint="replace the link by the cassette file itself",
        )
    if path.exists():
        cassette = cassette_cls.open(path)
        if cassette.key != key:
            raise CassetteError(
                path, f"holds key {cassette.key!r}, not {key!r}", hint="move it out of the way"
            )
        try:
            old = [(_payload_id(payload), payload) for payload in cassette.payloads()]
        except (ValueError, msgpack.UnpackException) as exc:
            raise CassetteError(path, f"has a record without an id ({exc})", hint="") from None
    old_by_id = {rid: payload for rid, payload in old}
    cap = result.cap

    def same(payload_old: bytes, record: PendingRecord) -> bool:
        return payload_old == record.payload or stable_bytes(payload_old) == stable_bytes(
            record.payload
        )

    def note_unreplayable(record: PendingRecord) -> None:
        if record.unreplayable:
            report.unreplayable.append((key, record.id, record.unreplayable))

    if mode == "rewrite":
        final: list[bytes] = []
        kept = candidates[:cap]
        result.over_cap += len(candidates) - len(kept)
        seen = set()
        for record in kept:
            seen.add(record.id)
            previous = old_by_id.get(record.id)
            if previous is None:
                result.new += 1
                final.append(record.payload)
            elif same(previous, record):
                result.unchanged += 1
                final.append(previous)
            else:
                result.changed += 1
                final.append(record.payload)
            note_unreplayable(record)
        result.removed = sum(1 for rid in old_by_id if rid not in seen)
        if cassette is None:
            cassette_cls.create(path, key, final)
            result.written = True
        elif final != [payload for _, payload in old] or cassette.torn_tail is not None:
            cassette.rewrite(final)
            result.written = True
        return

    fresh: list[bytes] = []
    room = cap - len(old)
    for record in candidates:
        previous = old_by_id.get(record.id)
        if previous is not None:
            if same(previous, record):
                result.unchanged += 1
            else:
                result.changed += 1
            continue
        if room <= 0:
            result.over_cap += 1
            continue
        room -= 1
        result.new += 1
        fresh.append(record.payload)
        note_unreplayable(record)
    if cassette is None:
        if fresh:
            cassette_cls.create(path, key, fresh)
            result.written = True
    elif fresh:
        cassette.append(fresh)
        result.written = True
