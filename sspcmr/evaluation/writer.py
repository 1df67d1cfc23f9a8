"""``NiftiPredictionWriter``: the predictions of ``Segmentation.predict_step`` as M&Ms-style 4D label files.

Each (subject, phase) volume arrives as its own predict batch with labels on the prepared grid. The writer
maps them back to the raw cine's grid (:func:`sspcmr.data.preprocessing.to_raw_grid`) and, per subject,
writes ``<output_dir>/<ID>_sa_pred.nii.gz``: the raw cine's (X, Y, Z, T) shape, sform and qform, uint8
labels at the predicted phases' frames (ED and/or ES, from ``meta.json``) and zeros at every other frame.
A subject's file is written as soon as all the phases of the run (the data module's ``eval_phases``) have
been seen, and any subject still incomplete at the end of the epoch is written with what it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import nibabel as nib
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from sspcmr.data.preprocessing import to_raw_grid
from sspcmr.data.store import PreparedDataset
from sspcmr.inference.nifti import write_labels_like

PRED_SUFFIX = "_sa_pred.nii.gz"


class NiftiPredictionWriter(BasePredictionWriter):
    """Write each subject's predicted ED/ES labels into a 4D label file on the raw cine's grid.

    Args:
        output_dir: folder for ``<ID>_sa_pred.nii.gz`` files (created).
        data_dir: the prepared folder, to read each subject's ``meta.json``; None uses the trainer's data
            module's prepared data set (``CineDataModule``).

    Attributes:
        written: paths written so far (in order).
    """

    def __init__(self, output_dir: str | Path, data_dir: str | Path | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.data_dir = None if data_dir is None else Path(data_dir)
        self._prepared: PreparedDataset | None = None
        self._pending: dict[int, dict[str, np.ndarray]] = {}
        self.written: list[Path] = []

    def _dataset(self, trainer: L.Trainer) -> PreparedDataset:
        if self._prepared is None:
            if self.data_dir is not None:
                self._prepared = PreparedDataset(self.data_dir)
            else:
                prepared = getattr(getattr(trainer, "datamodule", None), "prepared", None)
                if prepared is None:
                    raise ValueError("NiftiPredictionWriter needs data_dir, or a CineDataModule in the trainer")
                self._prepared = prepared
        return self._prepared

    @staticmethod
    def _expected_phases(trainer: L.Trainer) -> set[str] | None:
        phases = getattr(getattr(trainer, "datamodule", None), "eval_phases", None)
        return set(phases) if phases else None

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = {}

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(prediction, dict) or "labels" not in prediction:
            raise ValueError("NiftiPredictionWriter needs the dicts of Segmentation.predict_step")
        index, phase = int(prediction["subject_index"]), str(prediction["phase"])
        labels = prediction["labels"]
        labels = labels.cpu().numpy() if hasattr(labels, "cpu") else np.asarray(labels)
        phases = self._pending.setdefault(index, {})
        phases[phase] = labels.astype(np.uint8, copy=False)
        expected = self._expected_phases(trainer)
        if expected is not None and expected <= set(phases):
            self._write(trainer, index, self._pending.pop(index))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for index in sorted(self._pending):
            self._write(trainer, index, self._pending[index])
        self._pending = {}

    def _write(self, trainer: L.Trainer, index: int, phases: dict[str, np.ndarray]) -> Path:
        meta = self._dataset(trainer).meta(index)
        cine_path = Path(meta["sources"]["cine"])
        reference = nib.load(str(cine_path))  # header only: the voxels are never read
        shape = tuple(int(s) for s in reference.shape)
        if len(shape) != 4:
            raise ValueError(f"{cine_path}: expected a 4D cine, found shape {shape}")
        out = np.zeros(shape, dtype=np.uint8)
        for phase, labels in phases.items():
            frame = int(meta[phase.lower()])
            out[..., frame] = to_raw_grid(labels, meta, shape[:3])
        path = self.output_dir / f"{meta['subject']}{PRED_SUFFIX}"
        write_labels_like(out, reference, path)
        self.written.append(path)
        return path
