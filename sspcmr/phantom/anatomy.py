"""Per-subject sampling of cardiac anatomy, function and pose (millimetres, degrees, mL).

Ranges follow ``docs/synthetic-data.md`` (adult normal values from CMR atlases and the MESA /
Hudsmith / Framingham reference studies, with pathology variants). The heart is described in a
*heart frame*: origin at the epicardial LV apex, unit vector ``long_axis`` pointing from the apex to
the base, ``rv_direction`` perpendicular to it and pointing from the LV axis through the septum to
the RV. Everything is in world RAS+ millimetres (x to the patient's right, y anterior, z superior).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .pathologies import PATHOLOGY_PROBABILITIES, apply_pathology, sample_pathology
from .primitives import rotate, unit
from .sampling import BySex, Range, draw_ranges, uniform


@dataclass
class HeartShape:
    """End-diastolic LV / RV shape and its functional parameters.

    LV contours are nested truncated super-ellipsoids of revolution about the long axis, with an
    elliptical, Fourier-perturbed cross-section; the normalised long-axis coordinate
    ``zeta`` runs from 0 at the base plane to 1 at the epicardial apex.
    """

    pathology: str
    lv_length: float  # epicardial apex -> base plane at ED
    apex_cap: float  # endocardial apex sits this far short of the epicardial apex
    profile_exponent: float  # 2 = ellipsoid, larger = fuller (more cylindrical) base half
    equator_offset: float  # widest section sits this fraction of the length above the base
    endo_radius: float  # mean endocardial radius at the widest section
    wall_thickness: float  # free-wall thickness at mid-ventricle
    septal_extra: float  # added septal thickness (large in asymmetric HCM)
    ellipticity: float  # cross-section axis ratio
    ellipse_angle: float  # radians
    harmonics: np.ndarray  # (K, 3): order, relative amplitude, phase
    base_descent: float  # mm of longitudinal shortening at ES
    twist_base: float  # degrees at ES
    twist_apex: float
    lv_ef: float
    rv_ef: float
    rv_edv_ratio: float  # RV EDV / LV EDV
    rv_top: float  # zeta of the RV outflow top (negative: above the LV base plane)
    rv_end: float  # zeta where the RV ends towards the apex
    rv_half_span: float  # radians: half the angle the RV wraps around the LV at mid-ventricle
    rv_centre_angle: float  # radians, offset of the RV centre from rv_direction
    rv_fullness: float  # window exponent: small = triangular/full, large = thin crescent
    rv_wall: float  # unlabelled RV free wall thickness
    papillary: np.ndarray  # (2, 5): angle, radius, zeta start, zeta end, inset
    trabecular_depth: float
    pericardial_fat: float
    atrium_scale: float
    vessel_scale: float
    rv_skew: float = 0.0  # where the thickest point sits in the span (-1..1; 0 = mid-angle)
    rv_taper: tuple[float, float] = (1.0, 1.0)  # per-horn factors on rv_fullness (negative, positive side)
    rv_retract: float = 0.0  # zeta by which the RV's apical end retracts at RV end-systole
    rv_bulges: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # (K, 5): v, zeta, amp, width v, zeta
    septal_flattening: float = 0.0  # fraction by which the septal LV section is cut flat
    ra_scale: float = 1.0  # extra right-atrial size factor
    infarct: np.ndarray | None = None  # (5,): angle, half width (rad), zeta start, thinning, residual motion
    trabecular_threshold: float = 0.2  # lower = denser trabecular network
    trabecular_start: float = 0.15  # zeta below which there is no trabecular layer


@dataclass
class Pose:
    """Where the heart sits in the torso and how the short-axis stack cuts it."""

    apex: np.ndarray  # world position of the epicardial apex at ED
    long_axis: np.ndarray  # unit, apex -> base
    rv_direction: np.ndarray  # unit, perpendicular to long_axis
    stack_normal: np.ndarray  # unit, short-axis slice normal pointing base -> apex
    lv_offset_in_fov: np.ndarray  # (2,) mm, LV centre relative to the image centre


@dataclass
class Torso:
    """Static body model around the heart (axial ellipses extruded along z, plus organs)."""

    half_width: float
    half_depth: float
    centre: np.ndarray  # (2,) axial centre (x, y)
    fat: float
    muscle: float
    spine_radius: float
    aorta_radius: float
    lung_half_axes: np.ndarray  # (3,)
    lung_separation: float
    diaphragm_right: float  # z of the liver dome apex
    diaphragm_left: float
    stomach_radius: float
    stomach_air: float  # fraction of the stomach filled with air (top part)


@dataclass
class Subject:
    """All sampled parameters of one synthetic subject (no image data)."""

    shape: HeartShape
    pose: Pose
    torso: Torso
    sex: str
    age: int
    height: float | None
    weight: float | None
    texture_seed: int


#: Normal-heart draws, in draw order (mm, fractions of a volume; the RV half span in degrees). Keys are
#: :class:`HeartShape` fields, plus ``diameter`` (the mid-cavity ED diameter) and the two horns' taper factors.
NORMAL_RANGES: dict[str, Range | BySex] = {
    "diameter": BySex((48.0, 56.0), (44.0, 52.0)),
    "wall_thickness": BySex((7.0, 10.0), (6.0, 9.0)),
    "septal_extra": (0.5, 1.5),
    "lv_ef": (0.55, 0.75),
    "rv_ef": (0.50, 0.65),
    "rv_edv_ratio": (1.05, 1.30),
    "lv_length": BySex((84.0, 100.0), (78.0, 94.0)),
    "base_descent": (10.0, 15.0),
    # RV shape: span, fullness (window exponent at mid-ventricle), asymmetry of the two horns.
    "rv_half_span": (60.0, 95.0),
    "rv_fullness": (1.2, 1.8),
    "rv_skew": (-0.25, 0.25),
    "rv_taper_negative": (0.8, 1.25),
    "rv_taper_positive": (0.8, 1.25),
    "rv_wall": (2.0, 4.5),
    "rv_retract": (0.04, 0.10),
    "atrium_scale": (0.85, 1.2),
    "trabecular_depth": (1.0, 3.0),
}

#: Normal values that are not drawn (some pathologies draw or set them).
NORMAL_FIXED: dict[str, float | None] = {
    "ra_scale": 1.0,
    "septal_flattening": 0.0,
    "infarct": None,
    "trabecular_threshold": 0.2,
    "trabecular_start": 0.15,
}


def sample_shape(rng: np.random.Generator, pathology: str, sex: str) -> HeartShape:
    """Sample LV/RV shape and function for one subject.

    Normal hearts draw :data:`NORMAL_RANGES` (mid-cavity ED diameter 44-56 mm, men larger, wall
    6-10 mm with the septum about 1 mm thicker, LV EF 55-75%, RV EDV 1.05-1.3 x LV EDV, RV EF
    50-65%); a pathology then changes some of them as :data:`~.pathologies.PATHOLOGY_CHANGES` lists
    (dilated, hypertrophic, hypertensive, athlete, ischaemic and non-compaction LVs; dilated,
    arrhythmogenic, tetralogy, interatrial and tricuspid RVs; ranges in ``docs/synthetic-data.md``).
    """
    if pathology not in PATHOLOGY_PROBABILITIES:
        raise ValueError(f"unknown pathology {pathology!r}; choose from {sorted(PATHOLOGY_PROBABILITIES)}")
    male = sex == "M"
    values: dict = draw_ranges(rng, NORMAL_RANGES, male)
    values["rv_half_span"] = np.deg2rad(values["rv_half_span"])
    values.update(NORMAL_FIXED, rv_bulges=np.zeros((0, 5)))
    apply_pathology(rng, pathology, values, male)
    return _finish_shape(rng, pathology, values)


def _finish_shape(rng: np.random.Generator, pathology: str, values: dict) -> HeartShape:
    """Draw the parameters no pathology changes (after the pathology's draws) and build the shape."""
    diameter = values.pop("diameter")
    rv_taper = (values.pop("rv_taper_negative"), values.pop("rv_taper_positive"))
    values["rv_half_span"] = float(values["rv_half_span"])
    harmonics = np.stack(
        [np.arange(2, 6, dtype=float), rng.uniform(0.0, 0.04, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1
    )
    # Antero-lateral and postero-medial muscles: angle, radius, level range (zeta), inset.
    papillary = np.array(
        [
            [side * np.deg2rad(rng.uniform(130, 160)), rng.uniform(2.5, 5.0), rng.uniform(0.25, 0.35),
             rng.uniform(0.62, 0.75), rng.uniform(0.5, 0.9)]
            for side in (1.0, -1.0)
        ]
    )
    # Keyword arguments are evaluated in order: the draws below keep the data set's draw order.
    return HeartShape(
        pathology=pathology,
        apex_cap=uniform(rng, (5.0, 8.0)),
        profile_exponent=uniform(rng, (2.4, 3.4)),
        equator_offset=uniform(rng, (0.03, 0.12)),
        endo_radius=diameter / 2.0,
        ellipticity=uniform(rng, (0.85, 1.0)),
        ellipse_angle=uniform(rng, (0.0, np.pi)),
        harmonics=harmonics,
        twist_base=-uniform(rng, (3.0, 7.0)),
        twist_apex=uniform(rng, (5.0, 11.0)),
        rv_top=-uniform(rng, (0.05, 0.12)),
        rv_end=uniform(rng, (0.60, 0.80)),
        rv_centre_angle=np.deg2rad(uniform(rng, (-15.0, 15.0))),
        papillary=papillary,
        pericardial_fat=uniform(rng, (1.5, 6.0)),
        vessel_scale=uniform(rng, (0.85, 1.15)),
        rv_taper=rv_taper,
        **values,
    )


def sample_pose(rng: np.random.Generator, shape: HeartShape) -> Pose:
    """Sample the heart's position and axes in the torso and the short-axis stack tilt.

    The LV long axis points from a posterior-right-superior base towards a left-anterior-inferior
    apex, perturbed by up to about 12 degrees; the RV sits anterior-right of the LV, rotated in
    the short-axis plane by up to 25 degrees; the stack normal is tilted 0-15 degrees from the
    long axis (oblique slices give elliptical rings and asymmetric basal sections).
    """
    apex_dir = unit(np.array([-0.55, 0.50, -0.62]) + rng.normal(0.0, 0.12, 3))
    long_axis = -apex_dir
    rv_hint = np.array([0.55, 0.80, 0.15])
    rv = unit(rv_hint - rv_hint.dot(long_axis) * long_axis)
    rv = rotate(rv, long_axis, np.deg2rad(rng.uniform(-25.0, 25.0)))
    tilt = np.deg2rad(rng.uniform(0.0, 15.0))
    tilt_axis = rotate(rv, long_axis, rng.uniform(0, 2 * np.pi))
    stack_normal = rotate(-long_axis, tilt_axis, tilt)
    mid = np.array([-30.0, 25.0, 0.0]) + rng.normal(0.0, [8.0, 8.0, 6.0])
    apex = mid - 0.5 * shape.lv_length * long_axis
    offset_dir = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(20.0, 40.0) * np.array([np.cos(offset_dir), np.sin(offset_dir)])
    return Pose(apex=apex, long_axis=long_axis, rv_direction=rv, stack_normal=stack_normal,
                lv_offset_in_fov=offset)


def sample_torso(rng: np.random.Generator, sex: str) -> Torso:
    """Sample the body: 280-380 mm wide, 200-280 mm deep, fat 5-25 mm, chest wall 10-20 mm."""
    male = sex == "M"
    return Torso(
        half_width=uniform(rng, (150.0, 190.0) if male else (140.0, 175.0)),
        half_depth=uniform(rng, (105.0, 140.0) if male else (100.0, 130.0)),
        centre=rng.normal(0.0, 6.0, 2),
        fat=uniform(rng, (5.0, 25.0)),
        muscle=uniform(rng, (10.0, 20.0)),
        spine_radius=uniform(rng, (16.0, 21.0)),
        aorta_radius=uniform(rng, (10.0, 14.0)),
        lung_half_axes=np.array([uniform(rng, (55.0, 70.0)), uniform(rng, (75.0, 95.0)), 160.0]),
        lung_separation=uniform(rng, (80.0, 100.0)),
        diaphragm_right=uniform(rng, (-55.0, -30.0)),
        diaphragm_left=uniform(rng, (-75.0, -50.0)),
        stomach_radius=uniform(rng, (35.0, 55.0)),
        stomach_air=uniform(rng, (0.0, 0.5)),
    )


def sample_subject(rng: np.random.Generator, pathology: str | None = None) -> Subject:
    """Sample a complete subject: demographics, heart shape and function, pose and torso."""
    sex = "M" if rng.random() < 0.6 else "F"
    pathology = pathology or sample_pathology(rng)
    shape = sample_shape(rng, pathology, sex)
    height = float(np.round(rng.normal(176 if sex == "M" else 163, 7), 0))
    weight = float(np.round(rng.normal(80 if sex == "M" else 66, 12), 1))
    return Subject(
        shape=shape,
        pose=sample_pose(rng, shape),
        torso=sample_torso(rng, sex),
        sex=sex,
        age=int(rng.integers(18, 85)),
        height=None if rng.random() < 0.15 else height,
        weight=None if rng.random() < 0.15 else weight,
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )
