"""Label-free monitors of a pretraining run: collapse statistics and an online slice-position probe.

None of them touches the training graph: they see detached features only.

* :func:`embedding_std`: the mean per-dimension standard deviation of L2-normalised embeddings, times
  sqrt(D). About 1 for embeddings spread over the sphere, 0 when every sample maps to one point
  (complete collapse; SimSiam's monitor, rescaled so its healthy value does not depend on D).
* :func:`effective_rank`: exp of the entropy of the normalised singular values of the centred
  embedding matrix (RankMe). Dimensional collapse shows as a rank far below min(N, D).
* :func:`mean_entropy` / entropy of the mean: for DINO's teacher. A teacher collapsed to one
  dimension has both near 0; one collapsed to the uniform distribution has both near ln K.
* :class:`PositionProbe`: how well the relative slice position (from the stack geometry, no labels)
  can be read linearly from pooled encoder features of the validation slices. Ridge regression,
  two-fold cross-fitted by subject so no subject is scored by a fit that saw it; reports R^2 and the
  mean absolute error in position units (0..1). Rising R^2 means the encoder is learning anatomy.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from lightly.utils.dist import world_size


def embedding_std(embeddings: torch.Tensor) -> torch.Tensor:
    """sqrt(D) x mean over dimensions of the batch std of L2-normalised (N, D) embeddings."""
    z = torch.nn.functional.normalize(embeddings.detach().float(), dim=1)
    return z.std(dim=0).mean() * math.sqrt(z.shape[1])


def effective_rank(embeddings: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """RankMe effective rank of the centred (N, D) embedding matrix: exp(-sum p log p), p = s / sum(s)."""
    x = embeddings.detach().float()
    x = x - x.mean(dim=0, keepdim=True)
    singular = torch.linalg.svdvals(x)
    p = singular / singular.sum().clamp(min=eps) + eps
    return torch.exp(-(p * p.log()).sum())


def mean_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the entropy (nats) of (N, K) probability rows."""
    p = probabilities.detach().float().clamp(min=1e-12)
    return -(p * p.log()).sum(dim=1).mean()


def _ridge_predict(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, ridge: float) -> torch.Tensor:
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    a = (train_x - mean) / std
    b = (test_x - mean) / std
    offset = train_y.mean()
    # Dual form when N < D keeps the solve small either way.
    n, d = a.shape
    if n < d:
        alpha = torch.linalg.solve(a @ a.T + ridge * n * torch.eye(n, dtype=a.dtype), train_y - offset)
        return b @ (a.T @ alpha) + offset
    w = torch.linalg.solve(a.T @ a + ridge * n * torch.eye(d, dtype=a.dtype), a.T @ (train_y - offset))
    return b @ w + offset


class PositionProbe:
    """Collects (pooled features, position, subject) on validation batches; scores a cross-fitted ridge.

    Args:
        max_samples: keep at most this many rows per epoch and rank, a uniform random sample of all rows
            seen (reservoir sampling: validation loaders run subject by subject, so the first rows would
            be few subjects), so the probe stays cheap on the full data.
        ridge: ridge strength relative to the number of training rows.
        seed: seed of the reservoir sampling (the same rows every epoch).
    """

    def __init__(self, max_samples: int = 4096, ridge: float = 1e-2, seed: int = 0) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1; got {max_samples}")
        self.max_samples, self.ridge, self.seed = max_samples, ridge, seed
        self.reset()

    def reset(self) -> None:
        self._features: list[torch.Tensor] = []
        self._positions: list[torch.Tensor] = []
        self._subjects: list[torch.Tensor] = []
        self._reservoir: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._seen = 0
        self._generator = torch.Generator().manual_seed(self.seed)

    @property
    def _count(self) -> int:
        return sum(len(p) for p in self._positions) if self._reservoir is None else len(self._reservoir[1])

    def add(self, features: torch.Tensor, positions: torch.Tensor, subjects: torch.Tensor) -> None:
        """Add (N, D) features with their (N,) relative positions and subject indices."""
        rows = (features.detach().float().cpu(), positions.detach().float().cpu(), subjects.detach().long().cpu())
        if self._reservoir is None:
            room = self.max_samples - self._seen
            kept = [t[:room] for t in rows]
            self._features.append(kept[0])
            self._positions.append(kept[1])
            self._subjects.append(kept[2])
            self._seen += len(kept[1])
            rows = tuple(t[room:] for t in rows)
            if self._seen < self.max_samples:
                return
            self._reservoir = (torch.cat(self._features), torch.cat(self._positions), torch.cat(self._subjects))
        # Algorithm R: row number n (0-based) replaces a random slot with probability max_samples / (n + 1).
        for j in range(len(rows[1])):
            slot = int(torch.randint(0, self._seen + 1, (1,), generator=self._generator))
            self._seen += 1
            if slot < self.max_samples:
                for stored, new in zip(self._reservoir, rows, strict=True):
                    stored[slot] = new[j]

    def _gathered(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        if self._reservoir is not None:
            local = self._reservoir
        elif not self._features:
            local = (torch.empty(0, 0), torch.empty(0), torch.empty(0, dtype=torch.long))
        else:
            local = (torch.cat(self._features), torch.cat(self._positions), torch.cat(self._subjects))
        if world_size() > 1:
            # Ranks hold different numbers of rows (evaluation shards are unpadded): gather as objects.
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, local)
            parts = [p for p in parts if len(p[1])]
            if not parts:
                return None
            return tuple(torch.cat([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]
        return local if len(local[1]) else None

    def compute(self) -> dict[str, float] | None:
        """``{"r2", "mae"}`` of the cross-fitted probe, or None with too few rows or subjects.

        Every rank must call it under DDP (it gathers).
        """
        gathered = self._gathered()
        if gathered is None:
            return None
        x, y, subjects = (t.double() if t.is_floating_point() else t for t in gathered)
        unique = subjects.unique()
        if len(unique) < 2 or len(y) < 8:
            return None
        # Two folds by subject: a fixed alternation over the sorted subject indices.
        fold_of = {int(s): i % 2 for i, s in enumerate(unique.tolist())}
        fold = torch.tensor([fold_of[int(s)] for s in subjects])
        prediction = torch.empty_like(y)
        for k in (0, 1):
            train, test = fold != k, fold == k
            prediction[test] = _ridge_predict(x[train], y[train], x[test], self.ridge)
        residual = ((prediction - y) ** 2).sum()
        total = ((y - y.mean()) ** 2).sum().clamp(min=1e-12)
        return {"r2": float(1 - residual / total), "mae": float((prediction - y).abs().mean())}
