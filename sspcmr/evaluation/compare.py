"""Side-by-side comparison of finished test runs (``sspcmr compare``): one column per run.

Reads what :class:`~sspcmr.evaluation.volume.VolumeEvaluator` wrote into each results folder
(``summary_overall.csv`` and ``summary_clinical.csv``), so any runs scored by ``sspcmr test`` or
``sspcmr evaluate`` can be compared, e.g. scratch against a pretrained fine-tuning.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROWS = [("dice_mean", "Dice mean"), ("dice_LV", "Dice LV"), ("dice_MYO", "Dice MYO"), ("dice_RV", "Dice RV"),
        ("hd95_LV", "HD95 LV (mm)"), ("hd95_MYO", "HD95 MYO (mm)"), ("hd95_RV", "HD95 RV (mm)")]
CLINICAL = [("LV_EF", "LV EF MAE (%)"), ("RV_EF", "RV EF MAE (%)"), ("LV_EDV", "LV EDV MAE (ml)")]


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise ValueError(f"compare: {path} does not exist (run `sspcmr test` for this run first)")
    return pd.read_csv(path)


def compare_runs(runs: dict[str, str | Path]) -> pd.DataFrame:
    """A table with one row per metric and one ``mean ± std`` column per run (volumes scored in ``n``)."""
    if not runs:
        raise ValueError("compare: give at least one NAME=RESULTS_DIR")
    columns = {}
    volumes = {}
    for name, folder in runs.items():
        folder = Path(folder)
        overall = _read(folder, "summary_overall.csv").set_index("metric")
        clinical = _read(folder, "summary_clinical.csv").set_index("index")
        cells = {}
        for key, label in ROWS:
            if key in overall.index:
                row = overall.loc[key]
                digits = 3 if key.startswith("dice") else 1
                cells[label] = f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"
        for key, label in CLINICAL:
            if key in clinical.index:
                cells[label] = f"{clinical.loc[key, 'mae']:.1f}"
        columns[name] = cells
        volumes[name] = int(overall.loc["dice_mean", "n"]) if "dice_mean" in overall.index else 0
    table = pd.DataFrame(columns)
    table.loc["volumes"] = [str(volumes[name]) for name in columns]
    return table.fillna("")


def format_comparison(table: pd.DataFrame) -> str:
    """Plain-text rendering with aligned columns."""
    return table.to_string()
