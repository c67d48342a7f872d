"""vdsr-tf: VDSR single-image super-resolution (Kim et al., CVPR 2016) in Keras 3.

The modules on the training path (model, clipping, config, imresize, metrics,
the numpy sampler in data) import without TensorFlow, so they also run on a
JAX-only machine. TensorFlow is imported lazily where it is needed.
"""

from vdsr_tf.clipping import clip_by_lr
from vdsr_tf.config import DataConfig, ModelConfig, OptimConfig, TrainConfig, get_preset
from vdsr_tf.data import PatchSampler, make_dataset, patch_dataset, sample_images_dir
from vdsr_tf.metrics import PSNRMetric, psnr, ssim
from vdsr_tf.model import VDSR, build_vdsr, load_model, load_pretrained
from vdsr_tf.upscaler import Upscaler, upscale

__version__ = "0.1.0"

__all__ = [
    "DataConfig", "ModelConfig", "OptimConfig", "TrainConfig", "get_preset", "PatchSampler",
    "make_dataset", "patch_dataset", "sample_images_dir", "PSNRMetric", "psnr", "ssim", "VDSR",
    "build_vdsr", "load_model", "load_pretrained", "Upscaler", "upscale", "clip_by_lr",
]
