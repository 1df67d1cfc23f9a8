"""The reference study's augmentation pipelines as :class:`Augmenter` factories.

Translation bounds are the reference's pixel values at a 256 px output and scale with
``output_size / 256``, so a smaller output (e.g. 64 px in tests) keeps the same bounds relative to its
field of view. ``output_spacing`` is never changed implicitly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from sspcmr.transforms.geometry import GeometryAugmentation
from sspcmr.transforms.intensity import IntensityAugmentation
from sspcmr.transforms.views import Augmenter, ViewSpec

__all__ = ["segmentation_train", "evaluation", "contrastive", "mim", "dino"]

ScaleConvention = Literal["monai", "multiplier"]
Centring = Literal["gt", "image"]
CentreConvention = Literal["reference", "exact"]


def _augmented_geometry(
    output_size: int,
    output_spacing: float,
    centring: Centring,
    centre_convention: CentreConvention,
    scale_range: tuple[float, float] = (0.7, 1.4),
    translation_range: float | None = None,
) -> GeometryAugmentation:
    """Rotation ±180° (p=1), linked scale (p=1), flips (p=0.5 per axis), translation (p=1).

    ``translation_range`` defaults to the reference's ±40 px at 256 px, scaled to ``output_size``.
    """
    return GeometryAugmentation(
        output_size=output_size,
        output_spacing=output_spacing,
        scale_range=scale_range,
        translation_range=40.0 * output_size / 256 if translation_range is None else translation_range,
        centring=centring,
        centre_convention=centre_convention,
    )


def segmentation_train(
    output_size: int = 256,
    output_spacing: float = 1.25,
    scale_convention: ScaleConvention = "monai",
    centring: Centring = "gt",
    centre_convention: CentreConvention = "reference",
) -> Augmenter:
    """The augmented supervised pipeline (baseline and fine-tuning training): one view, GT-centred."""
    geometry = _augmented_geometry(output_size, output_spacing, centring, centre_convention)
    return Augmenter([ViewSpec(geometry, IntensityAugmentation(scale_convention=scale_convention))])


def evaluation(output_size: int = 256, output_spacing: float = 1.25) -> Augmenter:
    """Validation, test and inference: image-centred resampling and standardisation only."""
    geometry = GeometryAugmentation.none(output_size=output_size, output_spacing=output_spacing)
    return Augmenter([ViewSpec(geometry, IntensityAugmentation.none())])


def contrastive(
    views: int = 2,
    output_size: int = 256,
    output_spacing: float = 1.25,
    scale_convention: ScaleConvention = "monai",
    centring: Centring = "gt",
    centre_convention: CentreConvention = "reference",
) -> Augmenter:
    """SimCLR / PCL: ``views`` independent draws of the baseline recipe, written to ``VIEWS``."""
    geometry = _augmented_geometry(output_size, output_spacing, centring, centre_convention)
    intensity = IntensityAugmentation(scale_convention=scale_convention)
    return Augmenter([ViewSpec(geometry, intensity, count=views)])


def mim(
    output_size: int = 256,
    output_spacing: float = 1.25,
    scale_convention: ScaleConvention = "monai",
    centring: Centring = "gt",
    centre_convention: CentreConvention = "reference",
) -> Augmenter:
    """Masked image modelling: one view of the baseline recipe (masking happens in the method)."""
    return segmentation_train(output_size, output_spacing, scale_convention, centring, centre_convention)


def dino(
    output_size: int = 256,
    output_spacing: float = 1.25,
    local_views: int = 6,
    scale_convention: ScaleConvention = "monai",
    centring: Centring = "gt",
    centre_convention: CentreConvention = "reference",
) -> Augmenter:
    """DINO's 8 views (reference 3.4): global "blur", global "solarize", then ``local_views`` local crops.

    Global views are ``output_size`` px with σ in 0.524-1.4; local views are ``output_size // 2`` px with
    σ in 0.313-0.524 and translation ±160 px (at 128 px). Local views keep ``output_spacing``, so their
    field of view is σ · (S/2) · spacing: a quarter of the intended area, replicating the reference.
    """
    base = IntensityAugmentation.dino_base(scale_convention=scale_convention)
    glob = _augmented_geometry(output_size, output_spacing, centring, centre_convention, (0.524, 1.4))
    # ±160 px of the 128 px local grid when output_size is 256.
    local_shift = 160.0 * output_size / 256
    local = _augmented_geometry(
        output_size // 2, output_spacing, centring, centre_convention, (0.313, 0.524), local_shift
    )
    return Augmenter(
        [
            ViewSpec(glob, replace(base, smooth_prob=1.0, smooth_sigma=(0.1, 2.0))),
            ViewSpec(glob, replace(base, solarize_prob=0.2, solarize_threshold=0.0)),
            ViewSpec(local, base, count=local_views),
        ]
    )
