"""Every kind of bad input fails through the real CLI with one line per problem and writes nothing;
``--skip-invalid`` leaves just that subject out."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sspcmr.commands.main import main

from .helpers import (
    MNMS2_CSV,
    MNMS_CSV,
    copy_raw,
    csv_ids,
    hash_tree,
    raw_files,
    read_csv_rows,
    read_table,
    subject_dir,
    truth,
    write_csv_rows,
)


def _vendor_subject(raw: Path, vendor: str) -> str:
    header, rows = read_csv_rows(raw, "mm1")
    return next(r[header.index("External code")] for r in rows if r[header.index("Vendor")] == vendor)


def _rewrite(path: Path, edit) -> None:
    """Rewrite a NIfTI file with ``edit(array) -> array`` applied to its stored (unscaled) voxels."""
    image = nib.load(str(path))
    data = edit(np.asanyarray(image.dataobj.get_unscaled()).copy())
    header = image.header.copy()
    header.set_data_shape(data.shape)
    nib.save(nib.Nifti1Image(data, image.affine, header), str(path))


# Each case edits a copy of the raw folder and returns (subject, file name in the message, problem pattern).

def truncated(raw):
    subject = csv_ids(raw, "mm1")[0]
    path = raw_files(raw, "mm1", subject)["cine"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "mm1", subject, path.name, r"cannot read NIfTI \(truncated or corrupt"


def corrupt_gz(raw):
    subject = csv_ids(raw, "mm1")[1]
    path = raw_files(raw, "mm1", subject)["labels"]
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return "mm1", subject, path.name, r"cannot read NIfTI"


def gzip_garbage(raw):  # a valid gzip stream whose content is not NIfTI
    subject = csv_ids(raw, "mm1")[1]
    path = raw_files(raw, "mm1", subject)["cine"]
    path.write_bytes(gzip.compress(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()))
    return "mm1", subject, path.name, r"cannot read NIfTI"


def three_d_cine(raw):
    subject = csv_ids(raw, "mm1")[2]
    path = raw_files(raw, "mm1", subject)["cine"]
    _rewrite(path, lambda a: np.ascontiguousarray(a[..., 0]))
    return "mm1", subject, path.name, r"expected a 4D cine .* found 3D"


def three_d_mm2_cine(raw):
    subject = csv_ids(raw, "mm2")[0]
    path = raw_files(raw, "mm2", subject)["cine"]
    _rewrite(path, lambda a: np.ascontiguousarray(a[..., 0]))
    return "mm2", subject, path.name, r"expected a 4D cine .* found 3D"


def shape_mismatch(raw):
    subject = csv_ids(raw, "mm1")[3]
    path = raw_files(raw, "mm1", subject)["labels"]
    _rewrite(path, lambda a: np.ascontiguousarray(a[:, :, :-1]))
    return "mm1", subject, path.name, r"label shape .* differs from image shape"


def mm2_shape_mismatch(raw):
    subject = csv_ids(raw, "mm2")[1]
    path = raw_files(raw, "mm2", subject)["ed_gt"]
    _rewrite(path, lambda a: np.ascontiguousarray(a[1:]))
    return "mm2", subject, path.name, r"label shape .* differs from image shape"


def label_value_5(raw):
    subject = csv_ids(raw, "mm1")[4]
    path = raw_files(raw, "mm1", subject)["labels"]
    ed = truth(raw, "mm1", subject)["ed_frame"]

    def edit(a):
        a[a.shape[0] // 2, a.shape[1] // 2, 1, ed] = 5
        return a

    _rewrite(path, edit)
    return "mm1", subject, path.name, r"label values \[5\] outside 0-3"


def nan_voxels(raw):
    subject = _vendor_subject(raw, "C")  # float32 on disk
    path = raw_files(raw, "mm1", subject)["cine"]
    assert nib.load(str(path)).get_data_dtype() == np.float32

    def edit(a):
        a[3, 4, 0, 1] = np.nan
        a[5, 6, 1, 0] = np.inf
        return a

    _rewrite(path, edit)
    return "mm1", subject, path.name, r"2 NaN or Inf voxels"


def row_without_folder(raw):
    subject = csv_ids(raw, "mm1")[5]
    shutil.rmtree(subject_dir(raw, "mm1", subject))
    return "mm1", subject, MNMS_CSV, r"CSV row without a subject folder"


def folder_without_row(raw):
    subject = csv_ids(raw, "mm2")[2]
    header, rows = read_csv_rows(raw, "mm2")
    write_csv_rows(raw, "mm2", header, [r for r in rows if f"{int(r[0]):03d}" != subject])
    return "mm2", subject, f"dataset/{subject}", rf"subject folder without a row in {re.escape(MNMS2_CSV)}"


def ed_out_of_range(raw):
    subject = csv_ids(raw, "mm1")[6]
    header, rows = read_csv_rows(raw, "mm1")
    rows[csv_ids(raw, "mm1").index(subject)][header.index("ED")] = "99"
    write_csv_rows(raw, "mm1", header, rows)
    return "mm1", subject, MNMS_CSV, r"ED = 99 in the metadata CSV is outside the cine's \d+ frames"


def ed_matches_no_frame(raw):
    subject = csv_ids(raw, "mm2")[0]
    path = raw_files(raw, "mm2", subject)["ed"]

    def edit(a):
        a[10, 10, 2] += 7
        return a

    _rewrite(path, edit)
    return "mm2", subject, path.name, r"matches no frame of the cine \(closest: frame \d+"


def ed_equals_es(raw):
    subject = csv_ids(raw, "mm2")[1]
    files = raw_files(raw, "mm2", subject)
    shutil.copyfile(files["ed"], files["es"])
    return "mm2", subject, files["es"].name, r"ED and ES volumes both match frame \d+"


def one_labelled_frame(raw):
    subject = csv_ids(raw, "mm1")[7]
    path = raw_files(raw, "mm1", subject)["labels"]
    es = truth(raw, "mm1", subject)["es_frame"]

    def edit(a):
        a[..., es] = 0
        return a

    _rewrite(path, edit)
    return "mm1", subject, path.name, r"labels annotate 1 frames \[\d+\], expected exactly 2"


def singular_affine(raw):
    subject = csv_ids(raw, "mm1")[0]
    path = raw_files(raw, "mm1", subject)["cine"]
    image = nib.load(str(path))
    header = image.header.copy()
    header.set_sform(np.diag([0.0, 0.0, 0.0, 1.0]), code=1)  # nibabel prefers the sform over the qform
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj.get_unscaled()), None, header), str(path))
    assert abs(np.linalg.det(nib.load(str(path)).affine[:3, :3])) < 1e-12
    return "mm1", subject, path.name, r"singular or non-finite voxel-to-world affine"


def missing_label_file(raw):
    subject = csv_ids(raw, "mm1")[2]
    path = raw_files(raw, "mm1", subject)["labels"]
    path.unlink()
    return "mm1", subject, path.name, r"file is missing"


def missing_es_gt(raw):
    subject = csv_ids(raw, "mm2")[2]
    path = raw_files(raw, "mm2", subject)["es_gt"]
    path.unlink()
    return "mm2", subject, path.name, r"file is missing"


def constant_cine(raw):
    subject = csv_ids(raw, "mm1")[3]
    path = raw_files(raw, "mm1", subject)["cine"]
    _rewrite(path, lambda a: np.full_like(a, 5))
    return "mm1", subject, path.name, r"cine is constant"


def empty_mm2_labels(raw):
    subject = csv_ids(raw, "mm2")[0]
    files = raw_files(raw, "mm2", subject)
    for role in ("ed_gt", "es_gt"):
        _rewrite(files[role], np.zeros_like)
    return "mm2", subject, files["ed_gt"].name, r"labels are empty in both ED and ES"


CASES = [truncated, corrupt_gz, gzip_garbage, three_d_cine, three_d_mm2_cine, shape_mismatch, mm2_shape_mismatch,
         label_value_5, nan_voxels, row_without_folder, folder_without_row, ed_out_of_range, ed_matches_no_frame,
         ed_equals_es, one_labelled_frame, singular_affine, missing_label_file, missing_es_gt, constant_cine,
         empty_mm2_labels]


def _problem_lines(err: str) -> list[str]:
    """The ``sspcmr prepare: error:`` lines naming a problem (not the closing count of invalid subjects)."""
    return [line for line in err.splitlines() if line.startswith("sspcmr prepare: error:")
            and not re.search(r"\d+ invalid subject\(s\); nothing was written", line)]


def _prepare(raw, out, dataset, *extra):
    return main(["prepare", "--raw", str(raw), "--out", str(out), "--datasets",
                 {"mm1": "mnms", "mm2": "mnms2"}[dataset], "--quiet", *extra])


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input(case, raw_tiny, tmp_path, capsys):
    raw = copy_raw(raw_tiny, tmp_path / "raw")
    (raw / "sspcmr_truth").symlink_to(raw_tiny / "sspcmr_truth", target_is_directory=True)
    dataset, subject, file_name, problem = case(raw)
    hashes = hash_tree(raw / ("MnM" if dataset == "mm1" else "MnM2"))
    out = tmp_path / "out"
    capsys.readouterr()

    assert _prepare(raw, out, dataset) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    errors = _problem_lines(captured.err)
    assert len(errors) == 1, captured.err
    line = errors[0]
    assert f"{dataset} {subject}" in line and file_name in line and re.search(problem, line), line
    assert "unexpected" not in line
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    assert hash_tree(raw / ("MnM" if dataset == "mm1" else "MnM2")) == hashes

    # --skip-invalid: just that subject is left out, and listed with its problem.
    assert _prepare(raw, out, dataset, "--skip-invalid") == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out and f"{dataset} {subject}" in captured.out
    invalid = read_table(out, "invalid.csv", dtype=str)
    assert list(invalid["subject"]) == [f"{dataset} {subject}"]
    assert file_name in invalid["file"][0] and re.search(problem, invalid["problem"][0])
    subjects = read_table(out, "subjects.csv", dtype={"SubjectID": str})
    listed = [s for s in csv_ids(raw, dataset) if s != subject]
    assert list(subjects["SubjectID"]) == listed and set(subjects["dataset"]) == {dataset}
    assert sorted(p.name for p in (out / "subjects" / dataset).iterdir()) == sorted(listed)
    assert not list(out.glob(".staging-*"))
    assert hash_tree(raw / ("MnM" if dataset == "mm1" else "MnM2")) == hashes


def test_several_problems_one_line_each(raw_tiny, tmp_path, capsys):
    raw = copy_raw(raw_tiny, tmp_path / "raw")
    (raw / "sspcmr_truth").symlink_to(raw_tiny / "sspcmr_truth", target_is_directory=True)
    expected = [truncated(raw), label_value_5(raw), folder_without_row(raw), ed_equals_es(raw)]
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["prepare", "--raw", str(raw), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    errors = _problem_lines(err)
    assert len(errors) == len(expected), err
    for dataset, subject, file_name, problem in expected:
        assert sum(f"{dataset} {subject}:" in line and file_name in line and bool(re.search(problem, line))
                   for line in errors) == 1, (subject, err)
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("layout", ["empty", "no_mnm2", "csv_only", "missing_raw"])
def test_empty_selection(layout, raw_tiny, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    datasets = ["mnms", "mnms2"]
    if layout == "no_mnm2":
        copy_raw(raw_tiny, raw, ("mm1",))
        datasets = ["mnms2"]
    elif layout == "csv_only":
        (raw / "MnM").mkdir()
        (raw / "MnM" / MNMS_CSV).write_text((raw_tiny / "MnM" / MNMS_CSV).read_text().splitlines()[0] + "\n")
        datasets = ["mnms"]
    elif layout == "missing_raw":
        raw = tmp_path / "does_not_exist"
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["prepare", "--raw", str(raw), "--out", str(out), "--datasets", *datasets, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = _problem_lines(captured.err)
    assert len(errors) == 1, captured.err
    assert re.search(r"empty selection|no MnM2?/ folder|does not exist", errors[0]), errors[0]
    if layout == "no_mnm2":
        assert "MnM2" in errors[0]
    assert not out.exists() or not any(out.iterdir())
    # --skip-invalid cannot make an empty selection succeed
    assert main(["prepare", "--raw", str(raw), "--out", str(out), "--datasets", *datasets, "--quiet",
                 "--skip-invalid"]) == 2


def test_out_inside_raw_is_refused(raw_tiny, tmp_path, capsys):
    raw = copy_raw(raw_tiny, tmp_path / "raw", ("mm1",))
    hashes = hash_tree(raw)
    capsys.readouterr()
    assert main(["prepare", "--raw", str(raw), "--out", str(raw / "prepared"), "--datasets", "mnms", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "must lie outside the raw folder" in err and "Traceback" not in err
    assert hash_tree(raw) == hashes and not (raw / "prepared").exists()
