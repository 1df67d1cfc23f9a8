"""Lightning-free loss functions and modules.

``segmentation``: :class:`DiceCELoss`, the reference baseline soft Dice + cross-entropy (computed by MONAI);
``deep_supervision``: :class:`DeepSupervisionLoss`, its 2^−i weighted sum over the U-Net heads;
``contrastive``: :class:`PositionalContrastiveLoss`, PCL's threshold-positive SupCon loss (docs/reference.md#pcl-loss);
``ntxent``: :class:`NTXentLoss`, SimCLR's NT-Xent (docs/reference.md#simclr-loss), lightly's without its host reads;
``similarity``: :func:`~sspcmr.losses.similarity.self_masked_logits`, the self-masked logits both share;
``reconstruction``: :func:`masked_mse` (masked image modelling) and :func:`restoration_loss` (inpainting);
``heatmap``: :func:`heatmap_loss`, the orientation task's masked heatmap regression.
DINO uses lightly's ``DINOLoss`` directly. Every loss here is computed in float32 under autocast and reads no
value on the host (a training step never waits for the device). The corruptions that the reconstruction losses
undo are in :mod:`sspcmr.corruptions`.
"""

from sspcmr.losses.contrastive import PositionalContrastiveLoss
from sspcmr.losses.deep_supervision import DeepSupervisionLoss, deep_supervision_weights
from sspcmr.losses.heatmap import heatmap_loss
from sspcmr.losses.ntxent import NTXentLoss
from sspcmr.losses.reconstruction import masked_mse, restoration_loss
from sspcmr.losses.segmentation import DiceCELoss, SegmentationLossOutput

__all__ = [
    "DeepSupervisionLoss",
    "deep_supervision_weights",
    "DiceCELoss",
    "SegmentationLossOutput",
    "PositionalContrastiveLoss",
    "NTXentLoss",
    "masked_mse",
    "restoration_loss",
    "heatmap_loss",
]
