"""``sspcmr study --estimate``: the FLOPs, steps and GPU-hours of a study before launching it (docs/study.md,
"Cost before launching").

Per run: the FLOPs of one training step and of validation per slice, counted on the module the run's own
arguments build (:mod:`~sspcmr.study.run_profile`, :mod:`~sspcmr.study.flops`); its slices per epoch
(:mod:`~sspcmr.study.slice_counts`); its batches, optimizer steps and validation slices
(:mod:`~sspcmr.study.schedule`). Then FLOPs = batches x FLOPs per step + validation slices x FLOPs per slice,
GPU-hours = FLOPs / (the GPU's peak at the run's precision x MFU) (:mod:`~sspcmr.study.gpus`), and the
wall-clock on N GPUs = GPU-hours / N for independent runs packed without gaps. Every assumption is returned as a
note and printed (:mod:`~sspcmr.study.estimate_report`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from .arguments import run_arguments
from .gpus import peak_flops
from .grid import Run, study_runs
from .run_profile import RunProfile, RunProfiles, option_value
from .schedule import Schedule, training_schedule
from .slice_counts import SliceCounter, SliceCounts
from .spec import StudyConfig

__all__ = ["RunEstimate", "StudyEstimate", "estimate_study", "gpu_hours"]

NOTES = (
    "FLOPs per step: one real training_step (forward + backward) and validation_step (forward) of each run's "
    "module on synthetic batches of its augmented view shapes, counted by torch.utils.flop_counter.FlopCounterMode: "
    "convolutions and matrix products only, 2 FLOPs per multiply-add (normalisation, activations, elementwise loss "
    "terms and the augmentation are not counted)",
    "GPU-hours = FLOPs / (dense peak datasheet FLOP/s of the GPU at the run's precision x MFU): 16-mixed runs on the "
    "fp16/bf16 tensor cores, 32-true on TF32 (cuDNN's default allow_tf32); estimates, not measurements",
    "one GPU per run (the configs' trainer.devices ignored); wall-clock on N GPUs = GPU-hours / N, runs independent "
    "and packed without gaps; a fine-tuning waits for its pretraining, so no schedule beats the critical path",
    "validation counted: every pass after check_val_every_n_epoch epochs (limit_val_batches honoured) and the sanity "
    "check; not counted: each run's test (one forward per test slice, under 1 % of a run), the validation scoring "
    "of learning-rate grids, data loading and checkpoints",
)


def gpu_hours(flops: float, gpu: str, precision: str, mfu: float) -> float:
    """Hours of one ``gpu`` to compute ``flops`` at ``precision`` and model FLOPs utilisation ``mfu``."""
    return flops / (peak_flops(gpu, precision) * mfu) / 3600


@dataclass(frozen=True)
class RunEstimate:
    """The estimate of one run."""

    run: Run
    profile: RunProfile
    counts: SliceCounts
    schedule: Schedule

    @property
    def train_flops(self) -> float:
        return self.schedule.batches * self.profile.flops.train_per_batch

    @property
    def val_flops(self) -> float:
        return self.schedule.val_slices * self.profile.flops.val_per_sample

    @property
    def flops(self) -> float:
        return self.train_flops + self.val_flops

    def gpu_hours(self, gpu: str, mfu: float) -> float:
        return gpu_hours(self.flops, gpu, self.profile.precision, mfu)


@dataclass
class StudyEstimate:
    """The estimate of every run of a study, and the assumptions behind it."""

    study: StudyConfig
    runs: list[RunEstimate]
    notes: list[str] = field(default_factory=list)

    @property
    def flops(self) -> float:
        return sum(run.flops for run in self.runs)

    def gpu_hours(self, gpu: str, mfu: float) -> float:
        return sum(run.gpu_hours(gpu, mfu) for run in self.runs)

    def critical_path_hours(self, gpu: str, mfu: float) -> float:
        """The longest chain of runs that must follow each other (a pretraining, then one fine-tuning)."""
        hours = {estimate.run.id: estimate.gpu_hours(gpu, mfu) for estimate in self.runs}
        return max((hours[e.run.id] + hours.get(e.run.depends_on or "", 0.0) for e in self.runs), default=0.0)


def _split_of(args: list[str], study: StudyConfig) -> str:
    return option_value(args, "--data.split") or study.split


def estimate_study(study: StudyConfig, slices_per_epoch: list[tuple[str, int]] | None = None) -> StudyEstimate:
    """Estimate every run of ``study`` (nothing is trained or written; no checkpoint or image is read).

    Args:
        study: the parsed study file.
        slices_per_epoch: ``--slices-per-epoch`` overrides (:func:`~sspcmr.study.slice_counts.parse_slice_overrides`).
    """
    profiles, counter = RunProfiles(), SliceCounter(study, slices_per_epoch)
    estimates, notes = [], list(NOTES)
    if counter.prepared is None:
        notes.append(f"slice counts: {counter.missing}, so the reference data set's (M&Ms + M&Ms-2, default split; "
                     "docs/reference.md#reference-numbers) unless --slices-per-epoch gives them")
    for run in study_runs(study):
        args = run_arguments(study, run, "fit")
        try:
            profile = profiles.profile(args)
        except (ValueError, TypeError, argparse.ArgumentError) as error:  # named, as `sspcmr fit` would refuse it
            raise ValueError(f"{run.id}: its arguments build no module: {error}") from error
        counts = counter.counts(run, profile.data_options, _split_of(args, study))
        schedule = training_schedule(counts.train, profile.batch_size, counts.valid, profile.val_batch_size,
                                     profile.limits)
        if schedule.batches_per_epoch == 0:
            notes.append(f"{run.id}: {counts.train} training slices, fewer than batch_size {profile.batch_size}: "
                         "the run would stop with an error (counted as 0 steps)")
        notes += [note for note in counts.notes if note not in notes]
        estimates.append(RunEstimate(run, profile, counts, schedule))
    return StudyEstimate(study, estimates, notes)
