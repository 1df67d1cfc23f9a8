"""Two ``sspcmr study`` processes side by side share one grid: every run is executed exactly once, fine-tunings
wait for a pretraining the other process runs, and both return when everything is done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sspcmr.study.config import load_study
from sspcmr.study.locks import acquire
from sspcmr.study.runner import StudyRunner
from tests.study.test_study import study_file

pytestmark = pytest.mark.slow  # multi-process runs: `pytest -m "not slow"` skips them


def test_two_processes_share_the_grid_and_run_everything_once(prepared_tiny, tmp_path) -> None:
    path = study_file(tmp_path, prepared_tiny, name="shared", variants=False, seeds=(0,), subsets=(1,))
    content = yaml.safe_load(path.read_text())
    content["methods"]["mim-enc"] = {"label": "MIM (encoder)", "pretraining": "mim", "transfer": "encoder"}
    path.write_text(yaml.safe_dump(content))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "sspcmr", "study", "--config", str(path)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    runner = StudyRunner(load_study(path))
    assert [runner.state(run) for run in runner.runs] == ["done"] * 4
    for run in runner.runs:
        fits = (runner.run_dir(run) / "fit.log").read_text().count("$ sspcmr fit")
        assert fits == 1, (run.id, outputs)  # never started twice
        assert not (runner.run_dir(run) / ".lock").exists()
    finished = {line.split(":")[0] for out in outputs for line in out.splitlines() if ": done (" in line}
    assert finished == {r.id for r in runner.runs}  # each reported done by the process that ran it
    assert (runner.study.output_dir / "report" / "report.md").is_file()


def test_a_lock_is_taken_atomically_and_a_stale_one_replaced(prepared_tiny, tmp_path) -> None:
    runner = StudyRunner(load_study(study_file(tmp_path, prepared_tiny, variants=False, seeds=(0,), subsets=(1,))))
    run = runner.runs[0]
    lock = runner.run_dir(run) / ".lock"
    lock.parent.mkdir(parents=True)
    assert acquire(lock) and lock.read_text().endswith(f":{os.getpid()}")
    assert not acquire(lock)  # held by this live process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(lock.read_text().rsplit(":", 1)[0] + ":" + dead.stdout.strip())
    assert acquire(lock) and Path(lock).read_text().endswith(f":{os.getpid()}")
