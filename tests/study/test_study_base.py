"""``base:`` in a study file: the file merged into another study file (mappings key by key, everything else
replaced), with its own name and folder; the ``checkpoint:`` entry, study-wide and per method."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sspcmr.study.config import StudyConfigError, load_study
from sspcmr.study.grid import study_runs
from sspcmr.study.runner import StudyRunner
from sspcmr.study.spec import CheckpointChoice

BASE = {
    "name": "base", "output_dir": "out/base", "data": {"data_dir": "prepared", "split": "split.yaml"},
    "seeds": [0, 1], "subsets": [2], "common": {"trainer.max_epochs": 3, "model": {"init_args": {"lr": 0.1}}},
    "scratch": {"config": "configs/segmentation/baseline.yaml"},
    "finetune": {"config": "configs/segmentation/finetune.yaml"},
    "methods": {"mim": {"label": "MIM", "config": "configs/pretrain/mim.yaml", "transfer": "encoder+decoder",
                        "overrides": {"model.init_args.patch_size": 8, "data.batch_size": 4}},
                "dino": {"label": "DINO", "config": "configs/pretrain/dino.yaml"}},
}


def write(folder: Path, name: str, content: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def test_a_derived_study_merges_mappings_and_replaces_the_rest(tmp_path) -> None:
    write(tmp_path, "base", BASE)
    derived = write(tmp_path, "derived", {
        "base": "base.yaml", "name": "derived", "output_dir": "out/derived", "seeds": [5],
        "common": {"model.init_args.lr": 0.2},  # dotted over the base's nested spelling
        "methods": {"mim": {"overrides": {"model.init_args.patch_size": 16}}}})
    study = load_study(derived)
    assert (study.name, study.output_dir, study.path) == ("derived", Path("out/derived"), derived)
    assert study.variants[0].seeds == (5,)  # a list is replaced
    assert study.common == {"trainer.max_epochs": 3, "model.init_args.lr": 0.2}
    mim = study.methods["mim"]
    assert mim.overrides == {"model.init_args.patch_size": 16, "data.batch_size": 4}  # merged key by key
    assert (mim.label, mim.transfer, study.methods["dino"].label) == ("MIM", "encoder+decoder", "DINO")
    assert study.merged is not None and "base" not in study.merged and study.merged["seeds"] == [5]
    assert load_study(tmp_path / "base.yaml").merged is None


def test_bases_chain_and_a_shipped_study_serves_as_base(tmp_path) -> None:
    write(tmp_path, "base", BASE)
    write(tmp_path, "middle", {"base": "base.yaml", "name": "middle", "output_dir": "out/middle", "subsets": [3]})
    last = load_study(write(tmp_path, "last", {"base": "middle.yaml", "name": "last", "output_dir": "out/last",
                                               "seeds": [7]}))
    assert (last.variants[0].subsets, last.variants[0].seeds, last.name) == (("3",), (7,), "last")
    shipped = load_study(write(tmp_path, "mine", {"base": "study/paper-table1", "name": "mine",
                                                  "output_dir": "out/mine", "subsets": [10]}))
    assert set(shipped.methods) == {"simclr", "pcl", "dino", "mim"} and shipped.variants[0].subsets == ("10",)


@pytest.mark.parametrize(("content", "message"), [
    ({"base": "base.yaml", "output_dir": "x"}, "names its own name"),
    ({"base": "base.yaml", "name": "x"}, "names its own output_dir"),
    ({"base": "nowhere.yaml", "name": "x", "output_dir": "x"}, "nowhere.yaml is no file beside loop.yaml"),
    ({"base": "loop.yaml", "name": "loop", "output_dir": "x"}, "cycle"),
])
def test_bad_bases_name_the_problem(tmp_path, content: dict, message: str) -> None:
    write(tmp_path, "base", BASE)
    path = write(tmp_path, "loop", content)
    with pytest.raises(StudyConfigError, match=message):
        load_study(path)


def test_the_checkpoint_choice_is_study_wide_or_per_method(tmp_path) -> None:
    study = load_study(write(tmp_path, "s", {**BASE, "checkpoint": {"evaluation": "best"},
                                             "methods": {**BASE["methods"],
                                                         "mim": {**BASE["methods"]["mim"], "checkpoint": "best"}}}))
    assert study.checkpoint == CheckpointChoice("last", "best")
    assert study.checkpoints("mim") == CheckpointChoice("best", "best")
    assert study.checkpoints("dino") == study.checkpoints("scratch") == CheckpointChoice("last", "best")
    runs = {run.id: run for run in study_runs(study)}
    assert runs["pretrain-mim"].keep_best and not runs["pretrain-dino"].keep_best
    assert (runs["mim-n2-s0"].init_checkpoint, runs["dino-n2-s0"].init_checkpoint) == ("best", "last")
    assert all(run.test_checkpoint == "best" and run.keep_best for run in runs.values() if run.kind != "pretrain")
    assert load_study(write(tmp_path, "d", BASE)).checkpoint == CheckpointChoice("last", "last")


@pytest.mark.parametrize("value", ["newest", {"pretraining": "first"}, {"test": "best"}, {}, 3])
def test_bad_checkpoint_choices_are_refused(tmp_path, value) -> None:
    with pytest.raises(StudyConfigError, match="checkpoint must be one of"):
        load_study(write(tmp_path, "s", {**BASE, "checkpoint": value}))


def test_the_command_lines_carry_the_checkpoint_choice_and_last_leaves_them_unchanged(tmp_path) -> None:
    from sspcmr.study.arguments import run_arguments

    plain = StudyRunner(load_study(write(tmp_path, "plain", BASE)))
    for run in plain.runs:  # default: the command lines (and so the fingerprints) of before
        for command in ("fit", "test"):
            assert plain.arguments(run, command) == run_arguments(plain.study, run, command)
    best = StudyRunner(load_study(write(tmp_path, "best", {**BASE, "checkpoint": "best"})))
    runs = {run.id: run for run in best.runs}
    fit = best.arguments(runs["mim-n2-s1"], "fit")
    init = fit[fit.index("--model.init_args.init_from") + 1]
    assert init == str(Path("out/base/runs/pretrain-mim/logs/fit/checkpoints/best.ckpt"))
    assert fit.count("--model.init_args.init_from") == 1 and fit[fit.index("--checkpoint.best") + 1] == "true"
    test = best.arguments(runs["scratch-n2-s0"], "test")
    assert test.count("--ckpt_path") == 1
    tested = test[test.index("--ckpt_path") + 1]
    assert tested == str(Path("out/base/runs/scratch-n2-s0/logs/fit/checkpoints/best.ckpt"))
    assert "--checkpoint.best" in best.arguments(runs["pretrain-dino"], "fit")
    assert best.fingerprint(runs["pretrain-mim"]) != plain.fingerprint(plain.runs[0])  # pretrain-mim, keeping best


def test_the_merged_study_is_what_a_run_leaves_beside_its_runs(tmp_path) -> None:
    import json

    write(tmp_path, "base", BASE)
    derived = write(tmp_path, "derived", {"base": "base.yaml", "name": "derived", "output_dir": str(tmp_path / "out"),
                                          "seeds": [3]})
    runner = StudyRunner(load_study(derived), echo=lambda line: None)
    for run in runner.runs:  # every run finished earlier: run_all only records the study
        runner.run_dir(run).mkdir(parents=True)
        (runner.run_dir(run) / "status.json").write_text(json.dumps({"state": "done"}))
    assert set(runner.run_all().values()) == {"done"}
    kept = yaml.safe_load((tmp_path / "out" / "study.yaml").read_text())
    assert kept == runner.study.merged and kept["seeds"] == [3] and kept["methods"]["dino"]["label"] == "DINO"
    assert load_study(tmp_path / "out" / "study.yaml").methods.keys() == runner.study.methods.keys()


def test_command_line_helpers() -> None:
    from sspcmr.study.spec import model_options

    assert model_options(["fit", "--config", "c.yaml", "--model.init_args.channels", "[8, 16]", "--data.seed", "0",
                          "--model.init_args.results_dir", "r"]) == {"channels": "[8,16]"}
