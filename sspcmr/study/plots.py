"""The two figures of a study report, drawn by :func:`sspcmr.evaluation.charts.line_chart` (matplotlib):
:func:`plot_dice_vs_subjects` and :func:`plot_dice_by_position_per_method`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sspcmr.evaluation.charts import Line, line_chart

__all__ = ["HEIGHT", "WIDTH", "plot_dice_by_position_per_method", "plot_dice_vs_subjects"]

WIDTH, HEIGHT = 820, 500
"""Size in pixels of both figures."""


def plot_dice_vs_subjects(lines: Sequence[Line], path: str | Path, title: str) -> Path:
    """Mean Dice against the number of labelled subjects (log-scaled x, ticks at the subject counts).

    Args:
        lines: One per method: x = mean labelled subjects of each subset, y = mean Dice, err = std across seeds.
        path: PNG file to write.
        title: Drawn above the plot.

    Returns:
        The written path.
    """
    counts = sorted({float(v) for line in lines for v in line.x if v is not None and 0 < float(v) < float("inf")})
    return line_chart(lines, path, title=title, x_label="labelled subjects (log scale)", y_label="mean Dice",
                      size=(WIDTH, HEIGHT), log_x=True, x_ticks=counts, dodge=4.0)


def plot_dice_by_position_per_method(lines: Sequence[Line], path: str | Path, title: str) -> Path:
    """Mean Dice against the relative slice position (0 = base, 1 = apex), one line per method.

    Args:
        lines: One per method: x = bin centres inside [0, 1], y = mean Dice over LV, MYO and RV.
        path: PNG file to write.
        title: Drawn above the plot.

    Returns:
        The written path.
    """
    return line_chart(lines, path, title=title, x_label="relative slice position (0 = base, 1 = apex)",
                      y_label="mean Dice", size=(WIDTH, HEIGHT), x_ticks=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                      x_range=(0.0, 1.0))
