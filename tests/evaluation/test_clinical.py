"""Clinical indices on hand-built label maps with known voxel counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sspcmr.evaluation.clinical import INDICES, PhaseVolumes, cardiac_indices, clinical_rows, structure_volumes_ml

SPACING = (10.0, 1.0, 1.0)  # 10 mm³ per voxel = 0.01 ml


def labels_with_counts(lv: int, myo: int, rv: int, shape: tuple[int, int, int] = (10, 100, 100)) -> np.ndarray:
    """A label map with exactly ``lv``, ``myo`` and ``rv`` voxels of labels 1, 2 and 3."""
    labels = np.zeros(shape, dtype=np.int64)
    flat = labels.reshape(-1)
    flat[:lv] = 1
    flat[lv:lv + myo] = 2
    flat[lv + myo:lv + myo + rv] = 3
    return labels


def test_structure_volumes_ml():
    labels = labels_with_counts(1000, 500, 800, shape=(4, 30, 30))
    volumes = structure_volumes_ml(labels, (10.0, 1.5, 1.5))  # 22.5 mm³ per voxel
    assert volumes == pytest.approx({"LV": 22.5, "MYO": 11.25, "RV": 18.0})


def test_cardiac_indices_hand_computed():
    indices = cardiac_indices({"LV": 120.0, "MYO": 100.0, "RV": 150.0}, {"LV": 50.0, "MYO": 90.0, "RV": 75.0})
    assert indices == pytest.approx({
        "LV_EDV": 120.0, "LV_ESV": 50.0, "LV_EF": 70.0 / 120.0 * 100.0,
        "RV_EDV": 150.0, "RV_ESV": 75.0, "RV_EF": 50.0, "LV_mass": 105.0,
    })
    assert list(indices) == list(INDICES)


def subject(name: str, phases: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]]) -> list[PhaseVolumes]:
    return [
        PhaseVolumes.from_labels(labels_with_counts(*pred), labels_with_counts(*gt), SPACING, dataset="mm1",
                                 subject=name, phase=phase, vendor="B", pathology="NOR")
        for phase, (pred, gt) in phases.items()
    ]


def test_clinical_rows_errors():
    # Ground truth: ED LV 120 ml, MYO 100 ml, RV 150 ml; ES LV 50 ml, RV 75 ml.
    # Prediction:   ED LV 110 ml, MYO 110 ml, RV 150 ml; ES LV 55 ml, RV 60 ml.
    volumes = subject("S1", {
        "ED": ((11000, 11000, 15000), (12000, 10000, 15000)),
        "ES": ((5500, 9000, 6000), (5000, 9000, 7500)),
    })
    (row,) = clinical_rows(volumes)
    assert row["complete"] and row["has_ED"] and row["has_ES"]
    assert (row["vendor"], row["pathology"]) == ("B", "NOR")
    assert row["LV_EDV_gt"] == pytest.approx(120.0) and row["LV_EDV_pred"] == pytest.approx(110.0)
    assert row["LV_EF_gt"] == pytest.approx(70.0 / 120.0 * 100.0)
    assert row["LV_EF_pred"] == pytest.approx(50.0)
    assert row["LV_EF_err"] == pytest.approx(50.0 - 70.0 / 120.0 * 100.0)
    assert row["LV_EF_abserr"] == pytest.approx(70.0 / 120.0 * 100.0 - 50.0)
    assert row["RV_EF_gt"] == pytest.approx(50.0) and row["RV_EF_pred"] == pytest.approx(60.0)
    assert row["RV_ESV_err"] == pytest.approx(-15.0) and row["RV_ESV_abserr"] == pytest.approx(15.0)
    assert row["LV_mass_gt"] == pytest.approx(105.0) and row["LV_mass_pred"] == pytest.approx(115.5)
    assert row["LV_mass_err"] == pytest.approx(10.5)


def test_missing_phase_gives_nan_and_flag():
    only_ed = subject("S2", {"ED": ((100, 100, 100), (100, 100, 100))})
    only_es = subject("S3", {"ES": ((100, 100, 100), (120, 100, 100))})
    rows = clinical_rows(only_ed + only_es)
    assert [r["subject"] for r in rows] == ["S2", "S3"]
    ed_row, es_row = rows
    assert not ed_row["complete"] and ed_row["has_ED"] and not ed_row["has_ES"]
    assert math.isnan(ed_row["LV_ESV_gt"]) and math.isnan(ed_row["LV_EF_err"]) and math.isnan(ed_row["RV_EF_pred"])
    assert ed_row["LV_EDV_gt"] == pytest.approx(1.0) and ed_row["LV_mass_gt"] == pytest.approx(1.05)
    assert not es_row["complete"] and math.isnan(es_row["LV_mass_err"]) and math.isnan(es_row["LV_EDV_pred"])
    assert es_row["LV_ESV_err"] == pytest.approx(-0.2)


def test_zero_edv_gives_nan_ef():
    (row,) = clinical_rows(subject("S4", {"ED": ((0, 100, 100), (100, 100, 100)),
                                          "ES": ((0, 100, 100), (50, 100, 100))}))
    assert math.isnan(row["LV_EF_pred"]) and math.isnan(row["LV_EF_err"]) and row["LV_EF_gt"] == pytest.approx(50.0)


def test_duplicates_and_bad_phase_raise():
    volumes = subject("S5", {"ED": ((1, 1, 1), (1, 1, 1))})
    with pytest.raises(ValueError, match="duplicate"):
        clinical_rows(volumes + volumes)
    with pytest.raises(ValueError, match="phase"):
        PhaseVolumes("mm1", "S6", "MID", {"LV": 1.0, "MYO": 1.0, "RV": 1.0}, {"LV": 1.0, "MYO": 1.0, "RV": 1.0})
    other_vendor = PhaseVolumes("mm1", "S5", "ES", volumes[0].pred_ml, volumes[0].gt_ml, vendor="C")
    with pytest.raises(ValueError, match="vendor"):
        clinical_rows([volumes[0], other_vendor])
    with pytest.raises(ValueError, match="same shape"):
        PhaseVolumes.from_labels(np.zeros((2, 3, 3), int), np.zeros((2, 3, 4), int), SPACING,
                                 dataset="mm1", subject="S7", phase="ED")
