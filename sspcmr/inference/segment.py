"""``sspcmr segment``: segment plain NIfTI files with a checkpoint.

The checkpoint is read as data only (:meth:`Segmentation.from_checkpoint`, ``weights_only=True``), never the
file its fine-tuning started from.
"""

from __future__ import annotations

import os
from pathlib import Path

from sspcmr.data.errors import DataError

PRED_SUFFIX = "_pred.nii.gz"
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
"""``--precision`` values, Lightning's names: float32, or the network under bfloat16 / float16 autocast."""


def _stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".nii")


def output_paths(inputs: list[str | Path], out: str | Path) -> list[Path]:
    """One distinct output file per input: ``<out>/<relative folder>/<name>_pred.nii.gz``.

    The relative folder is the input's folder below the inputs' common folder, so ``a/sa.nii.gz`` and
    ``b/sa.nii.gz`` give ``out/a/sa_pred.nii.gz`` and ``out/b/sa_pred.nii.gz``, and files of one folder
    keep plain names.

    Raises:
        DataError: an input given twice.
    """
    sources = [Path(item).resolve() for item in inputs]
    seen: dict[Path, str] = {}
    for item, source in zip(inputs, sources, strict=True):
        if source in seen:
            raise DataError(f"--input lists the same file twice: {seen[source]} and {item}")
        seen[source] = str(item)
    common = Path(os.path.commonpath([source.parent for source in sources])) if sources else Path()
    return [Path(out) / source.parent.relative_to(common) / f"{_stem(source)}{PRED_SUFFIX}" for source in sources]


def under_autocast(model, device: str, precision: str):
    """``model`` as a callable that runs under autocast at ``precision`` (``32-true``: ``model`` itself).

    Only the network: the resampling before and after stays float32, as under Lightning, whose autocast
    covers the step and not the augmentation of the transferred batch."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "32-true":
        return model
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16

    def run(images):
        with torch.autocast(torch.device(device).type, dtype=dtype):
            return model(images)

    return run


def segment_files(ckpt: str | Path, inputs: list[str | Path], out: str | Path, device: str = "cpu",
                  overwrite: bool = False, precision: str = "32-true") -> list[Path]:
    """Segment plain 3D / 4D short-axis NIfTI files with a Segmentation checkpoint.

    Each output (see :func:`output_paths`) has its input's exact shape and affine; the network grid is the
    one the checkpoint was trained with. Outputs are written atomically.

    Args:
        ckpt: a Segmentation checkpoint (``.ckpt``).
        inputs: NIfTI files (3D volume or 4D cine).
        out: output folder.
        device: torch device.
        overwrite: replace existing outputs (default: refuse before segmenting anything).
        precision: ``32-true``, or the network under autocast: ``bf16-mixed`` (CPU and GPU) or ``16-mixed``.

    Raises:
        DataError: unreadable checkpoint or input, or outputs that exist already without ``overwrite``.
    """
    from sspcmr.methods import Segmentation

    from .nifti import predict_nifti

    targets = output_paths(inputs, out)
    existing = [str(target) for target in targets if target.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise DataError(f"output {existing[0]}{more} exists already; pass --overwrite to replace it")
    model = Segmentation.from_checkpoint(ckpt, log_images=False).to(device)  # in eval mode
    network = under_autocast(model, device, precision)
    written = []
    for item, target in zip(inputs, targets, strict=True):  # on the grid the model was trained on
        written.append(predict_nifti(network, Path(item), target, output_size=model.output_size,
                                     output_spacing=model.output_spacing, device=device))
    return written
