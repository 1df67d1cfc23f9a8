"""``PCL``: positional contrastive learning, slices at similar relative positions are positives.

Reference code: SimCLR's network; every pair whose relative slice positions
(slice index / slices in the stack) differ by less than 0.1 is a positive, whatever the subject or
frame; SupCon's "outside the log" loss at temperature 0.1 without the T/base_T factor; SGD momentum
0.9, weight decay 1e-5, learning rate 0.1 cosine-annealed over 100 epochs; 64 source slices (128 views)
per batch; fp32. Under DDP the embeddings *and* positions of every rank are gathered. Only the encoder
transfers.
"""

from __future__ import annotations

import torch

from sspcmr.checks import check_number
from sspcmr.data import keys as K
from sspcmr.losses.contrastive import PositionalContrastiveLoss
from sspcmr.methods.simclr import SimCLR


class PCL(SimCLR):
    """Positional contrastive learning on the U-Net encoder.

    Args:
        channels: U-Net channels per stage (reference 32, 64, 128, 256, 512, 512, 512).
        norm: normalisation layer of the U-Net.
        hidden_dim: width of the projection MLP's hidden layers (reference 512).
        projection_dim: embedding size the loss sees (reference 512).
        temperature: temperature (reference 0.1).
        threshold: positions closer than this (strictly) are positives (reference 0.1).
        cyclic: treat positions as cyclic (a difference d > 0.5 counts as 1 - d; reference False).
        gather_distributed: under DDP, contrast against the embeddings and positions of every rank.
        lr: learning rate (reference 0.1), cosine-annealed per epoch.
        momentum: SGD momentum (reference 0.9).
        nesterov: Nesterov momentum (reference False).
        weight_decay: weight decay on all parameters (reference 1e-5).
        probe: fit the online slice-position probe on the validation slices.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: collapse monitors every this many steps (0: ``trainer.log_every_n_steps``).
    """

    method = "pcl"

    def __init__(
        self,
        channels: list[int] | None = None,
        norm: str = "batch",
        hidden_dim: int = 512,
        projection_dim: int = 512,
        temperature: float = 0.1,
        threshold: float = 0.1,
        cyclic: bool = False,
        gather_distributed: bool = True,
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 1e-5,
        probe: bool = True,
        probe_max_samples: int = 4096,
        monitor_every_n_steps: int = 0,
    ) -> None:
        check_number("threshold", threshold, 0, low_open=True)
        super().__init__(channels, norm, hidden_dim, projection_dim, temperature, gather_distributed, lr,
                         momentum, nesterov, weight_decay, probe, probe_max_samples, monitor_every_n_steps)
        self.save_hyperparameters()

    def build_criterion(self, gather: bool) -> torch.nn.Module:
        h = self.hparams
        return PositionalContrastiveLoss(temperature=h.temperature, threshold=h.threshold, cyclic=h.cyclic,
                                         gather_distributed=gather)

    def contrastive_loss(self, criterion: torch.nn.Module, embeddings: torch.Tensor, num_views: int,
                         batch: dict) -> torch.Tensor:
        positions = batch[K.POSITION].to(embeddings.device).float().repeat(num_views)
        return criterion(embeddings.float(), positions)
