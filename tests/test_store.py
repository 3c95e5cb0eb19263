"""store.py: the record buffer, shards, the deterministic merge, the lock and the report."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay import codec
from pytest_replay.cassette import Cassette, cassette_path
from pytest_replay.store import (
    LOCK_NAME,
    DirectoryLock,
    LockTimeout,
    MergeReport,
    PendingRecord,
    RecordBuffer,
    ShardError,
    merge,
    read_shard,
    stable_bytes,
    write_shard,
)


def payload(rid: str, result: Any = 1, duration: float = 1.0, key: str = "k") -> bytes:
    return codec.dumps(
        {
            "id": rid, "key": key, "target": "m:k", "kind": "call", "args": [rid], "kwargs": {},
            "result": result, "children": [], "boundary": False,
            "meta": {"duration_ms": duration}, "unreplayable": None,
        }
    )  # fmt: skip


def rec(
    rid: str, test: int = 0, seq: int = 0, cap: int = 100, key: str = "k", **kw: Any
) -> PendingRecord:
    reason = kw.pop("unreplayable", None)
    return PendingRecord(test, seq, rid, payload(rid, key=key, **kw), key, "m:k", reason, cap)


def ids(directory: Path, key: str = "k") -> list[str]:
    return [str(r["id"]) for r in Cassette.open(cassette_path(directory, key)).records()]


# --------------------------------------------------------------------------- the buffer


def test_duplicates_keep_the_first_in_sort_order_and_are_counted() -> None:
    buffer = RecordBuffer()
    buffer.commit([rec("a", test=5, seq=9), rec("a", test=2, seq=30), rec("a", test=2, seq=40)])
    (kept,) = buffer.records["k"].values()
    assert (kept.test, kept.seq) == (2, 30)
    assert buffer.duplicates == 2


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(list(range(40))), cap=st.integers(1, 10))
def test_the_first_n_distinct_are_kept_whatever_the_arrival_order(
    order: list[int], cap: int
) -> None:
    from pytest_replay import store

    # Prune at 2 x max_records right away (in production only past PRUNE_FLOOR).
    saved, store.PRUNE_FLOOR = store.PRUNE_FLOOR, 0
    try:
        buffer = RecordBuffer()
        for i in order:  # one at a time: pruning happens along the way
            buffer.commit([rec(f"id{i:02d}", test=i, cap=cap)])
    finally:
        store.PRUNE_FLOOR = saved
    kept = sorted(r.test for r in buffer.records["k"].values())
    assert kept[:cap] == list(range(cap))
    assert len(kept) <= 2 * cap
    assert buffer.over_cap.get("k", 0) == 40 - len(kept)


def test_absorb_adds_records_and_counters() -> None:
    one, two = RecordBuffer(), RecordBuffer()
    one.commit([rec("a"), rec("a")])
    two.commit([rec("a", test=-1), rec("b")])
    two.secrets_redacted, two.dropped_failed, two.rule_redactions = 2, 3, 4
    two.warn("w")
    two.warn("w")
    one.absorb(two)
    assert sorted(one.records["k"]) == ["a", "b"]
    assert one.records["k"]["a"].test == -1
    assert (one.duplicates, one.secrets_redacted, one.dropped_failed, one.rule_redactions) == (
        2, 2, 3, 4,
    )  # fmt: skip
    assert one.warnings == ["w"]


# --------------------------------------------------------------------------- shards


def test_shard_round_trip(tmp_path: Path) -> None:
    buffer = RecordBuffer()
    buffer.commit([rec("a", unreplayable="input Opaque socket"), rec("b", test=3, seq=1)])
    buffer.commit([rec(f"x{i}", test=9, cap=1) for i in range(4)])
    buffer.secrets_redacted = 7
    buffer.warn("careful")
    path = write_shard(buffer, tmp_path / "gw1.shard")
    assert [p.name for p in tmp_path.iterdir()] == ["gw1.shard"]  # no temp file left
    back = read_shard(path)
    assert back.records == buffer.records
    assert back.over_cap == buffer.over_cap
    assert (back.secrets_redacted, back.warnings) == (7, ["careful"])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (msgpack.packb({"format": "other"}), "not a pytest-replay shard"),
        (msgpack.packb({"format": "pytest-replay-shard", "version": 99}), "shard version 99"),
        (b"\xc1\xc1", "damaged shard"),
        (b"", "not a pytest-replay shard"),
    ],
)
def test_bad_shards_name_the_file(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "gw0.shard"
    path.write_bytes(content)
    with pytest.raises(ShardError, match=match) as info:
        read_shard(path)
    assert str(path) in str(info.value)


def test_malformed_shard_entry_and_missing_shard(tmp_path: Path) -> None:
    path = write_shard(RecordBuffer(), tmp_path / "gw0.shard")
    with path.open("ab") as out:
        out.write(msgpack.packb(["too", "short"]))
    with pytest.raises(ShardError, match="entry 0 is malformed"):
        read_shard(path)
    with pytest.raises(ShardError, match="cannot be read"):
        read_shard(tmp_path / "gw9.shard")


# --------------------------------------------------------------------------- merging


def buffer_of(*records: PendingRecord) -> RecordBuffer:
    buffer = RecordBuffer()
    buffer.commit(records)
    return buffer


def test_merge_is_independent_of_how_records_are_split_between_buffers(tmp_path: Path) -> None:
    records = [rec(f"r{i}", test=i % 7, seq=i, cap=10) for i in range(30)]
    reference = merge([buffer_of(*records)], tmp_path / "one")
    shuffled = records[:]
    random.Random(4).shuffle(shuffled)
    parts = [buffer_of(*shuffled[i::3]) for i in range(3)]
    parts.append(buffer_of(*shuffled[:5]))  # the same calls seen on a fourth worker
    merged = merge(parts, tmp_path / "many")
    assert (tmp_path / "one" / "k.cassette").read_bytes() == (
        tmp_path / "many" / "k.cassette"
    ).read_bytes()
    assert (reference.new, merged.new, merged.over_cap) == (10, 10, 20)
    assert merged.duplicates == 5
    expected = [r.id for r in sorted(records)[:10]]
    assert ids(tmp_path / "one") == expected


def test_new_mode_appends_unseen_and_counts_unchanged_and_changed(tmp_path: Path) -> None:
    merge([buffer_of(rec("a"), rec("b", seq=1))], tmp_path)
    before = (tmp_path / "k.cassette").read_bytes()
    report = merge(
        [buffer_of(
            rec("a", duration=99.0),  # only meta differs: unchanged
            rec("b", seq=1, result=2),  # result differs: changed, kept as recorded
            rec("c", seq=2),
        )],
        tmp_path,
    )  # fmt: skip
    assert (report.new, report.unchanged, report.changed) == (1, 1, 1)
    assert ids(tmp_path) == ["a", "b", "c"]
    assert (tmp_path / "k.cassette").read_bytes().startswith(before)  # appended only


def test_rewrite_mode_replaces_keeps_unchanged_bytes_and_drops_the_rest(tmp_path: Path) -> None:
    merge([buffer_of(rec("a"), rec("b", seq=1), rec("c", seq=2))], tmp_path)
    old_a = next(Cassette.open(tmp_path / "k.cassette").payloads())
    report = merge(
        [buffer_of(rec("b", seq=0, result=5), rec("a", seq=1, duration=3.0), rec("d", seq=2))],
        tmp_path,
        mode="rewrite",
    )
    assert (report.new, report.unchanged, report.changed, report.removed) == (1, 1, 1, 1)
    assert ids(tmp_path) == ["b", "a", "d"]
    assert list(Cassette.open(tmp_path / "k.cassette").payloads())[1] == old_a  # old meta kept


def test_an_unchanged_cassette_is_not_written_at_all(tmp_path: Path) -> None:
    merge([buffer_of(rec("a"), rec("b", seq=1))], tmp_path)
    path = tmp_path / "k.cassette"
    stamp = (path.stat().st_ino, path.stat().st_mtime_ns)
    for mode in ("new", "rewrite"):
        report = merge([buffer_of(rec("a", duration=5.0), rec("b", seq=1))], tmp_path, mode=mode)
        assert (report.unchanged, report.keys[0].written) == (2, False)
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp


def test_new_mode_respects_the_cap_including_existing_records(tmp_path: Path) -> None:
    merge([buffer_of(rec("a", cap=3), rec("b", seq=1, cap=3))], tmp_path)
    report = merge([buffer_of(*(rec(f"n{i}", seq=i, cap=3) for i in range(4)))], tmp_path)
    assert (report.new, report.over_cap) == (1, 3)
    assert ids(tmp_path) == ["a", "b", "n0"]


def test_rewrite_repairs_a_torn_tail(tmp_path: Path) -> None:
    merge([buffer_of(rec("a"))], tmp_path)
    path = tmp_path / "k.cassette"
    with path.open("ab") as out:
        out.write(b"\x92\xc4\x40partial")
    merge([buffer_of(rec("a"))], tmp_path, mode="rewrite")
    assert Cassette.open(path).verify().ok
    assert ids(tmp_path) == ["a"]


def test_stable_bytes_ignore_meta_at_every_level() -> None:
    def with_child(duration: float, result: int) -> bytes:
        child = {"id": "c", "meta": {"duration_ms": duration}, "result": result}
        return codec.dumps({"id": "p", "children": [child], "meta": {"nodeid": str(duration)}})

    assert stable_bytes(with_child(1.0, 1)) == stable_bytes(with_child(2.0, 1))
    assert stable_bytes(with_child(1.0, 1)) != stable_bytes(with_child(1.0, 2))


def test_unreplayable_records_are_listed(tmp_path: Path) -> None:
    report = merge([buffer_of(rec("a", unreplayable="input Opaque: socket"))], tmp_path)
    assert report.unreplayable == [("k", "a", "input Opaque: socket")]
    assert "  k [a]: input Opaque: socket" in list(report.lines())


def test_a_cassette_of_another_key_is_an_error_and_untouched(tmp_path: Path) -> None:
    Cassette.create(tmp_path / "k.cassette", "other", [payload("z")])
    before = (tmp_path / "k.cassette").read_bytes()
    report = merge([buffer_of(rec("a"))], tmp_path)
    assert len(report.errors) == 1
    assert "holds key 'other', not 'k'" in report.errors[0]
    assert (tmp_path / "k.cassette").read_bytes() == before


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_write_failure_is_one_error_naming_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    merge([buffer_of(rec("a"), rec("a", key="k2"))], tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Cassette, "append", fail)
    report = merge([buffer_of(rec("b"), rec("b", key="k2"))], tmp_path)
    assert report.errors == [
        f"cannot write cassettes to {tmp_path}: {os.strerror(code)}; "
        "the previous cassettes are left intact"
    ]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_interrupted_atomic_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merge([buffer_of(rec("a"))], tmp_path)
    before = (tmp_path / "k.cassette").read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    report = merge([buffer_of(rec("b"))], tmp_path, mode="rewrite")
    assert report.errors
    assert "No space left on device" in report.errors[0]
    monkeypatch.undo()
    assert (tmp_path / "k.cassette").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.cassette"]


def test_nothing_recorded_touches_nothing(tmp_path: Path) -> None:
    report = merge([RecordBuffer()], tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert list(report.lines())[:3] == [
        f"cassettes: {tmp_path / 'never'} (mode: new)",
        "functions recorded: 0",
        "records: 0 new, 0 unchanged, 0 changed",
    ]


def test_report_lines() -> None:
    report = MergeReport(Path("/c"), "new")
    report.duplicates, report.dropped_failed, report.secrets_redacted = 4, 2, 1
    report.warnings = [f"w{i}" for i in range(12)]
    report.errors = ["boom"]
    report.unreplayable = [("k", f"id{i}", "why") for i in range(11)]
    lines = list(report.lines())
    assert "calls seen again, not stored twice: 4" in lines
    assert "calls from failed tests, not recorded: 2 (--replay-record-failed keeps them)" in lines
    assert "unreplayable records: 11" in lines
    assert "  ... and 1 more" in lines
    assert "warning: ... and 2 more" in lines
    assert lines[-1] == "ERROR: boom"
    assert "secrets redacted: 1" in report.lines(hints=False)


# --------------------------------------------------------------------------- the lock


def test_lock_is_exclusive_and_its_file_goes_away(tmp_path: Path) -> None:
    order: list[str] = []
    first = DirectoryLock(tmp_path)
    first.acquire()
    assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())

    def contender() -> None:
        with DirectoryLock(tmp_path, timeout=10):
            order.append("second")

    thread = threading.Thread(target=contender)
    thread.start()
    time.sleep(0.2)
    order.append("first done")
    first.release()
    thread.join()
    assert order == ["first done", "second"]
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_live_holder_makes_others_time_out_with_a_clear_message(tmp_path: Path) -> None:
    with DirectoryLock(tmp_path):
        with pytest.raises(LockTimeout) as info:
            DirectoryLock(tmp_path, timeout=0.2).acquire()
    message = str(info.value)
    assert f"{tmp_path}: locked by another pytest-replay run (pid {os.getpid()}" in message
    assert str(tmp_path / LOCK_NAME) in message
    assert "for more than 0.2s" in message


HOLDER = """
import sys, time
from pytest_replay.store import DirectoryLock
lock = DirectoryLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_lock_left_by_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout):
            DirectoryLock(tmp_path, timeout=0.1).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert (tmp_path / LOCK_NAME).exists()  # the crashed holder's file is still there
        start = time.monotonic()
        with DirectoryLock(tmp_path, timeout=5):
            assert time.monotonic() - start < 2
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    assert not (tmp_path / LOCK_NAME).exists()


def test_merge_reports_a_lock_timeout_without_writing(tmp_path: Path) -> None:
    with DirectoryLock(tmp_path):
        report = merge([buffer_of(rec("a"))], tmp_path, lock_timeout=0.1)
    assert len(report.errors) == 1
    assert "locked by another pytest-replay run" in report.errors[0]
    assert not (tmp_path / "k.cassette").exists()


def test_unwritable_replay_dir_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    report = merge([buffer_of(rec("a"))], tmp_path / "file" / "cassettes")
    target = tmp_path / "file" / "cassettes"
    assert report.errors[0].startswith(f"cannot write cassettes to {target}")
