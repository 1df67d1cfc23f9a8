"""The reference's per-sample data pipeline, imitated for benchmarks/loader.py (docs/benchmarks.md#data-loader).

Per sample, on the CPU inside the data loader: one affine resample per view (a MONAI ``RandomizableTransform``
drawing from a NumPy ``RandomState``, torch ``affine_grid`` + ``grid_sample`` per sample), subject
standardisation, MONAI's dictionary intensity transforms and the label one-hot, collated by torch's default
collate. The parameters are read from sspcmr's ``ViewSpec``s, so both pipelines do the same work per view.

Two fidelities. ``standin`` reads the slice from the prepared memory maps and lets each transform copy the
sample dict shallowly (MONAI's own dictionary transforms); the reference's own loader runs about 2x slower than
it. ``faithful`` adds the reference pipeline's per-sample overheads that are cheap to imitate: it reads every
sample from its own small file (:class:`SliceFiles`, one ``.npy`` per slice, written once) and hands every
transform a deep copy of the sample dict (:class:`DeepCopy`); it measured 1.4-1.7x slower than ``standin``
(docs/benchmarks.md, "Against the reference's own loader"). The affine grid is built per sample in both.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import (
    AsDiscreted,
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandomizableTransform,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Transform,
)
from torch.utils.data import Dataset, get_worker_info

import sspcmr.data.keys as K
from sspcmr.data.store import PreparedDataset
from sspcmr.transforms.geometry import GeometryAugmentation
from sspcmr.transforms.intensity import IntensityAugmentation
from sspcmr.transforms.views import Augmenter, ViewSpec

NUM_CLASSES = 4
Fidelity = Literal["standin", "faithful"]
FIDELITIES = ("standin", "faithful")


class ReferenceResampled(RandomizableTransform, MapTransform):
    """The reference's single-step affine resampling of one 2D sample (docs/reference.md#geometry).

    One ``affine_grid`` + ``grid_sample`` per sample (``align_corners=False``, zero padding; bicubic image,
    nearest label) maps the native slice to ``output_size`` px at ``output_spacing`` mm, centred on the
    ground-truth centre (or the image centre), with a random rotation, linked scale, per-axis flips and
    translation drawn from this transform's NumPy ``RandomState``.

    The sample dict holds ``IMAGE`` (1, H, W) float32, optionally ``LABEL`` (1, H, W), and ``SPACING`` and
    ``CENTER`` as (dim0, dim1) arrays.

    Args:
        geometry: Ranges and probabilities (the same object sspcmr's batched pipeline uses).
        keys: Image key, then optionally the label key.
    """

    def __init__(self, geometry: GeometryAugmentation, keys: KeysCollection = (K.IMAGE, K.LABEL)) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        RandomizableTransform.__init__(self, prob=1.0)
        self.geometry = geometry
        self._params = np.eye(3)

    def randomize(self, data: Any = None) -> None:
        """Draw rotation, scale, flips and translation; every draw is made whatever the probabilities."""
        g, r = self.geometry, self.R
        rotate, angle = r.rand() < g.rotation_prob, r.uniform(-g.rotation_range, g.rotation_range)
        rescale, scale = r.rand() < g.scale_prob, r.uniform(*g.scale_range)
        flip = np.where(r.rand(2) < g.flip_prob, -1.0, 1.0)
        shift, tau = r.rand() < g.translation_prob, r.uniform(-g.translation_range, g.translation_range, 2)
        angle, scale, tau = (angle if rotate else 0.0), (scale if rescale else 1.0), (tau if shift else np.zeros(2))
        # R . S . T over normalised output coordinates (x = dim1, y = dim0): p_in = R S (p + t).
        a = np.deg2rad(angle)
        rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        s = scale * flip
        st = np.diag([s[0], s[1], 1.0])
        st[:2, 2] = s * 2.0 * tau / g.output_size
        self._params = rot @ st

    def theta(self, size: tuple[int, int], spacing: np.ndarray, center: np.ndarray | None) -> np.ndarray:
        """The (2, 3) ``affine_grid`` matrix: output -> native normalised coordinates."""
        g = self.geometry
        n_xy = np.array([size[1], size[0]], dtype=np.float64)
        # Field of view S * spacing_out over the native extent N * spacing_in, per axis.
        d_xy = g.output_spacing * g.output_size / (np.asarray(spacing, np.float64)[::-1] * n_xy)
        theta = self._params[:2] * d_xy[:, None]
        if g.centring == "gt":
            c_xy = np.asarray(center, np.float64)[::-1]
            if g.centre_convention == "reference":
                theta[:, 2] += 2.0 * c_xy / (n_xy - 1.0) - 1.0
            else:
                theta[:, 2] += (2.0 * c_xy + 1.0) / n_xy - 1.0
        return theta

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize()
        image = torch.as_tensor(d[K.IMAGE])
        theta = torch.from_numpy(self.theta(tuple(image.shape[-2:]), d[K.SPACING], d.get(K.CENTER))).float()
        s = self.geometry.output_size
        grid = F.affine_grid(theta[None], [1, 1, s, s], align_corners=False)
        d[K.IMAGE] = F.grid_sample(image[None], grid, mode="bicubic", padding_mode="zeros", align_corners=False)[0]
        if K.LABEL in d:
            label = torch.as_tensor(d[K.LABEL]).float()[None]
            d[K.LABEL] = F.grid_sample(label, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
        return d


class Standardised(MapTransform):
    """(x - mean) / std with the subject statistics carried in the sample (``MEAN``, ``STD``)."""

    def __init__(self, keys: KeysCollection = K.IMAGE) -> None:
        super().__init__(keys)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = (d[key] - float(d[K.MEAN])) / float(d[K.STD])
        return d


class RandSolarized(RandomizableTransform, MapTransform):
    """DINO solarisation (MONAI has none): with probability ``prob``, pixels above ``threshold`` become
    ``max - x``, where ``max`` is the standardised subject maximum, as in sspcmr."""

    def __init__(self, keys: KeysCollection, prob: float, threshold: float) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob=prob)
        self.threshold = threshold

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        top = (float(d[K.MAX]) - float(d[K.MEAN])) / float(d[K.STD])
        for key in self.key_iterator(d):
            d[key] = torch.where(d[key] > self.threshold, top - d[key], d[key])
        return d


class DeepCopy(Transform):
    """Hands the next transform a deep copy of the sample dict: the reference's transforms each start with one."""

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(data)


def reference_view(spec: ViewSpec, with_labels: bool, deep_copy: bool = False) -> Compose:
    """The per-sample MONAI pipeline of one view kind, with the parameters of an sspcmr ``ViewSpec``.

    Args:
        spec: The view's geometry and intensity parameters.
        with_labels: Resample and one-hot the label too.
        deep_copy: Deep-copy the sample dict before every transform (``faithful``).
    """
    i: IntensityAugmentation = spec.intensity
    if i.scale_convention != "monai":
        raise ValueError("RandScaleIntensityd multiplies by (1 + f); only scale_convention='monai' matches it")
    steps: list[Any] = [ReferenceResampled(spec.geometry), Standardised()]
    # Transforms with probability 0 are left out, as the reference's evaluation pipeline has none of them.
    if i.noise_prob > 0:
        steps.append(RandGaussianNoised(K.IMAGE, prob=i.noise_prob, std=i.noise_std, sample_std=True))
    if i.smooth_prob > 0:
        steps.append(RandGaussianSmoothd(K.IMAGE, sigma_x=i.smooth_sigma, sigma_y=i.smooth_sigma, prob=i.smooth_prob))
    if i.scale_prob > 0:
        steps.append(RandScaleIntensityd(K.IMAGE, factors=i.scale_range, prob=i.scale_prob))
    if i.shift_prob > 0:
        steps.append(RandShiftIntensityd(K.IMAGE, offsets=i.shift_range, prob=i.shift_prob))
    if i.gamma_prob > 0:
        steps.append(RandAdjustContrastd(K.IMAGE, gamma=i.gamma_range, prob=i.gamma_prob))
    if i.solarize_prob > 0:
        steps.append(RandSolarized(K.IMAGE, prob=i.solarize_prob, threshold=i.solarize_threshold))
    if with_labels:
        steps.append(AsDiscreted(K.LABEL, to_onehot=NUM_CLASSES))
    if deep_copy:
        steps = [part for step in steps for part in (DeepCopy(), step)]
    return Compose(steps)


class SliceFiles:
    """One small ``.npy`` file per sample (native image, and the label as a second channel when labelled), read
    whole for every sample as the reference reads its slices, instead of sspcmr's shared memory maps.

    Args:
        directory: Where the files are (written by :meth:`write`, once; existing files are kept).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, subject: int, slice_: int, frame: int, label_index: int, with_labels: bool) -> Path:
        """The file of one sample (labelled samples have their own file, holding the label too)."""
        tail = f"_l{label_index}" if with_labels else ""
        return self.directory / f"s{subject}_z{slice_}_t{frame}{tail}.npy"

    def write(self, prepared: PreparedDataset, index: np.ndarray, with_labels: bool) -> int:
        """Write the missing files of the samples ``index`` ((N, 4): subject, slice, frame, label index); returns
        how many were written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        written = 0
        for s, z, t, label_index in (tuple(int(v) for v in row) for row in index):
            path = self.path(s, z, t, label_index, with_labels)
            if path.is_file():
                continue
            planes = [np.asarray(prepared.image(s)[t, z], dtype=np.float32)]
            if with_labels:
                planes.append(np.asarray(prepared.labels(s)[label_index, z], dtype=np.float32))
            partial = path.with_suffix(".partial.npy")
            np.save(partial, np.stack(planes))
            partial.replace(path)  # a killed run leaves no truncated file behind under the final name
            written += 1
        return written

    def read(self, subject: int, slice_: int, frame: int, label_index: int, with_labels: bool) -> np.ndarray:
        """The (1 or 2, H, W) float32 planes of one sample, read from its file."""
        return np.load(self.path(subject, slice_, frame, label_index, with_labels))


class ReferenceSliceDataset(Dataset):
    """Per-sample dataset over the prepared store: reads one native slice and runs every view's pipeline.

    Items are ``{IMAGE (1, S, S), LABEL (4, S, S)}`` for a single-view recipe and ``{VIEWS: [...]}``
    otherwise; every view is already its output size, so torch's default collate stacks them.

    Args:
        prepared: The prepared data set (the same memory maps sspcmr reads; subject statistics and geometry).
        rows: Rows of the slice index to serve.
        augmenter: The sspcmr recipe whose views are replicated per sample.
        with_labels: Read, resample and one-hot the label.
        seed: Seed of the transforms' random states (each loader worker reseeds from its own seed).
        fidelity: ``standin`` (memory maps, shallow copies) or ``faithful`` (one file per sample, a deep copy
            of the sample dict before every transform); see the module docstring.
        slice_files: Where ``faithful`` keeps its per-sample files (written here if missing); required then.
    """

    def __init__(
        self, prepared: PreparedDataset, rows: pd.DataFrame, augmenter: Augmenter, with_labels: bool, seed: int = 0,
        fidelity: Fidelity = "standin", slice_files: SliceFiles | None = None,
    ) -> None:
        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity must be one of {FIDELITIES}; got {fidelity!r}")
        if fidelity == "faithful" and slice_files is None:
            raise ValueError("fidelity 'faithful' reads one file per sample: pass slice_files")
        self.prepared, self.with_labels = prepared, with_labels
        self.rows = rows.reset_index(drop=True)
        self._index = self.rows[["subject_index", "slice", "frame", "label_index"]].to_numpy(np.int64)
        self.files = slice_files if fidelity == "faithful" else None
        if self.files is not None:
            self.files.write(prepared, self._index, with_labels)
        table = prepared.subjects
        self._spacing = table[["spacing_0", "spacing_1"]].to_numpy(np.float32)
        self._center = table[["gt_center_0", "gt_center_1"]].to_numpy(np.float32)
        self._stats = table[["min", "mean", "std", "max"]].to_numpy(np.float64)
        self.single = augmenter.single_view
        deep = fidelity == "faithful"
        self.pipelines = [reference_view(spec, with_labels, deep)
                          for spec in augmenter.views for _ in range(spec.count)]
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Give every view pipeline its own stream derived from ``seed``."""
        for k, pipeline in enumerate(self.pipelines):
            pipeline.set_random_state(seed=(seed + 7919 * k) % 2**32)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s, z, t, label_index = (int(v) for v in self._index[i])
        low, mean, std, high = self._stats[s]
        if self.files is not None:
            planes = self.files.read(s, z, t, label_index, self.with_labels)
            image, label = planes[0], (planes[1] if self.with_labels else None)
        else:
            image = np.asarray(self.prepared.image(s)[t, z], dtype=np.float32)
            label = self.prepared.labels(s)[label_index, z] if self.with_labels else None
        sample: dict[str, Any] = {
            # Minimum-shifted like sspcmr's SliceDataset, so the zero padding is the subject minimum.
            K.IMAGE: (image - np.float32(low))[None],
            K.SPACING: self._spacing[s], K.CENTER: self._center[s], K.MEAN: mean, K.STD: std, K.MAX: high,
        }
        if label is not None:
            sample[K.LABEL] = np.asarray(label, dtype=np.int64)[None]
        views = [pipeline(sample) for pipeline in self.pipelines]
        if self.single:
            out = {K.IMAGE: views[0][K.IMAGE]}
            if self.with_labels:
                out[K.LABEL] = views[0][K.LABEL]
            return out
        return {K.VIEWS: [view[K.IMAGE] for view in views]}


def reseed_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the reference loader: each worker reseeds its dataset's transforms."""
    # Forked workers inherit identical RandomStates; without reseeding they would repeat each other's draws.
    info = get_worker_info()
    info.dataset.reseed(info.seed % 2**32)
