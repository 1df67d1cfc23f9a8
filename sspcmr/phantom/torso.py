"""Static torso around the heart: body wall, ribs, lungs, mediastinum, spine, aorta, liver, stomach.

All structures are in world RAS+ millimetres (x to the patient's right, y anterior, z superior),
extruded along z where that is anatomically reasonable and bounded by the diaphragm domes below.
The heart model paints over this wherever it has tissue.

The axial body outline is a polar curve ``B(theta)`` about the body centre (theta = atan2(y, x):
+90 degrees anterior, -90 posterior, 0 the patient's right): an ellipse-like anterior chest
(superellipse exponent 1.8-2.3), a flatter back (exponent 2.6-4.0), left-right asymmetry of the
half width (up to +-5%), a smooth harmonic perturbation (orders 1-5, 3-6% in all) and a shallow
spinal groove; in women two anterolateral breast bulges (10-40 mm). Layers are measured inwards
along the ray: subcutaneous fat of angle-dependent thickness (a per-subject base of 3-14 mm times
a smooth 0.45-1.55 profile, plus the breasts), a chest-wall muscle layer (intercostal/serratus
3-7 mm, plus lens-shaped pectoral muscles up to 7-20 mm anterolaterally and latissimus dorsi up
to 5-14 mm posterolaterally), and a 6-9 mm rib layer in which oblique ribs (period 24-34 mm along
z, sloping down anteriorly) are bone and the rest is intercostal muscle; the sternum is an
anterior midline bone plate. Inside, the lungs fill the thoracic cavity above the diaphragm
domes except a mediastinal band (the cardiac notch widens it to the left anteriorly); the heart
is painted over them, so they wrap around it. Lung vessels are tubes: the intersection of two
thin level sets of smooth random fields, thicker towards the hilum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Torso
from .noise import AngularProfile, BandNoise
from .sampling import Range, draw_ranges
from .tissues import Tissue


@dataclass
class BodyShape:
    """Per-subject outline and body-wall parameters (sampled by :func:`sample_body_shape`)."""

    anterior_exponent: float
    posterior_exponent: float
    asymmetry: float  # relative difference of the left and right half widths
    outline: AngularProfile
    spinal_groove: float  # mm
    fat_base: float  # mm
    fat_profile: AngularProfile
    wall: float  # intercostal + serratus muscle, mm
    pectoral: float  # peak pectoral thickness, mm
    pectoral_angle: float  # radians from the anterior midline
    latissimus: float  # mm
    latissimus_angle: float  # radians from the posterior midline
    breast: float  # mm (0 for men)
    breast_angle: float  # radians from the anterior midline
    rib_layer: float  # mm
    rib_period: float  # mm along z
    rib_slope: float  # z drop per mm of arc from the spine
    rib_duty: float  # fraction of the period that is rib
    rib_phase: float  # mm
    mediastinum_half_width: float  # mm
    cardiac_notch: float  # mm, extra left widening of the mediastinum anteriorly


#: Rib-layer and mediastinum ranges (mm; the rib slope in mm of z per mm of arc, the duty a fraction of
#: the period), drawn in this order after the body outline and wall.
RIB_AND_MEDIASTINUM_RANGES: dict[str, Range] = {
    "rib_layer": (6.0, 9.0), "rib_period": (24.0, 34.0), "rib_slope": (0.25, 0.45), "rib_duty": (0.35, 0.5),
    "rib_phase": (0.0, 40.0), "mediastinum_half_width": (16.0, 28.0), "cardiac_notch": (10.0, 30.0),
}


def sample_body_shape(rng: np.random.Generator, sex: str, fat: float) -> BodyShape:
    """Sample the outline and wall of one body.

    Args:
        rng: random generator.
        sex: ``"M"`` or ``"F"``.
        fat: the torso's sampled subcutaneous fat (5-25 mm); the base thickness here is
            ``2 + 0.45 * fat`` (about 4-13 mm) before the angular profile.
    """
    male = sex == "M"
    return BodyShape(
        anterior_exponent=float(rng.uniform(1.8, 2.3)),
        posterior_exponent=float(rng.uniform(2.6, 4.0)),
        asymmetry=float(rng.uniform(-0.05, 0.05)),
        outline=AngularProfile(rng, float(rng.uniform(0.03, 0.06))),
        spinal_groove=float(rng.uniform(0.0, 6.0)),
        fat_base=float(np.clip(2.0 + 0.45 * fat + rng.normal(0.0, 1.5), 3.0, 14.0)),
        fat_profile=AngularProfile(rng, float(rng.uniform(0.25, 0.55)), orders=(1, 2, 3, 4)),
        wall=float(rng.uniform(3.0, 7.0)),
        pectoral=float(rng.uniform(10.0, 20.0) if male else rng.uniform(7.0, 13.0)),
        pectoral_angle=float(rng.uniform(0.45, 0.75)),
        latissimus=float(rng.uniform(5.0, 14.0)),
        latissimus_angle=float(rng.uniform(0.9, 1.3)),
        breast=0.0 if male else float(rng.uniform(10.0, 40.0)),
        breast_angle=float(rng.uniform(0.55, 0.85)),
        **draw_ranges(rng, RIB_AND_MEDIASTINUM_RANGES),
    )


def _bump(theta: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Smooth bump of angular half-width ``width`` around ``centre`` (wrapped angles)."""
    d = np.angle(np.exp(1j * (theta - centre)))
    return np.exp(-0.5 * (d / (0.5 * width)) ** 2)


class TorsoModel:
    """Tissue classification of static world points for one subject.

    Args:
        torso: sampled body parameters.
        rng: random generator for the body shape, lung-vessel and fat-streak fields.
        sex: ``"M"`` or ``"F"`` (breasts, pectoral size).
    """

    def __init__(self, torso: Torso, rng: np.random.Generator, sex: str = "M") -> None:
        self.torso = torso
        self.shape = sample_body_shape(rng, sex, torso.fat)
        self.vessel_a = BandNoise(rng, 24, (14.0, 45.0), slope=0.3)
        self.vessel_b = BandNoise(rng, 24, (14.0, 45.0), slope=0.3)
        self.streaks = BandNoise(rng, 24, (8.0, 40.0), slope=0.5)
        self.edges = BandNoise(rng, 16, (20.0, 80.0), slope=0.5)
        self.glands = BandNoise(rng, 24, (10.0, 40.0), slope=0.3)
        t = torso
        cx, cy = t.centre
        back = float(self.outline(np.array([-np.pi / 2]))[0])
        post_fat = float(self.fat(np.array([-np.pi / 2]))[0])
        self.canal = np.array([cx, cy - back + post_fat + 30.0])
        self.spine = self.canal + np.array([0.0, t.spine_radius + 9.0])
        self.aorta = self.spine + np.array([-24.0, t.spine_radius + t.aorta_radius + 2.0])
        self.oesophagus = self.aorta + np.array([20.0, 0.6 * t.aorta_radius + 6.0])
        self.oesophagus_air = bool(rng.random() < 0.5)
        front = float(self.outline(np.array([np.pi / 2]))[0])
        self.sternum_front = cy + front - float(self.fat(np.array([np.pi / 2]))[0])

    # -- outline and layers (mm along the ray from the body centre) --------------------------------
    def outline(self, theta: np.ndarray) -> np.ndarray:
        """Skin radius B(theta) in mm."""
        t, s = self.torso, self.shape
        c, sn = np.cos(theta), np.sin(theta)
        half_width = t.half_width * (1.0 + s.asymmetry * c)
        p = s.anterior_exponent + (s.posterior_exponent - s.anterior_exponent) * np.clip(-sn, 0.0, 1.0)
        radius = 1.0 / ((np.abs(c) / half_width) ** p + (np.abs(sn) / t.half_depth) ** p) ** (1.0 / p)
        radius = radius * s.outline(theta) - s.spinal_groove * _bump(theta, -np.pi / 2, 0.25)
        return radius + self._breasts(theta)

    def _breasts(self, theta: np.ndarray) -> np.ndarray:
        s = self.shape
        if s.breast <= 0.0:
            return np.zeros_like(theta)
        left, right = np.pi / 2 - s.breast_angle, np.pi / 2 + s.breast_angle
        return s.breast * (_bump(theta, left, 0.7) + _bump(theta, right, 0.7))

    def fat(self, theta: np.ndarray) -> np.ndarray:
        """Subcutaneous fat thickness (mm) along the ray (breast tissue included)."""
        s = self.shape
        return s.fat_base * np.clip(s.fat_profile(theta), 0.45, 1.55) + self._breasts(theta)

    def muscle(self, theta: np.ndarray) -> np.ndarray:
        """Chest-wall muscle thickness (mm): intercostal/serratus plus pectoral and latissimus lenses."""
        s = self.shape
        pect = _bump(theta, np.pi / 2 - s.pectoral_angle, 0.9) + _bump(theta, np.pi / 2 + s.pectoral_angle, 0.9)
        lat = _bump(theta, -np.pi / 2 - s.latissimus_angle, 0.8) + _bump(theta, -np.pi / 2 + s.latissimus_angle, 0.8)
        return s.wall + s.pectoral * pect + s.latissimus * lat

    def classify(self, points: np.ndarray) -> np.ndarray:
        """Tissue codes (uint8) of world points (..., 3).

        Painted outside in, each layer over the last: body wall, thoracic cavity (mediastinum, then
        lungs above the diaphragm), liver, soft tissue and stomach, then spine, aorta and oesophagus.
        """
        t = self.torso
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        cx, cy = t.centre
        dx, dy = x - cx, y - cy
        r = np.hypot(dx, dy)
        tissue = np.full(x.shape, Tissue.AIR, dtype=np.uint8)
        body, cavity_edge = self._paint_body_wall(points, dx, dy, r, tissue)
        inner = r < cavity_edge
        tissue[inner] = Tissue.MEDIASTINUM
        dome_right = t.diaphragm_right - ((x - (cx + 60.0)) ** 2 + (y - cy) ** 2) / 400.0
        dome_left = t.diaphragm_left - ((x - (cx - 60.0)) ** 2 + (y - cy) ** 2) / 400.0
        below = np.where(x > cx - 10.0, z < dome_right, z < dome_left)
        lungs = self._paint_lungs(points, dy, inner, below, r < cavity_edge - 2.0, tissue)
        liver = inner & (z < dome_right) & (x > cx - 70.0)
        tissue[liver] = Tissue.LIVER
        self._paint_abdomen(points, inner, inner & ~lungs & ~liver, tissue)
        self._paint_spine_and_vessels(x, y, body, below, tissue)
        return tissue

    def _paint_body_wall(self, points: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray,
                         tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paint fat, breast glands, chest-wall muscle, ribs and sternum; return the body mask and the
        radius of the thoracic cavity's edge along each point's ray."""
        s = self.shape
        theta = np.arctan2(dy, dx)
        skin = self.outline(theta)
        fat = self.fat(theta)
        under_fat = skin - fat
        under_muscle = under_fat - self.muscle(theta)
        cavity_edge = under_muscle - s.rib_layer
        body = r < skin
        tissue[body] = Tissue.FAT
        if s.breast > 0.0:  # fibroglandular streaks inside the breast fat
            breast = body & (r > under_fat + 0.35 * s.fat_base) & (self._breasts(theta) > 3.0)
            breast[breast] = self.glands(points[breast]) > 0.4
            tissue[breast] = Tissue.MUSCLE  # fibroglandular tissue: intermediate, like muscle
        tissue[r < under_fat] = Tissue.MUSCLE
        # Rib layer: oblique ribs (bone) between intercostal muscle, sternum at the front midline.
        rib_layer = (r < under_muscle) & (r >= cavity_edge)
        arc = np.abs(np.angle(np.exp(1j * (theta + np.pi / 2)))) * under_muscle  # arc length from the spine
        phase = np.mod(points[..., 2] + s.rib_slope * arc + s.rib_phase, s.rib_period) / s.rib_period
        anterior = np.abs(dx) < 30.0
        ribs = rib_layer & (phase < s.rib_duty) & ~(anterior & (dy > 0))
        tissue[ribs] = Tissue.BONE
        y = points[..., 1]
        sternum = (np.abs(dx) < 13.0) & (dy > 0) & (y < self.sternum_front - 3.0) & (y > self.sternum_front - 15.0)
        tissue[sternum & body] = Tissue.BONE
        return body, cavity_edge

    def _paint_lungs(self, points: np.ndarray, dy: np.ndarray, inner: np.ndarray, below: np.ndarray,
                     off_pleura: np.ndarray, tissue: np.ndarray) -> np.ndarray:
        """Paint the lungs (the cavity above the domes minus the mediastinal band, wider to the left in
        front) and their vessels; return the lung mask."""
        t, s = self.torso, self.shape
        x = points[..., 0]
        mid_x = t.centre[0] - 5.0
        front = np.clip(dy / t.half_depth, 0.0, 1.0)
        wobble = np.zeros(x.shape)
        wobble[inner] = 5.0 * self.edges(points[inner])
        right_edge = mid_x + s.mediastinum_half_width + wobble
        left_edge = mid_x - s.mediastinum_half_width - s.cardiac_notch * front + wobble
        lungs = inner & ~below & ((x > right_edge) | (x < left_edge))
        lungs &= off_pleura  # pleura and extrapleural fat
        tissue[lungs] = Tissue.LUNG
        if lungs.any():
            lung_points = points[lungs]
            # Vessels thicken towards the hilum (near the mediastinum, posterior half).
            hilum = np.exp(-np.abs(x[lungs] - mid_x) / 60.0) * (1.0 + 0.5 * (dy[lungs] < 0))
            width = 0.10 + 0.22 * hilum
            vessel = (np.abs(self.vessel_a(lung_points)) < width) & (np.abs(self.vessel_b(lung_points)) < width)
            idx = np.flatnonzero(lungs.ravel())[vessel]
            tissue.reshape(-1)[idx] = Tissue.BLOOD
        return lungs

    def _paint_abdomen(self, points: np.ndarray, inner: np.ndarray, soft: np.ndarray, tissue: np.ndarray) -> None:
        """Paint fatty streaks in the mediastinal / abdominal soft tissue and the stomach (fluid under air)."""
        t = self.torso
        cx, cy = t.centre
        streak = np.zeros(inner.shape, dtype=bool)
        streak[soft] = self.streaks(points[soft]) > 0.9
        tissue[streak] = Tissue.FAT
        stomach_centre = np.array([cx - 70.0, cy + 15.0, t.diaphragm_left - 0.8 * t.stomach_radius])
        rel = points - stomach_centre
        stomach = inner & ((rel**2).sum(-1) < t.stomach_radius**2)
        air_level = stomach_centre[2] + t.stomach_radius * (1.0 - 2.0 * t.stomach_air)
        tissue[stomach] = Tissue.FLUID
        tissue[stomach & (points[..., 2] > air_level)] = Tissue.AIR

    def _paint_spine_and_vessels(self, x: np.ndarray, y: np.ndarray, body: np.ndarray, below: np.ndarray,
                                 tissue: np.ndarray) -> None:
        """Paint the paraspinal muscles, vertebra, spinal canal, descending aorta and oesophagus (axial discs)."""
        t = self.torso

        def disc(centre: np.ndarray, radius: float) -> np.ndarray:
            return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2

        paraspinal = disc(self.canal + np.array([-28.0, -4.0]), 22.0) | disc(self.canal + np.array([28.0, -4.0]), 22.0)
        tissue[paraspinal & body] = Tissue.MUSCLE
        tissue[disc(self.spine, t.spine_radius)] = Tissue.BONE
        tissue[disc(self.canal, 7.0)] = Tissue.FLUID
        tissue[disc(self.aorta, t.aorta_radius + 1.5)] = Tissue.MUSCLE
        tissue[disc(self.aorta, t.aorta_radius)] = Tissue.BLOOD
        tissue[disc(self.oesophagus, 8.0) & ~below] = Tissue.MUSCLE
        if self.oesophagus_air:
            tissue[disc(self.oesophagus, 2.5) & ~below] = Tissue.AIR
