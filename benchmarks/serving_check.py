"""The SavedModel against vdsr-upscale, and its memory on a full-HD request.

    python benchmarks/serving_check.py [--data_dir=$DATA] [--weights=FILE]

Exports the model (default: the bundled weights) to a temporary folder, then

* runs ``upscale_image`` on every Set5 LR file at x2/x3/x4 and compares the PNGs
  with ``vdsr_tf.Upscaler(precision="fp32")`` (what ``vdsr-upscale --precision=fp32``
  writes): share of differing
  values and the largest difference, per scale;
* in a fresh process, sends one 1920x1080 RGB PNG at x2 and reports the
  process's peak RSS and the time.

Prints a Markdown table for BUILD.md.
"""

import io
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "datasets")
flags.DEFINE_string("data_dir", _DATA, "Folder with Set5/LR_bicubic/X{2,3,4}.")
flags.DEFINE_string("weights", None, "Weights file; default: the bundled weights.")

_REQUEST = """
import io, resource, sys, time
import numpy as np, tensorflow as tf
from PIL import Image
loaded = tf.saved_model.load(sys.argv[1])
image = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3)).astype(np.uint8)
buf = io.BytesIO(); Image.fromarray(image).save(buf, format="PNG")
start = time.time()
png = loaded.signatures["upscale_image"](image_bytes=tf.constant([buf.getvalue()]),
                                         scale=tf.constant([2.0]))["png_bytes"].numpy()[0]
shape = np.asarray(Image.open(io.BytesIO(png))).shape
print(shape[0], shape[1], round(time.time() - start, 1),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def main(argv):
    del argv
    import tensorflow as tf
    from PIL import Image

    from vdsr_tf.export.saved_model import export_saved_model
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io.images import list_images, read_image
    from vdsr_tf.models.loading import load_pretrained

    model = load_pretrained(FLAGS.weights)
    folder = export_saved_model(model, tempfile.mkdtemp(), overwrite=True)
    loaded = tf.saved_model.load(folder)
    upscaler = Upscaler(model=model)
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print("| Set5 | values | differing | max difference |\n|---|---|---|---|")
    for scale in (2, 3, 4):
        total = differing = worst = 0
        for path in list_images(os.path.join(FLAGS.data_dir, "Set5", "LR_bicubic", f"X{scale}")):
            with open(path, "rb") as f:
                png = loaded.signatures["upscale_image"](
                    image_bytes=tf.constant([f.read()]), scale=tf.constant([float(scale)])
                )["png_bytes"].numpy()[0]
            served = np.asarray(Image.open(io.BytesIO(png))).astype(int)
            local = upscaler.upscale(read_image(path), scale=scale).astype(int)
            diff = np.abs(served - local)
            total, differing = total + diff.size, differing + int((diff > 0).sum())
            worst = max(worst, int(diff.max()))
        print(
            f"| x{scale} | {total:,} | {differing:,} ({100 * differing / total:.4f} %) | {worst} |"
        )
    out = subprocess.run(
        [sys.executable, "-c", _REQUEST, folder], capture_output=True, text=True, check=True
    ).stdout.split()
    print(
        f"\n1920x1080 x2 request: output {out[1]}x{out[0]}, {out[2]} s, "
        f"peak RSS {out[3]} MB (fresh process: TensorFlow, the SavedModel, the request)"
    )


if __name__ == "__main__":
    app.run(main)
