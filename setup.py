"""vdsr-tf: VDSR single-image super-resolution for TensorFlow / Keras 3.

Two distributions are built from this repository:

* ``pip install .`` (``vdsr-tf``): the whole package: training, evaluation,
  export, ``vdsr-upscale`` on Keras or LiteRT. Extras: ``beam`` (Apache Beam
  batch upscaling), ``litert`` (the LiteRT runner), ``hub`` (``hf://`` and
  ``kaggle://`` weights handles), ``video`` (videos, through PyAV), ``app``
  (``vdsr-app``, the local web page, on Gradio), ``test``.
* ``VDSR_TF_DIST=lite pip install .`` (``vdsr-tf-lite``): ``vdsr-upscale``
  on LiteRT with the bundled ``.tflite`` model, for devices and edge boxes:
  numpy, Pillow, absl-py and ai-edge-litert; no TensorFlow, no Keras. It
  holds only the rooms that path imports, and installs the same
  ``vdsr_tf`` package name, so use one distribution per environment. Extra:
  ``video``.

The version bounds are the ones CI tests (BUILD.md, "Install").
"""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

VERSION = "0.1.0"
LITE = os.environ.get("VDSR_TF_DIST", "full") == "lite"
if os.environ.get("VDSR_TF_DIST", "full") not in ("full", "lite"):
    raise SystemExit("VDSR_TF_DIST must be 'full' or 'lite'")

# What `vdsr-upscale --backend=litert` imports: the rooms below inference and
# the commands (BUILD.md, "Layout"); models, data, training, evaluation and
# export need TensorFlow or Keras and stay out.
LITE_ROOMS = ["ops", "io", "inference", "cli"]
SAMPLES = ["samples/*/*.png", "samples/*/*/*.png"]
BUNDLED = "presets/bundled"  # the bundled weights' preset folder
# Videos: PyAV's wheels carry FFmpeg (libx264, libx265, libvpx, SVT-AV1, Opus).
VIDEO = ["av>=18.1,<19"]
# The local web page (vdsr-app), on Gradio.
APP = ["gradio>=6.31,<7"]


class BuildPy(build_py):
    """The lite distribution builds into a clean folder: an earlier full build
    must not leak the other rooms into it."""

    def run(self):
        if LITE:
            import shutil

            shutil.rmtree(os.path.join(self.build_lib, "vdsr_tf"), ignore_errors=True)
        super().run()


if LITE:
    NAME, PACKAGES = "vdsr-tf-lite", ["vdsr_tf"] + [f"vdsr_tf.{room}" for room in LITE_ROOMS]
    PACKAGE_DATA = {"vdsr_tf": [f"{BUNDLED}/*.tflite", f"{BUNDLED}/*.json"] + SAMPLES}
    INSTALL_REQUIRES = ["numpy", "pillow", "absl-py", "ai-edge-litert>=2.3"]
    EXTRAS = {"video": VIDEO}
    SCRIPTS = ["vdsr-upscale=vdsr_tf.cli.upscale:run_cli"]
    SUMMARY = "VDSR super-resolution on LiteRT, without TensorFlow or Keras"
else:
    NAME = "vdsr-tf"
    PACKAGES = find_packages(include=["vdsr_tf", "vdsr_tf.*"])
    PACKAGE_DATA = {
        "vdsr_tf": [f"{BUNDLED}/{files}" for files in ("*.h5", "*.json", "*.tflite", "*.md")]
        + SAMPLES
    }
    INSTALL_REQUIRES = [
        # CI tests exactly these minor versions (the oldest and newest claimed are the same).
        "tensorflow>=2.21,<2.22",
        "keras>=3.15.1,<3.16",
        "tensorflow-serving-api>=2.21,<2.22",  # warm-up records of the SavedModel export
        "tensorflow-datasets>=4.9",
        "importlib_resources",
        "numpy",
        "pillow",
        "absl-py",
        "tensorboard",
        "h5py",
    ]
    # apache-beam 2.77 needs protobuf < 7; TensorFlow 2.21 needs >= 6.31.1.
    BEAM = ["apache-beam>=2.77,<2.78", "protobuf>=6.31.1,<7"]
    # hf:// and kaggle:// weights handles, through the hubs' own clients.
    HUB = ["huggingface_hub>=2.4,<3", "kagglehub>=1.0,<2"]
    EXTRAS = {
        "beam": BEAM,
        "hub": HUB,
        "video": VIDEO,
        "app": APP,
        "litert": ["ai-edge-litert>=2.3"],
        "serving": [],  # kept for old install lines: tensorflow-serving-api is a dependency
        "test": [
            "pytest",
            "jax[cpu]",
            "ai-edge-litert>=2.3",
            "nbclient",
            "nbformat",
            "ipykernel",
            "matplotlib",
            "ruff==0.17.6",
            "selenium>=4.30,<5",  # the browser test drives Debian's chromium
        ]
        + BEAM
        + HUB
        + VIDEO
        + APP,
    }
    SCRIPTS = [
        "vdsr-train=vdsr_tf.cli.train:run",
        "vdsr-eval=vdsr_tf.cli.eval:run",
        "vdsr-upscale=vdsr_tf.cli.upscale:run_cli",
        "vdsr-upscale-beam=vdsr_tf.cli.upscale_beam:run",
        "vdsr-export=vdsr_tf.cli.export:run",
        "vdsr-app=vdsr_tf.cli.app:run_cli",
    ]
    SUMMARY = "VDSR super-resolution (Kim et al., CVPR 2016) in Keras 3 / TensorFlow"

setup(
    name=NAME,
    version=VERSION,
    description=SUMMARY,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE", "NOTICE"],
    python_requires=">=3.11,<3.12",
    packages=PACKAGES,
    package_data=PACKAGE_DATA,
    cmdclass={"build_py": BuildPy},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": SCRIPTS},
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Image Processing",
    ],
)
