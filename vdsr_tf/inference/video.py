"""Videos through an ``Upscaler``: ``Upscaler.upscale_video``, and
``vdsr-upscale clip.mp4`` (``vdsr_tf.inference.batch`` calls it per video).

Three threads overlap the work. One decodes (``vdsr_tf.io.video.VideoReader``),
the caller's thread runs the frames through the same ``Upscaler`` path as
images (``upscale_arrays``: colour, tiling, backend, precision; ``batch``
frames per network call), and one encodes and writes (``VideoWriter``).
Bounded queues join them, so memory holds a few frames whatever the length;
the audio and subtitle packets travel with the frames, in the file's order.

The output is written to a temporary file in its folder and renamed at the
end (``vdsr_tf.io.atomic``): a stop (Ctrl-C, SIGTERM, an error) leaves no
file behind, and a rerun starts the video over.
"""

import os
import queue
import threading

from vdsr_tf.inference.engines import gpu_visible
from vdsr_tf.io.atomic import atomic_path
from vdsr_tf.io.video import (
    CONTAINERS,
    Frame,
    VideoError,
    VideoReader,
    VideoWriter,
    encodable_size,
    is_video,
)
from vdsr_tf.ops.tiling import output_size

GPU_BATCH = 8  # frames per network call when Keras runs on a GPU
_END = object()


def default_batch(upscaler):
    """Frames per network call: ``GPU_BATCH`` on a GPU, else 1 (a CPU gains
    nothing from larger batches, and holds them in memory)."""
    return GPU_BATCH if upscaler.backend == "keras" and gpu_visible() else 1


class _Stopped(Exception):
    """The run is stopping (another stage failed, or Ctrl-C): end quietly."""


class _Pipe:
    """A bounded queue whose waits end when the run stops."""

    def __init__(self, size, stop):
        self._queue, self._stop = queue.Queue(size), stop

    def put(self, item):
        while not self._stop.is_set():
            try:
                return self._queue.put(item, timeout=0.05)
            except queue.Full:
                pass
        raise _Stopped

    def get(self):
        while not self._stop.is_set():
            try:
                return self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        raise _Stopped


class _Stage(threading.Thread):
    """A thread running ``work``; its error is kept, and stops the run."""

    def __init__(self, work, stop):
        super().__init__(daemon=True)
        self.work, self.stop, self.error = work, stop, None

    def run(self):
        try:
            self.work()
        except _Stopped:
            pass
        except BaseException as e:
            self.error = e
            self.stop.set()


def upscale_video(
    upscaler, src, dst, scale, size, codec, crf, overwrite, on_corrupt, batch, progress
):
    """``Upscaler.upscale_video``, which holds the defaults and the docs.
    Returns ``(input (w, h), output (w, h), frames, notes)``, sizes as a
    player shows them."""
    ext = os.path.splitext(os.fspath(dst))[1].lower()
    if not is_video(dst):
        raise ValueError(f"{dst}: a video output needs one of {', '.join(CONTAINERS)}")
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f"output {dst} exists (use --overwrite)")
    batch = default_batch(upscaler) if batch is None else batch
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    reader = VideoReader(src, on_corrupt)
    try:
        stored, shown, notes = _sizes(reader, scale, size, upscaler.max_pixels)
        with atomic_path(dst, suffix=ext) as tmp:
            writer = VideoWriter(tmp, CONTAINERS[ext], reader, stored, codec, crf)
            try:
                _run(upscaler, reader, writer, stored, batch, progress)
            finally:
                writer.abort()  # after close(): nothing; after an error: the file is dropped
    finally:
        reader.close()
    notes += reader.dropped
    if reader.skipped:
        notes.append(
            f"{reader.skipped} corrupt or missing frame{'s' * (reader.skipped > 1)} skipped"
        )
    return shown[0], shown[1], reader.decoded, notes


def _sizes(reader, scale, size, max_pixels):
    """``(stored, (input (w, h), output (w, h)), notes)``: the encoded frame
    size (H, W), even; the sizes as a player shows them, the rotation
    applied, as ``size`` (H, W) is given."""
    turned = reader.rotation % 180 == 90

    def shown(hw):  # (H, W) stored -> (w, h) shown
        return (hw[0], hw[1]) if turned else (hw[1], hw[0])

    if size is not None and turned:
        size = (size[1], size[0])
    want = output_size((reader.height, reader.width), scale, size)
    stored = encodable_size(*want)
    notes = []
    if stored != want:
        (w, h), (even_w, even_h) = shown(want), shown(stored)
        notes.append(f"{w}x{h} rounded to {even_w}x{even_h}: the encoder takes even sizes")
    if stored[0] * stored[1] > max_pixels:
        w, h = shown(stored)
        raise VideoError(f"frames of {w}x{h} would exceed the pixel limit of {max_pixels:,}")
    return stored, (shown((reader.height, reader.width)), shown(stored)), notes


def _upscaled(upscaler, items, size):
    """``items`` with each ``Frame``'s array upscaled to ``size`` (one batch)."""
    arrays = [item.array for item in items if isinstance(item, Frame)]
    outs = iter(upscaler.upscale_arrays(arrays, size=size))
    return [Frame(next(outs), item.pts) if isinstance(item, Frame) else item for item in items]


def _run(upscaler, reader, writer, size, batch, progress):
    """Decoding, the network and encoding, overlapped; raises the first
    stage's error (or the caller's Ctrl-C) after every thread has ended."""
    stop = threading.Event()
    decoded, upscaled = _Pipe(2 * batch + 16, stop), _Pipe(2 * batch + 16, stop)

    def decode():
        for item in reader:
            decoded.put(item)
        decoded.put(_END)

    def encode():
        while (item := upscaled.get()) is not _END:
            if isinstance(item, Frame):
                writer.write(*item)
            else:
                writer.copy(item)
        writer.close()

    stages = [_Stage(decode, stop), _Stage(encode, stop)]
    for stage in stages:
        stage.start()
    try:
        pending, frames, done, ended = [], 0, 0, False
        while not ended:
            item = decoded.get()
            ended = item is _END
            if not ended:
                pending.append(item)
                frames += isinstance(item, Frame)
            if frames == batch or (ended and pending):
                for out in _upscaled(upscaler, pending, size) if frames else pending:
                    upscaled.put(out)
                done += frames
                pending, frames = [], 0
                if progress is not None:
                    progress(done, reader.total)
        upscaled.put(_END)
        stages[1].join()
    except _Stopped:
        pass  # a stage failed: its error is raised below
    finally:
        stop.set()
        _join(stages)
    for stage in stages:
        if stage.error is not None:
            raise stage.error


def _join(stages):
    """Waits for every stage to end, even through a second Ctrl-C (raised
    after): closing the files under a running encoder could crash."""
    interrupted = None
    for stage in stages:
        while stage.is_alive():
            try:
                stage.join()
            except KeyboardInterrupt as e:
                interrupted = e
    if interrupted is not None:
        raise interrupted
