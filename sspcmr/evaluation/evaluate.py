"""``sspcmr evaluate``: score a segmentation checkpoint on prepared data in native space."""

from __future__ import annotations

from pathlib import Path

import torch


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
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # corrupt or foreign files raise many types
        raise ValueError(f"cannot read checkpoint {path} ({error})") from None
    trained = content.get("datamodule_hyper_parameters", {}) if isinstance(content, dict) else {}
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
