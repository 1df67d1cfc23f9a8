"""Split algorithms against naive references written from their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sspcmr.data.splits import (
    Split,
    SplitError,
    default_test_subjects,
    development_split,
    labelled_subset,
    read_split,
    sample_per_group,
    to_strings,
    vendor_subset,
    write_split,
)
from sspcmr.phantom import mnms_codes


@pytest.fixture(scope="module")
def metadata() -> dict[str, pd.DataFrame]:
    """Metadata shaped like the real sets: 345 M&Ms subjects (vendors A-D), 360 M&Ms-2 subjects whose
    IDs 001-100, 161-175 and 201-280 carry overlap pathologies (so 85 development subjects remain and the
    test set is 281-360, as in the paper)."""
    rng = np.random.default_rng(0)
    codes = mnms_codes(345, seed=3)
    mm1 = pd.DataFrame({"SubjectID": codes, "Vendor": rng.choice(list("ABCD"), 345, p=[0.4, 0.3, 0.15, 0.15]),
                        "Pathology": rng.choice(["NOR", "DCM", "HCM"], 345)})
    ids = [f"{i:03d}" for i in range(1, 361)]
    overlap = [i <= 100 or 161 <= i <= 175 or 201 <= i <= 280 for i in range(1, 361)]
    mm2 = pd.DataFrame({"SubjectID": ids, "Vendor": rng.choice(list("ABC"), 360),
                        "Pathology": [rng.choice(["NOR", "HCM", "LV"]) if o else rng.choice(["ARR", "CIA", "FALL"])
                                      for o in overlap]})
    return {"mm1": mm1, "mm2": mm2}


def test_sample_per_group_matches_pandas_semantics(metadata):
    mm1 = metadata["mm1"]
    expected = []
    for vendor in "ABCD":
        rows = mm1[mm1["Vendor"] == vendor]
        chosen = np.random.RandomState(1234).permutation(len(rows))[:15]  # DataFrame.sample's draw
        expected += list(rows["SubjectID"].iloc[chosen])
    assert sample_per_group(mm1, 15, "Vendor", "SubjectID", 1234) == sorted(expected)


def test_reference_split_counts_and_shuffle(metadata):
    test = default_test_subjects(metadata)
    assert len(test["mm1"]) == 60 and test["mm2"] == [f"{i:03d}" for i in range(281, 361)]
    split = development_split(metadata, test)
    counts = split.counts()
    assert sum(counts["train"].values()) == 296 and sum(counts["valid"].values()) == 74
    assert sum(counts["test"].values()) == 140
    dev_mm2 = sorted(split.train["mm2"] + split.valid["mm2"])
    assert dev_mm2 == [f"{i:03d}" for i in list(range(101, 161)) + list(range(176, 201))]
    # Naive reference: sorted "dataset-ID" strings, RandomState(0).shuffle, first 20% validation.
    pool = sorted([f"mm1-{s}" for s in metadata["mm1"]["SubjectID"] if s not in test["mm1"]]
                  + [f"mm2-{s}" for s in dev_mm2])
    np.random.RandomState(0).shuffle(pool)
    assert to_strings(split.valid) == sorted(pool[:74]) and to_strings(split.train) == sorted(pool[74:])
    everything = to_strings(split.train) + to_strings(split.valid) + to_strings(split.test)
    assert len(everything) == len(set(everything))  # no subject in two parts


def test_overlap_removed_only_when_both_datasets(metadata):
    only_mm2 = {"mm2": metadata["mm2"]}
    split = development_split(only_mm2, default_test_subjects(only_mm2))
    assert len(split.train["mm2"]) + len(split.valid["mm2"]) == 280  # nothing removed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labelled_subsets_nested_and_reproducible(metadata, seed):
    full = development_split(metadata, default_test_subjects(metadata))
    subsets = {n: labelled_subset(full, n, seed) for n in (10, 15, 25, 50)}
    for small, large in ((10, 15), (15, 25), (25, 50)):
        assert set(to_strings(subsets[small].train)) < set(to_strings(subsets[large].train))
    assert len(to_strings(subsets[10].train)) == 10
    assert subsets[10].valid == full.valid and subsets[10].test == full.test
    np.random.seed(seed)
    chosen = np.random.choice(to_strings(full.train), 10, replace=False)  # the equivalent draw
    assert set(chosen) == set(to_strings(subsets[10].train))
    with pytest.raises(SplitError, match="subset size"):
        labelled_subset(full, 297, seed)


def test_vendor_groups(metadata):
    full = development_split(metadata, default_test_subjects(metadata))
    vendor = {ds: dict(zip(f["SubjectID"], f["Vendor"], strict=True)) for ds, f in metadata.items()}
    for group, allowed in (("A_B", {"A", "B"}), ("C_D", {"C", "D"})):
        sub = vendor_subset(full, metadata, group)
        assert sub.test == full.test
        for part in (sub.train, sub.valid):
            assert all(vendor[ds][s] in allowed for ds, ids in part.items() for s in ids)
        kept = set(to_strings(sub.train))
        expected = {s for s in to_strings(full.train) if vendor[s[:3]][s[4:]] in allowed}
        assert kept == expected
    with pytest.raises(SplitError):
        vendor_subset(full, metadata, "A_C")


def test_yaml_round_trip_and_format(tmp_path):
    split = Split(test={"mm2": ["281"], "mm1": ["B0B0B0", "A0A0A0"]}, train={"mm1": ["C1C1C1"]}, valid={"mm2": ["101"]})
    path = write_split(split, tmp_path / "s.yaml")
    text = path.read_text()
    assert text.index('"test"') < text.index('"train"') < text.index('"valid"')
    assert '- "A0A0A0"' in text and '- "281"' in text  # every scalar double-quoted, IDs stay strings
    back = read_split(path)
    assert back.as_dict() == split.as_dict() and back.test["mm2"] == ["281"]
    (tmp_path / "t.yaml").write_text('"test":\n  "mm2":\n  - "281"\n')
    assert read_split(tmp_path / "t.yaml").train == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [('"train":\n  "mm1": []\n', "at least a 'test'"), ('"test": {}\n"train": {}\n', "together"),
     ('"test": {}\n"extra": {}\n', "unknown split keys"), ("test: [1, 2]\n", "must map")],
)
def test_bad_split_files(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(SplitError, match=message) as info:
        read_split(path)
    assert str(path) in str(info.value)


def test_cli_splits_subset_and_show(tmp_path, metadata, capsys):
    from sspcmr.commands.main import main

    full = development_split(metadata, default_test_subjects(metadata))
    base = write_split(full, tmp_path / "full.yaml")
    assert main(["splits", "subset", "--base", str(base), "--subjects", "10", "--seed", "1",
                 "-o", str(tmp_path / "nr10.yaml")]) == 0
    assert read_split(tmp_path / "nr10.yaml").as_dict() == labelled_subset(full, 10, 1).as_dict()
    assert main(["splits", "show", str(tmp_path / "nr10.yaml")]) == 0
    assert "'train'" in capsys.readouterr().out
    assert main(["splits", "subset", "--base", str(tmp_path / "missing.yaml"), "--subjects", "3",
                 "-o", str(tmp_path / "x.yaml")]) == 2
    assert "missing.yaml: cannot read split file" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()
