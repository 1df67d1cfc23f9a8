"""sspcmr: self-supervised pretraining for cardiac MR cine segmentation."""

__version__ = "0.1.0"
