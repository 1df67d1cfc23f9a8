"""Static torso around the heart: body wall, lungs, spine, descending aorta, liver and stomach.

All structures are in world RAS+ millimetres (x to the patient's right, y anterior, z superior),
extruded along z where that is anatomically reasonable and bounded by the diaphragm domes below.
The heart model paints over this wherever it has tissue.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Torso
from .tissues import SmoothField, Tissue


class TorsoModel:
    """Tissue classification of static world points for one subject.

    Args:
        torso: sampled body parameters.
        rng: random generator for the lung-vessel and fat-streak fields.
    """

    def __init__(self, torso: Torso, rng: np.random.Generator) -> None:
        self.torso = torso
        self.vessels = SmoothField(rng, components=16, wavelength=(6.0, 14.0))
        self.streaks = SmoothField(rng, components=10, wavelength=(15.0, 45.0))
        t = torso
        cx, cy = t.centre
        wall = t.fat + t.muscle
        self.spine = np.array([cx, cy - t.half_depth + wall + 12.0 + t.spine_radius])
        self.canal = self.spine - np.array([0.0, t.spine_radius + 9.0])
        self.aorta = self.spine + np.array([-24.0, t.spine_radius + t.aorta_radius + 2.0])

    def classify(self, points: np.ndarray) -> np.ndarray:
        """Tissue codes (uint8) of world points (..., 3)."""
        t = self.torso
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        cx, cy = t.centre
        tissue = np.full(x.shape, Tissue.AIR, dtype=np.uint8)

        def ellipse(shrink: float) -> np.ndarray:
            return ((x - cx) / (t.half_width - shrink)) ** 2 + ((y - cy) / (t.half_depth - shrink)) ** 2 < 1.0

        body = ellipse(0.0)
        tissue[body] = Tissue.FAT
        tissue[ellipse(t.fat)] = Tissue.MUSCLE
        inner = ellipse(t.fat + t.muscle)
        # Mediastinal / abdominal soft tissue with fatty streaks.
        tissue[inner] = Tissue.MEDIASTINUM
        streak = np.zeros(x.shape, dtype=bool)
        streak[inner] = self.streaks(points[inner]) > 0.9
        tissue[streak] = Tissue.FAT

        dome_right = t.diaphragm_right - ((x - (cx + 60.0)) ** 2 + (y - cy) ** 2) / 400.0
        dome_left = t.diaphragm_left - ((x - (cx - 60.0)) ** 2 + (y - cy) ** 2) / 400.0
        below = np.where(x > cx - 10.0, z < dome_right, z < dome_left)
        lung_axes = t.lung_half_axes
        lungs = np.zeros(x.shape, dtype=bool)
        for side in (-1.0, 1.0):
            centre = np.array([cx + side * t.lung_separation, cy - 15.0, 40.0])
            rel = (points - centre) / lung_axes
            lungs |= (rel**2).sum(-1) < 1.0
        lungs &= inner & ~below
        tissue[lungs] = Tissue.LUNG
        vessel = np.zeros(x.shape, dtype=bool)
        vessel[lungs] = self.vessels(points[lungs]) > 2.1
        tissue[vessel] = Tissue.BLOOD

        liver = inner & (z < dome_right) & (x > cx - 70.0)
        tissue[liver] = Tissue.LIVER
        stomach_centre = np.array([cx - 70.0, cy + 15.0, t.diaphragm_left - 0.8 * t.stomach_radius])
        rel = points - stomach_centre
        stomach = inner & ((rel**2).sum(-1) < t.stomach_radius**2)
        air_level = stomach_centre[2] + t.stomach_radius * (1.0 - 2.0 * t.stomach_air)
        tissue[stomach] = Tissue.FLUID
        tissue[stomach & (z > air_level)] = Tissue.AIR

        def disc(centre: np.ndarray, radius: float) -> np.ndarray:
            return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2

        paraspinal = disc(self.canal + np.array([-28.0, -4.0]), 22.0) | disc(self.canal + np.array([28.0, -4.0]), 22.0)
        tissue[paraspinal & body] = Tissue.MUSCLE
        tissue[disc(self.spine, t.spine_radius)] = Tissue.BONE
        tissue[disc(self.canal, 7.0)] = Tissue.FLUID
        tissue[disc(self.aorta, t.aorta_radius + 1.5)] = Tissue.MUSCLE
        tissue[disc(self.aorta, t.aorta_radius)] = Tissue.BLOOD
        return tissue
