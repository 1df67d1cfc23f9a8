"""Lightning-free loss modules.

``segmentation``: :class:`DiceCELoss`, the reference baseline soft Dice + cross-entropy (the reference code);
``deep_supervision``: :class:`DeepSupervisionLoss`, its 2^−i weighted sum over the U-Net heads;
``contrastive``: :class:`PositionalContrastiveLoss`, PCL's threshold-positive SupCon loss (the reference code);
``masking``: :class:`PatchMasker` and :func:`masked_mse`, masked image modelling (the reference code);
``inpainting``: :class:`MaskBank`, context prediction / restoration corruption (Dominic et al.).
"""

from sspcmr.losses.contrastive import PositionalContrastiveLoss
from sspcmr.losses.deep_supervision import DeepSupervisionLoss, deep_supervision_weights
from sspcmr.losses.inpainting import MaskBank
from sspcmr.losses.masking import PatchMasker, masked_mse
from sspcmr.losses.segmentation import DiceCELoss, SegmentationLossOutput

__all__ = [
    "DeepSupervisionLoss",
    "deep_supervision_weights",
    "DiceCELoss",
    "SegmentationLossOutput",
    "PositionalContrastiveLoss",
    "PatchMasker",
    "masked_mse",
    "MaskBank",
]
