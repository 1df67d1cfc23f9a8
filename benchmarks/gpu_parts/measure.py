"""Timing of training steps and of the data loader for one method and variant.

Steps (:func:`time_steps`): native batches from the method's own ``CineDataModule`` (read once, moved to the
device), then per step the method's ``augment`` (as ``on_after_batch_transfer``) and one optimiser step in
Lightning's hook order (``pretrain_step.optimiser_step``), each between ``synchronize`` calls; the median of
the timed steps after the warm-up. Data loading (:func:`time_loading`): the real training loader with workers;
per batch the wait for the next batch against transfer + augmentation + step.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from pretrain_step import attach_bench_trainer, optimiser_step
from torch.utils.data import DataLoader

from gpu_parts.specs import MethodSpec
from gpu_parts.variants import Variant, build
from sspcmr.data.datamodule import CineDataModule


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cycle(loader: DataLoader) -> Iterator[dict]:
    """The loader's batches without end (a small training set is only a few batches long)."""
    while True:
        yield from loader


def data_module(spec: MethodSpec, data: dict, workers: int) -> CineDataModule:
    """The method's training data module over the benchmark's data, set up."""
    options = {**spec.data, "num_workers": workers}
    module = CineDataModule(data["prepared"], data["split"], seed=0, **options)
    module.setup("fit")
    return module


def native_batches(spec: MethodSpec, data: dict, count: int) -> list[dict]:
    """``count`` native training batches of the method (on the CPU, read in the main process)."""
    batches = cycle(data_module(spec, data, workers=0).train_dataloader())
    return [next(batches) for _ in range(count)]


def _module(spec: MethodSpec, variant: Variant, device: torch.device):
    torch.manual_seed(0)
    module = build(spec, variant, device)
    return module, attach_bench_trainer(module)


def _release(device: torch.device, compiled: bool) -> None:
    gc.collect()
    if compiled:
        torch._dynamo.reset()  # drop the compiled graphs with the module they belong to
    if device.type == "cuda":
        torch.cuda.empty_cache()


def time_steps(spec: MethodSpec, variant: Variant, natives: list[dict], device: torch.device, steps: int,
               warmup: int) -> dict[str, Any]:
    """Median augmentation and step times, slices/s and peak memory of one method and variant.

    Args:
        spec: the method.
        variant: precision, memory format, compilation.
        natives: native batches on the CPU (:func:`native_batches`), used in turn.
        device: where to train.
        steps: timed steps.
        warmup: untimed steps first (the first one compiles and tunes cuDNN).
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    module, optimizer = _module(spec, variant, device)
    on_device = [move_data_to_device(batch, device) for batch in natives]
    scaler = torch.amp.GradScaler(device.type, enabled=variant.precision == "16-mixed")
    step_times, aug_times, first_step = [], [], 0.0
    for step in range(warmup + steps):
        sync(device)
        start = time.perf_counter()
        batch = module.augment(dict(on_device[step % len(on_device)]), training=True)
        sync(device)
        middle = time.perf_counter()
        loss = optimiser_step(module, optimizer, scaler, batch, step, variant.precision)
        sync(device)
        end = time.perf_counter()
        if not math.isfinite(float(loss.detach())):
            raise RuntimeError(f"{spec.name} {variant.name}: non-finite loss at step {step}")
        if step == 0:
            first_step = end - start
        if step >= warmup:
            step_times.append(end - middle)
            aug_times.append(middle - start)
    step_s, aug_s = statistics.median(step_times), statistics.median(aug_times)
    batch_size = spec.batch_size
    row = {
        "method": spec.name, "variant": variant.name, "precision": variant.precision,
        "channels_last": variant.channels_last, "compile": variant.compile, "batch": batch_size,
        "px": spec.data["output_size"], "views_per_slice": module.train_augmentation().num_views,
        "params_m": sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6,
        "steps": steps, "warmup": warmup, "first_step_s": first_step,
        "step_ms": 1000 * step_s, "step_ms_min": 1000 * min(step_times), "step_ms_max": 1000 * max(step_times),
        "augment_ms": 1000 * aug_s, "slices_per_s": batch_size / step_s,
        "slices_per_s_with_augment": batch_size / (step_s + aug_s),
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "final_loss": float(loss.detach()),
    }
    del module, optimizer, on_device, batch, loss
    _release(device, variant.compile)
    return row


def time_loading(spec: MethodSpec, variant: Variant, data: dict, device: torch.device, workers: int, batches: int,
                 warmup: int) -> dict[str, Any]:
    """Share of the step time spent waiting for the real training loader (``workers`` processes).

    Per batch: the wait in ``next`` on the loader, then transfer, ``augment`` and the optimiser step until the
    device is done; the first ``warmup`` batches (worker start-up) are not counted.
    """
    module, optimizer = _module(spec, variant, device)
    loader = data_module(spec, data, workers).train_dataloader()
    batches_iter = cycle(loader)
    scaler = torch.amp.GradScaler(device.type, enabled=variant.precision == "16-mixed")
    waits, works = [], []
    for step in range(warmup + batches):
        start = time.perf_counter()
        raw = next(batches_iter)
        got = time.perf_counter()
        batch = module.augment(move_data_to_device(raw, device), training=True)
        optimiser_step(module, optimizer, scaler, batch, step, variant.precision)
        sync(device)
        if step >= warmup:
            waits.append(got - start)
            works.append(time.perf_counter() - got)
    wait, work = sum(waits), sum(works)
    row = {
        "method": spec.name, "variant": variant.name, "workers": workers, "batch": spec.batch_size,
        "batches": batches, "warmup": warmup, "wait_ms_per_batch": 1000 * wait / batches,
        "step_ms_per_batch": 1000 * work / batches, "data_share": wait / (wait + work),
        "slices_per_s": spec.batch_size * batches / (wait + work),
    }
    del batches_iter, loader, module, optimizer, batch, raw  # shuts the persistent workers down
    _release(device, variant.compile)
    return row
