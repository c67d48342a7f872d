"""Winograd F(4x4, 3x3) for VDSR's 64 -> 64 layers, built from matrix
products, timed against direct convolution in the same run.

    python benchmarks/winograd_probe.py [--size=512] [--repeats=3]

One hidden layer (3x3, 64 -> 64, bias, ReLU, zero "same" padding) on a
size x size plane, four ways:

* direct: ``tf.nn.conv2d`` (oneDNN), the Keras path's kernel, and the same
  layer as a LiteRT fp32 model (XNNPACK), the CPU default's kernel;
* Winograd, TF graph: the input transform B^T d B and the output transform
  A^T m A as sums of strided slices, the 36 products as one batched
  ``tf.matmul`` of (P, 64) x (64, 64);
* the same under XLA (``jit_compile=True``), which fuses the transforms;
* Winograd, numpy: strips of tile rows (so a strip's 36 transformed planes
  stay in cache), each transform one matrix product with the 36 x 36 /
  16 x 36 Kronecker matrices, the 36 products one batched ``np.matmul``
  (OpenBLAS).

F(4x4, 3x3) needs 36 multiplications per 16 outputs instead of 144 (4x fewer)
but its transforms move 36/16 = 2.25 times the activations through memory
twice per layer, and (P, 64) x (64, 64) products are memory-bound. Prints a
markdown table: ms per layer, the speed against direct, and the largest
difference from direct.
"""

import os
import sys

import numpy as np
from absl import app, flags
from timing import median_seconds

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 512, "Plane side in pixels.")
flags.DEFINE_integer("repeats", 3, "Timed calls per case (median).")
flags.DEFINE_integer("strip", 8, "numpy variant: tile rows per strip.")

# Lavin & Gray (2016), F(4x4, 3x3): interpolation points 0, +-1, +-2, inf.
BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float64,
)
G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    np.float64,
)
AT = np.array(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64
)


def transformed_kernel(kernel):
    """(3, 3, C, K) -> (36, C, K): G g G^T for every channel pair, index 6i + j."""
    u = np.einsum("ia,jb,abck->ijck", G, G, kernel.astype(np.float64))
    return u.reshape(36, *kernel.shape[2:]).astype(np.float32)


def _combine(matrix, parts):
    """``[sum_k matrix[i, k] * parts[k] for i]``, skipping zero coefficients."""
    out = []
    for row in matrix:
        terms = [
            p if c == 1 else -p if c == -1 else p * float(c) for c, p in zip(row, parts) if c != 0
        ]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        out.append(total)
    return out


def tf_layer(x, u, bias):
    """Winograd layer in TF ops: x float32 (1, H, W, C) -> (1, H, W, K)."""
    import tensorflow as tf

    h, w, k = x.shape[1], x.shape[2], u.shape[-1]
    th, tw = -(-h // 4), -(-w // 4)
    xp = tf.pad(x, [[0, 0], [1, 4 * th + 1 - h], [1, 4 * tw + 1 - w], [0, 0]])
    rows = _combine(BT, [xp[:, r : r + 4 * th : 4] for r in range(6)])
    v = []
    for z in rows:
        v += _combine(BT, [z[:, :, s : s + 4 * tw : 4] for s in range(6)])
    m = tf.matmul(tf.stack([tf.reshape(t, [-1, x.shape[-1]]) for t in v]), u)
    m = [tf.reshape(m[i], [1, th, tw, k]) for i in range(36)]
    by_row = [_combine(AT, m[6 * i : 6 * i + 6]) for i in range(6)]  # [i][b]
    out = [_combine(AT, [by_row[i][b] for i in range(6)]) for b in range(4)]  # [b][a]
    y = tf.stack([tf.stack([out[b][a] for b in range(4)], 3) for a in range(4)], 2)
    y = tf.reshape(y, [1, 4 * th, 4 * tw, k])[:, :h, :w]
    return tf.nn.relu(y + bias)


def numpy_layer(xp, h, w, u, bias, out, strip):
    """Winograd layer in numpy, strip by strip.

    xp: float32 (4*th + 2, 4*tw + 2, C), the input with a zero border (one
    pixel top/left, the rest bottom/right); out: the same shape, written
    likewise (its border zeroed), ready to be the next layer's input.
    """
    kb = np.kron(BT, BT).astype(np.float32)  # (36, 36)
    ka = np.kron(AT, AT).astype(np.float32)  # (16, 36)
    th, tw, c = -(-h // 4), -(-w // 4), xp.shape[-1]
    for t0 in range(0, th, strip):
        t1 = min(th, t0 + strip)
        d = np.empty((36, t1 - t0, tw, c), np.float32)
        for r in range(6):
            rows = xp[4 * t0 + r : 4 * t1 + r : 4]
            for s in range(6):
                d[6 * r + s] = rows[:, s : s + 4 * tw : 4]
        v = (kb @ d.reshape(36, -1)).reshape(36, -1, c)
        y = (ka @ np.matmul(v, u).reshape(36, -1)).reshape(4, 4, t1 - t0, tw, -1)
        y += bias
        np.maximum(y, 0, out=y)
        dst = out[1 + 4 * t0 : 1 + 4 * t1, 1 : 1 + 4 * tw]
        for a in range(4):
            for b in range(4):
                dst[a::4, b::4] = y[a, b]
    out[1 + h :] = 0
    out[:, 1 + w :] = 0


def litert_layer(kernel, bias, x):
    """The layer as a one-op LiteRT fp32 model: a callable running it on x."""
    import tempfile

    import keras
    from ai_edge_litert.interpreter import Interpreter

    from vdsr_tf.export.tflite import export_tflite

    inputs = keras.Input((None, None, kernel.shape[2]))
    conv = keras.layers.Conv2D(kernel.shape[3], 3, padding="same", activation="relu")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([kernel, bias])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.tflite")
        export_tflite(model, path)
        interpreter = Interpreter(model_path=path, num_threads=2)
    index_in = interpreter.get_input_details()[0]["index"]
    index_out = interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(index_in, list(x.shape))
    interpreter.allocate_tensors()

    def run():
        interpreter.set_tensor(index_in, x)
        interpreter.invoke()
        return interpreter.get_tensor(index_out)

    return run


def main(argv):
    del argv
    import tensorflow as tf

    size, c = FLAGS.size, 64
    rng = np.random.default_rng(0)
    kernel = (rng.standard_normal((3, 3, c, c)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    bias = (rng.standard_normal(c) * 0.01).astype(np.float32)
    x = rng.random((1, size, size, c), dtype=np.float32)
    u = transformed_kernel(kernel)

    direct = tf.function(lambda a: tf.nn.relu(tf.nn.conv2d(a, kernel, 1, "SAME") + bias))
    graph = tf.function(lambda a: tf_layer(a, tf.constant(u), tf.constant(bias)))
    xla = tf.function(lambda a: tf_layer(a, tf.constant(u), tf.constant(bias)), jit_compile=True)
    th = -(-size // 4)
    xp = np.zeros((4 * th + 2, 4 * th + 2, c), np.float32)
    xp[1 : size + 1, 1 : size + 1] = x[0]
    out = np.zeros_like(xp)

    xt = tf.constant(x)
    reference = direct(xt).numpy()
    xnnpack = litert_layer(kernel, bias, x)
    cases = {
        "direct (tf.nn.conv2d, oneDNN)": (lambda: direct(xt).numpy(), lambda: reference),
        "direct (LiteRT fp32, XNNPACK)": (xnnpack, xnnpack),
        "Winograd F(4,3), TF graph": (lambda: graph(xt).numpy(), lambda: graph(xt).numpy()),
        "Winograd F(4,3), TF + XLA": (lambda: xla(xt).numpy(), lambda: xla(xt).numpy()),
        f"Winograd F(4,3), numpy strips of {FLAGS.strip} tile rows": (
            lambda: numpy_layer(xp, size, size, u, bias, out, FLAGS.strip),
            lambda: (
                numpy_layer(xp, size, size, u, bias, out, FLAGS.strip),
                out[None, 1 : size + 1, 1 : size + 1],
            )[1],
        ),
    }
    print(
        f"One 3x3 64->64 layer on a {size}x{size} plane, {os.cpu_count()} CPUs, "
        f"median of {FLAGS.repeats}\n"
    )
    print("| variant | ms | vs direct | max abs difference from direct |\n|---|---|---|---|")
    base = None
    for name, (run, result) in cases.items():
        seconds = median_seconds(run, FLAGS.repeats)
        base = base or seconds
        diff = float(np.abs(result() - reference).max())
        print(f"| {name} | {seconds * 1e3:,.0f} | {base / seconds:.2f}x | {diff:.1e} |")
        sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
