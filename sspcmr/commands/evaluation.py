"""``sspcmr evaluate | segment | compare | probe | export-backbone``: scoring, applying and exporting trained
networks (docs/evaluation.md). Plain argparse; torch is imported when a command runs, not at start-up.
"""

from __future__ import annotations

import argparse

from sspcmr.links import docs_page


def _evaluate(args: argparse.Namespace) -> int:
    """``sspcmr evaluate``: score a checkpoint on the test subjects in native space."""
    from sspcmr.evaluation.evaluate import evaluate_checkpoint

    evaluate_checkpoint(args.ckpt, args.prepared, args.split, args.out, eval_phases=args.eval_phases,
                        output_size=args.output_size, output_spacing=args.output_spacing,
                        accelerator=args.accelerator, devices=args.devices, num_workers=args.workers)
    return 0


def _segment(args: argparse.Namespace) -> int:
    """``sspcmr segment``: segment NIfTI files, one output per input."""
    from sspcmr.inference.segment import segment_files

    for path in segment_files(args.ckpt, args.input, args.out, device=args.device, overwrite=args.overwrite,
                              precision=args.precision):
        print(f"wrote {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    """``sspcmr compare``: the test results of ``NAME=RESULTS_DIR`` runs side by side."""
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
    """``sspcmr probe``: validation Dice of a probe on frozen features, per source and seed (and their spread)."""
    from sspcmr.data.datamodule import CineDataModule
    from sspcmr.evaluation.probe import frozen_probe

    data = CineDataModule(args.prepared, args.split, mode="segment", subset_subjects=args.subset,
                          subset_seed=args.subset_seed, output_size=args.output_size,
                          output_spacing=args.output_spacing, batch_size=32, num_workers=0)
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
    """``sspcmr export-backbone``: a checkpoint's transferable weights as a plain state dict."""
    from sspcmr.methods.export import export_backbone

    out = export_backbone(args.ckpt, args.out, parts=args.parts, file_format=args.format)
    if args.format == "nnunet":
        print(f"wrote {out} (nnU-Net v2 network_weights for nnUNetv2_train -pretrained_weights) and {out.name}.json "
              f"(manifest and the plan's architecture block: {docs_page('nnunet.md')})")
    else:
        print(f"wrote {out} (reference key names) and {out.name}.json (manifest)")
    return 0


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="score a segmentation checkpoint on the test subjects in native space",
        description=f"Score a segmentation checkpoint on the test subjects in native space: "
        f"{docs_page('evaluation.md')}")
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


def _add_segment(commands: argparse._SubParsersAction) -> None:
    segment = commands.add_parser(
        "segment", help="segment plain 3D/4D short-axis NIfTI files with a checkpoint (output on the input's grid)")
    segment.add_argument("--ckpt", required=True, help="Segmentation checkpoint (.ckpt)")
    segment.add_argument("--input", nargs="+", required=True, help="NIfTI files (3D volume or 4D cine)")
    segment.add_argument("--out", required=True, help="output folder: <name>_pred.nii.gz per input, below the "
                         "input's folder relative to the inputs' common folder (a/sa.nii.gz -> OUT/a/sa_pred.nii.gz)")
    segment.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: refuse)")
    segment.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    segment.add_argument("--precision", choices=["32-true", "bf16-mixed", "16-mixed"], default="32-true",
                         help="32-true, or the network under autocast: bf16-mixed (CPU or GPU), 16-mixed (GPU)")
    segment.set_defaults(handler=_segment)


def _add_probe(commands: argparse._SubParsersAction) -> None:
    probe = commands.add_parser(
        "probe", help="validation Dice of a 1x1-conv probe on frozen features (representation quality, "
        "independent of fine-tuning)",
        description=f"Representation quality independent of fine-tuning: {docs_page('evaluation.md')}")
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
                       help="no effect (probes see the evaluation resampling, which scales no intensity); "
                            "accepted so earlier command lines still run")
    probe.add_argument("--channels", type=int, nargs="+", default=None,
                       help="U-Net channels for 'random' and sources without a manifest")
    probe.add_argument("--steps", type=int, default=300, help="Adam steps of the probe")
    probe.add_argument("--seeds", type=int, nargs="+", default=[0], help="probe seeds (head initialisation, batches)")
    probe.set_defaults(handler=_probe)


def add_evaluation_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``evaluate``, ``segment``, ``compare``, ``probe`` and ``export-backbone`` on the top-level
    parser's subcommands."""
    _add_evaluate(commands)
    _add_segment(commands)
    compare = commands.add_parser(
        "compare", help="print test results of several runs side by side (mean ± std over volumes)")
    compare.add_argument("runs", nargs="+", metavar="NAME=RESULTS_DIR",
                         help="results folders written by `sspcmr test` / `sspcmr evaluate`")
    compare.set_defaults(handler=_compare)
    _add_probe(commands)
    export = commands.add_parser(
        "export-backbone", help="write a checkpoint's transferable U-Net weights as a plain state dict with the "
        "reference key names (encoder.*, decoder.*), or for nnU-Net v2 (--format nnunet)")
    export.add_argument("ckpt", help="checkpoint of any sspcmr method (.ckpt)")
    export.add_argument("-o", "--out", required=True, help="output file (.pt); the manifest goes to OUT.json")
    export.add_argument("--parts", choices=["auto", "encoder", "encoder+decoder", "all"], default="auto",
                        help="auto: what the method transfers (encoder; encoder+decoder for MIM); all: also heads")
    export.add_argument("--format", choices=["sspcmr", "nnunet"], default="sspcmr",
                        help="sspcmr: plain state dict with the reference key names; nnunet: a checkpoint for "
                        f"nnU-Net v2's nnUNetv2_train -pretrained_weights (a matching 2D plan: "
                        f"{docs_page('nnunet.md')})")
    export.set_defaults(handler=_export_backbone)
