"""Re-running prepare: unchanged subjects are reused, changed ones redone, interruptions are harmless."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import sspcmr.data.prepare.run as run_module
from sspcmr.data.prepare import PreparedDataset, prepare_dataset

from .helpers import copy_raw, csv_ids, hash_tree, raw_files, set_csv_value


def _all(raw):
    return [f"mm1 {s}" for s in csv_ids(raw, "mm1")] + [f"mm2 {s}" for s in csv_ids(raw, "mm2")]


def _state(out):
    """(mtime_ns, inode) of every file in the subject folders."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted((out / "subjects").rglob("*")) if p.is_file()}


def _arrays(out):
    ds = PreparedDataset(out)
    return ds.subjects.copy(), {i: (np.array(ds.image(i)), np.array(ds.labels(i))) for i in range(len(ds.subjects))}


def _assert_same(out, subjects, arrays):
    ds = PreparedDataset(out)
    pd.testing.assert_frame_equal(ds.subjects, subjects)
    for i, (image, labels) in arrays.items():
        np.testing.assert_array_equal(ds.image(i), image)
        np.testing.assert_array_equal(ds.labels(i), labels)


@pytest.fixture
def prepared(raw_tiny, tmp_path):
    raw = copy_raw(raw_tiny, tmp_path / "raw")
    out = tmp_path / "out"
    report = prepare_dataset(raw, out, progress=False)
    assert sorted(report.prepared) == sorted(_all(raw))
    return raw, out, hash_tree(raw)


def test_second_run_reuses_everything(prepared):
    raw, out, hashes = prepared
    before, tables = _state(out), (out / "subjects.csv").read_text()
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [] and sorted(report.reused) == sorted(_all(raw))
    assert report.removed == [] and report.invalid == []
    assert _state(out) == before  # nothing in a subject folder rewritten
    assert (out / "subjects.csv").read_text() == tables
    assert hash_tree(raw) == hashes


def test_changed_raw_file_redoes_only_that_subject(prepared):
    raw, out, _ = prepared
    subjects, arrays = _arrays(out)
    touched, altered, relabelled = csv_ids(raw, "mm1")[2], csv_ids(raw, "mm2")[1], csv_ids(raw, "mm1")[5]
    before = _state(out)

    cine = raw_files(raw, "mm1", touched)["cine"]
    stat = cine.stat()
    os.utime(cine, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touch: same content
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [f"mm1 {touched}"]
    assert sorted(report.reused) == sorted(set(_all(raw)) - {f"mm1 {touched}"})
    after = _state(out)
    changed = {path for path in before if before[path] != after.get(path)}
    assert changed and all(f"subjects/mm1/{touched}/" in path for path in changed)
    _assert_same(out, subjects, arrays)  # same content, same result

    # Alter one M&Ms-2 label file: that subject is redone and the new labels are used.
    es_gt = raw_files(raw, "mm2", altered)["es_gt"]
    image = nib.load(str(es_gt))
    labels = np.asanyarray(image.dataobj).copy()
    changed_voxels = labels == 1
    labels[changed_voxels] = 2
    nib.save(nib.Nifti1Image(labels, image.affine, image.header), str(es_gt))
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [f"mm2 {altered}"]
    ds = PreparedDataset(out)
    index = ds.subjects.index[(ds.subjects["dataset"] == "mm2") & (ds.subjects["SubjectID"] == altered)][0]
    prepared_es, old_es = np.asarray(ds.labels(index)[1]), arrays[index][1][1]
    assert (old_es == 1).any() and not (prepared_es == 1).any()
    assert (prepared_es == 2).sum() == np.isin(old_es, (1, 2)).sum()
    np.testing.assert_array_equal(prepared_es == 3, old_es == 3)

    # Change one metadata row: only that subject is redone, the table follows the CSV.
    set_csv_value(raw, "mm1", relabelled, "Pathology", "HCM")
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [f"mm1 {relabelled}"]
    table = PreparedDataset(out).subjects.set_index("SubjectID")
    assert table.loc[relabelled, "Pathology"] == "HCM"


def _touch_all(raw):
    for path in sorted(raw.rglob("*.nii.gz")):
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))


def test_interrupted_while_preparing(prepared, monkeypatch):
    raw, out, _ = prepared
    subjects, arrays = _arrays(out)
    _touch_all(raw)
    hashes = hash_tree(raw)
    real, calls = run_module.prepare_subject, []

    def interrupted(subject, folder):
        calls.append(subject.name)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(subject, folder)

    monkeypatch.setattr(run_module, "prepare_subject", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw, out, progress=False)
    monkeypatch.undo()
    _assert_same(out, subjects, arrays)  # previous data intact and readable
    assert not list(out.glob(".staging-*")) and not list(out.glob(".trash-*"))
    report = prepare_dataset(raw, out, progress=False)
    assert sorted(report.prepared) == sorted(_all(raw)) and report.reused == []
    _assert_same(out, subjects, arrays)
    assert hash_tree(raw) == hashes


def test_interrupted_while_committing_and_killed(prepared, monkeypatch):
    raw, out, _ = prepared
    subjects, arrays = _arrays(out)
    _touch_all(raw)
    real = run_module._commit
    committed = []

    def interrupted(out_, staging, staged):
        real(out_, staging, staged[:3])  # three subjects renamed into place, then Ctrl-C
        committed.extend(subject.name for subject, _ in staged[:3])
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "_commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw, out, progress=False)
    monkeypatch.undo()
    _assert_same(out, subjects, arrays)
    # A run killed hard leaves its staging and trash folders behind; the next run clears them.
    for leftover in (out / ".staging-deadbeef" / "mm1" / "X0X0X0", out / ".trash-deadbeef" / "mm2" / "001"):
        leftover.mkdir(parents=True)
        (leftover / "image.npy").write_bytes(b"partial")
    report = prepare_dataset(raw, out, progress=False)
    assert sorted(report.reused) == sorted(committed)
    assert sorted(report.prepared) == sorted(set(_all(raw)) - set(committed))
    assert not list(out.glob(".staging-*")) and not list(out.glob(".trash-*"))
    _assert_same(out, subjects, arrays)


def test_failed_run_keeps_previous_data(prepared):
    raw, out, _ = prepared
    subjects, arrays = _arrays(out)
    cine = raw_files(raw, "mm1", csv_ids(raw, "mm1")[0])["cine"]
    cine.write_bytes(cine.read_bytes()[:200])
    with pytest.raises(run_module.PrepareFailed):
        prepare_dataset(raw, out, progress=False)
    _assert_same(out, subjects, arrays)
    assert not list(out.glob(".staging-*"))


def test_parallel_workers_give_identical_results(prepared, tmp_path):
    raw, out, _ = prepared
    subjects, arrays = _arrays(out)
    parallel = tmp_path / "parallel"
    report = prepare_dataset(raw, parallel, workers=2, progress=False)
    assert sorted(report.prepared) == sorted(_all(raw))
    _assert_same(parallel, subjects, arrays)


def test_subject_that_becomes_invalid(prepared):
    """Strict runs keep the old data; --skip-invalid removes the now invalid subject; fixing it brings it back."""
    raw, out, _ = prepared
    subjects, arrays = _arrays(out)
    subject = csv_ids(raw, "mm2")[1]
    path = raw_files(raw, "mm2", subject)["es"]
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 3])
    with pytest.raises(run_module.PrepareFailed) as failure:
        prepare_dataset(raw, out, progress=False)
    assert [p.subject for p in failure.value.problems] == [f"mm2 {subject}"]
    _assert_same(out, subjects, arrays)

    report = prepare_dataset(raw, out, skip_invalid=True, workers=2, progress=False)
    assert report.removed == [f"mm2 {subject}"] and report.prepared == []
    assert [(e.subject, e.file) for e in report.invalid] == [(f"mm2 {subject}", str(path))]
    assert not (out / "subjects" / "mm2" / subject).exists()
    ds = PreparedDataset(out)
    assert f"{subject}" not in set(ds.subjects.loc[ds.subjects["dataset"] == "mm2", "SubjectID"])
    assert len(ds.subjects) == len(subjects) - 1 and ds.manifest["subjects"] == len(subjects) - 1
    invalid = pd.read_csv(out / "invalid.csv", dtype=str)
    assert list(invalid["subject"]) == [f"mm2 {subject}"] and path.name in invalid["file"][0]

    path.write_bytes(original)  # fixed (new mtime): prepared again, tables as at first
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [f"mm2 {subject}"] and report.invalid == []
    _assert_same(out, subjects, arrays)
    assert pd.read_csv(out / "invalid.csv").empty
