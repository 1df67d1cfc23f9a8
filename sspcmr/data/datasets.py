"""Datasets over a prepared folder: native 2D slices, and whole (subject, phase) volumes.

Items are native-resolution slices with the subject minimum subtracted; every resampling and
augmentation happens later, batched on the device (:mod:`sspcmr.transforms`). Keys and shapes are
those of :mod:`sspcmr.data.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from . import keys as K
from .long_axis import VIEWS, slice_lines
from .slice_geometry import relative_slice_locations, stack_slice_origins
from .store import PreparedDataset

PHASES = {"ED": 0, "ES": 1}


@dataclass(frozen=True)
class _SubjectGeometry:
    """Per-slice geometry of one subject: relative locations (Z,), long-axis lines (Z, K, 3) and
    their validity (Z, K)."""

    locations: np.ndarray
    lines: torch.Tensor
    valid: torch.Tensor


def _subject_arrays(prepared: PreparedDataset) -> dict[str, np.ndarray]:
    table = prepared.subjects
    return {
        "spacing": table[["spacing_0", "spacing_1"]].to_numpy(np.float32),
        "center": table[["gt_center_0", "gt_center_1"]].to_numpy(np.float32),
        "min": table["min"].to_numpy(np.float64),
        "mean": table["mean"].to_numpy(np.float32),
        "std": table["std"].to_numpy(np.float32),
        "max": table["max"].to_numpy(np.float32),
    }


class SliceDataset(Dataset):
    """2D slices selected from the slice index table.

    Args:
        prepared: the prepared data set.
        rows: rows of ``prepared.slices`` to serve (any subset, e.g. labelled ED frames of the
            training subjects).
        with_labels: also return ``LABEL`` (rows must then be labelled).
    """

    def __init__(self, prepared: PreparedDataset, rows: pd.DataFrame, with_labels: bool = False) -> None:
        if with_labels and not rows["labelled"].all():
            raise ValueError("with_labels=True needs labelled rows only (ED or ES frames)")
        self.prepared = prepared
        self.with_labels = with_labels
        self.rows = rows.reset_index(drop=True)
        columns = ["subject_index", "slice", "n_slices", "frame", "frame_from_ed", "n_frames", "label_index"]
        self._ints = {c: self.rows[c].to_numpy(np.int64) for c in columns}
        self._position = self.rows["position"].to_numpy(np.float32)
        self._flags = {c: self.rows[c].to_numpy(bool) for c in ("is_ed", "is_es")}
        self._strings = {c: self.rows[c].astype(str).tolist() for c in ("dataset", "subject", "vendor", "pathology")}
        self._subjects = _subject_arrays(prepared)
        self._geometry: dict[int, _SubjectGeometry] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _subject_geometry(self, subject: int, n_slices: int) -> _SubjectGeometry:
        # One meta read per subject and worker, on first use; every slice's values are computed then.
        if subject not in self._geometry:
            meta = self.prepared.meta(subject)
            origins = stack_slice_origins(np.asarray(meta["affine"]), n_slices)
            lines, valid = slice_lines(meta, n_slices, VIEWS)
            self._geometry[subject] = _SubjectGeometry(relative_slice_locations(origins).astype(np.float32),
                                                       torch.from_numpy(lines), torch.from_numpy(valid))
        return self._geometry[subject]

    def __getitem__(self, i: int) -> dict:
        s = int(self._ints["subject_index"][i])
        z, t = int(self._ints["slice"][i]), int(self._ints["frame"][i])
        image = np.asarray(self.prepared.image(s)[t, z], dtype=np.float32) - np.float32(self._subjects["min"][s])
        geometry = self._subject_geometry(s, int(self._ints["n_slices"][i]))
        item = {
            K.IMAGE: torch.from_numpy(image)[None],
            K.SIZE: torch.tensor(image.shape, dtype=torch.int64),
            K.SPACING: torch.from_numpy(self._subjects["spacing"][s]),
            K.CENTER: torch.from_numpy(self._subjects["center"][s]),
            K.MEAN: torch.tensor(self._subjects["mean"][s]),
            K.STD: torch.tensor(self._subjects["std"][s]),
            K.MAX: torch.tensor(self._subjects["max"][s]),
            K.POSITION: torch.tensor(self._position[i]),
            K.LOCATION: torch.tensor(geometry.locations[z]),
            K.LA_LINES: geometry.lines[z].clone(), K.LA_VALID: geometry.valid[z].clone(),
            K.SLICE: torch.tensor(z), K.N_SLICES: torch.tensor(self._ints["n_slices"][i]),
            K.FRAME: torch.tensor(t), K.FRAME_FROM_ED: torch.tensor(self._ints["frame_from_ed"][i]),
            K.N_FRAMES: torch.tensor(self._ints["n_frames"][i]),
            K.IS_ED: torch.tensor(self._flags["is_ed"][i]), K.IS_ES: torch.tensor(self._flags["is_es"][i]),
            K.SUBJECT_INDEX: torch.tensor(s),
            K.DATASET: self._strings["dataset"][i], K.SUBJECT: self._strings["subject"][i],
            K.VENDOR: self._strings["vendor"][i], K.PATHOLOGY: self._strings["pathology"][i],
        }
        if self.with_labels:
            label = np.asarray(self.prepared.labels(s)[self._ints["label_index"][i], z], dtype=np.int64)
            item[K.LABEL] = torch.from_numpy(label)[None]
        return item


def collate_slices(items: list[dict]) -> dict:
    """Stack slice items, zero-padding images and labels to the batch's largest (H, W).

    The zero padding lies beyond each slice's ``SIZE``; the geometric resampling treats it as the
    zero padding of ``grid_sample``, so padding changes nothing. ``PADDED`` records that canvas
    (Hc, Wc) on every row: the augmentation drops the native image, and ``THETA`` refers to the canvas.
    """
    height = max(int(item[K.SIZE][0]) for item in items)
    width = max(int(item[K.SIZE][1]) for item in items)
    batch: dict = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in (K.IMAGE, K.LABEL):
            out = values[0].new_zeros((len(values), values[0].shape[0], height, width))
            for b, v in enumerate(values):
                out[b, :, : v.shape[-2], : v.shape[-1]] = v
            batch[key] = out
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    batch[K.PADDED] = torch.tensor([[height, width]] * len(items), dtype=torch.int64)
    return batch


class VolumeDataset(Dataset):
    """Whole (subject, phase) volumes for evaluation; one item is already a batch of its Z slices.

    Use with ``DataLoader(batch_size=None)``. Each item has every slice key of
    :class:`SliceDataset` with a leading slice dimension (IMAGE and LABEL (Z, 1, H, W)), plus
    ``PHASE`` ("ED" / "ES"), ``AFFINE`` (4, 4) of the prepared array and ``VOXEL_SPACING`` (3,) mm
    of the (Z, H, W) volume, so that predictions can be written and scored in native space.

    Args:
        prepared: the prepared data set.
        items: (subject_index, phase) pairs with phase "ED" or "ES".
    """

    def __init__(self, prepared: PreparedDataset, items: list[tuple[int, str]]) -> None:
        self.prepared = prepared
        self.items = list(items)
        for _, phase in self.items:
            if phase not in PHASES:
                raise ValueError(f"phase must be ED or ES; got {phase!r}")
        # One slice dataset over every labelled slice, ordered by (subject, phase, slice); an item is a
        # contiguous run of it, so nothing is rebuilt per volume.
        labelled = prepared.slices[prepared.slices["labelled"]]
        labelled = labelled.sort_values(["subject_index", "label_index", "slice"])
        self._slices = SliceDataset(prepared, labelled, with_labels=True)
        keys = list(zip(self._slices.rows["subject_index"], self._slices.rows["label_index"], strict=True))
        self._runs: dict[tuple[int, int], range] = {}
        for position, key in enumerate(keys):
            run = self._runs.get(key)
            self._runs[key] = range(position, position + 1) if run is None else range(run.start, position + 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        subject, phase = self.items[i]
        batch = collate_slices([self._slices[j] for j in self._runs[(subject, PHASES[phase])]])
        batch[K.PHASE] = phase
        meta = self.prepared.meta(subject)
        batch[K.AFFINE] = torch.tensor(meta["affine"], dtype=torch.float64)
        spacing = meta["spacing"]
        batch[K.VOXEL_SPACING] = torch.tensor([spacing[2], spacing[0], spacing[1]], dtype=torch.float64)
        return batch
