"""Every shipped study file parses, names configs that exist, and gives the grid its comments describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from sspcmr.study.config import load_study
from sspcmr.study.grid import study_runs

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "configs" / "study").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_study_file_parses_and_names_existing_configs(path):
    study = load_study(path)
    configs = [study.scratch.config, *(m.config for m in study.methods.values() if not m.pretraining)]
    if study.finetune is not None:
        configs.append(study.finetune.config)
    assert all((ROOT / config).is_file() for config in configs), configs
    assert study_runs(study)


def test_low_label_grid_has_both_controls_a_pool_and_a_rate_grid():
    study = load_study(ROOT / "configs" / "study" / "low-label.yaml")
    runs = study_runs(study)
    assert [r.id for r in runs if r.kind == "pretrain"] == ["pretrain-mim", "pretrain-supervised", "pretrain-random"]
    finetunes = [r for r in runs if r.kind == "finetune"]
    assert {r.method for r in finetunes} == {"mim", "mim-encoder", "supervised", "random"}
    assert len(finetunes) == 4 * 3 * 3 * 2 and sum(r.kind == "scratch" for r in runs) == 3 * 3 * 2
    assert study.learning_rates == (0.005, 0.01) and study.pretrain_split == "data/low-label/split-pool.yaml"
    assert study.methods["mim"].transfer == "encoder+decoder" and study.methods["mim-encoder"].transfer == "encoder"
    assert study.methods["mim-encoder"].pretraining == "mim"
    # the controls train on the labelled split (vendors A-D), never on the pool with the unseen vendor's labels
    for control in ("supervised", "random"):
        assert study.methods[control].overrides["data.split"] == study.split
    # about the same number of optimiser steps for every subset size (batches of 8, ~18 slices per subject)
    steps = {size: over["trainer.max_epochs"] * max(1, (18 * int(size)) // 8)
             for size, over in study.subset_overrides.items()}
    assert all(1100 <= s <= 1300 for s in steps.values()), steps
