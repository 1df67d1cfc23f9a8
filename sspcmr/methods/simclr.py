"""``SimCLR``: two augmented views of a slice should embed close, all other slices of the batch far.

Reference (docs/reference.md#encoder-mlp, #simclr-loss, #optimisation): the U-Net encoder, global average pooling of the
512-channel bottleneck, a 3-layer MLP 512-512-512 with ReLU and no normalisation (lightly's
``SimCLRProjectionHead`` without batch norm), NT-Xent at temperature 0.1 (lightly's ``NTXentLoss`` in value and
gradients: :class:`~sspcmr.losses.ntxent.NTXentLoss`, which computes it in float32 without waiting for the device,
and gathers the embeddings of every rank so negatives are global under DDP), SGD momentum 0.9,
weight decay 1e-4 on all parameters, learning rate 0.1 with cosine annealing per epoch over 100 epochs,
224 source slices (448 views) per batch, fp16 mixed precision. Only the encoder transfers.
"""

from __future__ import annotations

from typing import Any

import torch
from lightly.models.modules import SimCLRProjectionHead

from sspcmr.checks import check_int, check_number
from sspcmr.data import keys as K
from sspcmr.losses.ntxent import NTXentLoss
from sspcmr.methods.optimisation import SGDCosine
from sspcmr.methods.pretrain import EncoderBackbone, Pretraining
from sspcmr.transforms import presets
from sspcmr.transforms.views import Augmenter


class SimCLR(Pretraining):
    """SimCLR on the U-Net encoder.

    Args:
        hidden_dim: width of the projection MLP's hidden layers (reference 512).
        projection_dim: embedding size the loss sees (reference 512).
        temperature: temperature of the contrastive loss (NT-Xent; reference 0.1).
        gather_distributed: under DDP, contrast against the embeddings of every rank (global negatives,
            what a single-GPU run with the same total batch computes).
        num_views: augmented views per slice, each an independent draw of the reference's augmentation
            (SimCLR contrasts exactly 2; PCL takes any number).
        lr: learning rate (reference 0.1), cosine-annealed per epoch to 0 over ``trainer.max_epochs``.
        momentum: SGD momentum (reference 0.9).
        nesterov: Nesterov momentum (reference False).
        weight_decay: weight decay on all parameters (reference 1e-4).
        **kwargs: the U-Net, probe and monitor options (:class:`~sspcmr.methods.pretrain.Pretraining`), the
            output grid, intensity convention, centring and augmentation seed
            (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "simclr"
    transferable = ("encoder",)

    def __init__(
        self,
        hidden_dim: int = 512,
        projection_dim: int = 512,
        temperature: float = 0.1,
        gather_distributed: bool = True,
        num_views: int = 2,
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.optimisation = SGDCosine(lr, momentum, nesterov, weight_decay)
        check_int("hidden_dim", hidden_dim, 1)
        check_int("projection_dim", projection_dim, 1)
        check_number("temperature", temperature, 0, low_open=True)
        check_int("num_views", num_views, 1)
        self.num_views = num_views
        self.backbone = EncoderBackbone(self.unet_config())
        self.head = SimCLRProjectionHead(self.unet_channels[-1], hidden_dim, projection_dim, num_layers=3,
                                         batch_norm=False)
        self.criterion = self.build_criterion(gather=gather_distributed)
        # Validation shards differ in size across ranks (no padding, no repeats), so a gathering loss would
        # block or fail there: validation contrasts within each rank's batch and averages over ranks.
        self.val_criterion = self.build_criterion(gather=False)

    def train_augmentation(self) -> Augmenter:
        """``num_views`` independent draws of the reference's augmentation per slice (``VIEWS``)."""
        return presets.segmentation_train(views=self.num_views, **self.recipe_options())

    def build_criterion(self, gather: bool) -> torch.nn.Module:
        return NTXentLoss(temperature=self.hparams.temperature, gather_distributed=gather)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Projections (B, projection_dim) of (B, 1, H, W) images."""
        return self.head(self.encode(images))

    def contrastive_loss(self, criterion: torch.nn.Module, embeddings: torch.Tensor, num_views: int,
                         batch: dict) -> torch.Tensor:
        """The loss of the (num_views x B, D) embeddings, ordered view-major."""
        if num_views != 2:
            raise ValueError(f"SimCLR contrasts exactly 2 views; got {num_views} (set --model.init_args.num_views 2)")
        first, second = embeddings.chunk(2)
        return criterion(first, second)  # in float32 even under autocast

    def _step(self, batch: dict, criterion: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        views = batch[K.VIEWS]
        # One forward over all views: BatchNorm sees both views of every slice together, as in the reference.
        embeddings = self(torch.cat(views))
        return self.contrastive_loss(criterion, embeddings, len(views), batch), embeddings

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, embeddings = self._step(batch, self.criterion)
        self.log_training(loss, batch[K.VIEWS][0].shape[0], embeddings)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, _ = self._step(batch, self.val_criterion)
        self.log_validation(loss, batch[K.VIEWS][0].shape[0])
        self.probe_features(batch[K.VIEWS][0], batch)
