"""vdsr-tf: VDSR single-image super-resolution for TensorFlow / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="vdsr-tf",
    version="0.1.0",
    description="VDSR super-resolution (Kim et al., CVPR 2016) in Keras 3 / TensorFlow",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["vdsr_tf", "vdsr_tf.*"]),
    package_data={"vdsr_tf": ["weights/*.h5", "weights/*.json", "weights/samples/*/*.png",
                              "weights/samples/*/*/*.png"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.5",
        "tensorflow-datasets>=4.9",
        "importlib_resources",
        "numpy",
        "pillow",
        "absl-py",
        "tensorboard",
        "h5py",
    ],
    extras_require={
        "test": ["pytest", "jax[cpu]", "tensorflow-serving-api", "ai-edge-litert>=2.3",
                 "nbclient", "nbformat", "ipykernel", "matplotlib"],
        "serving": ["tensorflow-serving-api"],
        "litert": ["ai-edge-litert>=2.3"],
    },
    entry_points={
        "console_scripts": [
            "vdsr-train=vdsr_tf.cli.train:run",
            "vdsr-eval=vdsr_tf.cli.eval:run",
            "vdsr-upscale=vdsr_tf.cli.upscale:run_cli",
            "vdsr-export=vdsr_tf.cli.export:run",
        ],
    },
)
