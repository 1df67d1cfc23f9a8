"""``FrameState``: the geometry parameters of the heart in one frame of the cardiac cycle (what
:class:`~sspcmr.phantom.heart.HeartModel` and the structures around it draw each frame from)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameState:
    """Geometry parameters of one frame.

    Attributes:
        length: base-plane distance from the apex (mm).
        cavity_scale: ``k(t)``, LV cavity area factor relative to ED.
        wall_scale: ``L_ED / L(t)``, myocardial area factor relative to ED.
        rv_height: ``H(t)``, RV crescent thickness scale (mm).
        deformation: 0 at ED, 1 at ES (drives twist and atrial size).
        rv_deformation: RV systolic fraction, 0 at RV end-diastole, 1 at RV end-systole.
        infarct_scale: cavity area factor inside an ischaemic sector (``cavity_scale`` is then the
            remote one).
    """

    length: float
    cavity_scale: float
    wall_scale: float
    rv_height: float
    deformation: float
    rv_deformation: float = 0.0
    infarct_scale: float = 1.0
