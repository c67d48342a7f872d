"""vdsr-tf: VDSR single-image super-resolution (Kim et al., CVPR 2016) in Keras 3.

Names are imported lazily (PEP 562): ``import vdsr_tf`` loads nothing heavy,
so numpy-only parts (``vdsr_tf.imresize``, ``vdsr_tf.upscaler`` with a
non-Keras predictor, ``vdsr_tf.imageio``) work where neither TensorFlow nor
Keras is installed, and the training path (model, clipping, config, data's
numpy sampler, metrics) runs on a JAX-only machine.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "clip_by_lr": "vdsr_tf.clipping",
    "DataConfig": "vdsr_tf.config",
    "ModelConfig": "vdsr_tf.config",
    "OptimConfig": "vdsr_tf.config",
    "TrainConfig": "vdsr_tf.config",
    "get_preset": "vdsr_tf.config",
    "PatchSampler": "vdsr_tf.data",
    "make_dataset": "vdsr_tf.data",
    "patch_dataset": "vdsr_tf.data",
    "sample_images_dir": "vdsr_tf.imageio",
    "PatchSumMSE": "vdsr_tf.losses",
    "PSNRMetric": "vdsr_tf.metrics",
    "psnr": "vdsr_tf.metrics",
    "ssim": "vdsr_tf.metrics",
    "VDSR": "vdsr_tf.model",
    "build_vdsr": "vdsr_tf.model",
    "load_model": "vdsr_tf.model",
    "load_pretrained": "vdsr_tf.model",
    "bundled_weights_info": "vdsr_tf.bundled",
    "Upscaler": "vdsr_tf.upscaler",
    "upscale": "vdsr_tf.upscaler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vdsr_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
