"""``sspcmr study --launcher slurm``: which runs land in which job array and what they wait for (finished,
running and still-queued runs left out), the submission through an executor standing in for submitit's (the
dependency strings name the right jobs), submitit's own SLURM executor up to a stand-in ``sbatch``, tasks run
through submitit's ``debug`` executor, requeueing, and the command line."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from sspcmr.commands.main import main
from sspcmr.study.config import load_study
from sspcmr.study.runner import StudyRunner
from sspcmr.study.slurm import RUN_ENV, SLURM_FOLDER, StudyCommand, read_jobs, submit_study
from sspcmr.study.slurm_plan import JobArray, SlurmResources, describe_plan, parse_time, plan_submission

SMOKE_PRETRAIN = ("pretrain-mim", "pretrain-simclr")
SMOKE_SCRATCH = ("scratch-n1-s0", "scratch-n1-s1", "scratch-n2-s0", "scratch-n2-s1", "scratch-ed-only-n2-s0",
                 "scratch-vendors-ab-n2-s0", "scratch-no-augmentation-n2-s0")
SMOKE_MIM = ("mim-n1-s0", "mim-n1-s1", "mim-n2-s0", "mim-n2-s1", "mim-ed-only-n2-s0", "mim-vendors-ab-n2-s0")
SMOKE_SIMCLR = ("simclr-n1-s0", "simclr-n1-s1", "simclr-n2-s0", "simclr-n2-s1")


FakeJob = namedtuple("FakeJob", "job_id")


class FakeExecutor:
    """Records what submitit's ``AutoExecutor`` would be asked; array ``N`` has job IDs ``N_0, N_1 ...``.
    With ``inner`` (a real submitit executor) every call goes to it as well and its jobs are returned."""

    def __init__(self, job_id: int, inner=None) -> None:
        self.job_id, self.inner = job_id, inner
        self.parameters: dict = {}
        self.function = self.items = None

    def update_parameters(self, **parameters) -> None:
        self.parameters.update(parameters)
        if self.inner is not None:
            self.inner.update_parameters(**parameters)

    def map_array(self, function, items):
        self.function, self.items = function, list(items)
        if self.inner is not None:
            self.jobs = self.inner.map_array(function, items)
            return self.jobs
        return [FakeJob(f"{self.job_id}_{index}") for index in range(len(self.items))]

    def submit(self, function):
        self.function = function
        if self.inner is not None:
            self.jobs = [self.inner.submit(function)]
            return self.jobs[0]
        return FakeJob(str(self.job_id))


class Factory:
    """Makes :class:`FakeExecutor` s with job IDs 100, 101, ... and keeps them."""

    def __init__(self, first: int = 100, cluster: str | None = None) -> None:
        self.next, self.cluster, self.executors = first, cluster, []

    def __call__(self, folder: Path) -> FakeExecutor:
        inner = None
        if self.cluster is not None:
            import submitit

            inner = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        self.executors.append(FakeExecutor(self.next, inner))
        self.next += 1
        return self.executors[-1]


def mark(runner: StudyRunner, run_id: str, state: str | None = None, lock: str | None = None) -> None:
    """Leave a run as the runner leaves it: ``status.json`` with its state, and/or a run lock ``host:pid``."""
    folder = runner.study.output_dir / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    if state is not None:
        (folder / "status.json").write_text(json.dumps({"state": state, "fitted": state == "done"}))
    if lock is not None:
        (folder / ".lock").write_text(lock)


@pytest.fixture
def smoke(tmp_path) -> StudyRunner:
    """The shipped smoke study with its runs under ``tmp_path`` (nothing is trained: plans read run folders)."""
    return StudyRunner(load_study("study/smoke", output_dir=tmp_path / "smoke"), echo=lambda line: None)


def test_a_fresh_study_is_one_array_per_kind_and_fine_tunings_wait_for_their_own_pretraining(smoke) -> None:
    plan = plan_submission(smoke, {})
    assert plan.arrays == (JobArray("pretrain", SMOKE_PRETRAIN), JobArray("scratch", SMOKE_SCRATCH),
                           JobArray("finetune-mim", SMOKE_MIM, after_runs=("pretrain-mim",)),
                           JobArray("finetune-simclr", SMOKE_SIMCLR, after_runs=("pretrain-simclr",)))
    assert plan.runs == len(smoke.runs) == 19 and not plan.skipped
    lines = describe_plan(plan, SlurmResources(partition="gpu", time="2-00:00:00", setup=("module load cuda",)), 19)
    assert lines[0] == "SLURM plan: 19 of 19 runs in 4 job arrays, 0 not submitted"
    assert "  array finetune-simclr: 4 runs, after pretrain-simclr succeeds" in lines
    assert any(line.startswith("  job report: after all 4 arrays end (afterany)") for line in lines)
    assert "partition gpu, time 2-00:00:00, 1 GPU, 8 CPUs, 32 GB" in lines[-1]
    assert lines[-1].endswith("\n  setup: module load cuda")


def test_done_running_and_queued_runs_are_left_out_and_dependencies_follow_them(smoke) -> None:
    mark(smoke, "pretrain-mim", "done")
    mark(smoke, "scratch-n1-s0", "done")
    mark(smoke, "mim-n1-s0", "done")
    mark(smoke, "pretrain-simclr", "failed")  # a failed run is run again, as --run does
    mark(smoke, "simclr-n2-s0", lock="node7:4242")  # a live task on another node holds it
    plan = plan_submission(smoke, {"scratch-n2-s1": "77_3"})
    arrays = {array.name: array for array in plan.arrays}
    assert arrays["pretrain"].run_ids == ("pretrain-simclr",)
    assert arrays["scratch"].run_ids == tuple(r for r in SMOKE_SCRATCH if r not in ("scratch-n1-s0", "scratch-n2-s1"))
    assert arrays["finetune-mim"] == JobArray("finetune-mim", SMOKE_MIM[1:])  # its pretraining is done: no wait
    assert arrays["finetune-simclr"] == JobArray("finetune-simclr", ("simclr-n1-s0", "simclr-n1-s1", "simclr-n2-s1"),
                                                 after_runs=("pretrain-simclr",))
    assert plan.skipped == {"pretrain-mim": "done", "scratch-n1-s0": "done", "mim-n1-s0": "done",
                            "scratch-n2-s1": "queued or running as SLURM job 77_3",
                            "simclr-n2-s0": "running (node7:4242)"}
    # A pretraining still queued by an earlier submission: its fine-tunings wait for that job.
    queued = plan_submission(smoke, {"pretrain-simclr": "50_1", "pretrain-mim": "50_0", "scratch-n1-s1": "9_0"})
    assert queued.earlier_jobs == ("9", "50")  # pretrain-mim is done: its job is no longer waited for
    arrays = {array.name: array for array in queued.arrays}
    assert "pretrain" not in arrays and arrays["finetune-simclr"].after_jobs == ("50_1",)
    assert arrays["finetune-simclr"].after_runs == ()


def test_fine_tunings_of_a_pretraining_run_outside_slurm_are_held_back(smoke) -> None:
    mark(smoke, "pretrain-mim", lock=f"{socket.gethostname()}-elsewhere:1")
    plan = plan_submission(smoke, {})
    names = [array.name for array in plan.arrays]
    assert names == ["pretrain", "scratch", "finetune-simclr"]
    assert plan.arrays[0].run_ids == ("pretrain-simclr",)
    assert set(plan.skipped) == {"pretrain-mim", *SMOKE_MIM}
    assert plan.skipped["mim-n2-s0"].startswith("waits for pretrain-mim, running (") and \
        plan.skipped["mim-n2-s0"].endswith("with no known SLURM job: submit again when it is done")


def test_the_submission_names_the_right_jobs_in_every_dependency(smoke, tmp_path) -> None:
    factory, lines = Factory(), []
    resources = SlurmResources(partition="gpu", time="01:30:00", gpus_per_run=2, setup=("module load cuda",),
                               options={"account": "abc"})
    assert submit_study(smoke.study, resources, executor_factory=factory, squeue=lambda: set(), echo=lines.append) == 0
    pretrain, scratch, mim, simclr, report = factory.executors
    assert [e.parameters["name"] for e in factory.executors] == [
        "smoke-pretrain", "smoke-scratch", "smoke-finetune-mim", "smoke-finetune-simclr", "smoke-report"]
    assert (pretrain.items, scratch.items, mim.items, simclr.items) == (
        list(SMOKE_PRETRAIN), list(SMOKE_SCRATCH), list(SMOKE_MIM), list(SMOKE_SIMCLR))
    for executor in (pretrain, scratch):
        assert "slurm_dependency" not in executor.parameters
        assert executor.parameters["slurm_additional_parameters"] == {"account": "abc"}
    assert mim.parameters["slurm_dependency"] == "afterok:100_0"  # pretrain-mim is task 0 of array 100
    assert simclr.parameters["slurm_dependency"] == "afterok:100_1"
    assert simclr.parameters["slurm_additional_parameters"] == {"account": "abc", "kill-on-invalid-dep": "yes"}
    assert report.parameters["slurm_dependency"] == "afterany:100:101:102:103"
    assert {key: mim.parameters[key] for key in ("timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb",
                                                 "slurm_partition", "slurm_setup")} == {
        "timeout_min": 90, "gpus_per_node": 2, "cpus_per_task": 8, "mem_gb": 32, "slurm_partition": "gpu",
        "slurm_setup": ["module load cuda"]}
    assert "gpus_per_node" not in report.parameters
    base = ("--config", str(smoke.study.path), "--output-dir", str(smoke.study.output_dir))
    assert mim.function == StudyCommand((*base, "--run"), str(Path.cwd()), RUN_ENV)
    assert report.function == StudyCommand((*base, "--report", "--partial"), str(Path.cwd()))
    assert pickle.loads(pickle.dumps(mim.function)) == mim.function  # what submitit sends to the node
    assert "  finetune-mim: job 102, 6 runs, after 100_0" in lines
    assert any(line.startswith("follow: squeue --jobs 100,101,102,103,104") for line in lines)
    recorded = read_jobs(smoke.study.output_dir / SLURM_FOLDER)
    assert recorded["pretrain-simclr"] == "100_1" and recorded["simclr-n1-s1"] == "103_1" and len(recorded) == 19


def test_submitting_again_leaves_out_what_is_still_queued(smoke) -> None:
    first = Factory()
    submit_study(smoke.study, SlurmResources(), executor_factory=first, squeue=lambda: set(), echo=lambda line: None)
    everything = set(read_jobs(smoke.study.output_dir / SLURM_FOLDER).values())
    lines = []
    again = Factory(200)
    submit_study(smoke.study, SlurmResources(), executor_factory=again, squeue=lambda: everything, echo=lines.append)
    assert not again.executors and lines[-1] == "nothing to submit now (see above why)"
    # Only pretrain-simclr (100_1) is still queued; the rest ended without finishing: submitted again.
    again = Factory(200)
    submit_study(smoke.study, SlurmResources(), executor_factory=again, squeue=lambda: {"100_1"},
                 echo=lambda line: None)
    pretrain, _, mim, simclr, _ = again.executors
    assert pretrain.items == ["pretrain-mim"]
    assert (mim.parameters["slurm_dependency"], simclr.parameters["slurm_dependency"]) == (
        "afterok:200_0", "afterok:100_1")
    assert read_jobs(smoke.study.output_dir / SLURM_FOLDER)["pretrain-simclr"] == "100_1"


@pytest.mark.parametrize(("text", "minutes"), [("24:00:00", 1440), ("1-02:00:30", 1561), ("0:00:01", 1)])
def test_time_limits_are_read_as_slurm_writes_them(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


def test_the_command_line(tmp_path, capsys, monkeypatch) -> None:
    study = ["study", "--config", "study/smoke", "--output-dir", str(tmp_path / "smoke")]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "submitit" else find_spec(name, *rest))
    assert main([*study, "--launcher", "slurm", "--dry-run", "--slurm-option", "qos=long"]) == 0
    out = capsys.readouterr().out
    assert "SLURM plan: 19 of 19 runs in 4 job arrays" in out and "sbatch --qos=long" in out
    assert "pip install 'sspcmr[slurm]' to submit" in out and "dry run: nothing submitted" in out
    assert main([*study, "--launcher", "slurm"]) == 2  # no submitit (and no SLURM) here
    assert "needs submitit: pip install 'sspcmr[slurm]'" in capsys.readouterr().err
    monkeypatch.undo()
    for wrong, message in [(["--dry-run"], "go with --launcher slurm"),
                           (["--launcher", "slurm", "--run", "0"], "not with --list, --run"),
                           (["--launcher", "slurm", "--dry-run", "--slurm-time", "90"], "HH:MM:SS"),
                           (["--launcher", "slurm", "--dry-run", "--slurm-option", "account"], "KEY=VALUE")]:
        assert main([*study, *wrong]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "smoke").exists()  # nothing written by a plan


def test_tasks_run_through_submitit_as_run_does(smoke) -> None:
    """submitit's own executor (``debug``: a job runs in this process when asked) accepts every parameter given
    to it, and its tasks run ``sspcmr study --run ID``: a run finished meanwhile is skipped (the task succeeds),
    a fine-tuning whose pretraining is not done exits with 2 (the task fails, so ``afterok`` jobs would not start)."""
    pytest.importorskip("submitit")
    factory = Factory(cluster="debug")
    resources = SlurmResources(partition="gpu", setup=("true",), options={"account": "abc"})
    assert submit_study(smoke.study, resources, executor_factory=factory, squeue=lambda: set(),
                        echo=lambda line: None) == 0
    scratch, mim = factory.executors[1], factory.executors[2]
    assert scratch.parameters["slurm_additional_parameters"] == {"account": "abc"}
    mark(smoke, "scratch-n1-s0", "done")
    assert scratch.jobs[0].exception() is None
    error = mim.jobs[0].exception()
    assert isinstance(error, RuntimeError) and str(error).endswith("--run mim-n1-s0` exited with 2")
    assert not (smoke.study.output_dir / "runs" / "mim-n1-s0").exists()  # refused before anything was written


FAKE_SBATCH = """#!/bin/sh
# Stands in for SLURM's sbatch: takes job IDs 1000, 1001 ... and keeps nothing but the submitted script.
n=$((1000 + $(ls "$SBATCH_RECORD" | wc -l)))
cp "$1" "$SBATCH_RECORD/$n.sh"
echo "Submitted batch job $n"
"""


def test_submitits_slurm_executor_writes_the_dependencies_into_the_sbatch_scripts(smoke, tmp_path, monkeypatch):
    """The real submission path (submitit's SLURM executor, no test executor) up to ``sbatch``, which a script
    stands in for: each array's ``#SBATCH`` lines carry its size, resources and dependency."""
    pytest.importorskip("submitit")
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", "#!/bin/sh\nexit 1\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_RECORD", str(record))
    resources = SlurmResources(partition="gpu", time="01:30:00", setup=("module load cuda",),
                               options={"account": "abc"})
    assert submit_study(smoke.study, resources, squeue=lambda: set(), echo=lambda line: None) == 0
    scripts = {int(path.stem): path.read_text().splitlines() for path in record.glob("*.sh")}
    assert sorted(scripts) == [1000, 1001, 1002, 1003, 1004]
    logs = smoke.study.output_dir / SLURM_FOLDER
    for lines in scripts.values():
        assert {"#SBATCH --partition=gpu", "#SBATCH --account=abc", "module load cuda"} <= set(lines)
    for job, (name, size, dependency) in {1000: ("pretrain", 2, None), 1001: ("scratch", 7, None),
                                          1002: ("finetune-mim", 6, "afterok:1000_0"),
                                          1003: ("finetune-simclr", 4, "afterok:1000_1")}.items():
        lines = set(scripts[job])
        assert {f"#SBATCH --job-name=smoke-{name}", f"#SBATCH --array=0-{size - 1}%{size}", "#SBATCH --time=90",
                "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB",
                f"#SBATCH --output={logs}/%A_%a_0_log.out"} <= lines
        waits = sorted(line for line in lines if line.startswith(("#SBATCH --dependency", "#SBATCH --kill-on")))
        assert waits == ([f"#SBATCH --dependency={dependency}", "#SBATCH --kill-on-invalid-dep=yes"] if dependency
                         else [])
    report = set(scripts[1004])
    assert {"#SBATCH --job-name=smoke-report", "#SBATCH --dependency=afterany:1000:1001:1002:1003",
            "#SBATCH --time=60", "#SBATCH --cpus-per-task=2"} <= report
    assert not any(line.startswith(("#SBATCH --array", "#SBATCH --gpus")) for line in report)
    assert read_jobs(logs)["simclr-n2-s1"] == "1003_3"


def test_a_task_is_requeued_as_itself_and_its_processes_ignore_the_warning_signal() -> None:
    """On submitit's warning (time limit, preemption) the same command is requeued (``--run`` resumes); the
    run's processes ignore that warning (SIGUSR2) and inherit this, so they stop on SIGTERM, releasing the lock."""
    pytest.importorskip("submitit")
    from sspcmr.study.slurm import _ignore_warning_signal

    command = StudyCommand(("--config", "f.yaml", "--run"), "/tmp", RUN_ENV)
    requeued = command.checkpoint("mim-n1-s0")
    assert (requeued.function, requeued.args) == (command, ("mim-n1-s0",))
    probe = "import signal; print(signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN)"
    child = subprocess.run([sys.executable, "-c", f"import subprocess, sys; {probe}; "
                            f"subprocess.run([sys.executable, '-c', '{probe}'])"],
                           preexec_fn=_ignore_warning_signal, capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["True", "True"]  # in the command's process and in the ones it starts


def test_live_jobs_are_read_from_squeue_and_missing_squeue_is_none() -> None:
    from sspcmr.study.slurm import live_jobs

    assert live_jobs([sys.executable, "-c", "print(' 123_4\\n125\\n\\n')"]) == {"123_4", "125"}
    assert live_jobs(["/nonexistent/squeue"]) is None
    assert live_jobs([sys.executable, "-c", "raise SystemExit(1)"]) is None


def test_a_submission_broken_off_half_way_records_what_was_submitted(smoke) -> None:
    class Breaking(Factory):
        def __call__(self, folder: Path) -> FakeExecutor:
            if len(self.executors) == 2:
                raise RuntimeError("sbatch: error: Batch job submission failed")
            return super().__call__(folder)

    with pytest.raises(RuntimeError, match="submission failed"):
        submit_study(smoke.study, SlurmResources(), executor_factory=Breaking(), squeue=lambda: set(),
                     echo=lambda line: None)
    recorded = read_jobs(smoke.study.output_dir / SLURM_FOLDER)
    assert set(recorded) == {*SMOKE_PRETRAIN, *SMOKE_SCRATCH}
    again = Factory(200)  # both arrays still queued: only the fine-tunings go, after the queued pretrainings
    submit_study(smoke.study, SlurmResources(), executor_factory=again, squeue=lambda: set(recorded.values()),
                 echo=lambda line: None)
    assert [e.parameters.get("slurm_dependency") for e in again.executors] == [
        "afterok:100_0", "afterok:100_1", "afterany:200:201:100:101"]  # the report waits for the queued runs too


def test_a_requeued_task_stops_its_command_with_sigterm(tmp_path, monkeypatch) -> None:
    """submitit requeues a task by exiting from its signal handler while the command runs: the command gets
    SIGTERM (on which ``sspcmr study --run`` releases its run lock), not the SIGKILL of ``subprocess.run``."""
    fake = tmp_path / "python"  # stands in for `python -m sspcmr study ...`: reports how it was stopped
    fake.write_text(f"#!/bin/sh\ntrap 'echo SIGTERM > {tmp_path}/stopped; kill $!; exit 143' TERM\n"
                    f"touch {tmp_path}/started\nsleep 30 & wait\n")
    fake.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(fake))

    def requeue(signum, frame):
        if (tmp_path / "started").exists():
            raise SystemExit(-1)  # what submitit's handler does after requeueing
        signal.setitimer(signal.ITIMER_REAL, 0.1)

    previous = signal.signal(signal.SIGALRM, requeue)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(SystemExit):
            StudyCommand(("--run",), str(tmp_path))("scratch-n1-s0")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert (tmp_path / "stopped").read_text().strip() == "SIGTERM"
