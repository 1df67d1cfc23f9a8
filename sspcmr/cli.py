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


def _splits_subset(args: argparse.Namespace) -> int:
    from sspcmr.data.splits import labelled_subset, read_split, write_split

    subset = labelled_subset(read_split(args.base), args.subjects, args.seed)
    write_split(subset, args.output)
    print(f"wrote {args.output}: {subset.counts()}")
    return 0


def _splits_show(args: argparse.Namespace) -> int:
    from sspcmr.data.splits import read_split

    for path in args.files:
        print(f"{path}: {read_split(path).counts()}")
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

    splits = commands.add_parser("splits", help="read, show and derive subject split files (reference YAML format)")
    split_commands = splits.add_subparsers(dest="split_command", required=True)
    subset = split_commands.add_parser(
        "subset",
        help="labelled training subset of a split (reference: legacy NumPy seed + shuffle; nested across sizes)",
    )
    subset.add_argument("--base", required=True, help="split YAML with train/valid/test")
    subset.add_argument("--subjects", type=int, required=True, help="training subjects to keep")
    subset.add_argument("--seed", type=int, default=0, help="subset seed (the reference used 0, 1, 2)")
    subset.add_argument("-o", "--output", required=True, help="output YAML")
    subset.set_defaults(handler=_splits_subset)
    show = split_commands.add_parser("show", help="print subject counts per part and data set")
    show.add_argument("files", nargs="+", help="split YAML files")
    show.set_defaults(handler=_splits_show)
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
