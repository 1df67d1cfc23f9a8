"""NT-Xent, SimCLR's contrastive loss (docs/reference.md#simclr-loss), in float32 and without host synchronisation.

With z the L2-normalised embeddings of the two views (N rows each per rank, M = N x world size when gathering),
T the temperature and s = z_anchor . z_candidate / T:

    anchors     2N local rows  [z0; z1]
    candidates  2M rows        [z0 of every rank; z1 of every rank]
    l_i  = -s_i,pos + log sum_{k != i} exp(s_ik)      pos: the other view of the same sample
    loss = mean of l_i over the 2N local anchors

It equals lightly's ``NTXentLoss(temperature, gather_distributed)`` (tested), which the reference study's code
path matches. lightly drops the self-similarities by boolean-mask indexing, which on a GPU is a ``nonzero``: the
host waits for the device to learn the output size, at every step. Here they are set to -inf instead
(:func:`~sspcmr.losses.similarity.self_masked_logits`, shared with PCL), and the similarities are computed in
float32 with autocast off: under fp16 the cosines lose the small differences the loss lives on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn

from sspcmr.losses.precision import autocast_off
from sspcmr.losses.similarity import self_masked_logits

__all__ = ["NTXentLoss"]


class NTXentLoss(nn.Module):
    """NT-Xent of two views, the same value and gradients as lightly's ``NTXentLoss`` without a memory bank.

    Under DDP with ``gather_distributed`` every rank contrasts its local anchors against the embeddings of all
    ranks, gathered with gradient (lightly's ``gather``, whose backward all-reduces the gradients); the mean of
    the per-rank losses, and the gradients DDP averages, are then those of the whole batch in one process
    (every rank must pass the same number of rows; tested on 2 gloo processes).

    Args:
        temperature: Softmax temperature T (the reference's 0.1).
        gather_distributed: Under an initialised process group with world size > 1, take the negatives from
            every rank (the reference's single-GPU batch, split over GPUs).
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"

    def forward(self, out0: Tensor, out1: Tensor) -> Tensor:
        """The loss of this rank's rows.

        Args:
            out0: (N, D) embeddings of the first views, any float dtype.
            out1: (N, D) embeddings of the second views, row i the same sample as ``out0[i]``.

        Returns:
            Scalar float32 loss.

        Raises:
            ValueError: If the two views' shapes differ or are not (N, D).
        """
        if out0.ndim != 2 or out0.shape != out1.shape:
            raise ValueError(f"out0 and out1 must both be (N, D); got {tuple(out0.shape)} and {tuple(out1.shape)}")
        rank, world_size = lightly_dist.rank(), lightly_dist.world_size()  # (0, 1) without a process group
        distributed = self.gather_distributed and world_size > 1
        device, n = out0.device, out0.shape[0]
        with autocast_off(device):
            z0, z1 = F.normalize(out0.float(), dim=1), F.normalize(out1.float(), dim=1)
            if distributed:
                z0_all, z1_all = torch.cat(lightly_dist.gather(z0), 0), torch.cat(lightly_dist.gather(z1), 0)
            else:
                z0_all, z1_all = z0, z1
            m = z0_all.shape[0]
            # Local sample i is row rank·N + i of each gathered view; its first view's anchor is row i of the
            # logits, its second view's row N + i.
            sample = torch.arange(n, device=device) + (rank * n if distributed else 0)
            own = torch.cat([sample, sample + m])  # the anchor itself among the candidates
            partner = torch.cat([sample + m, sample])  # the other view of the same sample
            logits, _ = self_masked_logits(torch.cat([z0, z1]), torch.cat([z0_all, z1_all]), own,
                                           self.temperature)  # (2N, 2M)
            return F.cross_entropy(logits, partner)
