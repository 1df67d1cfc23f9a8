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

from typing import Any

import torch
from torch import nn
from torchmetrics import MetricCollection

from sspcmr.checks import check_number
from sspcmr.data import keys as K
from sspcmr.methods.orientation import Orientation
from sspcmr.methods.slice_location import location_target, validation_metrics


class Multitask(Orientation):
    """Orientation + slice-location regression on one U-Net.

    Args:
        centrosymmetric: location target sin(pi l) instead of l.
        orientation_weight: weight of the heatmap loss (paper 1).
        location_weight: weight of the location loss (paper 1).
        **kwargs: the heatmap options (``sigma``, ``views_used``: :class:`~sspcmr.methods.orientation.Orientation`),
            the optimiser choice and ``log_images`` (:class:`~sspcmr.methods.geometric.Geometric`), the U-Net,
            probe and monitor options (:class:`~sspcmr.methods.pretrain.Pretraining`), the output grid,
            intensity convention, centring and augmentation seed (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "multitask"

    def __init__(self, centrosymmetric: bool = False, orientation_weight: float = 1.0, location_weight: float = 1.0,
                 **kwargs: Any) -> None:
        check_number("orientation_weight", orientation_weight, 0)
        check_number("location_weight", location_weight, 0)
        if orientation_weight + location_weight == 0:
            raise ValueError(f"orientation_weight and location_weight must be >= 0, not both 0; got "
                             f"{orientation_weight} and {location_weight}")
        super().__init__(**kwargs)
        self.location_head = nn.Linear(self.unet_channels[-1], 1)
        self.val_location = validation_metrics()

    def epoch_metrics(self) -> dict[str, MetricCollection]:
        return {"val/location_": self.val_location}

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
        for name in ("orientation_loss", "location_loss"):
            if stage == "train":
                self.log_step_and_epoch(f"train/{name}", out[name], size)
            else:
                self.log(f"val/{name}", out[name], on_epoch=True, batch_size=size, sync_dist=True)
        if stage == "val":
            self.val_location.update(out["location"].detach(), out["location_target"])
