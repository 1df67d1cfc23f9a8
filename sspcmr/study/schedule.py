"""How many training batches, optimizer steps and validation slices a run goes through, from its slice counts and
the Lightning trainer settings that bound them, the way Lightning counts them: an epoch is
``slices // batch_size`` batches (the data module drops the last incomplete batch, docs/reference.md#optimisation),
cut by ``limit_train_batches``; the optimizer steps every ``accumulate_grad_batches`` batches and at an epoch's
end; ``max_steps`` (optimizer steps) stops the run early; validation runs after every
``check_val_every_n_epoch``-th full epoch over ``ceil(slices / val_batch_size)`` batches (no drop_last), cut by
``limit_val_batches``, plus the sanity check's ``num_sanity_val_steps`` batches once at the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LIGHTNING_DEFAULT_EPOCHS", "Schedule", "TrainerLimits", "limit_batches", "training_schedule"]

LIGHTNING_DEFAULT_EPOCHS = 1000
"""Lightning's ``max_epochs`` when neither it nor ``max_steps`` is set."""


@dataclass(frozen=True)
class TrainerLimits:
    """The trainer settings that bound a run (Lightning's names and defaults).

    Attributes:
        max_epochs: epochs (None: 1000 unless ``max_steps`` is set; -1: no limit).
        max_steps: optimizer steps (-1: no limit).
        limit_train_batches: an int caps the batches per epoch, a float keeps that fraction (None: all).
        limit_val_batches: the same for each validation pass.
        check_val_every_n_epoch: validate after every n-th epoch (None: never, for this estimate).
        num_sanity_val_steps: validation batches of the sanity check before training (-1: all).
        accumulate_grad_batches: batches per optimizer step.
    """

    max_epochs: int | None = None
    max_steps: int = -1
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int = 2
    accumulate_grad_batches: int = 1


@dataclass(frozen=True)
class Schedule:
    """A run's training and validation volume.

    Attributes:
        batches_per_epoch: training batches per epoch.
        steps_per_epoch: optimizer steps per epoch.
        epochs: epochs started (the last may be cut by ``max_steps``).
        steps: optimizer steps in all.
        batches: training batches in all.
        val_passes: validation passes after epochs (the sanity check not included).
        val_slices_per_pass: slices each validation pass scores.
        sanity_slices: slices of the sanity check (once).
    """

    batches_per_epoch: int
    steps_per_epoch: int
    epochs: int
    steps: int
    batches: int
    val_passes: int
    val_slices_per_pass: int
    sanity_slices: int

    @property
    def val_slices(self) -> int:
        """Validation slices over the whole run, the sanity check included."""
        return self.val_passes * self.val_slices_per_pass + self.sanity_slices


def limit_batches(batches: int, limit: int | float | None) -> int:
    """Lightning's ``limit_*_batches``: an int caps, a float keeps ``int(batches x fraction)``."""
    if limit is None:
        return batches
    if isinstance(limit, float):
        return int(batches * limit)
    return min(batches, int(limit))


def _epochs_and_steps(steps_per_epoch: int, limits: TrainerLimits) -> tuple[int, int]:
    """(epochs started, optimizer steps) under ``max_epochs`` and ``max_steps``."""
    epochs = limits.max_epochs
    if epochs is None:
        epochs = -1 if limits.max_steps >= 0 else LIGHTNING_DEFAULT_EPOCHS
    if epochs < 0 and limits.max_steps < 0:
        raise ValueError("the run has neither max_epochs nor max_steps: it never ends")
    if steps_per_epoch == 0:
        return 0, 0
    steps = epochs * steps_per_epoch if epochs >= 0 else limits.max_steps
    if limits.max_steps >= 0:
        steps = min(steps, limits.max_steps)
    return math.ceil(steps / steps_per_epoch), steps


def training_schedule(train_slices: int, batch_size: int, val_slices: int, val_batch_size: int,
                      limits: TrainerLimits) -> Schedule:
    """The batches, steps and validation slices of a run.

    Args:
        train_slices: slices of one training epoch (before the batching).
        batch_size: slices per training batch.
        val_slices: slices of the validation set.
        val_batch_size: slices per validation batch.
        limits: the trainer's bounds.
    """
    accumulate = max(1, limits.accumulate_grad_batches)
    per_epoch = limit_batches(train_slices // batch_size, limits.limit_train_batches)
    steps_per_epoch = math.ceil(per_epoch / accumulate)
    epochs, steps = _epochs_and_steps(steps_per_epoch, limits)
    full_epochs = steps // steps_per_epoch if steps_per_epoch else 0
    remainder = steps - full_epochs * steps_per_epoch  # steps of an epoch cut by max_steps
    batches = full_epochs * per_epoch + min(remainder * accumulate, per_epoch)
    val_batches = limit_batches(math.ceil(val_slices / val_batch_size), limits.limit_val_batches)
    per_pass = min(val_slices, val_batches * val_batch_size)
    every = limits.check_val_every_n_epoch
    passes = full_epochs // every if every and per_pass else 0
    sanity = limits.num_sanity_val_steps
    sanity_batches = val_batches if sanity < 0 else min(sanity, val_batches)
    sanity_slices = min(val_slices, sanity_batches * val_batch_size) if per_pass and steps else 0
    return Schedule(batches_per_epoch=per_epoch, steps_per_epoch=steps_per_epoch, epochs=epochs, steps=steps,
                    batches=batches, val_passes=passes, val_slices_per_pass=per_pass, sanity_slices=sanity_slices)
