"""``sspcmr segment``: segment plain NIfTI files with a checkpoint.

The checkpoint is read as data only (:meth:`Segmentation.from_checkpoint`, ``weights_only=True``), never the
file its fine-tuning started from.
"""

from __future__ import annotations

import os
from pathlib import Path

from sspcmr.data.errors import DataError

PRED_SUFFIX = "_pred.nii.gz"


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


def segment_files(ckpt: str | Path, inputs: list[str | Path], out: str | Path, device: str = "cpu",
                  overwrite: bool = False) -> list[Path]:
    """Segment plain 3D / 4D short-axis NIfTI files with a Segmentation checkpoint.

    Each output (see :func:`output_paths`) has its input's exact shape and affine; the network grid is the
    one the checkpoint was trained with. Outputs are written atomically.

    Args:
        ckpt: a Segmentation checkpoint (``.ckpt``).
        inputs: NIfTI files (3D volume or 4D cine).
        out: output folder.
        device: torch device.
        overwrite: replace existing outputs (default: refuse before segmenting anything).

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
    model = Segmentation.from_checkpoint(ckpt, log_images=False)
    written = []
    for item, target in zip(inputs, targets, strict=True):  # on the grid the model was trained on
        written.append(predict_nifti(model, Path(item), target, output_size=model.output_size,
                                     output_spacing=model.output_spacing, device=device))
    return written
