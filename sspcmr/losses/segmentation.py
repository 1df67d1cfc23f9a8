"""Soft Dice + cross-entropy loss of the reference segmentation baseline (docs/reference.md#segmentation-loss).

The reference trains every U-Net (scratch baseline and fine-tuning) with, per output scale,

    total = 0.5 · CE + 0.5 · Dice

where CE is PyTorch's cross-entropy with *probability* (one-hot float) targets averaged over batch and
pixels for all classes, and Dice is a **per-slice** soft Dice over the foreground classes with smooth 1e-5:

    p = softmax(z),  I_bc = Σ p·y,  P_bc = Σ p,  G_bc = Σ y  (sums over the pixels of slice b)
    dice_bc = (2 I_bc + smooth) / (P_bc + G_bc + smooth)
    Dice = (1/B) Σ_b Σ_c w_c (1 − dice_bc),   w = [0, 1, 1, 1] / 3

Relation to MONAI 1.6 ``monai.losses.DiceCELoss(softmax=True, include_background=False,
smooth_nr=smooth_dr=1e-5, lambda_ce=0.5, lambda_dice=0.5)`` on one-hot float targets: identical (tested).
MONAI's denominator ``2(tp + fp/2 + fn/2)`` equals P + G, its ``mean`` reduction averages over the B × C'
sample-class pairs, which is our weighted sum when the weights are uniform over the C' included classes, and
its ``ce`` passes a float target with C channels to ``nn.CrossEntropyLoss`` as class probabilities (older
MONAI versions took ``argmax`` of it, which only differs for soft targets). Differences appear only with
non-uniform class weights: MONAI's ``weight`` also weights the CE, and its Dice ``mean`` divides the weighted
sum by C' instead of normalising the weights to sum 1, so MONAI = ours · Σw / C'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sspcmr.losses.precision import autocast_off
from sspcmr.transforms.host_to_device import host_to_device

__all__ = ["DiceCELoss", "SegmentationLossOutput"]


class SegmentationLossOutput(NamedTuple):
    """Scalar loss components; ``torch.stack(output)`` is the reference's vector [total, CE, Dice].

    Attributes:
        total: ``ce_weight · ce + dice_weight · dice``, the value to back-propagate.
        ce: The cross-entropy term (unweighted by ``ce_weight``).
        dice: The soft Dice loss term (unweighted by ``dice_weight``).
    """

    total: torch.Tensor
    ce: torch.Tensor
    dice: torch.Tensor


class DiceCELoss(nn.Module):
    """Cross-entropy with probability targets plus per-slice soft Dice over the foreground classes.

    Reproduces the reference baseline loss (docs/reference.md#segmentation-loss, #table1-essentials): "0.5 CE (soft
    targets, all classes) + 0.5 per-slice soft Dice over foreground classes, smooth 1e-5". The defaults are that
    recipe for any number of classes C: Dice class weights 1/(C−1) on the foreground classes, 0 on class 0.

    Because the Dice is computed per slice, a slice on which a class is absent (G = 0, so I = 0) gives
    ``dice = smooth / (P + smooth)`` for that class: its loss term is ≈ 1 as soon as the predicted mass P is
    well above ``smooth`` (0.5 at P = smooth) and only falls to ≈ 0 when P ≪ ``smooth``. The reference thus
    strongly penalises any predicted mass on slices where a class is absent (docs/reference.md#quirk-per-slice-dice).
    ``batch_dice=True`` instead sums I, P and G over the whole batch before the ratio (nnU-Net's "batch
    Dice"), which removes this effect; it is not the reference behaviour.

    Args:
        ce_weight: Weight of the cross-entropy term in ``total`` (reference: 0.5).
        dice_weight: Weight of the Dice term in ``total`` (reference: 0.5).
        include_background: Whether class 0 takes part in the Dice term (reference: False, i.e. its class
            weight is 0). The cross-entropy always uses all classes, as in the reference.
        class_weights: Optional Dice weights for all C classes (class 0 included), non-negative; with
            ``include_background=False`` the class 0 entry is set to 0. They are normalised to sum 1 after
            that. None (default) means uniform weights over the included classes.
        batch_dice: Sum the Dice statistics over the batch too (nnU-Net style) instead of per slice
            (reference: False).
        smooth: Constant added to the Dice numerator and denominator (reference: 1e-5).

    Raises:
        ValueError: If a weight or ``smooth`` is negative, or ``class_weights`` leaves no positive weight.
    """

    def __init__(
        self,
        ce_weight: float = 0.5,
        dice_weight: float = 0.5,
        include_background: bool = False,
        class_weights: Sequence[float] | None = None,
        batch_dice: bool = False,
        smooth: float = 1e-5,
    ) -> None:
        super().__init__()
        if ce_weight < 0 or dice_weight < 0:
            raise ValueError(f"ce_weight and dice_weight must be >= 0, got {ce_weight} and {dice_weight}")
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.include_background = include_background
        self.batch_dice = batch_dice
        self.smooth = float(smooth)
        self.class_weights: tuple[float, ...] | None = None
        if class_weights is not None:
            weights = [float(w) for w in class_weights]
            if any(w < 0 for w in weights):
                raise ValueError(f"class_weights must be non-negative, got {list(class_weights)}")
            if not include_background and weights:
                weights[0] = 0.0
            if sum(weights) <= 0:
                raise ValueError(
                    f"class_weights {list(class_weights)} leave no positive Dice weight "
                    f"(include_background={include_background})"
                )
            # Normalised in Python double precision, so 1/3 is exact to the loss's dtype.
            self.class_weights = tuple(w / sum(weights) for w in weights)

    def dice_weights(
        self, num_classes: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The normalised Dice class weights w (sum 1) for ``num_classes`` classes, class 0 included.

        Returns:
            (C,) tensor on ``device`` with ``dtype``.

        Raises:
            ValueError: If ``class_weights`` was given for a different number of classes, or
                ``num_classes`` leaves no class for the Dice term.
        """
        if self.class_weights is not None:
            if len(self.class_weights) != num_classes:
                raise ValueError(
                    f"class_weights has {len(self.class_weights)} entries but the logits have {num_classes} classes"
                )
            # Built on the host and copied without a host synchronisation.
            weights = torch.tensor(self.class_weights, dtype=torch.float64)
            return host_to_device(weights, device or "cpu", dtype or torch.get_default_dtype())
        first = 0 if self.include_background else 1
        if num_classes <= first:
            raise ValueError(
                f"Dice needs a foreground class, got {num_classes} class(es) with include_background=False"
            )
        # Reference weights [0, 1, 1, 1] normalised to sum 1 (docs/reference.md#segmentation-loss, step 4); built on the
        # device.
        weights = torch.full((num_classes,), 1.0 / (num_classes - first), device=device, dtype=dtype)
        weights[:first] = 0.0
        return weights

    def soft_dice(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft Dice coefficients, before the class weighting.

        Args:
            logits: (B, C, *spatial) raw network outputs.
            target: (B, C, *spatial) one-hot (or soft) float targets.

        Returns:
            (B, C) per-slice coefficients dice_bc, or (C,) with ``batch_dice=True``.
        """
        probs = torch.softmax(logits, dim=1)
        # Per-slice statistics: sum over the pixels only; over the batch too for batch Dice.
        dims = tuple(range(2, logits.ndim))
        if self.batch_dice:
            dims = (0, *dims)
        intersection = (probs * target).sum(dims)
        predicted = probs.sum(dims)
        ground_truth = target.sum(dims)
        return (2.0 * intersection + self.smooth) / (predicted + ground_truth + self.smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> SegmentationLossOutput:
        """Compute the loss components.

        Args:
            logits: (B, C, H, W) raw network outputs (any number of spatial dimensions works), any float dtype:
                half precision is computed in float32, whatever the autocast precision.
            target: (B, C, H, W) one-hot float targets with the same shape as ``logits``; soft
                (probability) targets are accepted, as by PyTorch's cross-entropy.

        Returns:
            :class:`SegmentationLossOutput` of scalar tensors (total, ce, dice), float32 (float64 for float64
            logits).

        Raises:
            ValueError: If the shapes differ or the logits have fewer than 3 dimensions.
        """
        if logits.shape != target.shape or logits.ndim < 3:
            raise ValueError(
                f"logits and target must both be (B, C, H, W) with equal shapes, got {tuple(logits.shape)} "
                f"and {tuple(target.shape)}"
            )
        # Softmax sums over 256² pixels and the Dice ratio's 1e-5 smoothing are lost in half precision: float16
        # and bfloat16 inputs are cast to float32 (float32 and float64 stay), and autocast is off so that no
        # operation is lowered again.
        dtype = torch.promote_types(logits.dtype, torch.float32)
        logits, target = logits.to(dtype), target.to(dtype)
        with autocast_off(logits.device):
            # Probability-target cross-entropy, mean over batch and pixels, all classes
            # (docs/reference.md#segmentation-loss, CE).
            ce = F.cross_entropy(logits, target)
            dice_bc = self.soft_dice(logits, target)
            weights = self.dice_weights(logits.shape[1], dice_bc.device, dice_bc.dtype)
            # (1/B) Σ_b Σ_c w_c (1 − dice_bc); with batch_dice there is a single "sample".
            dice = ((1.0 - dice_bc) * weights).sum(-1).mean()
            total = self.ce_weight * ce + self.dice_weight * dice
        return SegmentationLossOutput(total, ce, dice)

    def extra_repr(self) -> str:
        return (
            f"ce_weight={self.ce_weight}, dice_weight={self.dice_weight}, include_background="
            f"{self.include_background}, batch_dice={self.batch_dice}, smooth={self.smooth}"
        )
