"""Per-subject intensity statistics: what the network input is standardised with.

Every image a network sees has its subject's minimum subtracted and is then standardised with the
subject's mean, standard deviation and maximum after that shift (:mod:`sspcmr.transforms.intensity`).
The statistics cover the whole cropped cine (all slices and frames; a single volume when inference is
given a 3D file) and, as the reference, use the unbiased standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntensityStatistics:
    """A subject's intensity statistics; ``mean`` and ``max`` are taken after subtracting ``minimum``.

    Attributes:
        minimum: the smallest value, in the source's units.
        mean: the mean after the minimum shift.
        std: the unbiased (``ddof=1``) standard deviation (0.0 for a single voxel).
        max: the largest value after the minimum shift.
    """

    minimum: float
    mean: float
    std: float
    max: float


def intensity_statistics(cine: np.ndarray) -> IntensityStatistics:
    """The statistics of a cropped cine (any shape), computed in float64.

    A constant image gives ``std == 0``; callers refuse it (standardising would divide by zero).
    """
    values = cine.astype(np.float64)
    minimum = float(values.min())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return IntensityStatistics(minimum=minimum, mean=float(values.mean()) - minimum, std=std,
                               max=float(values.max()) - minimum)
