"""Run an exported VDSR ``.tflite`` model on device with LiteRT.

``LiteRTPredictor`` wraps ``ai_edge_litert.interpreter.Interpreter`` as the
``predictor`` of ``vdsr_tf.inference.upscaler.Upscaler``, which adds colour handling,
tiling and the self-ensemble::

    from vdsr_tf.inference.litert import LiteRTPredictor
    from vdsr_tf.inference.upscaler import Upscaler

    sr = Upscaler(predictor=LiteRTPredictor("vdsr_int8.tflite")).upscale(image, scale=2)

This module needs numpy and ``ai-edge-litert`` only: neither TensorFlow nor
Keras is imported.
"""

import contextlib
import os
import threading

import numpy as np

from vdsr_tf.io import stderr
from vdsr_tf.io.stderr import native_lines_dropped
from vdsr_tf.io.tflite_file import _check_file, conv_kernel_sizes


class LiteRTPredictor:
    """A ``.tflite`` VDSR model as an ``Upscaler`` predictor.

    One interpreter, resized in place when the input shape changes; calls
    from several threads take turns (a lock), so one predictor can be shared.

    A model with a static input (1, S, S, 1), which GPU and NPU delegates
    need (``vdsr-export --fixed_size=S``), runs any plane at least S pixels
    on each side through overlapping S x S windows (``tiling.fixed_windows``:
    the receptive-field rule of the ``Upscaler``, the last row and column
    flush with the image), which equals the whole-plane result to float
    rounding. A smaller plane goes to ``fallback`` (a dynamic-shape model);
    without one it is edge-padded to S and cropped, an approximation near
    the padded border (BUILD.md gives its measured difference).

    Args:
        path: a ``.tflite`` file written by ``vdsr_tf.export.tflite``, with a
            float32 (1, H, W, 1) input and output (any quantization variant;
            H and W dynamic, or static for delegates).
        num_threads: CPU threads of the interpreter; None uses every core
            this process may run on (its affinity mask). LiteRT's own
            default is one thread.
        context: receptive-field radius in pixels; None computes it from the
            model's convolutions (``vdsr_tf.ops.tiling.receptive_radius``).
        fallback: for a static model: a dynamic ``.tflite`` path (or a
            predictor) for planes smaller than the model's input.
        experimental_delegates: passed to the LiteRT ``Interpreter`` (GPU or
            NPU delegates, which need a static model).

    Attributes:
        context: int, receptive-field radius in pixels (20 for 20-layer VDSR).
        path: the model file.
        num_threads: the interpreter's thread count.
        fixed: ``(S_h, S_w)`` of a static model, else None.
        min_window: the same, for the ``Upscaler``: it widens its tile
            windows to at least this where the image allows.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a TFLite model or not one float32 image in,
            one float32 image out.
        ImportError: if ``ai-edge-litert`` is not installed.
    Example:

    ```python
    predictor = vdsr_tf.LiteRTPredictor("vdsr.tflite", num_threads=4)
    sr = vdsr_tf.Upscaler(predictor=predictor).upscale(image, scale=3)
    ```
    """

    def __init__(
        self, path, num_threads=None, context=None, fallback=None, experimental_delegates=None
    ):
        from vdsr_tf.inference.precision import default_threads

        path = os.fspath(path)
        num_threads = default_threads() if num_threads is None else num_threads
        _check_file(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError("The LiteRT runner needs `pip install ai-edge-litert`") from e
        try:
            self._interpreter = Interpreter(
                model_path=path,
                num_threads=int(num_threads),
                experimental_delegates=experimental_delegates,
            )
            self._delegated = False
        except ValueError as e:
            raise ValueError(f"{path} is not a valid TFLite model: {e}") from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{path}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}"
            )
        for kind, detail in (("input", inputs[0]), ("output", outputs[0])):
            shape = detail["shape_signature"]
            if detail["dtype"] != np.float32 or len(shape) != 4 or shape[-1] != 1:
                raise ValueError(
                    f"{path}: the {kind} must be float32 (1, H, W, 1), got "
                    f"{np.dtype(detail['dtype']).name} {list(shape)}"
                )
        self._lock = threading.Lock()
        self._in = inputs[0]["index"]
        self._out = outputs[0]["index"]
        self._shape = None  # the shape tensors are allocated for
        self.path = path
        self.num_threads = int(num_threads)
        if context is None:
            from vdsr_tf.ops.tiling import receptive_radius

            context = receptive_radius(conv_kernel_sizes(path))
        self.context = int(context)
        shape = [int(v) for v in inputs[0]["shape_signature"]]
        self.fixed = tuple(shape[1:3]) if min(shape[1:3]) > 0 else None
        self.min_window = self.fixed
        if self.fixed is not None:
            if shape[0] != 1:
                raise ValueError(f"{path}: a static model must take one image, got {shape}")
            if min(self.fixed) <= 2 * self.context:
                raise ValueError(
                    f"{path}: a {self.fixed[0]}x{self.fixed[1]} input leaves "
                    f"nothing inside the {self.context}-pixel context"
                )
            self._allocate()
            self._shape = (1, *self.fixed, 1)
        if isinstance(fallback, (str, os.PathLike)):
            fallback = LiteRTPredictor(fallback, num_threads=num_threads)
        if fallback is not None and getattr(fallback, "fixed", None):
            raise ValueError("the fallback must be a dynamic-shape model")
        self.fallback = fallback

    def __call__(self, x):
        """Runs the model on one batch.

        Args:
            x: float32 (N, h, w, 1) (N = 1 from ``Upscaler``): bicubic Y in
                about [0, 1].

        Returns:
            numpy float32 (N, h, w, 1): the SR Y (not clipped).
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] != 1 or min(x.shape) < 1:
            raise ValueError(f"Expected float32 (N, h, w, 1), got shape {x.shape}")
        with self._lock:
            if self.fixed is not None:
                return np.concatenate([self._static(plane[None]) for plane in x])
            return self._invoke(x)

    def _allocate(self):
        """``allocate_tensors``; the first one applies the CPU delegate, whose INFO
        line is dropped where TensorFlow's logging is quiet (``stderr.quiet``)."""
        first, self._delegated = not self._delegated, True
        with native_lines_dropped() if first and stderr.quiet() else contextlib.nullcontext():
            self._interpreter.allocate_tensors()

    def _invoke(self, x):
        """One interpreter call on ``x`` (resizing a dynamic model to it)."""
        if x.shape != self._shape:
            self._interpreter.resize_tensor_input(self._in, list(x.shape))
            self._allocate()
            self._shape = x.shape
        self._interpreter.set_tensor(self._in, x)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._out), dtype=np.float32)

    def _static(self, x):
        """A static model on one (1, h, w, 1) plane of any size."""
        (th, tw), (h, w) = self.fixed, x.shape[1:3]
        if h < th or w < tw:
            if self.fallback is not None:
                return self.fallback(x)
            # The approximation: edge-pad to the window, run, crop.
            padded = np.pad(
                x, ((0, 0), (0, max(th - h, 0)), (0, max(tw - w, 0)), (0, 0)), mode="edge"
            )
            return self._static(padded)[:, :h, :w]
        from vdsr_tf.ops.tiling import fixed_windows

        out = np.empty(x.shape, np.float32)
        for top, keep_top, keep_bottom in fixed_windows(h, th, self.context):
            for left, keep_left, keep_right in fixed_windows(w, tw, self.context):
                y = self._invoke(np.ascontiguousarray(x[:, top : top + th, left : left + tw]))
                out[:, keep_top:keep_bottom, keep_left:keep_right] = y[
                    :, keep_top - top : keep_bottom - top, keep_left - left : keep_right - left
                ]
        return out
