"""Per-run test metrics of a study and their aggregation across seeds (the numbers behind the report).

A run's headline number is the paper's: the Dice averaged over the three classes (``dice_mean`` of each test
volume), then over all test volumes, ED and ES together. Runs are aggregated per (variant, method, subset) with
the mean and the *sample* standard deviation (``ddof=1``) across seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sspcmr.study.arguments import VALIDATION_RESULTS
from sspcmr.study.spec import SCRATCH

__all__ = ["BASELINE", "CLASSES", "DEFAULT_VARIANT", "GROUP_KEYS", "METRICS", "aggregate", "read_results",
           "run_metrics"]

CLASSES: tuple[str, ...] = ("LV", "MYO", "RV")
BASELINE = SCRATCH
"""The ``method`` of runs trained from scratch: the reference every table compares with."""
DEFAULT_VARIANT = "default"
GROUP_KEYS: tuple[str, ...] = ("variant", "method", "subset")
"""What :func:`aggregate` groups by: one cell of a table, over seeds."""

METRICS: tuple[str, ...] = (
    "dice_mean", *(f"dice_{c}" for c in CLASSES), *(f"hd95_{c}" for c in CLASSES), "LV_EF_mae", "RV_EF_mae",
    "dice_ED", "dice_ES", "dice_AB", "dice_CD", "dice_E", "dice_in_domain", "dice_out_domain", "val_dice_mean",
)
"""The metric columns of :func:`run_metrics`."""

_COUNTS = ("labelled_subjects", "labelled_slices")
# Constant within a (variant, method, subset) group: copied into the aggregate from its first run.
_DESCRIPTION = ("kind", "label", "variant_kind", "train_phases", "vendors", "augmentation", "lr")

# --------------------------------------------------------------------------------------------------------------
# Per-run metrics


def read_results(path: Path, required: bool = False) -> pd.DataFrame:
    """A results table; missing optional files and files without rows read as an empty table."""
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"study report: {path} does not exist (was `sspcmr test` run?)")
        return pd.DataFrame()
    try:
        # Subject ids such as "001" must stay text; "NA" must not become NaN in the vendor column.
        return pd.read_csv(path, dtype={"subject": str, "vendor": str, "phase": str}, keep_default_na=False,
                           na_values=["", "nan", "NaN"])
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _mean(frame: pd.DataFrame, column: str, rows: pd.Series | None = None) -> float:
    """Mean of ``column`` (NaN excluded) over the selected rows; NaN when the column or the rows are missing."""
    if column not in frame:
        return math.nan
    values = frame[column].astype(float)
    return float(values[rows].mean() if rows is not None else values.mean())


def _in_domain(volumes: pd.DataFrame, record: Mapping[str, Any]) -> pd.Series | None:
    """Which test volumes resemble the training data of a generalisation variant; None for other runs."""
    if record["variant_kind"] == "phase":
        return volumes["phase"].isin(record["train_phases"])
    if record["variant_kind"] == "vendor":
        vendors = record.get("vendors")
        return volumes["vendor"].isin(vendors) if vendors else pd.Series(True, index=volumes.index)
    return None


def _describe(record: Mapping[str, Any]) -> dict[str, object]:
    """The record's identity as flat CSV-friendly values (lists joined with "+")."""
    vendors = record.get("vendors")
    return {
        "id": record["id"], "kind": record["kind"], "method": record["method"], "label": record["label"],
        "variant": record["variant"], "variant_kind": record["variant_kind"], "subset": str(record["subset"]),
        "seed": int(record["seed"]), "labelled_subjects": int(record["labelled_subjects"]),
        "labelled_slices": int(record["labelled_slices"]), "train_phases": "+".join(record["train_phases"]),
        "vendors": "+".join(vendors) if vendors else "all", "augmentation": bool(record["augmentation"]),
        "lr": float(record["lr"]) if record.get("lr") is not None else math.nan, "dir": str(record["dir"]),
    }


def run_metrics(record: Mapping[str, Any]) -> dict[str, object]:
    """The test metrics of one finished run, from ``<record["dir"]>/results/``.

    Args:
        record: One finished run: ``id``, ``kind``, ``method``, ``label``, ``variant``, ``variant_kind``
            (``"default" | "phase" | "vendor" | "augmentation"``), ``subset``, ``labelled_subjects``,
            ``labelled_slices``, ``seed``, ``train_phases`` (list), ``vendors`` (list or None = all),
            ``augmentation`` and ``dir``.

    Returns:
        The record's fields (lists joined with "+", vendors None as ``"all"``), ``n_volumes`` and
        :data:`METRICS`: means over test volumes of ``dice_mean`` and ``dice_<C>``; of ``hd95_<C>`` (NaN
        excluded); ``LV_EF_mae`` / ``RV_EF_mae`` from ``clinical.csv`` (NaN excluded); ``dice_mean`` over the
        ED, ES, vendor A+B, C+D and E volumes (``dice_ED``, ``dice_ES``, ``dice_AB``, ``dice_CD``, ``dice_E``, NaN
        without such volumes); ``val_dice_mean`` over the validation subjects of a learning-rate grid run
        (``validation_results/``, NaN for other runs); and for
        phase / vendor variants over in-domain volumes (phase in ``train_phases`` / vendor in ``vendors``)
        and the others (``dice_in_domain``, ``dice_out_domain``; NaN for other runs).
    """
    results = Path(record["dir"]) / "results"
    volumes = read_results(results / "volumes.csv", required=True)
    clinical = read_results(results / "clinical.csv")
    row = _describe(record)
    row["n_volumes"] = len(volumes)
    for column in ("dice_mean", *(f"dice_{c}" for c in CLASSES), *(f"hd95_{c}" for c in CLASSES)):
        row[column] = _mean(volumes, column)
    for index in ("LV_EF", "RV_EF"):
        row[f"{index}_mae"] = _mean(clinical, f"{index}_abserr")
    for phase in ("ED", "ES"):
        row[f"dice_{phase}"] = _mean(volumes, "dice_mean", volumes["phase"] == phase)
    for vendors in ("AB", "CD", "E"):
        row[f"dice_{vendors}"] = _mean(volumes, "dice_mean", volumes["vendor"].isin(list(vendors)))
    validation = read_results(results.parent / VALIDATION_RESULTS / "volumes.csv")
    row["val_dice_mean"] = _mean(validation, "dice_mean") if not validation.empty else math.nan
    inside = _in_domain(volumes, record)
    row["dice_in_domain"] = math.nan if inside is None else _mean(volumes, "dice_mean", inside)
    row["dice_out_domain"] = math.nan if inside is None else _mean(volumes, "dice_mean", ~inside)
    return row


# --------------------------------------------------------------------------------------------------------------
# Aggregation across seeds


def aggregate(metrics: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and sample standard deviation across seeds of each (variant, method, subset).

    Args:
        metrics: One row per run (:func:`run_metrics`), e.g. ``runs.csv`` read back.
        columns: The numeric columns to aggregate; default: :data:`METRICS`, ``labelled_subjects`` and
            ``labelled_slices`` where present.

    Returns:
        One row per group, in order of first appearance: ``variant``, ``method``, ``subset`` (text), the
        descriptive columns of its first run (``kind``, ``label``, ``variant_kind``, ...), ``n_seeds`` (runs)
        and ``<column>_mean``, ``<column>_std`` (``ddof=1``: NaN with a single seed; NaN values excluded).
    """
    if columns is None:
        columns = [c for c in (*METRICS, *_COUNTS) if c in metrics]
    # runs.csv read back parses "10" as a number; "all" keeps the column textual, so compare as text.
    frame = metrics.assign(subset=metrics["subset"].astype(str)) if "subset" in metrics else metrics
    rows = []
    for key, group in frame.groupby(list(GROUP_KEYS), sort=False):
        row: dict[str, object] = dict(zip(GROUP_KEYS, key, strict=True))
        row.update({c: group[c].iloc[0] for c in _DESCRIPTION if c in group})
        row["n_seeds"] = len(group)
        for column in columns:
            values = group[column].astype(float)
            row[f"{column}_mean"] = float(values.mean())
            row[f"{column}_std"] = float(values.std(ddof=1))
        rows.append(row)
    names = [*GROUP_KEYS, *(c for c in _DESCRIPTION if c in frame), "n_seeds",
             *(f"{c}_{s}" for c in columns for s in ("mean", "std"))]
    return pd.DataFrame(rows, columns=names)
