"""The cassette file format: round trips, corruption, torn tails, hostile input, atomic writes."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tracemalloc
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay import codec
from pytest_replay._version import __version__
from pytest_replay.cassette import (
    DIGEST_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_PAYLOAD_BYTES,
    Cassette,
    CassetteError,
    ReadResult,
    cassette_file_name,
    cassette_path,
)


def make_record(i: int, *, error: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"{i:016x}",
        "key": "app.pricing.total",
        "target": "app.pricing:total",
        "kind": "call",
        "args": [i, "x" * (i % 5)],
        "kwargs": {"currency": "EUR"},
    }
    if error:
        record["error"] = {"type": "builtins.ValueError", "message": "bad", "args": ["bad"]}
    else:
        record["result"] = i * 2
    record.update(children=[], boundary=False, meta={"duration_ms": 0.5}, unreplayable=None)
    return record


RECORDS = [make_record(0), make_record(1, error=True), make_record(2)]


def frame_bounds(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every frame in a well-formed cassette, header frame first."""
    unpacker = msgpack.Unpacker()
    unpacker.feed(data)
    bounds, start = [], 0
    for _ in unpacker:
        end = unpacker.tell()
        bounds.append((start, end))
        start = end
    assert start == len(data)
    return bounds


def frame(payload: bytes, digest: bytes) -> bytes:
    return msgpack.packb([payload, digest], use_bin_type=True)  # type: ignore[no-any-return]


def header_frame(header: Any) -> bytes:
    raw = msgpack.packb(header, use_bin_type=True)
    return frame(raw, hashlib.blake2b(raw, digest_size=DIGEST_SIZE).digest())


def chained(header: bytes, payloads: list[bytes]) -> bytes:
    """A cassette built by hand from the spec in docs/cassette-format.md."""
    out = bytearray(header)
    prev = msgpack.unpackb(header)[1]
    for payload in payloads:
        prev = hashlib.blake2b(prev + payload, digest_size=DIGEST_SIZE).digest()
        out += frame(payload, prev)
    return bytes(out)


GOOD_HEADER = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "key": "k", "plugin": "0"}


def read_or_error(cassette: Cassette) -> ReadResult | CassetteError:
    try:
        return cassette.read()
    except CassetteError as exc:
        return exc


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.cassette"
    Cassette.create(path, "app.pricing.total", RECORDS)
    return path


# --------------------------------------------------------------------------- round trips


def test_round_trip_records_header_and_payloads(small: Path) -> None:
    cassette = Cassette.open(small)
    assert cassette.key == "app.pricing.total"
    assert cassette.header == {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "key": "app.pricing.total",
        "plugin": __version__,
    }
    assert list(cassette.records()) == RECORDS
    result = cassette.read()
    assert result.records == RECORDS
    assert result.torn_tail is None
    assert list(cassette.payloads()) == [codec.dumps(r) for r in RECORDS]
    assert cassette.verify().ok


def test_file_matches_the_documented_layout(small: Path) -> None:
    data = small.read_bytes()
    header = {
        "format": FORMAT_NAME,
        "version": 1,
        "key": "app.pricing.total",
        "plugin": __version__,
    }
    expected = chained(header_frame(header), [codec.dumps(r) for r in RECORDS])
    assert data == expected


def test_empty_cassette(tmp_path: Path) -> None:
    cassette = Cassette.create(tmp_path / "e.cassette", "e")
    assert cassette.read().records == []
    report = cassette.verify()
    assert report.text == "Verification: 0/0 events verified, 0 failures, 0 mismatches - VALID"
    assert (
        cassette.signature()
        == hashlib.blake2b(
            msgpack.packb({"format": FORMAT_NAME, "version": 1, "key": "e", "plugin": __version__}),
            digest_size=DIGEST_SIZE,
        ).hexdigest()
    )


def test_prepacked_payloads_and_mappings(tmp_path: Path) -> None:
    payload = codec.dumps(RECORDS[0])
    cassette = Cassette.create(
        tmp_path / "p.cassette", "k", [payload, MappingProxyType(RECORDS[1]), bytearray(payload)]
    )
    assert cassette.read().records == [RECORDS[0], RECORDS[1], RECORDS[0]]


@pytest.mark.parametrize("size", [0, 200, 252, 253, 300, 65_520, 65_536, 70_000])
def test_payload_sizes_across_bin_widths_are_canonical(tmp_path: Path, size: int) -> None:
    record = {"blob": b"\x01" * size}
    path = tmp_path / "s.cassette"
    cassette = Cassette.create(path, "k", [record, record])
    assert cassette.read().records == [record, record]
    data = path.read_bytes()
    # every frame is exactly what msgpack itself would write for [payload, digest]
    unpacker = msgpack.Unpacker()
    unpacker.feed(data)
    assert b"".join(frame(*f) for f in unpacker) == data


def test_invalid_arguments_to_writers(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="key must be a str"):
        Cassette.create(tmp_path / "a.cassette", 3, [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="characters long"):
        Cassette.create(tmp_path / "a.cassette", "k" * 5000, [])
    with pytest.raises(ValueError, match="must be a packed msgpack map"):
        Cassette.create(tmp_path / "a.cassette", "k", [msgpack.packb([1, 2])])
    with pytest.raises(ValueError, match="must be a packed msgpack map"):
        Cassette.create(tmp_path / "a.cassette", "k", [b""])
    assert not list(tmp_path.iterdir()), "failed writes leave no file behind"


def test_oversized_payload_is_refused_on_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_replay.cassette as cassette_module

    monkeypatch.setattr(cassette_module, "MAX_PAYLOAD_BYTES", 100)
    with pytest.raises(ValueError, match="over the 100-byte limit"):
        Cassette.create(tmp_path / "a.cassette", "k", [{"blob": b"x" * 200}])
    with pytest.raises(ValueError, match="over the 100-byte limit"):
        Cassette.create(tmp_path / "a.cassette", "k", [codec.dumps({"blob": b"x" * 200})])


# --------------------------------------------------------------------------- determinism


def test_same_records_give_byte_identical_files(tmp_path: Path) -> None:
    a = Cassette.create(tmp_path / "a.cassette", "k", RECORDS)
    b = Cassette.create(tmp_path / "b.cassette", "k", [dict(r) for r in RECORDS])
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.signature() == b.signature()
    # append extends the same chain: create+append == create of everything
    c = Cassette.create(tmp_path / "c.cassette", "k", RECORDS[:1])
    c.append(RECORDS[1:2])
    c.append(RECORDS[2:])
    assert c.path.read_bytes() == a.path.read_bytes()


def test_signature_changes_with_any_change(tmp_path: Path) -> None:
    base = Cassette.create(tmp_path / "a.cassette", "k", RECORDS).signature()
    assert Cassette.create(tmp_path / "b.cassette", "k2", RECORDS).signature() != base
    assert Cassette.create(tmp_path / "c.cassette", "k", RECORDS[::-1]).signature() != base
    assert Cassette.create(tmp_path / "d.cassette", "k", RECORDS[:2]).signature() != base
    assert re.fullmatch(r"[0-9a-f]{32}", base)


# --------------------------------------------------------------------------- corruption


def test_every_single_bit_flip_is_detected(small: Path, tmp_path: Path) -> None:
    data = small.read_bytes()
    bounds = frame_bounds(data)
    target = tmp_path / "flipped.cassette"
    for position in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            target.write_bytes(damaged)
            try:
                cassette = Cassette.open(target)
            except CassetteError:
                continue
            report = cassette.verify()
            assert not report.ok, (position, bit)
            assert report.text.endswith("- INVALID")
            outcome = read_or_error(cassette)
            if isinstance(outcome, CassetteError):
                # located: in the frame holding the flipped byte, or the frame after it
                # (a changed stored hash breaks the link to the next record)
                frame_no = next(i for i, (s, e) in enumerate(bounds) if s <= position < e)
                assert outcome.index in (frame_no - 1, frame_no), (position, bit, str(outcome))
                assert outcome.offset is not None
            else:
                assert outcome.torn_tail is not None, (position, bit)


def test_payload_corruption_is_located_exactly(small: Path) -> None:
    data = bytearray(small.read_bytes())
    bounds = frame_bounds(bytes(data))
    start = bounds[2][0]  # record 1
    data[start + 10] ^= 0x01
    small.write_bytes(data)
    cassette = Cassette.open(small)
    with pytest.raises(CassetteError) as info:
        cassette.read()
    assert (info.value.index, info.value.offset) == (1, start)
    assert f"record 1: byte {start}: hash mismatch" in str(info.value)
    assert str(small) in str(info.value)
    report = cassette.verify()
    assert report.text == "Verification: 2/3 events verified, 0 failures, 1 mismatches - INVALID"
    assert report.problems[0].startswith(f"record 1 at byte {start}: hash mismatch")


def test_a_changed_stored_hash_flags_its_record_and_the_next(small: Path) -> None:
    data = bytearray(small.read_bytes())
    end = frame_bounds(bytes(data))[1][1]  # record 0
    data[end - 1] ^= 0x80
    small.write_bytes(data)
    report = Cassette.open(small).verify()
    assert (report.verified, report.mismatches, report.failures) == (1, 2, 0)


def test_header_corruption_is_detected(small: Path) -> None:
    data = bytearray(small.read_bytes())
    key_at = data.index(b"app.pricing.total")
    data[key_at] = ord("b")  # same length, valid msgpack: only the hash can tell
    small.write_bytes(data)
    with pytest.raises(CassetteError, match="header hash mismatch") as info:
        Cassette.open(small)
    assert info.value.offset == 0
    assert "header: byte 0" in str(info.value)


def test_verify_reports_undecodable_payload_as_failure(tmp_path: Path) -> None:
    path = tmp_path / "bad.cassette"
    not_a_map = msgpack.packb([1, 2, 3])
    path.write_bytes(
        chained(header_frame(GOOD_HEADER), [codec.dumps(RECORDS[0]), not_a_map, b"\x81\xc1"])
    )
    report = Cassette.open(path).verify()
    assert report.text == "Verification: 1/3 events verified, 2 failures, 0 mismatches - INVALID"
    with pytest.raises(CassetteError, match=r"record 1: .*not a record map"):
        Cassette.open(path).read()


def test_verify_stops_at_a_malformed_frame(tmp_path: Path) -> None:
    path = tmp_path / "bad.cassette"
    good = chained(header_frame(GOOD_HEADER), [codec.dumps(RECORDS[0])])
    path.write_bytes(good + msgpack.packb([b"\x80", b"x" * 16, 3]) + b"\xc1\xc1")
    report = Cassette.open(path).verify()
    assert (report.total, report.verified, report.failures) == (2, 1, 1)
    assert "malformed frame" in report.problems[0]
    assert not report.ok


# --------------------------------------------------------------------------- torn tails


def test_torn_tail_at_every_offset_keeps_all_complete_records(small: Path, tmp_path: Path) -> None:
    data = small.read_bytes()
    bounds = frame_bounds(data)
    header_end = bounds[0][1]
    target = tmp_path / "torn.cassette"
    for cut in range(len(data)):
        target.write_bytes(data[:cut])
        if cut < header_end:
            with pytest.raises(CassetteError):
                Cassette.open(target).read()
            continue
        complete = sum(1 for _, end in bounds[1:] if end <= cut)
        cassette = Cassette.open(target)
        result = cassette.read()
        assert result.records == RECORDS[:complete], cut
        at_boundary = any(end == cut for _, end in bounds)
        assert (result.torn_tail is None) == at_boundary, cut
        report = cassette.verify()
        assert report.ok == at_boundary, cut
        if result.torn_tail is not None:
            assert result.torn_tail.index == complete
            assert result.torn_tail.offset == bounds[complete][1]
            assert result.torn_tail.size == cut - bounds[complete][1]
            assert report.failures == 1
            assert report.text == (
                f"Verification: {complete}/{complete + 1} events verified, "
                "1 failures, 0 mismatches - INVALID"
            )


@pytest.mark.parametrize("cut_back", [1, 5, 17, 20, 30])
def test_append_repairs_a_torn_tail_and_keeps_its_bytes(small: Path, cut_back: int) -> None:
    data = small.read_bytes()
    bounds = frame_bounds(data)
    cut = len(data) - cut_back
    small.write_bytes(data[:cut])
    cassette = Cassette.open(small)
    torn = cassette.read().torn_tail
    assert torn is not None
    cassette.append([make_record(9)])
    assert cassette.read().records == [*RECORDS[:2], make_record(9)]
    assert cassette.read().torn_tail is None
    assert cassette.verify().ok
    # nothing written is lost: the torn bytes are kept next to the cassette
    sidecar = small.with_name(f"{small.name}.torn-{bounds[3][0]}")
    assert sidecar.read_bytes() == data[bounds[3][0] : cut]
    # and the repaired file is what a clean write of the same records gives
    clean = Cassette.create(small.with_name("clean.cassette"), "app.pricing.total",
                            [*RECORDS[:2], make_record(9)])  # fmt: skip
    assert small.read_bytes() == clean.path.read_bytes()


def test_records_iterator_stops_at_torn_tail_and_reports_it(small: Path) -> None:
    data = small.read_bytes()
    small.write_bytes(data[:-3])
    cassette = Cassette.open(small)
    assert list(cassette) == RECORDS[:2]
    assert cassette.torn_tail is not None
    assert "torn tail: record 2" in cassette.torn_tail.describe()
    assert (
        cassette.signature()
        == Cassette.create(
            small.with_name("two.cassette"), "app.pricing.total", RECORDS[:2]
        ).signature()
    )


def test_append_refuses_a_corrupt_cassette_and_leaves_it_untouched(small: Path) -> None:
    data = bytearray(small.read_bytes())
    data[frame_bounds(bytes(data))[1][0] + 8] ^= 0x04
    small.write_bytes(data)
    with pytest.raises(CassetteError, match="hash mismatch"):
        Cassette.open(small).append([make_record(5)])
    assert small.read_bytes() == data


def test_append_notices_changes_made_by_another_writer(small: Path) -> None:
    first = Cassette.open(small)
    first.append([make_record(3)])
    Cassette.open(small).append([make_record(4)])
    first.append([make_record(5)])  # must chain on record 4, not on its cached head
    records = Cassette.open(small).read().records
    assert records == [*RECORDS, make_record(3), make_record(4), make_record(5)]
    assert Cassette.open(small).verify().ok


def test_failed_append_leaves_the_file_as_it_was(small: Path) -> None:
    before = small.read_bytes()

    def records() -> Any:
        yield make_record(3)
        yield {"blob": b"x" * 2_000_000}  # past the write buffer: frames reach the file
        raise RuntimeError("recorder crashed")

    cassette = Cassette.open(small)
    with pytest.raises(RuntimeError, match="recorder crashed"):
        cassette.append(records())
    assert small.read_bytes() == before
    cassette.append([make_record(3)])
    assert Cassette.open(small).read().records == [*RECORDS, make_record(3)]


def test_cassette_error_pickles(tmp_path: Path) -> None:
    import pickle

    error = CassetteError(tmp_path / "x.cassette", "boom", index=3, offset=120, hint="fix it")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.index, copy.offset, copy.hint, str(copy)) == (
        error.path,
        3,
        120,
        "fix it",
        str(error),
    )


def test_append_to_a_missing_file(tmp_path: Path) -> None:
    cassette = Cassette.create(tmp_path / "a.cassette", "k")
    cassette.path.unlink()
    with pytest.raises(CassetteError, match="cannot be opened for writing"):
        cassette.append([make_record(1)])


# --------------------------------------------------------------------------- atomic writes


def test_failed_rename_leaves_old_file_intact(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = small.read_bytes()

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        Cassette.open(small).rewrite([make_record(7)])
    assert small.read_bytes() == before
    assert sorted(p.name for p in small.parent.iterdir()) == [small.name]


def test_failing_record_source_leaves_old_file_intact(small: Path) -> None:
    before = small.read_bytes()

    def records() -> Any:
        yield make_record(7)
        raise RuntimeError("recorder crashed")

    with pytest.raises(RuntimeError, match="recorder crashed"):
        Cassette.open(small).rewrite(records())
    assert small.read_bytes() == before
    assert sorted(p.name for p in small.parent.iterdir()) == [small.name]


def test_rewrite_replaces_records_and_keeps_file_mode(small: Path) -> None:
    small.chmod(0o640)
    cassette = Cassette.open(small)
    cassette.rewrite([make_record(7)])
    assert cassette.read().records == [make_record(7)]
    assert Cassette.open(small).read().records == [make_record(7)]
    assert small.stat().st_mode & 0o777 == 0o640
    cassette.append([make_record(8)])
    assert Cassette.open(small).verify().ok


# --------------------------------------------------------------------------- hostile input


def _records_frame(payload: bytes) -> bytes:
    return chained(header_frame(GOOD_HEADER), [payload])


GOOD = chained(header_frame(GOOD_HEADER), [msgpack.packb({"id": "1"})])

HOSTILE: dict[str, bytes] = {
    "empty file": b"",
    "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    "json": b'{"format": "pytest-replay-cassette"}',
    "one byte": b"\x92",
    "header not a map": header_frame(["format", FORMAT_NAME]),
    "header is a string": header_frame("pytest-replay-cassette"),
    "wrong format name": header_frame({**GOOD_HEADER, "format": "vcr"}),
    "version zero": header_frame({**GOOD_HEADER, "version": 0}),
    "version not int": header_frame({**GOOD_HEADER, "version": "1"}),
    "key missing": header_frame({"format": FORMAT_NAME, "version": 1}),
    "header digest short": frame(msgpack.packb(GOOD_HEADER), b"x" * 8),
    "header truncated": header_frame(GOOD_HEADER)[:-4],
    "header frame of three": msgpack.packb([msgpack.packb(GOOD_HEADER), b"x" * 16, 1]),
    "header huge map": frame(b"\xdf\xff\xff\xff\xff", b"x" * 16),
    "header deep nesting": frame(b"\x81\xa1k" + b"\x91" * 3000 + b"\xc0", b"x" * 16),
    "huge bin32 length": GOOD + b"\x92\xc6\xff\xff\xff\xf0" + b"x" * 100,
    "huge array length": GOOD + b"\xdd\xff\xff\xff\xff" + b"x" * 10,
    "huge map length": GOOD + b"\xdf\xff\xff\xff\xff",
    "deep nesting frames": GOOD + b"\x91" * 100_000 + b"\xc0",
    "deep nesting payload": _records_frame(b"\x81\xa1k" + b"\x91" * 100_000 + b"\xc0"),
    "huge map in payload": _records_frame(b"\xdf\xff\xff\xff\xff"),
    "ext at frame level": GOOD + msgpack.packb(msgpack.ExtType(99, b"boom")),
    "unknown ext code in payload": _records_frame(
        msgpack.packb({"id": msgpack.ExtType(121, b"\x00\x01")})
    ),
    "payload not a map": _records_frame(msgpack.packb("just a string")),
    "trailing garbage": GOOD + b"\xc1\xc1\xc1",
    "trailing integer": GOOD + b"\x05",
    "trailing string": GOOD + msgpack.packb("tail"),
    "three element frame": GOOD + msgpack.packb([b"\x80", b"x" * 16, b"y"]),
    "bad hash marker in tail": GOOD + b"\x92\xc4\x01\x80\xc5\x00",
    "non canonical frame": header_frame(GOOD_HEADER)
    + b"\x92\xc5\x00\x01\x80\xc4\x10"
    + hashlib.blake2b(
        msgpack.unpackb(header_frame(GOOD_HEADER))[1] + b"\x80", digest_size=16
    ).digest(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gives_cassette_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / "hostile.cassette"
    path.write_bytes(HOSTILE[name])
    tracemalloc.start()
    try:
        with pytest.raises(CassetteError) as info:
            Cassette.open(path).read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{name}: {peak} bytes"
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert "byte " in message
    assert ";" in message, "the message says what to do"
    # verify never raises past the header; when the header is fine it reports INVALID
    try:
        report = Cassette.open(path).verify()
    except CassetteError:
        pass
    else:
        assert not report.ok, name


def test_ext_values_stay_raw_and_unknown_codes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ext.cassette"
    known = codec.dumps({"t": (1, 2), "s": {frozenset({3})}})
    nested_unknown = msgpack.packb(
        {"t": msgpack.ExtType(codec.TUPLE, msgpack.packb([msgpack.ExtType(99, b"\xc0")]))}
    )
    too_deep = b"\xc0"
    for _ in range(codec.MAX_DEPTH + 1):
        too_deep = msgpack.packb(msgpack.ExtType(codec.TUPLE, too_deep))
    path.write_bytes(
        chained(
            header_frame(GOOD_HEADER),
            [known, nested_unknown, b"\x81\xa1d" + too_deep],
        )
    )
    cassette = Cassette.open(path)
    records = cassette.records()
    first = next(records)
    assert isinstance(first["t"], msgpack.ExtType)
    assert codec.decode(first) == {"t": (1, 2), "s": {frozenset({3})}}
    with pytest.raises(CassetteError, match=r"record 1: .*unknown ext code 99") as info:
        next(records)
    assert "upgrade pytest-replay-trace" in str(info.value)
    report = cassette.verify()
    assert (report.verified, report.failures) == (1, 2)
    assert "nested deeper than" in report.problems[1]


def test_newer_format_version_names_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "new.cassette"
    # a future version may hash its header differently: the version is checked first
    raw = msgpack.packb({**GOOD_HEADER, "version": FORMAT_VERSION + 1})
    path.write_bytes(frame(raw, b"\x00" * 32))
    with pytest.raises(CassetteError) as info:
        Cassette.open(path)
    message = str(info.value)
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert f"format version {FORMAT_VERSION}," in message
    assert "upgrade pytest-replay-trace" in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no such file"):
        Cassette.open(tmp_path / "nope.cassette")
    with pytest.raises(CassetteError, match="is a directory"):
        Cassette.open(tmp_path)


def test_huge_length_prefix_with_real_bytes_is_bounded(tmp_path: Path) -> None:
    # declares 4 GiB and really has 3 MiB after it: refused without buffering 4 GiB
    path = tmp_path / "big.cassette"
    path.write_bytes(GOOD + b"\x92\xc6" + struct.pack(">I", 2**32 - 1) + b"\x00" * (3 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(CassetteError, match=r"over the .*-byte limit"):
            Cassette.open(path).read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


def test_reading_streams_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.cassette"
    blob = b"z" * 2000
    Cassette.create(path, "k", ({"i": i, "blob": blob} for i in range(6000)))
    assert path.stat().st_size > 12_000_000
    cassette = Cassette.open(path)
    tracemalloc.start()
    try:
        count = sum(1 for _ in cassette.records())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 6000
    assert peak < 3 * 1024 * 1024, peak


def test_cassette_error_fields(tmp_path: Path) -> None:
    error = CassetteError(tmp_path / "x.cassette", "boom", index=3, offset=120)
    assert (error.path, error.index, error.offset, error.problem) == (
        tmp_path / "x.cassette",
        3,
        120,
        "boom",
    )
    assert str(error).startswith(f"{tmp_path / 'x.cassette'}: record 3: byte 120: boom; ")


# --------------------------------------------------------------------------- fuzz

_FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _read_everything(path: Path) -> None:
    try:
        cassette = Cassette.open(path)
        cassette.verify()
        cassette.read()
        cassette.signature()
    except CassetteError:
        pass


@_FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.cassette"
    path.write_bytes(data)
    _read_everything(path)
    path.write_bytes(header_frame(GOOD_HEADER) + data)
    _read_everything(path)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, int, bytes]]]:
    cassette = draw(st.sampled_from(sorted(_SAMPLES)))
    data = _SAMPLES[cassette]
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["replace", "insert", "delete", "truncate"]),
                st.integers(0, len(data) - 1),
                st.binary(min_size=1, max_size=8),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return data, steps


def _sample(records: list[dict[str, Any]]) -> bytes:
    header = {**GOOD_HEADER, "key": "app.pricing.total"}
    return chained(header_frame(header), [codec.dumps(r) for r in records])


_SAMPLES = {
    "small": _sample(RECORDS),
    "values": _sample([{"a": [1.5, None, True, b"\x00", {"n": -(2**40)}], "s": "é" * 40}]),
}


@_FUZZ
@given(case=mutations())
def test_fuzz_mutated_cassettes(tmp_path: Path, case: tuple[bytes, list[Any]]) -> None:
    original, steps = case
    data = bytearray(original)
    for op, at, chunk in steps:
        at = min(at, max(len(data) - 1, 0))
        if op == "replace":
            data[at : at + len(chunk)] = chunk
        elif op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at : at + len(chunk)]
        else:
            del data[at:]
    path = tmp_path / "mutated.cassette"
    path.write_bytes(data)
    _read_everything(path)
    if bytes(data) == original:
        return
    # a changed file is never silently VALID with different records
    try:
        cassette = Cassette.open(path)
        report = cassette.verify()
        records = cassette.read().records
    except CassetteError:
        return
    if report.ok:
        good = Cassette.open(_write(tmp_path / "orig.cassette", original)).read().records
        # the only undetectable change is dropping whole frames from the end
        assert records == good[: len(records)]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- key -> file name


@pytest.mark.parametrize(
    "key",
    ["app.pricing.total", "MyClass.method", "a-b_c.d", "x" * 120, "module.__init__"],
)
def test_safe_keys_map_to_themselves(tmp_path: Path, key: str) -> None:
    assert cassette_path(tmp_path, key) == tmp_path / f"{key}.cassette"


_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM\d|LPT\d|CONIN\$|CONOUT\$)(\..*)?", re.IGNORECASE)


def _assert_safe(replay_dir: Path, key: str) -> str:
    path = cassette_path(replay_dir, key)
    name = path.name
    assert path.parent == replay_dir
    assert name.endswith(".cassette")
    assert "/" not in name
    assert "\\" not in name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert all(32 <= ord(c) < 127 for c in name), name
    assert not _RESERVED.fullmatch(name[: -len(".cassette")].split(".")[0])
    assert len(name.encode()) <= 200
    return name


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "..",
        ".",
        "",
        "a/b",
        "a\\b",
        "C:evil",
        "x\x00y",
        "line\nbreak",
        "tab\there",
        "CON",
        "con",
        "nul.txt",
        "LPT1",
        "com9.x",
        "x" * 121,
        "ü" * 300,
        ".hidden",
        "-dash",
        "name with spaces",
    ],
)
def test_unsafe_keys_are_sanitized(tmp_path: Path, key: str) -> None:
    name = _assert_safe(tmp_path, key)
    assert re.search(r"-[0-9a-f]{12}\.cassette\Z", name), name


def test_sanitized_names_stay_distinct(tmp_path: Path) -> None:
    keys = ["a/b", "a\\b", "a:b", "a b", "a_b", "a/b/", "A/b"]
    names = [cassette_file_name(k) for k in keys]
    assert len(set(names)) == len(keys)


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=300))
def test_any_key_gives_a_safe_name(key: str) -> None:
    _assert_safe(Path("/replay"), key)


def test_max_payload_is_documented_limit() -> None:
    assert MAX_PAYLOAD_BYTES == 64 * 1024 * 1024
