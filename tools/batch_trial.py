"""A batch tried as a new user would: 50 mixed photos, a stop part-way, a rerun.

    python tools/batch_trial.py [--photos=DIR] [--stop_after=20] [--signal=INT]

Makes a folder of 50 photos (B100's 240x160 LR images from $VDSR_DATA_DIR,
or the bundled samples repeated): JPEG, PNG and WebP in turn, the last one
truncated. Runs the installed command as a user types it,

    vdsr-upscale PHOTOS --scale=2 --output=OUT --report=OUT/run.json

(bundled weights, the default precision), sends it Ctrl-C (or SIGTERM)
once ``--stop_after`` outputs are written, then runs the same command
again. Prints what each run did and checks what the issue asks: the first
run stops with 130 (143), leaves only whole files and a report; the rerun
writes exactly the files not done, keeps the others untouched, fails the
corrupt one (exit 1), and its report lists all 50.
"""

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_photos(folder, source, n=50):
    """``n`` photos in ``folder`` from the images in ``source``; the last one
    truncated. Returns the truncated file's name."""
    images = sorted(
        os.path.join(source, f) for f in os.listdir(source) if f.lower().endswith(".png")
    )
    os.makedirs(folder)
    for i in range(n):
        ext = ("jpg", "png", "webp")[i % 3]
        with Image.open(images[i % len(images)]) as im:
            data = io.BytesIO()
            im.convert("RGB").save(data, format={"jpg": "JPEG"}.get(ext, ext.upper()), quality=92)
        data = data.getvalue()
        if i == n - 1:
            data = data[: len(data) // 3]
        with open(os.path.join(folder, f"photo_{i:02d}.{ext}"), "wb") as f:
            f.write(data)
    return f"photo_{n - 1:02d}.{ext}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = os.environ.get("VDSR_DATA_DIR", os.path.join(REPO, "..", "shared", "datasets"))
    default = os.path.join(data, "B100", "LR_bicubic", "X2")
    if not os.path.isdir(default):
        default = os.path.join(REPO, "vdsr_tf", "samples", "LR_bicubic", "X2")
    parser.add_argument("--photos", default=default, help="a folder of PNG images to draw from")
    parser.add_argument("--stop_after", type=int, default=20)
    parser.add_argument("--signal", choices=["INT", "TERM"], default="INT")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    sig = getattr(signal, "SIG" + args.signal)

    work = tempfile.mkdtemp(prefix="vdsr_batch_trial_")
    photos, out = os.path.join(work, "photos"), os.path.join(work, "big")
    corrupt = make_photos(photos, args.photos)
    report = os.path.join(out, "run.json")
    command = shutil.which("vdsr-upscale") or os.path.join(os.path.dirname(sys.executable),
                                                            "vdsr-upscale")  # fmt: skip
    cmd = [command, photos, "--scale=2", f"--output={out}", f"--report={report}"]
    print("command:", " ".join(os.path.relpath(c, work) if c.startswith(work) else c
                               for c in cmd))  # fmt: skip

    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(args.stop_after):
        proc.stdout.readline()
    proc.send_signal(sig)
    _, err1 = proc.communicate()
    first_s = time.monotonic() - start
    first = json.load(open(report))
    done = {f["output"] for f in first["files"] if f["status"] == "written"}
    stamps = {p: os.stat(p).st_mtime_ns for p in done}
    on_disk = sorted(n for n in os.listdir(out) if n != "run.json")

    start = time.monotonic()
    again = subprocess.run(cmd, capture_output=True, text=True)
    second_s = time.monotonic() - start
    second = json.load(open(report))

    failed = [f for f in second["files"] if f["status"] == "failed"]
    checks = {
        f"first run exits {128 + sig}": proc.returncode == 128 + sig,
        "first report: stopped, every file listed": not first["complete"]
        and len(first["files"]) == 50,
        "only whole outputs on disk after the stop": on_disk
        == sorted(os.path.basename(p) for p in done),
        "rerun exits 1 (the corrupt file)": again.returncode == 1,
        "rerun report lists all 50": len(second["files"]) == 50 and second["complete"],
        "rerun keeps the first run's outputs untouched": all(
            os.stat(p).st_mtime_ns == stamps[p] for p in done
        )
        and second["counts"]["kept"] == len(done),
        "rerun writes exactly the rest": second["counts"]["written"] == 49 - len(done),
        "the corrupt file is the one failure": [os.path.basename(f["input"]) for f in failed]
        == [corrupt],
        "no temporary files": not [n for n in os.listdir(out) if n.startswith(".")],
    }
    print(f"first run:  {first_s:.1f} s, exit {proc.returncode}, counts {first['counts']}")
    print("  " + err1.strip().splitlines()[-2])
    print("  " + err1.strip().splitlines()[-1])
    print(f"second run: {second_s:.1f} s, exit {again.returncode}, counts {second['counts']}")
    print("  " + again.stderr.strip().splitlines()[-1])
    print(f"  network: {second['options']['network']}")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if args.keep:
        print("work folder:", work)
    else:
        shutil.rmtree(work)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
