"""Line charts of a study's results, drawn with Pillow.

Pillow comes with torchvision; matplotlib is not a dependency of sspcmr (see
:func:`sspcmr.evaluation.summary.plot_dice_by_position`, drawn the same way). One generic :func:`line_chart`
(one coloured line with markers and optional vertical error bars per method, legend, axis labels, title)
backs the two figures of the study report: :func:`plot_dice_vs_subjects` and
:func:`plot_dice_by_position_per_method`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sspcmr.data.atomic import atomic_write_bytes

__all__ = ["HEIGHT", "WIDTH", "Line", "line_chart", "plot_dice_by_position_per_method", "plot_dice_vs_subjects"]

WIDTH, HEIGHT = 820, 500
"""Size in pixels of every chart."""

# The plot area; the right margin holds the legend.
_LEFT, _TOP, _RIGHT, _BOTTOM = 70, 50, WIDTH - 190, HEIGHT - 70

# matplotlib's "tab10" colours, so the figures look familiar.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
_GRID = (225, 225, 225)


@dataclass(frozen=True)
class Line:
    """One series of a chart: points ``(x, y)`` and optional half-lengths ``err`` of vertical error bars.

    Non-finite ``y`` values are skipped; a non-finite ``err`` draws no bar (e.g. one seed: no std).
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    err: Sequence[float] | None = None


def _font(size: int = 13):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _nice_step(span: float, target: int = 5) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving about ``target`` intervals over ``span``."""
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _linear_ticks(low: float, high: float) -> list[float]:
    step = _nice_step(high - low)
    first = math.ceil(low / step - 1e-9)
    return [round(k * step, 10) for k in range(first, math.floor(high / step + 1e-9) + 1)]


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


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
    """Data extent in plotted units (log10 when ``log_x``), padded so end points do not sit on the frame."""
    values = [v for line in lines for v in _finite(line.x) if not log_x or v > 0]
    if not values:
        return (0.0, 1.0)
    points = [math.log10(v) for v in values] if log_x else values
    low, high = min(points), max(points)
    pad = (high - low) * 0.06 if high > low else 0.5
    return low - pad, high + pad


def _format_tick(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1 or value == 0 else f"{value:.2f}".rstrip("0")


def line_chart(
    lines: Sequence[Line],
    path: str | Path,
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    x_ticks: Sequence[float] | None = None,
    x_range: tuple[float, float] | None = None,
    y_bounds: tuple[float, float] = (0.0, 1.0),
    dodge: float = 0.0,
) -> Path:
    """Draw one coloured line with markers (and error bars) per series, with a legend, and save a PNG.

    Args:
        lines: The series, coloured in order.
        path: PNG file to write atomically (parent folders are created).
        title: Drawn above the plot.
        x_label: Below the x axis.
        y_label: Beside the y axis (rotated).
        log_x: Log-scaled x axis (non-positive x values are skipped).
        x_ticks: Where to put x ticks (data units); default: round values over the range.
        x_range: Fixed x range (data units); default: the data extent, padded.
        y_bounds: The y range never goes beyond these bounds.
        dodge: Horizontal shift in pixels between consecutive series, centred on the true x, so that error
            bars at the same x do not hide each other.

    Returns:
        The written path.
    """
    from PIL import Image, ImageDraw  # local: only drawing needs Pillow

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(12)
    to_x = math.log10 if log_x else float
    x_low, x_high = (to_x(x_range[0]), to_x(x_range[1])) if x_range else _x_range(lines, log_x)
    y_low, y_high = _y_range(lines, y_bounds)

    def pixel(x: float, y: float) -> tuple[float, float]:
        """Data units to pixels (x is log-scaled here when ``log_x``)."""
        px = _LEFT + (to_x(x) - x_low) / (x_high - x_low) * (_RIGHT - _LEFT)
        return px, _BOTTOM - (y - y_low) / (y_high - y_low) * (_BOTTOM - _TOP)

    any_x = 10**x_low if log_x else x_low  # for the y ticks, which only need the pixel row

    # Grid, ticks and labels first, so the data is drawn on top of them.
    for tick in _linear_ticks(y_low, y_high):
        _, py = pixel(any_x, tick)
        draw.line((_LEFT + 1, py, _RIGHT - 1, py), fill=_GRID)
        draw.line((_LEFT - 5, py, _LEFT, py), fill="black")
        text = _format_tick(tick)
        draw.text((_LEFT - 8 - draw.textlength(text, font=small), py - 7), text, fill="black", font=small)
    if x_ticks is None:
        x_ticks = [10**t if log_x else t for t in _linear_ticks(x_low, x_high)]
    for tick in x_ticks:
        px, _ = pixel(tick, y_low)
        if not _LEFT <= px <= _RIGHT:
            continue
        draw.line((px, _TOP + 1, px, _BOTTOM - 1), fill=_GRID)
        draw.line((px, _BOTTOM, px, _BOTTOM + 5), fill="black")
        text = _format_tick(tick)
        draw.text((px - draw.textlength(text, font=small) / 2, _BOTTOM + 8), text, fill="black", font=small)
    draw.rectangle((_LEFT, _TOP, _RIGHT, _BOTTOM), outline="black")
    draw.text((_LEFT, 16), title, fill="black", font=font)
    middle = (_LEFT + _RIGHT) / 2
    draw.text((middle - draw.textlength(x_label, font=font) / 2, _BOTTOM + 32), x_label, fill="black", font=font)
    _draw_y_label(image, y_label, font)

    for k, line in enumerate(lines):
        colour = _PALETTE[k % len(_PALETTE)]
        shift = dodge * (k - (len(lines) - 1) / 2)
        _draw_series(draw, line, colour, lambda x, y, s=shift: (pixel(x, y)[0] + s, pixel(x, y)[1]), log_x)
        ly = _TOP + 10 + 22 * k
        draw.line((_RIGHT + 15, ly + 7, _RIGHT + 45, ly + 7), fill=colour, width=3)
        draw.ellipse((_RIGHT + 26, ly + 3, _RIGHT + 34, ly + 11), fill=colour)
        draw.text((_RIGHT + 52, ly), line.label, fill="black", font=small)

    target = Path(path)
    atomic_write_bytes(target, lambda tmp: image.save(tmp, format="PNG"))
    return target


def _draw_y_label(image, text: str, font) -> None:
    """Paste ``text`` rotated by 90 degrees, centred on the left of the plot area."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(image)
    width = int(probe.textlength(text, font=font)) + 4
    label = Image.new("RGB", (width, 20), "white")
    ImageDraw.Draw(label).text((2, 2), text, fill="black", font=font)
    rotated = label.rotate(90, expand=True)
    image.paste(rotated, (8, int((_TOP + _BOTTOM) / 2 - width / 2)))


def _draw_series(draw, line: Line, colour: tuple[int, int, int], pixel, log_x: bool) -> None:
    """Connect the finite points of ``line`` in x order, with markers and capped error bars."""
    errors = line.err if line.err is not None else [math.nan] * len(line.y)
    points = sorted(
        (float(x), float(y), float(e)) for x, y, e in zip(line.x, line.y, errors, strict=True)
        if math.isfinite(float(x)) and math.isfinite(float(y)) and (not log_x or float(x) > 0)
    )
    pixels = [pixel(x, y) for x, y, _ in points]
    if len(pixels) > 1:
        draw.line(pixels, fill=colour, width=2)
    for (x, y, e), (px, py) in zip(points, pixels, strict=True):
        if math.isfinite(e) and e > 0:
            # Bars end at the frame (Dice cannot leave [0, 1]); an end cut by the frame gets no cap.
            _, top = pixel(x, y + e)
            _, bottom = pixel(x, y - e)
            draw.line((px, max(top, _TOP), px, min(bottom, _BOTTOM)), fill=colour, width=1)
            if top >= _TOP:
                draw.line((px - 4, top, px + 4, top), fill=colour, width=1)
            if bottom <= _BOTTOM:
                draw.line((px - 4, bottom, px + 4, bottom), fill=colour, width=1)
        draw.ellipse((px - 4, py - 4, px + 4, py + 4), fill=colour)


def plot_dice_vs_subjects(lines: Sequence[Line], path: str | Path, title: str) -> Path:
    """Mean Dice against the number of labelled subjects (log-scaled x, ticks at the subject counts).

    Args:
        lines: One per method: x = mean labelled subjects of each subset, y = mean Dice, err = std across seeds.
        path: PNG file to write.
        title: Drawn above the plot.

    Returns:
        The written path.
    """
    counts = sorted({v for line in lines for v in _finite(line.x) if v > 0})
    return line_chart(lines, path, title=title, x_label="labelled subjects (log scale)", y_label="mean Dice",
                      log_x=True, x_ticks=counts, dodge=4.0)


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
                      y_label="mean Dice", x_ticks=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], x_range=(0.0, 1.0))
