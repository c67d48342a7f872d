"""Fuzzing of the image path: damaged PNG, JPEG, GIF, WebP and TIFF files.

Real small images (crops of the bundled samples, in several modes, with EXIF,
an ICC profile, animation frames) are encoded in the five formats and
mutated: bit flips, byte overwrites, truncation, and header fields (width,
height, bit depth, colour type, chunk / segment / IFD lengths and offsets,
frame sizes). Each mutant goes, in-process,

* through the CLI's per-file path (``vdsr_tf.inference.batch.upscale_one``:
  decode, convert, upscale with a tiny untrained network, encode, write),
  and must end in a valid output file of the expected size or one clean
  ``FILE: error: ...`` line (``FileError``);
* with ``--saved_model=DIR``, through the SavedModel's ``upscale_image``
  signature, and must end in PNG bytes or ``InvalidArgumentError``.

Anything else is a crash; over ``--limit_s`` (10 s) is a hang; a file left in
the output folder after a failure, or any temporary file, is a stray file;
anything printed on stderr besides the one line (a C decoder's message) is
counted as ``stderr_output``.

    python tools/fuzz_images.py --cases=10000 --seed=0 [--saved_model=DIR --sm_cases=1000]

Prints a JSON summary (counts by format, mutation and outcome; the slowest
case; the first crashes with their tracebacks) and exits 1 if any case
crashed, hung or left a stray file.
"""

import argparse
import io
import json
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FORMATS = ("png", "jpg", "gif", "webp", "tif")
SIZE_VALUES = (0, 1, 2, 7, 255, 256, 4096, 65535, 65536, 1 << 24, (1 << 31) - 1, (1 << 32) - 1)
SCALE = 2.0


# -- seeds --------------------------------------------------------------------
def seed_files():
    """``{(format, variant): bytes}``: small real images to mutate."""
    from PIL import Image

    from vdsr_tf.io.images import sample_images_dir, srgb_profile

    with Image.open(os.path.join(sample_images_dir(), "HR", "butterfly.png")) as im:
        rgb = np.asarray(im.convert("RGB"))[100:124, 60:92]
    pictures = {
        "rgb": Image.fromarray(rgb),
        "grey": Image.fromarray(rgb[..., 1]),
        "rgba": Image.fromarray(np.dstack([rgb, rgb[..., :1]])),
        "palette": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=32),
    }
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "FuzzCam"
    frames = [Image.fromarray(np.roll(rgb, 5 * i, axis=1)) for i in range(3)]
    seeds = {}

    def encode(fmt, variant, im, **kwargs):
        buf = io.BytesIO()
        im.save(buf, format={"jpg": "JPEG", "tif": "TIFF"}.get(fmt, fmt.upper()), **kwargs)
        seeds[(fmt, variant)] = buf.getvalue()

    for variant in ("rgb", "grey", "rgba", "palette"):
        encode("png", variant, pictures[variant])
        encode("tif", variant, pictures[variant])
        encode("gif", variant, pictures[variant])
        encode("webp", variant, pictures[variant], lossless=variant != "rgb")
    encode("jpg", "rgb", pictures["rgb"], quality=90)
    encode("jpg", "grey", pictures["grey"], quality=90)
    encode("jpg", "exif_icc", pictures["rgb"], exif=exif.tobytes(), icc_profile=srgb_profile())
    encode("jpg", "progressive", pictures["rgb"], progressive=True)
    encode("jpg", "cmyk", pictures["rgb"].convert("CMYK"))
    encode("png", "exif_icc", pictures["rgb"], exif=exif.tobytes(), icc_profile=srgb_profile())
    encode("tif", "deflate", pictures["rgb"], compression="tiff_adobe_deflate")
    for fmt in ("gif", "webp", "png"):
        encode(
            fmt,
            "animated",
            frames[0],
            save_all=True,
            append_images=frames[1:],
            duration=[50, 60, 70],
            loop=0,
        )
    return seeds


# -- mutations ----------------------------------------------------------------
def _put(data, offset, value, width):
    if offset < 0 or offset + width > len(data):
        return data
    fmt = {1: ">B", 2: ">H", 4: ">I"}[width]
    return data[:offset] + struct.pack(fmt, value % (1 << (8 * width))) + data[offset + width :]


def _png_fields(data):
    """Offsets of PNG header fields and chunk lengths: [(offset, width)]."""
    fields = [(16, 4), (20, 4), (24, 1), (25, 1), (26, 1), (27, 1), (28, 1)]
    pos = 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        fields.append((pos, 4))
        kind = data[pos + 4 : pos + 8]
        if kind == b"fcTL":  # an APNG frame's width, height, x, y
            fields += [(pos + 12, 4), (pos + 16, 4), (pos + 20, 4), (pos + 24, 4)]
        pos += 12 + length
    return fields


def _jpeg_fields(data):
    fields, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        fields.append((pos + 2, 2))
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            fields += [(pos + 4, 1), (pos + 5, 2), (pos + 7, 2), (pos + 9, 1)]
        if marker == 0xDA:
            break
        pos += 2 + length
    return fields


def _gif_fields(data):
    fields = [(6, 2), (8, 2), (10, 1)]
    pos = data.find(b"\x2c", 13)
    while 0 <= pos < len(data) - 10 and len(fields) < 20:
        fields += [(pos + 1, 2), (pos + 3, 2), (pos + 5, 2), (pos + 7, 2), (pos + 9, 1)]
        pos = data.find(b"\x2c", pos + 10)
    return fields


def _webp_fields(data):
    fields, pos = [(4, 4)], 12
    while pos + 8 <= len(data):
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        fields.append((pos + 4, 4))
        kind = data[pos : pos + 4]
        if kind == b"VP8X":
            fields += [(pos + 12, 3), (pos + 15, 3)]
        elif kind == b"VP8L":
            fields.append((pos + 9, 4))  # 14-bit width - 1, 14-bit height - 1
        elif kind == b"VP8 ":
            fields += [(pos + 14, 2), (pos + 16, 2)]
        elif kind == b"ANMF":
            fields += [(pos + 14, 3), (pos + 17, 3)]
        pos += 8 + size + (size & 1)
    return fields


def _tiff_fields(data):
    """The value fields of IFD0's entries (width, height, bits, offsets, counts, ...)."""
    if len(data) < 8:
        return []
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return []
    count = struct.unpack(order + "H", data[ifd : ifd + 2])[0]
    fields = [(ifd, 2)]
    for i in range(min(count, 40)):
        entry = ifd + 2 + 12 * i
        fields += [(entry + 2, 2), (entry + 4, 4), (entry + 8, 4)]
    return fields


_FIELDS = {
    "png": _png_fields,
    "jpg": _jpeg_fields,
    "gif": _gif_fields,
    "webp": _webp_fields,
    "tif": _tiff_fields,
}
MUTATIONS = ("bitflip", "bytes", "truncate", "header", "header+truncate", "splice")


def mutate(data, fmt, kind, rng):
    """One mutant of ``data`` (a ``fmt`` file) by mutation ``kind``."""
    data = bytes(data)
    if kind == "bitflip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "bytes":
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        return bytes(b)
    if kind == "truncate":
        return data[: rng.randrange(1, len(data))]
    if kind == "splice":  # a block repeated or removed
        i, j = sorted(rng.randrange(len(data)) for _ in range(2))
        return data[:i] + data[i:j] * rng.randint(0, 3) + data[j:]
    fields = _FIELDS[fmt](data)
    if not fields:
        return mutate(data, fmt, "bitflip", rng)
    for _ in range(rng.randint(1, 2)):
        offset, width = rng.choice(fields)
        value = rng.choice(SIZE_VALUES + (rng.randrange(1 << (8 * width)),))
        if fmt in ("webp", "tif") and data[:2] != b"MM":  # little-endian fields
            packed = (value % (1 << (8 * width))).to_bytes(width, "little")
            data = (
                data[:offset] + packed + data[offset + width :]
                if offset + width <= len(data)
                else data
            )
        else:
            data = _put(data, offset, value, width)
    if kind == "header+truncate":
        data = data[: rng.randrange(max(len(data) // 2, 1), len(data) + 1)]
    return data


def cases(n, seed):
    """``n`` mutants: ``(format, variant, mutation, bytes)``, reproducible by seed."""
    rng = random.Random(seed)
    seeds = seed_files()
    keys = sorted(seeds)
    by_format = {f: [k for k in keys if k[0] == f] for f in FORMATS}
    for i in range(n):
        fmt = FORMATS[i % len(FORMATS)]
        key = rng.choice(by_format[fmt])
        kind = rng.choice(MUTATIONS)
        yield fmt, key[1], kind, mutate(seeds[key], fmt, kind, rng)


# -- drivers ------------------------------------------------------------------
def _category(message):
    """A short class of an error message, for the summary's tally."""
    if message.startswith("corrupt or truncated image: "):
        rest = message[len("corrupt or truncated image: ") :]
        head = rest.split(":")[0]
        return (
            f"corrupt ({head})"
            if head.isidentifier() or "." in head and " " not in head
            else "corrupt (OSError)"
        )
    return re.sub(r"\d[\d,]*", "N", message.split(" (")[0])[:48]


def _tiny_upscaler():
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.models.vdsr import build_vdsr

    # A tiny untrained network: the point is the file handling. The pixel
    # limit bounds what a forged header can make the network compute.
    return Upscaler(model=build_vdsr(depth=3, filters=8), tile=0, max_pixels=2_000_000)


def run_cli_path(n, seed, workdir, limit_s=10.0, log=None):
    """Drives ``n`` mutants through the CLI's per-file path; returns the summary."""
    from PIL import Image

    from vdsr_tf.inference.batch import FileError, upscale_one
    from vdsr_tf.io.images import quiet_decoders
    from vdsr_tf.ops.tiling import output_size

    upscaler = _tiny_upscaler()
    upscaler.upscale(np.zeros((8, 8, 3), np.uint8), scale=SCALE)  # TF's start-up logs first
    counts, errors, crashes, hangs, strays, chatter = {}, {}, [], [], [], []
    slowest = (0.0, None)
    stderr_sink = tempfile.TemporaryFile()
    for i, (fmt, variant, kind, data) in enumerate(cases(n, seed)):
        case_dir = os.path.join(workdir, "case")
        os.makedirs(case_dir, exist_ok=True)
        src = os.path.join(case_dir, f"in.{fmt}")
        with open(src, "wb") as f:
            f.write(data)
        out_fmt = "png" if fmt in ("jpg", "tif") and variant == "animated" else fmt
        dst = os.path.join(case_dir, f"out.{out_fmt}")
        start = time.monotonic()
        sys.stderr.flush()
        saved = os.dup(2)
        stderr_sink.seek(0)
        stderr_sink.truncate()
        os.dup2(
            stderr_sink.fileno(), 2
        )  # what would reach the terminal (the CLI's quiet_decoders is on)
        try:
            with quiet_decoders():
                upscale_one(upscaler, src, dst, SCALE, None)
            with warnings.catch_warnings():  # the fuzzer's own reads are not the CLI's output
                warnings.simplefilter("ignore")
                with Image.open(dst) as im:  # a valid output of the expected size
                    im.load()
                    w, h = im.size
                with Image.open(src) as im:
                    expected = output_size(im.size[::-1], SCALE)
            outcome = "output"
            if (h, w) != expected and (w, h) != expected:
                crashes.append(
                    {
                        "case": i,
                        "format": fmt,
                        "variant": variant,
                        "mutation": kind,
                        "error": f"output {w}x{h}, expected {expected[::-1]}",
                    }
                )
                outcome = "crash"
        except FileError as e:
            outcome = "error"
            kind_of = _category(str(e))
            errors[kind_of] = errors.get(kind_of, 0) + 1
            if "\n" in str(e):
                crashes.append(
                    {
                        "case": i,
                        "format": fmt,
                        "mutation": kind,
                        "error": f"multi-line message: {e!r}",
                    }
                )
        except Exception:  # noqa: BLE001 -- a crash is what the fuzzer looks for
            outcome = "crash"
            crashes.append(
                {
                    "case": i,
                    "format": fmt,
                    "variant": variant,
                    "mutation": kind,
                    "traceback": traceback.format_exc()[-2000:],
                }
            )
            with open(os.path.join(workdir, f"crash_{i}.{fmt}"), "wb") as f:
                f.write(data)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        stderr_sink.seek(0)
        printed = stderr_sink.read(2000)
        if printed:
            chatter.append(
                {
                    "case": i,
                    "format": fmt,
                    "mutation": kind,
                    "stderr": printed.decode("utf-8", "replace"),
                }
            )
        seconds = time.monotonic() - start
        if seconds > slowest[0]:
            slowest = (seconds, {"case": i, "format": fmt, "variant": variant, "mutation": kind})
        if seconds > limit_s:
            hangs.append({"case": i, "format": fmt, "mutation": kind, "seconds": seconds})
        left = sorted(os.listdir(case_dir))
        allowed = {os.path.basename(src)} | (
            {os.path.basename(dst)} if outcome == "output" else set()
        )
        if set(left) - allowed:
            strays.append(
                {"case": i, "format": fmt, "mutation": kind, "files": sorted(set(left) - allowed)}
            )
        shutil.rmtree(case_dir)
        key = f"{fmt}/{outcome}"
        counts[key] = counts.get(key, 0) + 1
        if log and (i + 1) % 1000 == 0:
            log(f"{i + 1} cases: {counts}")
    return {
        "cases": n,
        "counts": dict(sorted(counts.items())),
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "crashes": len(crashes),
        "hangs": len(hangs),
        "stray_files": len(strays),
        "stderr_output": len(chatter),
        "slowest_s": round(slowest[0], 3),
        "slowest_case": slowest[1],
        "first_crashes": crashes[:5],
        "first_hangs": hangs[:5],
        "first_strays": strays[:5],
        "first_stderr": chatter[:5],
    }


def run_saved_model(path, n, seed, limit_s=10.0, log=None):
    """Drives ``n`` mutants through the SavedModel's ``upscale_image``."""
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures["upscale_image"]
    return run_signature(fn, n, seed, limit_s, log)


def run_signature(fn, n, seed, limit_s=10.0, log=None):
    """``run_saved_model`` on a loaded ``upscale_image`` signature."""
    import tensorflow as tf

    counts, crashes, hangs = {}, [], []
    slowest = 0.0
    warm = seed_files()[("png", "rgb")]  # the first call builds the graph: not a case
    fn(image_bytes=tf.constant([warm]), scale=tf.constant([SCALE]))
    for i, (fmt, variant, kind, data) in enumerate(cases(n, seed + 1)):
        start = time.monotonic()
        try:
            out = fn(image_bytes=tf.constant([data]), scale=tf.constant([SCALE]))["png_bytes"]
            outcome = "output" if out.numpy()[0][:8] == b"\x89PNG\r\n\x1a\n" else "crash"
        except tf.errors.InvalidArgumentError:
            outcome = "error"
        except Exception:  # noqa: BLE001
            outcome = "crash"
            crashes.append(
                {
                    "case": i,
                    "format": fmt,
                    "variant": variant,
                    "mutation": kind,
                    "traceback": traceback.format_exc()[-2000:],
                }
            )
        seconds = time.monotonic() - start
        slowest = max(slowest, seconds)
        if seconds > limit_s:
            hangs.append({"case": i, "format": fmt, "mutation": kind, "seconds": seconds})
        key = f"{fmt}/{outcome}"
        counts[key] = counts.get(key, 0) + 1
        if log and (i + 1) % 250 == 0:
            log(f"{i + 1} SavedModel cases: {counts}")
    return {
        "cases": n,
        "counts": dict(sorted(counts.items())),
        "crashes": len(crashes),
        "hangs": len(hangs),
        "slowest_s": round(slowest, 3),
        "first_crashes": crashes[:5],
        "first_hangs": hangs[:5],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--saved_model", default=None, help="a SavedModel version folder")
    parser.add_argument("--sm_cases", type=int, default=1000)
    parser.add_argument("--limit_s", type=float, default=10.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    workdir = tempfile.mkdtemp(prefix="vdsr_fuzz_")
    started = time.monotonic()
    summary = {
        "seed": args.seed,
        "cli": run_cli_path(args.cases, args.seed, workdir, args.limit_s, log),
    }
    if args.saved_model:
        summary["saved_model"] = run_saved_model(
            args.saved_model, args.sm_cases, args.seed, args.limit_s, log
        )
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["crash_files_in"] = workdir
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    bad = sum(
        summary[k]["crashes"]
        + summary[k]["hangs"]
        + summary[k].get("stray_files", 0)
        + summary[k].get("stderr_output", 0)
        for k in ("cli", "saved_model")
        if k in summary
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
