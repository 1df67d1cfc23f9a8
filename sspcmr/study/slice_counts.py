"""How many slices a study run trains and validates on per epoch, before it has run.

* From the data, when the study's prepared folder and split exist: the rows of the prepared slice index
  (tables only, no image is read) that the run's data module would serve, with the run's split computed in
  memory as the runner writes it (vendor group, then the labelled subset of its seed) and its training phases.
* Otherwise from the reference data set's documented counts (docs/reference.md#reference-numbers and
  #subject-splits: M&Ms + M&Ms-2, 296 training and 74 validation subjects, 6738 and 1664 ED + ES slices,
  90,618 pretraining images, 231 slices for 10 subjects), with what they do not give derived per subject; each
  derivation is returned as a note, printed by the estimate.
* ``--slices-per-epoch KEY=N`` replaces the training count of the runs ``KEY`` names (a run ID or a
  shell-style pattern of IDs, or a kind: ``pretrain``, ``scratch``, ``finetune``); the last match wins.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .grid import Run
from .spec import ALL, StudyConfig

if TYPE_CHECKING:
    from sspcmr.data.splits import Split
    from sspcmr.data.store import PreparedDataset

__all__ = ["SliceCounter", "SliceCounts", "parse_slice_overrides", "reference_counts", "run_split"]

TRAIN_SUBJECTS, VALID_SUBJECTS = 296, 74
TRAIN_SLICES, VALID_SLICES = 6738, 1664  # ED + ES
PRETRAIN_IMAGES = 90_618  # every frame of every slice of the training subjects
NR10_SLICES = 231
VENDOR_SUBJECTS = {"A_B": (204, 52), "C_D": (92, 22)}  # (training, validation)
LONG_AXIS_SUBJECTS = (71, 14)  # the M&Ms-2 subjects, the only ones with long-axis views
REFERENCE = "docs/reference.md#reference-numbers"


@dataclass(frozen=True)
class SliceCounts:
    """Slices per training epoch and per validation pass, where they come from, and the assumptions made."""

    train: int
    valid: int
    source: str
    notes: tuple[str, ...] = ()


def parse_slice_overrides(values: list[str] | None) -> list[tuple[str, int]]:
    """``["pretrain-*=90618", "finetune=231"]`` as ``[(key, count)]``.

    Raises:
        ValueError: an entry that is not ``KEY=N`` with a non-negative integer N.
    """
    out = []
    for value in values or []:
        key, _, count = value.partition("=")
        if not key or not count.strip().isdigit():
            raise ValueError(f"--slices-per-epoch {value!r}: expected KEY=N (a run ID, pattern or kind, and a count)")
        out.append((key.strip(), int(count)))
    return out


def run_split(study: StudyConfig, run: Run, prepared: PreparedDataset | None = None) -> Split:
    """The split a scratch or fine-tuning run trains on, as the runner writes it into the run's folder: the
    study's split, its vendor group kept first (so a subset of N is N subjects of that group), then the labelled
    subset of the run's seed.

    Args:
        study: the parsed study.
        run: a scratch or fine-tuning run.
        prepared: the study's prepared data set, read for the subjects' vendors (None: opened when needed).
    """
    from sspcmr.data.splits import labelled_subset, read_split, vendor_subset
    from sspcmr.data.store import PreparedDataset

    split = read_split(study.split)
    if run.vendors is not None:
        prepared = PreparedDataset(study.data_dir) if prepared is None else prepared
        split = vendor_subset(split, prepared.metadata_frames(), run.vendors)
    if run.subset != ALL:
        split = labelled_subset(split, int(run.subset), run.seed)
    return split


def _pretrain_reference(long_axis_only: bool, share: int | float | None) -> SliceCounts:
    per_subject = PRETRAIN_IMAGES / TRAIN_SUBJECTS
    notes = [f"pretraining validation: {VALID_SUBJECTS} subjects x {per_subject:.1f} images per subject (the "
             f"training subjects' mean; {REFERENCE} gives no validation image count)"]
    train_subjects, valid_subjects = (TRAIN_SUBJECTS, VALID_SUBJECTS)
    if long_axis_only:
        train_subjects, valid_subjects = LONG_AXIS_SUBJECTS
        notes.append(f"long_axis_only: the {train_subjects} + {valid_subjects} M&Ms-2 subjects x {per_subject:.1f} "
                     "images per subject")
    if share is not None:
        train_subjects = share if isinstance(share, int) else max(1, round(share * train_subjects))
        notes.append(f"pretrain_subjects={share}: {train_subjects} subjects x {per_subject:.1f} images per subject")
    train = PRETRAIN_IMAGES if train_subjects == TRAIN_SUBJECTS else round(train_subjects * per_subject)
    return SliceCounts(train, round(valid_subjects * per_subject), "reference", tuple(notes))


def _segment_reference(run: Run) -> SliceCounts:
    phases = len(run.train_phases) / 2  # every slice is kept in both the ED and the ES frame
    if run.vendors and run.vendors not in VENDOR_SUBJECTS:
        raise ValueError(f"{run.id}: the reference data set's subject counts are known for the vendor groups "
                         f"{' and '.join(VENDOR_SUBJECTS)} only, not {run.vendors}: estimate on prepared data (the "
                         "study's data_dir and split)")
    train_subjects, valid_subjects = VENDOR_SUBJECTS[run.vendors] if run.vendors else (TRAIN_SUBJECTS, VALID_SUBJECTS)
    per_train, per_valid = TRAIN_SLICES / TRAIN_SUBJECTS, VALID_SLICES / VALID_SUBJECTS
    notes = []
    if run.subset not in (None, ALL):
        train_subjects = int(run.subset)
    if train_subjects == TRAIN_SUBJECTS:
        train = TRAIN_SLICES
    elif train_subjects == 10 and not run.vendors:
        train = NR10_SLICES
        notes.append(f"10 labelled subjects: the paper's {NR10_SLICES} ED + ES slices ({REFERENCE}; used for every "
                     "seed)")
    else:
        train = round(train_subjects * per_train)
        notes.append(f"{train_subjects} labelled subjects x {per_train:.2f} ED + ES slices per subject (the full "
                     "split's mean)")
    if valid_subjects == VALID_SUBJECTS:
        valid = VALID_SLICES
    else:
        valid = round(valid_subjects * per_valid)
        notes.append(f"{valid_subjects} validation subjects x {per_valid:.2f} ED + ES slices per subject")
    if phases != 1:
        notes.append(f"{'/'.join(run.train_phases)} only: half the ED + ES slices (every slice is in both frames)")
    return SliceCounts(round(train * phases), round(valid * phases), "reference", tuple(notes))


def reference_counts(run: Run, long_axis_only: bool = False, pretrain_subjects: int | float | None = None,
                     ) -> SliceCounts:
    """A run's counts on the reference data set (M&Ms + M&Ms-2, the default split)."""
    if run.kind == "pretrain":
        return _pretrain_reference(long_axis_only, pretrain_subjects)
    return _segment_reference(run)


class SliceCounter:
    """The slice counts of a study's runs (from its data if prepared, else the reference's; module docstring).

    Args:
        study: the parsed study.
        overrides: ``--slices-per-epoch`` entries (:func:`parse_slice_overrides`).
    """

    def __init__(self, study: StudyConfig, overrides: list[tuple[str, int]] | None = None) -> None:
        self.study, self.overrides = study, list(overrides or [])
        self.prepared, self.missing = self._open()

    def _open(self) -> tuple[PreparedDataset | None, str]:
        """The prepared data set (tables read, no image), or None and why not."""
        from sspcmr.data.errors import DataError
        from sspcmr.data.store import PreparedDataset

        if not Path(self.study.split).is_file():
            return None, f"the split {self.study.split} does not exist"
        try:
            return PreparedDataset(self.study.data_dir), ""
        except (DataError, OSError) as error:
            return None, f"no prepared data at {self.study.data_dir} ({str(error).splitlines()[0]})"

    def counts(self, run: Run, data_options: dict, split: str) -> SliceCounts:
        """The counts of ``run``, whose data module takes ``data_options`` and whose (pretraining) split is
        ``split``; then any ``--slices-per-epoch`` override."""
        own_split = split if run.kind == "pretrain" else self.study.split
        if self.prepared is not None and Path(own_split).is_file():
            counts = self._from_data(run, data_options, split)
        else:
            counts = reference_counts(run, bool(data_options.get("long_axis_only")),
                                      data_options.get("pretrain_subjects"))
            if self.prepared is not None:
                counts = replace(counts, notes=(*counts.notes, f"{run.id}: no split {own_split}, so reference counts"))
        for key, value in self.overrides:
            if key == run.kind or fnmatch.fnmatchcase(run.id, key):
                counts = SliceCounts(value, counts.valid, "given", (*counts.notes, f"--slices-per-epoch {key}={value}"))
        return counts

    def _from_data(self, run: Run, data_options: dict, split_path: str) -> SliceCounts:
        from sspcmr.data.datamodule import CineDataModule
        from sspcmr.data.splits import labelled_subset, read_split

        if run.kind == "pretrain":
            split, options = read_split(split_path), dict(data_options)
            if options.get("subset_subjects"):  # what the data module's own loading would apply
                split = labelled_subset(split, options["subset_subjects"], options.get("subset_seed", 0))
        else:  # the split the runner writes into the run's folder, computed in memory
            split = run_split(self.study, run, self.prepared)
            options = {**data_options, "train_phases": list(run.train_phases), "subset_subjects": None,
                       "vendors": None}
        module = CineDataModule(**{**options, "split": split_path})
        # Tables opened once for the whole study, and the split in memory: nothing is read or written per run.
        module.prepared, module.split = self.prepared, split
        return SliceCounts(len(module.slice_rows("train")), len(module.slice_rows("valid")), "data")
