"""An exclusive lock on a folder, held for the length of a ``with`` block (``sspcmr prepare`` holds one on
its output folder, so two runs never write, or clean up after each other, in the same place).

The lock is ``flock(2)`` on ``<folder>/.lock``. The kernel releases it when its holder exits, however it
exits (``SIGKILL`` included), so a lock file left by a dead process is simply taken over; its content (the
holder's process id, host and start time) only serves the message to whoever has to wait. The file is
removed on release; a process that opened it just before then notices (the name no longer leads to the
file it locked) and tries again, so two holders can never both believe they have the lock.

Processes forked while the lock is held (``ProcessPoolExecutor`` workers) close their inherited copy at
once: the lock stays with its owner, and dies with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..errors import DataError, MachineError, is_machine_failure

LOCK_FILE = ".lock"
_HELD: set[int] = set()  # descriptors of the locks this process holds (closed in forked children)


def _close_inherited() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited)


class FolderLocked(DataError):
    """Another process holds the lock (``holder``: what it wrote into the lock file, may be empty)."""

    def __init__(self, folder: Path, holder: dict, purpose: str) -> None:
        self.folder, self.holder = folder, holder
        pid, host, started = holder.get("pid"), holder.get("host"), holder.get("started")
        who = f"process {pid}" if pid else "another process"
        if host and host != socket.gethostname():
            who += f" on {host}"
        since = f" (started {started})" if started else ""
        super().__init__(f"{folder} is being {purpose} by {who}{since}; wait for it or stop it")


class FolderLock:
    """``with FolderLock(folder): ...`` holds an exclusive lock on ``folder`` (created if missing).

    Args:
        folder: the folder to lock.
        wait: block until the lock is free instead of raising :class:`FolderLocked`.
        purpose: for the message, e.g. ``"prepared"`` -> ``"OUT is being prepared by process 123 ..."``.

    Raises:
        FolderLocked: held by another process (or another ``FolderLock`` of this one) and not ``wait``.
        MachineError: the lock file cannot be created (read-only folder, no space, permissions).
    """

    def __init__(self, folder: str | Path, wait: bool = False, purpose: str = "used") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.wait = wait
        self.purpose = purpose
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if self.fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FolderLock")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
                    except BlockingIOError:
                        raise FolderLocked(self.folder, _read_holder(fd), self.purpose) from None
                    if _same_file(fd, self.path):
                        break
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)  # released and removed by its holder meanwhile: lock the new file instead
            _HELD.add(fd)
            self.fd = fd
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as error:
            if self.fd is not None:
                self.release()
            if is_machine_failure(error) or error.errno in (errno.ENOENT, errno.ENOTDIR):
                raise MachineError("locking", error.filename or self.path, error) from error
            raise

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            # In a read-only folder the file stays, harmlessly: the kernel lock is what counts.
            with contextlib.suppress(OSError):
                if _same_file(fd, self.path):
                    self.path.unlink()  # while still held: see the module docstring
        finally:
            _HELD.discard(fd)
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> dict:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}
