"""Tissue classes, the bSSFP signal model, smooth texture fields and the coil-bias field.

Signals come from the balanced-SSFP steady-state equation on resonance with TE = TR/2,

    S = PD sin(a) (1 - E1) / (1 - (E1 - E2) cos(a) - E1 E2) * exp(-TE / T2),  Ei = exp(-TR / Ti),

with literature PD / T1 / T2 at 1.5 T and 3 T. At 1.5 T, TR = 3 ms and a flip angle of 45-75
degrees this gives blood / myocardium 2.9 -> 3.8 and fat 3.3 -> 4.8, the contrast of real cine.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Tissue codes painted by the anatomy models (``NONE``: this model paints nothing here)."""

    AIR = 0
    BLOOD = 1
    MYOCARDIUM = 2
    TRABECULAR = 3
    FAT = 4
    MUSCLE = 5
    LUNG = 6
    LIVER = 7
    BONE = 8
    FLUID = 9
    MEDIASTINUM = 10
    NONE = 255


#: Proton density and (T1, T2) in ms at 1.5 T and at 3 T per tissue (PD does not depend on the field).
#: Trabecular tissue is a blood/myocardium mix and has no entry.
RELAXATION_TIMES: dict[Tissue, tuple[float, tuple[float, float], tuple[float, float]]] = {
    #                  PD    1.5 T: T1, T2    3 T: T1, T2
    Tissue.BLOOD: (0.95, (1450.0, 250.0), (1932.0, 275.0)),
    Tissue.MYOCARDIUM: (0.80, (1000.0, 45.0), (1220.0, 47.0)),
    Tissue.FAT: (0.95, (300.0, 70.0), (380.0, 68.0)),
    Tissue.MUSCLE: (0.75, (1000.0, 33.0), (1420.0, 32.0)),
    Tissue.LUNG: (0.15, (1200.0, 40.0), (1400.0, 35.0)),
    Tissue.LIVER: (0.90, (580.0, 45.0), (810.0, 34.0)),
    Tissue.BONE: (0.70, (550.0, 50.0), (650.0, 45.0)),
    Tissue.FLUID: (1.00, (3500.0, 1500.0), (4000.0, 2000.0)),
    Tissue.MEDIASTINUM: (0.85, (450.0, 60.0), (550.0, 55.0)),
}

#: (PD, T1 ms, T2 ms) per field strength and tissue, in :data:`RELAXATION_TIMES` order (the order of
#: the per-subject signal jitter draws).
RELAXATION: dict[float, dict[Tissue, tuple[float, float, float]]] = {
    field: {tissue: (pd, *times[k]) for tissue, (pd, *times) in RELAXATION_TIMES.items()}
    for k, field in enumerate((1.5, 3.0))
}

#: Relative amplitude of the smooth intra-tissue texture (spec: +-5-10% inside organs).
TEXTURE_AMPLITUDE: dict[Tissue, float] = {
    Tissue.BLOOD: 0.04,
    Tissue.MYOCARDIUM: 0.07,
    Tissue.TRABECULAR: 0.12,
    Tissue.FAT: 0.10,
    Tissue.MUSCLE: 0.08,
    Tissue.LUNG: 0.35,
    Tissue.LIVER: 0.08,
    Tissue.BONE: 0.12,
    Tissue.FLUID: 0.04,
    Tissue.MEDIASTINUM: 0.18,
}

TR_MS = 3.0


def bssfp_signal(pd: float, t1: float, t2: float, flip_angle_deg: float, tr: float = TR_MS) -> float:
    """Balanced SSFP steady-state magnitude on resonance at TE = TR / 2."""
    a = np.deg2rad(flip_angle_deg)
    e1, e2 = np.exp(-tr / t1), np.exp(-tr / t2)
    steady = pd * np.sin(a) * (1 - e1) / (1 - (e1 - e2) * np.cos(a) - e1 * e2)
    return float(steady * np.exp(-tr / 2 / t2))


def tissue_signals(field: float, flip_angle: float, rng: np.random.Generator, jitter: float = 0.12) -> np.ndarray:
    """Signal per tissue code (index = code), myocardium normalised to 1, jittered per subject.

    Args:
        field: 1.5 or 3.0 (tesla).
        flip_angle: degrees.
        rng: random generator for the per-tissue jitter.
        jitter: maximum relative jitter (uniform in +-jitter) applied to each non-myocardial tissue
            (half of it to blood).
    """
    table = np.zeros(256, dtype=np.float64)
    relax = RELAXATION[field]
    myo = bssfp_signal(*relax[Tissue.MYOCARDIUM], flip_angle)
    for tissue, (pd, t1, t2) in relax.items():
        # Blood is jittered half as much: its contrast to myocardium is the most stable one in
        # cine (at 3 T and 35 degrees the nominal ratio is 2.5 and a full -12% would give 2.2).
        spread = 0.5 * jitter if tissue == Tissue.BLOOD else jitter
        scale = 1.0 if tissue == Tissue.MYOCARDIUM else rng.uniform(1 - spread, 1 + spread)
        table[tissue] = bssfp_signal(pd, t1, t2, flip_angle) / myo * scale
    table[Tissue.TRABECULAR] = 0.5 * (table[Tissue.BLOOD] + table[Tissue.MYOCARDIUM])
    table[Tissue.AIR] = 0.0
    return table


def texture_table() -> np.ndarray:
    """Texture amplitude per tissue code (index = code)."""
    table = np.zeros(256, dtype=np.float64)
    for tissue, amp in TEXTURE_AMPLITUDE.items():
        table[tissue] = amp
    return table


class SmoothField:
    """A smooth random scalar field in world coordinates with unit RMS (random Fourier features).

    Args:
        rng: random generator.
        components: number of plane waves.
        wavelength: range of wavelengths in mm.
    """

    def __init__(self, rng: np.random.Generator, components: int = 12,
                 wavelength: tuple[float, float] = (8.0, 40.0)) -> None:
        directions = rng.normal(size=(components, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        lengths = rng.uniform(wavelength[0], wavelength[1], components)
        self.wavevectors = directions * (2 * np.pi / lengths)[:, None]
        self.phases = rng.uniform(0, 2 * np.pi, components)
        self.scale = np.sqrt(2.0 / components)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Field values at world points (..., 3)."""
        return self.scale * np.cos(points @ self.wavevectors.T + self.phases).sum(axis=-1)


class CoilBias:
    """Smooth multiplicative receive-coil bias: root sum of squares of coil sensitivities.

    Coils sit on an ellipse around the torso (anterior and posterior arrays), each falling off with
    distance; the field is rescaled so that its max/min ratio inside the body is ``ratio`` and its
    mean is 1.

    Args:
        rng: random generator.
        torso_half_axes: (half width, half depth) of the body in mm.
        centre: (x, y) axial body centre.
        ratio: target max/min bias ratio inside the body (1 = flat).
    """

    def __init__(self, rng: np.random.Generator, torso_half_axes: tuple[float, float],
                 centre: np.ndarray, ratio: float) -> None:
        count = int(rng.integers(4, 17))
        angles = np.concatenate([rng.uniform(0.2, np.pi - 0.2, (count + 1) // 2),
                                 rng.uniform(np.pi + 0.2, 2 * np.pi - 0.2, count // 2)])
        hw, hd = torso_half_axes
        self.coils = np.stack([centre[0] + (hw + 25) * np.cos(angles), centre[1] + (hd + 25) * np.sin(angles),
                               rng.uniform(-60, 60, count)], axis=1)
        self.gains = rng.uniform(0.7, 1.3, count)
        self.falloff = float(rng.uniform(110.0, 200.0))
        gx, gy = np.meshgrid(np.linspace(-0.9, 0.9, 40), np.linspace(-0.9, 0.9, 40))
        inside = gx**2 + gy**2 < 0.81
        ref = np.stack([centre[0] + hw * gx[inside], centre[1] + hd * gy[inside], np.zeros(inside.sum())], axis=1)
        sos = self._sos(ref)
        self.low, self.high = np.percentile(sos, [2, 98])
        self.ratio = ratio
        self.norm = float(np.mean(self._raw(ref)))

    def _sos(self, points: np.ndarray) -> np.ndarray:
        d2 = ((points[..., None, :] - self.coils) ** 2).sum(-1)
        sens = self.gains / (1.0 + d2 / self.falloff**2)
        return np.sqrt((sens**2).sum(-1))

    def _raw(self, points: np.ndarray) -> np.ndarray:
        x = np.clip((self._sos(points) - self.low) / (self.high - self.low), -0.2, 1.3)
        return 1.0 + (self.ratio - 1.0) * x

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Bias at world points (..., 3)."""
        return self._raw(points) / self.norm
