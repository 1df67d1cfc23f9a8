"""Positional contrastive loss (PCL) of the reference study (docs/reference.md#pcl-loss, #optimisation).

PCL is SimCLR's network trained with a supervised-contrastive (SupCon) loss whose "labels" are relative slice
positions: two samples are positives when their positions are closer than a threshold, whatever their subject,
frame or view. With z = L2-normalised embeddings, T the temperature and p the relative positions
(slice index / slices in the stack),

    s_ij = z_i · z_j / T
    d_ij = |p_i − p_j|                      (cyclic: d_ij → 1 − d_ij where d_ij > 0.5)
    P(i) = {j ≠ i : d_ij < threshold}          (d_ij computed and compared in float32, see ``boundary``)
    l_i  = −(1/|P(i)|) Σ_{j∈P(i)} [ s_ij − log Σ_{k≠i} exp(s_ik) ]
    loss = mean of l_i over the anchors with |P(i)| > 0      (0 when no anchor has a positive)

This is SupCon's "L_out" form (positives averaged outside the log, every non-self sample in the denominator)
without SupCon's T/base_T factor. With two views of each sample sharing a position and all other samples at
least ``threshold`` apart it reduces to NT-Xent (tested).

SimCLR itself uses lightly's ``NTXentLoss(temperature=0.1, gather_distributed=True)`` directly.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn

from sspcmr.losses.precision import autocast_off
from sspcmr.losses.similarity import self_masked_logits

__all__ = ["PositionalContrastiveLoss"]

# Relative positions are float32 values ``slice / n_slices``; in the reference's plain float32 comparison pairs
# that are exactly ``threshold`` apart in exact arithmetic (e.g. adjacent slices of a 10-slice stack at 0.1) are
# positive or not depending on float rounding (0.7f − 0.6f < 0.1f but 0.3f − 0.2f > 0.1f). ``boundary="exact"``
# shrinks the threshold by far more than the float32 rounding of differences of values in [0, 1] (~1e-7), which
# makes such pairs consistently negative, as the strict inequality says in exact arithmetic.
_BOUNDARY_TOLERANCE = 1e-6
BOUNDARIES = ("reference", "exact")


class PositionalContrastiveLoss(nn.Module):
    """Threshold-positive SupCon loss on relative slice positions (PCL, "L_out" form, no T/base_T factor).

    Anchors without any positive are left out of the mean (their term would be 0/0); the loss is thus the mean
    over the anchors that have at least one positive, across all ranks when gathering. When no anchor has one
    (possible with one view per slice) the loss is 0, still attached to the graph (zero gradients); with two
    views every anchor has its other view. Neither case reads a value on the host, so a training step does not
    wait for the device.

    Under DDP with ``gather_distributed`` every rank contrasts its local rows (the anchors) against the rows of
    all ranks, gathered with gradient (lightly's ``gather``, whose backward all-reduces the gradients), and its
    local loss is ``Σ local anchor losses · world_size / (anchors with positives on all ranks)``. The mean of
    the per-rank losses then equals the single-process loss over the concatenated batch, and the gradients DDP
    averages over ranks equal the single-process gradients (tested on 2 gloo processes).

    Args:
        temperature: Softmax temperature T (reference 0.1).
        threshold: Positions closer than this (strictly) are positives (reference 0.1).
        boundary: How pairs exactly ``threshold`` apart in exact arithmetic are decided
            (docs/reference.md#quirk-pcl-boundary). ``reference``: the reference's plain float32 comparison
            ``|p_i − p_j| < threshold``, so float rounding makes some of them positive (4 of the 9 adjacent
            pairs of a 10-slice stack at 0.1). ``exact``: the threshold shrinks by 1e-6, so all of them are
            negatives. Either way positions are cast to float32 and subtracted there, whatever their dtype or
            the autocast, and the threshold is compared as float32 (PyTorch casts the Python scalar).
        cyclic: Treat positions as cyclic on [0, 1): a distance d > 0.5 counts as 1 − d (reference False).
        gather_distributed: Under an initialised process group with world size > 1, contrast against the
            embeddings and positions of every rank (reference True). Every rank must then pass the same
            number of rows.
        equal_rows: The caller guarantees that every rank passes the same number of rows (training batches
            with ``drop_last``), so the gather skips exchanging and comparing the row counts, which reads them
            on the host (a device synchronisation). False: the counts are compared and unequal ones raise on
            every rank; with True, unequal counts make the gather fail or hang.
        check_positives: Raise when no anchor (on any rank) has a positive instead of returning 0 (a debugging
            aid: it reads the count on the host).
    """

    def __init__(self, temperature: float = 0.1, threshold: float = 0.1, cyclic: bool = False,
                 gather_distributed: bool = True, equal_rows: bool = False, check_positives: bool = False,
                 boundary: Literal["reference", "exact"] = "reference") -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0; got {threshold}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}; got {boundary!r}")
        self.temperature = temperature
        self.threshold = threshold
        self.boundary = boundary
        self.cyclic = cyclic
        self.gather_distributed = gather_distributed
        self.equal_rows = equal_rows
        self.check_positives = check_positives

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, threshold={self.threshold}, boundary={self.boundary!r}, "
                f"cyclic={self.cyclic}, gather_distributed={self.gather_distributed}, equal_rows={self.equal_rows}, "
                f"check_positives={self.check_positives}")

    def positive_mask(self, positions: Tensor, others: Tensor) -> Tensor:
        """(N, M) bool: ``others[j]`` is closer than the threshold to ``positions[i]`` (self pairs included).

        Args:
            positions: (N,) relative positions, any float dtype; cast to float32 first.
            others: (M,) relative positions, any float dtype; cast to float32 first.
        """
        # Which boundary pairs are positive depends on the dtype of the subtraction (float64 makes 5 of the 9
        # adjacent pairs of a 10-slice stack positive, float32 4): fix it to the reference's float32, also
        # under an autocast (which leaves subtraction alone, but disabling it costs nothing and says so).
        with autocast_off(positions.device):
            distance = (positions.float()[:, None] - others.float()[None, :]).abs()
            if self.cyclic:
                distance = torch.where(distance > 0.5, 1.0 - distance, distance)
            if self.boundary == "exact":
                return distance < self.threshold - _BOUNDARY_TOLERANCE
            return distance < self.threshold  # the Python scalar is cast to float32, as in the reference

    def forward(self, embeddings: Tensor, positions: Tensor) -> Tensor:
        """The loss of this rank's rows.

        Args:
            embeddings: (N, D) embeddings, any float dtype; the loss is computed in float32.
            positions: (N,) relative slice positions in [0, 1], any float dtype: cast to float32 (the
                reference's dtype, which decides the pairs exactly ``threshold`` apart; see ``boundary``).

        Returns:
            Scalar float32 loss.

        Raises:
            ValueError: On bad shapes, unequal N across ranks when gathering (unless ``equal_rows``), or when no
                anchor (on any rank) has a positive and ``check_positives`` is set.
        """
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, D); got shape {tuple(embeddings.shape)}")
        if positions.ndim != 1 or positions.shape[0] != embeddings.shape[0]:
            raise ValueError(f"positions must be (N,) with N = {embeddings.shape[0]} rows of embeddings; "
                             f"got shape {tuple(positions.shape)}")
        rank, world_size = lightly_dist.rank(), lightly_dist.world_size()  # (0, 1) without a process group
        distributed = self.gather_distributed and world_size > 1
        device = embeddings.device
        n = embeddings.shape[0]
        # Similarities of unit vectors divided by T = 0.1 reach ±10; fp16/bf16 would lose the small differences
        # the loss lives on, so normalise and exponentiate in float32 whatever the surrounding autocast.
        with autocast_off(device):
            z = F.normalize(embeddings.float(), dim=1)
            positions = positions.to(device=device, dtype=torch.float32)
            z_all, positions_all = self._gather(z, positions, world_size) if distributed else (z, positions)
            # Local anchor i sits in row rank·N + i of the gathered matrix.
            columns = torch.arange(n, device=device) + (rank * n if distributed else 0)
            logits, is_self = self_masked_logits(z, z_all, columns, self.temperature)
            log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
            positive = self.positive_mask(positions, positions_all) & ~is_self
            num_positive = positive.sum(dim=1)
            has_positive = num_positive > 0
            # where() rather than a product: the self entry of log_prob is −inf and 0·(−inf) is NaN.
            positive_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
            anchor_loss = -positive_log_prob / num_positive.clamp(min=1)
            # Anchors without positives contribute exactly 0, but stay in the graph: every rank must run the
            # gather's backward (an all-reduce), or the ranks that do would wait forever.
            local_sum = (anchor_loss * has_positive).sum()
            total = self._count_anchors(has_positive, distributed)
            # DDP averages gradients over ranks, so each rank's loss is scaled by world_size: the mean of the
            # per-rank losses (and gradients) is then the single-process loss over all anchors.
            return local_sum * (world_size if distributed else 1) / total

    def _gather(self, z: Tensor, positions: Tensor, world_size: int) -> tuple[Tensor, Tensor]:
        """Every rank's embeddings (with gradient: lightly's ``gather``) and positions, in rank order."""
        if not self.equal_rows:
            self._check_equal_rows(z.shape[0], world_size, z.device)
        z_all = torch.cat(lightly_dist.gather(z), 0)
        gathered = [torch.empty_like(positions) for _ in range(world_size)]
        dist.all_gather(gathered, positions.detach())  # positions carry no gradient
        return z_all, torch.cat(gathered, 0)

    def _count_anchors(self, has_positive: Tensor, distributed: bool) -> Tensor:
        """Anchors with a positive, summed over the ranks when gathering, at least 1 (the numerator is 0 when
        there is none); a device tensor, never read on the host unless ``check_positives``."""
        count = has_positive.sum()
        if distributed:
            count = count.detach().clone()
            dist.all_reduce(count)
        if self.check_positives and count.item() == 0:
            raise ValueError(f"no anchor has a positive (no two positions closer than threshold="
                             f"{self.threshold}{', cyclic' if self.cyclic else ''}); the loss is undefined")
        return count.clamp(min=1)

    @staticmethod
    def _check_equal_rows(n: int, world_size: int, device: torch.device) -> None:
        """Raise on every rank if the ranks pass different numbers of rows (the gather needs equal shapes)."""
        local = torch.tensor([n], dtype=torch.long, device=device)
        sizes = [torch.empty_like(local) for _ in range(world_size)]
        dist.all_gather(sizes, local)
        counts = [int(s.item()) for s in sizes]
        if len(set(counts)) != 1:
            raise ValueError(f"PositionalContrastiveLoss with gather_distributed needs the same number of rows on "
                             f"every rank; got {counts} (rank order)")
