"""M&Ms CSV rows with ED = ES = 0 (25 subjects in the real CSV) are corrected from the labels and reported."""

from __future__ import annotations

from sspcmr.commands.main import main
from sspcmr.data.prepare import prepare_dataset

from .helpers import copy_raw, csv_ids, read_csv_rows, read_table, set_csv_value, truth


def test_ed_es_zero_is_corrected(raw_tiny, tmp_path, capsys):
    raw = copy_raw(raw_tiny, tmp_path / "raw", ("mm1",))
    ids = csv_ids(raw, "mm1")
    frames = {s: (truth(raw_tiny, "mm1", s)["ed_frame"], truth(raw_tiny, "mm1", s)["es_frame"]) for s in ids}
    nonzero_ed = next(s for s in ids if frames[s][0] != 0)
    zero_ed = next(s for s in ids if frames[s][0] == 0)
    swapped = next(s for s in ids if s not in (nonzero_ed, zero_ed))
    for subject in (nonzero_ed, zero_ed):
        set_csv_value(raw, "mm1", subject, "ED", "0")
        set_csv_value(raw, "mm1", subject, "ES", "0")
    set_csv_value(raw, "mm1", swapped, "ED", str(frames[swapped][1]))
    set_csv_value(raw, "mm1", swapped, "ES", str(frames[swapped][0]))
    out = tmp_path / "out"
    capsys.readouterr()

    assert main(["prepare", "--raw", str(raw), "--out", str(out), "--datasets", "mnms", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err and "3 metadata correction(s)" in captured.out
    subjects = read_table(out, "subjects.csv", dtype={"SubjectID": str}).set_index("SubjectID")
    assert len(subjects) == len(ids)
    for subject in ids:
        assert tuple(subjects.loc[subject, ["ED", "ES"]]) == frames[subject]
    corrections = read_table(out, "corrections.csv", dtype=str)
    assert list(corrections["SubjectID"]) == [s for s in ids if s in (nonzero_ed, zero_ed, swapped)]  # CSV order
    assert set(corrections["dataset"]) == {"mm1"}
    notes = dict(zip(corrections["SubjectID"], corrections["note"], strict=True))
    for subject in (nonzero_ed, zero_ed):
        assert notes[subject] == f"CSV ED/ES 0/0 corrected to {frames[subject][0]}/{frames[subject][1]} from the labels"
    assert notes[swapped].startswith(f"CSV ED/ES {frames[swapped][1]}/{frames[swapped][0]} corrected")
    assert read_table(out, "invalid.csv").empty

    # Corrections stay listed when the subjects are reused, and disappear once the CSV is right.
    report = prepare_dataset(raw, out, datasets=["mnms"], progress=False)
    assert report.prepared == [] and len(report.corrections) == 3
    set_csv_value(raw, "mm1", zero_ed, "ES", str(frames[zero_ed][1]))
    report = prepare_dataset(raw, out, datasets=["mnms"], progress=False)
    assert report.prepared == [f"mm1 {zero_ed}"]
    assert sorted(read_table(out, "corrections.csv", dtype=str)["SubjectID"]) == sorted([nonzero_ed, swapped])
    header, rows = read_csv_rows(raw, "mm1")
    assert rows[ids.index(zero_ed)][header.index("ED")] == "0"  # the raw CSV itself is never rewritten by prepare
