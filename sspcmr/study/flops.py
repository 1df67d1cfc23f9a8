"""FLOPs of one training step and of validation per slice, counted on a method's own module.

One real ``training_step`` of the module (forward and ``backward()``) on a synthetic batch shaped like the
augmented batch it trains on (the views of its ``train_augmentation``: e.g. 2 x 256 px for SimCLR and PCL,
2 x 256 px + 6 x 128 px for DINO, whose step also runs the teacher on the 2 global crops; one 256 px view and
a one-hot label for segmentation), and one ``validation_step`` under ``no_grad`` on its validation views, both
under :class:`torch.utils.flop_counter.FlopCounterMode`. That counter counts convolutions (forward and both
gradients) and matrix products, 2 FLOPs per multiply-add; normalisation, activations, losses' elementwise work
and the augmentation itself are not counted (they are memory-bound: the MFU assumption absorbs them).

The step runs first on the ``meta`` device at the run's full batch size (shapes only, no arithmetic, fast).
Steps that need data or a real device (``.item()``, boolean indexing, ``torch.autocast``) fail there; those are
counted on the CPU with real tensors at :data:`FALLBACK_BATCHES` slices and scaled linearly to the batch size,
which is exact for the convolutions and the heads (a test checks it) and leaves out the batch-quadratic
similarity matrices of the contrastive losses (at SimCLR's 448 views about 448^2 x 512 multiply-adds forward,
under 0.01 % of its 12 TFLOP step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from sspcmr.data import keys as K
from sspcmr.methods.base import CineModule
from sspcmr.transforms.views import Augmenter

__all__ = ["FALLBACK_BATCHES", "StepFlops", "count_flops", "count_step_flops", "describe_views", "synthetic_batch"]

FALLBACK_BATCHES = (1, 2)
"""Slices per batch of the CPU count: 1, or 2 where one slice fails (BatchNorm in training mode needs more than one
value per channel, which a 1 x 1 bottleneck of a single slice does not have)."""


@dataclass(frozen=True)
class StepFlops:
    """What one module costs per step.

    Attributes:
        train_per_batch: FLOPs of one training step (forward + backward) at the run's batch size.
        val_per_sample: FLOPs of ``validation_step`` per validation slice (forward only).
        views: the training views per slice (``2x256px``).
        counted_on: how the training step was counted (``meta, batch 224`` or ``cpu, batch 1 x 224``).
    """

    train_per_batch: float
    val_per_sample: float
    views: str
    counted_on: str


class _StubTrainer:
    """What a method's step reads from its trainer, for one step outside any fit."""

    global_step = 1  # not a multiple of the logging interval: the logging-only collapse monitors stay off
    current_epoch = 0
    log_every_n_steps = 50
    sanity_checking = False
    global_rank = 0
    world_size = 1
    is_global_zero = True
    logger = None

    def __init__(self, training: bool) -> None:
        self.training = training


def describe_views(augmenter: Augmenter) -> str:
    """The views per slice of a recipe, consecutive views of one size together: ``2x256px``, ``2x256px + 6x128px``."""
    groups: list[list[int]] = []  # [size, count]
    for spec in augmenter.views:
        size = spec.geometry.output_size
        if groups and groups[-1][0] == size:
            groups[-1][1] += spec.count
        else:
            groups.append([size, spec.count])
    return " + ".join(f"{count}x{size}px" for size, count in groups)


def _values(shape: tuple[int, ...], device: str, generator: torch.Generator) -> torch.Tensor:
    """Image-like values: random on the CPU, shapes only on ``meta``."""
    if device == "meta":
        return torch.empty(shape, device="meta")
    return torch.randn(shape, generator=generator)


def synthetic_batch(augmenter: Augmenter, batch_size: int, labelled: bool, device: str = "meta") -> dict:
    """An augmented batch as ``augmenter`` writes it (:mod:`sspcmr.data.keys`), with plausible per-slice keys:
    views (or ``IMAGE`` and ``THETA``), a one-hot background ``LABEL`` when ``labelled``, positions, locations,
    subject indices and one valid long-axis line per view through the image centre."""
    b, generator = batch_size, torch.Generator().manual_seed(0)
    size = augmenter.views[0].geometry.output_size
    small = {
        K.POSITION: torch.arange(b) / b, K.LOCATION: torch.arange(b) / b, K.SUBJECT_INDEX: torch.arange(b),
        K.SLICE: torch.zeros(b, dtype=torch.long), K.N_SLICES: torch.full((b,), 10),
        K.SIZE: torch.full((b, 2), size), K.PADDED: torch.full((b, 2), size), K.SPACING: torch.ones(b, 2),
        K.LA_LINES: torch.tensor([1.0, 0.0, -size / 2]).expand(b, 2, 3).clone(),
        K.LA_VALID: torch.ones(b, 2, dtype=torch.bool),
        K.THETA: torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(b, 2, 3).clone(),
    }
    batch = {key: value.to(device) for key, value in small.items()}
    if not augmenter.single_view:
        batch[K.VIEWS] = [_values((b, 1, spec.geometry.output_size, spec.geometry.output_size), device, generator)
                          for spec in augmenter.views for _ in range(spec.count)]
        return batch
    batch[K.IMAGE] = _values((b, 1, size, size), device, generator)
    if labelled:
        label = torch.zeros(b, augmenter.num_classes, size, size)
        label[:, 0] = 1.0
        batch[K.LABEL] = label.to(device)
    return batch


def count_flops(run: Callable[[], object]) -> float:
    """FLOPs that :class:`FlopCounterMode` counts while ``run()`` runs."""
    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def _prepare(module: CineModule, device: str, training: bool) -> CineModule:
    module = module.to(device)
    module.train(training)
    module.trainer = _StubTrainer(training)  # type: ignore[assignment]
    module.log = module.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return module


def _train_step(module: CineModule, batch_size: int, labelled: bool, device: str) -> float:
    module = _prepare(module, device, training=True)
    batch = module.add_targets(synthetic_batch(module.train_augmentation(), batch_size, labelled, device))

    def step() -> None:
        loss = module.training_step(batch, 0)
        (loss["loss"] if isinstance(loss, dict) else loss).backward()  # Lightning takes either

    return count_flops(step)


def _validation_step(module: CineModule, batch_size: int, labelled: bool, device: str) -> float:
    module = _prepare(module, device, training=False)
    recipe = module.validation_augmentation() or module.train_augmentation()
    batch = module.add_targets(synthetic_batch(recipe, batch_size, labelled, device))
    with torch.no_grad():  # batch_idx 1: the first batch's image logging stays off
        return count_flops(lambda: module.validation_step(batch, 1))


def _on_cpu(count: Callable[[CineModule, int, bool, str], float], module: CineModule, batch_size: int,
            labelled: bool) -> tuple[float, str]:
    """``count`` on the CPU at the first of :data:`FALLBACK_BATCHES` that works, scaled linearly to ``batch_size``;
    and how it was counted."""
    small = min(FALLBACK_BATCHES[0], batch_size)
    try:
        flops = count(module, small, labelled, "cpu")
    except ValueError:  # e.g. BatchNorm with one value per channel
        small = min(FALLBACK_BATCHES[1], batch_size)
        flops = count(module, small, labelled, "cpu")
    return flops * batch_size / small, f"cpu, batch {small} x {batch_size / small:g}"


def count_step_flops(build: Callable[[], CineModule], batch_size: int, val_batch_size: int,
                     labelled: bool) -> StepFlops:
    """Count a module's training step and validation per slice: on ``meta`` at the full batch sizes, else on
    the CPU (module docstring).

    Args:
        build: makes a fresh module (one moved to ``meta`` cannot come back; a second is built for the CPU).
        batch_size: slices per training batch.
        val_batch_size: slices per validation batch.
        labelled: segmentation batches (a one-hot ``LABEL``).
    """
    module = build()
    views = describe_views(module.train_augmentation())
    try:
        train, how = _train_step(module, batch_size, labelled, "meta"), f"meta, batch {batch_size}"
    except (NotImplementedError, RuntimeError):  # a step that needs data: .item(), boolean indexing
        module = build()
        train, how = _on_cpu(_train_step, module, batch_size, labelled)
        val, _ = _on_cpu(_validation_step, module, val_batch_size, labelled)
        return StepFlops(train, val / val_batch_size, views, how)
    try:
        val = _validation_step(module, val_batch_size, labelled, "meta")
    except (NotImplementedError, RuntimeError):
        val, _ = _on_cpu(_validation_step, build(), val_batch_size, labelled)
    return StepFlops(train, val / val_batch_size, views, how)
