"""The ``sspcmr`` command line: ``main(args=None)`` picks the command by its first word.

* ``sspcmr fit | validate | test | predict ...``: LightningCLI (:mod:`sspcmr.commands.training`, imported only
  for these, so the other commands start without torch);
* every other word: the plain argparse commands, each group registering its own subcommands
  (:mod:`~sspcmr.commands.data`, :mod:`~sspcmr.commands.evaluation`, :mod:`~sspcmr.commands.splits`,
  :mod:`~sspcmr.commands.study`, :mod:`~sspcmr.commands.configs`), which also answers ``--help``, ``--version``
  and unknown words.

Every error ends as one line ``sspcmr <command>: error: ...`` and exit code 2 (bad input) or 1 (machine
failure); ``--debug`` or ``SSPCMR_DEBUG=1`` shows the traceback (:mod:`sspcmr.commands.errors`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sspcmr import __version__
from sspcmr.commands.configs import add_configs_command
from sspcmr.commands.data import add_data_commands
from sspcmr.commands.errors import DEBUG_FLAG, debug_requested, run_reporting
from sspcmr.commands.evaluation import add_evaluation_commands
from sspcmr.commands.names import TRAINING_COMMANDS
from sspcmr.commands.splits import add_splits_command
from sspcmr.commands.study import add_study_command

# In this order in `sspcmr --help` and in the list of choices of an unknown command.
COMMAND_GROUPS = (add_data_commands, add_evaluation_commands, add_splits_command, add_study_command,
                  add_configs_command)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the plain (non-training) commands."""
    parser = argparse.ArgumentParser(
        prog="sspcmr",
        description="Self-supervised pretraining for cardiac MR short-axis cine segmentation. Training "
        "commands: sspcmr {fit,validate,test,predict} --config CONFIG (a YAML file or a shipped config's name: "
        "sspcmr configs list; LightningCLI, see --help of each).",
    )
    parser.add_argument("--version", action="version", version=f"sspcmr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or SSPCMR_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_commands in COMMAND_GROUPS:
        add_commands(commands)
    return parser


def run_plain_command(argv: Sequence[str], debug: bool = False) -> int:
    """Run a plain command; returns the exit code: one line per problem and 2 for bad input, 1 for a machine
    failure (:mod:`sspcmr.commands.errors`); ``debug`` re-raises with the traceback."""
    args = build_parser().parse_args(list(argv))
    return run_reporting(args.command, lambda: args.handler(args), debug)


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``sspcmr`` console script and ``python -m sspcmr`` (tests call it directly with
    ``args``; None: ``sys.argv``); returns the exit code."""
    debug, argv = debug_requested(list(sys.argv[1:] if args is None else args))
    try:
        if argv and argv[0] in TRAINING_COMMANDS:
            from sspcmr.commands.training import run_training

            # From the console, LightningCLI reads sys.argv itself (it warns when given both).
            return run_training(argv, debug, from_sys_argv=args is None and DEBUG_FLAG not in sys.argv)
        return run_plain_command(argv, debug)
    except KeyboardInterrupt:
        if args is not None or debug:  # called from Python (a study, a test): the caller decides
            raise
        print(f"sspcmr {argv[0] if argv else ''}: interrupted", file=sys.stderr)
        return 130
