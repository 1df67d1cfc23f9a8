"""Re-running prepare: unchanged subjects are reused, changed ones redone, interruptions are harmless."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import sspcmr.data.prepare.run as run_module
from sspcmr.data.errors import DataError
from sspcmr.data.prepare import prepare_dataset
from sspcmr.data.store import PreparedDataset

from .helpers import copy_raw, csv_ids, hash_tree, raw_files, read_table, set_csv_value, table_path


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
    before, tables = _state(out), table_path(out, "subjects.csv").read_text()
    store = hash_tree(out)
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [] and sorted(report.reused) == sorted(_all(raw))
    assert report.removed == [] and report.invalid == [] and report.repaired == []
    assert _state(out) == before  # nothing in a subject folder rewritten
    assert table_path(out, "subjects.csv").read_text() == tables
    assert hash_tree(out) == store  # nothing changed: no new generation either
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

    def interrupted(subject, folder, *rule):
        calls.append(subject.name)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(subject, folder, *rule)

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
    store = hash_tree(out)
    _touch_all(raw)
    real, written = run_module.atomic_write_bytes, []

    def interrupted(path, write):
        if path.name == "manifest.json":  # every new version folder and table in place, then Ctrl-C
            written.extend(sorted(p.name for p in path.parent.glob("tables/*")))
            raise KeyboardInterrupt
        return real(path, write)

    monkeypatch.setattr(run_module, "atomic_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw, out, progress=False)
    monkeypatch.undo()
    assert len(written) == 2  # the current generation and the interrupted one were both there
    assert hash_tree(out) == store  # the previous data set, byte for byte, and nothing left over
    _assert_same(out, subjects, arrays)
    # A run killed hard leaves its staging, its new version folders and its table generation behind (nothing
    # names them); the next run clears them.
    subject = csv_ids(raw, "mm1")[0]
    leftovers = [out / ".staging-deadbeef" / "mm1" / "X0X0X0", out / ".trash-deadbeef" / "mm2" / "001",
                 out / "subjects" / "mm1" / subject / "19990101000000-dead00", out / "tables" / "19990101000000-dead00"]
    for leftover in leftovers:
        leftover.mkdir(parents=True)
        (leftover / "image.npy").write_bytes(b"partial")
    _assert_same(out, subjects, arrays)
    report = prepare_dataset(raw, out, progress=False)
    assert report.reused == [] and sorted(report.prepared) == sorted(_all(raw))  # nothing of it was committed
    assert not any(leftover.exists() for leftover in leftovers)
    assert len(list((out / "tables").iterdir())) == 1
    assert sorted(p.relative_to(out).as_posix() for p in (out / "subjects").glob("*/*/*")) == sorted(
        PreparedDataset(out).files["folder"])  # only the version folders the tables name
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
    invalid = read_table(out, "invalid.csv", dtype=str)
    assert list(invalid["subject"]) == [f"mm2 {subject}"] and path.name in invalid["file"][0]

    path.write_bytes(original)  # fixed (new mtime): prepared again, tables as at first
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [f"mm2 {subject}"] and report.invalid == []
    _assert_same(out, subjects, arrays)
    assert read_table(out, "invalid.csv").empty and PreparedDataset(out).invalid.empty


def test_store_of_format_1_is_refused_then_replaced(prepared):
    """A folder in the first layout (top-level tables, arrays directly in subjects/<dataset>/<ID>/) is refused by
    the reader; prepare replaces it completely and removes the old files."""
    raw, out, _ = prepared
    subjects, arrays = _arrays(out)
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("subjects.csv", "slices.csv", "corrections.csv", "invalid.csv"):
        shutil.copyfile(table_path(out, name), out / name)
    for version in sorted((out / "subjects").glob("*/*/*")):
        for path in version.iterdir():
            path.rename(version.parent / path.name)
        version.rmdir()
    shutil.rmtree(out / "tables")
    (out / "manifest.json").write_text(json.dumps({"format_version": 1, "datasets": manifest["datasets"],
                                                   "subjects": manifest["subjects"], "slices": manifest["slices"]}))
    with pytest.raises(DataError, match="prepared with format 1, this sspcmr reads 2; run `sspcmr prepare` again"):
        PreparedDataset(out)
    report = prepare_dataset(raw, out, progress=False)
    assert sorted(report.prepared) == sorted(_all(raw)) and report.reused == [] and report.removed == []
    _assert_same(out, subjects, arrays)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "subjects", "tables"]
    assert all(p.is_dir() for p in (out / "subjects").glob("*/*/*"))  # only version folders below the subjects
