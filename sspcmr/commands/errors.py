"""How every ``sspcmr`` command fails: one line on stderr and an exit code, never a traceback.

``sspcmr <command>: error: <what went wrong, naming the file or option>``

* exit 2: the input is wrong (a data error, a bad argument or option value, a checkpoint that is not
  usable); fix the input and run again;
* exit 1: the machine failed (no space, permission denied, read-only folder, I/O error) or sspcmr hit
  an unexpected error; the previous state is kept (see docs/reliability.md);
* exit 130: interrupted (Ctrl-C) at the console.

``--debug`` (anywhere on the command line) or ``SSPCMR_DEBUG=1`` re-raises instead, with the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from sspcmr.data.errors import DataError, MachineError, is_machine_failure

DEBUG_FLAG = "--debug"
DEBUG_ENV = "SSPCMR_DEBUG"


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether tracebacks were asked for, and ``argv`` without ``--debug``."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return env or DEBUG_FLAG in argv, [arg for arg in argv if arg != DEBUG_FLAG]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0] + " ..."


def describe(error: BaseException) -> tuple[list[str], int]:
    """The message lines and exit code for ``error``."""
    problems = getattr(error, "problems", None)
    if problems:
        lines = [str(problem) for problem in problems]
        lines.append(f"{len(problems)} invalid subject(s); nothing was written (--skip-invalid leaves them out)")
        return lines, 2
    if isinstance(error, MachineError):
        return [str(error)], 1
    if isinstance(error, OSError):
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        reason = error.strerror or _one_line(str(error)) or type(error).__name__
        return [f"{reason}{where}"], 1 if is_machine_failure(error) else 2
    if isinstance(error, MemoryError):
        return ["out of memory"], 1
    if isinstance(error, DataError | ValueError | OverflowError | LookupError) or \
            type(error).__name__ in ("ImageFileError", "ArgumentError", "NSKeyError"):
        return [_one_line(str(error)) or type(error).__name__], 2
    return [f"unexpected {type(error).__name__}: {_one_line(str(error))} (run with {DEBUG_FLAG} for the traceback)"], 1


def run_reporting(command: str, run: Callable[[], int | None], debug: bool) -> int:
    """Run ``run()``; on an error print ``sspcmr <command>: error: ...`` and return its exit code."""
    try:
        return run() or 0
    except Exception as error:
        if debug:
            raise
        lines, code = describe(error)
        for line in lines:
            line = line.removeprefix(f"{command}: ")  # messages that already name the command
            print(f"sspcmr {command}: error: {line}", file=sys.stderr)
        return code
