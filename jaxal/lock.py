"""One run per workdir: an advisory lock held for the whole run.

``<workdir>/.jaxal.lock`` is locked with ``fcntl.flock`` and holds the owner's
``host`` and ``pid``. The kernel drops the lock when its process dies, so a
lock left by a killed run is stale by construction and is simply taken over;
a live owner makes the second process refuse at once, naming it. (``flock`` is
per host on some network filesystems: two hosts may not see each other's lock
there.)
"""

from __future__ import annotations

import json
import os
import socket

LOCK_FILE = ".jaxal.lock"


class WorkdirLocked(RuntimeError):
    """Another live process runs in this workdir."""


class WorkdirLock:
    """Context manager: hold the workdir's lock, or raise :class:`WorkdirLocked`."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> WorkdirLock:
        import fcntl

        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _read_owner(fd)
            os.close(fd)
            raise WorkdirLocked(
                f"workdir {os.path.dirname(self.path)!r} is in use by another jaxal run "
                f"(pid {owner.get('pid', '?')} on {owner.get('host', '?')}); wait for it to "
                "finish or use another --workdir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}
