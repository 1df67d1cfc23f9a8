"""The phantom's pathologies: how often each is drawn, how the public data sets spell it, and how it
changes the normal heart's parameters (ranges in ``docs/synthetic-data.md``).

A pathology is a list of changes to the normal draws of :func:`~.anatomy.sample_shape`, applied in
order after them. The order is the random-draw order: a subject's parameters depend on it, so the
same seed gives the same subject only while the tables keep their order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .sampling import BySex, Range, draw, uniform

#: Pathology mix: normal, dilated and hypertrophic hearts make up 70%; the M&Ms-1 classes
#: (hypertensive, athlete, ischaemic, non-compaction) and the M&Ms-2 RV classes (rv_dilated,
#: arrhythmogenic, tetralogy, interatrial, tricuspid) share the rest.
PATHOLOGY_PROBABILITIES: dict[str, float] = {
    "normal": 0.44,
    "dilated": 0.13,
    "hypertrophic": 0.13,
    "rv_dilated": 0.04,
    "arrhythmogenic": 0.03,
    "tetralogy": 0.03,
    "interatrial": 0.03,
    "tricuspid": 0.03,
    "hypertensive": 0.04,
    "athlete": 0.04,
    "ischaemic": 0.04,
    "noncompaction": 0.02,
}

#: Every code each public data set uses (M&Ms also has ``Other``, which the phantom never needs).
DATASET_PATHOLOGIES: dict[str, frozenset[str]] = {
    "mnms": frozenset({"NOR", "DCM", "HCM", "ARV", "HHD", "AHS", "IHD", "LVNC", "Other"}),
    "mnms2": frozenset({"NOR", "LV", "HCM", "ARR", "FALL", "CIA", "TRI", "DRV"}),
}

#: Pathology codes as the two public data sets spell them. Every phantom pathology is drawn the
#: same way whatever the layout and written as the closest class of the data set: M&Ms has one
#: ``ARV`` (abnormal right ventricle) class for every RV disease; M&Ms-2 has no hypertensive,
#: athlete, ischaemic or non-compaction class, so hypertensive concentric hypertrophy is written
#: ``HCM``, the athlete's heart (physiological) ``NOR`` and the ischaemic and non-compaction
#: hearts (reduced EF, dilated LV) ``LV``.
PATHOLOGY_CODES: dict[str, dict[str, str]] = {
    "mnms": {"normal": "NOR", "dilated": "DCM", "hypertrophic": "HCM", "rv_dilated": "ARV",
             "arrhythmogenic": "ARV", "tetralogy": "ARV", "interatrial": "ARV", "tricuspid": "ARV",
             "hypertensive": "HHD", "athlete": "AHS", "ischaemic": "IHD", "noncompaction": "LVNC"},
    "mnms2": {"normal": "NOR", "dilated": "LV", "hypertrophic": "HCM", "rv_dilated": "DRV",
              "arrhythmogenic": "ARR", "tetralogy": "FALL", "interatrial": "CIA", "tricuspid": "TRI",
              "hypertensive": "HCM", "athlete": "NOR", "ischaemic": "LV", "noncompaction": "LV"},
}


@dataclass(frozen=True)
class Scale:
    """Multiply the normal value by a uniform draw from ``bounds``."""

    bounds: Range


@dataclass(frozen=True)
class Times:
    """Multiply the normal value by a constant (no draw)."""

    factor: float


@dataclass(frozen=True)
class Fixed:
    """Replace the normal value by a constant (no draw)."""

    value: float


def sample_infarct(rng: np.random.Generator) -> np.ndarray:
    """One ischaemic scar: angle, half width (rad), zeta where it starts (it reaches the apex),
    wall thinning and residual motion."""
    return np.array([rng.uniform(-np.pi, np.pi), np.deg2rad(rng.uniform(40.0, 65.0)),
                     rng.uniform(0.25, 0.45), rng.uniform(0.35, 0.55), rng.uniform(0.0, 0.2)])


def sample_bulges(rng: np.random.Generator) -> np.ndarray:
    """2-4 aneurysmal RV bulges (K, 5): position across the span, level, amplitude, angular and level widths."""
    count = int(rng.integers(2, 5))
    return np.stack([rng.choice([-1.0, 1.0], count) * rng.uniform(0.3, 0.75, count),
                     rng.uniform(0.1, 0.6, count), rng.uniform(0.3, 0.7, count), rng.uniform(0.10, 0.20, count),
                     rng.uniform(0.06, 0.12, count)], axis=1)


#: One change to a normal parameter: a range (or :class:`~.sampling.BySex`) draws a new value,
#: :class:`Scale`, :class:`Times` and :class:`Fixed` as documented, a function draws a new value from
#: the generator.
Change = Range | BySex | Scale | Times | Fixed | Callable[[np.random.Generator], Any]

#: Changes each pathology makes to the normal draws (keys are :class:`~.anatomy.HeartShape` fields,
#: plus ``diameter``, the mid-cavity ED diameter), in draw order.
PATHOLOGY_CHANGES: dict[str, dict[str, Change]] = {
    "normal": {},
    "dilated": {"diameter": (58.0, 72.0), "wall_thickness": (5.0, 7.0), "lv_ef": (0.15, 0.45),
                "lv_length": Scale((1.05, 1.15)), "base_descent": (4.0, 8.0), "rv_ef": (0.40, 0.60),
                "rv_edv_ratio": (0.85, 1.05), "atrium_scale": Times(1.15)},
    "hypertrophic": {"diameter": (38.0, 48.0), "wall_thickness": (12.0, 16.0), "septal_extra": (4.0, 9.0),
                     "lv_ef": (0.65, 0.80), "base_descent": (7.0, 11.0), "rv_edv_ratio": (1.10, 1.40)},
    "hypertensive": {"diameter": (44.0, 52.0), "wall_thickness": (11.0, 14.0), "septal_extra": (1.0, 3.0),
                     "lv_ef": (0.55, 0.70), "base_descent": (8.0, 12.0), "atrium_scale": Times(1.1)},
    "athlete": {"diameter": BySex((56.0, 62.0), (54.0, 59.0)), "wall_thickness": BySex((10.0, 12.0), (9.0, 11.0)),
                "lv_ef": (0.55, 0.65), "rv_ef": (0.50, 0.60), "rv_edv_ratio": (1.10, 1.30),
                "lv_length": Scale((1.03, 1.10))},
    "ischaemic": {"diameter": (54.0, 64.0), "lv_ef": (0.25, 0.45), "base_descent": (6.0, 10.0),
                  "rv_ef": (0.45, 0.60), "rv_edv_ratio": (0.90, 1.10), "infarct": sample_infarct},
    "noncompaction": {"diameter": (52.0, 62.0), "wall_thickness": (5.0, 7.0), "lv_ef": (0.25, 0.45),
                      "base_descent": (6.0, 10.0), "trabecular_depth": (6.0, 10.0),
                      "trabecular_threshold": (-0.5, -0.2), "trabecular_start": Fixed(0.3)},
    "rv_dilated": {"rv_edv_ratio": (1.50, 2.10), "rv_ef": (0.30, 0.45), "rv_half_span": Times(1.1)},
    "arrhythmogenic": {"rv_edv_ratio": (1.50, 2.20), "rv_ef": (0.20, 0.38), "rv_wall": (1.5, 2.5),
                       "rv_half_span": Times(1.1), "rv_retract": Times(0.5), "rv_bulges": sample_bulges,
                       "ra_scale": (1.1, 1.3)},
    "tetralogy": {"rv_edv_ratio": (1.60, 2.30), "rv_ef": (0.33, 0.48), "rv_wall": (5.0, 8.0),
                  "septal_flattening": (0.08, 0.15), "rv_half_span": Times(1.1), "rv_fullness": Times(0.85),
                  "ra_scale": (1.1, 1.3)},
    "interatrial": {"rv_edv_ratio": (1.50, 2.10), "rv_ef": (0.50, 0.62), "septal_flattening": (0.06, 0.12),
                    "rv_half_span": Times(1.1), "ra_scale": (1.25, 1.5)},
    "tricuspid": {"rv_edv_ratio": (1.45, 2.00), "rv_ef": (0.45, 0.60), "rv_half_span": Times(1.05),
                  "ra_scale": (1.3, 1.6)},
}


def sample_pathology(rng: np.random.Generator) -> str:
    """Draw a pathology from :data:`PATHOLOGY_PROBABILITIES`."""
    names = list(PATHOLOGY_PROBABILITIES)
    probs = np.array([PATHOLOGY_PROBABILITIES[n] for n in names])
    return names[int(rng.choice(len(names), p=probs / probs.sum()))]


def apply_pathology(rng: np.random.Generator, pathology: str, values: dict[str, Any], male: bool) -> None:
    """Change the normal heart parameters ``values`` in place as ``pathology`` does.

    Args:
        rng: random generator, positioned after the normal draws.
        pathology: a key of :data:`PATHOLOGY_CHANGES`.
        values: parameter name -> normal value; every changed name must be present.
        male: which range of a :class:`~.sampling.BySex` change to use.
    """
    for name, change in PATHOLOGY_CHANGES[pathology].items():
        values[name] = _changed(rng, change, values[name], male)


def _changed(rng: np.random.Generator, change: Change, value: Any, male: bool) -> Any:
    if isinstance(change, Scale):
        return value * uniform(rng, change.bounds)
    if isinstance(change, Times):
        return value * change.factor
    if isinstance(change, Fixed):
        return change.value
    if callable(change):
        return change(rng)
    return draw(rng, change, male)
