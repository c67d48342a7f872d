"""Presets: a trained model in a folder, and the handles that name one.

A preset folder, in keras-hub's layout:

* ``config.json``: ``{"module": "vdsr_tf.models.vdsr", "class_name": "VDSR",
  "config": {...}, "registered_name": "vdsr_tf>VDSR"}``, where ``config``
  holds every argument of ``build_vdsr``. It is Keras's own serialized form,
  so ``keras.saving.load_model(folder)`` (or ``"hf://owner/name"``) loads a
  preset too, once ``vdsr_tf.models.vdsr`` is imported;
* ``model.weights.h5``: the weights (``model.save_weights``);
* ``metadata.json``: the format, the versions of vdsr-tf and Keras, the
  date, ``sha256`` of ``model.weights.h5`` and whatever the author knew:
  ``recipe``, ``patches_seen``, ``scores`` (``vdsr-eval``'s), ``training_data``
  and its terms, ``tflite`` (each ``.tflite`` variant's file, quantization,
  sha256 and the weights' sha256 it was converted from);
* ``README.md``: a model card written from the metadata (``model_card``);
* optionally the ``.tflite`` variants ``metadata["tflite"]`` lists.

A handle names a preset or a weights file (``resolve``): a preset name
(``"bundled"``, the weights shipped in the package, or one given to
``register_preset``), a local preset folder, a ``.keras`` or ``.weights.h5``
file (a ``config.json`` beside it gives the architecture), or a hub handle:
``hf://owner/name[@revision]`` through ``huggingface_hub`` and
``kaggle://owner/model/framework/variation[/version]`` through ``kagglehub``
(the ``hub`` extra), with those clients' caches and offline modes
(``HF_HUB_OFFLINE=1``).

Standard library only (the hub clients are imported for hub handles), so the
LiteRT-only install resolves handles too.
"""

import dataclasses
import hashlib
import json
import os

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
METADATA = "metadata.json"
CARD = "README.md"
FORMAT = "vdsr-tf preset 1"
# config.json's identity: Keras's serialized form of the VDSR class.
MODULE, CLASS_NAME, REGISTERED_NAME = "vdsr_tf.models.vdsr", "VDSR", "vdsr_tf>VDSR"
# A vdsr-train run folder: its training config and final weights.
RUN_WEIGHTS = "vdsr.weights.h5"

# The paper's PSNR (Kim et al. 2016, Table 5), for the model card's brackets.
PAPER_PSNR = {
    "Set5": {"x2": 37.53, "x3": 33.66, "x4": 31.35},
    "Set14": {"x2": 33.03, "x3": 29.77, "x4": 28.01},
    "B100": {"x2": 31.90, "x3": 28.82, "x4": 27.29},
    "Urban100": {"x2": 30.76, "x3": 27.14, "x4": 25.18},
}
BUNDLED = os.path.join(os.path.dirname(os.path.dirname(__file__)), "presets", "bundled")
_REGISTRY = {"bundled": BUNDLED}
_SCHEMES = {"hf": "huggingface_hub", "kaggle": "kagglehub"}
HANDLE_KINDS = (
    "a preset name, a preset folder, a .keras or .weights.h5 file, "
    "hf://owner/name or kaggle://owner/model/framework/variation"
)


class PresetError(ValueError):
    """A preset or weights file that cannot be used: one line says why."""


class HubError(OSError):
    """A hub handle whose files could not be had (offline, unreachable, unknown)."""


# What loading a handle raises, each with a one-line message: what a command
# turns into its one-line error (OSError: a missing or unreadable file, a hub
# that cannot give the files).
LOAD_ERRORS = (OSError, ValueError, ImportError)


@dataclasses.dataclass(frozen=True)
class Source:
    """What a handle names, on this machine.

    Attributes:
        handle: the handle as given (for messages).
        path: the local preset folder or file.
        kind: ``"preset"`` (a preset folder, or a ``.weights.h5`` with a
            config beside it), ``"keras"`` (a ``.keras`` file, or a folder
            Keras saved unzipped) or ``"weights"`` (a ``.weights.h5`` alone:
            the default network).
        weights: the file holding the weights.
        config: ``build_vdsr``'s arguments (all or some), or None.
        metadata: ``metadata.json``'s dict, or None.
        bundled: whether these are the weights shipped in the package.
    """

    handle: str
    path: str
    kind: str
    weights: str
    config: dict = None
    metadata: dict = None
    bundled: bool = False

    @property
    def sha256(self):
        """The weights' sha256 the metadata records (checked), or None."""
        return (self.metadata or {}).get("sha256")

    def tflite(self, precision):
        """The preset's ``.tflite`` variant of ``precision`` ("fp32" or
        "int8"), its sha256 checked, or None when it has none converted from
        these weights."""
        entry = ((self.metadata or {}).get("tflite") or {}).get(precision)
        if not entry or not self.sha256 or entry.get("weights_sha256") != self.sha256:
            return None
        name = str(entry.get("file", ""))
        if not name or os.path.basename(name) != name or name in (".", ".."):
            raise PresetError(f"{METADATA} of {self.handle} names a .tflite outside its folder")
        path = os.path.join(os.path.dirname(self.weights), name)
        if not os.path.isfile(path):
            return None
        if entry.get("sha256") and file_sha256(path) != entry["sha256"]:
            raise PresetError(
                f"{path} does not match its sha256 in {METADATA} (a damaged or edited file)"
            )
        return path


def file_sha256(path):
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def register_preset(name, handle):
    """Makes ``name`` a preset name for ``handle`` (any handle ``resolve``
    takes, e.g. ``"hf://owner/vdsr-faces"`` or a folder), in this process.

    Raises:
        ValueError: for a name that reads as a path or a hub handle.
    """
    if not name or "://" in name or "/" in name or os.sep in name or "." in name:
        raise ValueError(f"A preset name has no '/', '.' or '://': got {name!r}")
    handle = os.fspath(handle)
    if "://" not in handle and handle not in _REGISTRY:
        handle = os.path.abspath(handle)  # a local path, whatever the folder later
    _REGISTRY[name] = handle


def preset_names():
    """The preset names this process knows (``"bundled"`` and registered ones)."""
    return sorted(_REGISTRY)


def _registered(handle):
    """The handle a preset name stands for (a name may name another; a
    cycle stops after as many steps as there are names), else ``handle``."""
    for _ in range(len(_REGISTRY) + 1):
        if handle not in _REGISTRY:
            break
        handle = _REGISTRY[handle]
    return handle


def is_bundled(handle):
    """Whether ``handle`` names the bundled weights (None does), without
    reading any file."""
    if handle is None:
        return True
    handle = _registered(os.fspath(handle))
    if "://" in handle:
        return False
    path = os.path.realpath(handle)
    bundled = os.path.realpath(BUNDLED)
    return path in (bundled, os.path.join(bundled, WEIGHTS))


def resolve(handle=None):
    """The local ``Source`` of a handle (None: the bundled preset), checked:
    hub handles are downloaded (or found in the hub client's cache), a preset
    folder must have its files, and the weights their recorded sha256.

    Raises:
        FileNotFoundError: for a path, name or file that does not exist.
        PresetError (a ValueError): a folder that is not a preset, a config
            of another model, a weights file whose sha256 differs from its
            metadata's, an unknown handle scheme.
        ImportError: a hub handle whose client is not installed (names the
            extra to install).
        HubError (an OSError): a hub that cannot give the files.
    """
    given = "bundled" if handle is None else os.fspath(handle)
    handle = _registered(given)
    scheme, sep, rest = handle.partition("://")
    if sep:
        if scheme not in _SCHEMES:
            raise PresetError(
                f"{given}: unknown scheme {scheme}://; a handle is {HANDLE_KINDS} "
                "(files on a Beam filesystem go to vdsr-upscale-beam)"
            )
        handle = _download(scheme, rest, given)
    return _open(handle, given)


def _download(scheme, rest, given):
    """The local folder of a hub handle, through the hub's own client."""
    module = _SCHEMES[scheme]
    try:
        client = __import__(module)
    except ImportError:
        raise ImportError(
            f"{given}: {scheme}:// handles need {module}: pip install 'vdsr-tf[hub]'"
        ) from None
    import vdsr_tf

    try:
        if scheme == "hf":
            repo, _, revision = rest.partition("@")
            if repo.count("/") != 1 or not all(repo.split("/")):
                raise PresetError(f"{given}: write hf://owner/name or hf://owner/name@revision")
            return client.snapshot_download(
                repo_id=repo,
                revision=revision or None,
                library_name="vdsr-tf",
                library_version=vdsr_tf.__version__,
            )
        if not 4 <= rest.count("/") + 1 <= 5:
            raise PresetError(f"{given}: write kaggle://owner/model/framework/variation[/version]")
        return client.model_download(rest)
    except PresetError:
        raise
    except Exception as e:  # noqa: BLE001 -- each client raises its own types
        text = str(e).strip().splitlines()
        why = text[0][:300] if text else type(e).__name__
        raise HubError(f"cannot get {given} through {module}: {why}") from None


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as e:
        raise PresetError(f"{path} cannot be read as JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise PresetError(f"{path} holds a {type(value).__name__}, not a JSON object")
    return value


def model_config(config, where):
    """``build_vdsr``'s arguments from a ``config.json``'s dict: a preset's
    (Keras's serialized form), or a ``vdsr-train`` run's (its ``model``
    group). ``None`` for Keras's own unzipped format (the whole graph).

    Raises:
        PresetError: for a config of another class or library.
    """
    if "model" in config and "class_name" not in config:  # a vdsr-train run's config
        return dict(config["model"])  # ModelConfig's fields are build_vdsr's arguments
    name = config.get("class_name")
    if name != CLASS_NAME or config.get("module", MODULE).split(".")[0] != "vdsr_tf":
        raise PresetError(
            f"{where} describes {config.get('module', '?')}.{name}, not vdsr-tf's VDSR "
            "network: a model for another library or architecture"
        )
    inner = config.get("config")
    if not isinstance(inner, dict):
        raise PresetError(f"{where} has no 'config' object with the network's arguments")
    return None if "layers" in inner else dict(inner)


def _open(path, given):
    if not os.path.exists(path):
        hint = f" (preset names: {', '.join(preset_names())})" if os.sep not in given else ""
        raise FileNotFoundError(f"No such preset, folder or weights file: {given}{hint}")
    bundled = is_bundled(path)
    if os.path.isdir(path):
        return _open_folder(path, given, bundled)
    if path.endswith(".keras"):
        return Source(given, path, "keras", path)
    if not path.endswith(".weights.h5"):
        raise PresetError(f"{given} is not {HANDLE_KINDS}")
    folder = os.path.dirname(os.path.abspath(path))
    config = metadata = None
    if os.path.isfile(os.path.join(folder, CONFIG)):
        config = model_config(
            _read_json(os.path.join(folder, CONFIG)), os.path.join(folder, CONFIG)
        )
    if os.path.basename(path) == WEIGHTS and os.path.isfile(os.path.join(folder, METADATA)):
        metadata = _read_json(os.path.join(folder, METADATA))
        _check_sha256(path, metadata, given)
    return Source(
        given, path, "weights" if config is None else "preset", path, config, metadata, bundled
    )


def _open_folder(path, given, bundled):
    names = set(os.listdir(path))
    if CONFIG in names and RUN_WEIGHTS in names and WEIGHTS not in names:
        # A vdsr-train run folder: its final weights, its recipe's architecture.
        return _open(os.path.join(path, RUN_WEIGHTS), given)
    missing = [n for n in (CONFIG, WEIGHTS) if n not in names]
    if missing:
        if bundled and WEIGHTS in missing:
            raise FileNotFoundError(
                "This install has no bundled Keras weights (the LiteRT-only install "
                "has only the .tflite files); pass a preset or weights file"
            )
        raise PresetError(
            f"{given} is not a preset folder: it has no {' or '.join(missing)} "
            "(vdsr-export --format=preset writes one)"
        )
    config_path = os.path.join(path, CONFIG)
    config = model_config(_read_json(config_path), config_path)
    metadata = _read_json(os.path.join(path, METADATA)) if METADATA in names else None
    weights = os.path.join(path, WEIGHTS)
    _check_sha256(weights, metadata, given)
    kind = "keras" if config is None else "preset"
    return Source(given, path, kind, weights, config, metadata, bundled)


def _check_sha256(weights, metadata, given):
    expected = (metadata or {}).get("sha256")
    if expected and file_sha256(weights) != expected:
        raise PresetError(
            f"{given}: {WEIGHTS} does not match the sha256 in {METADATA} "
            "(a damaged download or an edited file); refusing to load it"
        )


# -- the model card -----------------------------------------------------------
def model_card(metadata, config):
    """A ``README.md`` model card (Markdown with Hugging Face's front matter)
    written from a preset's ``metadata`` and ``config`` (build_vdsr's
    arguments)."""
    name = metadata.get("name") or "VDSR"
    handle = metadata.get("handle") or "HANDLE"
    lines = [
        "---",
        "library_name: keras",
        "license: " + metadata.get("license", "apache-2.0"),
        "pipeline_tag: image-to-image",
        "tags:",
        "- super-resolution",
        "- vdsr",
        "- vdsr-tf",
        "---",
        "",
        f"# {name}",
        "",
        metadata.get("description")
        or (
            'VDSR single-image super-resolution (Kim, Lee, Lee, "Accurate Image '
            'Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016), '
            "a vdsr-tf preset."
        ),
        "",
        "## Use",
        "",
        "```python",
        "import vdsr_tf  # pip install vdsr-tf (with [hub] for hf:// and kaggle://)",
        "",
        f'upscaler = vdsr_tf.Upscaler.from_preset("{handle}")'
        + ("  # this folder, hf://owner/name, ..." if handle == "HANDLE" else ""),
        'upscaler.upscale_file("photo.jpg", "photo_x2.jpg", scale=2)',
        "```",
        "",
        f"or `vdsr-upscale photo.jpg --scale=2 --weights={handle}`.",
        "",
        "## Network",
        "",
        f"{config.get('depth', 20)} 3x3 convolutions, {config.get('filters', 64)} filters, "
        + (
            "predicting the residual over the bicubic-upscaled Y channel."
            if config.get("residual", True)
            else "predicting the Y channel itself (no skip)."
        ),
        "",
        "| | |",
        "|---|---|",
    ]
    fields = [
        ("Version", metadata.get("version")),
        ("Date", metadata.get("date") or metadata.get("date_saved")),
        ("Recipe", metadata.get("recipe")),
        ("Patches seen", _count(metadata.get("patches_seen"))),
        ("Training data", metadata.get("training_data")),
        ("Trained on", metadata.get("device")),
        ("Weights sha256", f"`{metadata['sha256']}`" if metadata.get("sha256") else None),
        ("vdsr-tf / Keras", f"{metadata.get('vdsr_tf_version')} / {metadata.get('keras_version')}"),
    ]
    lines += [f"| {k} | {v} |" for k, v in fields if v is not None]
    scores = metadata.get("scores") or {}
    if scores:
        paper = metadata.get("paper") or {}
        scales = sorted({x for cells in scores.values() for x in cells})
        lines += [
            "",
            "## Results",
            "",
            "PSNR (dB) / SSIM on the Y channel, `vdsr-eval` (MATLAB bicubic inputs, "
            "borders cropped by the scale)" + ("; the paper's PSNR in brackets." if paper else "."),
            "",
            "| set | " + " | ".join(scales) + " |",
            "|---|" + "---|" * len(scales),
        ]
        for name_, cells in scores.items():
            row = []
            for x in scales:
                cell = cells.get(x)
                if not cell:
                    row.append("")
                    continue
                text = f"{cell['psnr']:.2f} / {cell.get('ssim', float('nan')):.4f}"
                if paper.get(name_, {}).get(x) is not None:
                    text += f" [{paper[name_][x]:.2f}]"
                row.append(text)
            lines.append(f"| {name_} | " + " | ".join(row) + " |")
    if metadata.get("tflite"):
        lines += ["", "## LiteRT", ""]
        lines += [
            f"- `{v['file']}`: {v.get('quantization', k)}, sha256 `{v.get('sha256')}`"
            for k, v in metadata["tflite"].items()
        ]
    lines += [
        "",
        "## Terms",
        "",
        metadata.get("terms")
        or "The training images' own terms apply to what was learnt from them; "
        "check them before commercial use.",
        "",
    ]
    return "\n".join(lines)


def _count(n):
    return f"{n:,}" if isinstance(n, int) else n
