"""``sspcmr study``: run a study file's grid, list or run single runs (job arrays), aggregate the reports
(docs/study.md). The study itself is :mod:`sspcmr.study`; it is imported when the command runs."""

from __future__ import annotations

import argparse

from sspcmr.links import docs_page


def add_study_command(commands: argparse._SubParsersAction) -> None:
    """Register ``study`` on the top-level parser's subcommands."""
    study = commands.add_parser(
        "study", help="run a declared experiment grid (pretraining, scratch and fine-tuning runs, reports); "
        "resumable; --list / --run / --report split it across machines",
        description="Without --list/--run/--report: every run in order (finished runs skipped, interrupted ones "
        "resumed from their last checkpoint, failures recorded), then the reports when all runs are done.")
    study.add_argument("--config", required=True, help="study file, or a shipped one's name "
                       "(study/smoke; `sspcmr configs list --kind study`)")
    study.add_argument("--output-dir", help="override the study file's output_dir")
    action = study.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="print the runs (index, ID, kind, state) and exit")
    action.add_argument("--run", metavar="ID|INDEX",
                        help="execute one run by ID or by its --list index (e.g. $SLURM_ARRAY_TASK_ID)")
    action.add_argument("--report", action="store_true", help="aggregate finished runs into <output_dir>/report")
    action.add_argument("--estimate", action="store_true",
                        help="print the FLOPs, steps and GPU-hours of every run and in total, and exit; nothing is "
                        f"trained or written ({docs_page('study.md#cost-before-launching')})")
    _add_estimate_options(study)
    study.add_argument("--kind", choices=["pretrain", "scratch", "finetune"], action="append",
                       help="with --list: only these kinds (repeatable)")
    study.add_argument("--partial", action="store_true",
                       help="with --report: aggregate although some runs are unfinished (marked in the report)")
    study.add_argument("--launcher", choices=["subprocess", "inline"], default="subprocess",
                       help="subprocess (default): each run is its own process; inline: in this process")
    study.set_defaults(handler=run_study_command)


def _add_estimate_options(study: argparse.ArgumentParser) -> None:
    """The options of ``--estimate``."""
    group = study.add_argument_group("--estimate options")
    group.add_argument("--gpu", nargs="+", default=["h100"], metavar="NAME",
                       help="GPUs to price the runs on: h100, h200, a100, v100, l40s, a10 (default h100)")
    group.add_argument("--mfu", type=float, default=0.3,
                       help="model FLOPs utilisation: the share of the GPU's peak the runs achieve (default 0.3)")
    group.add_argument("--gpus", type=int, nargs="+", default=[1], metavar="N",
                       help="GPU counts to give the wall-clock for (default 1)")
    group.add_argument("--slices-per-epoch", action="append", metavar="KEY=N",
                       help="training slices per epoch of the runs KEY names (a run ID, a pattern such as "
                       "'*-n10-*', or a kind: pretrain, scratch, finetune); repeatable, the last match wins")


def run_study_command(args: argparse.Namespace) -> int:
    """``sspcmr study``: the whole grid and its reports, or one of --list / --run / --report / --estimate."""
    import signal
    import sys

    from sspcmr.study.config import load_study
    from sspcmr.study.runner import StudyError, StudyRunner

    # A job scheduler stops jobs with SIGTERM: exit through Python so the running run's process is stopped
    # too (it resumes from its last checkpoint next time).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    study = load_study(args.config, output_dir=args.output_dir)
    if args.estimate:
        from sspcmr.study.estimate_report import print_estimate
        from sspcmr.study.slice_counts import parse_slice_overrides

        return print_estimate(study, args.gpu, args.mfu, args.gpus, parse_slice_overrides(args.slices_per_epoch))
    runner = StudyRunner(study, launcher=args.launcher)
    if args.list:
        rows = [row for row in runner.listing() if not args.kind or row["kind"] in args.kind]
        import pandas as pd

        print(pd.DataFrame(rows).to_string(index=False) if rows else "no runs")
        return 0
    if args.run is not None:
        try:
            state = runner.run_one(args.run)
        except KeyError as error:
            raise StudyError(str(error.args[0])) from error
        return 0 if state == "done" else 1
    if args.report:
        paths = runner.report(partial=args.partial)
        print(f"wrote {len(paths)} report files to {study.output_dir / 'report'}")
        return 0
    states = runner.run_all()
    failed = [run for run, state in states.items() if state != "done"]
    if failed:
        print(f"\n{len(failed)} run(s) not done: {', '.join(failed)}; fix and rerun `sspcmr study` "
              "(finished runs are kept); status.json and fit.log/test.log in each run folder say why")
        return 1
    paths = runner.report()
    print(f"\nall {len(states)} runs done; wrote {len(paths)} report files to {study.output_dir / 'report'}")
    table = study.output_dir / "report" / "table1_dice.md"
    if table.is_file():
        print(table.read_text())
    return 0
