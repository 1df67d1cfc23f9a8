"""``sspcmr evaluate`` (score a checkpoint on prepared data in native space) and ``sspcmr segment``
(segment plain NIfTI files with a checkpoint).

Both read the checkpoint as data only (:meth:`Segmentation.from_checkpoint`, ``weights_only=True``) and
never the file its fine-tuning started from.
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

    from .predict import predict_nifti

    targets = output_paths(inputs, out)
    existing = [str(target) for target in targets if target.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise DataError(f"output {existing[0]}{more} exists already; pass --overwrite to replace it")
    model = Segmentation.from_checkpoint(ckpt, log_images=False)
    trained = model.trained_data
    written = []
    for item, target in zip(inputs, targets, strict=True):
        written.append(predict_nifti(model, Path(item), target, output_size=trained.get("output_size", 256),
                                     output_spacing=trained.get("output_spacing", 1.25), device=device))
    return written


def evaluate_checkpoint(ckpt: str | Path, prepared: str | Path, split: str | Path, out: str | Path,
                        eval_phases: list[str] | None = None, output_size: int | None = None,
                        output_spacing: float | None = None, accelerator: str = "auto", devices: int | str = 1,
                        num_workers: int = 2) -> dict[str, float]:
    """Run the native-space test of :class:`~sspcmr.methods.Segmentation` from ``ckpt`` on ``split``'s
    test subjects and write the tables to ``out``.

    The resampling grid (``output_size``, ``output_spacing``) defaults to the one the checkpoint was
    trained with (the data module's saved hyperparameters), so a model is scored on the grid it knows.

    Returns:
        The headline numbers logged by the test (mean Dice per class, HD95, EF errors).
    """
    import lightning as L

    from sspcmr.data.datamodule import CineDataModule
    from sspcmr.methods import Segmentation

    model = Segmentation.from_checkpoint(ckpt, results_dir=str(out), log_images=False)
    trained = model.trained_data
    data = CineDataModule(
        str(prepared), str(split), mode="segment", eval_phases=eval_phases,
        output_size=output_size or trained.get("output_size", 256),
        output_spacing=output_spacing or trained.get("output_spacing", 1.25),
        num_workers=num_workers,
    )
    trainer = L.Trainer(accelerator=accelerator, devices=devices, logger=False, enable_checkpointing=False)
    results = trainer.test(model, datamodule=data)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}
