"""``sspcmr evaluate``: score a checkpoint on prepared data in native space.

The checkpoint is read as data only (:meth:`Segmentation.from_checkpoint`, ``weights_only=True``), never
the file its fine-tuning started from. (``sspcmr segment`` is :mod:`sspcmr.inference.segment`.)
"""

from __future__ import annotations

from pathlib import Path


def evaluate_checkpoint(ckpt: str | Path, prepared: str | Path, split: str | Path, out: str | Path,
                        eval_phases: list[str] | None = None, output_size: int | None = None,
                        output_spacing: float | None = None, accelerator: str = "auto", devices: int | str = 1,
                        num_workers: int = 2) -> dict[str, float]:
    """Run the native-space test of :class:`~sspcmr.methods.Segmentation` from ``ckpt`` on ``split``'s
    test subjects and write the tables to ``out``.

    The resampling grid (``output_size``, ``output_spacing``) defaults to the one the checkpoint was
    trained with (the model's saved grid), so a model is scored on the grid it knows.

    Returns:
        The headline numbers logged by the test (mean Dice per class, HD95, EF errors).
    """
    import lightning as L

    from sspcmr.data.datamodule import CineDataModule
    from sspcmr.methods import Segmentation

    grid = {key: value for key, value in (("output_size", output_size), ("output_spacing", output_spacing)) if value}
    model = Segmentation.from_checkpoint(ckpt, results_dir=str(out), log_images=False, **grid)
    data = CineDataModule(str(prepared), str(split), mode="segment", eval_phases=eval_phases,
                          output_size=model.output_size, output_spacing=model.output_spacing, num_workers=num_workers)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, logger=False, enable_checkpointing=False)
    results = trainer.test(model, datamodule=data)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}
