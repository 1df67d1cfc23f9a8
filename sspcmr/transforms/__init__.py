"""Batched, device-agnostic augmentation reproducing the reference's per-sample MONAI pipeline.

``geometry``: single-step affine resampling; ``intensity``: MONAI-semantics intensity transforms;
``views``: :class:`Augmenter` turning a native-slice batch into views; ``presets``: the reference's shared
pipelines (a method's own recipe lives with the method).
"""

from sspcmr.transforms.geometry import (
    GeometryAugmentation,
    affine_from_parameters,
    affine_grid,
    build_theta,
    crop_native,
    inverse_theta,
    resample,
    resample_to_native,
    sample_affine,
)
from sspcmr.transforms.intensity import (
    IntensityAugmentation,
    IntensityParams,
    adjust_contrast,
    apply_intensity,
    gaussian_kernels,
    gaussian_smooth,
    sample_intensity,
    standardise,
)
from sspcmr.transforms.presets import augmented_geometry, evaluation, resample_for_evaluation, segmentation_train
from sspcmr.transforms.views import Augmenter, ViewSpec

__all__ = [
    "GeometryAugmentation",
    "affine_from_parameters",
    "affine_grid",
    "build_theta",
    "crop_native",
    "inverse_theta",
    "resample",
    "resample_to_native",
    "sample_affine",
    "IntensityAugmentation",
    "IntensityParams",
    "adjust_contrast",
    "apply_intensity",
    "gaussian_kernels",
    "gaussian_smooth",
    "sample_intensity",
    "standardise",
    "Augmenter",
    "ViewSpec",
    "augmented_geometry",
    "resample_for_evaluation",
    "evaluation",
    "segmentation_train",
]
