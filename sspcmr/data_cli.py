"""The data commands of ``sspcmr`` (``synth``, ``prepare``, ``splits``, ``inspect``): plain argparse,
no torch import at start-up. The training commands are in :mod:`sspcmr.cli`.
"""

from __future__ import annotations

import argparse
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


def _prepare(args: argparse.Namespace) -> int:
    from sspcmr.data.prepare import prepare_dataset
    from sspcmr.data.prepare.summary import format_prepare_report

    start = time.perf_counter()
    report = prepare_dataset(args.raw, args.out, datasets=args.datasets, skip_invalid=args.skip_invalid,
                             workers=args.workers, progress=not args.quiet, verify=args.verify,
                             wait_for_lock=args.wait)
    print(format_prepare_report(report, args.out, time.perf_counter() - start))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from sspcmr.data.datamodule import CineDataModule

    module = CineDataModule(args.prepared, args.split, train_phases=args.train_phases, eval_phases=args.eval_phases,
                            subset_subjects=args.subset, subset_seed=args.subset_seed)
    counts = module.counts()
    print(f"{args.prepared} with {args.split}: subjects, slices and images (slice x frame) per mode, part, vendor")
    print(counts.to_string(index=False))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from sspcmr.evaluation.evaluate import evaluate_checkpoint

    evaluate_checkpoint(args.ckpt, args.prepared, args.split, args.out, eval_phases=args.eval_phases,
                        output_size=args.output_size, output_spacing=args.output_spacing,
                        accelerator=args.accelerator, devices=args.devices, num_workers=args.workers)
    return 0


def _segment(args: argparse.Namespace) -> int:
    from sspcmr.evaluation.evaluate import segment_files

    for path in segment_files(args.ckpt, args.input, args.out, device=args.device, overwrite=args.overwrite):
        print(f"wrote {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from sspcmr.evaluation.compare import compare_runs, format_comparison

    runs = {}
    for item in args.runs:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"runs are NAME=RESULTS_DIR; got {item!r}")
        runs[name] = folder
    print(format_comparison(compare_runs(runs)))
    return 0


def _probe(args: argparse.Namespace) -> int:
    from sspcmr.data.datamodule import CineDataModule
    from sspcmr.evaluation.probe import frozen_probe

    data = CineDataModule(args.prepared, args.split, mode="segment", subset_subjects=args.subset,
                          subset_seed=args.subset_seed, output_size=args.output_size,
                          output_spacing=args.output_spacing, scale_convention=args.scale_convention,
                          batch_size=32, num_workers=0)
    sources = [None if source == "random" else source for source in args.sources]
    rows = []
    for seed in args.seeds:
        for result in frozen_probe(sources, data, features=args.features, channels=args.channels, steps=args.steps,
                                   seed=seed):
            rows.append((result.source, seed, result.mean, *result.dice.values()))
            print(f"{result.source}  seed {seed}: mean {result.mean:.3f}  "
                  + "  ".join(f"{name} {value:.3f}" for name, value in result.dice.items())
                  + f"  ({result.train_slices} training, {result.val_slices} validation slices)", flush=True)
    if len(args.seeds) > 1:
        import pandas as pd

        table = pd.DataFrame(rows, columns=["source", "seed", "mean", "LV", "MYO", "RV"])
        summary = table.groupby("source", sort=False)[["mean", "LV", "MYO", "RV"]].agg(["mean", "std"])
        print(f"\nvalidation Dice of a 1x1-conv probe on frozen {args.features} features, over seeds "
              f"{args.seeds}:\n{summary.round(3).to_string()}")
    return 0


def _export_backbone(args: argparse.Namespace) -> int:
    from sspcmr.methods.export import export_backbone

    out = export_backbone(args.ckpt, args.out, parts=args.parts)
    print(f"wrote {out} (reference key names) and {out.name}.json (manifest)")
    return 0


def _splits_default(args: argparse.Namespace) -> int:
    from sspcmr.data.prepare import PreparedDataset
    from sspcmr.data.splits import default_split, write_split

    metadata = PreparedDataset(args.prepared).metadata_frames()
    first, _, last = args.mm2_test.partition("-")
    mm2_test = [f"{i:03d}" for i in range(int(first), int(last or first) + 1)]
    split = default_split(metadata, valid_fraction=args.valid_fraction, seed=args.seed,
                          per_vendor=args.test_per_vendor, mm2_test_ids=mm2_test,
                          remove_overlap=not args.keep_mm2_overlap)
    write_split(split, args.output)
    print(f"wrote {args.output}: {split.counts()}")
    return 0


def _splits_vendors(args: argparse.Namespace) -> int:
    from sspcmr.data.prepare import PreparedDataset
    from sspcmr.data.splits import read_split, vendor_subset, write_split

    metadata = PreparedDataset(args.prepared).metadata_frames()
    split = vendor_subset(read_split(args.base), metadata, args.group)
    write_split(split, args.output)
    print(f"wrote {args.output}: {split.counts()}")
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
        prog="sspcmr",
        description="Self-supervised pretraining for cardiac MR short-axis cine segmentation. Training "
        "commands: sspcmr {fit,validate,test,predict} --config CONFIG.yaml (LightningCLI; see --help of each).",
    )
    parser.add_argument("--version", action="version", version=f"sspcmr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or SSPCMR_DEBUG=1)")
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

    prepare = commands.add_parser(
        "prepare",
        help="validate and prepare M&Ms / M&Ms-2 downloads (or the phantom) into a memory-mapped store",
        description="Read MnM/ and MnM2/ as downloaded, check every subject, find ED/ES, crop zero borders, put "
        "the base at slice 0, compute subject statistics and write per-subject arrays plus a slice index. "
        "Unchanged subjects are reused; the raw folder is never modified.",
    )
    prepare.add_argument("--raw", required=True, help="folder holding MnM/ and/or MnM2/ (or original_data/)")
    prepare.add_argument("--out", required=True, help="prepared folder (outside the raw folder)")
    prepare.add_argument("--datasets", nargs="+", choices=["mnms", "mnms2"], default=["mnms", "mnms2"],
                         help="data sets to prepare")
    prepare.add_argument("--skip-invalid", action="store_true",
                         help="leave invalid subjects out (listed in OUT/tables/<generation>/invalid.csv) instead "
                         "of failing")
    prepare.add_argument("--verify", action="store_true",
                         help="re-hash the arrays of unchanged subjects and redo those whose content changed "
                         "(default: reuse checks array headers and sizes)")
    prepare.add_argument("--wait", action="store_true",
                         help="wait for another prepare of OUT to finish (default: stop with a message)")
    prepare.add_argument("--workers", type=int, default=1, help="parallel processes")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(handler=_prepare)

    inspect = commands.add_parser(
        "inspect", help="count subjects, slices and frames per data-module mode, split part and vendor")
    inspect.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare`")
    inspect.add_argument("--split", required=True, help="split YAML with train/valid/test")
    inspect.add_argument("--train-phases", nargs="+", choices=["ED", "ES"], default=None, help="training phases")
    inspect.add_argument("--eval-phases", nargs="+", choices=["ED", "ES"], default=None, help="evaluation phases")
    inspect.add_argument("--subset", type=int, default=None, help="labelled training subset size")
    inspect.add_argument("--subset-seed", type=int, default=0, help="labelled subset seed")
    inspect.set_defaults(handler=_inspect)

    evaluate = commands.add_parser(
        "evaluate", help="score a segmentation checkpoint on the test subjects in native space (docs/evaluation.md)")
    evaluate.add_argument("--ckpt", required=True, help="Segmentation checkpoint (.ckpt)")
    evaluate.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare`")
    evaluate.add_argument("--split", required=True, help="split YAML; its test part is scored")
    evaluate.add_argument("--out", required=True, help="results folder (volumes.csv, summaries, plots)")
    evaluate.add_argument("--eval-phases", nargs="+", choices=["ED", "ES"], default=None, help="phases to score")
    evaluate.add_argument("--output-size", type=int, default=None, help="network grid (default: as trained)")
    evaluate.add_argument("--output-spacing", type=float, default=None, help="grid spacing mm (default: as trained)")
    evaluate.add_argument("--accelerator", default="auto", help="Lightning accelerator")
    evaluate.add_argument("--devices", default="1", help="Lightning devices")
    evaluate.add_argument("--workers", type=int, default=2, help="data-loader workers")
    evaluate.set_defaults(handler=_evaluate)

    segment = commands.add_parser(
        "segment", help="segment plain 3D/4D short-axis NIfTI files with a checkpoint (output on the input's grid)")
    segment.add_argument("--ckpt", required=True, help="Segmentation checkpoint (.ckpt)")
    segment.add_argument("--input", nargs="+", required=True, help="NIfTI files (3D volume or 4D cine)")
    segment.add_argument("--out", required=True, help="output folder: <name>_pred.nii.gz per input, below the "
                         "input's folder relative to the inputs' common folder (a/sa.nii.gz -> OUT/a/sa_pred.nii.gz)")
    segment.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: refuse)")
    segment.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    segment.set_defaults(handler=_segment)

    compare = commands.add_parser(
        "compare", help="print test results of several runs side by side (mean ± std over volumes)")
    compare.add_argument("runs", nargs="+", metavar="NAME=RESULTS_DIR",
                         help="results folders written by `sspcmr test` / `sspcmr evaluate`")
    compare.set_defaults(handler=_compare)

    probe = commands.add_parser(
        "probe", help="validation Dice of a 1x1-conv probe on frozen features (representation quality, "
        "independent of fine-tuning; docs/evaluation.md)")
    probe.add_argument("sources", nargs="+", metavar="SOURCE",
                       help="checkpoints or exported backbones; 'random' for a randomly initialised U-Net (control)")
    probe.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare`")
    probe.add_argument("--split", required=True, help="split YAML: the probe trains on train, scores valid")
    probe.add_argument("--subset", type=int, default=None, help="labelled training subjects (label budget)")
    probe.add_argument("--subset-seed", type=int, default=0, help="labelled subset seed")
    probe.add_argument("--features", choices=["encoder", "decoder"], default="encoder",
                       help="encoder: all encoder stages upsampled and concatenated; decoder: the last decoder stage")
    probe.add_argument("--output-size", type=int, default=256, help="network grid in pixels (as pretrained)")
    probe.add_argument("--output-spacing", type=float, default=1.25, help="network grid spacing in mm (as pretrained)")
    probe.add_argument("--scale-convention", choices=["monai", "multiplier"], default="monai",
                       help="intensity-scale convention of the data module (as pretrained)")
    probe.add_argument("--channels", type=int, nargs="+", default=None,
                       help="U-Net channels for 'random' and sources without a manifest")
    probe.add_argument("--steps", type=int, default=300, help="Adam steps of the probe")
    probe.add_argument("--seeds", type=int, nargs="+", default=[0], help="probe seeds (head initialisation, batches)")
    probe.set_defaults(handler=_probe)

    export = commands.add_parser(
        "export-backbone", help="write a checkpoint's transferable U-Net weights as a plain state dict with the "
        "reference key names (encoder.*, decoder.*)")
    export.add_argument("ckpt", help="checkpoint of any sspcmr method (.ckpt)")
    export.add_argument("-o", "--out", required=True, help="output file (.pt); the manifest goes to OUT.json")
    export.add_argument("--parts", choices=["auto", "encoder", "encoder+decoder", "all"], default="auto",
                        help="auto: what the method transfers (encoder; encoder+decoder for MIM); all: also heads")
    export.set_defaults(handler=_export_backbone)

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
    default = split_commands.add_parser(
        "default", help="the reference's default split (test, train, valid) of a prepared data set")
    default.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare`")
    default.add_argument("--valid-fraction", type=float, default=0.2,
                         help="validation share of the development pool")
    default.add_argument("--seed", type=int, default=0, help="validation shuffle seed (reference: 0)")
    default.add_argument("--test-per-vendor", type=int, default=15, help="M&Ms test subjects per vendor (ref. 15)")
    default.add_argument("--mm2-test", default="281-360", help="M&Ms-2 test ID range (reference: 281-360)")
    default.add_argument("--keep-mm2-overlap", action="store_true",
                         help="keep M&Ms-2 NOR/HCM/LV subjects when both data sets are used (reference: removed)")
    default.add_argument("-o", "--output", required=True, help="output YAML")
    default.set_defaults(handler=_splits_default)
    vendors = split_commands.add_parser(
        "vendors", help="keep the training and validation subjects of a vendor group (A_B, C_D or a comma list "
                        "such as A,B,C,D); test unchanged")
    vendors.add_argument("--base", required=True, help="split YAML with train/valid/test")
    vendors.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare` (vendor metadata)")
    vendors.add_argument("--group", required=True,
                         help="vendor group: A_B, C_D (the reference's) or a comma list of vendor letters (A,B,C,D)")
    vendors.add_argument("-o", "--output", required=True, help="output YAML")
    vendors.set_defaults(handler=_splits_vendors)
    show = split_commands.add_parser("show", help="print subject counts per part and data set")
    show.add_argument("files", nargs="+", help="split YAML files")
    show.set_defaults(handler=_splits_show)

    from sspcmr.study.command import add_study_parser

    add_study_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, debug: bool = False) -> int:
    """Run a data command; returns the exit code: one line per problem and 2 for bad input, 1 for a machine
    failure (:mod:`sspcmr.command_errors`); ``debug`` re-raises with the traceback."""
    from sspcmr.command_errors import run_reporting

    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    return run_reporting(args.command, lambda: args.handler(args), debug)

