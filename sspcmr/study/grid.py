"""The runs of a study: one pretraining per method, then scratch and fine-tuning runs per variant,
labelled-subset size and seed.

Run IDs are stable names that double as folder names: ``pretrain-mim``; ``scratch-n10-s0`` and
``mim-n10-s0`` in the main grid; ``mim-ed-only-nall-s1`` in a variant; ``mim-n1-s0-lr0.01`` when the study
has a learning-rate grid (``learning_rates``). Pretraining runs come first in
the order, so ``--run INDEX`` over a job array can run stage by stage.

Each run also carries the study's checkpoint choice (``checkpoint:``): which checkpoint a fine-tuning starts
from, which one its test loads, and whether its fit must keep ``best.ckpt`` for that.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from .spec import SCRATCH, StudyConfig


@dataclass(frozen=True)
class Run:
    """One independent training process of a study (plus its test, for scratch and fine-tuning runs).

    Attributes:
        id: stable name, also the run's folder name.
        kind: ``pretrain``, ``scratch`` or ``finetune``.
        method: ``scratch`` or the pretraining method's key.
        label: display name in reports.
        variant: ``default`` or the variant's name (None for pretraining).
        variant_kind: ``default``, ``phase``, ``vendor`` or ``augmentation``.
        subset: labelled-subject count as text, or ``all``.
        seed: subset draw and training seed.
        train_phases: labelled phases trained on.
        vendors: vendor group trained on (``A_B`` / ``C_D``), None for all.
        augmentation: train with the recipe's augmentation.
        depends_on: the pretraining run a fine-tuning starts from.
        lr: the learning rate of a learning-rate grid study (None: the recipe's own).
        init_checkpoint: ``last`` or ``best``: the checkpoint of ``depends_on`` a fine-tuning starts from.
        test_checkpoint: ``last`` or ``best``: the checkpoint the test of a scratch or fine-tuning run loads.
        keep_best: the fit keeps ``best.ckpt`` (``--checkpoint.best``), because a test or a fine-tuning uses it.
    """

    id: str
    kind: str
    method: str
    label: str
    variant: str | None = None
    variant_kind: str | None = None
    subset: str | None = None
    seed: int | None = None
    train_phases: tuple[str, ...] = ("ED", "ES")
    vendors: str | None = None
    augmentation: bool = True
    depends_on: str | None = None
    lr: float | None = None
    init_checkpoint: str | None = None
    test_checkpoint: str | None = None
    keep_best: bool = False

    def as_dict(self) -> dict:
        out = asdict(self)
        out["train_phases"] = list(self.train_phases)
        return out


def study_runs(study: StudyConfig) -> list[Run]:
    """Every run of the study in execution order (pretraining first)."""
    chosen = {m for variant in study.variants for m in variant.methods if m != SCRATCH}
    used = {study.methods[m].source for m in chosen}
    best_wanted = {study.methods[m].source for m in chosen if study.checkpoints(m).pretraining == "best"}
    runs = [Run(id=f"pretrain-{key}", kind="pretrain", method=key, label=spec.label, seed=study.pretrain_seed,
                keep_best=key in best_wanted)
            for key, spec in study.methods.items() if key in used]
    for variant in study.variants:
        infix = "" if variant.name == "default" else f"-{variant.name}"
        rates = study.learning_rates or (None,)
        for method, subset, seed, lr in itertools.product(variant.methods, variant.subsets, variant.seeds, rates):
            choice = study.checkpoints(method)
            runs.append(Run(
                id=f"{method}{infix}-n{subset}-s{seed}" + ("" if lr is None else f"-lr{lr:g}"),
                kind="scratch" if method == SCRATCH else "finetune",
                method=method, label=study.label(method), variant=variant.name, variant_kind=variant.kind,
                subset=subset, seed=seed, train_phases=variant.train_phases, vendors=variant.vendors,
                augmentation=variant.augmentation,
                depends_on=None if method == SCRATCH else f"pretrain-{study.methods[method].source}", lr=lr,
                init_checkpoint=None if method == SCRATCH else choice.pretraining,
                test_checkpoint=choice.evaluation, keep_best=choice.evaluation == "best"))
    ids = [run.id for run in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{study.path}: two runs share an ID; rename a variant or method")
    return runs


def find_run(runs: list[Run], key: str) -> Run:
    """A run by ID or by its index in :func:`study_runs` order (e.g. ``$SLURM_ARRAY_TASK_ID``)."""
    for run in runs:
        if run.id == key:
            return run
    if key.isdigit() and int(key) < len(runs):
        return runs[int(key)]
    raise KeyError(f"no run {key!r} in this study (see `sspcmr study --list`; {len(runs)} runs, "
                   f"indices 0-{len(runs) - 1})")
