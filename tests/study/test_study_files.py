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
    configs = [study.scratch.config, *(m.config for m in study.methods.values())]
    if study.finetune is not None:
        configs.append(study.finetune.config)
    assert all((ROOT / config).is_file() for config in configs), configs
    assert study_runs(study)


def test_low_label_grid_has_both_controls():
    study = load_study(ROOT / "configs" / "study" / "low-label.yaml")
    runs = study_runs(study)
    assert sum(r.kind == "pretrain" for r in runs) == 5
    finetunes = [r for r in runs if r.kind == "finetune"]
    assert {r.method for r in finetunes} == {"mim", "mim-encoder", "supervised", "random", "random-lr01"}
    assert len(finetunes) == 5 * 2 * 3 and sum(r.kind == "scratch" for r in runs) == 2 * 3
    assert study.methods["random-lr01"].finetune_overrides == {"model.init_args.lr": 0.01}
    assert study.methods["mim"].transfer == "encoder+decoder" and study.methods["mim-encoder"].transfer == "encoder"
    assert study.methods["mim"].overrides == study.methods["mim-encoder"].overrides
