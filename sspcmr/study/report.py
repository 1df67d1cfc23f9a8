"""The report of an ``sspcmr study``: the paper's tables and figures from the per-run metrics and their
aggregates across seeds (:mod:`sspcmr.study.metrics`).

Input: one record per finished fine-tuning or scratch run (see :func:`~sspcmr.study.metrics.run_metrics` for its
keys), whose ``<dir>/results/`` holds what ``sspcmr test`` wrote (:mod:`sspcmr.evaluation.volume`).

:func:`write_report` writes into one folder, each file atomically:

* ``runs.csv``: :func:`run_metrics` of every run;
* ``table1_dice``: mean Dice per method and number of labelled subjects (default variant);
* ``differences_to_scratch``: paired differences to scratch with subject-bootstrap 95% intervals
  (:mod:`sspcmr.study.paired`);
* ``per_class_dice``, ``hd95``, ``ef_error``: per class / per ventricle (default variant);
* ``table2_phase``, ``table3_vendor``: generalisation to the unseen cardiac phase / vendors;
* ``table4_augmentation``: training with and without data augmentation;
* ``per_vendor_dice``: mean Dice per test vendor (default variant), e.g. an unseen vendor on its own;
* ``learning_rate_selection``: with a learning-rate grid, the validation Dice of every rate and the one kept
  (:mod:`sspcmr.study.selection`); ``runs.csv`` then says which runs were kept (``kept``);
* each table as ``.csv`` (numbers) and ``.md`` (formatted ``mean ± std``);
* ``dice_vs_subjects.png``, ``dice_by_position.png`` and ``report.md``, which gathers everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sspcmr.data.atomic import atomic_write_bytes
from sspcmr.evaluation.charts import Line
from sspcmr.evaluation.summary import dice_by_slice_position
from sspcmr.study.metrics import (
    CLASSES,
    DEFAULT_VARIANT,
    METRICS,
    aggregate,
    read_results,
    run_metrics,
)
from sspcmr.study.paired import difference_table, run_volumes
from sspcmr.study.plots import plot_dice_by_position_per_method, plot_dice_vs_subjects
from sspcmr.study.selection import select_learning_rates
from sspcmr.study.tables import Table, format_cell, markdown, method_order, sorted_rows, study_tables, subset_key
from sspcmr.study.vendors import vendor_table

__all__ = ["METRICS", "aggregate", "format_cell", "run_metrics", "write_report"]


# --------------------------------------------------------------------------------------------------------------
# Figures


def _subjects_lines(aggregated: pd.DataFrame, metrics: pd.DataFrame, methods: Sequence[str]) -> list[Line]:
    """Default variant: mean Dice ± std against the mean labelled subjects of each subset, one line per method."""
    rows = sorted_rows(aggregated[aggregated["variant"] == DEFAULT_VARIANT], methods)
    runs = metrics[metrics["variant"] == DEFAULT_VARIANT]
    # One x per subset for every method, so "all" is drawn at its real subject count and the lines align.
    subjects = runs.groupby(runs["subset"].astype(str))["labelled_subjects"].mean()
    return [Line(str(part["label"].iloc[0]), [float(subjects[s]) for s in part["subset"]],
                 part["dice_mean_mean"].tolist(), part["dice_mean_std"].tolist())
            for _, part in rows.groupby("method", sort=False)]


def _smallest_default_subset(metrics: pd.DataFrame) -> str | None:
    subsets = metrics.loc[metrics["variant"] == DEFAULT_VARIANT, "subset"].astype(str).unique()
    return min(subsets, key=subset_key) if len(subsets) else None


def _position_lines(metrics: pd.DataFrame, methods: Sequence[str], subset: str) -> list[Line]:
    """Mean Dice over LV/MYO/RV per slice-position bin inside [0, 1], slices of all seeds pooled, per method."""
    runs = metrics[(metrics["variant"] == DEFAULT_VARIANT) & (metrics["subset"].astype(str) == subset)]
    lines = []
    for method in [m for m in methods if m in set(runs["method"])]:
        part = runs[runs["method"] == method]
        slices = [read_results(Path(d) / "results" / "slices.csv") for d in part["dir"]]
        slices = [s for s in slices if len(s)]
        if not slices:
            continue
        bins = dice_by_slice_position(pd.concat(slices, ignore_index=True))
        bins = bins[bins["center"].notna()]  # drop the bins beyond the base / apex
        dice = bins[[f"dice_{c}_mean" for c in CLASSES]].to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            mean = np.nanmean(dice, axis=1) if len(dice) else np.array([])
        lines.append(Line(str(part["label"].iloc[0]), bins["center"].tolist(), mean.tolist()))
    return lines


def _figures(aggregated: pd.DataFrame, metrics: pd.DataFrame, methods: Sequence[str], out: Path) -> list[Path]:
    """The two PNGs; each is left out when there is nothing to draw."""
    paths = []
    lines = _subjects_lines(aggregated, metrics, methods)
    if lines:
        paths.append(plot_dice_vs_subjects(lines, out / "dice_vs_subjects.png",
                                           "Mean Dice against labelled subjects (± std across seeds)"))
    subset = _smallest_default_subset(metrics)
    position = _position_lines(metrics, methods, subset) if subset is not None else []
    if position:
        paths.append(plot_dice_by_position_per_method(
            position, out / "dice_by_position.png",
            f"Mean Dice against slice position, {subset} labelled subjects (seeds pooled)"))
    return paths


# --------------------------------------------------------------------------------------------------------------
# Writing


def _write_text(path: Path, text: str) -> Path:
    atomic_write_bytes(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    atomic_write_bytes(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path


def _runs_section(metrics: pd.DataFrame) -> str:
    """The number of runs per variant, and their ids (folded)."""
    if metrics.empty:
        return "No finished runs yet.\n"
    labels = dict(zip(metrics["method"], metrics["label"], strict=False))
    body = []
    for variant, part in metrics.groupby("variant", sort=False):
        methods = [m for m in method_order(metrics) if m in set(part["method"])]
        body.append([str(variant), str(part["variant_kind"].iloc[0]), str(len(part)),
                     ", ".join(labels[m] for m in methods),
                     ", ".join(sorted(part["subset"].astype(str).unique(), key=subset_key))])
    ids = "\n".join(f"- `{run}`" for run in metrics["id"])
    return (f"{len(metrics)} finished runs (per-run metrics: [runs.csv](runs.csv)).\n\n"
            + markdown(["Variant", "Kind", "Runs", "Methods", "Subjects"], body)
            + f"\n\n<details><summary>Run ids</summary>\n\n{ids}\n\n</details>\n")


def _report_markdown(metrics: pd.DataFrame, tables: Sequence[Table], figures: Sequence[Path], partial: bool) -> str:
    parts = ["# Study report\n"]
    if partial:
        parts.append("> **Partial results:** not every run of the study has finished; the tables and figures "
                     "below cover only the finished runs and may change.\n")
    parts += ["## Runs\n", _runs_section(metrics)]
    if tables:
        parts.append("## Tables\n")
        parts += [table.text() for table in tables]
    captions = {"dice_vs_subjects.png": "Mean Dice against the number of labelled subjects (log scale), "
                                        "± sample std across seeds, default training.",
                "dice_by_position.png": "Mean Dice over LV, MYO and RV against the relative slice position "
                                        "(0 = base, 1 = apex) for the smallest labelled subset, seeds pooled."}
    if figures:
        parts.append("## Figures\n")
        parts += [f"![{captions[p.name]}]({p.name})\n\n*{captions[p.name]}*\n" for p in figures]
    return "\n".join(parts)


def write_report(records: Sequence[Mapping[str, Any]], out_dir: str | Path, partial: bool = False) -> list[Path]:
    """Per-run metrics, the tables (CSV + Markdown), the figures and ``report.md`` of a study.

    Args:
        records: One per finished fine-tuning or scratch run (see :func:`run_metrics`).
        out_dir: Output folder, created if needed; every file is written atomically.
        partial: Not every run has finished: ``report.md`` says so.

    Returns:
        The written paths: ``runs.csv``, each table's ``.csv`` and ``.md``, the PNGs, ``report.md``.
        Tables 2-4 are absent when the study has no phase / vendor / augmentation runs.
    """
    ids = [r["id"] for r in records]
    if len(ids) != len(set(ids)):
        raise ValueError(f"study report: duplicate run ids in {sorted(i for i in ids if ids.count(i) > 1)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    every_run = pd.DataFrame([run_metrics(r) for r in records])
    metrics, selection = select_learning_rates(every_run) if not every_run.empty else (every_run, None)
    if selection is not None:
        every_run = every_run.assign(kept=every_run["id"].isin(set(metrics["id"])))
    paths = [_write_csv(out / "runs.csv", every_run)]
    tables: list[Table] = []
    if not metrics.empty:
        kept = set(metrics["id"])
        methods = method_order(metrics)
        aggregated = aggregate(metrics)
        tables = study_tables(aggregated, metrics, methods)
        volumes = run_volumes([r for r in records if r["id"] in kept])
        differences = difference_table(volumes)
        if differences is not None:
            tables.insert(1, differences)
        per_vendor = vendor_table(volumes)
        if per_vendor is not None:
            tables.append(per_vendor)
        if selection is not None:
            tables.append(selection)
        figures = _figures(aggregated, metrics, methods, out)
    else:
        figures = []
    for table in tables:
        paths.append(_write_csv(out / f"{table.name}.csv", table.data))
        paths.append(_write_text(out / f"{table.name}.md", table.text()))
    paths += figures
    paths.append(_write_text(out / "report.md", _report_markdown(metrics, tables, figures, partial)))
    return paths
