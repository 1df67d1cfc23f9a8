"""Paired differences to scratch with a subject bootstrap: golden values on hand-made volumes, the bootstrap unit
(subjects, not volumes), the pairing rules, and the report's table."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from sspcmr.study.paired import paired_difference, paired_differences
from tests.study.test_report import records, report  # noqa: F401  (module fixtures: a little study and its report)


def _volumes(diffs: dict[str, list[float]], seeds=(0, 1), base: float = 0.7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline and method results: subject -> differences per (seed, phase) in that order."""
    method, baseline = [], []
    for subject, values in diffs.items():
        for (seed, phase), d in zip(itertools.product(seeds, ("ED", "ES")), values, strict=True):
            key = {"seed": seed, "dataset": "mm1", "subject": subject, "phase": phase}
            baseline.append({**key, "dice_mean": base})
            method.append({**key, "dice_mean": base + d})
    return pd.DataFrame(method), pd.DataFrame(baseline)


def test_constant_difference_has_a_degenerate_interval():
    method, baseline = _volumes({"a": [0.05] * 4, "b": [0.05] * 4, "c": [0.05] * 4})
    result = paired_difference(method, baseline, resamples=500)
    assert result["diff"] == pytest.approx(0.05)
    assert result["low"] == pytest.approx(0.05) and result["high"] == pytest.approx(0.05)
    assert (result["pairs"], result["subjects"], result["seeds"]) == (12, 3, 2)


def test_two_subjects_interval_ends_at_each_subject_alone():
    """Resampling 2 subjects gives {a, a}, {a, b}, {b, b}: the 2.5 / 97.5 percentiles are b's and a's means."""
    method, baseline = _volumes({"a": [0.10, 0.06, 0.08, 0.08], "b": [-0.02, 0.0, -0.04, -0.02]})
    result = paired_difference(method, baseline, resamples=4000)
    assert result["diff"] == pytest.approx(0.03)
    assert result["low"] == pytest.approx(-0.02) and result["high"] == pytest.approx(0.08)


def test_subjects_not_volumes_are_resampled():
    """One subject with varied volumes: a volume bootstrap would give a wide interval, the subject one none."""
    method, baseline = _volumes({"a": [0.2, -0.1, 0.15, -0.05]})
    result = paired_difference(method, baseline, resamples=500)
    assert result["low"] == pytest.approx(result["high"]) == pytest.approx(0.05)


def test_matches_a_naive_subject_bootstrap():
    rng = np.random.default_rng(3)
    diffs = {f"s{i}": list(rng.normal(0.02, 0.05, 4)) for i in range(6)}
    method, baseline = _volumes(diffs)
    result = paired_difference(method, baseline, resamples=20000, seed=1)
    naive_rng = np.random.default_rng(11)
    subjects = list(diffs)
    means = []
    for _ in range(20000):
        chosen = naive_rng.choice(len(subjects), len(subjects))
        means.append(np.mean([d for i in chosen for d in diffs[subjects[i]]]))
    assert result["low"] == pytest.approx(np.percentile(means, 2.5), abs=0.004)
    assert result["high"] == pytest.approx(np.percentile(means, 97.5), abs=0.004)


def test_pairs_need_the_same_seed_and_volume():
    method, baseline = _volumes({"a": [0.1] * 4})
    with pytest.raises(ValueError, match="no test volume"):
        paired_difference(method.assign(seed=method["seed"] + 10), baseline)
    with pytest.raises(ValueError, match="lack columns"):
        paired_difference(method.drop(columns=["phase"]), baseline)
    # A volume missing from the baseline is left out, not paired with another.
    result = paired_difference(method, baseline.iloc[1:], resamples=100)
    assert result["pairs"] == 3


def test_paired_differences_per_cell_skip_cells_without_baseline():
    method, baseline = _volumes({"a": [0.1] * 4, "b": [0.1] * 4})
    frame = pd.concat([method.assign(method="mim"), baseline.assign(method="scratch")])
    frame = pd.concat([frame.assign(variant="default", subset="2"),
                       method.assign(method="mim", variant="no-augmentation", subset="2")])
    table = paired_differences(frame, ["scratch", "mim"], resamples=100)
    assert table[["variant", "subset", "method"]].values.tolist() == [["default", "2", "mim"]]
    assert table["diff"].iloc[0] == pytest.approx(0.1)


def test_report_table_of_differences(report):  # noqa: F811
    out, _ = report
    data = pd.read_csv(out / "differences_to_scratch.csv", dtype={"subset": str})
    got = {(r.variant, r.subset, r.method): (round(r.diff, 6), r.verdict) for r in data.itertuples()}
    # d(mim) - d(scratch) per seed; the phase and vendor offsets cancel within a pair (see test_report).
    assert got == {("default", "2", "mim"): (0.04, "better"), ("default", "2", "simclr"): (0.08, "better"),
                   ("default", "all", "mim"): (-0.02, "worse"), ("ed-only", "all", "mim"): (0.01, "better"),
                   ("vendors-AB", "all", "mim"): (-0.01, "worse")}
    text = (out / "report.md").read_text()
    assert "**Difference to scratch.**" in text and "| default | 2 | MIM | +0.040 | [+0.040, +0.040] | better |" in text
