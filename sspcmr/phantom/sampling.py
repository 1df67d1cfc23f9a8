"""Uniform draws from parameter ranges, shared by the samplers of anatomy, motion, body and acquisition.

Every phantom parameter is drawn uniformly from a ``(low, high)`` range; several samplers keep their
ranges in a table (a dictionary, drawn in its order). The draw order is part of the data set: the
same seed must give the same subject, so a table's order must never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

Range = tuple[float, float]


@dataclass(frozen=True)
class BySex:
    """A range that differs between men and women (one draw either way)."""

    male: Range
    female: Range


def uniform(rng: np.random.Generator, bounds: Range) -> float:
    """One uniform draw in ``[low, high)``.

    Args:
        rng: random generator.
        bounds: ``(low, high)``.
    """
    return float(rng.uniform(bounds[0], bounds[1]))


def draw(rng: np.random.Generator, bounds: Range | BySex, male: bool = True) -> float:
    """One uniform draw from a range, or from the man's or woman's range of a :class:`BySex`.

    Args:
        rng: random generator.
        bounds: the range.
        male: which range of a :class:`BySex` to use (ignored for a plain range).
    """
    if isinstance(bounds, BySex):
        bounds = bounds.male if male else bounds.female
    return uniform(rng, bounds)


def draw_ranges(rng: np.random.Generator, ranges: Mapping[str, Range | BySex], male: bool = True) -> dict[str, float]:
    """One draw per named range, in the table's order.

    Args:
        rng: random generator.
        ranges: parameter name -> range.
        male: which range of each :class:`BySex` entry to use.
    """
    return {name: draw(rng, bounds, male) for name, bounds in ranges.items()}
