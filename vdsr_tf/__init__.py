"""vdsr-tf: VDSR single-image super-resolution (Kim et al., CVPR 2016) in Keras 3.

Names are imported lazily (PEP 562): ``import vdsr_tf`` loads nothing heavy,
so numpy-only parts (``vdsr_tf.ops.imresize``, ``vdsr_tf.inference.upscaler`` with a
non-Keras predictor, ``vdsr_tf.io.images``) work where neither TensorFlow nor
Keras is installed, and the training path (model, clipping, config, data's
numpy sampler, metrics) runs on a JAX-only machine.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "clip_by_lr": "vdsr_tf.models.clipping",
    "DataConfig": "vdsr_tf.config",
    "ModelConfig": "vdsr_tf.config",
    "OptimConfig": "vdsr_tf.config",
    "TrainConfig": "vdsr_tf.config",
    "get_preset": "vdsr_tf.config",
    "PatchSampler": "vdsr_tf.data.degradation",
    "make_dataset": "vdsr_tf.data.pipeline",
    "patch_dataset": "vdsr_tf.data.pipeline",
    "sample_images_dir": "vdsr_tf.io.images",
    "PatchSumMSE": "vdsr_tf.models.losses",
    "PSNRMetric": "vdsr_tf.evaluation.metrics",
    "psnr": "vdsr_tf.evaluation.metrics",
    "ssim": "vdsr_tf.evaluation.metrics",
    "VDSR": "vdsr_tf.models.vdsr",
    "build_vdsr": "vdsr_tf.models.vdsr",
    "load_model": "vdsr_tf.models.loading",
    "load_pretrained": "vdsr_tf.models.loading",
    "bundled_weights_info": "vdsr_tf.io.bundled",
    "Upscaler": "vdsr_tf.inference.upscaler",
    "LiteRTPredictor": "vdsr_tf.inference.litert",
    "ValidationCallback": "vdsr_tf.training.callbacks",
    "imresize": "vdsr_tf.ops.imresize",
    "upscale": "vdsr_tf.inference.upscaler",
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
