"""Argument checks for constructors: one-line ``ValueError``s that name the argument, its value and what is allowed.

The data module, the U-Net and the methods call these when they are built, so a bad ``--data.batch_size -4``
fails before the trainer creates any folder or log, with ``batch_size must be an integer >= 1; got -4``, instead
of deep inside training. Booleans are refused where numbers are expected (``True`` is not a batch size).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> None:
    """Raise a ValueError unless ``value`` is an integer (not a bool) in ``[low, high]`` (None: unbounded)."""
    if (isinstance(value, bool) or not isinstance(value, Integral) or (low is not None and value < low)
            or (high is not None and value > high)):
        raise ValueError(f"{name} must be an integer{_interval(low, high, False, False)}; got {value!r}")


def check_number(name: str, value: object, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> None:
    """Raise a ValueError unless ``value`` is a finite real number (not a bool) between ``low`` and ``high``
    (None: unbounded; ``low_open`` / ``high_open`` exclude the bound itself)."""
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number{_interval(low, high, low_open, high_open)}; got {value!r}")


def check_choice(name: str, value: object, choices: Collection[str]) -> None:
    """Raise a ValueError unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
