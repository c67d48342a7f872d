"""Batch upscaling on Apache Beam (``pip install "vdsr-tf[beam]"``).

Two pieces:

* ``UpscaleModelHandler``, a ``RunInference`` model handler around
  ``vdsr_tf.Upscaler``: each worker loads the network once and every element
  gets what ``vdsr-upscale`` gives it (tiling, colour, alpha, EXIF, frames,
  the bundled weights). Images of any size: the handler takes one image per
  call (``max_batch_size=1``), so nothing is stacked.
* ``build_pipeline``, the pipeline of ``vdsr-upscale-beam``: files matched by a
  glob through Beam's ``FileSystems`` (local paths, and ``gs://``, ``s3://``,
  ``hdfs://`` where those filesystems are installed), each output written
  atomically, existing outputs skipped (a rerun does only the rest), failures
  sent to a dead-letter file instead of failing the pipeline, and Beam
  metrics for images, pixels, failures and seconds.

    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from vdsr_tf.inference.beam import UpscaleModelHandler

    with beam.Pipeline() as p:
        (p | beam.Create([png_bytes]) | RunInference(UpscaleModelHandler(scale=2))
           | beam.Map(lambda result: result.inference.data))   # PNG bytes, x2
"""

import os
import re
import time
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)

from vdsr_tf.ops.tiling import DEFAULT_MAX_PIXELS, DEFAULT_TILE

NAMESPACE = "vdsr"


DEAD_LETTER = "vdsr_failed.tsv"  # in the output folder: source path <TAB> reason, per line


class ImageFailure(ValueError):
    """An element the handler could not upscale. Its ``repr`` is the plain
    one-line reason, which is what Beam's dead-letter output records."""

    def __repr__(self):
        return str(self)


class UpscaledFile(NamedTuple):
    """The inference for an encoded image: the output file's bytes and what
    ``vdsr-upscale`` prints for it."""

    data: bytes
    format: str
    input_size: tuple
    output_size: tuple
    frames: int
    notes: list


class UpscaleModelHandler(ModelHandler):
    """``RunInference`` handler: ``vdsr_tf.Upscaler`` on Beam workers.

    Examples and their inferences:

    * ``bytes`` (an image file's content) -> ``UpscaledFile`` in
      ``output_format``, or in the input's own format when that is None;
    * ``(bytes, format)``: the same with a format per element;
    * a numpy array (uint8, uint16, float in [0, 1]) -> the same dtype;
    * a PIL image -> a PIL image (EXIF and ICC profile in ``info``).

    Args:
        scale, size: the enlargement (factor > 1) or the exact output
            (H, W); exactly one.
        weights: None (bundled), a weights handle (a preset name or folder,
            a ``.keras`` / ``.weights.h5`` file, ``hf://``, ``kaggle://``;
            ``vdsr_tf.io.presets``), a file or preset folder on a Beam
            filesystem (``gs://...``, copied to each worker), or "bicubic".
            Read on each worker, so a local path must exist there.
        tflite_model: a ``.tflite`` file to run with LiteRT instead of Keras.
        tile, ensemble, max_pixels: as ``Upscaler``.
        output_format: Pillow format name for encoded outputs, or None.
        max_batch_size: images per ``run_inference`` call (1 bounds memory
            by one image; larger batches are still upscaled one by one).
        precision: as ``Upscaler`` ("auto": each worker machine times the
            paths once and caches the result); not with ``tflite_model``.

    Raises:
        ValueError: for a bad scale/size, output format or precision, at
            construction.
    """

    def __init__(
        self,
        scale=None,
        size=None,
        weights=None,
        tflite_model=None,
        tile=DEFAULT_TILE,
        ensemble=False,
        max_pixels=DEFAULT_MAX_PIXELS,
        output_format=None,
        max_batch_size=1,
        precision="auto",
    ):
        from vdsr_tf.inference.precision import check_precision
        from vdsr_tf.io.images import FORMATS
        from vdsr_tf.ops.tiling import output_size

        super().__init__(max_batch_size=max_batch_size)
        output_size((1, 1), scale, size)  # the same checks as the upscaler's
        if output_format is not None and output_format not in FORMATS.values():
            raise ValueError(
                f"Unknown output format {output_format!r}; use one of "
                f"{', '.join(sorted(set(FORMATS.values())))}"
            )
        if tflite_model is not None and weights is not None:
            raise ValueError("Give weights (Keras) or tflite_model (LiteRT), not both")
        if check_precision(precision) != "auto" and tflite_model is not None:
            raise ValueError("A tflite_model has its own precision: give no precision")
        self.scale, self.size = scale, size
        self.weights, self.tflite_model = weights, tflite_model
        self.tile, self.ensemble, self.max_pixels = tile, ensemble, max_pixels
        self.output_format = output_format
        self.precision = precision

    def load_model(self):
        """The worker's ``Upscaler`` (loaded once per worker process)."""
        from vdsr_tf.inference.upscaler import Upscaler

        # A LiteRT predictor takes one call at a time (it holds a lock), so
        # the threads of a worker can share it as Beam shares one model.
        predictor, weights = None, local_copy(self.weights, ["config.json", "metadata.json"])
        if self.tflite_model is not None:
            from vdsr_tf.inference.litert import LiteRTPredictor

            predictor = LiteRTPredictor(local_copy(self.tflite_model))
        return Upscaler(
            weights,
            tile=self.tile,
            ensemble=self.ensemble,
            max_pixels=self.max_pixels,
            predictor=predictor,
            **({} if predictor else {"precision": self.precision}),
        )

    def run_inference(self, batch, model, inference_args=None):
        """Upscales each example of ``batch`` with ``model`` (an Upscaler).

        Raises:
            ImageFailure: for an example that cannot be upscaled (corrupt,
                over the pixel limit, a format that cannot hold it), with
                the one-line reason ``vdsr-upscale`` prints.
        """
        from vdsr_tf.io.images import ImageError

        images = Metrics.counter(NAMESPACE, "images")
        pixels = Metrics.counter(NAMESPACE, "output_pixels")
        millis = Metrics.counter(NAMESPACE, "upscale_milliseconds")
        results = []
        for example in batch:
            start = time.monotonic()
            try:
                inference, count = self._one(model, example)
            except (ImageError, ValueError, OSError) as e:
                raise ImageFailure(str(e)) from None
            images.inc()
            pixels.inc(count)
            millis.inc(int(round(1000 * (time.monotonic() - start))))
            results.append(PredictionResult(example, inference))
        return results

    def _one(self, model, example):
        """``(inference, output pixels)`` for one example."""
        if isinstance(example, tuple) and len(example) == 2:
            data, fmt = example
        else:
            data, fmt = example, self.output_format
        if isinstance(data, (bytes, bytearray, memoryview)):
            from vdsr_tf.io.images import sniff_format

            fmt = fmt or sniff_format(data)
            out, (in_size, out_size, frames, notes) = model.upscale_bytes(
                data, self.scale, self.size, fmt
            )
            return (
                UpscaledFile(out, fmt, in_size, out_size, frames, notes),
                frames * out_size[0] * out_size[1],
            )
        out = model.upscale(example, self.scale, self.size)
        shape = np.shape(out) if isinstance(out, np.ndarray) else out.size
        return out, int(shape[0]) * int(shape[1])

    def get_num_bytes(self, batch):
        return sum(
            len(e[0])
            if isinstance(e, tuple)
            else len(e)
            if isinstance(e, (bytes, bytearray, memoryview))
            else int(np.asarray(e).nbytes)
            for e in batch
        )

    def get_metrics_namespace(self):
        return NAMESPACE


def on_filesystem(handle):
    """Whether a weights handle is a Beam filesystem URL (``gs://...``), not
    a local path, a preset name or a hub handle (``hf://``, ``kaggle://``),
    which every worker resolves itself."""
    scheme = handle.partition("://")[0] if handle and "://" in handle else None
    return scheme is not None and scheme not in ("hf", "kaggle")


def local_copy(path, siblings=()):
    """``path``, or for a Beam filesystem URL (``gs://...``) a local copy of
    it: of a preset (or ``vdsr-train`` run) folder, the files a preset
    loads; of a file, it and the ``siblings`` beside it that exist."""
    if path is None or not on_filesystem(path):
        return path
    import json
    import tempfile

    from vdsr_tf.io import presets

    def there(name):
        return FileSystems.exists(f"{base}/{name}")

    folder = tempfile.mkdtemp(prefix="vdsr-model-")
    base = path.rstrip("/")
    if there(presets.CONFIG):  # a folder: its config, weights and metadata
        names = [presets.CONFIG, presets.WEIGHTS, presets.RUN_WEIGHTS, presets.METADATA]
        names, target = [n for n in names if there(n)], folder
    else:
        base, name = path.rsplit("/", 1)
        names, target = [name] + [n for n in siblings if there(n)], os.path.join(folder, name)
    for name in names:
        with FileSystems.open(
            f"{base}/{name}", compression_type=CompressionTypes.UNCOMPRESSED
        ) as f:
            data = f.read()
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        if name == presets.METADATA:  # and the LiteRT files it lists (bare names only)
            listed = (json.loads(data or b"{}").get("tflite") or {}).values()
            names += [
                e["file"]
                for e in listed
                if isinstance(e, dict)
                and os.path.basename(str(e.get("file", ""))) == e.get("file")
                and there(e["file"])
            ]
    return target


# -- vdsr-upscale-beam -------------------------------------------------------
def pattern_base(pattern):
    """The folder part of a glob before its first wildcard: outputs keep the
    matched paths relative to it (``photos/**/*.jpg`` -> ``photos/``)."""
    wild = min((i for i, c in enumerate(pattern) if c in "*?["), default=len(pattern))
    cut = max(pattern.rfind("/", 0, wild), pattern.rfind(os.sep, 0, wild))
    return pattern[: cut + 1]


def destination(path, base, output_dir, fmt=None):
    """Output path of a matched input: its path under ``base``, in
    ``output_dir``, with the extension of ``fmt`` when given."""
    rel = path[len(base) :] if path.startswith(base) else path.rsplit("/", 1)[-1]
    rel = rel.lstrip("/" + os.sep)
    if fmt:
        rel = os.path.splitext(rel)[0] + "." + fmt
    return _join(output_dir, *rel.replace(os.sep, "/").split("/"))


def _join(folder, *parts):
    """``FileSystems.join`` without looking the filesystem up: URLs join with
    "/", local paths with ``os.path.join``."""
    if "://" in folder:
        return "/".join([folder.rstrip("/"), *parts])
    return os.path.join(folder, *parts)


def _inside(path, folder):
    folder = folder.rstrip("/" + os.sep)
    return path == folder or path.startswith((folder + "/", folder + os.sep))


class _Plan(beam.DoFn):
    """A matched file -> ``(destination, source)``, or counted and dropped:
    outputs of an earlier run (inside the output folder), files that are
    not images, and inputs whose output exists already."""

    def __init__(self, base, output_dir, fmt):
        self.base, self.output_dir, self.fmt = base, output_dir, fmt

    def process(self, metadata):
        from vdsr_tf.io.images import IMAGE_EXTENSIONS

        path = metadata.path
        if _inside(path, self.output_dir):
            return
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            Metrics.counter(NAMESPACE, "skipped_not_images").inc()
            return
        dst = destination(path, self.base, self.output_dir, self.fmt)
        if FileSystems.exists(dst):
            Metrics.counter(NAMESPACE, "skipped_existing").inc()
            return
        yield dst, path


def _one_source(item):
    """``(destination, [sources])`` -> the first source, the others failed."""
    dst, sources = item
    sources = sorted(sources)
    yield dst, sources[0]
    for other in sources[1:]:
        yield beam.pvalue.TaggedOutput(
            "failed", (other, f"{sources[0]} is written to the same output, {dst}")
        )


def _read(item):
    """``(destination, source)`` -> ``((source, destination), (bytes, format))``."""
    from vdsr_tf.io.images import format_for

    dst, src = item
    try:
        with FileSystems.open(src, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
    except Exception as e:  # noqa: BLE001 -- any filesystem's read error
        yield beam.pvalue.TaggedOutput("failed", (src, f"cannot read: {_reason(e)}"))
        return
    if not data:
        yield beam.pvalue.TaggedOutput("failed", (src, "empty file (0 bytes)"))
        return
    yield (src, dst), (data, format_for(dst))


def _reason(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Write(beam.DoFn):
    """Writes each output atomically: a temporary name beside it, then a
    rename (on a local disk, ``os.rename``; on object stores the object
    appears whole). Never replaces an output that appeared meanwhile."""

    def process(self, item):
        import secrets

        (src, dst), result = item
        out = result.inference
        folder, name = dst.rsplit("/", 1) if "/" in dst else (".", dst)
        tmp = _join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                f.write(out.data)
            if FileSystems.exists(dst):
                FileSystems.delete([tmp])
                Metrics.counter(NAMESPACE, "skipped_existing").inc()
                return
            FileSystems.rename([tmp], [dst])
        except Exception as e:  # noqa: BLE001 -- any filesystem's write error
            try:
                FileSystems.delete([tmp])
            except Exception:  # noqa: BLE001 -- it may never have been created
                pass
            yield beam.pvalue.TaggedOutput("failed", (src, f"cannot write {dst}: {_reason(e)}"))
            return
        Metrics.counter(NAMESPACE, "written").inc()
        yield src, dst, out


_TEMPORARY = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.tmp$")  # _Write's temporary outputs


def remove_stale_temporaries(output_dir):
    """Deletes what an aborted run left in ``output_dir``: ``_Write``'s
    temporary outputs (``.NAME.XXXXXXXX.tmp``, at any depth) and the
    dead-letter file's staging folder (``beam-temp-vdsr_failed.tsv-*``).
    ``vdsr-upscale-beam`` calls it before each run, so run one job per
    output folder at a time.

    Returns:
        The paths removed.
    """
    removed = []
    for meta in FileSystems.match([FileSystems.join(output_dir, "**.tmp")])[0].metadata_list:
        if _TEMPORARY.match(meta.path.rsplit("/", 1)[-1]):
            FileSystems.delete([meta.path])
            removed.append(meta.path)
    staging = FileSystems.join(output_dir, f"beam-temp-{DEAD_LETTER}-*")
    if FileSystems.get_scheme(output_dir) in (None, "file"):  # a local folder, maybe empty
        import glob
        import shutil

        for folder in glob.glob(staging):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    else:  # an object store has no empty folders: its files are what is left
        for meta in FileSystems.match([FileSystems.join(staging, "*")])[0].metadata_list:
            FileSystems.delete([meta.path])
            removed.append(meta.path)
    return removed


def _failed_inferences(failure):
    """Beam's dead-letter record ``(batch, (type, repr, traceback))`` -> lines."""
    batch, (_, reason, _) = failure
    for (src, _), _ in batch:
        yield src, reason


def _tsv(failure):
    src, reason = failure
    return f"{src}\t{' '.join(str(reason).split())}"


def build_pipeline(pipeline, input_pattern, output_dir, handler, fmt=None):
    """Adds vdsr-upscale-beam's transforms to ``pipeline``.

    Args:
        pipeline: a ``beam.Pipeline``.
        input_pattern: a glob for ``FileSystems.match``; files without an
            image extension are skipped (counted).
        output_dir: the output folder; outputs keep their paths relative to
            the pattern's folder (``pattern_base``).
        handler: an ``UpscaleModelHandler`` (its ``output_format`` unused:
            each output's format follows its file name).
        fmt: an extension (``"png"``) for every output, or None to keep
            each input's.

    Returns:
        ``(written, failed)`` PCollections: ``(source, destination,
        UpscaledFile)`` and ``(source, reason)``; the failures are also
        written to ``output_dir/vdsr_failed.tsv`` (empty when none).
    """
    base = pattern_base(input_pattern)
    planned = (
        pipeline
        | "Match" >> fileio.MatchFiles(input_pattern, fileio.EmptyMatchTreatment.ALLOW)
        | "Plan" >> beam.ParDo(_Plan(base, output_dir, fmt))
    )
    jobs = (
        planned
        | "ByOutput" >> beam.GroupByKey()
        | "OneSourceEach" >> beam.FlatMap(_one_source).with_outputs("failed", main="jobs")
    )
    read = jobs.jobs | "Read" >> beam.FlatMap(_read).with_outputs("failed", main="files")
    upscaled, dead = (
        read.files | "Upscale" >> RunInference(KeyedModelHandler(handler)).with_exception_handling()
    )
    written = upscaled | "Write" >> beam.ParDo(_Write()).with_outputs("failed", main="written")
    failed = (
        jobs.failed,
        read.failed,
        dead.failed_inferences | "Why" >> beam.FlatMap(_failed_inferences),
        written.failed,
    ) | "Failures" >> beam.Flatten()
    _ = failed | "Count" >> beam.Map(lambda _: Metrics.counter(NAMESPACE, "failures").inc())
    _ = (
        failed
        | "Lines" >> beam.Map(_tsv)
        | "DeadLetter"
        >> beam.io.WriteToText(
            FileSystems.join(output_dir, DEAD_LETTER), shard_name_template="", num_shards=1
        )
    )
    return written.written, failed


def unknown_options(args):
    """The flags in ``args`` that no Beam ``PipelineOptions`` class defines."""
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(args)
    known = options.get_all_options(retain_unknown_options=False)
    everything = options.get_all_options(retain_unknown_options=True)
    return sorted(set(everything) - set(known))


def metric_totals(result):
    """``{name: value}`` of the ``vdsr`` counters of a finished pipeline."""
    from apache_beam.metrics.metric import MetricsFilter

    totals = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        name = counter.key.metric.name
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[name] = totals.get(name, 0) + (value or 0)
    return totals
