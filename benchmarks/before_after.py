"""The README's picture: Set5 butterfly x2, bicubic | bundled VDSR | original.

    python benchmarks/before_after.py [--weights=FILE] [--output=benchmarks/results/before_after_butterfly_x2.png]

Upscales the bundled sample's MATLAB LR x2 file with the MATLAB bicubic
baseline and with the model, and writes a centre crop of each beside the HR
image, zoomed x2 (``evaluate.comparison_strip``); prints both PSNRs on Y.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "Weights (default: the bundled ones).")
flags.DEFINE_string(
    "output",
    os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "before_after_butterfly_x2.png"
    ),
    "PNG to write.",
)
flags.DEFINE_integer("crop", 120, "Centre crop side (HR pixels).")


def main(argv):
    del argv
    from vdsr_tf.evaluation.benchmark import benchmark_pairs, comparison_strip
    from vdsr_tf.evaluation.metrics import psnr
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io.images import sample_images_dir, save_array

    pairs = {name: (lr, hr) for name, lr, hr in benchmark_pairs(sample_images_dir(), 2)}
    lr, hr = pairs["butterfly.png"]
    bicubic = Upscaler("bicubic").upscale(lr, size=hr.shape[:2])
    sr = Upscaler(FLAGS.weights, precision="fp32").upscale(lr, size=hr.shape[:2])
    save_array(comparison_strip(bicubic, sr, hr, crop=FLAGS.crop), FLAGS.output)
    print(
        f"bicubic {psnr(bicubic, hr, crop_border=2):.2f} dB, VDSR "
        f"{psnr(sr, hr, crop_border=2):.2f} dB -> {FLAGS.output}"
    )


if __name__ == "__main__":
    app.run(main)
