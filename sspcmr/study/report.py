"""The report of an ``sspcmr study``: the paper's tables and figures from the per-run metrics and their
aggregates across seeds (:mod:`sspcmr.study.metrics`).

Input: one record per finished fine-tuning or scratch run (see :func:`~sspcmr.study.metrics.run_metrics` for its
keys), whose ``<dir>/results/`` holds what ``sspcmr test`` wrote (:mod:`sspcmr.evaluation.volume`).

:func:`write_report` writes into one folder, each file atomically:

* ``runs.csv``: :func:`run_metrics` of every run;
* ``table1_dice``: mean Dice per method and number of labelled subjects (default variant);
* ``per_class_dice``, ``hd95``, ``ef_error``: per class / per ventricle (default variant);
* ``table2_phase``, ``table3_vendor``: generalisation to the unseen cardiac phase / vendors;
* ``table4_augmentation``: training with and without data augmentation;
* each table as ``.csv`` (numbers) and ``.md`` (formatted ``mean ± std``);
* ``dice_vs_subjects.png``, ``dice_by_position.png`` and ``report.md``, which gathers everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sspcmr.data.atomic import atomic_write_bytes
from sspcmr.evaluation.summary import dice_by_slice_position
from sspcmr.study.metrics import (
    BASELINE,
    CLASSES,
    DEFAULT_VARIANT,
    METRICS,
    aggregate,
    read_results,
    run_metrics,
)
from sspcmr.study.plots import Line, plot_dice_by_position_per_method, plot_dice_vs_subjects

__all__ = ["METRICS", "aggregate", "format_cell", "run_metrics", "write_report"]

_DASH = "–"  # an empty cell: no run, or no finite value


# --------------------------------------------------------------------------------------------------------------
# Formatting


def format_cell(mean: float, std: float, digits: int) -> str:
    """``"0.823 ± 0.012"``; only the mean when ``std`` is NaN (one seed); a dash when ``mean`` is NaN."""
    if not math.isfinite(mean):
        return _DASH
    text = f"{mean:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if math.isfinite(std) else text


def _bold(text: str) -> str:
    return f"**{text}**"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _subset_key(subset: str) -> tuple[int, int]:
    """Subsets sort numerically, "all" last."""
    return (1, 0) if subset == "all" else (0, int(subset))


def _count(value: float) -> str:
    """An average count: an integer when it is one (equal across seeds), else one decimal."""
    if not math.isfinite(value):
        return _DASH
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


@dataclass(frozen=True)
class Table:
    """One report table: ``data`` is written as ``<name>.csv``, ``title``, ``caption`` and ``markdown`` as
    ``<name>.md``, and all of them go into ``report.md``."""

    name: str
    title: str
    caption: str
    data: pd.DataFrame
    markdown: str

    def text(self) -> str:
        return f"**{self.title}.** {self.caption}\n\n{self.markdown}\n"


def _sorted(frame: pd.DataFrame, methods: Sequence[str], first: Sequence[str] = ()) -> pd.DataFrame:
    """Rows by ``first`` columns (in order of appearance), then method (``methods`` order), then subset."""
    keys = [frame[c].map({v: i for i, v in enumerate(frame[c].unique())}) for c in first]
    order = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)}, index=frame.index)
    order["method"] = frame["method"].map({m: i for i, m in enumerate(methods)})
    order["subset"] = frame["subset"].map(_subset_key)
    return frame.loc[order.sort_values(list(order.columns), kind="stable").index]


def _method_order(metrics: pd.DataFrame) -> list[str]:
    """The Baseline first, then the other methods in order of first appearance."""
    methods = list(dict.fromkeys(metrics["method"]))
    return sorted(methods, key=lambda m: m != BASELINE)  # stable: keeps the appearance order otherwise


def _numbers(rows: pd.DataFrame, metrics: Sequence[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    """The CSV of a table: identity, ``n_seeds`` and each metric's mean and std."""
    columns = [*extra, "variant", "method", "label", "subset", "n_seeds",
               *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))]
    return rows[columns].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# Tables


def _table1(aggregated: pd.DataFrame, metrics: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    """Mean Dice per method (rows) and labelled subjects (columns); bold: the largest positive gain."""
    rows = _sorted(aggregated[aggregated["variant"] == DEFAULT_VARIANT], methods)
    if rows.empty:
        return None
    runs = metrics[metrics["variant"] == DEFAULT_VARIANT]
    slices = runs.groupby(runs["subset"].astype(str))["labelled_slices"].mean()
    baseline = rows[rows["method"] == BASELINE].set_index("subset")["dice_mean_mean"]
    data = pd.DataFrame({
        "method": rows["method"], "label": rows["label"], "subset": rows["subset"],
        "mean": rows["dice_mean_mean"], "std": rows["dice_mean_std"], "n_seeds": rows["n_seeds"],
    }).reset_index(drop=True)
    data["gain_over_baseline"] = data["mean"] - data["subset"].map(baseline).astype(float)
    data["labelled_slices_mean"] = data["subset"].map(slices).astype(float)
    best = data.groupby("subset")["gain_over_baseline"].transform("max")
    # Only a real improvement is bold: the Baseline's own gain is 0 and NaN (no Baseline) never compares true.
    data["best"] = (data["method"] != BASELINE) & (data["gain_over_baseline"] > 0) & (
        data["gain_over_baseline"] == best)

    subsets = sorted(data["subset"].unique(), key=_subset_key)
    cells = {}
    for r in data.itertuples():
        cell = format_cell(r.mean, r.std, 3)
        cells[(r.method, r.subset)] = _bold(cell) if r.best else cell
    labels = dict(zip(data["method"], data["label"], strict=True))
    body = [["*labelled slices*", *(_count(slices.get(s, math.nan)) for s in subsets)]]
    body += [[labels[m], *(cells.get((m, s), _DASH) for s in subsets)] for m in dict.fromkeys(data["method"])]
    caption = ("Mean Dice over LV, MYO and RV and all test volumes (ED and ES) when fine-tuning on the number of "
               "labelled subjects in the column header (± sample std across seeds; *labelled slices*: labelled "
               "2D training images, averaged over seeds). Bold: the largest gain over the Baseline (training "
               "from scratch) in each column, when there is one.")
    return Table("table1_dice", "Table 1: Dice against the number of labelled subjects", caption, data,
                 _markdown(["Method", *subsets], body))


@dataclass(frozen=True)
class _Columns:
    """A method x subset table of a few metrics: headers, ``METRICS`` names and decimals."""

    name: str
    title: str
    caption: str
    headers: tuple[str, ...]
    metrics: tuple[str, ...]
    digits: int


_CLASS_TABLES = (
    _Columns("per_class_dice", "Dice per class", "Mean Dice of each class over all test volumes (ED and ES), "
             "± sample std across seeds.", CLASSES, tuple(f"dice_{c}" for c in CLASSES), 3),
    _Columns("hd95", "HD95 per class (mm)", "Mean 95th-percentile Hausdorff distance in mm over the test volumes "
             "where it is defined, ± sample std across seeds; lower is better.", CLASSES,
             tuple(f"hd95_{c}" for c in CLASSES), 1),
    _Columns("ef_error", "Ejection fraction error (%)", "Mean absolute error of the left and right ventricular "
             "ejection fraction in percentage points over the test subjects, ± sample std across seeds; lower "
             "is better.", ("LV EF", "RV EF"), ("LV_EF_mae", "RV_EF_mae"), 1),
)


def _class_table(aggregated: pd.DataFrame, methods: Sequence[str], spec: _Columns) -> Table | None:
    rows = _sorted(aggregated[aggregated["variant"] == DEFAULT_VARIANT], methods)
    if rows.empty:
        return None
    body = [[r["label"], r["subset"], *(format_cell(r[f"{m}_mean"], r[f"{m}_std"], spec.digits)
                                        for m in spec.metrics)] for _, r in rows.iterrows()]
    return Table(spec.name, spec.title, spec.caption, _numbers(rows, spec.metrics),
                 _markdown(["Method", "Subjects", *spec.headers], body))


_DOMAIN_METRICS = ("dice_mean", "dice_in_domain", "dice_out_domain")


def _generalisation_table(
    aggregated: pd.DataFrame, methods: Sequence[str], kind: str, column: str, header: str,
    name: str, title: str, caption: str,
) -> Table | None:
    """Overall, in-domain and out-of-domain Dice of the ``kind`` variants; bold: beats its Baseline."""
    rows = _sorted(aggregated[aggregated["variant_kind"] == kind], methods, first=("variant",))
    if rows.empty:
        return None
    baselines = {(r["variant"], r["subset"]): r for _, r in rows[rows["method"] == BASELINE].iterrows()}
    show_subset = rows["subset"].nunique() > 1  # the paper's tables use one subset: no column for it then
    body = []
    for _, r in rows.iterrows():
        reference = baselines.get((r["variant"], r["subset"]))
        cells = []
        for metric in _DOMAIN_METRICS:
            cell = format_cell(r[f"{metric}_mean"], r[f"{metric}_std"], 3)
            # NaN compares false: no bold without a Baseline value.
            better = reference is not None and r["method"] != BASELINE and (
                r[f"{metric}_mean"] > reference[f"{metric}_mean"])
            cells.append(_bold(cell) if better else cell)
        body.append([_group_label(r[column]), *([r["subset"]] if show_subset else []), r["label"], *cells])
    headers = [header, *(["Subjects"] if show_subset else []), "Method", "Overall", "In-domain", "Out-of-domain"]
    data = _numbers(rows, _DOMAIN_METRICS, extra=[column])
    return Table(name, title, caption, data, _markdown(headers, body))


def _group_label(value: str) -> str:
    return "all" if value == "all" else str(value).replace("+", " + ")


def _table2(aggregated: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    caption = ("Mean Dice (± sample std across seeds) when training on the cardiac phase(s) in the first column: "
               "over all test volumes, over the volumes of the training phase(s) (in-domain) and of the other "
               "phase (out-of-domain). Bold: better than the Baseline trained on the same phases.")
    return _generalisation_table(aggregated, methods, "phase", "train_phases", "Training phases", "table2_phase",
                                 "Table 2: Generalisation across cardiac phases", caption)


def _table3(aggregated: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    caption = ("Mean Dice (± sample std across seeds) when training on the vendors in the first column: over all "
               "test volumes, over the volumes of the training vendors (in-domain) and of the other vendors "
               "(out-of-domain). Bold: better than the Baseline trained on the same vendors.")
    return _generalisation_table(aggregated, methods, "vendor", "vendors", "Training vendors", "table3_vendor",
                                 "Table 3: Generalisation across scanner vendors", caption)


_AUGMENTATION_METRICS = ("dice_ED", "dice_ES", "dice_AB", "dice_CD", "dice_mean")


def _table4(aggregated: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    """Each method trained without augmentation next to the same method and subset with it (default variant)."""
    without = _sorted(aggregated[aggregated["variant_kind"] == "augmentation"], methods)
    if without.empty:
        return None
    default = aggregated[aggregated["variant"] == DEFAULT_VARIANT]
    rows: list[pd.Series] = []
    training: list[str] = []
    paired: set[tuple[str, str]] = set()  # several augmentation variants share one "with" row
    for _, r in without.iterrows():
        match = default[(default["method"] == r["method"]) & (default["subset"] == r["subset"])]
        if len(match) and (r["method"], r["subset"]) not in paired:
            paired.add((r["method"], r["subset"]))
            rows.append(match.iloc[0])
            training.append("with augmentation")
        rows.append(r)
        training.append("without augmentation")
    table = pd.DataFrame(rows).reset_index(drop=True)
    table.insert(0, "training", training)
    body = [[r["label"], r["training"], *(format_cell(r[f"{m}_mean"], r[f"{m}_std"], 3)
                                          for m in _AUGMENTATION_METRICS)] for _, r in table.iterrows()]
    caption = ("Mean Dice (± sample std across seeds) of each method trained with and without data augmentation "
               "on the same labelled subjects, on the ED and ES volumes, on the volumes of vendors A + B and "
               "C + D, and overall.")
    headers = ["Method", "Training", "ED", "ES", "Vendors A + B", "Vendors C + D", "Overall"]
    return Table("table4_augmentation", "Table 4: Effect of data augmentation", caption,
                 _numbers(table, _AUGMENTATION_METRICS, extra=["training"]), _markdown(headers, body))


# --------------------------------------------------------------------------------------------------------------
# Figures


def _subjects_lines(aggregated: pd.DataFrame, metrics: pd.DataFrame, methods: Sequence[str]) -> list[Line]:
    """Default variant: mean Dice ± std against the mean labelled subjects of each subset, one line per method."""
    rows = _sorted(aggregated[aggregated["variant"] == DEFAULT_VARIANT], methods)
    runs = metrics[metrics["variant"] == DEFAULT_VARIANT]
    # One x per subset for every method, so "all" is drawn at its real subject count and the lines align.
    subjects = runs.groupby(runs["subset"].astype(str))["labelled_subjects"].mean()
    return [Line(str(part["label"].iloc[0]), [float(subjects[s]) for s in part["subset"]],
                 part["dice_mean_mean"].tolist(), part["dice_mean_std"].tolist())
            for _, part in rows.groupby("method", sort=False)]


def _smallest_default_subset(metrics: pd.DataFrame) -> str | None:
    subsets = metrics.loc[metrics["variant"] == DEFAULT_VARIANT, "subset"].astype(str).unique()
    return min(subsets, key=_subset_key) if len(subsets) else None


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
        methods = [m for m in _method_order(metrics) if m in set(part["method"])]
        body.append([str(variant), str(part["variant_kind"].iloc[0]), str(len(part)),
                     ", ".join(labels[m] for m in methods),
                     ", ".join(sorted(part["subset"].astype(str).unique(), key=_subset_key))])
    ids = "\n".join(f"- `{run}`" for run in metrics["id"])
    return (f"{len(metrics)} finished runs (per-run metrics: [runs.csv](runs.csv)).\n\n"
            + _markdown(["Variant", "Kind", "Runs", "Methods", "Subjects"], body)
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


_TABLES: tuple[Callable[[pd.DataFrame, Sequence[str]], Table | None], ...] = (_table2, _table3, _table4)


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
    metrics = pd.DataFrame([run_metrics(r) for r in records])
    paths = [_write_csv(out / "runs.csv", metrics)]
    tables: list[Table] = []
    if not metrics.empty:
        methods = _method_order(metrics)
        aggregated = aggregate(metrics)
        tables += [_table1(aggregated, metrics, methods)]
        tables += [_class_table(aggregated, methods, spec) for spec in _CLASS_TABLES]
        tables += [build(aggregated, methods) for build in _TABLES]
        tables = [t for t in tables if t is not None]
        figures = _figures(aggregated, metrics, methods, out)
    else:
        figures = []
    for table in tables:
        paths.append(_write_csv(out / f"{table.name}.csv", table.data))
        paths.append(_write_text(out / f"{table.name}.md", table.text()))
    paths += figures
    paths.append(_write_text(out / "report.md", _report_markdown(metrics, tables, figures, partial)))
    return paths
