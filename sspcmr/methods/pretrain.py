"""``Pretraining``: what every self-supervised method shares, so each method file says only what is its own.

Shared here: the constructor arguments every method takes with the same default (U-Net ``channels`` and
``norm``, the probe and monitor options; a method's own arguments reach them through ``**kwargs``, which the
command line follows too), the hyperparameters saved once for the whole class chain, the backbone
(``self.backbone``: a :class:`~sspcmr.models.UNet` for methods that train the decoder, else an
:class:`EncoderBackbone`; either way the U-Net's ``encoder.`` keys live under ``backbone.``), its pooled
bottleneck (:meth:`Pretraining.encode`), the optimisation recipe a method chooses
(:mod:`sspcmr.methods.optimisation`), the transfer manifest written into every checkpoint, and the
label-free monitors (:mod:`sspcmr.methods.monitoring`); from :class:`~sspcmr.methods.base.CineModule` the
augmentation of native slices, which a method with its own views overrides (:meth:`train_augmentation`).

Families with more in common have their own base: :class:`~sspcmr.methods.reconstruction.Reconstruction`
(MIM, Inpainting) and :class:`~sspcmr.methods.geometric.Geometric` (SliceLocation, Orientation, Multitask).
A method subclass sets :attr:`method`, :attr:`transferable` and :attr:`optimisation`, builds its network and
loss, and implements ``training_step`` / ``validation_step``; in ``validation_step`` it calls
:meth:`probe_features` on one view so the position probe sees the validation slices.
docs/adding-a-method.md walks through one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from sspcmr.checks import check_int
from sspcmr.data import keys as K
from sspcmr.methods.base import CineModule
from sspcmr.methods.monitoring import PositionProbe, effective_rank, embedding_std
from sspcmr.methods.optimisation import AdamStep, SGDCosine, SGDWarmupCosine
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

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder features, highest resolution first (as :meth:`sspcmr.models.UNet.encode`)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)


def pooled_bottleneck(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Global average pooling (B, C, H, W) -> (B, C) of the deepest of the encoder ``features``."""
    return features[-1].mean(dim=(2, 3))


class Pretraining(CineModule):
    """Base of the self-supervised methods (not used on its own).

    Args:
        channels: U-Net channels per stage (reference 32, 64, 128, 256, 512, 512, 512); the fine-tuning
            U-Net must use the same.
        norm: normalisation layer of the U-Net (``batch``, reference).
        probe: fit the online slice-position probe on the validation slices.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: collapse monitors every this many training steps (0:
            ``trainer.log_every_n_steps``).
        **kwargs: the output grid, intensity convention, centring and augmentation seed
            (:class:`~sspcmr.methods.base.CineModule`).
    """

    method: ClassVar[str] = ""
    transferable: ClassVar[tuple[str, ...]] = ("encoder",)
    hparams_ignore: ClassVar[tuple[str, ...]] = ()
    """Arguments left out of the saved hyperparameters (run-time options such as ``log_images``)."""
    optimisation: SGDCosine | AdamStep | SGDWarmupCosine
    """The optimiser and its schedule (:mod:`sspcmr.methods.optimisation`), set by the method's constructor."""

    def __init__(
        self,
        channels: list[int] | None = None,
        norm: str = "batch",
        probe: bool = True,
        probe_max_samples: int = 4096,
        monitor_every_n_steps: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_int("probe_max_samples", probe_max_samples, 1)
        check_int("monitor_every_n_steps", monitor_every_n_steps, 0)
        self.probe = PositionProbe(probe_max_samples) if probe else None
        self.monitor_every_n_steps = monitor_every_n_steps
        # Refuses bad channels and norm now (naming the value as given), whatever the subclass builds later.
        UNetConfig(channels=channels if channels is not None else REFERENCE_CHANNELS, norm=norm)  # type: ignore[arg-type]
        self.unet_channels = tuple(channels if channels is not None else REFERENCE_CHANNELS)
        self.norm = norm
        # Once for the whole chain: Lightning collects the arguments of every __init__ still running, from
        # this one out to the method's, so the method's own arguments are saved with these.
        self.save_hyperparameters(ignore=[*self.hparams_ignore, *self.RUN_TIME_OPTIONS])

    def unet_config(self, **overrides: Any) -> UNetConfig:
        """The U-Net configuration of this run (heads from ``overrides``)."""
        return UNetConfig(channels=self.unet_channels, norm=self.norm, **overrides)  # type: ignore[arg-type]

    def encode(self, images: torch.Tensor, backbone: nn.Module | None = None) -> torch.Tensor:
        """Pooled bottleneck features (B, C) of the encoder of ``backbone`` (default: ``self.backbone``)."""
        return pooled_bottleneck((self.backbone if backbone is None else backbone).encode(images))

    # -- data checks ---------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.check_output_size(self.output_size)

    def check_output_size(self, size: int) -> None:
        """Raise a ValueError unless ``output_size`` fits the network (called in ``setup``, before the first
        batch); methods with more constraints (crops, patches) extend it."""
        check_input_size(size, self.backbone.config)

    # -- optimisation --------------------------------------------------------------------------------

    def configure_optimizers(self):
        """The method's :attr:`optimisation` recipe over the trainable parameters and ``trainer.max_epochs``."""
        epochs = self.trainer.max_epochs if self._trainer is not None else None
        return self.optimisation.configure(self.trainable_parameters(), epochs)

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters the optimiser updates (all that require gradients), with their names."""
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    # -- checkpoint manifest -------------------------------------------------------------------------

    def manifest(self) -> dict:
        """What a fine-tuning needs to know about this checkpoint (see :func:`build_manifest`)."""
        return build_manifest(self.method, BACKBONE_PREFIX, self.transferable, self.backbone.config,
                              self.preprocessing())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[MANIFEST_KEY] = self.manifest()

    # -- logging and monitors ------------------------------------------------------------------------

    def log_training(self, loss: torch.Tensor, batch_size: int, embeddings: torch.Tensor) -> None:
        """Log the training loss, and the collapse monitors of ``embeddings`` (N, D) when they are due."""
        self.log_step_and_epoch("train/loss", loss, batch_size, prog_bar=True)
        if self.monitor_due():
            self.log_collapse(embeddings)

    def log_validation(self, loss: torch.Tensor, batch_size: int) -> None:
        """Log the validation loss (averaged over the epoch and the ranks)."""
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=batch_size, sync_dist=True)

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
        super().on_validation_epoch_start()
        if self.probe is not None:
            self.probe.reset()

    def on_validation_epoch_end(self) -> None:
        if self.probe is None or self.trainer.sanity_checking:
            return
        scores = self.probe.compute()
        self.probe.reset()
        if scores is not None:  # identical on every rank (computed from gathered rows): a max keeps them exactly
            self.log_dict({"val/probe_position_r2": scores["r2"], "val/probe_position_mae": scores["mae"]},
                          sync_dist=True, reduce_fx="max")
