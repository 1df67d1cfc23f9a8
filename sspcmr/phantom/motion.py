"""Cardiac cycle: frame timing, ED/ES frames and physiological (non-sinusoidal) volume curves.

The normalised LV volume curve over the cardiac phase ``p`` in [0, 1) (ED at p = 0) has

* ejection from 1 to ``1 - EF`` with a power-law ease-out (fast early ejection, exponent 2-3),
  ending exactly at the ES phase so that the ES frame is the minimum-volume frame;
* isovolumic relaxation: flat at ESV for 5-8% of the cycle;
* rapid filling: 60-75% of the stroke volume within the next 20-25% of the cycle (ease-out);
* diastasis: a slow linear rise;
* atrial kick: the remaining 15-20% of the stroke volume in the last 10-15% of the cycle
  (smoothstep), back to 1 at the next ED.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sampling import Range, draw_ranges


@dataclass
class CardiacCycle:
    """Frame timing and volume-curve shape of one acquisition.

    Attributes:
        frames: number of cine frames T.
        ed_frame: 0-based ED frame index.
        es_frame: 0-based ES frame index.
        heart_rate: beats per minute.
        es_phase: ES position in the cycle, exactly ``((es_frame - ed_frame) mod T) / T``.
        ejection_exponent: ease-out exponent of ejection.
        ivr: isovolumic relaxation duration (fraction of the cycle).
        rapid_duration: rapid-filling duration (fraction of the cycle).
        rapid_fraction: fraction of the stroke volume refilled during rapid filling.
        kick_duration: atrial-kick duration (fraction of the cycle).
        kick_fraction: fraction of the stroke volume added by the atrial kick.
        rv_delay: RV curve delay as a fraction of the cycle.
    """

    frames: int
    ed_frame: int
    es_frame: int
    heart_rate: float
    es_phase: float
    ejection_exponent: float
    ivr: float
    rapid_duration: float
    rapid_fraction: float
    kick_duration: float
    kick_fraction: float
    rv_delay: float

    def phase(self, frame: int | np.ndarray) -> np.ndarray:
        """Cardiac phase in [0, 1) of a frame (ED is phase 0)."""
        return np.mod((np.asarray(frame) - self.ed_frame) / self.frames, 1.0)

    def filling(self, phase: np.ndarray) -> np.ndarray:
        """Fraction of the stroke volume *missing* at ``phase``: 0 at ED, 1 at ES."""
        p = np.mod(np.asarray(phase, dtype=float), 1.0)
        out = np.zeros_like(p)
        es = self.es_phase
        eject = p <= es
        out[eject] = 1.0 - (1.0 - p[eject] / es) ** self.ejection_exponent
        ivr_end = es + self.ivr
        out[(p > es) & (p <= ivr_end)] = 1.0
        rapid_end = ivr_end + self.rapid_duration
        kick_start = 1.0 - self.kick_duration
        rapid = (p > ivr_end) & (p <= rapid_end)
        x = (p[rapid] - ivr_end) / self.rapid_duration
        out[rapid] = 1.0 - self.rapid_fraction * (1.0 - (1.0 - x) ** 2)
        after_rapid = 1.0 - self.rapid_fraction
        diastasis = (p > rapid_end) & (p <= kick_start)
        diastasis_gain = 1.0 - self.rapid_fraction - self.kick_fraction
        x = (p[diastasis] - rapid_end) / max(kick_start - rapid_end, 1e-6)
        out[diastasis] = after_rapid - diastasis_gain * x
        kick = p > kick_start
        x = (p[kick] - kick_start) / self.kick_duration
        out[kick] = self.kick_fraction * (1.0 - x * x * (3.0 - 2.0 * x))
        return out

    def lv_volume_fraction(self, frame: int | np.ndarray, ef: float) -> np.ndarray:
        """LV volume relative to EDV at a frame."""
        return 1.0 - ef * self.filling(self.phase(frame))

    def rv_volume_fraction(self, frame: int | np.ndarray, ef: float) -> np.ndarray:
        """RV volume relative to its volume at ED: same shape, delayed by ``rv_delay``."""
        return 1.0 - ef * self.filling(self.phase(frame) - self.rv_delay)

    def rv_deformation(self, frame: int | np.ndarray) -> np.ndarray:
        """RV systolic fraction (0 at RV end-diastole, 1 at RV end-systole), delayed by ``rv_delay``."""
        return self.filling(self.phase(frame) - self.rv_delay)

    def deformation(self, frame: int | np.ndarray) -> np.ndarray:
        """Systolic deformation fraction (0 at ED, 1 at ES) driving descent, twist and atria."""
        return self.filling(self.phase(frame))


#: Volume-curve shape ranges, drawn in this order (see :class:`CardiacCycle`; all but the exponent are
#: fractions of the cycle or of the stroke volume).
CURVE_RANGES: dict[str, Range] = {
    "ejection_exponent": (2.0, 3.0), "ivr": (0.05, 0.08), "rapid_duration": (0.20, 0.25),
    "rapid_fraction": (0.60, 0.75), "kick_duration": (0.10, 0.15), "kick_fraction": (0.15, 0.20),
}


def sample_cycle(rng: np.random.Generator, frames: int) -> CardiacCycle:
    """Sample heart rate, ED/ES frames and curve shape for a cine of ``frames`` frames.

    ED is frame 0 for about 75% of subjects, otherwise the last frame or a small offset; ES lies
    30-45% of the cycle after ED, later at higher heart rates (systole shortens less than
    diastole).
    """
    heart_rate = float(rng.uniform(55.0, 90.0))
    es_fraction = 0.30 + 0.15 * (heart_rate - 55.0) / 35.0 + rng.normal(0.0, 0.01)
    es_fraction = float(np.clip(es_fraction, 0.30, 0.45))
    u = rng.random()
    if u < 0.75:
        ed = 0
    elif u < 0.87:
        ed = frames - 1
    else:
        ed = int(rng.integers(1, 4))
    es_offset = int(np.clip(round(es_fraction * frames), 2, frames - 3))
    es = (ed + es_offset) % frames
    rr_ms = 60000.0 / heart_rate
    return CardiacCycle(
        frames=frames,
        ed_frame=ed,
        es_frame=es,
        heart_rate=heart_rate,
        es_phase=es_offset / frames,
        **draw_ranges(rng, CURVE_RANGES),
        rv_delay=float(rng.uniform(10.0, 30.0) / rr_ms),
    )
