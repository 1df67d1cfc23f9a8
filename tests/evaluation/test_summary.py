"""Summary tables against direct pandas computations, Dice-by-position binning and the PNG plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sspcmr.evaluation.clinical import INDICES, PhaseVolumes, clinical_rows
from sspcmr.evaluation.metrics import evaluate_volume, slice_dice_rows
from sspcmr.evaluation.summary import (
    QUANTILES,
    clinical_summary,
    dice_by_slice_position,
    plot_dice_by_position,
    summary_tables,
    volume_summary,
    volume_table,
    write_tables,
)


@pytest.fixture
def table() -> pd.DataFrame:
    """A per-volume table of 24 volumes with random metrics and three missing surface distances."""
    rng = np.random.default_rng(5)
    n = 24
    frame = pd.DataFrame({
        "dataset": "mm1", "subject": [f"S{i // 2}" for i in range(n)], "vendor": list("ABCD" * 6),
        "pathology": ["NOR", "HCM", "DCM"] * 8, "phase": ["ED", "ES"] * 12,
    })
    for name in ("LV", "MYO", "RV"):
        frame[f"dice_{name}"] = rng.uniform(0.5, 1.0, n)
        frame[f"hd95_{name}"] = rng.uniform(1.0, 20.0, n)
        frame[f"assd_{name}"] = rng.uniform(0.5, 5.0, n)
    frame["dice_mean"] = frame[["dice_LV", "dice_MYO", "dice_RV"]].mean(axis=1)
    frame.loc[[3, 10], "hd95_RV"] = np.nan
    frame.loc[[3, 10], "assd_RV"] = np.nan
    frame.loc[7, "hd95_MYO"] = np.nan
    frame["diagonal_mm"] = rng.uniform(300.0, 400.0, n)
    return frame


def test_overall_summary_matches_pandas(table: pd.DataFrame):
    summary = volume_summary(table).set_index("metric")
    assert set(summary.index) == {"dice_LV", "dice_MYO", "dice_RV", "dice_mean", "hd95_LV", "hd95_MYO", "hd95_RV",
                                  "assd_LV", "assd_MYO", "assd_RV"}
    for metric in summary.index:
        values = table[metric]
        row = summary.loc[metric]
        assert row["n"] == 24 and row["n_missing"] == values.isna().sum()
        assert row["mean"] == pytest.approx(values.mean())
        assert row["std"] == pytest.approx(values.std(ddof=1))
        assert row["median"] == pytest.approx(values.median())
        assert row["skew"] == pytest.approx(values.skew()) and row["kurtosis"] == pytest.approx(values.kurt())
        for q in QUANTILES:
            assert row[f"q{q:g}"] == pytest.approx(values.quantile(q))
    assert summary.loc["hd95_RV", "n_missing"] == 2 and summary.loc["hd95_MYO", "n_missing"] == 1
    assert summary.loc["dice_LV", "n_missing"] == 0
    assert summary.loc["hd95_RV", "mean"] == pytest.approx(table["hd95_RV"].dropna().mean())


def test_grouped_summary_matches_pandas(table: pd.DataFrame):
    summary = volume_summary(table, by="vendor")
    assert sorted(summary["vendor"].unique()) == ["A", "B", "C", "D"]
    for vendor, part in table.groupby("vendor"):
        row = summary[(summary["vendor"] == vendor) & (summary["metric"] == "hd95_RV")].iloc[0]
        assert row["n"] == len(part) and row["n_missing"] == part["hd95_RV"].isna().sum()
        assert row["mean"] == pytest.approx(part["hd95_RV"].mean())
        assert row["q0.25"] == pytest.approx(part["hd95_RV"].quantile(0.25))
    two = volume_summary(table, by=["phase", "pathology"])
    assert len(two) == 6 * 10 and {"phase", "pathology"} <= set(two.columns)


def test_missing_penalty(table: pd.DataFrame):
    diagonal = volume_summary(table, missing_penalty="diagonal").set_index("metric")
    expected = table["hd95_RV"].fillna(table["diagonal_mm"])
    assert diagonal.loc["hd95_RV", "mean"] == pytest.approx(expected.mean())
    assert diagonal.loc["hd95_RV", "n_missing"] == 2
    assert diagonal.loc["dice_RV", "mean"] == pytest.approx(table["dice_RV"].mean())
    constant = volume_summary(table, missing_penalty=100.0).set_index("metric")
    assert constant.loc["assd_RV", "mean"] == pytest.approx(table["assd_RV"].fillna(100.0).mean())
    assert constant.loc["assd_RV", "mean"] > volume_summary(table).set_index("metric").loc["assd_RV", "mean"]
    with pytest.raises(ValueError, match="missing_penalty"):
        volume_summary(table, missing_penalty="max")
    with pytest.raises(ValueError, match="diagonal_mm"):
        volume_summary(table.drop(columns="diagonal_mm"), missing_penalty="diagonal")
    with pytest.raises(ValueError, match="by"):
        volume_summary(table, by="scanner")


def test_summary_tables_and_csv(table: pd.DataFrame, tmp_path):
    tables = summary_tables(table)
    assert list(tables) == ["overall", "by_phase", "by_vendor", "by_pathology"]
    paths = write_tables(tables, tmp_path / "out", prefix="test_")
    assert [p.name for p in paths] == ["test_overall.csv", "test_by_phase.csv", "test_by_vendor.csv",
                                       "test_by_pathology.csv"]
    reread = pd.read_csv(paths[1])
    pd.testing.assert_frame_equal(reread, tables["by_phase"], check_dtype=False)


def test_volume_table_from_evaluate_volume():
    rng = np.random.default_rng(0)
    metrics = []
    for i, phase in enumerate(["ED", "ES", "ED"]):
        gt = np.zeros((4, 12, 12), dtype=np.int64)
        gt[1:3, 2:8, 2:8] = 1
        gt[1:3, 8:10, 2:8] = 3
        pred = np.where(rng.random(gt.shape) < 0.1, 0, gt)
        metrics.append(evaluate_volume(pred, gt, (10, 1.5, 1.5), dataset="mm2", subject=f"{i:03d}", phase=phase))
    frame = volume_table(metrics)
    assert len(frame) == 3 and frame["subject"].tolist() == ["000", "001", "002"]
    assert (frame["dice_MYO"] == 1.0).all() and (frame["hd95_MYO"] == 0.0).all()  # absent in both
    summary = volume_summary(frame, by="phase")
    assert summary[(summary["phase"] == "ED") & (summary["metric"] == "dice_LV")]["n"].item() == 2


def test_clinical_summary_matches_pandas():
    rng = np.random.default_rng(1)
    volumes = []
    for i in range(6):
        for phase in ("ED", "ES") if i != 2 else ("ED",):  # subject 2 lacks ES
            ml = {"LV": rng.uniform(40, 150), "MYO": rng.uniform(80, 120), "RV": rng.uniform(40, 150)}
            pred = {k: v * rng.uniform(0.9, 1.1) for k, v in ml.items()}
            volumes.append(PhaseVolumes("mm1", f"S{i}", phase, pred, ml, vendor="AB"[i % 2]))
    rows = pd.DataFrame(clinical_rows(volumes))
    summary = clinical_summary(rows).set_index("index")
    assert list(summary.index) == list(INDICES)
    for index in INDICES:
        error = rows[f"{index}_err"].dropna()
        assert summary.loc[index, "n"] == len(error)
        assert summary.loc[index, "mean_error"] == pytest.approx(error.mean())
        assert summary.loc[index, "std_error"] == pytest.approx(error.std(ddof=1))
        assert summary.loc[index, "mae"] == pytest.approx(error.abs().mean())
    assert summary.loc["LV_EF", "n_missing"] == 1 and summary.loc["LV_EDV", "n_missing"] == 0
    by_vendor = clinical_summary(rows.to_dict("records"), by="vendor")
    assert len(by_vendor) == 2 * len(INDICES)
    row = by_vendor[(by_vendor["vendor"] == "A") & (by_vendor["index"] == "RV_ESV")].iloc[0]
    assert row["mean_error"] == pytest.approx(rows[rows["vendor"] == "A"]["RV_ESV_err"].mean())


def test_dice_by_slice_position_bins():
    positions = [0.0, 0.05, 0.3, 0.95, 1.0, -0.5, 1.25, math.nan]
    dice = [1.0, 0.5, 0.8, 0.2, 0.4, 0.0, 1.0, 0.9]
    rows = [{"position": p, "dice_LV": d, "dice_MYO": 1.0, "dice_RV": 1.0 - d}
            for p, d in zip(positions, dice, strict=True)]
    binned = dice_by_slice_position(rows, bins=10).set_index("bin")
    assert list(binned.index) == [-1, 0, 3, 9, 10]
    assert binned.loc[0, "n"] == 2 and binned.loc[0, "dice_LV_mean"] == pytest.approx(0.75)
    assert binned.loc[0, "dice_LV_std"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    assert binned.loc[3, "dice_LV_mean"] == pytest.approx(0.8)  # 0.3 lies in [0.3, 0.4)
    assert binned.loc[9, "n"] == 2 and binned.loc[9, "dice_RV_mean"] == pytest.approx(0.7)  # 1.0 in the last bin
    assert binned.loc[9, "center"] == pytest.approx(0.95) and math.isnan(binned.loc[10, "center"])
    assert binned.loc[-1, "left"] == -math.inf and binned.loc[10, "right"] == math.inf
    assert binned["n"].sum() == 7  # the NaN position is dropped
    with pytest.raises(ValueError, match="bins"):
        dice_by_slice_position(rows, bins=0)


def test_plot_dice_by_position_writes_png(tmp_path):
    gt = np.zeros((10, 8, 8), dtype=np.int64)
    gt[1:9, 2:6, 2:6] = 1
    gt[1:9, 6, 2:6] = 2
    gt[2:7, 1, 2:6] = 3
    pred = gt.copy()
    pred[7:9] = 0
    binned = dice_by_slice_position(slice_dice_rows(pred, gt), bins=5)
    path = plot_dice_by_position(binned, tmp_path / "plots" / "dice.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["dice.png"]  # written atomically: no temporary file left
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (420, 640, 3)
    lv, myo, rv = ((image == colour).all(axis=-1).sum() for colour in ((214, 39, 40), (44, 160, 44), (31, 119, 180)))
    assert lv > 50 and myo > 50 and rv > 50  # every class curve is drawn (matplotlib's tab:red, green, blue)
    worse = binned.assign(dice_LV_mean=binned["dice_LV_mean"] / 2)
    moved = np.asarray(Image.open(plot_dice_by_position(worse, tmp_path / "worse.png")).convert("RGB"))
    assert (moved != image).any(axis=-1).sum() > 200  # a lower LV curve is drawn elsewhere
