"""Peak dense tensor-core throughput of the GPUs ``sspcmr study --estimate`` prices runs on.

These are **peak datasheet values** (NVIDIA's product datasheets: H100 and H200 Tensor Core GPU, A100
Tensor Core GPU, V100 Tensor Core GPU, L40S, A10), dense (without the 2:4 structured-sparsity doubling the
datasheets also quote), in TFLOP/s. No run reaches them; the estimate divides by peak x MFU (model FLOPs
utilisation, an assumption the user sets).

Precision: a run in ``16-mixed`` / ``bf16-mixed`` (or ``-true``) computes its convolutions on the half-precision
tensor cores; a run in ``32-true`` runs them on the TF32 tensor cores where the GPU has them, because
PyTorch's default ``torch.backends.cudnn.allow_tf32 = True`` lets cuDNN convolutions use TF32 (V100 has no
TF32: plain FP32).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPUS", "GpuPeak", "peak_flops", "precision_class"]

HALF, FP32 = "half", "fp32"


@dataclass(frozen=True)
class GpuPeak:
    """Peak dense throughput of one GPU in TFLOP/s.

    Attributes:
        name: the name on the command line (``h100``).
        label: what the datasheet calls it.
        half: FP16 / BF16 tensor cores, dense.
        tf32: TF32 tensor cores, dense (None: the GPU has none).
        fp32: plain FP32 (CUDA cores).
        bf16: whether the tensor cores take BF16 (V100: FP16 only).
    """

    name: str
    label: str
    half: float
    tf32: float | None
    fp32: float
    bf16: bool = True


GPUS: dict[str, GpuPeak] = {gpu.name: gpu for gpu in (
    GpuPeak("h100", "H100 SXM5", half=989.0, tf32=495.0, fp32=67.0),
    GpuPeak("h200", "H200 SXM (H100's compute)", half=989.0, tf32=495.0, fp32=67.0),
    GpuPeak("a100", "A100 SXM4", half=312.0, tf32=156.0, fp32=19.5),
    GpuPeak("v100", "V100 SXM2", half=125.0, tf32=None, fp32=15.7, bf16=False),
    GpuPeak("l40s", "L40S", half=362.0, tf32=183.0, fp32=91.6),
    GpuPeak("a10", "A10", half=125.0, tf32=62.5, fp32=31.2),
)}
"""Peak datasheet values, dense, TFLOP/s (module docstring)."""


def precision_class(precision: object) -> str:
    """``half`` for Lightning's 16 / bf16 precisions, ``fp32`` for 32 (None: Lightning's default, 32-true).

    Raises:
        ValueError: a precision the table has no peak for (64-bit, transformer-engine).
    """
    text = "32-true" if precision is None else str(precision)
    if text in ("16", "bf16", "16-mixed", "bf16-mixed", "16-true", "bf16-true"):
        return HALF
    if text in ("32", "32-true"):
        return FP32
    raise ValueError(f"no peak throughput for trainer.precision {text!r} (the estimate knows 16/bf16 and 32)")


def peak_flops(gpu: str, precision: object) -> float:
    """Peak FLOP/s of ``gpu`` for a run at Lightning ``precision`` (the datasheet value, dense).

    Raises:
        ValueError: an unknown GPU, or bf16 on a GPU without bf16 tensor cores.
    """
    if gpu not in GPUS:
        raise ValueError(f"--gpu {gpu!r}: choose from {', '.join(GPUS)}")
    spec = GPUS[gpu]
    if precision_class(precision) == HALF:
        if "bf16" in str(precision) and not spec.bf16:
            raise ValueError(f"--gpu {gpu}: a run trains in {precision}, but the {spec.label} has no bf16 tensor cores")
        return spec.half * 1e12
    return (spec.tf32 if spec.tf32 is not None else spec.fp32) * 1e12
