"""``Geometric``: the methods that regress the geometry of a slice (Zhang et al.): slice location and orientation.

Shared: the optimiser choice, by default MIM's SGD (Nesterov momentum 0.99, learning rate 0.01 cosine-annealed per
epoch, weight decay 3e-5) so that, with the same backbone, data, schedule and fine-tuning as the reference
methods, a study compares pretext tasks and nothing else; ``optimizer="adam"`` is the paper's own recipe (Adam,
learning rate 1e-3 halved every 100 epochs over 500 epochs: ``lr=1e-3, step_size=100, gamma=0.5`` with
``--trainer.max_epochs 500``). And the validation scores accumulated over a whole validation epoch
(torchmetrics, synchronised across ranks), logged once at its end.
"""

from __future__ import annotations

from typing import Any, Literal

from torchmetrics import MetricCollection

from sspcmr.methods.optimisation import sgd_or_adam
from sspcmr.methods.pretrain import Pretraining


class Geometric(Pretraining):
    """Base of the geometric methods (not used on its own).

    Args:
        optimizer: ``sgd`` (SGD, cosine per epoch to 0 over ``trainer.max_epochs``: the shared U-Net recipe
            of MIM) or ``adam`` (Adam, the learning rate multiplied by ``gamma`` every ``step_size`` epochs:
            the paper's recipe with ``lr`` 1e-3, ``step_size`` 100, ``gamma`` 0.5 over 500 epochs).
        lr: learning rate (MIM's 0.01 for SGD; the paper's Adam used 1e-3).
        momentum: SGD momentum (MIM's 0.99; unused by Adam).
        nesterov: Nesterov momentum (MIM's True; unused by Adam).
        weight_decay: weight decay on all parameters (MIM's 3e-5; with Adam, L2 added to the gradients).
        step_size: Adam only: epochs between learning-rate drops (paper 100).
        gamma: Adam only: factor of each learning-rate drop (paper 0.5).
        log_images: log an image of the validation predictions to TensorBoard each validation epoch
            (SliceLocation: a predicted-against-true scatter of the validation slices; Orientation and
            Multitask: image, target and predicted heatmaps of the first validation batch).
        **kwargs: the U-Net, probe and monitor options (:class:`~sspcmr.methods.pretrain.Pretraining`), the
            output grid, intensity convention, centring and augmentation seed
            (:class:`~sspcmr.methods.base.CineModule`).
    """

    hparams_ignore = ("log_images",)

    def __init__(
        self,
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.99,
        nesterov: bool = True,
        weight_decay: float = 3e-5,
        step_size: int = 100,
        gamma: float = 0.5,
        log_images: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.optimisation = sgd_or_adam(optimizer, lr, momentum, nesterov, weight_decay, step_size, gamma)
        self.log_images = log_images

    def epoch_metrics(self) -> dict[str, MetricCollection]:
        """The method's validation metrics by log-name prefix, accumulated over each validation epoch."""
        return {}

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        for metrics in self.epoch_metrics().values():
            metrics.reset()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        # Every rank computes (torchmetrics gathers its states), so the values are global and identical, and
        # every rank skips the same metrics: R^2 refuses fewer than two slices in the whole epoch.
        for prefix, metrics in self.epoch_metrics().items():
            scores = {}
            for name, metric in metrics.items():
                try:
                    scores[f"{prefix}{name}"] = metric.compute()
                except ValueError:
                    continue
            metrics.reset()
            if scores:  # torchmetrics gathered every rank's states: the same numbers everywhere, a max keeps them
                self.log_dict(scores, sync_dist=True, reduce_fx="max")
