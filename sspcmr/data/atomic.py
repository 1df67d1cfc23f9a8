"""Atomic file output: write to a temporary name beside the target, then rename it into place,
so an interrupted run never leaves a truncated file under a final name.

The temporary file is created the way ``open(path, "w")`` creates a file (mode 0o666 less the umask, and
the folder's default ACL where there is one), not private like :func:`tempfile.mkstemp`'s 0o600: the
rename keeps that mode, so exported backbones, reports and tables are as readable to the group as any
other file its owner writes. Letting the kernel apply the umask at creation also avoids reading it with
:func:`os.umask`, which sets it too (process-wide, racy under threads).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

CREATE_ATTEMPTS = 100  # random names of 8 hex digits: a clash is already improbable once


def create_beside(path: Path) -> Path:
    """A new empty file ``.<name>.<random>.part<suffixes>`` in ``path``'s folder, mode 0o666 less the umask.

    Raises:
        FileExistsError: every candidate name existed (a folder full of leftovers).
    """
    suffixes = "".join(path.suffixes)
    for _ in range(CREATE_ATTEMPTS):
        candidate = path.parent / f".{path.name}.{secrets.token_hex(4)}.part{suffixes}"
        try:
            # O_EXCL: never reuse or follow an existing name (a symlink planted there included).
            descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(descriptor)
        return candidate
    raise FileExistsError(f"no free temporary name beside {path} after {CREATE_ATTEMPTS} attempts")


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
