"""Submitting a study to SLURM with submitit: ``sspcmr study --config F --launcher slurm`` (docs/cluster.md).

Each array task runs ``python -m sspcmr study --config F --output-dir O --run ID`` in the folder the study was
submitted from, which is exactly what ``--run`` does by hand: a finished run is skipped, an interrupted one
resumes from its ``last.ckpt``, a failed one is run again, and its run lock keeps two tasks from running it at
once. The arrays and their dependencies are planned by :mod:`~sspcmr.study.slurm_plan`.

submitit writes its scripts and the tasks' output to ``<output_dir>/slurm/``; ``jobs.json`` there records the
job of every submitted run, so that a later submission leaves out the runs ``squeue`` still lists (pending or
running) and makes fine-tunings of a pretraining still queued wait for its job.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sspcmr.data.atomic import atomic_write_bytes

from .launch import wait_or_stop
from .runner import StudyError, StudyRunner
from .slurm_plan import REPORT_RESOURCES, SlurmResources, SubmissionPlan, describe_plan, plan_submission
from .spec import StudyConfig

__all__ = ["SLURM_FOLDER", "StudyCommand", "Submission", "live_jobs", "read_jobs", "submit",
           "submit_study"]

SLURM_FOLDER = "slurm"
"""Where submitit's scripts and logs and ``jobs.json`` go, under the study's ``output_dir``."""
JOBS_FILE = "jobs.json"

ExecutorFactory = Callable[[Path], Any]
"""Makes a submitit-like executor for a log folder: ``update_parameters(**kw)``, ``map_array(fn, items)`` and
``submit(fn)``, whose jobs have a ``job_id``."""


@dataclass(frozen=True)
class StudyCommand:
    """``python -m sspcmr study <args> <extra>`` as a picklable function: what submitit runs on the node.

    Args:
        args: the study's arguments (``--config F --output-dir O`` and the action's options).
        cwd: the folder to run in, the submission's: a study file's relative paths are taken from there.
        env: variables set for the command on top of the job's environment.
    """

    args: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...] = ()

    def __call__(self, *extra: str) -> None:
        """Run the command with ``extra`` appended (the run ID of an array task); raise when it fails, so the
        task fails and the jobs that need it (``afterok``) are cancelled."""
        args = [*self.args, *extra]
        process = subprocess.Popen([sys.executable, "-m", "sspcmr", "study", *args], cwd=self.cwd,
                                   env={**os.environ, **dict(self.env)}, preexec_fn=_ignore_warning_signal)
        code = wait_or_stop(process, grace_s=60)  # submitit requeues by exiting from its signal handler
        if code != 0:
            raise RuntimeError(f"`sspcmr study {' '.join(args)}` exited with {code}")

    def checkpoint(self, *extra: str) -> Any:
        """What submitit requeues when the job is warned of its time limit or preempted: the same command, whose
        ``--run`` resumes the run from its ``last.ckpt`` (submitit requeues a timed-out job at most 3 times)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *extra)


def _ignore_warning_signal() -> None:
    """In the command's process, before it starts: ignore SIGUSR2, submitit's warning before the time limit, which
    SLURM sends to every process of the task. submitit's own process handles it (requeueing the task); the run's
    processes are then stopped with SIGTERM, on which they release their run lock (so the requeued task can take
    the run on any node), instead of being killed on the spot by the signal's default action."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


RUN_ENV = (("SLURM_JOB_NAME", "interactive"),)
"""Set for every run: Lightning then ignores the SLURM allocation and starts a run's DDP processes on the node
itself, as outside SLURM (one task per run; with SLURM detected it would expect one task per GPU)."""


@dataclass
class Submission:
    """What was submitted: the array and report job IDs and the job of every run.

    Args:
        arrays: ``{array name: SLURM job ID}``.
        waits_for: ``{array name: job IDs it waits for}``.
        runs: ``{run ID: array task job ID}`` (``123_4``).
        report: the report job's ID.
    """

    arrays: dict[str, str] = field(default_factory=dict)
    waits_for: dict[str, list[str]] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    report: str | None = None


def _dependency(kind: str, jobs: Sequence[str], options: dict) -> dict:
    """Executor parameters making a job wait for ``jobs``; an ``afterok`` job whose dependency fails is
    cancelled rather than left pending for ever (so the report's ``afterany`` is reached)."""
    extra = dict(options)
    if jobs and kind == "afterok":
        extra["kill-on-invalid-dep"] = "yes"
    return {"slurm_additional_parameters": extra, **({"slurm_dependency": f"{kind}:{':'.join(jobs)}"} if jobs else {})}


def submit(plan: SubmissionPlan, study: StudyConfig, resources: SlurmResources, executor_factory: ExecutorFactory,
           cwd: str) -> Submission:
    """Submit the plan's arrays in order, then the report job; each array gets an executor of its own, so no
    dependency carries over to the next. ``jobs.json`` is updated after every submission, so a submission that
    breaks off half way is not submitted twice when repeated."""
    folder = study.output_dir / SLURM_FOLDER
    base = ("--config", str(study.path), "--output-dir", str(study.output_dir))
    options = dict(resources.options)
    done = Submission()
    for array in plan.arrays:
        after = [done.runs[run_id] for run_id in array.after_runs] + list(array.after_jobs)
        executor = executor_factory(folder)
        executor.update_parameters(name=f"{study.name}-{array.name}", **resources.executor_parameters(),
                                   **_dependency("afterok", after, options))
        jobs = executor.map_array(StudyCommand((*base, "--run"), cwd, RUN_ENV), list(array.run_ids))
        done.runs.update(zip(array.run_ids, (str(job.job_id) for job in jobs), strict=True))
        done.arrays[array.name] = str(jobs[0].job_id).split("_")[0]
        done.waits_for[array.name] = after
        _record(folder, done)
    if done.arrays:
        executor = executor_factory(folder)
        partition = {"slurm_partition": resources.partition} if resources.partition else {}
        executor.update_parameters(name=f"{study.name}-report", **REPORT_RESOURCES, **partition,
                                   slurm_setup=list(resources.setup),
                                   **_dependency("afterany", [*done.arrays.values(), *plan.earlier_jobs], options))
        done.report = str(executor.submit(StudyCommand((*base, "--report", "--partial"), cwd)).job_id)
        _record(folder, done)
    return done


def live_jobs(command: Sequence[str] | None = None) -> set[str] | None:
    """The job IDs (``123``, array tasks ``123_4``) of this user's pending and running jobs (``squeue``);
    None where ``squeue`` is missing or fails."""
    try:
        command = command or ["squeue", "--noheader", "--array", "--format=%i", f"--user={getpass.getuser()}"]
        out = subprocess.run(list(command), capture_output=True, text=True, check=True, timeout=120).stdout
    except (OSError, KeyError, subprocess.SubprocessError):  # getuser() raises KeyError without a user name
        return None
    return {line.strip() for line in out.splitlines() if line.strip()}


def read_jobs(folder: Path) -> dict[str, str]:
    """``{run ID: job ID}`` of every earlier submission of the study (the latest job of each run)."""
    try:
        return dict(json.loads((folder / JOBS_FILE).read_text()).get("runs", {}))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise StudyError(f"{folder / JOBS_FILE}: unreadable ({error}); delete it to submit afresh") from error


def _record(folder: Path, submission: Submission) -> None:
    content = {"runs": {**read_jobs(folder), **submission.runs}, "arrays": submission.arrays,
               "report": submission.report}
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(content, indent=2) + "\n"
    atomic_write_bytes(folder / JOBS_FILE, lambda tmp: tmp.write_text(text))


def _slurm_executor_factory() -> ExecutorFactory:
    """submitit's executor for SLURM; a clear error without submitit or without SLURM."""
    if importlib.util.find_spec("submitit") is None:
        raise StudyError("--launcher slurm needs submitit: pip install 'sspcmr[slurm]' (--dry-run shows the plan "
                         "without it)")
    if shutil.which("sbatch") is None:
        raise StudyError("--launcher slurm needs SLURM's sbatch, which is not on this machine's PATH: submit from "
                         "the cluster's login node (--dry-run shows the plan anywhere)")
    import submitit

    return lambda folder: submitit.AutoExecutor(folder=folder, cluster="slurm")


def _submitted_lines(submission: Submission, plan: SubmissionPlan, study: StudyConfig) -> list[str]:
    folder = study.output_dir / SLURM_FOLDER
    sizes = {array.name: len(array.run_ids) for array in plan.arrays}
    lines = [f"submitted to SLURM; scripts and logs in {folder}/ (<job>_<task>_0_log.out and .err)"]
    for name, job in submission.arrays.items():
        after = submission.waits_for[name]
        lines.append(f"  {name}: job {job}, {sizes[name]} runs" + (f", after {', '.join(after)}" if after else ""))
    lines.append(f"  report: job {submission.report}, after "
                 f"{', '.join([*submission.arrays.values(), *plan.earlier_jobs])} end")
    jobs = ",".join([*submission.arrays.values(), str(submission.report)])
    lines += [f"follow: squeue --jobs {jobs} --array",
              f"        sacct --jobs {jobs} --format=JobID%20,JobName%40,State,Elapsed,ExitCode",
              f"        sspcmr study --config {study.path} --output-dir {study.output_dir} --list   (the runs' states)"]
    return lines


def submit_study(study: StudyConfig, resources: SlurmResources, dry_run: bool = False,
                 executor_factory: ExecutorFactory | None = None,
                 squeue: Callable[[], set[str] | None] = live_jobs, echo: Callable[[str], None] = print) -> int:
    """``sspcmr study --launcher slurm``: print the plan, then submit it (not with ``dry_run``).

    Args:
        study: the study.
        resources: what each run asks SLURM for.
        dry_run: print the plan only; needs neither SLURM nor submitit.
        executor_factory: makes the executors (default: submitit's for SLURM); tests pass their own.
        squeue: the live job IDs (default: :func:`live_jobs`), to leave out runs still queued.
        echo: where the lines go.
    """
    factory = executor_factory or (None if dry_run else _slurm_executor_factory())
    runner = StudyRunner(study, echo=echo)
    folder = study.output_dir / SLURM_FOLDER
    recorded = read_jobs(folder)
    live = squeue() if recorded else set()
    if live is None:
        echo("squeue is not available: runs still queued by an earlier submission are not known and are planned again")
    plan = plan_submission(runner, {run: job for run, job in recorded.items() if job in (live or set())})
    for line in describe_plan(plan, resources, len(runner.runs)):
        echo(line)
    if dry_run:
        if executor_factory is None and importlib.util.find_spec("submitit") is None:
            echo("submitit is not installed: pip install 'sspcmr[slurm]' to submit")
        echo(f"dry run: nothing submitted (scripts and logs would go to {folder}/)")
        return 0
    if not plan.arrays:
        everything_done = all(reason == "done" for reason in plan.skipped.values())
        echo(f"nothing to submit; the report: sspcmr study --config {study.path} --output-dir {study.output_dir} "
             "--report" if everything_done else "nothing to submit now (see above why)")
        return 0
    submission = submit(plan, study, resources, factory, os.getcwd())
    for line in _submitted_lines(submission, plan, study):
        echo(line)
    return 0
