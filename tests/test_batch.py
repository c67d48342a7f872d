"""Batches as people run them: stop, rerun, reports, encoder options, Unix conventions.

The library's batch (``Upscaler.upscale_files``, ``vdsr_tf.inference.batch``)
runs in-process with the bicubic upscaler (no network: these tests are about
files, not pixels); the command's own behaviour (signals, exit codes, messages,
standard input and output) runs ``vdsr-upscale`` as a subprocess.
"""

import errno
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vdsr_tf.cli import batch as cli_batch
from vdsr_tf.inference import batch
from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io.images import srgb_profile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def up():
    return Upscaler("bicubic")


def _photo(size=(40, 30)):
    """A smooth RGB image (compresses like a photo, not like noise)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h) + 60], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def mixed_folder(folder, n=50, size=(40, 30), corrupt=1):
    """``n`` photos in JPEG, PNG and WebP (the last ``corrupt`` of them damaged);
    returns the file names in the order a batch takes them."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        ext = ("jpg", "png", "webp")[i % 3]
        name = f"photo_{i:02d}.{ext}"
        path = folder / name
        if i >= n - corrupt:
            data = io.BytesIO()
            _photo(size).save(data, format="JPEG" if ext == "jpg" else ext.upper())
            path.write_bytes(data.getvalue()[: len(data.getvalue()) // 3])  # truncated
        else:
            _photo(size).save(path)
        names.append(name)
    return sorted(names)


def run_cli(*args, stdin=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "vdsr_tf.cli.upscale", *args],
        env=dict(os.environ, PYTHONPATH=REPO),
        input=stdin,
        capture_output=True,
        timeout=300,
        cwd=cwd,
    )


# -- the library's batch ------------------------------------------------------


def test_a_rerun_keeps_what_exists_and_does_the_rest(tmp_path, up):
    src = tmp_path / "in"
    names = mixed_folder(src, n=6, corrupt=1)
    out = tmp_path / "out"
    out.mkdir()
    _photo().save(out / names[0])  # "done" by an earlier run (its content is kept)
    kept_bytes = (out / names[0]).read_bytes()
    report = tmp_path / "run.json"
    result = up.upscale_files(src, out, scale=2, report=report)
    assert result.status == 1  # the corrupt file
    statuses = [f["status"] for f in result.files]
    assert statuses == ["kept", "written", "written", "written", "written", "failed"]
    assert (out / names[0]).read_bytes() == kept_bytes
    assert json.loads(report.read_text()) == json.loads(json.dumps(result.as_dict()))
    # Again: everything that was written is kept; only the corrupt file is tried again.
    again = up.upscale_files(src, out, scale=2, report=report)
    assert [f["status"] for f in again.files] == ["kept"] * 5 + ["failed"]
    assert again.counts == {"written": 0, "kept": 5, "failed": 1, "not processed": 0}
    # existing="overwrite" redoes them; "fail" makes each a failure.
    redo = up.upscale_files(src, out, scale=3, existing="overwrite")
    assert redo.counts["written"] == 5
    assert Image.open(out / names[0]).size == (120, 90)
    failing = up.upscale_files(src, out, scale=2, existing="fail")
    assert failing.counts["failed"] == 6 and failing.status == 1
    assert "exists" in failing.files[0]["error"]


def test_the_report_records_every_file(tmp_path, up):
    src = tmp_path / "in"
    mixed_folder(src, n=4, corrupt=1)
    (src / "notes.txt").write_text("not an image")
    report = tmp_path / "out" / "report.json"  # in the output folder the batch makes
    up.upscale_files(src, tmp_path / "out", scale=2, report=str(report), fmt="png")
    data = json.loads(report.read_text())
    assert data["complete"] and data["stopped"] is None and data["exit_status"] == 1
    assert data["counts"] == {"written": 3, "kept": 0, "failed": 1, "not processed": 0}
    assert data["skipped"] == [str(src / "notes.txt")]
    assert data["options"]["format"] == "png" and data["options"]["scale"] == 2
    assert data["options"]["network"] == "bicubic (no network)"
    written = [f for f in data["files"] if f["status"] == "written"]
    for f in written:
        assert f["output_bytes"] == os.path.getsize(f["output"])
        assert f["input_bytes"] == os.path.getsize(f["input"])
        assert f["output_size"] == [80, 60] and f["input_size"] == [40, 30]
        assert f["seconds"] >= 0 and f["frames"] == 1
    failed = [f for f in data["files"] if f["status"] == "failed"]
    assert len(failed) == 1 and "corrupt or truncated" in failed[0]["error"]
    assert not os.path.exists(failed[0]["output"])
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary file


def test_a_stopped_batch_writes_its_report_and_a_rerun_finishes_it(tmp_path, up):
    src = tmp_path / "in"
    mixed_folder(src, n=8, corrupt=0)
    out, report = tmp_path / "out", tmp_path / "run.json"
    seen = []

    def stop_after_three(record):
        seen.append(record["input"])
        if len(seen) == 3:
            raise batch.Stopped(signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt) as stopped:
        up.upscale_files(src, out, scale=2, report=report, on_file=stop_after_three)
    assert stopped.value.result.status == 143
    data = json.loads(report.read_text())
    assert not data["complete"] and data["stopped"] == "SIGTERM" and data["exit_status"] == 143
    assert data["counts"] == {"written": 3, "kept": 0, "failed": 0, "not processed": 5}
    assert len(os.listdir(out)) == 3
    rerun = up.upscale_files(src, out, scale=2, report=report)
    assert rerun.status == 0
    assert rerun.counts == {"written": 5, "kept": 3, "failed": 0, "not processed": 0}
    assert [f["status"] for f in rerun.files] == ["kept"] * 3 + ["written"] * 5


def test_a_killed_runs_temporary_files_are_removed(tmp_path, up):
    src = tmp_path / "in"
    mixed_folder(src, n=2, corrupt=0)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    stale = out / f".photo_00.jpg.{dead}-0123abcd.tmp"
    stale.write_bytes(b"half a file")
    live = out / f".photo_01.png.{os.getppid()}-0123abcd.tmp"  # a running writer's
    other = out / f".notes.txt.{dead}-0123abcd.tmp"  # not one of this batch's outputs
    live.write_bytes(b"being written")
    other.write_bytes(b"someone else's")
    assert up.upscale_files(src, out, scale=2).status == 0
    assert sorted(os.listdir(out)) == sorted(
        ["photo_00.jpg", "photo_01.png", live.name, other.name]
    )


def test_a_full_disk_stops_with_a_complete_report(tmp_path, up, monkeypatch):
    src = tmp_path / "in"
    mixed_folder(src, n=4, corrupt=0)
    out, report = tmp_path / "out", tmp_path / "run.json"

    def full(im, fp, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    result = up.upscale_files(src, out, scale=2, report=report)
    data = json.loads(report.read_text())
    assert result.status == 1 and data["stopped"] == "nothing more can be written"
    assert data["counts"] == {"written": 0, "kept": 0, "failed": 1, "not processed": 3}
    assert os.listdir(out) == []


def test_a_report_that_cannot_be_written_is_an_error(tmp_path, up, monkeypatch, capsys):
    src = tmp_path / "in"
    mixed_folder(src, n=2, corrupt=0)
    out = tmp_path / "out"
    work = batch.plan([str(src)], str(out))

    def refuse(self, path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(batch.BatchResult, "write", refuse)
    status = cli_batch.run_batch(
        up, work.files, work.destinations, 2, report=str(tmp_path / "r.json")
    )
    err = capsys.readouterr().err
    assert status == 1 and "error: cannot write --report" in err and "2 written" in err


def test_suffix_writes_beside_the_inputs_and_never_over_them(tmp_path, up):
    src = tmp_path / "photos"
    mixed_folder(src, n=3, corrupt=0)
    first = up.upscale_files(src, src, scale=2, suffix="_x2")
    assert first.counts["written"] == 3
    assert sorted(os.listdir(src)) == [
        "photo_00.jpg", "photo_00_x2.jpg", "photo_01.png", "photo_01_x2.png",
        "photo_02.webp", "photo_02_x2.webp",
    ]  # fmt: skip
    # The outputs of the first run are not inputs of the second: all three kept.
    again = up.upscale_files(src, src, scale=2, suffix="_x2")
    assert again.counts == {"written": 0, "kept": 3, "failed": 0, "not processed": 0}
    assert sorted(again.skipped) == sorted(str(src / n) for n in os.listdir(src) if "_x2" in n)
    with pytest.raises(batch.BatchError, match="would be written over itself"):
        up.upscale_files(src / "photo_00.jpg", src / "photo_00.jpg", scale=2)
    with pytest.raises(
        batch.BatchError, match="over itself; choose another --output or a --suffix"
    ):
        up.upscale_files(src, src, scale=2)
    other = tmp_path / "photo_00.png"  # photo_00.jpg's output, were it written as png here
    _photo().save(other)
    with pytest.raises(batch.BatchError, match="--overwrite would replace it"):
        up.upscale_files(
            [src / "photo_00.jpg", other], tmp_path, scale=2, fmt="png", existing="overwrite"
        )
    kept = up.upscale_files([src / "photo_00.jpg", other], tmp_path, scale=2, fmt="png")
    assert kept.counts["kept"] == 1 and kept.skipped == [str(other)]
    for bad in ("a/b", "..", "."):
        with pytest.raises(batch.BatchError, match="must be part of a file name"):
            up.upscale_files(src, tmp_path / "o", scale=2, suffix=bad)
    with pytest.raises(batch.BatchError, match="names outputs in a folder"):
        up.upscale_files(src / "photo_01.png", tmp_path / "one.png", scale=2, suffix="_x2")


def test_bad_batches_are_refused_before_any_work(tmp_path, up):
    src = tmp_path / "in"
    mixed_folder(src, n=2, corrupt=0)
    out = tmp_path / "out"
    cases = [
        (dict(existing="never"), "existing must be one of skip, overwrite, fail"),
        (dict(scale=1.0), "must be a number > 1"),
        (dict(report=str(tmp_path)), "is a folder"),
        (dict(report=str(tmp_path / "no" / "r.json")), "does not exist"),
        (dict(report=str(out / "photo_01.png")), "is also an image output"),
        (dict(report=str(out / "x" / "r.json")), "does not exist"),
        (dict(quality=0), "quality must be an integer from 1 to 100"),
        (dict(quality=95.5), "quality must be an integer"),
        (dict(compression=10), "compression must be an integer from 0 to 9"),
        (dict(fmt="png", quality=90), "quality applies to jpg and webp"),
        (dict(fmt="jpg", compression=3), "compression applies to png"),
        (dict(fmt="psd"), "unknown format"),
    ]
    for options, message in cases:
        options.setdefault("scale", 2)
        with pytest.raises(batch.BatchError, match=message):
            up.upscale_files(src, out, **options)
    assert not out.exists()


# -- encoder options ----------------------------------------------------------


def test_quality_compression_and_strip(tmp_path, up):
    photo = tmp_path / "p.jpg"
    exif = Image.Exif()
    exif[0x010F] = "PhoneCo"
    _photo((64, 48)).save(photo, exif=exif.tobytes(), icc_profile=srgb_profile())

    def out(name, **options):
        path = tmp_path / name
        up.upscale_file(str(photo), str(path), scale=2, overwrite=True, **options)
        return path

    # JPEG: lower quality, smaller file; the default is 95.
    sizes = {q: os.path.getsize(out(f"q{q}.jpg", quality=q)) for q in (30, 95)}
    assert sizes[30] < sizes[95]
    assert out("default.jpg").read_bytes() == out("q95b.jpg", quality=95).read_bytes()
    # WebP: lossless by default (the pixels of the PNG), lossy with a quality.
    lossless = np.asarray(Image.open(out("a.webp")))
    assert np.array_equal(lossless, np.asarray(Image.open(out("a.png"))))
    lossy = out("b.webp", quality=50)
    assert os.path.getsize(lossy) < os.path.getsize(tmp_path / "a.webp")
    assert not np.array_equal(np.asarray(Image.open(lossy)), lossless)
    # PNG: the zlib level changes the size, never the pixels.
    fast, small = out("c0.png", compression=0), out("c9.png", compression=9)
    assert os.path.getsize(fast) > os.path.getsize(small)
    assert np.array_equal(np.asarray(Image.open(fast)), np.asarray(Image.open(small)))
    # strip: no EXIF; the ICC profile stays (it defines the colours).
    with Image.open(out("kept.jpg")) as im:
        assert im.getexif()[0x010F] == "PhoneCo" and im.info.get("icc_profile")
    with Image.open(out("stripped.jpg", strip=True)) as im:
        assert 0x010F not in im.getexif() and im.info.get("icc_profile")
    # Bytes in, bytes out: the same options.
    data, _ = up.upscale_bytes(photo.read_bytes(), scale=2, quality=30)
    assert data == (tmp_path / "q30.jpg").read_bytes()
    with pytest.raises(ValueError, match="quality applies to jpg and webp"):
        up.upscale_file(str(photo), str(tmp_path / "x.png"), scale=2, quality=80)
    with pytest.raises(ValueError, match="compression must be an integer from 0 to 9"):
        up.upscale_bytes(photo.read_bytes(), scale=2, fmt="PNG", compression=-1)
    assert not (tmp_path / "x.png").exists()


def test_a_mixed_batch_applies_each_setting_where_it_fits(tmp_path, up):
    src = tmp_path / "in"
    mixed_folder(src, n=3, corrupt=0)  # jpg, png, webp
    result = up.upscale_files(src, tmp_path / "out", scale=2, quality=40, compression=9)
    assert result.status == 0
    reference = tmp_path / "ref.jpg"
    up.upscale_file(str(src / "photo_00.jpg"), str(reference), scale=2, quality=40)
    assert (tmp_path / "out" / "photo_00.jpg").read_bytes() == reference.read_bytes()
    with pytest.raises(batch.BatchError, match="quality applies to jpg and webp"):
        up.upscale_files(src / "photo_01.png", tmp_path / "out", scale=2, quality=40)


# -- the command ----------------------------------------------------------------


@pytest.mark.slow(reason="two vdsr-upscale runs over 50 files, one stopped by a signal")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_fifty_photos_stopped_part_way_then_finished(tmp_path, sig):
    """Acceptance: 50 mixed photos (JPEG, PNG, WebP, one corrupt); a stop part-way,
    then the same command finishes exactly the rest, and the report lists all 50."""
    src = tmp_path / "photos"
    names = mixed_folder(src, n=50, size=(200, 150), corrupt=1)
    out, report = tmp_path / "big", tmp_path / "run.json"
    args = [
        sys.executable, "-m", "vdsr_tf.cli.upscale", str(src), "--scale=2",
        f"--output={out}", "--weights=bicubic", f"--report={report}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        env=dict(os.environ, PYTHONPATH=REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT, and a child inherits that: restore it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = [proc.stdout.readline() for _ in range(5)]  # five files written
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert all(" -> " in line for line in lines)
    assert "Traceback" not in err
    name = "interrupted" if sig == signal.SIGINT else "terminated (SIGTERM)"
    assert f"stopping: {name};" in err and "run the same command again" in err
    first = json.loads(report.read_text())
    assert [f["input"] for f in first["files"]] == [str(src / n) for n in names]
    assert not first["complete"] and first["exit_status"] == 128 + sig
    done = {f["output"] for f in first["files"] if f["status"] == "written"}
    assert len(done) >= 5 and first["counts"]["not processed"] > 0
    assert sorted(str(out / n) for n in os.listdir(out)) == sorted(done)  # no half files
    stamps = {p: os.stat(p).st_mtime_ns for p in done}

    proc = subprocess.run(
        args, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr  # the corrupt file
    second = json.loads(report.read_text())
    assert len(second["files"]) == 50 and second["complete"]
    statuses = {f["input"]: f["status"] for f in second["files"]}
    assert statuses[str(src / names[-1])] == "failed"
    for f in second["files"]:
        if f["output"] in done:
            assert f["status"] == "kept" and os.stat(f["output"]).st_mtime_ns == stamps[f["output"]]
        elif f["input"] != str(src / names[-1]):
            assert f["status"] == "written"
    assert second["counts"]["kept"] == len(done)
    assert second["counts"]["written"] == 49 - len(done)
    assert len(os.listdir(out)) == 49
    assert f"{49 - len(done)} written, 1 failed, {len(done)} kept" in proc.stderr


def test_help_documents_every_option_and_the_exit_codes():
    text = run_cli("--help").stdout.decode()
    for flag in ("existing", "overwrite", "suffix", "quality", "compression", "strip",
                 "report", "gpu", "quiet", "format", "recursive", "progress"):  # fmt: skip
        assert f"  --{flag}" in text, flag
    for code in ("0 ", "1 ", "2 ", "130", "143"):
        assert f"\n    {code}" in text.split("Exit status:")[1], code
    assert "stdout" in text and "stderr" in text


@pytest.mark.parametrize(
    "args,message",
    [
        (["--quality=0"], "--quality"),
        (["--quality=80", "--format=png"], "quality applies to jpg and webp"),
        (["--compression=5", "--format=webp"], "compression applies to png"),
        (["--existing=fail", "--overwrite"], "--overwrite contradicts --existing=fail"),
        (["--suffix=a/b"], "must be part of a file name"),
        (["--report=REPORT_DIR"], "is a folder"),
        (["--gpu=-2"], "--gpu"),
    ],
)
def test_usage_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    src = tmp_path / "in"
    mixed_folder(src, n=2, corrupt=0)
    args = [a.replace("REPORT_DIR", str(tmp_path)) for a in args]
    proc = run_cli(
        str(src), "--scale=2", f"--output={tmp_path / 'out'}", "--weights=bicubic", *args
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and not proc.stdout
    assert not (tmp_path / "out").exists()


def test_quiet_prints_only_errors(tmp_path):
    src = tmp_path / "in"
    mixed_folder(src, n=3, corrupt=1)
    proc = run_cli(str(src), "--scale=2", f"--output={tmp_path / 'out'}", "--weights=bicubic", "-q")
    assert proc.returncode == 1 and not proc.stdout
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 2 and ": error: corrupt or truncated" in lines[0]
    assert lines[1].startswith("2 written, 1 failed")
    proc = run_cli(str(src / "photo_00.jpg"), "--scale=2", f"--output={tmp_path / 'a.jpg'}",
                   "--weights=bicubic", "--quiet")  # fmt: skip
    assert proc.returncode == 0 and not proc.stdout and not proc.stderr


def test_standard_input_and_output(tmp_path):
    data = io.BytesIO()
    _photo().save(data, format="JPEG")
    data = data.getvalue()
    proc = run_cli("-", "--scale=2", "--output=-", "--weights=bicubic", stdin=data)
    assert proc.returncode == 0, proc.stderr
    with Image.open(io.BytesIO(proc.stdout)) as im:  # the input's format, unless --format
        assert im.format == "JPEG" and im.size == (80, 60)
    assert b" -> - (80x60)" in proc.stderr  # messages on stderr, the image alone on stdout
    proc = run_cli("-", "--scale=2", "--output=-", "--format=png", "--weights=bicubic", stdin=data)
    assert Image.open(io.BytesIO(proc.stdout)).format == "PNG"
    proc = run_cli("-", "--scale=2", f"--output={tmp_path / 'o.webp'}", "--quality=60",
                   "--weights=bicubic", stdin=data)  # fmt: skip
    assert proc.returncode == 0 and Image.open(tmp_path / "o.webp").size == (80, 60)
    proc = run_cli("-", "--scale=2", f"--output={tmp_path / 'o.webp'}", "--weights=bicubic",
                   stdin=data)  # fmt: skip
    assert proc.returncode == 0 and b"1 kept" in proc.stderr
    proc = run_cli("-", "--scale=2", "--output=-", "--weights=bicubic", stdin=data[:200])
    assert proc.returncode == 1 and not proc.stdout
    assert proc.stderr.decode().strip().startswith("-: error: corrupt or truncated")
    proc = run_cli("-", "--scale=2", "--output=-", "--report=r.json", "--weights=bicubic",
                   stdin=data)  # fmt: skip
    assert proc.returncode == 2 and b"--report is for files and folders" in proc.stderr


def test_gpu_choice_is_made_before_any_framework_loads(monkeypatch):
    # (vdsr_tf.cli.upscale is not imported here: its flags would clash with other commands'.)
    for name in ("tensorflow", "jax", "torch"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cli_batch.choose_gpu(1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # a scheduler's allocation
    cli_batch.choose_gpu(1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"  # counted within it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(ValueError, match="allows 2 GPUs"):
        cli_batch.choose_gpu(2)
    cli_batch.choose_gpu(-1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # the CPU only
    monkeypatch.setitem(sys.modules, "jax", object())
    with pytest.raises(ValueError, match="before jax is imported"):
        cli_batch.choose_gpu(0)


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmp:Rating="5" tiff:Orientation="6"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
def test_xmp_is_kept_with_its_orientation_reset(tmp_path, up, ext):
    src = tmp_path / "rated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the pixels are turned upright, both orientations reset
    _photo((20, 10)).save(src, exif=exif.tobytes(), xmp=XMP)
    dst = tmp_path / f"out.{ext}"
    up.upscale_file(str(src), str(dst), scale=2)
    with Image.open(dst) as im:
        assert im.size == (20, 40)
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
        xmp = xmp.encode() if isinstance(xmp, str) else xmp
        assert b'xmp:Rating="5"' in xmp and b'tiff:Orientation="1"' in xmp
    up.upscale_file(str(src), str(dst), scale=2, overwrite=True, strip=True)
    with Image.open(dst) as im:
        assert not (im.info.get("xmp") or im.info.get("XML:com.adobe.xmp"))


def test_16_bit_colour_read_as_8_bits_is_said(tmp_path, up):
    import struct
    import zlib

    rgb = (np.arange(6 * 8 * 3).reshape(6, 8, 3) * 900).astype(">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    path = tmp_path / "deep.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 6, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    result = up.upscale_files(path, str(tmp_path / "out") + os.sep, scale=2)  # a new folder
    assert result.status == 0 and os.listdir(tmp_path / "out") == ["deep.png"]
    assert "16-bit colour read as 8 bits per channel" in " ".join(result.files[0]["notes"])
    plain = tmp_path / "plain.png"
    _photo().save(plain)
    assert up.upscale_files(plain, tmp_path / "out", scale=2).files[0]["notes"] == []


def test_earlier_outputs_beside_their_inputs_are_not_inputs(tmp_path, up):
    src = tmp_path / "photos"
    mixed_folder(src, n=3, corrupt=0)  # photo_00.jpg, photo_01.png, photo_02.webp
    # --format into the input folder: photo_00.png and photo_02.png are written beside them;
    # photo_01.png would be its own output, which is refused.
    with pytest.raises(batch.BatchError, match="photo_01.png would be written over itself"):
        up.upscale_files(src, src, scale=2, fmt="png")
    (src / "photo_01.png").rename(src / "photo_01.gif")
    assert up.upscale_files(src, src, scale=2, fmt="png").counts["written"] == 3
    again = up.upscale_files(src, src, scale=2, fmt="png")  # the rerun resumes, not refuses
    assert again.counts == {"written": 0, "kept": 3, "failed": 0, "not processed": 0}
    assert len(again.skipped) == 3
    # A photo that happens to have an output's name is never replaced.
    dup = tmp_path / "dup"
    dup.mkdir()
    _photo().save(dup / "photo.jpg")
    _photo((30, 20)).save(dup / "photo_2.jpg")
    original = (dup / "photo_2.jpg").read_bytes()
    kept = up.upscale_files(dup, dup, scale=2, suffix="_2")
    assert kept.counts["kept"] == 1 and str(dup / "photo_2.jpg") in kept.skipped
    with pytest.raises(batch.BatchError, match="--overwrite would replace it"):
        up.upscale_files(dup, dup, scale=2, suffix="_2", existing="overwrite")
    assert (dup / "photo_2.jpg").read_bytes() == original


def test_a_report_is_never_written_over_an_input(tmp_path, up):
    src = tmp_path / "in"
    names = mixed_folder(src, n=2, corrupt=0)
    with pytest.raises(batch.BatchError, match="is one of the inputs"):
        up.upscale_files(src, tmp_path / "out", scale=2, report=str(src / names[0]))


def test_an_odd_file_among_the_inputs_fails_alone(tmp_path, up):
    src = tmp_path / "in"
    names = mixed_folder(src, n=2, corrupt=0)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    result = up.upscale_files([src / names[0], notes], tmp_path / "out", scale=2, quality=80)
    assert [f["status"] for f in result.files] == ["written", "failed"]
    assert "Unsupported output extension" in result.files[1]["error"]


def test_an_unexpected_error_leaves_an_honest_report(tmp_path, up):
    src = tmp_path / "in"
    mixed_folder(src, n=3, corrupt=0)
    report = tmp_path / "run.json"

    def broken(record):
        raise RuntimeError("the display went away")

    with pytest.raises(RuntimeError):
        up.upscale_files(src, tmp_path / "out", scale=2, report=report, on_file=broken)
    data = json.loads(report.read_text())
    assert not data["complete"] and data["stopped"].startswith("error: RuntimeError")
    assert data["counts"]["not processed"] == 2 and data["exit_status"] == 1


def test_xmp_orientation_follows_the_pixels(tmp_path, up):
    # Pillow reads an orientation that only XMP gives, like a viewer: the pixels are turned
    # upright and the XMP says so; an XMP without one is copied byte for byte.
    src, dst = tmp_path / "xmp_only.jpg", tmp_path / "out.jpg"
    _photo((20, 10)).save(src, xmp=XMP)
    up.upscale_file(str(src), str(dst), scale=2)
    with Image.open(dst) as im:
        assert im.size == (20, 40) and b'tiff:Orientation="1"' in im.info["xmp"]
    plain = XMP.replace(b' tiff:Orientation="6"', b"")
    _photo((20, 10)).save(src, xmp=plain)
    up.upscale_file(str(src), str(dst), scale=2, overwrite=True)
    with Image.open(dst) as im:
        assert im.size == (40, 20) and im.info["xmp"] == plain
