"""TFDS builders for the super-resolution sets, read from local files only.

Importing this module registers five datasets with TFDS:

| name | what | features |
|---|---|---|
| ``set5``, ``set14``, ``b100``, ``urban100`` | benchmark sets | ``name``, ``hr``, ``lr_x2``, ``lr_x3``, ``lr_x4`` |
| ``sr291`` | the VDSR paper's 291 training images (T91 + BSD200) | ``name``, ``hr`` |

They never download: the files come from ``manual_dir``, laid out like
``../shared/datasets`` (``Set5/HR/*.png``, ``Set5/LR_bicubic/X2/*.png``,
``train/T91/*.png``, ``train/BSD200/*.png``; Urban100 as ``Urban100/...``).
Images keep their channels (grayscale stays one channel), so the benchmark
protocol scores them exactly as it scores the folders::

    import tensorflow_datasets as tfds
    import vdsr_tf.data.tfds_builders  # registers the names
    ds = tfds.load("set5", split="test", data_dir=DATA_DIR,
                   download_and_prepare_kwargs={"download_config":
                       tfds.download.DownloadConfig(manual_dir="../shared/datasets")})

``vdsr-train --data=tfds:sr291`` and ``vdsr-eval --sets=tfds:set5`` use them.
"""

import os

import tensorflow_datasets as tfds

from vdsr_tf.io.images import list_images, read_image

_SCALES = (2, 3, 4)


_VERSION = tfds.core.Version("1.1.0")


_RELEASE_NOTES = {"1.1.0": "Pixels decoded by vdsr_tf.io.images (orientation, mode policy)."}


_IMAGE = dict(shape=(None, None, None))


_CITATION = "Cite the dataset's own paper (see ../shared/datasets/README.md)."


def _pixels(path):
    """uint8 (H, W, C) through the package's one decoder (``vdsr_tf.io.images``),
    so a dataset holds the pixels every other consumer reads from the file."""
    image = read_image(path, alpha=False)
    return image[..., None] if image.ndim == 2 else image


def _manual_folder(dl_manager, *parts):
    folder = os.path.join(dl_manager.manual_dir, *parts)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"{folder} not found: pass download_config=tfds.download.DownloadConfig("
            "manual_dir=...) pointing at a folder laid out like ../shared/datasets"
        )
    return folder


class _Benchmark(tfds.core.GeneratorBasedBuilder):
    """A benchmark set: HR images and MATLAB-bicubic LR images at x2, x3, x4."""

    VERSION = _VERSION
    RELEASE_NOTES = _RELEASE_NOTES
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point DownloadConfig(manual_dir=...) at a folder holding {folder}/HR and "
        "{folder}/LR_bicubic/X{{2,3,4}} (the layout of ../shared/datasets)."
    )
    FOLDER = None  # set by subclasses

    def _info(self):
        features = {"name": tfds.features.Text(), "hr": tfds.features.Image(**_IMAGE)}
        features.update({f"lr_x{s}": tfds.features.Image(**_IMAGE) for s in _SCALES})
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{self.FOLDER}: HR images with MATLAB-bicubic LR at x2, x3, x4.",
            features=tfds.features.FeaturesDict(features),
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        return {"test": self._generate_examples(_manual_folder(dl_manager, self.FOLDER))}

    def _generate_examples(self, folder):
        for hr_path in list_images(os.path.join(folder, "HR")):
            name = os.path.basename(hr_path)
            example = {"name": name, "hr": _pixels(hr_path)}
            for s in _SCALES:
                lr_path = os.path.join(folder, "LR_bicubic", f"X{s}", name)
                if not os.path.exists(lr_path):
                    raise FileNotFoundError(f"{lr_path} is missing (LR for {hr_path})")
                example[f"lr_x{s}"] = _pixels(lr_path)
            yield name, example


class Set5(_Benchmark):
    """Set5 (Bevilacqua et al., BMVC 2012)."""

    FOLDER = "Set5"


class Set14(_Benchmark):
    """Set14 (Zeyde et al., 2010)."""

    FOLDER = "Set14"


class B100(_Benchmark):
    """BSD100 (Martin et al., ICCV 2001)."""

    FOLDER = "B100"


class Urban100(_Benchmark):
    """Urban100 (Huang et al., CVPR 2015)."""

    FOLDER = "Urban100"


class Sr291(tfds.core.GeneratorBasedBuilder):
    """The 291 training images of VDSR: T91 (Yang et al.) + BSD200."""

    VERSION = _VERSION
    RELEASE_NOTES = _RELEASE_NOTES
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point DownloadConfig(manual_dir=...) at a folder holding train/T91 and "
        "train/BSD200 (the layout of ../shared/datasets)."
    )

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="The 291 training images of the VDSR paper (T91 + BSD200), HR only.",
            features=tfds.features.FeaturesDict(
                {"name": tfds.features.Text(), "hr": tfds.features.Image(**_IMAGE)}
            ),
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        folders = [_manual_folder(dl_manager, "train", part) for part in ("T91", "BSD200")]
        return {"train": self._generate_examples(folders)}

    def _generate_examples(self, folders):
        for folder in folders:
            for path in list_images(folder):
                key = f"{os.path.basename(folder)}/{os.path.basename(path)}"
                yield key, {"name": key, "hr": _pixels(path)}


def load(name, split=None, data_dir=None, manual_dir=None):
    """``tfds.load`` of one of these builders, preparing it from ``manual_dir`` if needed.

    Args:
        name: ``set5``, ``set14``, ``b100``, ``urban100`` or ``sr291``.
        split: defaults to ``test`` (benchmarks) or ``train`` (``sr291``).
        data_dir: the TFDS data directory.
        manual_dir: the folder laid out like ../shared/datasets; needed only the
            first time (to prepare).

    Returns:
        A ``tf.data.Dataset`` of feature dicts.

    Raises:
        FileNotFoundError: if the dataset is not prepared and no (valid)
            ``manual_dir`` is given.
    """
    split = split or ("train" if name == "sr291" else "test")
    kwargs = {}
    if manual_dir:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)
        }
    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=bool(manual_dir), **kwargs)
    except AssertionError as e:  # TFDS's way of saying "not prepared"
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in {data_dir or 'the default data_dir'}; "
            f"pass manual_dir (--manual_dir) to prepare it from local files. ({e})"
        ) from None


NAMES = ("set5", "set14", "b100", "urban100", "sr291")
