"""Lightning-free loss modules.

``segmentation``: :class:`DiceCELoss`, the reference baseline soft Dice + cross-entropy (protocol 5.1);
``deep_supervision``: :class:`DeepSupervisionLoss`, its 2^−i weighted sum over the U-Net heads.
"""

from sspcmr.losses.deep_supervision import DeepSupervisionLoss, deep_supervision_weights
from sspcmr.losses.segmentation import DiceCELoss, SegmentationLossOutput

__all__ = [
    "DeepSupervisionLoss",
    "deep_supervision_weights",
    "DiceCELoss",
    "SegmentationLossOutput",
]
