"""Run an exported VDSR ``.tflite`` model on device with LiteRT.

``LiteRTPredictor`` wraps ``ai_edge_litert.interpreter.Interpreter`` as the
``predictor`` of ``vdsr_tf.upscaler.Upscaler``, which adds colour handling,
tiling and the self-ensemble::

    from vdsr_tf.litert import LiteRTPredictor
    from vdsr_tf.upscaler import Upscaler

    sr = Upscaler(predictor=LiteRTPredictor("vdsr_int8.tflite")).upscale(image, scale=2)

This module needs numpy and ``ai-edge-litert`` only: neither TensorFlow nor
Keras is imported.
"""

import os

import numpy as np

_TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8


def _check_file(path):
    """Raises FileNotFoundError / ValueError unless ``path`` is a TFLite file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such TFLite model file: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != _TFLITE_IDENTIFIER:
        raise ValueError(f"{path} is not a TFLite model (no 'TFL3' flatbuffer identifier)")


def conv_kernel_sizes(path):
    """Kernel heights of a ``.tflite`` model's convolutions, in file order.

    Read from the flatbuffer with LiteRT's public schema module
    (``ai_edge_litert.schema_py_generated``): each CONV_2D or
    DEPTHWISE_CONV_2D operator's filter tensor, layout [out, kh, kw, in].

    Returns:
        A list of ints (empty when the model has no convolution).
    """
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAs(f.read(), 0)
    convs = (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # Newer files keep the code in BuiltinCode; old ones in the deprecated byte.
        codes.append(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
    sizes = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            if codes[op.OpcodeIndex()] in convs and op.InputsLength() >= 2:
                sizes.append(int(graph.Tensors(op.Inputs(1)).ShapeAsNumpy()[1]))
    return sizes


class LiteRTPredictor:
    """A ``.tflite`` VDSR model as an ``Upscaler`` predictor.

    Not thread-safe: one interpreter, resized in place when the input shape
    changes.

    Args:
        path: a ``.tflite`` file written by ``vdsr_tf.export.tflite``, with a
            float32 (1, H, W, 1) input and output (any quantization variant).
        num_threads: CPU threads of the interpreter.
        context: receptive-field radius in pixels; None computes it from the
            model's convolutions (``vdsr_tf.tiling.receptive_radius``).

    Attributes:
        context: int, receptive-field radius in pixels (20 for 20-layer VDSR).
        path: the model file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a TFLite model or not one float32 image in,
            one float32 image out.
        ImportError: if ``ai-edge-litert`` is not installed.
    """

    def __init__(self, path, num_threads=2, context=None):
        path = os.fspath(path)
        _check_file(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError("The LiteRT runner needs `pip install ai-edge-litert`") from e
        try:
            self._interpreter = Interpreter(model_path=path, num_threads=int(num_threads))
        except ValueError as e:
            raise ValueError(f"{path} is not a valid TFLite model: {e}") from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: expected 1 input and 1 output, got "
                             f"{len(inputs)} and {len(outputs)}")
        for kind, detail in (("input", inputs[0]), ("output", outputs[0])):
            shape = detail["shape_signature"]
            if detail["dtype"] != np.float32 or len(shape) != 4 or shape[-1] != 1:
                raise ValueError(f"{path}: the {kind} must be float32 (1, H, W, 1), got "
                                 f"{np.dtype(detail['dtype']).name} {list(shape)}")
        self._in = inputs[0]["index"]
        self._out = outputs[0]["index"]
        self._shape = None  # the shape tensors are allocated for
        self.path = path
        if context is None:
            from vdsr_tf.tiling import receptive_radius

            context = receptive_radius(conv_kernel_sizes(path))
        self.context = int(context)

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
        if x.shape != self._shape:
            self._interpreter.resize_tensor_input(self._in, list(x.shape))
            self._interpreter.allocate_tensors()
            self._shape = x.shape
        self._interpreter.set_tensor(self._in, x)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._out), dtype=np.float32)
