"""Summary tables of per-volume metrics and clinical errors, and Dice against slice position.

Statistics are taken **across volumes** as in the reference (docs/reference.md#evaluation-dice): mean, standard
deviation (pandas, ``ddof=1``), median, skew, kurtosis and the quantiles :data:`QUANTILES` (pandas' linear
interpolation).

Missing surface distances (NaN, a structure present in exactly one of prediction and ground truth, see
:mod:`sspcmr.evaluation.metrics`) are always counted in ``n_missing``. By default the statistics exclude them;
``missing_penalty="diagonal"`` substitutes each volume's field-of-view diagonal (column ``diagonal_mm``) and a
float substitutes that constant, so a missed structure can only worsen the summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sspcmr.evaluation.charts import Line, line_chart
from sspcmr.evaluation.clinical import INDICES
from sspcmr.evaluation.label_maps import CLASS_NAMES
from sspcmr.evaluation.metrics import VolumeMetrics

__all__ = [
    "GROUPINGS",
    "QUANTILES",
    "clinical_summary",
    "dice_by_slice_position",
    "plot_dice_by_position",
    "summary_tables",
    "volume_summary",
    "volume_table",
    "write_tables",
]

QUANTILES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
"""Quantiles of the reference's summary tables."""

GROUPINGS: tuple[str, ...] = ("phase", "vendor", "pathology")
"""Columns :func:`summary_tables` groups by, besides the overall table."""

_NAMES = tuple(CLASS_NAMES.values())
_DICE = tuple(f"dice_{name}" for name in _NAMES)
_SURFACE = tuple(f"{metric}_{name}" for metric in ("hd95", "assd") for name in _NAMES)
METRICS: tuple[str, ...] = (*_DICE, "dice_mean", *_SURFACE)


def volume_table(metrics: Iterable[VolumeMetrics]) -> pd.DataFrame:
    """Per-volume table, one row per (subject, phase), from :class:`VolumeMetrics` objects.

    Args:
        metrics: Results of :func:`sspcmr.evaluation.metrics.evaluate_volume`.

    Returns:
        Columns of :meth:`VolumeMetrics.to_row`.
    """
    return pd.DataFrame([m.to_row() for m in metrics])


def _stats(values: pd.Series) -> dict[str, float]:
    stats = {
        "mean": values.mean(), "std": values.std(ddof=1), "median": values.median(),
        "skew": values.skew(), "kurtosis": values.kurt(),
    }
    stats.update({f"q{q:g}": values.quantile(q) for q in QUANTILES})
    return {key: float(value) for key, value in stats.items()}


def _penalised(table: pd.DataFrame, column: str, missing_penalty: str | float | None) -> pd.Series:
    values = table[column].astype(float)
    if missing_penalty is None or column not in _SURFACE:
        return values
    if missing_penalty == "diagonal":
        if "diagonal_mm" not in table:
            raise ValueError('missing_penalty="diagonal" needs a "diagonal_mm" column in the table')
        return values.fillna(table["diagonal_mm"].astype(float))
    if isinstance(missing_penalty, str):
        raise ValueError(f'missing_penalty must be None, "diagonal" or a float, got {missing_penalty!r}')
    return values.fillna(float(missing_penalty))


def volume_summary(
    table: pd.DataFrame, by: str | Sequence[str] | None = None, missing_penalty: str | float | None = None
) -> pd.DataFrame:
    """Statistics of every metric column across volumes, optionally per group.

    Args:
        table: Per-volume table (see :func:`volume_table`); metric columns that are absent are skipped.
        by: Column(s) to group by (e.g. ``"phase"``); None for one overall group. Missing keys form their own
            group.
        missing_penalty: What the statistics do with missing surface distances: None excludes them,
            ``"diagonal"`` uses the volume's ``diagonal_mm``, a float uses that value. ``n_missing`` always
            counts them. Dice is never missing (empty rules of docs/reference.md#evaluation-dice).

    Returns:
        One row per (group, metric): the group columns, ``metric``, ``n`` (volumes), ``n_missing``, ``mean``,
        ``std``, ``median``, ``skew``, ``kurtosis`` and ``q0 ... q1``.
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    for key in keys:
        if key not in table:
            raise ValueError(f"by: column {key!r} is not in the table")
    columns = [c for c in METRICS if c in table]
    groups = table.groupby(keys, dropna=False, sort=True) if keys else [((), table)]
    rows = []
    for group, frame in groups:
        group_values = group if isinstance(group, tuple) else (group,)
        for column in columns:
            row: dict[str, object] = dict(zip(keys, group_values, strict=True))
            row.update({"metric": column, "n": len(frame), "n_missing": int(frame[column].isna().sum())})
            row.update(_stats(_penalised(frame, column, missing_penalty)))
            rows.append(row)
    return pd.DataFrame(rows)


def summary_tables(table: pd.DataFrame, missing_penalty: str | float | None = None) -> dict[str, pd.DataFrame]:
    """The overall summary and one per grouping column present in the table.

    Args:
        table: Per-volume table.
        missing_penalty: See :func:`volume_summary`.

    Returns:
        ``{"overall": ..., "by_phase": ..., "by_vendor": ..., "by_pathology": ...}`` (groupings whose column is
        absent are left out).
    """
    tables = {"overall": volume_summary(table, None, missing_penalty)}
    for key in GROUPINGS:
        if key in table:
            tables[f"by_{key}"] = volume_summary(table, key, missing_penalty)
    return tables


def clinical_summary(rows: pd.DataFrame | Iterable[Mapping[str, object]], by: str | None = None) -> pd.DataFrame:
    """Error statistics of each clinical index (rows of :func:`sspcmr.evaluation.clinical.clinical_rows`).

    Args:
        rows: Per-subject clinical rows or their DataFrame.
        by: Optional grouping column (e.g. ``"vendor"``).

    Returns:
        One row per (group, index): ``index``, ``n`` (subjects with a finite error), ``n_missing`` (NaN errors:
        missing phase, or EDV 0 for EF), ``mean_gt``, ``mean_pred``, ``mean_error`` (signed, pred - gt),
        ``std_error`` (``ddof=1``) and ``mae``, over the subjects with a finite error.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if by is not None and by not in frame:
        raise ValueError(f"by: column {by!r} is not in the table")
    groups = frame.groupby(by, dropna=False, sort=True) if by else [(None, frame)]
    out = []
    for group, part in groups:
        for index in INDICES:
            error = part[f"{index}_err"].astype(float)
            valid = error.notna()
            row: dict[str, object] = {by: group} if by else {}
            row.update({
                "index": index, "n": int(valid.sum()), "n_missing": int((~valid).sum()),
                "mean_gt": float(part.loc[valid, f"{index}_gt"].astype(float).mean()),
                "mean_pred": float(part.loc[valid, f"{index}_pred"].astype(float).mean()),
                "mean_error": float(error[valid].mean()), "std_error": float(error[valid].std(ddof=1)),
                "mae": float(error[valid].abs().mean()),
            })
            out.append(row)
    return pd.DataFrame(out)


def write_tables(tables: Mapping[str, pd.DataFrame], directory: str | Path, prefix: str = "") -> list[Path]:
    """Write each table as ``<directory>/<prefix><name>.csv``.

    Args:
        tables: ``{name: table}``, e.g. from :func:`summary_tables`.
        directory: Output folder, created if needed.
        prefix: File-name prefix (e.g. ``"test_"``).

    Returns:
        The written paths.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        path = folder / f"{prefix}{name}.csv"
        table.to_csv(path, index=False)
        paths.append(path)
    return paths


def dice_by_slice_position(rows: pd.DataFrame | Iterable[Mapping[str, object]], bins: int = 10) -> pd.DataFrame:
    """Mean slice-level Dice per class against the relative slice position, in equal-width bins.

    Bins ``0 .. bins-1`` split [0, 1] (each ``[left, right)``, the last closed); slices outside the
    ground-truth extent go to bin ``-1`` (position < 0, beyond the base) or ``bins`` (position > 1, beyond the
    apex), whose edges are infinite. Rows with a NaN position (volumes without any ground truth) are dropped.
    Empty bins are left out.

    Args:
        rows: Rows of :func:`sspcmr.evaluation.metrics.slice_dice_rows` (all volumes), or their DataFrame.
        bins: Number of bins over [0, 1].

    Returns:
        One row per non-empty bin: ``bin``, ``left``, ``right``, ``center``, ``n`` (slices) and, per class C,
        ``dice_C_mean`` and ``dice_C_std`` (``ddof=1``).
    """
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        frame = pd.DataFrame(columns=["position", *_DICE])
    position = frame["position"].astype(float)
    frame = frame.loc[position.notna()]
    position = position[position.notna()].to_numpy()
    # The tiny offset keeps positions such as 0.3 (= 3/10 up to rounding) in bin 3, not 2.
    inside = np.clip(np.floor(position * bins + 1e-9), 0, bins - 1)
    index = np.where(position < 0, -1, np.where(position > 1, bins, inside)).astype(int)
    out = []
    for b, part in frame.groupby(index, sort=True):
        left = -math.inf if b < 0 else b / bins
        right = math.inf if b >= bins else (b + 1) / bins
        row: dict[str, object] = {"bin": int(b), "left": left, "right": right,
                                  "center": (left + right) / 2 if 0 <= b < bins else math.nan, "n": len(part)}
        for column in _DICE:
            row[f"{column}_mean"] = float(part[column].astype(float).mean())
            row[f"{column}_std"] = float(part[column].astype(float).std(ddof=1))
        out.append(row)
    columns = ["bin", "left", "right", "center", "n", *(f"{c}_{s}" for c in _DICE for s in ("mean", "std"))]
    return pd.DataFrame(out, columns=columns)


_COLOURS = {"LV": "tab:red", "MYO": "tab:green", "RV": "tab:blue"}


def plot_dice_by_position(table: pd.DataFrame, path: str | Path, title: str = "Dice by slice position") -> Path:
    """Draw mean Dice per class against slice position (bins inside [0, 1]) and save it as a 640 x 420 PNG.

    Args:
        table: Output of :func:`dice_by_slice_position`.
        path: PNG file to write atomically (parent folders are created).
        title: Title drawn above the plot.

    Returns:
        The written path.
    """
    inner = table[table["center"].notna()]  # bins inside [0, 1] only
    lines = [Line(name, inner["center"].tolist(), inner[f"dice_{name}_mean"].tolist(), colour=colour)
             for name, colour in _COLOURS.items()]
    return line_chart(lines, path, title=title, x_label="relative position (0 = base, 1 = apex)", y_label="Dice",
                      size=(640, 420), x_ticks=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], x_range=(0.0, 1.0),
                      y_range=(0.0, 1.0))
