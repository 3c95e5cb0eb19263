"""Simulated disk faults for one directory tree, in-process.

``inject(root, fault)`` patches the file system calls the recorder uses
(``os.open``, ``io.open``, ``os.write``, ``os.fsync``, ``os.replace``, ...) so
that, for paths under ``root`` only:

- ``"enospc"``: the disk fills up after ``budget`` more bytes; the write that
  crosses the line writes what fits, the next raises ``ENOSPC`` (what a kernel
  does). Files opened with ``io.open``/``os.fdopen`` get a real
  ``BufferedWriter``/``BufferedRandom`` over a faulty raw file, so Python's own
  buffering behaves exactly as it would on a full disk.
- ``"enospc-fsync"``: writes succeed, ``fsync`` fails with ``ENOSPC`` (delayed
  allocation on ext4/XFS, or NFS, reports a full disk there).
- ``"eacces"``: the directory is read-only: opening for writing, creating,
  renaming, deleting and chmod-ing fail with ``EACCES``; reading works.

Running as root, ``chmod`` cannot make a directory read-only, hence patching.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Faults:
    """The state of one injection: what fails and what happened."""

    def __init__(self, root: Path, fault: str, budget: int) -> None:
        if fault not in ("enospc", "enospc-fsync", "eacces"):
            raise ValueError(f"unknown fault {fault!r}")
        self.root = os.path.realpath(root)
        self.fault = fault
        self.budget = budget
        self.fds: set[int] = set()
        self.injected = 0  # how many calls failed

    def under(self, path: Any) -> bool:
        if isinstance(path, int):
            return path in self.fds
        try:
            real = os.path.realpath(os.fspath(path))
        except TypeError:
            return False
        return real == self.root or real.startswith(self.root + os.sep)

    def fail(self, code: int, path: Any = None) -> OSError:
        self.injected += 1
        filename = None if isinstance(path, int) or path is None else os.fspath(path)
        return OSError(code, os.strerror(code), filename)

    def take(self, size: int) -> int:
        """Bytes of a ``size``-byte write that still fit (ENOSPC when none)."""
        if self.fault != "enospc":
            return size
        if self.budget <= 0:
            raise self.fail(errno.ENOSPC)
        n = min(size, self.budget)
        self.budget -= n
        return n


class _FaultyRaw(io.RawIOBase):
    """A raw file whose writes obey :meth:`Faults.take`."""

    def __init__(self, raw: io.FileIO, faults: Faults) -> None:
        super().__init__()
        self._raw = raw
        self._faults = faults

    def readable(self) -> bool:
        return self._raw.readable()

    def writable(self) -> bool:
        return self._raw.writable()

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        return self._raw.readinto(buffer)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = self._faults.take(len(view))
        return self._raw.write(view[:n]) or 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def truncate(self, size: int | None = None) -> int:
        return self._raw.truncate(size)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self._raw.closed:
            self._faults.fds.discard(self._raw.fileno())
        self._raw.close()
        super().close()

    @property
    def name(self) -> Any:
        return self._raw.name


@contextlib.contextmanager
def inject(root: str | os.PathLike[str], fault: str, *, budget: int = 0) -> Iterator[Faults]:
    faults = Faults(Path(root), fault, budget)
    real_open, real_io_open = os.open, io.open
    real_write, real_fsync = os.write, os.fsync
    real_replace, real_rename, real_mkdir = os.replace, os.rename, os.mkdir
    real_unlink, real_chmod = os.unlink, os.chmod
    readonly = fault == "eacces"

    def fake_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if faults.under(path) and readonly and flags & _WRITE_FLAGS:
            raise faults.fail(errno.EACCES, path)
        fd = real_open(path, flags, mode, **kwargs)
        if faults.under(path):
            faults.fds.add(fd)
        return fd

    def fake_io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if not faults.under(file):
            return real_io_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if readonly and writing:
            raise faults.fail(errno.EACCES, file)
        if not writing or "b" not in mode:
            return real_io_open(file, mode, *args, **kwargs)
        closefd = kwargs.get("closefd", True)
        raw = io.FileIO(file, mode.replace("b", ""), closefd=closefd)
        if isinstance(file, str | os.PathLike):
            faults.fds.add(raw.fileno())
        faulty = _FaultyRaw(raw, faults)
        buffering = args[0] if args else kwargs.get("buffering", -1)
        if buffering == 0:
            return faulty
        if "+" in mode:
            return io.BufferedRandom(faulty)
        return io.BufferedWriter(faulty)

    def fake_write(fd: int, data: Any) -> int:
        if fd in faults.fds:
            if readonly:
                raise faults.fail(errno.EBADF)
            n = faults.take(len(data))
            return real_write(fd, bytes(data)[:n])
        return real_write(fd, data)

    def fake_fsync(fd: Any) -> None:
        number = fd if isinstance(fd, int) else fd.fileno()
        if number in faults.fds and fault == "enospc-fsync":
            raise faults.fail(errno.ENOSPC)
        real_fsync(fd)

    def guarded(real: Any, code: int = errno.EACCES) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if readonly and any(faults.under(a) for a in args[:2]):
                raise faults.fail(code, args[0])
            return real(*args, **kwargs)

        return call

    with contextlib.ExitStack() as stack:
        for name, new in [
            ("open", fake_open),
            ("write", fake_write),
            ("fsync", fake_fsync),
            ("replace", guarded(real_replace)),
            ("rename", guarded(real_rename)),
            ("mkdir", guarded(real_mkdir)),
            ("unlink", guarded(real_unlink)),
            ("chmod", guarded(real_chmod, errno.EPERM)),
        ]:
            stack.enter_context(mock.patch.object(os, name, new))
        stack.enter_context(mock.patch.object(io, "open", fake_io_open))
        yield faults
