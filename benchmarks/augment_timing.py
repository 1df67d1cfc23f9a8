"""Time of sspcmr's batched augmentation alone: the segment recipe (one view plus the one-hot label) on one
batch of native slices already on the device (benchmarks/loader.py and benchmarks/gpu.py)."""

from __future__ import annotations

import statistics
import time

import torch

import sspcmr.data.keys as K
from sspcmr.transforms import presets

NUM_CLASSES = 4
WARMUP_CALLS = 3  # untimed calls first: kernels, allocator growth


def native_batch(batch: int, native: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A labelled native batch as the loader delivers it: ``batch`` slices of ``native`` x ``native`` px,
    min-shifted intensities, 1.4 mm pixels, centred ground truth."""
    gen = torch.Generator().manual_seed(0)
    return {
        K.IMAGE: torch.rand(batch, 1, native, native, generator=gen).mul(800.0).to(device),
        K.LABEL: torch.randint(0, NUM_CLASSES, (batch, 1, native, native), generator=gen).to(device),
        K.SIZE: torch.full((batch, 2), native, dtype=torch.int64, device=device),
        K.SPACING: torch.full((batch, 2), 1.4, device=device),
        K.CENTER: torch.full((batch, 2), native / 2.0, device=device),
        K.MEAN: torch.full((batch,), 200.0, device=device),
        K.STD: torch.full((batch,), 150.0, device=device),
        K.MAX: torch.full((batch,), 800.0, device=device),
    }


def time_augmentation(device: torch.device, repeats: int, threads: int, batch: int = 128, native: int = 224,
                      output_size: int = 256) -> dict[str, float]:
    """Median, min and max milliseconds of the segment recipe on one native batch.

    Args:
        device: where the batch lives and the recipe runs; on cuda the time is CUDA events around the call.
        repeats: timed calls (after three untimed ones).
        threads: torch CPU threads in use (recorded only).
        batch: slices per batch.
        native: native slice side in px.
        output_size: side of the augmented view in px (at 1.25 mm x 256 / ``output_size``).
    """
    data = native_batch(batch, native, device)
    augmenter = presets.segmentation_train(output_size=output_size, output_spacing=1.25 * 256 / output_size)
    gen = torch.Generator().manual_seed(0)
    times = []
    for k in range(repeats + WARMUP_CALLS):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            augmenter(data, gen)
            end.record()
            torch.cuda.synchronize(device)
            elapsed = start.elapsed_time(end)
        else:
            t0 = time.perf_counter()
            augmenter(data, gen)
            elapsed = 1000.0 * (time.perf_counter() - t0)
        if k >= WARMUP_CALLS:
            times.append(elapsed)
    return {"device": str(device), "threads": threads, "repeats": repeats, "batch": batch, "native_px": native,
            "output_px": output_size, "median_ms": statistics.median(times), "min_ms": min(times),
            "max_ms": max(times)}
