"""Paired differences to the Baseline with bootstrap intervals: is a method better than training from scratch,
beyond the noise of which test subjects and which seeds were drawn?

Within one (variant, subset) cell, a method's run and the Baseline's run of the same seed are scored on the same
test volumes, so each test volume gives a *paired* difference ``dice(method) - dice(scratch)`` per seed. The
estimate is the mean over all (seed, volume) pairs; its 95% interval comes from a bootstrap that resamples test
**subjects** with replacement (a subject's ED and ES volumes, under every seed, move together: they are not
independent of each other, and a volume-level bootstrap would give intervals that are too narrow). An interval
that excludes 0 is a difference larger than this resampling explains; one that includes 0 is called noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sspcmr.study.metrics import BASELINE, read_results
from sspcmr.study.tables import Table, cell_order, markdown, method_order

__all__ = ["PAIR_KEYS", "difference_table", "paired_difference", "paired_differences", "run_volumes"]

PAIR_KEYS: tuple[str, ...] = ("seed", "dataset", "subject", "phase")
"""What pairs a method's test volume with the Baseline's: the same seed and the same volume."""
_SUBJECT = ("dataset", "subject")


def paired_difference(method: pd.DataFrame, baseline: pd.DataFrame, metric: str = "dice_mean",
                      resamples: int = 10000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean paired difference ``method - baseline`` of ``metric`` and its subject-bootstrap interval.

    Args:
        method, baseline: Per-volume test results with the :data:`PAIR_KEYS` columns and ``metric`` (one row
            per seed and test volume, e.g. ``volumes.csv`` of each run with its ``seed``).
        metric: The column compared (NaN pairs are left out).
        resamples: Bootstrap resamples of the test subjects.
        level: Coverage of the interval (percentile bootstrap).
        seed: Seed of the bootstrap.

    Returns:
        ``diff`` (mean over pairs), ``low`` and ``high`` (the interval), ``pairs``, ``subjects`` and ``seeds``.

    Raises:
        ValueError: no volume of ``method`` has a partner in ``baseline``, or a key column is missing.
    """
    keys = list(PAIR_KEYS)
    for name, frame in (("method", method), ("baseline", baseline)):
        missing = [c for c in (*keys, metric) if c not in frame]
        if missing:
            raise ValueError(f"paired difference: the {name} results lack columns {missing}")
    pairs = method[[*keys, metric]].merge(baseline[[*keys, metric]], on=keys, suffixes=("", "_baseline"))
    pairs = pairs.dropna(subset=[metric, f"{metric}_baseline"])
    if pairs.empty:
        raise ValueError("paired difference: no test volume of the method has a partner (same seed, subject and "
                         "phase) in the baseline")
    pairs["difference"] = pairs[metric] - pairs[f"{metric}_baseline"]
    # Per subject: the sum and count of its differences, so a resample's mean is a weighted sum.
    per_subject = pairs.groupby(list(_SUBJECT))["difference"].agg(["sum", "count"])
    sums, counts = per_subject["sum"].to_numpy(), per_subject["count"].to_numpy()
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"diff": float(pairs["difference"].mean()), "low": float(low), "high": float(high),
            "pairs": int(len(pairs)), "subjects": int(len(sums)), "seeds": int(pairs["seed"].nunique())}


def paired_differences(volumes: pd.DataFrame, methods: Sequence[str], metric: str = "dice_mean",
                       resamples: int = 10000, seed: int = 0) -> pd.DataFrame:
    """:func:`paired_difference` of every method against the Baseline, per (variant, subset).

    Args:
        volumes: Per-volume test results of every run: ``variant``, ``method``, ``subset`` (text), the
            :data:`PAIR_KEYS` columns and ``metric``.
        methods: The methods in report order (the Baseline is skipped).
        metric: The compared column.
        resamples, seed: The bootstrap.

    Returns:
        One row per (variant, subset, method) with a Baseline partner: ``variant``, ``subset``, ``method``,
        ``diff``, ``low``, ``high``, ``pairs``, ``subjects``, ``seeds``.
    """
    rows = []
    for (variant, subset), cell in volumes.groupby(["variant", "subset"], sort=False):
        baseline = cell[cell["method"] == BASELINE]
        if baseline.empty:
            continue
        for method in methods:
            runs = cell[cell["method"] == method]
            if method == BASELINE or runs.empty:
                continue
            try:
                result = paired_difference(runs, baseline, metric, resamples=resamples, seed=seed)
            except ValueError:  # no common seed: nothing to pair
                continue
            rows.append({"variant": variant, "subset": subset, "method": method, **result})
    return pd.DataFrame(rows, columns=["variant", "subset", "method", "diff", "low", "high", "pairs", "subjects",
                                       "seeds"])


def run_volumes(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every finished run's per-volume test results (``<dir>/results/volumes.csv``) with its ``variant``,
    ``method``, ``label``, ``subset`` (text) and ``seed``."""
    frames = []
    for record in records:
        volumes = read_results(Path(record["dir"]) / "results" / "volumes.csv")
        if len(volumes):
            frames.append(volumes.assign(variant=record["variant"], method=record["method"], label=record["label"],
                                         subset=str(record["subset"]), seed=int(record["seed"])))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _verdict(low: float, high: float) -> str:
    return "better" if low > 0 else "worse" if high < 0 else "noise"


def difference_table(volumes: pd.DataFrame, resamples: int = 10000) -> Table | None:
    """The report's table of paired differences to the Baseline (mean Dice over LV, MYO and RV); None without
    a method that shares seeds with the Baseline."""
    if volumes.empty:
        return None
    methods = method_order(volumes)
    data = paired_differences(volumes, methods, resamples=resamples)
    if data.empty:
        return None
    labels = dict(zip(volumes["method"], volumes["label"], strict=False))
    data.insert(3, "label", data["method"].map(labels))
    data = cell_order(data, methods)
    data["verdict"] = [_verdict(lo, hi) for lo, hi in zip(data["low"], data["high"], strict=True)]
    rows = [[str(r.variant), str(r.subset), str(r.label), f"{r.diff:+.3f}", f"[{r.low:+.3f}, {r.high:+.3f}]",
             r.verdict, f"{r.pairs} / {r.subjects} / {r.seeds}"] for r in data.itertuples()]
    text = markdown(["Variant", "Labelled subjects", "Method", "Δ Dice vs scratch", "95% interval", "Verdict",
                     "Pairs / subjects / seeds"], rows)
    caption = ("Paired differences of the mean Dice over LV, MYO and RV to the U-Net trained from scratch: per "
               "test volume and seed, the method's run minus scratch's run of the same seed; mean over all pairs, "
               "95% percentile bootstrap over test subjects (a subject's volumes and seeds resampled together). "
               "'noise': the interval contains 0. The interval covers the sampling of test subjects, not the "
               "randomness of training: with a few seeds, a control that differs from scratch only in its random "
               "initialisation can land outside it (about ±0.02 Dice in docs/evidence.md), so differences of "
               "that size are noise whatever the verdict.")
    return Table("differences_to_scratch", "Difference to scratch", caption, data, text)
