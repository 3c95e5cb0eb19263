"""SIGKILL this process at a chosen point of a write into one directory.

Installed by a test project's conftest when ``HARDEN_KILL`` is set, e.g.
``HARDEN_KILL=write:300`` (die after 300 bytes of a file under the directory),
``create``, ``fsync``, ``chmod``, ``replace`` (just before the rename),
``replaced`` (just after it), ``unlink`` or ``unlinked`` (around a deletion).
Only the first matching event kills; paths outside the directory are never
touched.
"""

from __future__ import annotations

import io
import os
import signal
from typing import Any

_KILL_POINTS = ("create", "write", "fsync", "chmod", "replace", "replaced", "unlink", "unlinked")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(root: str, spec: str) -> None:
    point, _, arg = spec.partition(":")
    if point not in _KILL_POINTS:
        raise ValueError(f"unknown kill point {point!r}")
    root = os.path.realpath(root)
    fds: set[int] = set()
    budget = [int(arg or 0)]

    def under(path: Any) -> bool:
        if isinstance(path, int):
            return path in fds
        real = os.path.realpath(os.fspath(path))
        return real == root or real.startswith(root + os.sep)

    real_open, real_io_open = os.open, io.open
    real_fsync, real_chmod, real_replace = os.fsync, os.chmod, os.replace
    real_unlink = os.unlink

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if point == "create" and flags & os.O_CREAT and under(path):
            _die()
        fd = real_open(path, flags, *args, **kwargs)
        if under(path):
            fds.add(fd)
        return fd

    class Tearing:
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def write(self, data: Any) -> int:
            chunk = bytes(data)
            if len(chunk) >= budget[0]:
                self._stream.write(chunk[: budget[0]])
                self._stream.flush()
                _die()
            budget[0] -= len(chunk)
            return int(self._stream.write(chunk))

        def __getattr__(self, name: str) -> Any:
            return getattr(self._stream, name)

        def __enter__(self) -> Tearing:
            return self

        def __exit__(self, *exc: object) -> None:
            self._stream.close()

    def fake_io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        stream = real_io_open(file, mode, *args, **kwargs)
        if point == "write" and any(c in mode for c in "wa+") and under(file):
            return Tearing(stream)
        return stream

    def fake_fsync(fd: Any) -> None:
        if point == "fsync" and under(fd if isinstance(fd, int) else fd.fileno()):
            _die()
        real_fsync(fd)

    def fake_chmod(path: Any, *args: Any, **kwargs: Any) -> None:
        if point == "chmod" and under(path):
            _die()
        real_chmod(path, *args, **kwargs)

    def fake_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if point == "replace" and under(dst):
            _die()
        real_replace(src, dst, *args, **kwargs)
        if point == "replaced" and under(dst):
            _die()

    def fake_unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if point == "unlink" and under(path):
            _die()
        real_unlink(path, *args, **kwargs)
        if point == "unlinked" and under(path):
            _die()

    os.unlink = fake_unlink
    os.open = fake_open
    io.open = fake_io_open
    os.fsync = fake_fsync
    os.chmod = fake_chmod
    os.replace = fake_replace
