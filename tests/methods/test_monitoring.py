"""Label-free monitors: golden values of the collapse statistics and the cross-fitted position probe."""

from __future__ import annotations

import math

import pytest
import torch

from sspcmr.methods.monitoring import PositionProbe, effective_rank, embedding_std, mean_entropy


def test_embedding_std_is_zero_for_collapse_and_one_for_spread_embeddings():
    torch.manual_seed(0)
    assert float(embedding_std(torch.ones(64, 32))) == pytest.approx(0.0, abs=1e-6)
    assert float(embedding_std(torch.randn(8192, 32))) == pytest.approx(1.0, abs=0.03)
    # Scaling the embeddings does not matter (they are normalised first).
    x = torch.randn(256, 16)
    assert float(embedding_std(5 * x)) == pytest.approx(float(embedding_std(x)), rel=1e-5)


def test_effective_rank_counts_equal_directions():
    basis = torch.linalg.qr(torch.randn(64, 64))[0]
    for k in (1, 3, 10):
        # k orthogonal directions with equal weight, each used by +-1 coefficients: centred rank exactly k
        coefficients = torch.cat([torch.eye(k), -torch.eye(k)])
        x = coefficients @ basis[:k]
        assert float(effective_rank(x)) == pytest.approx(k, rel=1e-3)


def test_mean_entropy_of_uniform_and_one_hot_rows():
    assert float(mean_entropy(torch.full((4, 8), 1 / 8))) == pytest.approx(math.log(8), abs=1e-6)
    assert float(mean_entropy(torch.eye(8)[:4])) == pytest.approx(0.0, abs=1e-6)


def _rows(subjects: int, per_subject: int, informative: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    positions = torch.rand(subjects * per_subject, generator=g)
    ids = torch.arange(subjects).repeat_interleave(per_subject)
    noise = torch.randn(len(positions), 24, generator=g)
    features = noise.clone()
    if informative:  # the position is written into a random direction of the features
        direction = torch.randn(24, generator=g)
        features = 0.1 * noise + positions[:, None] * direction
    return features, positions, ids


def test_probe_reads_a_linearly_encoded_position_and_not_noise():
    probe = PositionProbe()
    probe.add(*_rows(6, 40, informative=True))
    scores = probe.compute()
    assert scores["r2"] > 0.95 and scores["mae"] < 0.05
    probe.reset()
    probe.add(*_rows(6, 40, informative=False))
    assert probe.compute()["r2"] < 0.2


def test_probe_keeps_at_most_max_samples_and_needs_two_subjects():
    probe = PositionProbe(max_samples=50)
    features, positions, ids = _rows(4, 40, informative=True)
    probe.add(features[:30], positions[:30], ids[:30])
    probe.add(features[30:], positions[30:], ids[30:])
    assert probe._count == 50
    kept = set(probe._reservoir[2].tolist())
    assert len(kept) == 4  # a sample of all rows, not the first 50 (which hold 2 subjects)
    single = PositionProbe()
    single.add(*_rows(1, 40, informative=True))
    assert single.compute() is None
