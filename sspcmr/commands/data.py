"""``sspcmr synth | prepare | orientation-check | inspect``: the phantom, the prepared store, where the two
orientation rules disagree on the raw headers, and what a data module sees.

Plain argparse; the libraries are imported when a command runs, not at start-up.
"""

from __future__ import annotations

import argparse
import time


def _synth(args: argparse.Namespace) -> int:
    """``sspcmr synth``: write the synthetic phantom in the download layouts and print its summary."""
    from sspcmr.phantom import format_summary, generate_dataset

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


def _prepare(args: argparse.Namespace) -> int:
    """``sspcmr prepare``: validate and prepare the downloads into the memory-mapped store."""
    from sspcmr.data.prepare import prepare_dataset
    from sspcmr.data.prepare.summary import format_prepare_report

    start = time.perf_counter()
    report = prepare_dataset(args.raw, args.out, datasets=args.datasets, skip_invalid=args.skip_invalid,
                             workers=args.workers, progress=not args.quiet, verify=args.verify,
                             wait_for_lock=args.wait, orientation=args.orientation)
    print(format_prepare_report(report, args.out, time.perf_counter() - start))
    return 0


def _orientation_check(args: argparse.Namespace) -> int:
    """``sspcmr orientation-check``: compare the anatomical and the reference orientation rule per subject."""
    from sspcmr.data.prepare.orientation_check import check_orientation, check_report_path, format_check, write_check

    if args.out:
        check_report_path(args.out, args.raw)
    check = check_orientation(args.raw, datasets=args.datasets, progress=not args.quiet)
    if args.out:
        write_check(check, args.out, args.raw)
    print(format_check(check, args.out))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    """``sspcmr inspect``: print the data module's counts per mode, split part and vendor."""
    from sspcmr.data.datamodule import CineDataModule

    module = CineDataModule(args.prepared, args.split, train_phases=args.train_phases, eval_phases=args.eval_phases,
                            subset_subjects=args.subset, subset_seed=args.subset_seed)
    counts = module.counts()
    print(f"{args.prepared} with {args.split}: subjects, slices and images (slice x frame) per mode, part, vendor")
    print(counts.to_string(index=False))
    return 0


def _add_synth(commands: argparse._SubParsersAction) -> None:
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


def _add_raw_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--raw`` and ``--datasets``, the downloads a command reads (``verb``: what it does with them)."""
    parser.add_argument("--raw", required=True, help="folder holding MnM/ and/or MnM2/ (or original_data/)")
    parser.add_argument("--datasets", nargs="+", choices=["mnms", "mnms2"], default=["mnms", "mnms2"],
                        help=f"data sets to {verb}")


def _add_prepare(commands: argparse._SubParsersAction) -> None:
    prepare = commands.add_parser(
        "prepare",
        help="validate and prepare M&Ms / M&Ms-2 downloads (or the phantom) into a memory-mapped store",
        description="Read MnM/ and MnM2/ as downloaded, check every subject, find ED/ES, crop zero borders, put "
        "the base at slice 0, compute subject statistics and write per-subject arrays plus a slice index. "
        "Unchanged subjects are reused; the raw folder is never modified.",
    )
    _add_raw_arguments(prepare, "prepare")
    prepare.add_argument("--out", required=True, help="prepared folder (outside the raw folder)")
    prepare.add_argument("--skip-invalid", action="store_true",
                         help="leave invalid subjects out (listed in OUT/tables/<generation>/invalid.csv) instead "
                         "of failing")
    prepare.add_argument("--verify", action="store_true",
                         help="re-hash the arrays of unchanged subjects and redo those whose content changed "
                         "(default: reuse checks array headers and sizes)")
    prepare.add_argument("--orientation", choices=["anatomical", "reference"], default="anatomical",
                         help="how stacks are put in order: anatomical (base at slice 0 from the affine, for any "
                         "vendor) or reference (the reference study's per-data-set header heuristics); recorded in "
                         "OUT/manifest.json, and a change prepares every selected subject again")
    prepare.add_argument("--wait", action="store_true",
                         help="wait for another prepare of OUT to finish (default: stop with a message)")
    prepare.add_argument("--workers", type=int, default=1, help="parallel processes")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(handler=_prepare)


def _add_orientation_check(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "orientation-check",
        help="per subject, where sspcmr's anatomical orientation and the reference's header heuristics disagree",
        description="Read the short-axis cine headers of MnM/ and MnM2/ (never the voxels; nothing is written "
        "there) and compare, per subject, the slice order and in-plane orientation that `sspcmr prepare "
        "--orientation anatomical` and `--orientation reference` would give. Only position-based methods (PCL, "
        "slice location) depend on the slice order.",
    )
    _add_raw_arguments(check, "check")
    check.add_argument("--out", default=None, help="also write one row per subject to this CSV (outside RAW)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(handler=_orientation_check)


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect", help="count subjects, slices and frames per data-module mode, split part and vendor")
    inspect.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare`")
    inspect.add_argument("--split", required=True, help="split YAML with train/valid/test")
    inspect.add_argument("--train-phases", nargs="+", choices=["ED", "ES"], default=None, help="training phases")
    inspect.add_argument("--eval-phases", nargs="+", choices=["ED", "ES"], default=None, help="evaluation phases")
    inspect.add_argument("--subset", type=int, default=None, help="labelled training subset size")
    inspect.add_argument("--subset-seed", type=int, default=0, help="labelled subset seed")
    inspect.set_defaults(handler=_inspect)


def add_data_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``synth``, ``prepare``, ``orientation-check`` and ``inspect`` on the top-level parser's subcommands."""
    _add_synth(commands)
    _add_prepare(commands)
    _add_orientation_check(commands)
    _add_inspect(commands)
