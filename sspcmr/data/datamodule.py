"""``CineDataModule``: native 2D cine slices and volumes from a prepared folder, and the evaluation resampling.

Modes:

* ``pretrain``: every frame of every slice of the training subjects, images only, with slice
  position, frame and subject in the batch; the validation subjects (all frames) for an SSP
  validation loss. Crops are GT-centred as in the reference (the subject's ED/ES labels give the
  centre).
* ``segment``: the labelled frames of ``train_phases`` of the training subjects (optionally a
  labelled subset), validation subjects with the same phases (the reference filters validation
  by the training phase too); testing and prediction serve whole test volumes of ``eval_phases``
  (evaluation happens per volume in native space).
* ``volumes``: whole (subject, phase) volumes of ``eval_phases`` for evaluation in native space;
  one item is a batch of its slices.

The loaders deliver native slices (zero-padded to the batch's largest) and native volumes. The data module
knows nothing of methods: a method augments the slices it trains on itself and resamples the volumes it
evaluates (in its ``on_after_batch_transfer``, on the GPU when there is one;
:class:`sspcmr.methods.base.CineModule`). :meth:`CineDataModule.resample` is the evaluation resampling
(image-centred, to ``output_size`` px at ``output_spacing`` mm, standardised, no augmentation) for code
that reads the loaders directly.
"""

from __future__ import annotations

from numbers import Integral
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightly.utils.dist import world_size
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, DistributedSampler

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.transforms import presets

from .datasets import PHASES, SliceDataset, VolumeDataset, collate_slices
from .splits import Split, labelled_subset, read_split
from .store import PreparedDataset

Mode = Literal["pretrain", "segment", "volumes"]
Phase = Literal["ED", "ES"]


class CineDataModule(L.LightningDataModule):
    """Slices of 4D short-axis cines for pretraining, segmentation and evaluation.

    Args:
        data_dir: folder written by ``sspcmr prepare``.
        split: split YAML (reference format) with ``train`` / ``valid`` / ``test``.
        mode: ``pretrain`` (all frames, images only), ``segment`` (labelled frames) or ``volumes``.
        raw_dir: optional raw M&Ms / M&Ms-2 folder; if given, ``prepare_data`` runs ``sspcmr prepare``
            from it into ``data_dir`` (incrementally).
        subset_subjects: keep this many training subjects (reference labelled-subset drawing: legacy
            NumPy seed + shuffle, nested across sizes); None keeps all.
        subset_seed: seed of the subset draw (the reference used 0, 1, 2).
        pretrain_subjects: ``pretrain`` mode only: use this share of the training subjects for
            pretraining, a fraction in (0, 1] (e.g. 0.25) or a count (e.g. 50); None uses all. The draw
            is nested (a smaller share is a subset of a larger one with the same seed), so a study can
            trace Dice against the amount of unlabelled data (Dominic et al. fit a power law to it).
            Validation subjects are not reduced.
        pretrain_subjects_seed: seed of that draw.
        long_axis_only: keep only training and validation subjects whose prepared data has long-axis
            geometry (the orientation pretext task needs it); the others are skipped and counted.
        train_phases: labelled phases used for training and validation (``segment`` mode).
        eval_phases: phases used for testing and ``volumes`` (train on ED, evaluate on ES works).
        vendors: keep only training and validation subjects of these vendor letters (None: all).
        output_size: side in pixels of the slices a network sees (reference 256): the evaluation resampling
            here, and (linked on the command line) the method's own views.
        output_spacing: their pixel spacing in mm (reference 1.25).
        batch_size: source slices per batch (a method's views multiply the tensor batch).
        val_batch_size: slices per validation batch (reference baseline 128); None uses ``batch_size``.
        num_workers: data-loader worker processes.
        seed: seed of the training shuffles (and, linked on the command line, of the method's augmentation).
        pin_memory: pin host memory for faster transfer to the GPU.
    """

    def __init__(
        self,
        data_dir: str,
        split: str,
        mode: Mode = "segment",
        raw_dir: str | None = None,
        subset_subjects: int | None = None,
        subset_seed: int = 0,
        pretrain_subjects: int | float | None = None,
        pretrain_subjects_seed: int = 0,
        long_axis_only: bool = False,
        train_phases: list[Phase] | None = None,
        eval_phases: list[Phase] | None = None,
        vendors: list[str] | None = None,
        output_size: int = 256,
        output_spacing: float = 1.25,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        self._check_arguments(dict(locals()))
        self.save_hyperparameters()
        self.data_dir, self.split_path, self.mode, self.raw_dir = Path(data_dir), split, mode, raw_dir
        self.subset_subjects, self.subset_seed = subset_subjects, subset_seed
        self.pretrain_subjects, self.pretrain_subjects_seed = pretrain_subjects, pretrain_subjects_seed
        self.long_axis_only = long_axis_only
        self.skipped_without_long_axis: dict[str, int] = {}
        self.train_phases = list(train_phases or ["ED", "ES"])
        self.eval_phases = list(eval_phases or ["ED", "ES"])
        self.vendors = vendors
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.val_batch_size = val_batch_size or batch_size
        self.seed = seed
        self.output_size, self.output_spacing = output_size, output_spacing
        self.resampling = presets.evaluation(output_size=output_size, output_spacing=output_spacing)
        self.prepared: PreparedDataset | None = None
        self.split: Split | None = None
        self.datasets: dict[str, torch.utils.data.Dataset] = {}

    @classmethod
    def for_checkpoint(cls, path: str | Path, data_dir: str, split: str, **kwargs) -> CineDataModule:
        """A data module on the grid the network in ``path`` (``.ckpt``, or exported ``.pt`` with its ``.json``)
        was trained on (:func:`sspcmr.pretrained.checkpoint_grid`); ``kwargs`` are the other arguments.

        Raises:
            ValueError: ``kwargs`` with another ``output_size`` / ``output_spacing`` (naming both grids), or
                a source that records no grid.
        """
        from sspcmr.pretrained import check_grid, checkpoint_grid

        grid = checkpoint_grid(path)
        check_grid(path, grid, kwargs, "the data module")
        return cls(data_dir, split, **{**kwargs, **grid})

    @staticmethod
    def _check_arguments(args: dict) -> None:
        """Refuse invalid constructor arguments with one line naming the argument, its value and what is
        allowed (before anything is created or read)."""
        check_choice("mode", args["mode"], ("pretrain", "segment", "volumes"))
        for name in ("train_phases", "eval_phases"):
            phases = args[name]
            if phases is not None and (isinstance(phases, str) or not phases or any(p not in PHASES for p in phases)):
                raise ValueError(f"{name} must be a non-empty list of ED / ES; got {phases!r}")
        vendors = args["vendors"]
        if vendors is not None and (isinstance(vendors, str) or not vendors
                                    or not all(isinstance(v, str) and v for v in vendors)):
            raise ValueError(f"vendors must be a non-empty list of vendor letters (e.g. [A, B]) or null; "
                             f"got {vendors!r}")
        share = args["pretrain_subjects"]
        if share is not None and (isinstance(share, bool) or not (
                (isinstance(share, Integral) and share >= 1) or (isinstance(share, float) and 0 < share <= 1))):
            raise ValueError(f"pretrain_subjects must be a fraction in (0, 1] or a count >= 1; got {share!r}")
        for name in ("batch_size", "output_size"):
            check_int(name, args[name], 1)
        for name in ("subset_subjects", "val_batch_size"):
            if args[name] is not None:
                check_int(name, args[name], 1)
        check_int("num_workers", args["num_workers"], 0)
        for name in ("subset_seed", "pretrain_subjects_seed", "seed"):  # NumPy and pandas take 0 ... 2**32 - 1
            check_int(name, args[name], 0, 2**32 - 1)
        check_number("output_spacing", args["output_spacing"], 0, low_open=True)

    # -- data preparation and selection ------------------------------------------------------------

    def prepare_data(self) -> None:
        if self.raw_dir is not None:
            from .prepare import prepare_dataset

            prepare_dataset(self.raw_dir, self.data_dir, workers=max(1, self.num_workers))

    def _load(self) -> None:
        if self.prepared is None:
            self.prepared = PreparedDataset(self.data_dir)
            split = read_split(self.split_path)
            if not split.train or not split.valid:
                raise ValueError(f"{self.split_path}: a split for training needs train and valid parts "
                                 "(generate one with `sspcmr splits default`)")
            if self.subset_subjects is not None:
                split = labelled_subset(split, self.subset_subjects, self.subset_seed)
            self.split = split
            self._check_subjects()

    def _check_subjects(self) -> None:
        known = set(zip(self.prepared.subjects["dataset"], self.prepared.subjects["SubjectID"], strict=True))
        missing = [f"{ds} {s}" for part in (self.split.train, self.split.valid, self.split.test)
                   for ds, ids in part.items() for s in ids if (ds, s) not in known]
        if missing:
            raise ValueError(f"{self.split_path}: {len(missing)} subject(s) are not in the prepared data "
                             f"{self.data_dir}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")

    def subject_indices(self, part: str) -> list[int]:
        """Rows of the subject table in a split part (``train`` / ``valid`` / ``test``), vendor-filtered
        for ``train`` and ``valid``."""
        self._load()
        wanted = {(ds, s) for ds, ids in getattr(self.split, part).items() for s in ids}
        table = self.prepared.subjects
        keep = [(ds, s) in wanted for ds, s in zip(table["dataset"], table["SubjectID"], strict=True)]
        if self.vendors is not None and part != "test":
            keep = [k and v in self.vendors for k, v in zip(keep, table["Vendor"], strict=True)]
        chosen = [i for i, k in enumerate(keep) if k]
        if self.long_axis_only and part != "test":
            with_long_axis = [i for i in chosen if self.prepared.meta(i).get("long_axis")]
            self.skipped_without_long_axis[part] = len(chosen) - len(with_long_axis)
            chosen = with_long_axis
        if part == "train" and self.mode == "pretrain" and self.pretrain_subjects is not None:
            chosen = self._pretrain_share(chosen)
        return chosen

    def _pretrain_share(self, chosen: list[int]) -> list[int]:
        """A nested, seeded share of the training subjects: one fixed shuffle, its first k subjects."""
        share = self.pretrain_subjects
        count = share if isinstance(share, int) else max(1, round(share * len(chosen)))
        if count > len(chosen):
            raise ValueError(f"pretrain_subjects={share} asks for more than the {len(chosen)} training subjects")
        order = np.random.default_rng(self.pretrain_subjects_seed).permutation(len(chosen))
        return sorted(chosen[j] for j in order[:count])

    def slice_rows(self, part: str, mode: str | None = None) -> pd.DataFrame:
        """Rows of the slice index served for a split part in the given mode."""
        mode = mode or self.mode
        rows = self.prepared_slices()
        rows = rows[rows["subject_index"].isin(self.subject_indices(part))]
        if mode == "pretrain":
            return rows
        phases = self.eval_phases if part == "test" else self.train_phases
        return rows[rows["label_index"].isin([PHASES[p] for p in phases])]

    def prepared_slices(self) -> pd.DataFrame:
        self._load()
        return self.prepared.slices

    def volume_items(self, part: str = "test") -> list[tuple[int, str]]:
        """(subject index, phase) pairs of a split part over ``eval_phases``."""
        return [(i, p) for i in self.subject_indices(part) for p in self.eval_phases]

    def setup(self, stage: str | None = None) -> None:
        self._load()
        labelled = self.mode != "pretrain"
        if self.long_axis_only:
            self.subject_indices("train"), self.subject_indices("valid")  # counts the skipped subjects
            skipped = self.skipped_without_long_axis
            rank_zero_info(f"long_axis_only: skipped {skipped.get('train', 0)} training and "
                           f"{skipped.get('valid', 0)} validation subject(s) without long-axis views")
        if self.mode == "volumes":
            self.datasets = {"test": VolumeDataset(self.prepared, self.volume_items("test")),
                             "val": VolumeDataset(self.prepared, self.volume_items("valid"))}
            return
        valid = self.slice_rows("valid")
        if not labelled:
            # SSP validation losses contrast the slices of a batch: in stored order a batch would hold the
            # frames of one subject (near-duplicate negatives, nearly all PCL positives). The reference
            # shuffles; a fixed shuffle keeps every epoch's validation batches the same.
            valid = valid.sample(frac=1.0, random_state=self.seed)
        self.datasets = {
            "train": SliceDataset(self.prepared, self.slice_rows("train"), with_labels=labelled),
            "val": SliceDataset(self.prepared, valid, with_labels=labelled),
        }
        if self.mode == "segment":
            self.datasets["test"] = VolumeDataset(self.prepared, self.volume_items("test"))

    # -- loaders --------------------------------------------------------------------------------

    def _loader(self, name: str, shuffle: bool, drop_last: bool) -> DataLoader:
        if name not in self.datasets:
            raise ValueError(f"no {name} data in mode {self.mode!r}")
        dataset = self.datasets[name]
        # Shuffles depend on (seed, epoch) only (Lightning calls set_epoch), so a resumed run replays the
        # uninterrupted order: torch's DistributedSampler, on one process too. Under DDP each rank gets a
        # disjoint share: training drops the remainder (no repeats); evaluation shards without padding
        # (Lightning's unrepeated sampler: no slice or volume counted twice).
        ranks = world_size()
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, seed=self.seed) if shuffle else None
        if ranks > 1:
            sampler = DistributedSampler(dataset, shuffle=shuffle, drop_last=True, seed=self.seed) if drop_last \
                else UnrepeatedDistributedSampler(dataset, shuffle=False)
        if isinstance(dataset, VolumeDataset):
            return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=self.num_workers)
        if drop_last and len(dataset) < self.batch_size:
            raise ValueError(f"{name} has {len(dataset)} slices, fewer than batch_size={self.batch_size} "
                             "(the reference drops the last incomplete batch)")
        batch_size = self.batch_size if drop_last else self.val_batch_size
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=self.num_workers, collate_fn=collate_slices,
                          pin_memory=self.pin_memory and torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, drop_last=False)

    def ordered_dataloader(self, name: str) -> DataLoader:
        """Every item of ``name`` (``train``, ``val``, ``test``) in order, none dropped (frozen-feature probes)."""
        return self._loader(name, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)

    # -- the evaluation resampling ------------------------------------------------------------------

    def resample(self, batch: dict) -> dict:
        """The evaluation resampling of a native batch: image-centred, to ``output_size`` px at
        ``output_spacing`` mm, standardised, no augmentation. A whole volume keeps its native labels
        (``NATIVE_LABEL``) to be scored against in native space. (A sspcmr method applies the same resampling
        to the volumes it evaluates; this serves code that reads the loaders directly, e.g. probes.)"""
        return presets.resample_for_evaluation(self.resampling, batch)

    def counts(self) -> pd.DataFrame:
        """Subjects, slices and frames per mode, split part and vendor (what ``make demo`` prints)."""
        out = []
        for mode in ("pretrain", "segment"):
            for part in ("train", "valid", "test"):
                if mode == "pretrain" and part == "test":
                    continue  # pretraining never touches test subjects
                rows = self.slice_rows(part, mode)
                for vendor, group in rows.groupby("vendor"):
                    out.append({"mode": mode, "part": part, "vendor": vendor,
                                "subjects": group["subject_index"].nunique(),
                                "slices": len(group.drop_duplicates(["subject_index", "slice"])),
                                "images": len(group)})
        for part in ("valid", "test"):
            items = self.volume_items(part)
            table = self.prepared.subjects
            for vendor in sorted({table["Vendor"].iloc[i] for i, _ in items}):
                chosen = [(i, p) for i, p in items if table["Vendor"].iloc[i] == vendor]
                out.append({"mode": "volumes", "part": part, "vendor": vendor,
                            "subjects": len({i for i, _ in chosen}), "slices": "", "images": len(chosen)})
        return pd.DataFrame(out)
