"""``sspcmr study``: run a study file's grid, list or run single runs (job arrays), aggregate the reports
(docs/study.md). The study itself is :mod:`sspcmr.study`; it is imported when the command runs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from sspcmr.links import docs_page

if TYPE_CHECKING:
    from sspcmr.study.slurm_plan import SlurmResources


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
    study.add_argument("--launcher", choices=["subprocess", "inline", "slurm"], default="subprocess",
                       help="subprocess (default): each run is its own process; inline: in this process; slurm: "
                       "submit the unfinished runs as SLURM job arrays and the report as a job after them, then "
                       f"return ({docs_page('cluster.md')})")
    _add_slurm_options(study)
    study.set_defaults(handler=run_study_command)


def _add_slurm_options(study: argparse.ArgumentParser) -> None:
    """The options of ``--launcher slurm`` (defaults: :class:`~sspcmr.study.slurm_plan.SlurmResources`)."""
    group = study.add_argument_group("--launcher slurm options")
    group.add_argument("--slurm-partition", metavar="P", help="partition of every job (default: the cluster's)")
    group.add_argument("--slurm-time", metavar="HH:MM:SS", help="time limit of one run, HH:MM:SS or D-HH:MM:SS "
                       "(default 24:00:00); a run stopped by it resumes from last.ckpt when submitted again")
    group.add_argument("--slurm-gpus-per-run", type=int, metavar="N",
                       help="GPUs of one run on one node (default 1); set the study's trainer.devices to match")
    group.add_argument("--slurm-cpus-per-run", type=int, metavar="N", help="CPU cores of one run (default 8)")
    group.add_argument("--slurm-mem-gb", type=int, metavar="N", help="memory of one run in GB (default 32)")
    group.add_argument("--slurm-array-parallelism", type=int, metavar="N",
                       help="at most N tasks of one array at once (default 256)")
    group.add_argument("--slurm-setup", nargs="+", action="extend", metavar="CMD",
                       help="shell lines run before each job, e.g. 'module load cuda' 'source .venv/bin/activate'")
    group.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                       help="another sbatch option for every job, e.g. account=abc for --account=abc (repeatable)")
    group.add_argument("--dry-run", action="store_true",
                       help="print the arrays, their runs, dependencies and resources; submit nothing")


_SLURM_OPTIONS = {"slurm_partition": "partition", "slurm_time": "time", "slurm_gpus_per_run": "gpus_per_run",
                  "slurm_cpus_per_run": "cpus_per_run", "slurm_mem_gb": "mem_gb",
                  "slurm_array_parallelism": "array_parallelism", "slurm_setup": "setup", "slurm_option": "options"}


def _slurm_resources(args: argparse.Namespace) -> SlurmResources | None:
    """The resources the --slurm-* options ask for; an error where they come without ``--launcher slurm``."""
    from sspcmr.study.slurm_plan import SlurmResources

    given = {field: getattr(args, option) for option, field in _SLURM_OPTIONS.items()
             if getattr(args, option) is not None}
    if args.launcher != "slurm":
        if given or args.dry_run:
            raise ValueError("--slurm-* options and --dry-run go with --launcher slurm")
        return None
    if args.list or args.run is not None or args.report or args.estimate:
        raise ValueError("--launcher slurm submits the whole grid: not with --list, --run, --report or --estimate "
                         "(the array tasks run --run and --report themselves)")
    if "setup" in given:
        given["setup"] = tuple(given["setup"])
    if "options" in given:
        pairs = [option.split("=", 1) for option in given["options"]]
        if any(len(pair) != 2 or not pair[0] for pair in pairs):
            raise ValueError(f"--slurm-option takes KEY=VALUE; got {given['options']}")
        given["options"] = {key.removeprefix("--"): value for key, value in pairs}
    return SlurmResources(**given)


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

    resources = _slurm_resources(args)
    study = load_study(args.config, output_dir=args.output_dir)
    if resources is not None:
        from sspcmr.study.slurm import submit_study

        return submit_study(study, resources, dry_run=args.dry_run)
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
