"""``sspcmr evaluate`` (score a checkpoint on prepared data in native space) and ``sspcmr segment``
(segment plain NIfTI files with a checkpoint)."""

from __future__ import annotations

from pathlib import Path


def _read_checkpoint(path: Path) -> dict:
    from sspcmr.methods.transfer import load_file

    content = load_file(path, "--ckpt")
    if not isinstance(content, dict) or "state_dict" not in content:
        raise ValueError(f"{path} is not a Lightning checkpoint")
    return content


def segment_files(ckpt: str | Path, inputs: list[str | Path], out: str | Path, device: str = "cpu") -> list[Path]:
    """Segment plain 3D / 4D short-axis NIfTI files with a Segmentation checkpoint.

    Each output ``<out>/<name>_pred.nii.gz`` has its input's exact shape and affine; the network grid
    is the one the checkpoint was trained with.
    """
    from sspcmr.methods import Segmentation

    from .predict import predict_nifti

    path = Path(ckpt)
    trained = _read_checkpoint(path).get("datamodule_hyper_parameters", {})
    try:
        model = Segmentation.load_from_checkpoint(path, map_location="cpu", log_images=False)
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"{path} is not a Segmentation checkpoint ({error})") from None
    written = []
    for item in inputs:
        source = Path(item)
        stem = source.name.removesuffix(".gz").removesuffix(".nii")
        target = Path(out) / f"{stem}_pred.nii.gz"
        written.append(predict_nifti(model, source, target, output_size=trained.get("output_size", 256),
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

    path = Path(ckpt)
    trained = _read_checkpoint(path).get("datamodule_hyper_parameters", {})
    data = CineDataModule(
        str(prepared), str(split), mode="segment", eval_phases=eval_phases,
        output_size=output_size or trained.get("output_size", 256),
        output_spacing=output_spacing or trained.get("output_spacing", 1.25),
        num_workers=num_workers,
    )
    try:
        model = Segmentation.load_from_checkpoint(path, map_location="cpu", results_dir=str(out), log_images=False)
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"{path} is not a Segmentation checkpoint ({error})") from None
    trainer = L.Trainer(accelerator=accelerator, devices=devices, logger=False, enable_checkpointing=False)
    results = trainer.test(model, datamodule=data)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}
