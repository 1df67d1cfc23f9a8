"""``Reconstruction``: the methods whose whole U-Net restores a corrupted image (MIM, Inpainting).

Shared: the U-Net with a single full-resolution 1-channel linear head (no deep supervision; the encoder and
decoder transfer, never the head), MIM's SGD recipe (Inpainting keeps it, so that a study comparing the
pretext tasks changes nothing but the task), the validation images, and the corruption stream. Corruptions
are drawn from the module's own generator, one stream per rank (rank r seeds ``mask_seed + 1009 r``), saved
in checkpoints so that a resumed run continues it instead of repeating corruptions; the validation stream
restarts from its seed every epoch, so validation losses of different epochs see the same corruptions and are
comparable (the reference drew them from the running global RNG).

A method says how it corrupts a batch (:meth:`Reconstruction.corrupt`) and how the output is scored
(:meth:`Reconstruction.reconstruction_loss`).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import torch

from sspcmr.data import keys as K
from sspcmr.methods.base import CineModule
from sspcmr.methods.optimisation import SGDCosine
from sspcmr.methods.pretrain import Pretraining, pooled_bottleneck
from sspcmr.methods.visuals import log_image, reconstruction_grid
from sspcmr.models import UNet

GENERATOR_KEY = "sspcmr_mask_generator"
RANK_SEED_STRIDE = 1009  # rank r draws its corruptions from mask_seed + 1009 r (validation: one more)


class Reconstruction(Pretraining, metaclass=ABCMeta):
    """Base of the restoring methods (not used on its own).

    Args:
        lr: learning rate (MIM's reference 0.01), cosine-annealed per epoch to 0 over ``trainer.max_epochs``.
        momentum: SGD momentum (MIM's reference 0.99).
        nesterov: Nesterov momentum (MIM's reference True).
        weight_decay: weight decay on all parameters (MIM's reference 3e-5).
        log_images: log original, corrupted input, output and mask of a fixed validation batch to
            TensorBoard each validation epoch.
        **kwargs: the U-Net, probe and monitor options (:class:`~sspcmr.methods.pretrain.Pretraining`), the
            output grid, intensity convention, centring and augmentation seed
            (:class:`~sspcmr.methods.base.CineModule`).
    """

    transferable = ("encoder", "decoder")
    hparams_ignore = ("log_images",)
    STREAM_KEYS = {**CineModule.STREAM_KEYS, "corruption": GENERATOR_KEY}

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.99,
        nesterov: bool = True,
        weight_decay: float = 3e-5,
        log_images: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.optimisation = SGDCosine(lr, momentum, nesterov, weight_decay)
        self.log_images = log_images
        self.backbone = UNet(self.unet_config(out_channels=1, num_heads=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Restored images (B, 1, H, W) of (corrupted) images."""
        return self.backbone.forward_logits(images)

    # -- what a method defines ------------------------------------------------------------------------

    @abstractmethod
    def corrupt(self, image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The corrupted images (B, 1, H, W) the U-Net sees and the mask of the corrupted pixels."""

    @abstractmethod
    def reconstruction_loss(self, output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The loss of the restored ``output`` against the original ``image``."""

    def log_validation_extras(self, out: dict[str, torch.Tensor], image: torch.Tensor) -> None:
        """More validation logs of a method (default: none)."""

    # -- the corruption stream (CineModule.random_stream: per rank, restarted for validation, checkpointed) ---

    def corruption_generator(self, stage: str) -> torch.Generator:
        """The CPU generator of ``train`` or ``val`` corruptions on this rank."""
        return self.random_stream("corruption", stage, self.hparams.mask_seed, RANK_SEED_STRIDE)

    @property
    def mask_generator(self) -> torch.Generator | None:
        """The training corruption stream, once drawn from or restored from a checkpoint."""
        return self._generators.get(("corruption", "train"))

    def _train_generator(self) -> torch.Generator:
        return self.corruption_generator("train")

    @property
    def _val_generator(self) -> torch.Generator:
        return self.corruption_generator("val")

    # -- steps ------------------------------------------------------------------------------------------

    def reconstruct(self, image: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Corrupt ``image``, restore it and score it: loss, output, corrupted input, mask, pooled features."""
        corrupted, mask = self.corrupt(image, generator)
        features = self.backbone.encode(corrupted)
        output = self.backbone.full_resolution(features)
        return {"loss": self.reconstruction_loss(output, image, mask), "output": output, "corrupted": corrupted,
                "mask": mask, "pooled": pooled_bottleneck(features)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image = batch[K.IMAGE]
        out = self.reconstruct(image, self.corruption_generator("train"))
        self.log_training(out["loss"], image.shape[0], out["pooled"])
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch[K.IMAGE]
        out = self.reconstruct(image, self.corruption_generator("val"))
        self.log_validation(out["loss"], image.shape[0])
        self.log_validation_extras(out, image)
        self.probe_features(image, batch)
        if batch_idx == 0 and self.log_images:
            first = [t[:8] for t in (image, out["corrupted"], out["output"], out["mask"])]
            log_image(self, "val/reconstructions", reconstruction_grid(*first))
