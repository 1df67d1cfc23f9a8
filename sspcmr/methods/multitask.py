"""``Multitask``: orientation heatmaps and relative slice location learnt together (Zhang et al. 4.3).

One shared U-Net: the heatmap head on the decoder output (:class:`~sspcmr.methods.orientation.Orientation`)
and a linear location head on the pooled encoder bottleneck
(:class:`~sspcmr.methods.slice_location.SliceLocation`); loss = ``orientation_weight`` x the heatmap L2 +
``location_weight`` x the location MSE (the paper: 1 and 1). Slices without long-axis targets still train
the location head. The paper reports the best transfer from this combination (ACDC mean Dice with 1 / 4 /
16 / 32 / 64 labelled subjects: 0.511 / 0.814 / 0.840 / 0.900 / 0.910 against 0.328 / 0.702 / 0.815 /
0.851 / 0.868 from scratch). Encoder and decoder transfer, never the heads.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sspcmr.checks import check_number
from sspcmr.data import keys as K
from sspcmr.methods.orientation import Orientation, View
from sspcmr.methods.slice_location import location_target, validation_metrics


class Multitask(Orientation):
    """Orientation + slice-location regression on one U-Net.

    Args:
        channels: U-Net channels per stage (reference 32, 64, 128, 256, 512, 512, 512).
        norm: normalisation layer of the U-Net.
        sigma: heatmap Gaussian width in output pixels (paper 6).
        views_used: long-axis views whose lines are regressed (default both, ``2ch`` and ``4ch``).
        centrosymmetric: location target sin(pi l) instead of l.
        orientation_weight: weight of the heatmap loss (paper 1).
        location_weight: weight of the location loss (paper 1).
        optimizer: ``sgd`` (the shared U-Net recipe of MIM, default) or ``adam`` (the paper's, with StepLR).
        lr: learning rate (SGD 0.01; the paper's Adam 1e-3).
        momentum: SGD momentum (0.99, Nesterov).
        nesterov: Nesterov momentum.
        weight_decay: weight decay on all parameters (3e-5).
        step_size: Adam only: epochs between learning-rate decays (paper 100).
        gamma: Adam only: decay factor (paper 0.5).
        log_images: log target and predicted heatmaps of a validation batch.
        probe: fit the online slice-position probe on the validation slices.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: collapse monitors every this many steps (0: ``trainer.log_every_n_steps``).
    """

    method = "multitask"

    def __init__(
        self,
        channels: list[int] | None = None,
        norm: str = "batch",
        sigma: float = 6.0,
        views_used: list[View] | None = None,
        centrosymmetric: bool = False,
        orientation_weight: float = 1.0,
        location_weight: float = 1.0,
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.99,
        nesterov: bool = True,
        weight_decay: float = 3e-5,
        step_size: int = 100,
        gamma: float = 0.5,
        log_images: bool = True,
        probe: bool = True,
        probe_max_samples: int = 4096,
        monitor_every_n_steps: int = 0,
    ) -> None:
        check_number("orientation_weight", orientation_weight, 0)
        check_number("location_weight", location_weight, 0)
        if orientation_weight + location_weight == 0:
            raise ValueError(f"orientation_weight and location_weight must be >= 0, not both 0; got "
                             f"{orientation_weight} and {location_weight}")
        super().__init__(channels, norm, sigma, views_used, optimizer, lr, momentum, nesterov, weight_decay,
                         step_size, gamma, log_images, probe, probe_max_samples, monitor_every_n_steps)
        self.save_hyperparameters(ignore=["log_images"])
        self.location_head = nn.Linear(self.unet_channels[-1], 1)
        self.val_location = validation_metrics()

    def _step(self, batch: dict) -> dict[str, torch.Tensor]:
        out = super()._step(batch)
        location = self.location_head(out["pooled"]).squeeze(1).float()
        target = location_target(batch[K.LOCATION], self.hparams.centrosymmetric).to(location.device)
        out["orientation_loss"] = out["loss"]
        out["location_loss"] = nn.functional.mse_loss(location, target)
        out["location"], out["location_target"] = location, target
        out["loss"] = (self.hparams.orientation_weight * out["orientation_loss"]
                       + self.hparams.location_weight * out["location_loss"])
        return out

    def step_outputs(self, out: dict[str, torch.Tensor], stage: str, batch: dict) -> None:
        size = batch[K.IMAGE].shape[0]
        self.log_dict({f"{stage}/orientation_loss": out["orientation_loss"],
                       f"{stage}/location_loss": out["location_loss"]},
                      on_step=stage == "train", on_epoch=True, batch_size=size, sync_dist=stage == "val")
        if stage == "val":
            self.val_location.update(out["location"].detach(), out["location_target"])

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.val_location.reset()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        scores = {}
        for name, metric in self.val_location.items():
            try:
                scores[f"val/location_{name}"] = metric.compute()
            except ValueError:  # R^2 needs two slices in the epoch
                continue
        self.val_location.reset()
        if scores:
            self.log_dict(scores, sync_dist=False)
