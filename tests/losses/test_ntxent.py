"""sspcmr's NT-Xent (SimCLR): the formula, lightly's NTXentLoss in value and gradients, float32 under autocast."""

from __future__ import annotations

import math

import pytest
import torch
from lightly.loss import NTXentLoss as LightlyNTXentLoss

from sspcmr.losses import NTXentLoss
from tests.losses.autocast import assert_float32_under_autocast
from tests.losses.test_contrastive import ntxent_reference


def views(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    view0 = torch.randn(batch, dim, generator=generator)
    return view0, view0 + 0.5 * torch.randn(batch, dim, generator=generator)  # correlated, as real views are


@pytest.mark.parametrize(("batch", "dim", "temperature"), [(2, 3, 0.1), (5, 16, 0.1), (16, 8, 0.5)])
def test_equals_the_formula_and_lightly_in_value_and_gradients(batch: int, dim: int, temperature: float) -> None:
    view0, view1 = views(batch, dim, seed=batch * 100 + dim)
    ours_in = [v.clone().requires_grad_() for v in (view0, view1)]
    lightly_in = [v.clone().requires_grad_() for v in (view0, view1)]
    ours = NTXentLoss(temperature=temperature)(*ours_in)
    reference = LightlyNTXentLoss(temperature=temperature)(*lightly_in)
    assert ours.item() == pytest.approx(ntxent_reference(view0, view1, temperature), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    ours.backward()
    reference.backward()
    for mine, theirs in zip(ours_in, lightly_in, strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-7)


def test_identical_embeddings_give_log_of_the_candidates() -> None:
    # Every similarity is 1/T: each anchor's softmax is uniform over its 2B − 1 candidates (golden ln 7 for B = 4).
    embeddings = torch.ones(4, 8)
    assert NTXentLoss()(embeddings, embeddings).item() == pytest.approx(math.log(7), rel=1e-6)


def test_float32_under_autocast() -> None:
    view0, view1 = views(6, 32, seed=4)
    assert_float32_under_autocast(NTXentLoss(temperature=0.1), view0 * 10, view1 * 10)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)
    with pytest.raises(ValueError, match=r"must both be \(N, D\)"):
        NTXentLoss()(torch.randn(4, 3), torch.randn(5, 3))
