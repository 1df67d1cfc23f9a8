"""Optimisation recipes: the optimiser a method trains with and how its learning rate moves.

A recipe is a small frozen object built from a method's arguments (a self-supervised method builds its own,
and so checks them, when it is constructed); ``configure_optimizers`` hands it the trainable parameters, by
name, and ``trainer.max_epochs``, and returns what its ``configure`` returns:

* :class:`SGDCosine`: SGD, cosine annealing per epoch to 0 (the reference's recipe for SimCLR, PCL and MIM,
  and the default of Inpainting, SliceLocation, Orientation and Multitask);
* :class:`AdamStep`: Adam, the learning rate multiplied by ``gamma`` every ``step_size`` epochs (Zhang et
  al.'s recipe for SliceLocation, Orientation and Multitask; :func:`sgd_or_adam` chooses);
* :class:`SGDWarmupCosine`: DINO's SGD, learning rate and weight decay set at every optimiser step;
* :class:`SGDPoly`: Segmentation's SGD with polynomial decay per epoch, in one or two stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.methods.schedules import dino_cosine_schedule

NamedParameters = list[tuple[str, nn.Parameter]]


def check_sgd(lr: float, momentum: float, weight_decay: float) -> None:
    """Raise a ValueError naming the first of an SGD learning rate, momentum or weight decay out of range."""
    check_number("lr", lr, 0, low_open=True)
    check_number("momentum", momentum, 0, 1, high_open=True)
    check_number("weight_decay", weight_decay, 0)


def finite_epochs(max_epochs: int | None, schedule: str) -> int:
    """``trainer.max_epochs``, refused when a per-epoch ``schedule`` cannot span it (max_steps / max_time runs:
    the schedule would end after epoch 0)."""
    if max_epochs is None or max_epochs < 1:
        raise ValueError(f"{schedule} needs a finite trainer.max_epochs; got {max_epochs}")
    return max_epochs


def per_epoch(optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler) -> dict:
    """Lightning's configuration of an optimiser whose schedule steps once per epoch."""
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


@dataclass(frozen=True)
class SGD:
    """Plain SGD over the given parameters (the common part of :class:`SGDCosine` and :class:`SGDPoly`)."""

    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float

    def optimizer(self, parameters: NamedParameters) -> torch.optim.SGD:
        return torch.optim.SGD([p for _, p in parameters], lr=self.lr, momentum=self.momentum,
                               nesterov=self.nesterov, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class SGDCosine(SGD):
    """SGD on all trainable parameters, cosine annealing per epoch to 0 over ``trainer.max_epochs``."""

    def __post_init__(self) -> None:
        check_sgd(self.lr, self.momentum, self.weight_decay)

    def configure(self, parameters: NamedParameters, max_epochs: int | None) -> dict:
        optimizer = self.optimizer(parameters)
        epochs = finite_epochs(max_epochs, "the cosine schedule")
        return per_epoch(optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0))


@dataclass(frozen=True)
class AdamStep:
    """Adam on all trainable parameters (weight decay as L2 on the gradients), the learning rate multiplied
    by ``gamma`` every ``step_size`` epochs."""

    lr: float
    weight_decay: float
    step_size: int
    gamma: float

    def __post_init__(self) -> None:
        check_int("step_size", self.step_size, 1)
        check_number("gamma", self.gamma, 0, 1, low_open=True)

    def configure(self, parameters: NamedParameters, max_epochs: int | None) -> dict:
        optimizer = torch.optim.Adam([p for _, p in parameters], lr=self.lr, weight_decay=self.weight_decay)
        return per_epoch(optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.step_size,
                                                                    gamma=self.gamma))


def sgd_or_adam(optimizer: Literal["sgd", "adam"], lr: float, momentum: float, nesterov: bool, weight_decay: float,
                step_size: int, gamma: float) -> SGDCosine | AdamStep:
    """The recipe ``optimizer`` names; the arguments of both are checked, whichever is chosen."""
    check_choice("optimizer", optimizer, ("sgd", "adam"))
    sgd = SGDCosine(lr, momentum, nesterov, weight_decay)
    adam = AdamStep(lr, weight_decay, step_size, gamma)
    return sgd if optimizer == "sgd" else adam


@dataclass(frozen=True)
class SGDWarmupCosine:
    """DINO's SGD: two parameter groups, weights (scheduled weight decay) and biases / 1-D parameters (none);
    the learning rate warms up linearly from 0 over ``warmup_epochs`` then follows a cosine to ``min_lr``, the
    weight decay a cosine from ``weight_decay`` to ``weight_decay_end``, both set at every optimiser step
    (:meth:`schedules`, :meth:`set_step`)."""

    lr: float
    min_lr: float
    warmup_epochs: int
    momentum: float
    weight_decay: float
    weight_decay_end: float

    def __post_init__(self) -> None:
        check_sgd(self.lr, self.momentum, self.weight_decay)
        check_int("warmup_epochs", self.warmup_epochs, 0)
        check_number("min_lr", self.min_lr, 0)
        check_number("weight_decay_end", self.weight_decay_end, 0)

    def configure(self, parameters: NamedParameters, max_epochs: int | None) -> torch.optim.SGD:
        # ``parameters`` are the trainable ones: not DINO's teacher, nor its head's fixed last-layer norm.
        decay, no_decay = [], []
        for name, parameter in parameters:
            (no_decay if name.endswith(".bias") or parameter.ndim == 1 else decay).append(parameter)
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)

    def schedules(self, iterations_per_epoch: int, epochs: int) -> dict[str, torch.Tensor]:
        """Per-step learning rate and weight decay (DINO's ``cosine_scheduler``)."""
        return {"lr": dino_cosine_schedule(self.lr, self.min_lr, epochs, iterations_per_epoch, self.warmup_epochs),
                "weight_decay": dino_cosine_schedule(self.weight_decay, self.weight_decay_end, epochs,
                                                     iterations_per_epoch)}

    @staticmethod
    def set_step(optimizer: torch.optim.Optimizer, schedules: dict[str, torch.Tensor], step: int) -> None:
        """Set every group's learning rate, and the weights' weight decay, to their values at ``step``."""
        for index, group in enumerate(optimizer.param_groups):
            group["lr"] = float(schedules["lr"][step])
            if index == 0:
                group["weight_decay"] = float(schedules["weight_decay"][step])


@dataclass(frozen=True)
class SGDPoly(SGD):
    """SGD on all parameters, polynomial decay per epoch: lr_e = lr (1 - e / E)^power (the reference's
    fine-tuning). With ``two_stage_epochs`` S > 0, one such decay over the first S epochs, scaled to
    ``two_stage_lr``, then one from ``lr`` over the remaining E - S. (Segmentation checks the arguments.)"""

    power: float
    two_stage_epochs: int = 0
    two_stage_lr: float | None = None

    def configure(self, parameters: NamedParameters, max_epochs: int | None) -> dict:
        optimizer = self.optimizer(parameters)
        epochs = finite_epochs(max_epochs, "the poly learning-rate schedule")
        power, stage = self.power, self.two_stage_epochs
        if stage >= epochs:
            raise ValueError(f"two_stage_epochs={stage} leaves no epoch of the second stage (max_epochs={epochs})")
        first = (self.two_stage_lr or self.lr) / self.lr

        def factor(e: int) -> float:  # PolynomialLR stepped per epoch, one per stage
            if e < stage:
                return first * max(0.0, 1 - e / stage) ** power
            return max(0.0, 1 - (e - stage) / (epochs - stage)) ** power

        return per_epoch(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor))
