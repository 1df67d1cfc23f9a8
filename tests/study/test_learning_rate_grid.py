"""Studies with a learning-rate grid chosen on validation subjects, a separate pretraining pool and a shared
pretraining (``learning_rates``, ``data.pretrain_split``, ``methods.<key>.pretraining``)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sspcmr.commands.main import main
from sspcmr.data.splits import SplitError, read_split, vendor_codes, write_split
from sspcmr.study.arguments import VALIDATION_RESULTS, VALIDATION_SPLIT
from sspcmr.study.config import StudyConfigError, load_study, parse_study
from sspcmr.study.runner import StudyRunner
from sspcmr.study.selection import select_learning_rates
from tests.study.test_study import COMMON, REPO


@pytest.fixture(scope="module")
def grid_study(prepared_tiny, tmp_path_factory) -> tuple[Path, StudyRunner, Path]:
    import torch

    tmp = tmp_path_factory.mktemp("grid")
    prepared, split_path = prepared_tiny
    split = read_split(split_path)
    pool = write_split(type(split)(test=split.test, train=split.train, valid=split.valid), tmp / "pool.yaml")
    content = {
        "name": "grid", "output_dir": str(tmp / "grid"),
        "data": {"data_dir": str(prepared), "split": str(split_path), "pretrain_split": str(pool)},
        "seeds": [0, 1], "subsets": [1], "learning_rates": [0.01, 0.03], "common": COMMON,
        "scratch": {"config": str(REPO / "configs/segmentation/baseline.yaml")},
        "finetune": {"config": str(REPO / "configs/segmentation/finetune.yaml")},
        "methods": {"mim": {"label": "MIM", "config": str(REPO / "configs/pretrain/mim.yaml"),
                            "transfer": "encoder+decoder",
                            "overrides": {"model.init_args.patch_size": 8, "data.batch_size": 4}},
                    "mim-enc": {"label": "MIM (encoder)", "pretraining": "mim", "transfer": "encoder"}},
    }
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump(content))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["study", "--config", str(path), "--launcher", "inline"]) == 0
    finally:
        torch.set_num_threads(threads)
    return path, StudyRunner(load_study(path)), pool


def test_every_cell_runs_at_every_rate_and_methods_share_one_pretraining(grid_study) -> None:
    _, runner, pool = grid_study
    ids = [run.id for run in runner.runs]
    assert ids == ["pretrain-mim",
                   "scratch-n1-s0-lr0.01", "scratch-n1-s0-lr0.03", "scratch-n1-s1-lr0.01", "scratch-n1-s1-lr0.03",
                   "mim-n1-s0-lr0.01", "mim-n1-s0-lr0.03", "mim-n1-s1-lr0.01", "mim-n1-s1-lr0.03",
                   "mim-enc-n1-s0-lr0.01", "mim-enc-n1-s0-lr0.03", "mim-enc-n1-s1-lr0.01", "mim-enc-n1-s1-lr0.03"]
    pretrain = runner.arguments(runner.runs[0], "fit")
    assert pretrain[pretrain.index("--data.split") + 1] == str(pool)  # the pool, not the labelled split
    for run in runner.runs[1:]:
        args = runner.arguments(run, "fit")
        assert float(args[args.index("--model.init_args.lr") + 1]) == run.lr
        if run.kind == "finetune":
            assert args[args.index("--model.init_args.init_from") + 1] == str(runner.checkpoint(runner.runs[0]))
            assert args[args.index("--model.init_args.transfer") + 1] == (
                "encoder" if run.method == "mim-enc" else "encoder+decoder")


def test_grid_runs_are_scored_on_their_validation_subjects(grid_study) -> None:
    _, runner, _ = grid_study
    for run in runner.runs[1:]:
        folder = runner.run_dir(run)
        assert read_split(folder / VALIDATION_SPLIT).test == read_split(folder / "split.yaml").valid
        validation = pd.read_csv(folder / VALIDATION_RESULTS / "volumes.csv", dtype={"subject": str})
        test = pd.read_csv(folder / "results" / "volumes.csv", dtype={"subject": str})
        valid_ids = {s for ids in read_split(folder / "split.yaml").valid.values() for s in ids}
        assert set(validation["subject"]) == valid_ids and not set(test["subject"]) & valid_ids


def test_the_report_keeps_each_cells_best_validation_rate(grid_study) -> None:
    _, runner, _ = grid_study
    report = runner.study.output_dir / "report"
    runs = pd.read_csv(report / "runs.csv")
    assert len(runs) == 12 and runs["kept"].sum() == 6
    for (method, _size), cell in runs.groupby(["method", "subset"]):
        by_hand = {}
        for lr, group in cell.groupby("lr"):
            scores = [pd.read_csv(Path(d) / VALIDATION_RESULTS / "volumes.csv")["dice_mean"].mean()
                      for d in group["dir"]]
            by_hand[lr] = sum(scores) / len(scores)
        best = max(sorted(by_hand), key=lambda lr: by_hand[lr])
        assert set(cell.loc[cell["kept"], "lr"]) == {best}, (method, by_hand)
    table1 = pd.read_csv(report / "table1_dice.csv")
    kept = runs[runs["kept"]]
    scratch = kept[kept["method"] == "scratch"]["dice_mean"].mean()
    assert math.isclose(float(table1.loc[table1["method"] == "scratch", "mean"].iloc[0]), scratch, rel_tol=1e-6)
    assert "Learning rate chosen on validation subjects" in (report / "report.md").read_text()


def test_selection_golden_values_ties_and_missing_scores() -> None:
    def row(method, lr, seed, val, test):
        return {"id": f"{method}-{lr}-{seed}", "variant": "default", "method": method, "label": method,
                "subset": "1", "seed": seed, "lr": lr, "val_dice_mean": val, "dice_mean": test}

    frame = pd.DataFrame([row("scratch", 0.01, 0, 0.6, 0.9), row("scratch", 0.01, 1, 0.8, 0.9),
                          row("scratch", 0.02, 0, 0.75, 0.1), row("scratch", 0.02, 1, 0.75, 0.1),   # tie: 0.7 vs 0.75
                          row("mim", 0.01, 0, 0.5, 0.5), row("mim", 0.02, 0, 0.5, 0.9)])           # tie: smaller
    kept, table = select_learning_rates(frame)
    assert sorted(kept["id"]) == ["mim-0.01-0", "scratch-0.02-0", "scratch-0.02-1"]  # test Dice never decides
    assert table is not None and table.data["chosen"].sum() == 2
    frame.loc[0, "val_dice_mean"] = float("nan")
    with pytest.raises(ValueError, match="no validation score"):
        select_learning_rates(frame)
    plain = frame.assign(lr=float("nan"))
    assert select_learning_rates(plain)[1] is None and len(select_learning_rates(plain)[0]) == len(frame)


@pytest.mark.parametrize(("change", "message"), [
    ({"learning_rates": []}, "non-empty list of positive"),
    ({"learning_rates": [0.01, -1]}, "non-empty list of positive"),
    ({"learning_rates": [0.01, 0.01]}, "repeated rates"),
    ({"data": {"data_dir": "d", "split": "s", "pool": "p"}}, "unknown keys"),
    ({"methods": {"mim": {"config": "m.yaml"}, "enc": {"pretraining": "dino"}}}, "must name a method"),
    ({"methods": {"mim": {"config": "m.yaml"}, "enc": {"pretraining": "mim", "config": "m.yaml"}}}, "takes no"),
    ({"methods": {"mim": {"config": "m.yaml"}, "a": {"pretraining": "mim"}, "b": {"pretraining": "a"}}},
     "must name a method"),
])
def test_bad_grid_entries_name_the_problem(change: dict, message: str) -> None:
    base = {"name": "s", "output_dir": "o", "data": {"data_dir": "d", "split": "s.yaml"},
            "scratch": {"config": "b.yaml"}, "finetune": {"config": "f.yaml"},
            "methods": {"mim": {"config": "m.yaml"}}}
    with pytest.raises(StudyConfigError, match=message):
        parse_study({**base, **change}, "study.yaml")


def test_vendor_groups_are_named_groups_or_comma_lists() -> None:
    assert vendor_codes("A_B") == ("A", "B")
    assert vendor_codes("A,B,C,D") == ("A", "B", "C", "D")
    for bad in ("A_C", "A,,B", "a,b", "A,A", "AB,C"):
        with pytest.raises(SplitError, match="vendor group"):
            vendor_codes(bad)


def test_subset_overrides_apply_to_their_size_only() -> None:
    from sspcmr.study.grid import study_runs

    study = parse_study({"name": "s", "output_dir": "o", "data": {"data_dir": "d", "split": "s.yaml"},
                         "subsets": [1, 4], "scratch": {"config": "b.yaml", "overrides": {"trainer.max_epochs": 600}},
                         "subset_overrides": {1: {"trainer": {"max_epochs": 400}}}}, "study.yaml")
    runner = StudyRunner(study)
    epochs = {}
    for run in study_runs(study):
        args = runner.arguments(run, "fit")
        epochs[run.subset] = args[args.index("--trainer.max_epochs") + 1]
    assert epochs == {"1": "400", "4": "600"}
    with pytest.raises(StudyConfigError, match="positive integers"):
        parse_study({"name": "s", "output_dir": "o", "data": {"data_dir": "d", "split": "s.yaml"},
                     "scratch": {"config": "b.yaml"}, "subset_overrides": {0: {}}}, "study.yaml")


def test_pretraining_uses_the_pool_unless_the_method_names_its_own_split() -> None:
    study = parse_study({"name": "s", "output_dir": "o",
                         "data": {"data_dir": "d", "split": "labelled.yaml", "pretrain_split": "pool.yaml"},
                         "scratch": {"config": "b.yaml"}, "finetune": {"config": "f.yaml"},
                         "methods": {"mim": {"config": "m.yaml"},
                                     "supervised": {"config": "b.yaml", "overrides": {"data.split": "ad.yaml"}}}},
                        "study.yaml")
    runner = StudyRunner(study)
    splits = {}
    for run in runner.runs:
        args = runner.arguments(run, "fit")
        splits[run.id] = args[len(args) - 1 - args[::-1].index("--data.split") + 1]  # the last one wins
    assert splits["pretrain-mim"] == "pool.yaml" and splits["pretrain-supervised"] == "ad.yaml"
    assert splits["scratch-nall-s0"].endswith("runs/scratch-nall-s0/split.yaml")
