"""Contrastive losses: lightly's NT-Xent (SimCLR) and PositionalContrastiveLoss (PCL) against naive references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lightly.loss import NTXentLoss

from sspcmr.losses.contrastive import PositionalContrastiveLoss
from tests.losses.autocast import assert_float32_under_autocast


def ntxent_reference(view0: torch.Tensor, view1: torch.Tensor, temperature: float) -> float:
    """NT-Xent from its formula, with loops in float64.

    Rows F = [view0; view1] (2B rows), unit-normalised; the positive of anchor i is its other view i ± B;
    l_i = −[s_i,pos − log Σ_{k≠i} exp(s_ik)] with s_ik = F_i·F_k / T; the loss is the mean over the 2B anchors.
    """
    features = torch.cat([view0, view1]).double()
    features = features / features.norm(dim=1, keepdim=True)
    n = features.shape[0]
    half = n // 2
    total = 0.0
    for i in range(n):
        partner = (i + half) % n
        sims = [float(features[i] @ features[k]) / temperature for k in range(n)]
        denominator = sum(math.exp(sims[k]) for k in range(n) if k != i)
        total += -(sims[partner] - math.log(denominator))
    return total / n


def pcl_reference(embeddings: torch.Tensor, positions: list[float], temperature: float, threshold: float,
                  cyclic: bool = False) -> float:
    """PCL from its formula, with loops in float64; anchors without positives are left out of the mean.

    Positives are decided as the reference does (``boundary="reference"``): |p_i − p_j| (and 1 − d when cyclic)
    computed in float32 and compared with the threshold in float32.
    """
    p32 = np.asarray(positions, dtype=np.float32)
    z = embeddings.double()
    z = z / z.norm(dim=1, keepdim=True)
    n = z.shape[0]
    losses = []
    for i in range(n):
        sims = [float(z[i] @ z[k]) / temperature for k in range(n)]
        log_denominator = math.log(sum(math.exp(sims[k]) for k in range(n) if k != i))
        positives = []
        for j in range(n):
            d = np.abs(p32[i] - p32[j])
            if cyclic and d > 0.5:
                d = np.float32(1) - d
            assert d.dtype == np.float32
            if j != i and d < np.float32(threshold):
                positives.append(j)
        if positives:
            losses.append(-sum(sims[j] - log_denominator for j in positives) / len(positives))
    return sum(losses) / len(losses)


@pytest.mark.parametrize(("batch", "dim"), [(2, 3), (5, 16), (16, 8), (32, 128)])
def test_lightly_ntxent_equals_naive_reference(batch: int, dim: int) -> None:
    generator = torch.Generator().manual_seed(batch * 100 + dim)
    view0 = torch.randn(batch, dim, generator=generator)
    view1 = view0 + 0.5 * torch.randn(batch, dim, generator=generator)  # correlated, as real views are
    loss = NTXentLoss(temperature=0.1)(view0, view1)
    assert loss.item() == pytest.approx(ntxent_reference(view0, view1, 0.1), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("batch", [2, 4, 16])
def test_ntxent_of_identical_embeddings_is_log_of_negatives(batch: int) -> None:
    # Every similarity is 1/T, so each anchor's softmax is uniform over its 2B − 1 candidates.
    embeddings = torch.ones(batch, 8)
    assert NTXentLoss(temperature=0.1)(embeddings, embeddings).item() == pytest.approx(math.log(2 * batch - 1),
                                                                                      rel=1e-5)
    positions = torch.zeros(2 * batch)  # every pair positive: PCL gives the same value
    pcl = PositionalContrastiveLoss()(torch.cat([embeddings, embeddings]), positions)
    assert pcl.item() == pytest.approx(math.log(2 * batch - 1), rel=1e-5)


# Several close pairs; 0.02 and 0.97 (and 0.0 and 0.95) are positives only with cyclic positions.
POSITIONS = [0.0, 0.02, 0.05, 0.3, 0.33, 0.38, 0.6, 0.95, 0.97, 0.8]


@pytest.mark.parametrize("cyclic", [False, True])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_pcl_equals_naive_reference(cyclic: bool, temperature: float) -> None:
    generator = torch.Generator().manual_seed(7)
    embeddings = torch.randn(len(POSITIONS), 6, generator=generator)
    criterion = PositionalContrastiveLoss(temperature=temperature, threshold=0.1, cyclic=cyclic)
    loss = criterion(embeddings, torch.tensor(POSITIONS))
    expected = pcl_reference(embeddings, POSITIONS, temperature, 0.1, cyclic)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_cyclic_changes_the_positives() -> None:
    criterion = PositionalContrastiveLoss(threshold=0.1)
    cyclic = PositionalContrastiveLoss(threshold=0.1, cyclic=True)
    positions = torch.tensor([0.02, 0.97, 0.5, 0.55])
    assert criterion.positive_mask(positions, positions)[0].tolist() == [True, False, False, False]
    assert cyclic.positive_mask(positions, positions)[0].tolist() == [True, True, False, False]
    embeddings = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    assert criterion(embeddings, positions).item() != pytest.approx(cyclic(embeddings, positions).item(), rel=1e-3)


@pytest.mark.parametrize(("batch", "dim"), [(4, 8), (9, 32)])
def test_pcl_reduces_to_ntxent_when_only_the_two_views_are_close(batch: int, dim: int) -> None:
    generator = torch.Generator().manual_seed(batch)
    view0 = torch.randn(batch, dim, generator=generator)
    view1 = view0 + torch.randn(batch, dim, generator=generator)
    positions = torch.arange(batch) * 0.105  # distinct samples >= threshold apart
    pcl = PositionalContrastiveLoss(temperature=0.1, threshold=0.1)(torch.cat([view0, view1]), positions.repeat(2))
    assert pcl.item() == pytest.approx(NTXentLoss(temperature=0.1)(view0, view1).item(), rel=1e-5, abs=1e-6)


def stack_positions(n: int) -> torch.Tensor:
    """Relative positions slice / n of an n-slice stack, in float32 as the data sets give them."""
    return torch.arange(n, dtype=torch.float32) / n


# (slices, offset k, positive pairs of slices k apart under "reference", under "exact"): pairs exactly 0.1 apart
# (k/n = 0.1) are positive or not by float32 rounding in the reference; 0.05 apart they always are.
BOUNDARY_COUNTS = [(10, 1, 4, 0), (20, 2, 9, 0), (20, 1, 19, 19)]


@pytest.mark.parametrize(("n", "k", "reference", "exact"), BOUNDARY_COUNTS)
def test_pairs_a_threshold_apart_follow_the_boundary_option(n: int, k: int, reference: int, exact: int) -> None:
    positions = stack_positions(n)
    for boundary, expected in (("reference", reference), ("exact", exact)):
        mask = PositionalContrastiveLoss(threshold=0.1, boundary=boundary).positive_mask(positions, positions)
        assert int(mask.diagonal(k).sum()) == expected, boundary
        assert torch.equal(mask, mask.T)


def test_reference_boundary_pairs_are_the_float32_ones() -> None:
    # Golden: 0.4f − 0.3f, 0.5f − 0.4f, 0.7f − 0.6f and 0.9f − 0.8f round below 0.1f, the other five do not.
    positions = stack_positions(10)
    mask = PositionalContrastiveLoss(threshold=0.1).positive_mask(positions, positions)
    assert mask.diagonal(1).nonzero().view(-1).tolist() == [3, 4, 6, 8]
    assert not mask.diagonal(2).any()
    # Positions computed in float64 would make 5 adjacent pairs positive in float64: the mask casts them to
    # float32 first (also under an autocast), so the dtype the caller passes does not change the positives.
    positions64 = torch.arange(10, dtype=torch.float64) / 10
    assert int(((positions64[1:] - positions64[:-1]) < 0.1).sum()) == 5
    assert torch.equal(PositionalContrastiveLoss().positive_mask(positions64, positions64), mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(PositionalContrastiveLoss().positive_mask(positions64, positions), mask)


def test_reference_boundary_loss_equals_the_naive_float32_reference() -> None:
    # A 10-slice stack, two views per slice: the rounded-in neighbours join the positives, so the loss is no longer
    # NT-Xent, and it matches the naive reference's float32 comparison, whatever dtype the positions come in.
    generator = torch.Generator().manual_seed(3)
    view0 = torch.randn(10, 16, generator=generator)
    view1 = view0 + torch.randn(10, 16, generator=generator)
    embeddings, positions = torch.cat([view0, view1]), stack_positions(10).repeat(2)
    expected = pcl_reference(embeddings, positions.tolist(), 0.1, 0.1)
    criterion = PositionalContrastiveLoss(temperature=0.1, threshold=0.1, boundary="reference")
    assert criterion(embeddings, positions).item() == pytest.approx(expected, rel=1e-5)
    positions64 = (torch.arange(10, dtype=torch.float64) / 10).repeat(2)  # float64 alone: 5 neighbours positive
    assert criterion(embeddings.double(), positions64).item() == pytest.approx(expected, rel=1e-5)
    ntxent = NTXentLoss(temperature=0.1)(view0, view1).item()
    assert expected != pytest.approx(ntxent, rel=1e-3)


def test_exact_boundary_makes_slices_a_threshold_apart_negatives() -> None:
    # Exact arithmetic says no neighbour of a 10-slice stack is a positive at 0.1, so with two views per slice
    # PCL under boundary="exact" is exactly NT-Xent.
    generator = torch.Generator().manual_seed(3)
    view0 = torch.randn(10, 16, generator=generator)
    view1 = view0 + torch.randn(10, 16, generator=generator)
    positions = stack_positions(10)
    criterion = PositionalContrastiveLoss(temperature=0.1, threshold=0.1, boundary="exact")
    pcl = criterion(torch.cat([view0, view1]), positions.repeat(2))
    assert pcl.item() == pytest.approx(NTXentLoss(temperature=0.1)(view0, view1).item(), rel=1e-5, abs=1e-6)
    mask = criterion.positive_mask(positions, positions)
    assert torch.equal(mask, torch.eye(10, dtype=torch.bool))


def test_pcl_method_passes_the_boundary_to_its_criteria() -> None:
    from sspcmr.methods import PCL

    assert PCL(channels=[8, 16]).criterion.boundary == "reference"
    model = PCL(channels=[8, 16], boundary="exact")
    assert model.hparams.boundary == "exact"
    assert model.criterion.boundary == model.val_criterion.boundary == "exact"
    with pytest.raises(ValueError, match="boundary must be one of reference, exact"):
        PCL(channels=[8, 16], boundary="float32")


def test_anchors_without_positives_are_left_out() -> None:
    # z0 = z1 = e1 at positions 0 and 0.05 (positives of each other), z2 = e2 at 0.5 without positive. T = 1:
    # l_0 = l_1 = −[1 − log(e^1 + e^0)] = log(1 + e^−1) = 0.313262; anchor 2 does not dilute the mean.
    embeddings = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    positions = torch.tensor([0.0, 0.05, 0.5])
    loss = PositionalContrastiveLoss(temperature=1.0, threshold=0.1)(embeddings, positions)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1)), rel=1e-6)
    assert loss.item() == pytest.approx(0.3132617, rel=1e-6)


def test_anchor_without_positive_still_shapes_the_denominators() -> None:
    generator = torch.Generator().manual_seed(5)
    embeddings = torch.randn(4, 3, generator=generator)
    positions = [0.0, 0.05, 0.5, 0.9]
    criterion = PositionalContrastiveLoss(temperature=0.2)
    full = criterion(embeddings, torch.tensor(positions)).item()
    assert full == pytest.approx(pcl_reference(embeddings, positions, 0.2, 0.1), rel=1e-5)
    assert full != pytest.approx(criterion(embeddings[:2], torch.tensor(positions[:2])).item(), rel=1e-3)


def test_threshold_is_strict() -> None:
    embeddings = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    checked = PositionalContrastiveLoss(threshold=0.1, check_positives=True)
    with pytest.raises(ValueError, match="no anchor has a positive"):
        checked(embeddings, torch.tensor([0.0, 0.1]))
    with pytest.raises(ValueError, match="no anchor has a positive"):
        PositionalContrastiveLoss(threshold=0.25, check_positives=True)(embeddings, torch.tensor([0.5, 0.75]))
    # Just inside the threshold: a single candidate per anchor, so the loss is 0.
    assert checked(embeddings, torch.tensor([0.0, 0.0999])).item() == pytest.approx(0.0, abs=1e-6)


def test_without_any_positive_the_loss_is_a_zero_in_the_graph() -> None:
    # Unchecked (the training default: no host read), no positive anywhere gives exactly 0 and zero gradients.
    embeddings = torch.randn(3, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = PositionalContrastiveLoss(threshold=0.1)(embeddings, torch.tensor([0.0, 0.1, 0.5]))
    loss.backward()
    assert loss.item() == 0.0 and loss.dtype == torch.float32
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_gradients_are_finite_under_float16_and_autocast() -> None:
    generator = torch.Generator().manual_seed(2)
    embeddings = (torch.randn(12, 32, generator=generator) * 100).half().requires_grad_()
    positions = torch.tensor(POSITIONS + [0.31, 0.61]).half()
    loss = PositionalContrastiveLoss()(embeddings, positions)
    assert loss.dtype == torch.float32
    loss.backward()
    assert embeddings.grad is not None and embeddings.grad.dtype == torch.float16
    assert torch.isfinite(embeddings.grad).all() and embeddings.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        projected = torch.nn.Linear(32, 16)(embeddings.float().detach())
        assert projected.dtype == torch.bfloat16
        assert PositionalContrastiveLoss()(projected, positions).dtype == torch.float32


@pytest.mark.parametrize("cyclic", [False, True])
def test_float32_under_autocast(cyclic: bool) -> None:
    embeddings = torch.randn(len(POSITIONS), 32, generator=torch.Generator().manual_seed(8)) * 10
    criterion = PositionalContrastiveLoss(cyclic=cyclic)
    assert_float32_under_autocast(criterion, embeddings, torch.tensor(POSITIONS))


def test_bad_shapes_and_arguments_raise() -> None:
    criterion = PositionalContrastiveLoss()
    with pytest.raises(ValueError, match="embeddings must be"):
        criterion(torch.randn(4), torch.zeros(4))
    with pytest.raises(ValueError, match="positions must be"):
        criterion(torch.randn(4, 3), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="positions must be"):
        criterion(torch.randn(4, 3), torch.zeros(5))
    with pytest.raises(ValueError, match="temperature"):
        PositionalContrastiveLoss(temperature=0.0)
    with pytest.raises(ValueError, match="threshold"):
        PositionalContrastiveLoss(threshold=-0.1)
    with pytest.raises(ValueError, match="boundary must be one of reference, exact; got 'strict'"):
        PositionalContrastiveLoss(boundary="strict")
