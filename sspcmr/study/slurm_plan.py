"""What ``sspcmr study --launcher slurm`` submits (docs/cluster.md): the study's unfinished runs as SLURM job
arrays with their dependencies, the resources every run gets, and the plan as text (``--dry-run``).

* one array of the pretraining runs and one of the scratch runs, neither waiting for anything;
* one array of fine-tuning runs per pretraining run, waiting (``afterok``) for that pretraining's own array
  task only: a fine-tuning needs only its own pretraining, so one slow or failed pretraining neither delays
  nor cancels the fine-tunings of the others (``afterok`` on the whole pretraining array would);
* the report job, after every array has ended (``afterany``), with ``--report --partial``: failed runs leave
  the report incomplete, not missing, and it names what is missing.

Runs that are done, held by a live process (a run lock, see :mod:`~sspcmr.study.locks`) or still queued by an
earlier submission are not submitted again; fine-tunings of a pretraining queued earlier wait for its job.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field

from .arguments import run_dir
from .locks import lock_holder
from .runner import StudyRunner

__all__ = ["REPORT_RESOURCES", "JobArray", "SlurmResources", "SubmissionPlan", "describe_plan", "parse_time",
           "plan_submission"]

REPORT_RESOURCES = {"timeout_min": 60, "cpus_per_task": 2, "mem_gb": 16, "nodes": 1, "tasks_per_node": 1}
"""The report job's resources: it reads the runs' result tables and draws the charts, on the CPU (no GPU)."""

_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<hours>\d+):(?P<minutes>[0-5]?\d):(?P<seconds>[0-5]?\d)$")


def parse_time(text: str) -> int:
    """Minutes (rounded up) of a SLURM time limit written ``HH:MM:SS`` or ``D-HH:MM:SS``."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"--slurm-time must be HH:MM:SS or D-HH:MM:SS; got {text!r}")
    days, hours, minutes, seconds = (int(match.group(key) or 0) for key in ("days", "hours", "minutes", "seconds"))
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"--slurm-time must be positive; got {text!r}")
    return -(-total // 60)


@dataclass(frozen=True)
class SlurmResources:
    """What every array task (one run) asks SLURM for.

    Args:
        partition: the partition (None: the cluster's default).
        time: time limit of one run, ``HH:MM:SS`` or ``D-HH:MM:SS``.
        gpus_per_run: GPUs of one run, on one node; the study's ``trainer.devices`` should match.
        cpus_per_run: CPU cores of one run (data loading workers).
        mem_gb: memory of one run in GB.
        array_parallelism: at most this many tasks of one array run at once.
        setup: shell lines run before each task (``module load ...``, activating an environment).
        options: further ``sbatch`` options, ``{"account": "abc"}`` for ``--account=abc``.
    """

    partition: str | None = None
    time: str = "24:00:00"
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: int = 32
    array_parallelism: int = 256
    setup: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_time(self.time)
        for name in ("gpus_per_run", "cpus_per_run", "mem_gb", "array_parallelism"):
            minimum = 0 if name == "gpus_per_run" else 1
            if getattr(self, name) < minimum:
                raise ValueError(f"--slurm-{name.replace('_', '-')} must be at least {minimum}")

    def executor_parameters(self) -> dict:
        """The parameters of one array for submitit's ``AutoExecutor.update_parameters``."""
        parameters = {"timeout_min": parse_time(self.time), "cpus_per_task": self.cpus_per_run, "mem_gb": self.mem_gb,
                      "nodes": 1, "tasks_per_node": 1, "slurm_array_parallelism": self.array_parallelism,
                      "slurm_setup": list(self.setup)}
        if self.gpus_per_run:  # no GPU: no --gpus-per-node line at all
            parameters["gpus_per_node"] = self.gpus_per_run
        if self.partition:
            parameters["slurm_partition"] = self.partition
        return parameters

    def describe(self) -> str:
        gpus = f"{self.gpus_per_run} GPU{'s' if self.gpus_per_run != 1 else ''}"
        text = (f"per run: partition {self.partition or '(default)'}, time {self.time}, {gpus}, "
                f"{self.cpus_per_run} CPUs, {self.mem_gb} GB; at most {self.array_parallelism} tasks of an array "
                "at once")
        extra = [f"--{key}={value}" for key, value in self.options.items()]
        text += f"; sbatch {' '.join(extra)}" if extra else ""
        return text + "".join(f"\n  setup: {line}" for line in self.setup)


@dataclass(frozen=True)
class JobArray:
    """One SLURM job array of study runs, one task per run.

    Args:
        name: ``pretrain``, ``scratch`` or ``finetune-<pretraining method>``.
        run_ids: its runs in grid order (task index = position here).
        after_runs: runs of this submission whose tasks must succeed first (``afterok``).
        after_jobs: SLURM job IDs of an earlier submission that must succeed first (``afterok``).
    """

    name: str
    run_ids: tuple[str, ...]
    after_runs: tuple[str, ...] = ()
    after_jobs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmissionPlan:
    """The arrays to submit (the report job follows when there is any) and why the other runs are left out.

    Args:
        arrays: the job arrays, in submission order (dependencies first).
        skipped: ``{run ID: why it is not submitted}`` (done, running, queued, waiting for a run outside SLURM).
        earlier_jobs: the SLURM jobs (array IDs) of earlier submissions still holding runs: the report waits for
            them too.
    """

    arrays: tuple[JobArray, ...]
    skipped: Mapping[str, str]
    earlier_jobs: tuple[str, ...] = ()

    @property
    def runs(self) -> int:
        return sum(len(array.run_ids) for array in self.arrays)


def plan_submission(runner: StudyRunner, queued: Mapping[str, str]) -> SubmissionPlan:
    """The arrays of the study's unfinished runs; ``queued`` maps runs that an earlier submission's job still
    holds (pending or running in ``squeue``) to that job's ID."""
    states = {run.id: runner.state(run) for run in runner.runs}
    pretrain: list[str] = []
    scratch: list[str] = []
    finetune: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}

    def busy(run_id: str) -> str | None:
        if run_id in queued:
            return f"queued or running as SLURM job {queued[run_id]}"
        if states[run_id] == "running":
            return f"running ({lock_holder(run_dir(runner.study, run_id) / '.lock')})"
        return None

    for run in runner.runs:  # pretraining runs come first, so each fine-tuning's upstream is decided
        reason = "done" if states[run.id] == "done" else busy(run.id)
        upstream = run.depends_on
        if reason is None and run.kind == "finetune" and states[upstream] != "done" and upstream not in pretrain \
                and upstream not in queued:
            reason = f"waits for {upstream}, {busy(upstream)} with no known SLURM job: submit again when it is done"
        if reason is not None:
            skipped[run.id] = reason
        elif run.kind == "pretrain":
            pretrain.append(run.id)
        elif run.kind == "scratch":
            scratch.append(run.id)
        else:
            finetune.setdefault(upstream, []).append(run.id)
    arrays = [JobArray("pretrain", tuple(pretrain))] if pretrain else []
    arrays += [JobArray("scratch", tuple(scratch))] if scratch else []
    for upstream, run_ids in finetune.items():
        after_runs = (upstream,) if upstream in pretrain else ()
        after_jobs = (queued[upstream],) if upstream in queued and states[upstream] != "done" else ()
        arrays.append(JobArray(f"finetune-{upstream.removeprefix('pretrain-')}", tuple(run_ids), after_runs,
                               after_jobs))
    earlier = sorted({queued[run.id].split("_")[0] for run in runner.runs
                      if run.id in queued and states[run.id] != "done"}, key=lambda job: (len(job), job))
    return SubmissionPlan(tuple(arrays), skipped, tuple(earlier))


def describe_plan(plan: SubmissionPlan, resources: SlurmResources, total: int) -> list[str]:
    """The plan as lines of text: each array with its runs and dependencies, the report job, the resources."""
    lines = [f"SLURM plan: {plan.runs} of {total} runs in {len(plan.arrays)} job arrays, "
             f"{len(plan.skipped)} not submitted"]
    for array in plan.arrays:
        after = [f"{run} succeeds" for run in array.after_runs] + [f"job {job} succeeds" for job in array.after_jobs]
        lines.append(f"  array {array.name}: {len(array.run_ids)} runs" + (f", after {', '.join(after)}"
                                                                            if after else ", no dependency"))
        lines += textwrap.wrap(" ".join(array.run_ids), 116, initial_indent="    ", subsequent_indent="    ",
                               break_on_hyphens=False)
    if plan.arrays:
        earlier = f" and earlier jobs {', '.join(plan.earlier_jobs)}" if plan.earlier_jobs else ""
        lines.append(f"  job report: after all {len(plan.arrays)} arrays{earlier} end (afterany), "
                     f"`sspcmr study --report --partial` (CPU, {REPORT_RESOURCES['cpus_per_task']} cores, "
                     f"{REPORT_RESOURCES['mem_gb']} GB, {REPORT_RESOURCES['timeout_min']} min)")
    else:
        lines.append("  nothing to submit")
    done = sum(reason == "done" for reason in plan.skipped.values())
    if done:
        lines.append(f"  not submitted: {done} runs done")
    lines += [f"  not submitted: {run_id}: {reason}" for run_id, reason in plan.skipped.items() if reason != "done"]
    if any(reason.startswith("running (") for reason in plan.skipped.values()):
        lines.append("  (a run held by a process that no longer exists, e.g. on a node that failed, keeps its lock: "
                     "delete <output_dir>/runs/<id>/.lock to submit it again)")
    lines.append(resources.describe())
    return lines
