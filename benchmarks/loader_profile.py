"""Where the time of a data pipeline goes: cProfile per Python function, torch.profiler per op
(benchmarks/loader.py ``--profile``)."""

from __future__ import annotations

import cProfile
import os
import pstats
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch


class Profiled(Protocol):
    """What is profiled: an endless stream of raw batches and the step that augments one."""

    batches: Iterator[Any]
    step: Callable[[Any], Any]
    device: torch.device


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profiled_name(file: str, name: str, own_share: float) -> str | None:
    """A short name for a profiled function worth listing, or None to leave it out."""
    path = file.replace(os.sep, "/")
    for marker in ("sspcmr/", "monai/transforms/"):
        if marker in path:
            return f"{marker if marker != 'sspcmr/' else ''}{path.split(marker)[-1]}:{name}"
    for script in ("loader.py", "reference_pipeline.py"):
        if path.endswith(f"benchmarks/{script}"):
            return f"{script}:{name}"
    if file == "~" and own_share > 0.01:  # heavy C functions (torch kernels) by their own time
        return name
    return None


def profile_pipeline(pipeline: Profiled, count: int) -> dict[str, Any]:
    """Milliseconds per batch by Python function (cProfile) and by torch op (torch.profiler, self CPU time).

    Only the main process is seen, so profile with ``--workers 0``.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        pipeline.step(next(pipeline.batches))
        _synchronise(pipeline.device)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, function): (calls, primitive, tottime, cumtime, callers)}
    total = sum(entry[2] for entry in stats.values())
    functions = []
    for (file, _, name), (_, calls, own, cumulative, _) in stats.items():
        label = _profiled_name(file, name, own / total)
        if label is not None:
            functions.append({"function": label, "calls_per_batch": calls / count,
                              "cumulative_ms": 1000.0 * cumulative / count, "own_ms": 1000.0 * own / count})
    functions.sort(key=lambda f: -f["cumulative_ms"])
    # cProfile names the Python function; torch.profiler names the kernels underneath.
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(count):
            pipeline.step(next(pipeline.batches))
            _synchronise(pipeline.device)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:10]
    ops = [{"op": e.key, "calls_per_batch": e.count / count, "self_ms": e.self_cpu_time_total / 1000.0 / count}
           for e in events]  # self_cpu_time_total is in microseconds
    return {"batches": count, "total_ms_per_batch": 1000.0 * total / count, "functions": functions, "ops": ops}
