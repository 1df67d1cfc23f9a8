"""Starting one ``sspcmr fit`` / ``test`` command of a study run, its output appended to the run's log.

* ``subprocess``: ``python -m sspcmr <args>`` in its own process, so a crash or a DDP launch stays inside it;
* ``inline``: :func:`sspcmr.commands.training.run_training` in this process (quicker, for tests).

Either way the training command is started directly, never through the study's own command line, so the
study and the command modules do not import each other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import TextIO

LAUNCHERS = ("subprocess", "inline")


def launch(args: list[str], log: Path, launcher: str) -> int:
    """Run ``sspcmr <args>`` with ``launcher`` (one of :data:`LAUNCHERS`), appending the command line and
    its output to ``log``; returns its exit code."""
    with open(log, "a") as out:
        out.write(f"\n$ sspcmr {' '.join(args)}\n")
        out.flush()
        if launcher == "subprocess":
            return _in_subprocess(args, out)
        return _in_process(args, out)


def _in_subprocess(args: list[str], out: TextIO) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "sspcmr", *args], stdout=out, stderr=subprocess.STDOUT,
                               env=env)
    return wait_or_stop(process, grace_s=30)


def wait_or_stop(process: subprocess.Popen, grace_s: float) -> int:
    """Wait for ``process`` and return its exit code; when the wait is interrupted (Ctrl-C, a signal handler
    exiting), stop it with SIGTERM, on which a run releases its run lock (``subprocess.run`` would SIGKILL it
    and leave the lock), and kill it only if it is still there after ``grace_s`` seconds; then re-raise.

    Args:
        process: the started command.
        grace_s: seconds it gets to end after SIGTERM.
    """
    try:
        return process.wait()
    except BaseException:  # interrupted or terminated: never leave the run's process behind
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
        raise


def _in_process(args: list[str], out: TextIO) -> int:
    from sspcmr.commands.errors import debug_requested
    from sspcmr.commands.training import run_training

    debug, argv = debug_requested(list(args))
    # Lightning reports (restored checkpoints, stopping reasons) through `logging`, whose handlers hold the
    # original streams: give its loggers one into the run's log for the call's duration.
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                return run_training(argv, debug)
            except SystemExit as stop:  # argument errors exit through jsonargparse
                return stop.code if isinstance(stop.code, int) else 1
            except Exception:
                traceback.print_exc(file=out)
                return 1
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
