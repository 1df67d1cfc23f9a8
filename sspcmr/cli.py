"""The ``sspcmr`` command line.

Data commands (``synth``, and later ``prepare`` and ``splits``) are plain argparse commands; the
training commands (``fit``, ``validate``, ``test``, ``predict``) will be a LightningCLI.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from sspcmr import __version__


def _synth(args: argparse.Namespace) -> int:
    from sspcmr.data.synthetic import format_summary, generate_dataset

    start = time.perf_counter()
    summary = generate_dataset(
        args.out,
        layout=args.layout,
        subjects=args.subjects,
        seed=args.seed,
        size=args.size,
        vendors=args.vendors,
        workers=args.workers,
        progress=not args.quiet,
    )
    elapsed = time.perf_counter() - start
    print(format_summary(summary))
    print(f"\nwrote {len(summary)} subjects to {args.out} in {elapsed:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the data commands."""
    parser = argparse.ArgumentParser(
        prog="sspcmr", description="Self-supervised pretraining for cardiac MR short-axis cine segmentation."
    )
    parser.add_argument("--version", action="version", version=f"sspcmr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser(
        "synth",
        help="generate the synthetic 4D cine phantom in the M&Ms / M&Ms-2 layouts",
        description="Generate synthetic 4D short-axis cine MR with labels, written exactly in the M&Ms and "
        "M&Ms-2 download layouts, plus a truth sidecar (sspcmr_truth/).",
    )
    synth.add_argument("--out", required=True, help="output folder (MnM/, MnM2/ and sspcmr_truth/ go below it)")
    synth.add_argument("--layout", choices=["mnms", "mnms2", "both"], default="both", help="file layout(s)")
    synth.add_argument("--subjects", type=int, default=8, help="subjects per layout")
    synth.add_argument("--seed", type=int, default=0, help="data-set seed (same seed, identical arrays)")
    synth.add_argument("--size", choices=["tiny", "small", "realistic"], default="tiny",
                       help="tiny: 64-96 px, 6-8 slices, 8-12 frames; realistic: 192-256 px, 8-14 slices, 20-35 frames")
    synth.add_argument("--vendors", nargs="+", default=None, metavar="V",
                       help="vendor profiles to cycle through (A-D as M&Ms, E unseen); default per layout")
    synth.add_argument("--workers", type=int, default=1, help="parallel processes")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(handler=_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sspcmr`` console script."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        return args.handler(args)
    except ValueError as error:  # bad arguments: one line, no traceback
        print(f"sspcmr {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
