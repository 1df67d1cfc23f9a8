"""LightningModules: the segmentation fine-tuner and one module per self-supervised method."""

from sspcmr.methods.dino import DINO
from sspcmr.methods.inpainting import Inpainting
from sspcmr.methods.mim import MIM
from sspcmr.methods.multitask import Multitask
from sspcmr.methods.orientation import Orientation
from sspcmr.methods.pcl import PCL
from sspcmr.methods.pretrain import Pretraining
from sspcmr.methods.segmentation import Segmentation
from sspcmr.methods.simclr import SimCLR
from sspcmr.methods.slice_location import SliceLocation

__all__ = ["DINO", "Inpainting", "MIM", "Multitask", "Orientation", "PCL", "Pretraining", "Segmentation", "SimCLR",
           "SliceLocation"]
