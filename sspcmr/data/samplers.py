"""Distributed samplers that never serve an item twice in an epoch.

``torch.utils.data.DistributedSampler`` pads every rank to the same length by repeating items. For
training the padding is avoided with ``drop_last=True``; for validation and testing the repeats
would count a slice (or a whole volume) twice in a metric, so :class:`ShardSampler` gives each rank
a disjoint, unpadded share (ranks may differ by one item).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler


def distributed() -> bool:
    """Whether a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class ShardSampler(DistributedSampler):
    """Items ``rank, rank + world, rank + 2 world, ...`` in order: disjoint, complete, unpadded.

    Args:
        dataset: the data set to shard.
    """

    def __init__(self, dataset: Dataset) -> None:
        super().__init__(dataset, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


class EpochShuffleSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), like ``DistributedSampler`` on one process.

    With the global RNG, the order after resuming from a checkpoint would differ from an
    uninterrupted run; Lightning calls ``set_epoch`` at every epoch, so a resumed run replays
    exactly the same order.

    Args:
        dataset: the data set to shuffle.
        seed: base seed of the permutations.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.size, self.seed, self.epoch = len(dataset), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size
