"""The tables of a study report (:mod:`sspcmr.study.report`), after the paper's: Table 1 (Dice against the
number of labelled subjects), per-class Dice, HD95 and EF error, Tables 2-3 (generalisation to unseen phases and
vendors) and Table 4 (training without augmentation). Each is a CSV of numbers and a Markdown rendering with
``mean ± std`` cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sspcmr.study.metrics import BASELINE, CLASSES, DEFAULT_VARIANT

__all__ = ["Table", "cell_order", "format_cell", "markdown", "method_order", "sorted_rows", "study_tables",
           "subset_key"]

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


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def subset_key(subset: str) -> tuple[int, int]:
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


def sorted_rows(frame: pd.DataFrame, methods: Sequence[str], first: Sequence[str] = ()) -> pd.DataFrame:
    """Rows by ``first`` columns (in order of appearance), then method (``methods`` order), then subset."""
    keys = [frame[c].map({v: i for i, v in enumerate(frame[c].unique())}) for c in first]
    order = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)}, index=frame.index)
    order["method"] = frame["method"].map({m: i for i, m in enumerate(methods)})
    order["subset"] = frame["subset"].map(subset_key)
    return frame.loc[order.sort_values(list(order.columns), kind="stable").index]


def cell_order(frame: pd.DataFrame, methods: Sequence[str], variants: Sequence[str] | None = None,
               then: Sequence[str] = ()) -> pd.DataFrame:
    """Rows by variant (``variants`` order, default: order of appearance), subset size, method (``methods``
    order), then the ``then`` columns; the index is reset."""
    variants = list(dict.fromkeys(frame["variant"])) if variants is None else list(variants)
    keys = frame.assign(_v=frame["variant"].map({v: i for i, v in enumerate(variants)}),
                        _s=frame["subset"].map(subset_key),
                        _m=frame["method"].map({m: i for i, m in enumerate(methods)}))
    ordered = keys.sort_values(["_v", "_s", "_m", *then], kind="stable")
    return ordered.drop(columns=["_v", "_s", "_m"]).reset_index(drop=True)


def method_order(metrics: pd.DataFrame) -> list[str]:
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
    rows = sorted_rows(aggregated[aggregated["variant"] == DEFAULT_VARIANT], methods)
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

    subsets = sorted(data["subset"].unique(), key=subset_key)
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
                 markdown(["Method", *subsets], body))


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
    rows = sorted_rows(aggregated[aggregated["variant"] == DEFAULT_VARIANT], methods)
    if rows.empty:
        return None
    body = [[r["label"], r["subset"], *(format_cell(r[f"{m}_mean"], r[f"{m}_std"], spec.digits)
                                        for m in spec.metrics)] for _, r in rows.iterrows()]
    return Table(spec.name, spec.title, spec.caption, _numbers(rows, spec.metrics),
                 markdown(["Method", "Subjects", *spec.headers], body))


@dataclass(frozen=True)
class _Generalisation:
    """A Table 2/3 style table: the variant kind it shows and the run column that names the training domain."""

    kind: str
    column: str
    header: str
    name: str
    title: str
    caption: str


_GENERALISATION_TABLES = (
    _Generalisation("phase", "train_phases", "Training phases", "table2_phase",
                    "Table 2: Generalisation across cardiac phases",
                    "Mean Dice (± sample std across seeds) when training on the cardiac phase(s) in the first "
                    "column: over all test volumes, over the volumes of the training phase(s) (in-domain) and of "
                    "the other phase (out-of-domain). Bold: better than the Baseline trained on the same phases."),
    _Generalisation("vendor", "vendors", "Training vendors", "table3_vendor",
                    "Table 3: Generalisation across scanner vendors",
                    "Mean Dice (± sample std across seeds) when training on the vendors in the first column: over "
                    "all test volumes, over the volumes of the training vendors (in-domain) and of the other "
                    "vendors (out-of-domain). Bold: better than the Baseline trained on the same vendors."),
)


_DOMAIN_METRICS = ("dice_mean", "dice_in_domain", "dice_out_domain")


def _generalisation_table(aggregated: pd.DataFrame, methods: Sequence[str], spec: _Generalisation) -> Table | None:
    """Overall, in-domain and out-of-domain Dice of the ``spec.kind`` variants; bold: beats its Baseline."""
    column = spec.column
    rows = sorted_rows(aggregated[aggregated["variant_kind"] == spec.kind], methods, first=("variant",))
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
    headers = [spec.header, *(["Subjects"] if show_subset else []), "Method", "Overall", "In-domain",
               "Out-of-domain"]
    data = _numbers(rows, _DOMAIN_METRICS, extra=[column])
    return Table(spec.name, spec.title, spec.caption, data, markdown(headers, body))


def _group_label(value: str) -> str:
    return "all" if value == "all" else str(value).replace("+", " + ")


_AUGMENTATION_METRICS = ("dice_ED", "dice_ES", "dice_AB", "dice_CD", "dice_mean")


def _table4(aggregated: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    """Each method trained without augmentation next to the same method and subset with it (default variant)."""
    without = sorted_rows(aggregated[aggregated["variant_kind"] == "augmentation"], methods)
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
                 _numbers(table, _AUGMENTATION_METRICS, extra=["training"]), markdown(headers, body))


def study_tables(aggregated: pd.DataFrame, metrics: pd.DataFrame, methods: Sequence[str]) -> list[Table]:
    """Every table the runs allow: Table 1, per-class Dice, HD95, EF error, Tables 2-4 (absent without such runs)."""
    tables = [_table1(aggregated, metrics, methods)]
    tables += [_class_table(aggregated, methods, spec) for spec in _CLASS_TABLES]
    tables += [_generalisation_table(aggregated, methods, spec) for spec in _GENERALISATION_TABLES]
    tables.append(_table4(aggregated, methods))
    return [table for table in tables if table is not None]
