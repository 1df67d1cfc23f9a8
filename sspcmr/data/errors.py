"""sspcmr's two kinds of failure, kept apart on purpose.

* :class:`DataError` (a ``ValueError``): the *input* is wrong: a subject's file, a metadata row, a
  split, a checkpoint, an argument. One line that names the file and the problem. ``prepare
  --skip-invalid`` may leave a subject with a data error out.
* :class:`MachineError` (a ``RuntimeError``): the *machine* failed: no space left, permission
  denied, a read-only folder, a file-size limit, an I/O error. Never a property of the data, so it
  never marks a subject invalid and never causes anything to be deleted: the whole command aborts
  with one line naming the path and the OS error, and the previous state is kept.

The command line prints either as ``sspcmr <command>: error: <message>`` (exit code 2 for data and
argument errors, 1 for machine failures); ``--debug`` or ``SSPCMR_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path


class DataError(ValueError):
    """Bad input data. The message is one line: ``<dataset> <subject>: <file>: <problem>``.

    Args:
        problem: what is wrong, in words a user can act on.
        subject: ``"<dataset> <ID>"`` (or ``None`` when the problem is not a subject's).
        file: the file at fault (or ``None``).
    """

    def __init__(self, problem: str, subject: str | None = None, file: str | Path | None = None) -> None:
        self.problem = problem
        self.subject = subject
        self.file = None if file is None else str(file)
        super().__init__(": ".join(part for part in (subject, self.file, problem) if part))


class MachineError(RuntimeError):
    """The machine failed while sspcmr read or wrote ``path`` (not a problem of the data).

    Args:
        action: what sspcmr was doing, e.g. ``"writing the prepared subject"``.
        path: the file or folder concerned.
        cause: the operating system's error.
        kept: what was kept, e.g. ``"the previous prepared data set is unchanged"`` (appended to the message).
    """

    def __init__(self, action: str, path: str | Path | None, cause: BaseException, kept: str | None = None) -> None:
        self.action = action
        self.path = None if path is None else str(path)
        self.cause = cause
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause) or type(cause).__name__
        where = f" {self.path}" if self.path else ""
        message = f"{action}{where} failed: {reason}"
        if kept:
            message += f"; {kept}"
        super().__init__(message)


# OS errors that say something about the machine, never about a file's content.
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO,
                            errno.EFBIG, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EBUSY, errno.ETXTBSY,
                            errno.ESTALE if hasattr(errno, "ESTALE") else errno.EIO})


def is_machine_failure(error: BaseException) -> bool:
    """True for an OS error caused by the machine (disk full, permissions, read-only, I/O, limits).

    Truncated or corrupt files raise ``OSError`` too (gzip, nibabel), but without an ``errno``: those
    are data errors. ``MemoryError`` is the machine's as well.
    """
    if isinstance(error, MachineError | MemoryError):
        return True
    return isinstance(error, OSError) and error.errno in MACHINE_ERRNOS
