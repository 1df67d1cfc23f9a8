"""The phantom is written exactly in the M&Ms / M&Ms-2 download layouts, deterministically."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sspcmr.commands.main import main
from sspcmr.phantom import (
    MNMS2_CSV,
    MNMS2_CSV_COLUMNS,
    MNMS_CSV,
    MNMS_CSV_COLUMNS,
    TRUTH_DIR,
    VENDOR_PROFILES,
    generate_dataset,
    mnms_codes,
)

MNMS2_FILES = ["SA_CINE", "SA_ED", "SA_ED_gt", "SA_ES", "SA_ES_gt", "LA_CINE", "LA_ED", "LA_ED_gt", "LA_ES",
               "LA_ES_gt", "LA2CH_CINE_sspcmr"]


def test_mnms_csv_and_files(tiny_dataset):
    root, _ = tiny_dataset
    header = (root / "MnM" / MNMS_CSV).read_text().splitlines()[0]
    assert header == "," + ",".join(MNMS_CSV_COLUMNS)  # unnamed leading index column
    csv = pd.read_csv(root / "MnM" / MNMS_CSV)
    assert list(csv.columns) == ["Unnamed: 0", *MNMS_CSV_COLUMNS]
    assert list(csv["Unnamed: 0"]) == list(range(8))
    assert sorted(csv["Vendor"]) == ["A", "A", "B", "B", "C", "C", "D", "D"]
    assert set(csv["VendorName"]) == {"Siemens", "Philips", "GE", "Canon"}
    folders = sorted(p.name for p in (root / "MnM" / "dataset").iterdir())
    assert folders == sorted(csv["External code"])
    for code in csv["External code"]:
        assert re.fullmatch(r"[A-Z][0-9][A-Z][0-9][A-Z][0-9]", code)
        files = sorted(p.name for p in (root / "MnM" / "dataset" / code).iterdir())
        assert files == [f"{code}_sa.nii.gz", f"{code}_sa_gt.nii.gz"]


def test_mnms_labels_only_at_ed_and_es(tiny_dataset):
    root, _ = tiny_dataset
    csv = pd.read_csv(root / "MnM" / MNMS_CSV)
    for _, row in csv.iterrows():
        folder = root / "MnM" / "dataset" / row["External code"]
        image = nib.load(folder / f"{row['External code']}_sa.nii.gz")
        gt = nib.load(folder / f"{row['External code']}_sa_gt.nii.gz")
        assert image.ndim == 4 and image.shape == gt.shape
        np.testing.assert_allclose(image.affine, gt.affine, atol=1e-4)
        labels = np.asarray(gt.dataobj)
        labelled = [t for t in range(labels.shape[3]) if labels[..., t].any()]
        assert labelled == sorted({int(row["ED"]), int(row["ES"])})
        assert set(np.unique(labels)) <= {0, 1, 2, 3}
        # ED is the frame with more labelled voxels (how the reference finds it).
        assert (labels[..., row["ED"]] > 0).sum() > (labels[..., row["ES"]] > 0).sum()


def test_mnms2_csv_and_files(tiny_dataset):
    root, _ = tiny_dataset
    csv = pd.read_csv(root / "MnM2" / MNMS2_CSV)
    assert list(csv.columns) == MNMS2_CSV_COLUMNS
    assert list(csv["SUBJECT_CODE"]) == [1, 2, 3]
    assert list(csv["VENDOR"]) == ["SIEMENS", "Philips Medical Systems", "GE MEDICAL SYSTEMS"]
    assert set(csv["FIELD"]) <= {1.5, 3.0}
    for code in ("001", "002", "003"):
        folder = root / "MnM2" / "dataset" / code
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{code}_{name}.nii.gz" for name in MNMS2_FILES)
        cine = nib.load(folder / f"{code}_SA_CINE.nii.gz")
        assert cine.ndim == 4
        la = nib.load(folder / f"{code}_LA_CINE.nii.gz")
        assert la.ndim == 4 and la.shape[2] == 1 and la.shape[3] == cine.shape[3]
        assert nib.load(folder / f"{code}_LA_ED.nii.gz").shape == la.shape[:3]


def test_mnms2_ed_es_files_are_exact_cine_frames(tiny_dataset):
    root, _ = tiny_dataset
    for code in ("001", "002", "003"):
        folder = root / "MnM2" / "dataset" / code
        truth = json.loads((root / TRUTH_DIR / "MnM2" / code / "truth.json").read_text())
        for prefix in ("SA", "LA"):
            cine = nib.load(folder / f"{code}_{prefix}_CINE.nii.gz").get_fdata()
            for phase in ("ED", "ES"):
                frame = nib.load(folder / f"{code}_{prefix}_{phase}.nii.gz").get_fdata()
                matches = [t for t in range(cine.shape[3]) if np.array_equal(cine[..., t], frame)]
                assert matches == [truth[f"{phase.lower()}_frame"]]
                gt = np.asarray(nib.load(folder / f"{code}_{prefix}_{phase}_gt.nii.gz").dataobj)
                assert gt.shape == frame.shape and (gt == 1).any() and (gt == 2).any()


def test_vendor_storage_conventions(tiny_dataset):
    """Dtype, scaling and qform/sform follow the vendor profile; the qform always equals the affine."""
    root, summary = tiny_dataset
    for entry in summary:
        if entry["layout"] != "mnms":
            continue
        profile = VENDOR_PROFILES[entry["vendor"]]
        img = nib.load(root / "MnM" / "dataset" / entry["subject"] / f"{entry['subject']}_sa.nii.gz")
        assert img.get_data_dtype() == np.dtype(profile.dtype)
        assert int(img.header["sform_code"]) == (1 if profile.orientation.sform else 0)
        np.testing.assert_allclose(img.header.get_qform(), img.affine, atol=1e-3)
        slope = img.dataobj.slope
        assert slope == pytest.approx(profile.scl_slope or 1.0)
        assert img.header.get_xyzt_units() == ("mm", "msec")


def test_truth_sidecar(tiny_dataset):
    root, summary = tiny_dataset
    for entry in summary:
        dataset = "MnM" if entry["layout"] == "mnms" else "MnM2"
        folder = root / TRUTH_DIR / dataset / entry["subject"]
        truth = json.loads((folder / "truth.json").read_text())
        for key in ("lv_edv_ml", "lv_esv_ml", "lv_ef", "rv_edv_ml", "lv_mass_ed_g", "slice_positions"):
            assert key in truth
        assert truth["lv_ef"] == pytest.approx((truth["lv_edv_ml"] - truth["lv_esv_ml"]) / truth["lv_edv_ml"])
        all_frames = nib.load(folder / f"{entry['subject']}_SA_labels_all_frames.nii.gz")
        assert all_frames.shape == entry["shape"]
        labels = np.asarray(all_frames.dataobj)
        assert all(labels[..., t].any() for t in range(labels.shape[3]))  # every frame labelled
        assert len(truth["slice_positions"]) == entry["shape"][2]


def test_same_seed_identical_arrays_regardless_of_workers(tmp_path):
    one = generate_dataset(tmp_path / "a", layout="mnms", subjects=2, seed=5, size="tiny", progress=False)
    two = generate_dataset(tmp_path / "b", layout="mnms", subjects=2, seed=5, size="tiny", workers=2, progress=False)
    other = generate_dataset(tmp_path / "c", layout="mnms", subjects=2, seed=6, size="tiny", progress=False)
    assert [s["subject"] for s in one] == [s["subject"] for s in two]
    for entry in one:
        code = entry["subject"]
        a = nib.load(tmp_path / "a" / "MnM" / "dataset" / code / f"{code}_sa.nii.gz")
        b = nib.load(tmp_path / "b" / "MnM" / "dataset" / code / f"{code}_sa.nii.gz")
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        np.testing.assert_array_equal(a.affine, b.affine)
    assert [s["subject"] for s in other] != [s["subject"] for s in one]
    assert other[0]["lv_edv_ml"] != one[0]["lv_edv_ml"]


def test_mnms_codes_unique_and_deterministic():
    codes = mnms_codes(500, seed=1)
    assert len(set(codes)) == 500 and codes == mnms_codes(500, seed=1)


def test_cli_synth_writes_both_layouts(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--layout", "both", "--subjects", "1", "--seed", "3",
                 "--size", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 subjects" in out and "mnms2" in out
    assert (tmp_path / "MnM" / MNMS_CSV).exists() and (tmp_path / "MnM2" / MNMS2_CSV).exists()
    assert (tmp_path / "MnM2" / "dataset" / "001" / "001_SA_CINE.nii.gz").exists()


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--subjects", "0"]) == 2
    assert "subjects must be at least 1" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path), "--vendors", "Z"]) == 2
    assert "unknown vendor profile 'Z'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--layout", "acdc"])
    assert not any(tmp_path.iterdir())  # nothing half-written
