"""Line charts written as PNG files with matplotlib's Agg canvas.

One generic :func:`line_chart` (one coloured line with markers and optional vertical error bars per series,
a legend right of the plot, axis labels and a title) draws every figure of sspcmr: the Dice-by-position plot
of an evaluation (:func:`sspcmr.evaluation.summary.plot_dice_by_position`) and the two figures of a study
report (:mod:`sspcmr.study.plots`).

The figure is a bare :class:`matplotlib.figure.Figure` on a :class:`FigureCanvasAgg`: no pyplot, no global
backend switch, so it works headless, in worker processes and beside a user's interactive session.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from matplotlib.transforms import offset_copy

from sspcmr.data.atomic import atomic_write_bytes

__all__ = ["DPI", "PALETTE", "Line", "line_chart"]

DPI = 100
"""Pixels per inch of the written PNGs: a chart of ``size=(820, 500)`` is 820 x 500 pixels."""

PALETTE: tuple[str, ...] = tuple(f"tab:{name}" for name in (
    "blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive", "cyan"))
"""matplotlib's "tab10" colours, given in order to series without a colour of their own."""


@dataclass(frozen=True)
class Line:
    """One series of a chart: points ``(x, y)`` and optional half-lengths ``err`` of vertical error bars.

    Non-finite ``y`` values are skipped; a non-finite ``err`` draws no bar (e.g. one seed: no std).
    ``colour`` is any matplotlib colour; None takes the next one of :data:`PALETTE`.
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    err: Sequence[float] | None = None
    colour: str | None = None


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _points(line: Line, log_x: bool) -> list[tuple[float, float, float]]:
    """The drawable ``(x, y, err)`` of ``line`` in x order (finite, and x > 0 on a log axis)."""
    errors = line.err if line.err is not None else [math.nan] * len(line.y)
    return sorted(
        (float(x), float(y), float(e)) for x, y, e in zip(line.x, line.y, errors, strict=True)
        if math.isfinite(float(x)) and math.isfinite(float(y)) and (not log_x or float(x) > 0)
    )


def _y_range(lines: Sequence[Line], bounds: tuple[float, float]) -> tuple[float, float]:
    """Data extent (error bars included) with a 10 % margin, kept inside ``bounds`` (Dice: [0, 1])."""
    values: list[float] = []
    for line in lines:
        errors = line.err if line.err is not None else [math.nan] * len(line.y)
        for y, e in zip(line.y, errors, strict=True):
            values += _finite([y, y - e, y + e]) if math.isfinite(e) else _finite([y])
    if not values:
        return bounds
    low, high = min(values), max(values)
    margin = max((high - low) * 0.1, 0.02 * (bounds[1] - bounds[0]))
    return max(bounds[0], low - margin), min(bounds[1], high + margin)


def _x_range(lines: Sequence[Line], log_x: bool) -> tuple[float, float]:
    """Data extent, padded by 6 % in plotted units (log10 when ``log_x``) so end points leave the frame."""
    values = [v for line in lines for v in _finite(line.x) if not log_x or v > 0]
    if not values:
        return (1.0, 10.0) if log_x else (0.0, 1.0)
    points = [math.log10(v) for v in values] if log_x else values
    low, high = min(points), max(points)
    pad = (high - low) * 0.06 if high > low else 0.5
    return (10 ** (low - pad), 10 ** (high + pad)) if log_x else (low - pad, high + pad)


def _format_tick(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1 or value == 0 else f"{value:.2f}".rstrip("0")


def _draw_series(axes, figure: Figure, line: Line, colour: str, shift: float, log_x: bool):
    """Connect the points of ``line`` in x order, with markers and capped error bars, ``shift`` pixels right.

    Returns:
        The line's artist, for the legend.
    """
    points = _points(line, log_x)
    # Dodging in pixels (not data units) keeps bars at the same x apart on linear and log axes alike.
    transform = offset_copy(axes.transData, fig=figure, x=shift, y=0.0, units="dots")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    (artist,) = axes.plot(xs, ys, "-o", color=colour, linewidth=2, markersize=7, transform=transform)
    bars = [(x, y, e) for x, y, e in points if math.isfinite(e) and e > 0]
    if bars:
        axes.errorbar([b[0] for b in bars], [b[1] for b in bars], yerr=[b[2] for b in bars], fmt="none",
                      ecolor=colour, elinewidth=1, capsize=4, transform=transform)
    return artist


def line_chart(
    lines: Sequence[Line],
    path: str | Path,
    *,
    title: str,
    x_label: str,
    y_label: str,
    size: tuple[int, int] = (820, 500),
    log_x: bool = False,
    x_ticks: Sequence[float] | None = None,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    y_bounds: tuple[float, float] = (0.0, 1.0),
    dodge: float = 0.0,
) -> Path:
    """Draw one coloured line with markers (and error bars) per series, with a legend, and save a PNG.

    Args:
        lines: The series, coloured in order (unless they carry a colour).
        path: PNG file to write atomically (parent folders are created).
        title: Drawn above the plot.
        x_label: Below the x axis.
        y_label: Beside the y axis (rotated).
        size: Width and height of the PNG in pixels.
        log_x: Log-scaled x axis (non-positive x values are skipped).
        x_ticks: Where to put x ticks (data units); default: matplotlib's round values.
        x_range: Fixed x range (data units); default: the data extent, padded.
        y_range: Fixed y range; default: the data extent with a margin, inside ``y_bounds``.
        y_bounds: Without ``y_range``, the y range never goes beyond these bounds.
        dodge: Horizontal shift in pixels between consecutive series, centred on the true x, so that error
            bars at the same x do not hide each other.

    Returns:
        The written path.
    """
    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    if log_x:
        axes.set_xscale("log")
    axes.set_xlim(*(x_range or _x_range(lines, log_x)))
    axes.set_ylim(*(y_range or _y_range(lines, y_bounds)))
    if x_ticks is not None:
        axes.set_xticks(list(x_ticks), labels=[_format_tick(t) for t in x_ticks])
        axes.xaxis.set_minor_locator(NullLocator())
    axes.grid(True, color="0.88")
    axes.set_axisbelow(True)  # the grid under the data
    axes.set_title(title, loc="left")
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    artists = [_draw_series(axes, figure, line, line.colour or PALETTE[k % len(PALETTE)],
                            dodge * (k - (len(lines) - 1) / 2), log_x) for k, line in enumerate(lines)]
    if lines:  # handles and labels given explicitly: a label starting with "_" is still listed
        figure.legend(artists, [line.label for line in lines], loc="outside right upper", frameon=False)
    target = Path(path)
    atomic_write_bytes(target, lambda tmp: FigureCanvasAgg(figure).print_png(tmp))
    return target
