"""``Pretraining``: what every self-supervised method shares, so each method file says only what is its own.

Shared here: the backbone (``self.backbone``: a :class:`~sspcmr.models.UNet` for methods that train the
decoder, else an :class:`EncoderBackbone`; either way the U-Net's ``encoder.`` keys live under
``backbone.``), SGD with a per-epoch cosine schedule (the reference's for SimCLR, PCL and MIM), the
transfer manifest written into every checkpoint, a check that the data module serves the views the
method needs, and the label-free monitors (:mod:`sspcmr.methods.monitoring`).

A method subclass sets :attr:`method`, :attr:`views` and :attr:`transferable`, builds its network and
loss, and implements ``training_step`` / ``validation_step``; in ``validation_step`` it calls
:meth:`probe_features` on one view so the position probe sees the validation slices.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from sspcmr.checks import check_int, check_number
from sspcmr.data import keys as K
from sspcmr.methods.monitoring import PositionProbe, effective_rank, embedding_std
from sspcmr.methods.transfer import MANIFEST_KEY, build_manifest
from sspcmr.models import UNetConfig, UNetEncoder
from sspcmr.models.unet import check_input_size

BACKBONE_PREFIX = "backbone."
REFERENCE_CHANNELS = [32, 64, 128, 256, 512, 512, 512]


class EncoderBackbone(nn.Module):
    """The U-Net encoder alone, under the attribute name ``encoder`` so its keys are the U-Net's."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = UNetEncoder(config)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)


def global_pool(features: torch.Tensor) -> torch.Tensor:
    """Global average pooling (B, C, H, W) -> (B, C) of the deepest feature map."""
    return features.mean(dim=(2, 3))


class Pretraining(L.LightningModule):
    """Base of the self-supervised methods (not used on its own).

    Args (shared by every method; each subclass documents its defaults):
        channels: U-Net channels per stage; must equal the fine-tuning U-Net's.
        norm: normalisation layer of the U-Net.
        lr: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: SGD weight decay.
        probe: fit the slice-position probe on the validation slices each validation epoch.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: compute the collapse monitors every this many training steps
            (0: every ``trainer.log_every_n_steps``).
    """

    method: ClassVar[str] = ""
    views: ClassVar[str] = ""  # the CineDataModule ``views`` recipe the method consumes
    also_views: ClassVar[tuple[str, ...]] = ()  # other recipes that serve the same batches
    transferable: ClassVar[tuple[str, ...]] = ("encoder",)

    def __init__(
        self,
        channels: list[int] | None,
        norm: str,
        lr: float,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
        probe: bool = True,
        probe_max_samples: int = 4096,
        monitor_every_n_steps: int = 0,
    ) -> None:
        super().__init__()
        check_number("lr", lr, 0, low_open=True)
        check_number("momentum", momentum, 0, 1, high_open=True)
        check_number("weight_decay", weight_decay, 0)
        check_int("probe_max_samples", probe_max_samples, 1)
        check_int("monitor_every_n_steps", monitor_every_n_steps, 0)
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay
        self.probe = PositionProbe(probe_max_samples) if probe else None
        self.monitor_every_n_steps = monitor_every_n_steps
        # Refuses bad channels and norm now (naming the value as given), whatever the subclass builds later.
        UNetConfig(channels=channels if channels is not None else REFERENCE_CHANNELS, norm=norm)  # type: ignore[arg-type]
        self.unet_channels = tuple(channels if channels is not None else REFERENCE_CHANNELS)
        self.norm = norm

    def unet_config(self, **overrides: Any) -> UNetConfig:
        """The U-Net configuration of this run (heads from ``overrides``)."""
        return UNetConfig(channels=self.unet_channels, norm=self.norm, **overrides)  # type: ignore[arg-type]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled bottleneck features (B, C) of the backbone's encoder."""
        return global_pool(self.backbone.encoder(images)[-1])

    # -- data checks ---------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None)
        hparams = getattr(data, "hparams", None)
        if hparams is None or "views" not in hparams:
            return
        views = hparams.views
        if views == "auto":
            views = "contrastive" if hparams.mode == "pretrain" else "single"
        if hparams.mode != "pretrain" or views not in (self.views, *self.also_views):
            raise ValueError(f"{type(self).__name__} needs CineDataModule(mode='pretrain', views='{self.views}'); "
                             f"got mode={hparams.mode!r}, views={hparams.views!r}. Set --data.mode pretrain "
                             f"--data.views {self.views}")
        self.check_output_size(hparams.output_size)

    def check_output_size(self, size: int) -> None:
        """Raise a ValueError unless the data module's ``output_size`` fits the network (called in ``setup``,
        before the first batch); methods with more constraints (crops, patches) extend it."""
        check_input_size(size, self.backbone.config)

    def _preprocessing(self) -> dict | None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        hparams = getattr(data, "hparams", None)
        if hparams is None or "output_size" not in hparams:
            return None
        return {"output_size": int(hparams.output_size), "output_spacing": float(hparams.output_spacing),
                "centring": hparams.get("centring"), "scale_convention": hparams.get("scale_convention")}

    # -- optimisation --------------------------------------------------------------------------------

    def configure_optimizers(self):
        """SGD on all parameters, cosine annealing per epoch to 0 over ``trainer.max_epochs`` (reference)."""
        optimizer = torch.optim.SGD(self.trainable_parameters(), lr=self.lr, momentum=self.momentum,
                                    nesterov=self.nesterov, weight_decay=self.weight_decay)
        epochs = self.trainer.max_epochs
        if epochs is None or epochs < 1:
            raise ValueError(f"the cosine schedule needs a finite trainer.max_epochs; got {epochs}")
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (all that require gradients)."""
        return [p for p in self.parameters() if p.requires_grad]

    # -- checkpoint manifest -------------------------------------------------------------------------

    def manifest(self) -> dict:
        """What a fine-tuning needs to know about this checkpoint (see :func:`build_manifest`)."""
        return build_manifest(self.method, BACKBONE_PREFIX, self.transferable, self.backbone.config,
                              self._preprocessing())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[MANIFEST_KEY] = self.manifest()

    # -- monitors ------------------------------------------------------------------------------------

    def monitor_due(self) -> bool:
        """Whether the collapse monitors run at this training step."""
        every = self.monitor_every_n_steps or (self.trainer.log_every_n_steps if self._trainer is not None else 1)
        return self.trainer.global_step % max(1, every) == 0

    def log_collapse(self, embeddings: torch.Tensor, prefix: str = "train") -> None:
        """Log the embedding spread and effective rank of detached (N, D) embeddings."""
        self.log_dict({f"{prefix}/embedding_std": embedding_std(embeddings),
                       f"{prefix}/effective_rank": effective_rank(embeddings)},
                      on_step=True, on_epoch=False, batch_size=embeddings.shape[0])

    def probe_features(self, images: torch.Tensor, batch: dict) -> torch.Tensor:
        """Pooled encoder features of ``images`` (no gradient), added to the position probe."""
        with torch.no_grad():
            features = self.encode(images)
        if self.probe is not None:
            self.probe.add(features, batch[K.POSITION], batch[K.SUBJECT_INDEX])
        return features

    def on_validation_epoch_start(self) -> None:
        if self.probe is not None:
            self.probe.reset()

    def on_validation_epoch_end(self) -> None:
        if self.probe is None or self.trainer.sanity_checking:
            return
        scores = self.probe.compute()
        self.probe.reset()
        if scores is not None:  # identical on every rank (computed from gathered rows)
            self.log_dict({"val/probe_position_r2": scores["r2"], "val/probe_position_mae": scores["mae"]},
                          sync_dist=False)
