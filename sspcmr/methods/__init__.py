"""LightningModules: the segmentation fine-tuner and one module per self-supervised method."""

from sspcmr.methods.dino import DINO
from sspcmr.methods.mim import MIM
from sspcmr.methods.pcl import PCL
from sspcmr.methods.pretrain import Pretraining
from sspcmr.methods.segmentation import Segmentation
from sspcmr.methods.simclr import SimCLR

__all__ = ["DINO", "MIM", "PCL", "Pretraining", "Segmentation", "SimCLR"]
