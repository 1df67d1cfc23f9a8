"""``sspcmr study`` end to end on tiny synthetic data: every run's folder and the reports, resuming an
interrupted study without redoing finished runs, --list/--run/--report against a single call, and the
study file's validation."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sspcmr.commands.main import main
from sspcmr.study.config import StudyConfigError, load_study, parse_study
from sspcmr.study.grid import find_run, study_runs
from sspcmr.study.runner import StudyError, StudyRunner

pytestmark = pytest.mark.slow  # multi-process runs: `pytest -m "not slow"` skips them

REPO = Path(__file__).resolve().parents[2]

# Tiny runs: 2-stage U-Net, 32 px, two training batches per epoch, one validation batch.
COMMON = {
    "trainer.accelerator": "cpu", "trainer.devices": 1, "trainer.precision": "32-true",
    "trainer.max_epochs": 1, "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 1,
    "trainer.num_sanity_val_steps": 0, "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False,
    "trainer.log_every_n_steps": 1, "model.init_args.channels": [8, 16], "data.output_size": 32,
    "data.output_spacing": 3.0, "data.batch_size": 2, "data.val_batch_size": 4, "data.num_workers": 0,
}


def study_file(tmp_path: Path, prepared_tiny, name: str = "tiny", variants: bool = True, seeds=(0, 1),
               subsets=(2, "all")) -> Path:
    prepared, split = prepared_tiny
    content = {
        "name": name, "output_dir": str(tmp_path / name),
        "data": {"data_dir": str(prepared), "split": str(split)},
        "seeds": list(seeds), "subsets": list(subsets), "common": COMMON,
        "scratch": {"config": str(REPO / "configs/segmentation/baseline.yaml")},
        "finetune": {"config": str(REPO / "configs/segmentation/finetune.yaml")},
        "methods": {"mim": {"label": "MIM", "config": str(REPO / "configs/pretrain/mim.yaml"),
                            "transfer": "encoder+decoder",
                            "overrides": {"model.init_args.patch_size": 8, "data.batch_size": 4}}},
    }
    if variants:
        content["variants"] = [
            {"name": "ed-only", "train_phases": ["ED"], "methods": ["scratch"], "seeds": [0]},
            {"name": "vendors-ab", "vendors": "A_B", "methods": ["scratch"], "seeds": [0]},
            {"name": "no-augmentation", "augmentation": False, "methods": ["scratch", "mim"], "seeds": [0]},
        ]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture(scope="module")
def finished_study(prepared_tiny, tmp_path_factory) -> tuple[Path, StudyRunner]:
    """The full tiny study, run once in this process (the inline launcher) through ``sspcmr study``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = study_file(tmp_path_factory.mktemp("study"), prepared_tiny)
        assert main(["study", "--config", str(path), "--launcher", "inline"]) == 0
    finally:
        torch.set_num_threads(threads)
    return path, StudyRunner(load_study(path))


def test_the_grid_has_one_pretraining_per_method_first_and_stable_ids(finished_study) -> None:
    _, runner = finished_study
    ids = [run.id for run in runner.runs]
    assert ids[0] == "pretrain-mim" and ids.count("pretrain-mim") == 1
    assert ids[1:] == ["scratch-n2-s0", "scratch-n2-s1", "scratch-nall-s0", "scratch-nall-s1",
                       "mim-n2-s0", "mim-n2-s1", "mim-nall-s0", "mim-nall-s1",
                       "scratch-ed-only-nall-s0", "scratch-vendors-ab-nall-s0",
                       "scratch-no-augmentation-nall-s0", "mim-no-augmentation-nall-s0"]
    assert all(run.depends_on == "pretrain-mim" for run in runner.runs if run.kind == "finetune")
    assert find_run(runner.runs, "2").id == "scratch-n2-s1"
    with pytest.raises(KeyError, match="no run"):
        find_run(runner.runs, "mim-n99-s0")


def test_every_run_has_its_folder_and_every_report_file_is_written(finished_study) -> None:
    path, runner = finished_study
    assert all(runner.state(run) == "done" for run in runner.runs)
    for run in runner.runs:
        folder = runner.run_dir(run)
        assert (folder / "run.json").is_file() and runner.checkpoint(run).is_file()
        assert (folder / "logs" / "fit" / "config.yaml").is_file()  # LightningCLI's resolved config
        assert json.loads((folder / "status.json").read_text())["state"] == "done"
        if run.kind != "pretrain":
            volumes = pd.read_csv(folder / "results" / "volumes.csv")
            assert set(volumes["phase"]) == {"ED", "ES"}  # eval_phases, whatever the training phases
            assert (folder / "split.yaml").is_file()
    report = runner.study.output_dir / "report"
    for name in ("report.md", "runs.csv", "table1_dice.csv", "table1_dice.md", "per_class_dice.csv", "hd95.csv",
                 "ef_error.csv", "table2_phase.csv", "table3_vendor.csv", "table4_augmentation.csv",
                 "dice_vs_subjects.png", "dice_by_position.png"):
        assert (report / name).is_file(), name
    assert (runner.study.output_dir / "study.yaml").read_text() == path.read_text()


def test_runs_train_on_what_their_split_and_record_say(finished_study, prepared_tiny) -> None:
    from sspcmr.data.splits import labelled_subset, read_split
    from sspcmr.data.store import PreparedDataset

    _, runner = finished_study
    full = read_split(prepared_tiny[1])
    by_id = {run.id: run for run in runner.runs}
    for run_id, seed in (("scratch-n2-s0", 0), ("mim-n2-s1", 1)):
        folder = runner.run_dir(by_id[run_id])
        assert read_split(folder / "split.yaml").train == labelled_subset(full, 2, seed).train
        record = json.loads((folder / "run.json").read_text())
        assert record["labelled_subjects"] == 2 and record["labelled_slices"] > 0
        config = yaml.safe_load((folder / "logs" / "fit" / "config.yaml").read_text())
        assert config["seed_everything"] == seed and config["data"]["seed"] == seed
    # Nested subsets (the reference draw): seed 0's 2 subjects are among... all of them.
    assert read_split(runner.run_dir(by_id["scratch-nall-s0"]) / "split.yaml").train == full.train
    # Vendor variant: only vendors A and B train and validate; the test set is unchanged.
    vendor_split = read_split(runner.run_dir(by_id["scratch-vendors-ab-nall-s0"]) / "split.yaml")
    subjects = PreparedDataset(prepared_tiny[0]).subjects
    vendor = {(d, s): v for d, s, v in zip(subjects["dataset"], subjects["SubjectID"], subjects["Vendor"],
                                          strict=True)}
    assert {vendor[(d, s)] for d, ids in vendor_split.train.items() for s in ids} <= {"A", "B"}
    assert vendor_split.test == full.test
    # ED-only: half the labelled images of the same subjects; no augmentation: the resampling alone.
    slices = {rid: json.loads((runner.run_dir(by_id[rid]) / "run.json").read_text())["labelled_slices"]
              for rid in ("scratch-nall-s0", "scratch-ed-only-nall-s0")}
    assert 2 * slices["scratch-ed-only-nall-s0"] == slices["scratch-nall-s0"]
    config = yaml.safe_load((runner.run_dir(by_id["mim-no-augmentation-nall-s0"]) / "logs/fit/config.yaml")
                            .read_text())
    assert config["model"]["init_args"]["augmentation"] is False
    assert config["model"]["init_args"]["init_from"] == str(runner.checkpoint(by_id["pretrain-mim"]))
    assert config["model"]["init_args"]["transfer"] == "encoder+decoder"


def test_rerunning_a_finished_study_redoes_nothing(finished_study) -> None:
    path, runner = finished_study
    stamps = {run.id: runner.checkpoint(run).stat().st_mtime_ns for run in runner.runs}
    lines: list[str] = []
    assert StudyRunner(load_study(path), launcher="inline", echo=lines.append).run_all()
    assert all("done earlier, skipped" in line for line in lines)
    assert stamps == {run.id: runner.checkpoint(run).stat().st_mtime_ns for run in runner.runs}


def test_list_prints_every_run_with_its_state(finished_study, capsys) -> None:
    path, runner = finished_study
    assert main(["study", "--config", str(path), "--list", "--kind", "pretrain"]) == 0
    out = capsys.readouterr().out
    assert "pretrain-mim" in out and "scratch-n2-s0" not in out and "done" in out


def test_a_changed_study_file_is_refused_for_started_runs(finished_study, tmp_path) -> None:
    path, runner = finished_study
    content = yaml.safe_load(path.read_text())
    content["scratch"]["overrides"] = {"model.init_args.lr": 0.02}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(content))
    other = StudyRunner(load_study(changed), launcher="inline")
    run = find_run(other.runs, "scratch-n2-s0")
    (other.run_dir(run) / "status.json").unlink()  # pretend it was interrupted
    try:
        assert other.execute(run) == "failed"
        status = json.loads((other.run_dir(run) / "status.json").read_text())
        assert "other arguments" in status["error"]
    finally:
        (other.run_dir(run) / "status.json").write_text(json.dumps({"state": "done", "fitted": True}))


def test_an_interrupted_fit_resumes_from_its_last_checkpoint(finished_study) -> None:
    _, runner = finished_study
    run = find_run(runner.runs, "scratch-n2-s1")
    folder = runner.run_dir(run)
    # As a kill during training leaves it: status running, fit not finished, last.ckpt of the latest epoch.
    (folder / "status.json").write_text(json.dumps({"state": "running", "fitted": False}))
    assert runner.state(run) == "interrupted"
    stamp = runner.checkpoint(run).stat().st_mtime_ns
    lines: list[str] = []
    resumer = StudyRunner(runner.study, launcher="inline", echo=lines.append)
    assert resumer.execute(run) == "done"
    assert any("resuming from" in line for line in lines)
    log = (folder / "fit.log").read_text()
    assert f"--ckpt_path {runner.checkpoint(run)}" in log
    # Restored at its last epoch (here the final one), the fit trains no further epoch: a fresh start would
    # have trained again and rewritten last.ckpt.
    assert runner.checkpoint(run).stat().st_mtime_ns == stamp


def test_a_failed_run_is_reported_and_the_others_go_on(prepared_tiny, tmp_path) -> None:
    path = study_file(tmp_path, prepared_tiny, name="broken", variants=False, seeds=(0,), subsets=(2,))
    content = yaml.safe_load(path.read_text())
    content["methods"]["mim"]["overrides"]["model.init_args.patch_size"] = 7  # does not tile 32 px: fails
    path.write_text(yaml.safe_dump(content))
    runner = StudyRunner(load_study(path), launcher="inline", echo=lambda line: None)
    states = runner.run_all()
    assert states == {"pretrain-mim": "failed", "scratch-n2-s0": "done", "mim-n2-s0": "blocked"}
    error = json.loads((runner.run_dir(runner.runs[0]) / "status.json").read_text())["error"]
    assert "exited with" in error and "fit.log" in error
    with pytest.raises(StudyError, match="not done"):
        runner.report()
    assert main(["study", "--config", str(path), "--run", "mim-n2-s0", "--launcher", "inline"]) == 2


def test_killed_study_resumes_and_list_run_report_match_a_single_call(prepared_tiny, tmp_path) -> None:
    """Stop a subprocess study with SIGTERM (as a job scheduler does) while its second run trains: the run's
    process stops too; rerun it to the end. Then run the same study run by run with --run INDEX and aggregate
    with --report: the tables are the same."""
    path = study_file(tmp_path, prepared_tiny, name="killed", variants=False, seeds=(0,), subsets=(2,))
    runner = StudyRunner(load_study(path))
    first, second = runner.runs[:2]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "sspcmr", "study", "--config", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.time() + 300
        while not (runner.run_dir(second) / "fit.log").exists() and time.time() < deadline \
                and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)  # the study process only, not its group
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
        time.sleep(1)
        with pytest.raises(ProcessLookupError):  # nothing of the study's session is left running
            os.killpg(process.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert runner.state(first) == "done"
    assert runner.state(second) == "interrupted"
    stamp = runner.checkpoint(first).stat().st_mtime_ns
    assert main(["study", "--config", str(path), "--launcher", "inline"]) == 0
    assert runner.checkpoint(first).stat().st_mtime_ns == stamp  # the finished pretraining was not redone
    assert all(runner.state(run) == "done" for run in runner.runs)

    other = tmp_path / "by-run"
    for index in range(len(runner.runs)):
        assert main(["study", "--config", str(path), "--output-dir", str(other), "--run", str(index),
                     "--launcher", "inline"]) == 0
    assert main(["study", "--config", str(path), "--output-dir", str(other), "--report"]) == 0
    import torch

    for run in runner.runs:  # the same training, whichever way it was launched
        ours = torch.load(runner.checkpoint(run), map_location="cpu", weights_only=False)["state_dict"]
        theirs = torch.load(other / "runs" / run.id / "logs/fit/checkpoints/last.ckpt", map_location="cpu",
                            weights_only=False)["state_dict"]
        assert ours.keys() == theirs.keys()
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-6, msg=f"{run.id} {key}")
    for name in ("table1_dice.csv", "per_class_dice.csv", "runs.csv"):
        single = pd.read_csv(runner.study.output_dir / "report" / name)
        split = pd.read_csv(other / "report" / name)
        split = split.drop(columns=[c for c in ("dir",) if c in split])
        single = single.drop(columns=[c for c in ("dir",) if c in single])
        pd.testing.assert_frame_equal(single, split, check_exact=False, rtol=1e-6)


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": 1}, "unknown keys"),
    ({"subsets": [0]}, "positive integers"),
    ({"seeds": [0, 0]}, "repeated seeds"),
    ({"variants": [{"name": "x", "train_phases": ["ED"], "vendors": "A_B"}]}, "exactly one"),
    ({"variants": [{"name": "x", "vendors": "A_C"}]}, "vendors must be one of"),
    ({"variants": [{"name": "x", "augmentation": False, "methods": ["dino"]}]}, "unknown methods"),
    ({"methods": {"mim": {"config": "m.yaml", "transfer": "decoder"}}}, "transfer must be"),
    ({"data": {"data_dir": "d"}}, "data needs"),
])
def test_bad_study_files_name_the_problem(change: dict, message: str) -> None:
    base = {"name": "s", "output_dir": "o", "data": {"data_dir": "d", "split": "s.yaml"},
            "scratch": {"config": "b.yaml"}, "finetune": {"config": "f.yaml"},
            "methods": {"mim": {"config": "m.yaml", "transfer": "encoder+decoder"}}}
    with pytest.raises(StudyConfigError, match=message):
        parse_study({**base, **change}, "study.yaml")


def test_overrides_may_be_nested_or_dotted() -> None:
    study = parse_study({"name": "s", "output_dir": "o", "data": {"data_dir": "d", "split": "s.yaml"},
                         "common": {"trainer": {"max_epochs": 3}, "model.init_args.lr": 0.1},
                         "scratch": {"config": "b.yaml"}}, "study.yaml")
    assert study.common == {"trainer.max_epochs": 3, "model.init_args.lr": 0.1}
    runner = StudyRunner(study)
    args = runner.arguments(study_runs(study)[0], "fit")
    assert args[:3] == ["fit", "--config", "b.yaml"]
    assert args[args.index("--trainer.max_epochs") + 1] == "3"
    assert args[args.index("--data.train_phases") + 1] == '["ED", "ES"]'


def test_a_subset_of_a_vendor_group_is_drawn_from_that_group(prepared_tiny, tmp_path) -> None:
    from sspcmr.data.splits import labelled_subset, read_split, vendor_subset
    from sspcmr.data.store import PreparedDataset

    path = study_file(tmp_path, prepared_tiny, name="vendor", variants=False)
    content = yaml.safe_load(path.read_text())
    content["variants"] = [{"name": "ab", "vendors": "A_B", "methods": ["scratch"], "subsets": [1], "seeds": [3]}]
    path.write_text(yaml.safe_dump(content))
    runner = StudyRunner(load_study(path))
    run = find_run(runner.runs, "scratch-ab-n1-s3")
    counts = runner._labelled_split(run)
    metadata = PreparedDataset(prepared_tiny[0]).metadata_frames()
    expected = labelled_subset(vendor_subset(read_split(prepared_tiny[1]), metadata, "A_B"), 1, 3)
    assert read_split(runner.run_dir(run) / "split.yaml").train == expected.train
    assert counts["labelled_subjects"] == 1 and counts["labelled_slices"] > 0


def test_a_run_can_use_two_process_ddp(prepared_tiny, tmp_path, monkeypatch) -> None:
    """Runs are their own processes, so a study's runs can train and test with Lightning's DDP (here 2 CPU
    processes, gloo): every test volume is scored exactly once."""
    path = study_file(tmp_path, prepared_tiny, name="ddp", variants=False, seeds=(0,), subsets=(2,))
    content = yaml.safe_load(path.read_text())
    content["methods"] = {}
    content["common"].update({"trainer.devices": 2, "trainer.strategy": "ddp"})
    path.write_text(yaml.safe_dump(content))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    assert main(["study", "--config", str(path)]) == 0
    runner = StudyRunner(load_study(path))
    (run,) = runner.runs
    volumes = pd.read_csv(runner.run_dir(run) / "results" / "volumes.csv", dtype={"subject": str})
    test_subjects = sum(len(ids) for ids in yaml.safe_load((runner.run_dir(run) / "split.yaml").read_text())["test"]
                        .values())
    assert len(volumes) == 2 * test_subjects
    assert not volumes.duplicated(["dataset", "subject", "phase"]).any()
    assert "ddp" in (runner.run_dir(run) / "logs/fit/config.yaml").read_text()
