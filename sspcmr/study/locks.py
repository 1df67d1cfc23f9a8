"""Run locks of a study: one ``runs/<id>/.lock`` file holding ``host:pid``, created atomically, so several
``sspcmr study`` processes on one study (or a job array on a shared file system) never start the same run. A lock
whose process is gone is stale: on its own host it is ignored and replaced; a lock of another host is trusted."""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["acquire", "lock_holder"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(lock: Path) -> str | None:
    """``host:pid`` of the live process holding ``lock``; None when there is none (or only a stale one here)."""
    try:
        host, pid = lock.read_text().strip().rsplit(":", 1)
    except (FileNotFoundError, ValueError):
        return None
    if host == socket.gethostname() and not _alive(int(pid)):
        return None
    return f"{host}:{pid}"


def acquire(lock: Path) -> bool:
    """Create ``lock`` for this process atomically; False when a live process holds it. A stale lock of a dead
    process on this host is replaced."""
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if lock_holder(lock) is not None:
                return False
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as out:
            out.write(f"{socket.gethostname()}:{os.getpid()}")
        return True
    return False
