"""The cassette file format: frames, hash chain, torn tails, limits, verify.

A cassette is the recorded calls of one traced function, stored as a msgpack
stream (byte-level spec: docs/cassette-format.md)::

    [header_bin, h_header]          header frame: packed header map + its hash
    [payload_0_bin, h_0]            one frame per record
    [payload_1_bin, h_1]
    ...

with ``h_header = blake2b(header_bin)`` and ``h_i = blake2b(h_{i-1} || payload_i)``
(``h_{-1} = h_header``), 16-byte digests. Payloads are opaque bytes to this
layer (``codec.dumps(record_map)``), so they are hashed exactly as stored,
without re-packing. Records are decoded with ``codec.loads_raw``, which never
imports or executes anything.

Reading is strict and bounded: every ``msgpack.Unpacker`` has size limits, and
every problem becomes a :class:`CassetteError` naming the file, the record
index, the byte offset and what to do. An incomplete last frame (a crash in the
middle of an append) is a *torn tail*: readers keep every complete record before
it and report it; the next append repairs the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgpack

from ._version import __version__

__all__ = [
    "DIGEST_SIZE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_PAYLOAD_BYTES",
    "Cassette",
    "CassetteError",
    "ReadResult",
    "TornTail",
    "VerifyReport",
    "cassette_path",
]

FORMAT_NAME = "pytest-replay-cassette"
FORMAT_VERSION = 1
DIGEST_SIZE = 16
SUFFIX = ".cassette"

#: Largest record payload accepted (and written). Bounds reader memory.
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
#: Largest packed header map; the header frame therefore uses bin8 or bin16.
MAX_HEADER_BYTES = 0xFFFF
MAX_KEY_LENGTH = 4096

_READ_SIZE = 256 * 1024
_WRITE_CHUNK = 1024 * 1024
_HASH_MARK = b"\xc4" + bytes((DIGEST_SIZE,))  # bin8 header of a digest
_FRAME_MARK = 0x92  # fixarray of 2: [payload, digest]
_MAP_MARKERS = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])
# Frame headers for payloads under 256 bytes, precomputed: most records are small
# and this is on the write hot path.
_HEAD8 = [bytes((_FRAME_MARK, 0xC4, n)) for n in range(256)]

_blake2b = hashlib.blake2b

_HOW_TO_FIX = (
    "run `pytest-replay verify` on it, then restore it from version control "
    "or delete it and re-record with `pytest --replay-record`"
)


class CassetteError(Exception):
    """A cassette file cannot be used: unreadable, corrupt, hostile or too new.

    ``str()`` is one line: the file, the record index and byte offset (when
    known), what is wrong and what to do.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        problem: str,
        *,
        index: int | None = None,
        offset: int | None = None,
        hint: str = _HOW_TO_FIX,
        where: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.problem = problem
        self.index = index
        self.offset = offset
        self.hint = hint
        parts = [str(self.path)]
        if where is not None:
            parts.append(where)
        elif index is not None:
            parts.append(f"record {index}")
        if offset is not None:
            parts.append(f"byte {offset}")
        self.where = where
        message = ": ".join(parts) + f": {problem}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields: the default exception pickling would lose them
        # (e.g. when an error crosses a process boundary).
        return (
            _rebuild_error,
            (self.path, self.problem, self.index, self.offset, self.hint, self.where),
        )


def _rebuild_error(
    path: Path, problem: str, index: int | None, offset: int | None, hint: str, where: str | None
) -> CassetteError:
    return CassetteError(path, problem, index=index, offset=offset, hint=hint, where=where)


@dataclass(frozen=True)
class TornTail:
    """An incomplete last frame: ``size`` bytes from ``offset`` that hold no complete record."""

    offset: int
    size: int
    index: int

    def describe(self) -> str:
        return (
            f"torn tail: record {self.index} at byte {self.offset} is incomplete "
            f"({self.size} bytes, probably an interrupted write); the complete records "
            f"before it are intact and the next append repairs the file"
        )


@dataclass(frozen=True)
class ReadResult:
    records: list[dict[str, Any]]
    torn_tail: TornTail | None = None


@dataclass(frozen=True)
class VerifyReport:
    """The result of :meth:`Cassette.verify`.

    ``total`` counts the frames found (an incomplete last frame included);
    ``failures`` counts frames that cannot be read or decoded (a torn tail, a
    malformed frame, a payload that is not a record map); ``mismatches``
    counts complete frames whose hash does not match the chain. ``verified``
    frames are complete, decode to a record map and match the chain.
    """

    path: Path
    total: int
    verified: int
    failures: int
    mismatches: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.mismatches == 0 and self.verified == self.total

    @property
    def text(self) -> str:
        verdict = "VALID" if self.ok else "INVALID"
        return (
            f"Verification: {self.verified}/{self.total} events verified, "
            f"{self.failures} failures, {self.mismatches} mismatches - {verdict}"
        )


# --------------------------------------------------------------------------- helpers


def _frame_head(size: int) -> bytes:
    """The bytes before a payload of ``size`` bytes: fixarray(2) + canonical bin header."""
    if size < 0x100:
        return _HEAD8[size]
    if size < 0x10000:
        return bytes((_FRAME_MARK, 0xC5)) + size.to_bytes(2, "big")
    return bytes((_FRAME_MARK, 0xC6)) + size.to_bytes(4, "big")


def _frame_size(size: int) -> int:
    head = 3 if size < 0x100 else 4 if size < 0x10000 else 6
    return head + size + 2 + DIGEST_SIZE


def _header_bytes(key: str) -> bytes:
    # Field order is fixed and there is no timestamp: same key and plugin
    # version -> byte-identical header.
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "key": key, "plugin": __version__}
    return msgpack.packb(header, use_bin_type=True)  # type: ignore[no-any-return]


def _header_digest(header: bytes) -> bytes:
    return _blake2b(header, digest_size=DIGEST_SIZE).digest()


def _check_key(key: str) -> None:
    if not isinstance(key, str):
        raise TypeError(f"a cassette key must be a str, not {type(key).__name__}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"cassette key is {len(key)} characters long, over {MAX_KEY_LENGTH}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"cassette key {key!r} is not valid unicode text") from None


def _open_for_reading(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise CassetteError(path, f"cannot be read ({exc.strerror or exc})") from None


def _frame_unpacker(stream: IO[bytes]) -> Any:
    # Only frames may appear at the top level: arrays of two bins. Everything
    # else (maps, strings, ext types, big arrays) is refused by the C unpacker
    # before it allocates anything; the buffer bound caps memory per frame.
    return msgpack.Unpacker(
        stream,
        read_size=_READ_SIZE,
        max_buffer_size=MAX_PAYLOAD_BYTES + _READ_SIZE,
        max_bin_len=MAX_PAYLOAD_BYTES,
        max_str_len=0,
        max_array_len=2,
        max_map_len=0,
        max_ext_len=0,
    )


def _encoder() -> Any:
    from .codec import dumps

    return dumps


def _decoder() -> Callable[[bytes], object]:
    """A strict ``codec.loads_raw``: the same raw tree, but unknown ext codes are refused.

    One msgpack pass per payload, as in ``codec.loads_raw``; the ``ext_hook``
    runs only for ext values, so plain records pay nothing for the check.
    Ext data nested in ext values is parsed (not decoded) level by level, in
    a loop rather than from inside the hook: every ``unpackb`` call keeps a
    ~40 KB parse stack on the C stack, so recursing from the hook crashes the
    interpreter long before ``codec.MAX_DEPTH``. Sizes are bounded by
    msgpack's ``unpackb`` defaults (no declared length over the input size).
    """
    from . import codec

    known = frozenset(codec._CODE_NAMES)  # the codec's ext table, the on-disk contract
    max_depth = codec.MAX_DEPTH
    error = codec.CodecError
    unpackb = msgpack.unpackb
    ext_type = msgpack.ExtType
    pending: list[bytes] = []

    def ext_hook(code: int, data: bytes) -> object:
        if code not in known:
            raise error(
                f"unknown ext code {code}: written by a newer or different encoder; "
                "upgrade pytest-replay-trace or re-record"
            )
        pending.append(data)
        return ext_type(code, data)

    def loads_raw(payload: bytes) -> object:
        pending.clear()
        record = unpackb(payload, strict_map_key=False, ext_hook=ext_hook)
        depth = 0
        while pending:
            depth += 1
            if depth >= max_depth:
                raise error(f"ext values nested deeper than {max_depth} levels")
            level = pending[:]
            pending.clear()
            for data in level:
                unpackb(data, strict_map_key=False, ext_hook=ext_hook)
        return record

    return loads_raw


_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes codec.CodecError and msgpack's FormatError/StackError/ExtraData
    TypeError,
    RecursionError,
    msgpack.UnpackException,
)


def _fsync_dir(directory: Path) -> None:
    # Makes a rename durable. Not every platform lets a directory be opened
    # (Windows), and there the rename is as durable as it gets.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- key -> file name

_SAFE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\Z")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")
_RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{base}{n}" for base in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]]
)
MAX_STEM_LENGTH = 120


def _reserved(stem: str) -> bool:
    # Windows reserves device names whatever the extension ("con.txt" too).
    return stem.split(".", 1)[0].rstrip(" ").upper() in _RESERVED_NAMES


def cassette_file_name(key: str) -> str:
    """The file name of the cassette for ``key`` (see docs/cassette-format.md).

    A key made of ``A-Z a-z 0-9 . _ -`` that does not start with ``.`` or
    ``-``, is at most 120 characters and is not a Windows device name is used
    as is. Any other key is sanitized (unsafe characters become ``_``, leading
    dots and dashes are dropped, length is cut to 100, a device name gets a
    leading ``_``) and gets ``-`` plus a 12-hex-digit
    blake2b hash of the key, so distinct keys stay distinct and no name can
    contain a path separator, ``..`` as a component, NUL or control characters.
    """
    if len(key) <= MAX_STEM_LENGTH and _SAFE_KEY.match(key) and not _reserved(key):
        return key + SUFFIX
    digest = _blake2b(key.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    stem = _UNSAFE_CHAR.sub("_", key).lstrip(".-")[:100] or "key"
    if _reserved(stem):
        stem = "_" + stem
    return f"{stem}-{digest}{SUFFIX}"


def cassette_path(replay_dir: str | os.PathLike[str], key: str) -> Path:
    """``<replay_dir>/<file name for key>``; never outside ``replay_dir``."""
    return Path(replay_dir) / cassette_file_name(key)


# --------------------------------------------------------------------------- the cassette


class Cassette:
    """One cassette file. Construct with :meth:`open` or :meth:`create`."""

    path: Path
    key: str
    header: dict[str, Any]

    def __init__(self, path: Path, header: dict[str, Any], header_end: int, h0: bytes) -> None:
        self.path = path
        self.header = header
        self.key = str(header["key"])
        self._h0 = h0
        #: The torn tail found by the last full pass of :meth:`records`/:meth:`payloads`.
        self.torn_tail: TornTail | None = None
        # (st_ino, st_size, st_mtime_ns, end, last digest) after our last write or
        # full read: lets append() skip re-reading a file nobody else touched.
        self._tail: tuple[int, int, int, int, bytes] | None = None
        # (end of the last complete frame, chain head there) after a full scan.
        self._chain_end: tuple[int, bytes] = (header_end, h0)

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, key={self.key!r})"

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Cassette:
        """Open an existing cassette, reading and validating its header only."""
        path = Path(path)
        try:
            with path.open("rb") as stream:
                header, end, h0 = _read_header(path, stream)
        except FileNotFoundError:
            raise CassetteError(
                path, "no such file", hint="check the path (cassettes end in .cassette)"
            ) from None
        except IsADirectoryError:
            raise CassetteError(path, "is a directory, not a cassette file", hint="") from None
        except OSError as exc:
            raise CassetteError(
                path, f"cannot be read ({exc.strerror or exc})", hint="check its permissions"
            ) from None
        return cls(path, header, end, h0)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        key: str,
        records: Iterable[Mapping[str, Any] | bytes] = (),
    ) -> Cassette:
        """Write a new cassette (replacing any file at ``path``) atomically.

        ``records`` are record maps (encoded with ``codec.dumps``) or
        pre-packed payloads (``bytes``, a msgpack map). The file is written to
        a temporary file in the same directory, fsynced and renamed over
        ``path``; the old file stays intact if anything fails.
        """
        _check_key(key)
        path = Path(path)
        header = _header_bytes(key)
        if len(header) > MAX_HEADER_BYTES:  # pragma: no cover - bounded by MAX_KEY_LENGTH
            raise ValueError("cassette header too large")
        h0 = _header_digest(header)
        end, last = _atomic_write(path, header, h0, records)
        cassette = cls(path, msgpack.unpackb(header), _frame_size(len(header)), h0)
        cassette._remember(end, last)
        return cassette

    # ------------------------------------------------------------------ reading

    def records(self) -> Iterator[dict[str, Any]]:
        """Stream the verified record maps (``codec.loads_raw`` form), in file order.

        Stops at a torn tail (see :attr:`torn_tail`); raises
        :class:`CassetteError` on corruption. Memory stays bounded: the file is
        read in chunks, never whole.
        """
        return self._scan(decode=True)

    def payloads(self) -> Iterator[bytes]:
        """Stream the verified raw payload bytes (``codec.dumps`` output) in file order."""
        return self._scan(decode=False)

    def read(self) -> ReadResult:
        """All complete records, plus the torn tail if the last frame is incomplete."""
        records = list(self.records())
        return ReadResult(records, self.torn_tail)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.records()

    def signature(self) -> str:
        """Hex head of the hash chain; changes whenever any byte of the header or a record does."""
        for _ in self._scan(decode=False):
            pass
        return self._chain_end[1].hex()

    def _scan(self, *, decode: bool) -> Iterator[Any]:
        path = self.path
        loads_raw = _decoder() if decode else None
        decode_errors = _DECODE_ERRORS
        self.torn_tail = None
        with _open_for_reading(path) as stream:
            header, base, prev = _read_header(path, stream)
            self.header, self.key, self._h0 = header, header["key"], prev
            stat = os.fstat(stream.fileno())
            size = stat.st_size
            stream.seek(base)
            unpacker = _frame_unpacker(stream)
            tell = unpacker.tell
            blake2b = _blake2b
            index = 0
            end = base
            # The hot loop: plain and flat on purpose (read+verify must stay
            # within 2x of a bare msgpack Unpacker; see benchmarks/).
            try:
                for frame in unpacker:
                    start = end
                    end = base + tell()
                    if type(frame) is not list or len(frame) != 2:
                        raise _not_a_frame(path, index, start, frame)
                    payload, digest = frame
                    if type(payload) is not bytes or type(digest) is not bytes:
                        raise _not_a_frame(path, index, start, frame)
                    if blake2b(prev + payload, digest_size=DIGEST_SIZE).digest() != digest:
                        raise CassetteError(
                            path,
                            "hash mismatch: this record (or the chain before it) was "
                            "changed or corrupted",
                            index=index,
                            offset=start,
                        )
                    if end - start != _frame_size(len(payload)):
                        raise _not_a_frame(path, index, start, frame)
                    prev = digest
                    if loads_raw is None:
                        yield payload
                    else:
                        try:
                            record = loads_raw(payload)
                        except decode_errors as exc:
                            raise CassetteError(
                                path,
                                f"record payload cannot be decoded ({_short(exc)})",
                                index=index,
                                offset=start,
                            ) from None
                        if type(record) is not dict:
                            raise CassetteError(
                                path,
                                f"record payload is a {type(record).__name__}, not a record map",
                                index=index,
                                offset=start,
                            )
                        yield record
                    index += 1
            except (ValueError, msgpack.UnpackException) as exc:
                raise CassetteError(
                    path, f"malformed frame ({_short(exc)})", index=index, offset=end
                ) from None
            self._chain_end = (end, prev)
            if end < size:
                self.torn_tail = _classify_tail(path, stream, index, end, size)
                self._tail = None
            else:
                self._tail = (stat.st_ino, size, stat.st_mtime_ns, end, prev)

    # ------------------------------------------------------------------ verify

    def verify(self) -> VerifyReport:
        """Check every frame; never raises for what it finds in the records.

        A mismatch does not stop the check: later frames are checked against
        the stored chain, so a single damaged record is reported alone.
        A malformed frame ends the check (frame boundaries are lost after it).
        """
        path = self.path
        loads_raw = _decoder()
        decode_errors = _DECODE_ERRORS
        total = verified = failures = mismatches = 0
        problems: list[str] = []
        with _open_for_reading(path) as stream:
            _header, base, prev = _read_header(path, stream)
            size = os.fstat(stream.fileno()).st_size
            stream.seek(base)
            unpacker = _frame_unpacker(stream)
            end = base
            index = 0
            try:
                for frame in unpacker:
                    start = end
                    end = base + unpacker.tell()
                    total += 1
                    if (
                        type(frame) is not list
                        or len(frame) != 2
                        or type(frame[0]) is not bytes
                        or type(frame[1]) is not bytes
                        or end - start != _frame_size(len(frame[0]))
                    ):
                        failures += 1
                        problem = _not_a_frame(path, index, start, frame).problem
                        problems.append(f"record {index} at byte {start}: {problem}")
                        # Boundaries cannot be trusted after a malformed frame.
                        end = size
                        break
                    payload, digest = frame
                    ok = True
                    if _blake2b(prev + payload, digest_size=DIGEST_SIZE).digest() != digest:
                        mismatches += 1
                        ok = False
                        problems.append(
                            f"record {index} at byte {start}: hash mismatch (the record or "
                            f"its stored hash was changed or corrupted)"
                        )
                    try:
                        record = loads_raw(payload)
                    except decode_errors as exc:
                        record = exc
                    if type(record) is not dict:
                        failures += 1
                        ok = False
                        what = (
                            f"cannot be decoded ({_short(record)})"
                            if isinstance(record, BaseException)
                            else f"is a {type(record).__name__}, not a record map"
                        )
                        problems.append(f"record {index} at byte {start}: payload {what}")
                    verified += ok
                    prev = digest
                    index += 1
            except (ValueError, msgpack.UnpackException) as exc:
                total += 1
                failures += 1
                problems.append(f"record {index} at byte {end}: malformed frame ({_short(exc)})")
                end = size
            if end < size:
                try:
                    torn = _classify_tail(path, stream, index, end, size)
                except CassetteError as exc:
                    problems.append(f"record {index} at byte {end}: {exc.problem}")
                else:
                    problems.append(torn.describe())
                total += 1
                failures += 1
        return VerifyReport(path, total, verified, failures, mismatches, tuple(problems))

    # ------------------------------------------------------------------ writing

    def append(self, records: Iterable[Mapping[str, Any] | bytes]) -> None:
        """Append records, extending the hash chain; fsynced before returning.

        A torn tail left by an interrupted earlier append is repaired first:
        its bytes are saved next to the cassette (``<name>.torn-<offset>``)
        and the file is truncated to its last complete record. A corrupt
        cassette raises :class:`CassetteError` and is left untouched. If
        ``records`` raises or the write fails, the file is truncated back to
        where it was (a crash leaves at most a torn tail).
        """
        path = self.path
        try:
            # Unbuffered: after a failed write (a full disk) nothing may be left in
            # a buffer, or the truncate below would flush it, fail again and leave
            # half a batch behind.
            stream = path.open("r+b", buffering=0)
        except OSError as exc:
            raise CassetteError(
                path,
                f"cannot be opened for writing ({exc.strerror or exc})",
                hint="check that it exists and is writable",
            ) from None
        with stream:
            start, last = self._writable_end(stream)
            stream.seek(start)
            try:
                end, last = _write_frames(stream, last, records, start)
                stream.flush()
                os.fsync(stream.fileno())
            except BaseException:
                # All or nothing: a failing record source or a full disk must not
                # leave half a batch (or half a frame) behind.
                stream.seek(start)
                stream.truncate(start)
                stream.flush()
                raise
        self._remember(end, last)

    def rewrite(self, records: Iterable[Mapping[str, Any] | bytes]) -> None:
        """Atomically replace all records (same key; header of this plugin version)."""
        header = _header_bytes(self.key)
        h0 = _header_digest(header)
        end, last = _atomic_write(self.path, header, h0, records)
        self.header = msgpack.unpackb(header)
        self._h0 = h0
        self._remember(end, last)

    def _remember(self, end: int, last: bytes) -> None:
        try:
            stat = os.stat(self.path)
        except OSError:  # pragma: no cover - the file was just written
            self._tail = None
            return
        self._tail = (stat.st_ino, stat.st_size, stat.st_mtime_ns, end, last)
        self.torn_tail = None

    def _writable_end(self, stream: IO[bytes]) -> tuple[int, bytes]:
        """Offset where the next frame goes and the chain head, repairing a torn tail."""
        stat = os.fstat(stream.fileno())
        tail = self._tail
        if tail is not None and tail[:3] == (stat.st_ino, stat.st_size, stat.st_mtime_ns):
            return tail[3], tail[4]
        self._tail = None
        for _ in self._scan(decode=False):
            pass
        end, last = self._chain_end
        torn = self.torn_tail
        if torn is None:
            return end, last
        stream.seek(end)
        lost = stream.read(torn.size)
        _keep_torn_bytes(self.path, end, lost)
        stream.truncate(end)
        stream.flush()
        os.fsync(stream.fileno())
        self.torn_tail = None
        return end, last


# --------------------------------------------------------------------------- internals


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _not_a_frame(path: Path, index: int, offset: int, frame: object) -> CassetteError:
    return CassetteError(
        path,
        f"malformed frame (expected [payload bin, {DIGEST_SIZE}-byte hash bin] in canonical "
        f"msgpack, found {type(frame).__name__})",
        index=index,
        offset=offset,
    )


def _read_header(path: Path, stream: IO[bytes]) -> tuple[dict[str, Any], int, bytes]:
    """Parse and validate the header frame; returns (header map, end offset, h_header)."""
    start = stream.read(3)
    if not start:
        raise CassetteError(
            path,
            "empty file, not a cassette",
            where="header",
            offset=0,
            hint="delete it and re-record with `pytest --replay-record`",
        )
    if len(start) < 3 or start[0] != _FRAME_MARK or start[1] not in (0xC4, 0xC5):
        raise CassetteError(
            path,
            f"not a pytest-replay cassette (wrong magic: starts with {start.hex(' ')}, "
            f"expected 92 c4 or 92 c5)",
            where="header",
            offset=0,
            hint="point the command at a .cassette file written by pytest-replay",
        )
    stream.seek(0)
    head = stream.read(3 + 2 + MAX_HEADER_BYTES + 2 + DIGEST_SIZE)
    unpacker = msgpack.Unpacker(
        max_buffer_size=len(head) + 1,
        max_bin_len=MAX_HEADER_BYTES,
        max_str_len=0,
        max_array_len=2,
        max_map_len=0,
        max_ext_len=0,
    )
    unpacker.feed(head)
    try:
        frame = unpacker.unpack()
    except msgpack.OutOfData:
        raise CassetteError(path, "truncated inside the header", where="header", offset=0) from None
    except (ValueError, msgpack.UnpackException) as exc:
        raise CassetteError(
            path, f"malformed header frame ({_short(exc)})", where="header", offset=0
        ) from None
    end = unpacker.tell()
    if (
        type(frame) is not list
        or len(frame) != 2
        or type(frame[0]) is not bytes
        or type(frame[1]) is not bytes
    ):
        raise CassetteError(path, "malformed header frame", where="header", offset=0)
    raw, digest = frame
    try:
        header = msgpack.unpackb(
            raw,
            max_str_len=MAX_HEADER_BYTES,
            max_bin_len=0,
            max_array_len=0,
            max_map_len=64,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        header = exc
    digest_ok = (
        len(digest) == DIGEST_SIZE
        and end == _frame_size(len(raw))
        and _header_digest(raw) == digest
    )
    if type(header) is dict and header.get("format") == FORMAT_NAME:
        version = header.get("version")
        # Checked before the hash: a newer format may hash differently.
        if type(version) is int and version > FORMAT_VERSION:
            raise CassetteError(
                path,
                f"format version {version} is newer than this pytest-replay supports "
                f"(format version {FORMAT_VERSION}, pytest-replay-trace {__version__})",
                where="header",
                offset=0,
                hint="upgrade pytest-replay-trace (pip install -U pytest-replay-trace)",
            )
        if type(version) is int and version < FORMAT_VERSION:
            # Version 1 is the first format, so a lower version was never written by a
            # release; name both versions anyway, the way a future reader would.
            raise CassetteError(
                path,
                f"format version {version} is older than this pytest-replay reads "
                f"(format version {FORMAT_VERSION}, pytest-replay-trace {__version__}; "
                f"written by plugin {header.get('plugin')!r})",
                where="header",
                offset=0,
                hint="re-record it: delete it and run `pytest --replay-record`",
            )
    if not digest_ok:
        raise CassetteError(
            path,
            "header hash mismatch: the header was changed or corrupted",
            where="header",
            offset=0,
        )
    if type(header) is not dict:
        what = _short(header) if isinstance(header, BaseException) else type(header).__name__
        raise CassetteError(path, f"header is not a map ({what})", where="header", offset=0)
    if header.get("format") != FORMAT_NAME:
        raise CassetteError(
            path,
            f"not a pytest-replay cassette (format name {header.get('format')!r}, "
            f"expected {FORMAT_NAME!r})",
            where="header",
            offset=0,
            hint="point the command at a .cassette file written by pytest-replay",
        )
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise CassetteError(path, f"invalid format version {version!r}", where="header", offset=0)
    if type(header.get("key")) is not str:
        raise CassetteError(path, "header has no key", where="header", offset=0)
    return header, end, digest


def _classify_tail(path: Path, stream: IO[bytes], index: int, end: int, size: int) -> TornTail:
    """The bytes after the last complete frame: a torn frame, or garbage (CassetteError)."""
    length = size - end
    stream.seek(end)
    head = stream.read(6)
    problem: str | None = None
    if head[0] != _FRAME_MARK:
        problem = f"trailing bytes are not a frame (starts with {head[:4].hex(' ')})"
    elif len(head) >= 2:
        marker = head[1]
        width = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(marker)
        if width is None:
            problem = f"trailing bytes are not a frame (payload marker {marker:#04x})"
        elif len(head) >= 2 + width:
            declared = int.from_bytes(head[2 : 2 + width], "big")
            if declared > MAX_PAYLOAD_BYTES:
                problem = (
                    f"frame declares a {declared}-byte payload, over the "
                    f"{MAX_PAYLOAD_BYTES}-byte limit"
                )
            else:
                mark_at = 2 + width + declared
                if length > mark_at:
                    stream.seek(end + mark_at)
                    mark = stream.read(2)
                    if mark != _HASH_MARK[: len(mark)]:
                        problem = "trailing bytes are not a frame (bad hash marker)"
    if problem is not None:
        raise CassetteError(path, problem, index=index, offset=end)
    return TornTail(offset=end, size=length, index=index)


def _keep_torn_bytes(path: Path, offset: int, data: bytes) -> Path:
    """Save the bytes of a torn tail next to the cassette before it is truncated."""
    name = f"{path.name}.torn-{offset}"
    for attempt in range(1000):
        sidecar = path.with_name(name if attempt == 0 else f"{name}.{attempt}")
        try:
            keep = sidecar.open("xb")
        except FileExistsError:
            continue
        with keep:
            keep.write(data)
            keep.flush()
            os.fsync(keep.fileno())
        return sidecar
    raise CassetteError(  # pragma: no cover - a thousand earlier crashes at one offset
        path, "too many saved torn tails", offset=offset, hint="remove old *.torn-* files"
    )


def _encode_payload(record: Mapping[str, Any] | bytes, dumps: Any) -> bytes:
    if type(record) is bytes:
        payload = record
    elif isinstance(record, (bytes, bytearray, memoryview)):
        payload = bytes(record)
    else:
        payload = dumps(record if type(record) is dict else dict(record))
    if not payload or payload[0] not in _MAP_MARKERS:
        raise ValueError("a record payload must be a packed msgpack map (codec.dumps(record_map))")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"record payload is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    return payload


def _write_frames(
    stream: IO[bytes], prev: bytes, records: Iterable[Mapping[str, Any] | bytes], end: int
) -> tuple[int, bytes]:
    """Write frames for ``records`` chained on ``prev``; returns (end offset, chain head)."""
    dumps = _encoder()
    blake2b = _blake2b
    head8 = _HEAD8
    mark = _HASH_MARK
    buffer = bytearray()
    # Flat on purpose: this loop is the write benchmark (<= 2x bare msgpack.packb).
    for record in records:
        if type(record) is dict:
            payload = dumps(record)
            if len(payload) > MAX_PAYLOAD_BYTES:
                payload = _encode_payload(payload, dumps)
        else:
            payload = _encode_payload(record, dumps)
        prev = blake2b(prev + payload, digest_size=DIGEST_SIZE).digest()
        size = len(payload)
        buffer += head8[size] if size < 0x100 else _frame_head(size)
        buffer += payload
        buffer += mark
        buffer += prev
        if len(buffer) >= _WRITE_CHUNK:
            _write_all(stream, buffer)
            end += len(buffer)
            buffer.clear()
    _write_all(stream, buffer)
    end += len(buffer)
    return end, prev


def _write_all(stream: IO[bytes], data: bytearray) -> None:
    # An unbuffered file may write less than asked (a disk filling up); the
    # next call then raises the error.
    view = memoryview(data)
    while view:
        view = view[stream.write(view) :]


def _atomic_write(
    path: Path, header: bytes, h0: bytes, records: Iterable[Mapping[str, Any] | bytes]
) -> tuple[int, bytes]:
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            first = _frame_head(len(header)) + header + _HASH_MARK + h0
            stream.write(first)
            end, last = _write_frames(stream, h0, records, len(first))
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates 0600; a cassette is an ordinary file under version control,
        # so keep the mode of the file it replaces (or the usual 0644).
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return end, last
