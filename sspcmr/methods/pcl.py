"""``PCL``: positional contrastive learning, slices at similar relative positions are positives.

Reference (docs/reference.md#pcl-loss, #optimisation): SimCLR's network; every pair whose relative slice positions
(slice index / slices in the stack) differ by less than 0.1 is a positive, whatever the subject or frame
(compared in float32, which makes some pairs exactly 0.1 apart positive: ``boundary``, #quirk-pcl-boundary);
SupCon's "outside the log" loss at temperature 0.1 without the T/base_T factor; SGD momentum 0.9, weight decay
1e-5, learning rate 0.1 cosine-annealed over 100 epochs; 64 source slices (128 views) per batch; fp32. Under DDP
the embeddings *and* positions of every rank are gathered. Only the encoder transfers.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from sspcmr.checks import check_choice, check_number
from sspcmr.data import keys as K
from sspcmr.losses.contrastive import BOUNDARIES, PositionalContrastiveLoss
from sspcmr.methods.simclr import SimCLR


class PCL(SimCLR):
    """Positional contrastive learning on the U-Net encoder.

    Args:
        threshold: positions closer than this (strictly) are positives (reference 0.1).
        cyclic: treat positions as cyclic (a difference d > 0.5 counts as 1 - d; reference False).
        weight_decay: weight decay on all parameters (reference 1e-5).
        boundary: pairs exactly ``threshold`` apart in exact arithmetic (docs/reference.md#quirk-pcl-boundary):
            ``reference`` compares the float32 difference with the threshold as the reference does, so float
            rounding makes some of them positive (4 of the 9 adjacent pairs of a 10-slice stack, 9 of the 18
            two-apart pairs of a 20-slice stack); ``exact`` makes all of them negatives, as exact arithmetic says.
        **kwargs: SimCLR's arguments (network, temperature, ``gather_distributed``, which under DDP gathers the
            positions too, ``num_views``, the rest of the SGD recipe), the U-Net, probe and monitor options
            (:class:`~sspcmr.methods.pretrain.Pretraining`), the output grid, intensity convention, centring
            and augmentation seed (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "pcl"

    def __init__(self, threshold: float = 0.1, cyclic: bool = False, weight_decay: float = 1e-5,
                 boundary: Literal["reference", "exact"] = "reference", **kwargs: Any) -> None:
        check_number("threshold", threshold, 0, low_open=True)
        check_choice("boundary", boundary, BOUNDARIES)
        super().__init__(weight_decay=weight_decay, **kwargs)

    def build_criterion(self, gather: bool) -> torch.nn.Module:
        h = self.hparams
        # Only the training criterion gathers, and training batches are drop_last (equal on every rank), so the
        # gather need not exchange the row counts (a host read at every step).
        return PositionalContrastiveLoss(temperature=h.temperature, threshold=h.threshold, cyclic=h.cyclic,
                                         boundary=h.boundary, gather_distributed=gather, equal_rows=True)

    def contrastive_loss(self, criterion: torch.nn.Module, embeddings: torch.Tensor, num_views: int,
                         batch: dict) -> torch.Tensor:
        positions = batch[K.POSITION].to(embeddings.device).float().repeat(num_views)
        return criterion(embeddings.float(), positions)
