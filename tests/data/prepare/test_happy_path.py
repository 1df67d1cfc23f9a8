"""Preparing both layouts: tables, frames, arrays, geometry and statistics against independent computations."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sspcmr.data.prepare import prepare_dataset
from sspcmr.data.store import PreparedDataset

from .helpers import (
    brute_force_pixel_circle,
    check_subject_arrays,
    copy_raw,
    csv_ids,
    hash_tree,
    load,
    raw_files,
    read_csv_rows,
    read_table,
    subject_dir,
    truth,
    write_csv_rows,
)


@pytest.fixture(scope="module")
def dataset(prepared_tiny):
    raw, out, report, _ = prepared_tiny
    return raw, PreparedDataset(out), report


def _subjects(raw):
    return [("mm1", s) for s in csv_ids(raw, "mm1")] + [("mm2", s) for s in csv_ids(raw, "mm2")]


def test_report_and_subject_table(dataset):
    raw, ds, report = dataset
    expected = _subjects(raw)
    assert sorted(report.prepared) == sorted(f"{d} {s}" for d, s in expected)
    assert report.reused == [] and report.invalid == [] and report.removed == []
    assert list(zip(ds.subjects["dataset"], ds.subjects["SubjectID"], strict=True)) == expected  # CSV order
    assert report.subjects == len(expected) == len(ds.subjects) == ds.manifest["subjects"]
    assert ds.manifest["datasets"] == ["mm1", "mm2"]
    assert ds.invalid.empty and ds.corrections.empty
    assert read_table(ds.root, "invalid.csv").empty and read_table(ds.root, "corrections.csv").empty
    header, rows = read_csv_rows(raw, "mm1")
    vendors = {r[header.index("External code")]: r[header.index("Vendor")] for r in rows}
    pathologies = {r[header.index("External code")]: r[header.index("Pathology")] for r in rows}
    for _, row in ds.subjects[ds.subjects["dataset"] == "mm1"].iterrows():
        assert row["Vendor"] == vendors[row["SubjectID"]] and row["Pathology"] == pathologies[row["SubjectID"]]
    header, rows = read_csv_rows(raw, "mm2")
    mm2_vendor = {"SIEMENS": "A", "PHILIPS MEDICAL SYSTEMS": "B", "GE MEDICAL SYSTEMS": "C"}
    for row, (_, prepared) in zip(rows, ds.subjects[ds.subjects["dataset"] == "mm2"].iterrows(), strict=True):
        assert prepared["Vendor"] == mm2_vendor[row[header.index("VENDOR")].upper()]
        assert prepared["Pathology"] == row[header.index("DISEASE")]


def test_slice_table_counts(dataset):
    raw, ds, report = dataset
    total = 0
    for index, (dataset_name, subject) in enumerate(_subjects(raw)):
        shape = nib.load(str(raw_files(raw, dataset_name, subject)["cine"])).shape
        n_slices, n_frames = shape[2], shape[3]
        row = ds.subjects.iloc[index]
        assert (row["n_slices"], row["n_frames"]) == (n_slices, n_frames)
        rows = ds.slices[ds.slices["subject_index"] == index]
        assert len(rows) == n_slices * n_frames
        assert (rows["subject"] == subject).all() and (rows["dataset"] == dataset_name).all()
        assert int(rows["labelled"].sum()) == 2 * n_slices
        assert sorted(zip(rows["slice"], rows["frame"], strict=True)) == [
            (z, t) for z in range(n_slices) for t in range(n_frames)]
        total += n_slices * n_frames
    assert len(ds.slices) == total == report.slices == ds.manifest["slices"]


def test_ed_es_equal_truth(dataset):
    raw, ds, _ = dataset
    for index, (dataset_name, subject) in enumerate(_subjects(raw)):
        expected = truth(raw, dataset_name, subject)
        row = ds.subjects.iloc[index]
        assert (row["ED"], row["ES"]) == (expected["ed_frame"], expected["es_frame"]), subject
        meta = ds.meta(index)
        assert (meta["ed"], meta["es"]) == (expected["ed_frame"], expected["es_frame"])
        if dataset_name == "mm1":  # the labels are non-zero exactly at ED and ES; ED has the larger volume
            labels, _ = load(raw_files(raw, dataset_name, subject)["labels"])
            volume = (labels != 0).sum(axis=(0, 1, 2))
            assert set(np.flatnonzero(volume)) == {row["ED"], row["ES"]}
            assert volume[row["ED"]] > volume[row["ES"]]
        else:  # the ED / ES files are identical to exactly those cine frames
            files = raw_files(raw, dataset_name, subject)
            cine, _ = load(files["cine"])
            for phase, frame in (("ed", row["ED"]), ("es", row["ES"])):
                volume, _ = load(files[phase])
                matches = [t for t in range(cine.shape[3]) if np.array_equal(cine[..., t], volume)]
                assert matches == [frame]


def test_slice_table_columns(dataset):
    _, ds, _ = dataset
    for index, row in ds.subjects.iterrows():
        rows = ds.slices[ds.slices["subject_index"] == index]
        ed, es, n_frames, n_slices = row["ED"], row["ES"], row["n_frames"], row["n_slices"]
        for _, r in rows.iterrows():
            assert r["frame_from_ed"] == (r["frame"] - ed + n_frames) % n_frames
            assert 0 <= r["frame_from_ed"] < n_frames
            assert r["position"] == pytest.approx(r["slice"] / n_slices, abs=1e-12)
            assert (r["n_slices"], r["n_frames"]) == (n_slices, n_frames)
            assert r["is_ed"] == (r["frame"] == ed) and r["is_es"] == (r["frame"] == es)
            assert r["labelled"] == (r["frame"] in (ed, es))
            assert r["label_index"] == (0 if r["frame"] == ed else 1 if r["frame"] == es else -1)
            assert r["vendor"] == row["Vendor"] and r["pathology"] == row["Pathology"]


def test_arrays_and_geometry_match_raw(dataset):
    raw, ds, _ = dataset
    for index, (dataset_name, subject) in enumerate(_subjects(raw)):
        check_subject_arrays(raw, ds, index, dataset_name, subject)
        assert (ds.folder(index) / "image.npy").is_file()


def test_statistics(dataset):
    raw, ds, _ = dataset
    for index, (dataset_name, subject) in enumerate(_subjects(raw)):
        cine, _ = load(raw_files(raw, dataset_name, subject)["cine"])  # the whole 4D cine (no zero border here)
        minimum = cine.min()
        shifted = cine - minimum
        row, meta = ds.subjects.iloc[index], ds.meta(index)
        expected = {"min": minimum, "mean": shifted.mean(), "std": np.std(shifted, ddof=1), "max": shifted.max()}
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (subject, key)
            assert meta[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (subject, key)
        n = shifted.size
        assert row["std"] ** 2 == pytest.approx(((shifted - shifted.mean()) ** 2).sum() / (n - 1), rel=1e-9)


def test_gt_center_is_smallest_enclosing_circle(dataset):
    raw, ds, _ = dataset
    for index, (_, subject) in enumerate(_subjects(raw)):
        labels = np.asarray(ds.labels(index))  # (2, Z, H, W)
        centre, radius = brute_force_pixel_circle((labels != 0).any(axis=(0, 1)))
        row = ds.subjects.iloc[index]
        np.testing.assert_allclose([row["gt_center_0"], row["gt_center_1"]], centre, atol=1e-6, err_msg=subject)
        assert row["gt_size"] == pytest.approx(2 * radius, abs=1e-6)
        assert ds.meta(index)["gt_center"] == pytest.approx(list(centre), abs=1e-6)


def test_raw_untouched(prepared_tiny):
    raw, _, _, before = prepared_tiny
    assert hash_tree(raw / "MnM") | hash_tree(raw / "MnM2") == before


def _single_subject(raw_tiny, tmp_path, position=0):
    """A raw M&Ms folder holding only the subject at ``position`` of the CSV."""
    raw = copy_raw(raw_tiny, tmp_path / "raw", ("mm1",))
    header, rows = read_csv_rows(raw, "mm1")
    keep = rows[position][header.index("External code")]
    for other in csv_ids(raw, "mm1"):
        if other != keep:
            shutil.rmtree(subject_dir(raw, "mm1", other))
    write_csv_rows(raw, "mm1", header, rows[position:position + 1])
    return raw, keep


def test_zero_border_is_cropped(raw_tiny, tmp_path):
    """A subject padded with zero rows / columns: the crop removes exactly the padding."""
    raw, keep = _single_subject(raw_tiny, tmp_path)
    pad = ((3, 5), (4, 2), (0, 0), (0, 0))
    for path in raw_files(raw, "mm1", keep).values():
        image = nib.load(str(path))
        data = np.pad(np.asanyarray(image.dataobj.get_unscaled()), pad)
        nib.save(nib.Nifti1Image(data, image.affine, image.header), str(path))
    out = tmp_path / "out"
    prepare_dataset(raw, out, datasets=["mnms"], progress=False)
    ds = PreparedDataset(out)
    cine = check_subject_arrays(raw, ds, 0, "mm1", keep)
    assert ds.meta(0)["crop"][0][0] >= 3 and ds.meta(0)["crop"][1][0] >= 4
    assert ds.meta(0)["crop"][0][1] <= cine.shape[0] - 5 and ds.meta(0)["crop"][1][1] <= cine.shape[1] - 2


def test_long_axis_geometry_recorded(dataset):
    raw, ds, _ = dataset
    for index, (dataset_name, subject) in enumerate(_subjects(raw)):
        recorded = ds.meta(index)["long_axis"]
        if dataset_name == "mm1":
            assert recorded == {}
            continue
        folder = subject_dir(raw, "mm2", subject)
        files = {"4ch": folder / f"{subject}_LA_CINE.nii.gz", "2ch": folder / f"{subject}_LA2CH_CINE_sspcmr.nii.gz"}
        assert sorted(recorded) == ["2ch", "4ch"]
        for view, path in files.items():
            image = nib.load(str(path))
            assert recorded[view]["shape"] == list(image.shape)
            np.testing.assert_allclose(recorded[view]["affine"], image.affine, atol=1e-9)


def test_official_nested_layout_and_uncompressed_files(raw_tiny, prepared_tiny, tmp_path):
    """MnM/ under original_data/, subjects in Training/Labeled, plain .nii files: same result."""
    raw = tmp_path / "raw"
    copy_raw(raw_tiny, raw / "original_data", ("mm1",))
    base = raw / "original_data" / "MnM"
    for folder in sorted((base / "dataset").iterdir()):
        target = base / "Training" / "Labeled" / folder.name
        target.mkdir(parents=True)
        for path in folder.glob("*.nii.gz"):
            (target / path.name[: -len(".gz")]).write_bytes(gzip.decompress(path.read_bytes()))
    shutil.rmtree(base / "dataset")
    out = tmp_path / "out"
    report = prepare_dataset(raw, out, datasets=["mnms"], progress=False)
    assert len(report.prepared) == len(csv_ids(raw_tiny, "mm1")) and report.invalid == []
    ds, reference = PreparedDataset(out), PreparedDataset(prepared_tiny[1])
    mm1 = reference.subjects[reference.subjects["dataset"] == "mm1"].reset_index(drop=True)
    pd.testing.assert_frame_equal(ds.subjects, mm1)
    for index in range(len(ds.subjects)):
        np.testing.assert_array_equal(ds.image(index), reference.image(index))
        np.testing.assert_array_equal(ds.labels(index), reference.labels(index))
        assert ds.meta(index)["sources"]["cine"].endswith("_sa.nii")


def test_gt_center_covers_both_frames_and_all_slices(raw_tiny, tmp_path):
    """Stray labelled pixels far from the heart, one only at ES and one only in the last slice at ED, move
    the circle: it encloses every labelled pixel of both frames and every slice."""
    raw, keep = _single_subject(raw_tiny, tmp_path, position=1)
    path = raw_files(raw, "mm1", keep)["labels"]
    image = nib.load(str(path))
    labels = np.asanyarray(image.dataobj).copy()
    frames = truth(raw_tiny, "mm1", keep)
    labels[1, 1, 0, frames["es_frame"]] = 3
    labels[-2, 2, -1, frames["ed_frame"]] = 1
    nib.save(nib.Nifti1Image(labels, image.affine, image.header), str(path))
    prepare_dataset(raw, tmp_path / "out", datasets=["mnms"], progress=False)
    ds = PreparedDataset(tmp_path / "out")
    check_subject_arrays(raw, ds, 0, "mm1", keep)
    prepared = np.asarray(ds.labels(0))
    centre, radius = brute_force_pixel_circle((prepared != 0).any(axis=(0, 1)))
    ed_only, _ = brute_force_pixel_circle((prepared[0, :-1] != 0).any(axis=0))
    assert np.linalg.norm(centre - ed_only) > 1  # the stray pixels matter
    np.testing.assert_allclose(ds.meta(0)["gt_center"], centre, atol=1e-6)
    assert ds.meta(0)["gt_size"] == pytest.approx(2 * radius, abs=1e-6)
