"""Frames per second of ``vdsr-upscale`` on a video, per precision, on this machine.

    python benchmarks/video_speed.py [--cases=480p,720p] [--frames=2]
        [--paths=int8:litert,fp32:litert,fp32:keras,bf16:keras]

For each case a clip is written with PyAV (the bundled butterfly panning, a
stereo AAC tone; H.264 at 25 fps): 854 x 480 (480p) or 1280 x 720 (720p),
``--frames`` frames. Each path this machine runs (``precision:backend``;
bf16 needs a GPU or a CPU with AVX512-BF16 or AMX) upscales it x2 (960p,
1440p) with the bundled weights through ``Upscaler.upscale_video``, the path
``vdsr-upscale`` takes (``bicubic``: no network, the pipeline's own cost:
decoding, colour, MATLAB bicubic, encoding),
after a warm-up on a small clip (model load and tracing are not counted).
The time is the whole call: decoding, the network, encoding (libx264, CRF
18), writing. Prints a Markdown table (BUILD.md, "Video") and writes it as
JSON with the machine to ``--output``.
"""

import json
import os
import sys
import tempfile
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
CASES = {"480p": (854, 480), "720p": (1280, 720)}
flags.DEFINE_list("cases", list(CASES), "Input sizes: 480p, 720p.")
flags.DEFINE_integer("frames", 2, "Frames per timed clip.")
flags.DEFINE_list(
    "paths",
    ["int8:litert", "fp32:litert", "fp32:keras", "bf16:keras", "bicubic"],
    "precision:backend pairs, and bicubic.",
)
flags.DEFINE_string("output", None, "JSON file for the results (default: none).")


def write_clip(path, size, frames):
    """An H.264 + AAC clip of ``frames`` frames of ``size`` (w, h)."""
    import av
    import numpy as np
    from PIL import Image

    from vdsr_tf.io.images import sample_images_dir

    w, h = size
    canvas = np.asarray(
        Image.open(os.path.join(sample_images_dir(), "HR", "butterfly.png"))
        .convert("RGB")
        .resize((w + frames, h))
    )
    with av.open(path, "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(canvas[:, i : i + w]), "rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = (0.3 * np.sin(np.arange(48000 * frames // 25) * 2 * np.pi * 440 / 48000)).astype(
            np.float32
        )
        for start in range(0, len(tone), 1024):
            part = tone[start : start + 1024]
            frame = av.AudioFrame.from_ndarray(np.stack([part, part]), "fltp", "stereo")
            frame.sample_rate, frame.pts = 48000, start
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))


def paths():
    """The ``(precision, backend)`` pairs of ``--paths`` this machine runs
    (``(None, None)`` for bicubic)."""
    from vdsr_tf.inference.engines import check_path

    found = []
    for pair in FLAGS.paths:
        if pair == "bicubic":
            found.append((None, None))
            continue
        precision, backend = pair.split(":")
        try:
            check_path(backend, precision)
        except ValueError as e:
            print(f"skipped {pair}: {e}", file=sys.stderr)
            continue
        found.append((precision, backend))
    return found


def main(argv):
    del argv
    from vdsr_tf.inference.engines import gpu_visible
    from vdsr_tf.inference.precision import cpu_info
    from vdsr_tf.inference.upscaler import Upscaler

    machine = f"{cpu_info()[0]}, {len(os.sched_getaffinity(0))} cores" + (
        ", GPU visible" if gpu_visible() else ""
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        warm = os.path.join(folder, "warm.mp4")
        write_clip(warm, (64, 48), 2)
        clips = {}
        for case in FLAGS.cases:
            clips[case] = os.path.join(folder, f"{case}.mp4")
            write_clip(clips[case], CASES[case], FLAGS.frames)
        for precision, backend in paths():
            if precision is None:
                up = Upscaler(weights="bicubic")
            else:
                up = Upscaler(precision=precision, backend=backend)
            up.upscale_video(warm, os.path.join(folder, "warm_x2.mp4"), scale=2, overwrite=True)
            for case in FLAGS.cases:
                start = time.perf_counter()
                _, (ow, oh), frames, _ = up.upscale_video(
                    clips[case], os.path.join(folder, "out.mp4"), scale=2, overwrite=True
                )
                seconds = time.perf_counter() - start
                rows.append(
                    {
                        "case": f"{case} -> {oh}p ({ow}x{oh})",
                        "path": up.describe().split(":")[0].split(" (")[0],
                        "frames": frames,
                        "seconds": round(seconds, 2),
                        "fps": round(frames / seconds, 4),
                        "seconds_per_frame": round(seconds / frames, 2),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"machine: {machine}")
    print("| input -> output | path | frames | fps | s / frame |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['path']} | {r['frames']} | {r['fps']:.3f} | "
            f"{r['seconds_per_frame']:.1f} |"
        )
    if FLAGS.output:
        from vdsr_tf.io.atomic import atomic_write_text

        atomic_write_text(
            FLAGS.output, json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    app.run(main)
