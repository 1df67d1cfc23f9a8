"""``sspcmr splits default`` / ``vendors`` on a prepared folder follow sspcmr.data.splits, in CSV row order."""

from __future__ import annotations

import pandas as pd
import yaml

from sspcmr.commands.main import main
from sspcmr.data.prepare import prepare_dataset
from sspcmr.data.splits import default_split, read_split, vendor_subset
from sspcmr.data.store import PreparedDataset

from .helpers import copy_raw, csv_ids, read_csv_rows, write_csv_rows

MM2_VENDORS = {"SIEMENS": "A", "PHILIPS MEDICAL SYSTEMS": "B", "GE MEDICAL SYSTEMS": "C"}


def _raw_metadata(raw):
    """Per data set SubjectID / Vendor / Pathology straight from the raw CSVs, in row order."""
    header, rows = read_csv_rows(raw, "mm1")
    mm1 = pd.DataFrame({"SubjectID": [r[header.index("External code")] for r in rows],
                        "Vendor": [r[header.index("Vendor")] for r in rows],
                        "Pathology": [r[header.index("Pathology")] for r in rows]})
    header, rows = read_csv_rows(raw, "mm2")
    mm2 = pd.DataFrame({"SubjectID": [f"{int(r[header.index('SUBJECT_CODE')]):03d}" for r in rows],
                        "Vendor": [MM2_VENDORS[r[header.index("VENDOR")].upper()] for r in rows],
                        "Pathology": [r[header.index("DISEASE")] for r in rows]})
    return {"mm1": mm1, "mm2": mm2}


def test_metadata_frames_keep_csv_order(prepared_tiny):
    raw, out, _, _ = prepared_tiny
    frames = PreparedDataset(out).metadata_frames()
    expected = _raw_metadata(raw)
    assert sorted(frames) == ["mm1", "mm2"]
    for dataset in ("mm1", "mm2"):
        pd.testing.assert_frame_equal(frames[dataset], expected[dataset])


def test_splits_default_and_vendors(prepared_tiny, tmp_path, capsys):
    raw, out, _, _ = prepared_tiny
    default_file, vendor_file = tmp_path / "f.yaml", tmp_path / "g.yaml"
    assert main(["splits", "default", "--prepared", str(out), "--test-per-vendor", "1", "--mm2-test", "2-3",
                 "-o", str(default_file)]) == 0
    metadata = PreparedDataset(out).metadata_frames()
    expected = default_split(metadata, per_vendor=1, mm2_test_ids=["002", "003"])
    content = yaml.safe_load(default_file.read_text())
    assert content == expected.as_dict()
    assert default_file.read_text() == yaml.dump(expected.as_dict(), default_style='"')

    # Independently: one M&Ms subject per vendor, pandas-sampled with seed 1234 in CSV order.
    raw_meta = _raw_metadata(raw)
    mm1_test = sorted(rows.sample(1, random_state=1234)["SubjectID"].iloc[0]
                      for _, rows in raw_meta["mm1"].groupby("Vendor"))
    assert content["test"]["mm1"] == mm1_test
    overlap = set(raw_meta["mm2"].loc[raw_meta["mm2"]["Pathology"].isin(["NOR", "HCM", "LV"]), "SubjectID"])
    assert content["test"]["mm2"] == sorted({"002", "003"} - overlap) or "mm2" not in content["test"]
    development = {f"mm1-{s}" for s in raw_meta["mm1"]["SubjectID"] if s not in mm1_test} | {
        f"mm2-{s}" for s in raw_meta["mm2"]["SubjectID"] if s not in ("002", "003") and s not in overlap}
    split = read_split(default_file)
    listed = {f"{d}-{s}" for part in (split.train, split.valid) for d, ids in part.items() for s in ids}
    assert listed == development
    assert sum(len(v) for v in split.valid.values()) == round(0.2 * len(development))

    assert main(["splits", "vendors", "--base", str(default_file), "--prepared", str(out), "--group", "A_B",
                 "-o", str(vendor_file)]) == 0
    expected_vendors = vendor_subset(read_split(default_file), metadata, "A_B")
    assert yaml.safe_load(vendor_file.read_text()) == expected_vendors.as_dict()
    vendors = {(d, s): v for d, f in raw_meta.items() for s, v in zip(f["SubjectID"], f["Vendor"], strict=True)}
    narrowed = read_split(vendor_file)
    assert narrowed.test == split.test
    for part, base in ((narrowed.train, split.train), (narrowed.valid, split.valid)):
        kept = {(d, s) for d, ids in part.items() for s in ids}
        assert kept == {(d, s) for d, ids in base.items() for s in ids if vendors[(d, s)] in ("A", "B")}


def test_reordered_csv_updates_order(raw_tiny, tmp_path):
    """A reused subject still follows the current CSV row order (pandas sampling depends on it)."""
    raw = copy_raw(raw_tiny, tmp_path / "raw", ("mm1",))
    out = tmp_path / "out"
    prepare_dataset(raw, out, datasets=["mnms"], progress=False)
    header, rows = read_csv_rows(raw, "mm1")
    write_csv_rows(raw, "mm1", header, rows[::-1])
    prepare_dataset(raw, out, datasets=["mnms"], progress=False)
    ds = PreparedDataset(out)
    assert list(ds.metadata_frames()["mm1"]["SubjectID"]) == csv_ids(raw, "mm1")
    assert list(ds.subjects["SubjectID"]) == csv_ids(raw, "mm1")
