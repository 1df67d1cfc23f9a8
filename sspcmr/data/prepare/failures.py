"""Telling machine failures (disk full, permission, I/O) apart from bad data while preparing: the cause behind
an error, and a block that turns a machine failure into a :class:`~sspcmr.data.errors.MachineError` naming the
action, the path and what was kept (docs/reliability.md)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..errors import DataError, MachineError, is_machine_failure

__all__ = ["machine_cause", "machine_failures"]


def machine_cause(error: BaseException) -> BaseException | None:
    """The machine failure behind ``error``, if any: itself, or an OS error that a data error was raised while
    handling (a reader that turned every ``OSError`` into a :class:`DataError`). A data error raised while
    handling a ``MemoryError`` stays one: that is how a file claiming absurd amounts of data is refused."""
    if isinstance(error, MachineError):
        return error.cause
    if is_machine_failure(error):
        return error
    seen = {id(error)}
    while (error := error.__cause__ or error.__context__) is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, MachineError):
            return error.cause
        if isinstance(error, OSError) and is_machine_failure(error):
            return error
    return None


@contextmanager
def machine_failures(action: str, path: Path | str | None, kept: str, exact: bool = False):
    """Turn a machine failure inside the block into :class:`MachineError` (``action`` ``path`` failed).

    The message names the file of the OS error when there is one, else (or when ``exact``) ``path``.
    """
    try:
        yield
    except MachineError as error:
        if kept in str(error):
            raise
        raise MachineError(error.action, error.path, error.cause, kept) from error
    except DataError as error:
        cause = machine_cause(error)
        if cause is None:
            raise
        raise MachineError(action, getattr(cause, "filename", None) or error.file or path, cause, kept) from error
    except (OSError, MemoryError) as error:
        if not is_machine_failure(error):
            raise
        where = path if exact else getattr(error, "filename", None) or path
        raise MachineError(action, where, error, kept) from error
