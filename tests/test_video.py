"""Videos: ``vdsr-upscale clip.mp4`` and ``Upscaler.upscale_video``, on clips
the tests write with PyAV itself (the butterfly panning, a 440 Hz tone).

Most clips run through the bicubic upscaler, which exercises everything but
the network in milliseconds a frame (the 20 x 64 network takes about 9 s
for one 640 x 480 frame on a 2-core AVX2 CPU); the frames-against-images
test runs the bundled network on a small clip.
"""

import os
import re
import select
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io.images import sample_images_dir
from vdsr_tf.io.video import VideoError
from vdsr_tf.ops.colour import rgb2y

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUTTERFLY = os.path.join(sample_images_dir(), "HR", "butterfly.png")
SRT = "1\n00:00:00,100 --> 00:00:00,500\nhello\n\n2\n00:00:00,600 --> 00:00:00,900\nworld\n"
AUDIO = {"aac": ("fltp", 1024), "libopus": ("s16", 960)}


def make_clip(
    path,
    frames=75,
    size=(320, 240),
    rate=25,
    audio="aac",
    codec="libx264",
    pix_fmt="yuv420p",
    pts=None,
    time_base=None,
    rotation=None,
    colour=None,
    subtitles=False,
    options=None,
):
    """Writes a clip: ``frames`` frames of ``size`` (w, h), the butterfly
    panning right one pixel a frame; ``pts`` (with ``time_base``) for a
    variable frame rate; a stereo tone as long as the video in ``audio``
    (an encoder name, or None); with ``subtitles``, an SRT subtitle stream
    in French, two chapters and a title (Matroska)."""
    w, h = size
    deep = "10" in pix_fmt
    canvas = np.asarray(Image.open(BUTTERFLY).convert("RGB").resize((w + frames, h)))
    if deep:
        canvas = canvas.astype(np.uint16) * 257
    out = av.open(str(path), "w")
    video = out.add_stream(codec, rate=rate)
    video.width, video.height, video.pix_fmt = w, h, pix_fmt
    video.options = options or {}
    if time_base is not None:
        video.time_base = video.codec_context.time_base = time_base
    for tag, value in (colour or {}).items():
        setattr(video.codec_context, tag, value)
    if rotation is not None:
        video.set_display_rotation(rotation)
    sound = None
    if audio:
        sound = out.add_stream(audio, rate=48000)
        sound.layout = "stereo"
    if subtitles:
        srt_path = str(path) + ".srt"
        with open(srt_path, "w") as f:
            f.write(SRT)
        srt = av.open(srt_path)
        text = out.add_stream_from_template(srt.streams[0])
        text.metadata["language"] = "fra"
        out.metadata["title"] = "a test clip"
        second = Fraction(1, 1000)
        out.set_chapters(
            [
                {"id": 1, "start": 0, "end": 150, "time_base": second, "metadata": {"title": "A"}},
                {
                    "id": 2,
                    "start": 150,
                    "end": 320,
                    "time_base": second,
                    "metadata": {"title": "B"},
                },
            ]
        )
        for packet in srt.demux():
            if packet.size:
                packet.stream = text
                out.mux(packet)
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(canvas[:, i : i + w]), format="rgb48le" if deep else "rgb24"
        )
        frame = frame.reformat(
            format=pix_fmt,
            dst_colorspace=(colour or {}).get("colorspace"),
            dst_color_range=(colour or {}).get("color_range"),
        )
        frame.pts = i if pts is None else pts[i]
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    if sound is not None:
        layout, chunk = AUDIO[audio]
        seconds = frames / rate if pts is None else float(pts[-1] * time_base) + 0.1
        t = np.arange(int(48000 * seconds)) / 48000
        tone = 0.3 * np.sin(2 * np.pi * 440 * t)
        for start in range(0, len(t), chunk):
            part = tone[start : start + chunk]
            if layout == "fltp":
                data = np.stack([part, part]).astype(np.float32)
            else:
                data = (np.repeat(part, 2)[None] * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data, format=layout, layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    out.close()
    return path


def read(path, pixels=False):
    """What a clip holds: its video's frames (as RGB, with ``pixels``),
    times, size, codec, tags; the packets of its other streams (bytes, pts,
    dts) and their durations apart: Matroska stores no duration for most
    blocks, its reader infers them from the order of the blocks."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        info = {
            "size": (cc.width, cc.height),
            "codec": cc.codec.canonical_name,
            "pix_fmt": cc.format.name,
            "format": c.format.name,
            "streams": [s.type for s in c.streams],
            "languages": [s.metadata.get("language") for s in c.streams],
            "title": c.metadata.get("title"),
            "chapters": c.chapters(),
        }
        frames, times = [], []
        for frame in c.decode(v):
            times.append(frame.pts * frame.time_base)
            if not frames:
                info["rotation"] = frame.rotation
                info["colour"] = (
                    frame.color_range,
                    frame.colorspace,
                    frame.color_primaries,
                    frame.color_trc,
                )
            if pixels:
                fmt = "rgb48le" if "10" in info["pix_fmt"] else "rgb24"
                frames.append(
                    frame.reformat(
                        format=fmt, src_color_range=frame.color_range or None
                    ).to_ndarray()
                )
            else:
                frames.append(None)
        info["frames"], info["times"] = frames, times
    with av.open(str(path)) as c:
        info["packets"], info["durations"] = {}, {}
        for packet in c.demux([s for s in c.streams if s.type != "video"]):
            if packet.size:
                kind = packet.stream.type
                info["packets"].setdefault(kind, []).append((bytes(packet), packet.pts, packet.dts))
                info["durations"].setdefault(kind, []).append(packet.duration)
    return info


def rgb_psnr(a, b, peak=255.0):
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(peak**2 / max(err, 1e-12))


def y_psnr(a, b):
    """PSNR on MATLAB's Y, the plane the network refines (as vdsr-eval scores);
    4:2:0 video halves the colour planes' resolution, which RGB PSNR counts."""
    peak = 65535.0 if a.dtype == np.uint16 else 255.0
    return rgb_psnr(rgb2y(a / peak) * 255, rgb2y(b / peak) * 255)


def cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "vdsr_tf.cli.upscale", *args],
        env=dict(os.environ, PYTHONPATH=REPO, **(env or {})),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def bicubic():
    return Upscaler(weights="bicubic")


# -- the acceptance clip ------------------------------------------------------
@pytest.mark.slow(reason="a vdsr-upscale subprocess over a 75-frame clip")
def test_clip_doubles_with_its_sound_and_timing(tmp_path, bicubic):
    """3 s of 320 x 240 at 25 fps with AAC -> 640 x 480, 75 frames; the audio
    packets and the timestamps equal the input's; every frame within 40 dB
    of the image path (``Upscaler.upscale`` of the decoded input frame) on Y,
    and in RGB too at --crf=10 (measured: 45.6 dB on Y, 40.5 dB in RGB; a
    wrong colour matrix or range costs far more)."""
    clip = make_clip(tmp_path / "clip.mp4")
    run = cli("clip.mp4", "--scale=2", "--weights=bicubic", "--crf=10", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "clip.mp4 (320x240, 75 frames) -> clip_x2.mp4 (640x480)"
    src, out = read(clip, pixels=True), read(tmp_path / "clip_x2.mp4", pixels=True)
    assert out["size"] == (640, 480) and len(out["frames"]) == 75
    assert out["times"] == src["times"]
    assert out["packets"]["audio"] == src["packets"]["audio"]
    assert out["durations"]["audio"] == src["durations"]["audio"]
    assert len(src["packets"]["audio"]) > 100
    assert (out["format"], out["codec"], out["pix_fmt"]) == (src["format"], "h264", "yuv420p")
    pairs = [(bicubic.upscale(a, scale=2), b) for a, b in zip(src["frames"], out["frames"])]
    assert min(y_psnr(a, b) for a, b in pairs) >= 40
    assert min(rgb_psnr(a, b) for a, b in pairs) >= 39.5


@pytest.mark.slow(reason="two vdsr-upscale subprocesses running the network")
def test_frames_equal_the_image_path_with_the_network(tmp_path):
    """The bundled network on a Matroska clip with Opus and subtitles: each
    frame within 40 dB of vdsr-upscale run on the same frames as PNG files;
    the Opus and subtitle packets unchanged, with the subtitles' language,
    the title and the chapters."""
    clip = make_clip(
        tmp_path / "clip.mkv", frames=8, size=(64, 48), audio="libopus", subtitles=True
    )
    run = cli("clip.mkv", "--scale=2", "--precision=fp32", "--crf=8", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    src = read(clip, pixels=True)
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(src["frames"]):
        Image.fromarray(frame).save(tmp_path / "frames" / f"{i}.png")
    run = cli("frames", "--scale=2", "--precision=fp32", "--output=images/", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = read(tmp_path / "clip_x2.mkv", pixels=True)
    assert out["streams"] == ["video", "audio", "subtitle"]
    assert out["packets"] == src["packets"] and out["times"] == src["times"]
    assert out["languages"][2] == "fra" and out["title"] == "a test clip"
    assert out["chapters"] == src["chapters"] and len(out["chapters"]) == 2
    for i, frame in enumerate(out["frames"]):
        image = np.asarray(Image.open(tmp_path / "images" / f"{i}.png"))
        assert frame.shape == image.shape == (96, 128, 3)
        assert y_psnr(frame, image) >= 40, i
    # the network did run: the frames are not the bicubic ones
    plain = Upscaler(weights="bicubic").upscale(src["frames"][3], scale=2)
    assert y_psnr(plain, out["frames"][3]) < 35


# -- what a user keeps -------------------------------------------------------
def test_variable_frame_rate_keeps_every_timestamp(tmp_path, bicubic):
    pts = [0, 40, 90, 100, 180, 300, 310, 320, 500, 520]
    clip = make_clip(
        tmp_path / "vfr.mkv",
        frames=len(pts),
        size=(48, 32),
        audio=None,
        pts=pts,
        time_base=Fraction(1, 1000),
    )
    bicubic.upscale_video(clip, tmp_path / "out.mkv", scale=2)
    src, out = read(clip), read(tmp_path / "out.mkv")
    assert out["times"] == src["times"] == [Fraction(p, 1000) for p in pts]


def test_rotation_kept_and_sizes_rounded_to_even(tmp_path, bicubic):
    """A phone clip stored 64 x 48 and shown turned (48 x 64): --size is as
    shown; 97 x 129 becomes 96 x 128, said in a note; the rotation stays."""
    clip = make_clip(tmp_path / "phone.mp4", frames=5, size=(64, 48), rotation=90)
    got = bicubic.upscale_video(clip, tmp_path / "out.mp4", size=(129, 97))
    assert got == (
        (48, 64),
        (96, 128),
        5,
        ["97x129 rounded to 96x128: the encoder takes even sizes"],
    )
    out = read(tmp_path / "out.mp4")
    assert out["size"] == (128, 96) and out["rotation"] == 90


def test_colour_tags_and_bit_depth_kept(tmp_path, bicubic):
    """10-bit BT.709 full range in, the same out, and the pixels right."""
    tags = {"color_range": 2, "colorspace": 1, "color_primaries": 1, "color_trc": 1}
    clip = make_clip(
        tmp_path / "deep.mkv", frames=4, size=(64, 48), audio=None, pix_fmt="yuv420p10le",
        colour=tags, options={"crf": "4"},
    )  # fmt: skip
    bicubic.upscale_video(clip, tmp_path / "out.mkv", scale=2, crf=4)
    src, out = read(clip, pixels=True), read(tmp_path / "out.mkv", pixels=True)
    assert src["colour"] == out["colour"] == (2, 1, 1, 1)
    assert out["pix_fmt"] == "yuv420p10le" and out["frames"][0].dtype == np.uint16
    for a, b in zip(src["frames"], out["frames"], strict=True):
        assert y_psnr(bicubic.upscale(a, scale=2), b) >= 40


@pytest.mark.parametrize(
    "name, codec, expect",
    [("clip.webm", None, "vp9"), ("clip.mp4", "hevc", "hevc"), ("clip.mkv", "ffv1", "ffv1")],
)
def test_codec_choice(tmp_path, bicubic, name, codec, expect):
    """WebM stays VP9 (with Opus); --video_codec picks another encoder."""
    webm = name.endswith(".webm")
    clip = make_clip(
        tmp_path / name, frames=4, size=(64, 48), audio="libopus" if webm else "aac",
        codec="libvpx-vp9" if webm else "libx264",
    )  # fmt: skip
    bicubic.upscale_video(clip, tmp_path / f"out{os.path.splitext(name)[1]}", scale=2, codec=codec)
    src, out = read(clip), read(tmp_path / f"out{os.path.splitext(name)[1]}")
    assert out["codec"] == expect and out["size"] == (128, 96)
    assert out["packets"] == src["packets"] and out["times"] == src["times"]


def test_bad_codec_options_are_one_line_errors(tmp_path, bicubic):
    clip = make_clip(tmp_path / "clip.mp4", frames=2, size=(32, 32), audio=None)
    cases = [
        ({"codec": "mpeg2"}, "unknown --video_codec 'mpeg2'; use one of av1, ffv1, h264, hevc, prores, vp9"),
        ({"crf": 60}, "--crf for h264 must be in 0-51, got 60"),
        ({"codec": "ffv1", "crf": 20}, "--crf is for h264, hevc, vp9, av1, not ffv1"),
    ]  # fmt: skip
    for options, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            bicubic.upscale_video(clip, tmp_path / "out.mp4", scale=2, **options)
    # without --video_codec, a codec the output container cannot hold gives way to its default
    assert bicubic.upscale_video(clip, tmp_path / "out.webm", scale=2)[2] == 2
    assert read(tmp_path / "out.webm")["codec"] == "vp9"
    # a container that cannot hold a copied stream (Opus in AVI) or the codec is refused
    webm = make_clip(tmp_path / "o.webm", frames=2, size=(32, 32), audio="libopus",
                     codec="libvpx-vp9")  # fmt: skip
    with pytest.raises(ValueError, match=r"the avi container cannot hold stream #1 \(audio, opus"):
        bicubic.upscale_video(webm, tmp_path / "out.avi", scale=2)
    with pytest.raises(ValueError, match=r"the webm container cannot hold h264 video"):
        bicubic.upscale_video(webm, tmp_path / "h264.webm", scale=2, codec="h264")
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "o.webm", "out.webm"]


def test_encoder_errors_are_one_line_and_a_full_disk_stays_an_os_error():
    from vdsr_tf.io.video import _encoding

    with pytest.raises(VideoError, match=r"^FFmpeg cannot write the video \(Generic error"):
        with _encoding(av):
            raise av.error.ExternalError(-542398533, "Generic error in an external library")
    with pytest.raises(OSError) as raised, _encoding(av):
        av.error.err_check(-28)  # ENOSPC
    assert raised.value.errno == 28 and not isinstance(raised.value, VideoError)


# -- damaged files -----------------------------------------------------------
def _corrupt_packet(clip, index, tmp_path):
    """A copy of ``clip`` with the ``index``-th video packet's bytes scrambled."""
    with av.open(str(clip)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[index]
    data = bytearray(clip.read_bytes())
    for k in range(pos + 8, pos + size - 2, 3):
        data[k] ^= 0xA5
    bad = tmp_path / f"bad{index}.mp4"
    bad.write_bytes(bytes(data))
    return bad


def test_corrupt_frame_fails_by_default_and_is_skipped_on_request(tmp_path, bicubic):
    clip = make_clip(tmp_path / "clip.mp4", frames=40, size=(64, 48), audio=None)
    bad = _corrupt_packet(clip, 20, tmp_path)
    with pytest.raises(VideoError, match=r"^a corrupt frame at 0\.\d+ s \(Invalid data"):
        bicubic.upscale_video(bad, tmp_path / "out.mp4", scale=2)
    assert not (tmp_path / "out.mp4").exists()
    got = bicubic.upscale_video(bad, tmp_path / "out.mp4", scale=2, on_corrupt="skip")
    assert got[2:] == (39, ["1 corrupt or missing frame skipped"])
    src, out = read(clip), read(tmp_path / "out.mp4")
    assert len(out["times"]) == 39 and set(out["times"]) < set(src["times"])
    # a corrupt key frame leaves nothing to decode
    with pytest.raises(VideoError, match="no frame could be decoded"):
        bicubic.upscale_video(
            _corrupt_packet(clip, 0, tmp_path), tmp_path / "x.mp4", scale=2, on_corrupt="skip"
        )


def test_truncated_files_are_errors(tmp_path, bicubic):
    clip = make_clip(tmp_path / "clip.mp4", frames=40, size=(64, 48))
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])  # index at the end: lost
    with pytest.raises(VideoError, match=r"^cannot read it as a video \(Invalid data"):
        bicubic.upscale_video(tmp_path / "cut.mp4", tmp_path / "out.mp4", scale=2)
    for name in ("fast.mp4", "clip.mkv"):  # index first, or none: frames missing at the end
        with (
            av.open(str(clip)) as src,
            av.open(str(tmp_path / name), "w", options={"movflags": "faststart"}) as dst,
        ):
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
            for packet in src.demux():
                if packet.size:
                    packet.stream = streams[packet.stream.index]
                    dst.mux(packet)
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) * 6 // 10])
        with pytest.raises(VideoError, match=r"more frames announced than could be decoded"):
            bicubic.upscale_video(tmp_path / name, tmp_path / "out.mp4", scale=2)
    assert not (tmp_path / "out.mp4").exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp.mp4")]


# -- the library's other paths -------------------------------------------------
def test_batched_frames_equal_one_at_a_time(tiny_weights):
    """``upscale_arrays`` (one network call per tile for all frames) equals
    ``upscale_array`` frame by frame, ensemble included."""
    rng = np.random.default_rng(0)
    frames = [(rng.random((21, 17, 3)) * 255).astype(np.uint8) for _ in range(3)]
    for ensemble in (False, True):
        up = Upscaler(weights=tiny_weights, precision="fp32", tile=16, ensemble=ensemble)
        assert up.backend == "keras"
        batched = up.upscale_arrays(frames, scale=2)
        for frame, out in zip(frames, batched, strict=True):
            one = up.upscale_array(frame, scale=2)
            assert out.shape == one.shape == (42, 34, 3)
            assert np.abs(out.astype(int) - one.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="one shape and dtype"):
        up.upscale_arrays([frames[0], frames[0][:20]], scale=2)


def test_video_with_batches_of_frames(tmp_path, tiny_weights):
    up = Upscaler(weights=tiny_weights, precision="fp32")
    clip = make_clip(tmp_path / "clip.mp4", frames=7, size=(32, 24))
    seen = []
    got = up.upscale_video(
        clip, tmp_path / "out.mp4", scale=2, batch=3, progress=lambda *a: seen.append(a)
    )
    assert got[:3] == ((32, 24), (64, 48), 7)
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert read(tmp_path / "out.mp4")["times"] == read(clip)["times"]


def test_folder_batch_picks_up_videos(tmp_path, bicubic):
    """A folder of photos and clips: --format changes the photos' format,
    the clips keep their container."""
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mov", frames=3, size=(32, 24))
    Image.open(BUTTERFLY).resize((32, 24)).save(folder / "photo.png")
    (folder / "notes.txt").write_text("not media")
    result = bicubic.upscale_files(folder, tmp_path / "out", scale=2, fmt="jpg")
    assert result.status == 0 and result.counts["written"] == 2
    assert sorted(os.listdir(tmp_path / "out")) == ["clip.mov", "photo.jpg"]
    assert [r["frames"] for r in result.files] == [3, 1]
    assert read(tmp_path / "out" / "clip.mov")["format"].startswith("mov")


# -- long jobs -----------------------------------------------------------------
# The child's own peak: VmHWM starts afresh at exec, while ru_maxrss carries the
# parent's RSS at the fork into the child (Linux), which would hide any growth.
_RSS = """
import sys
from vdsr_tf.inference.upscaler import Upscaler
Upscaler(weights="bicubic").upscale_video(sys.argv[1], sys.argv[2], scale=2)
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""


@pytest.mark.slow(reason="two subprocesses upscaling 1,100 frames")
def test_memory_stays_flat_in_the_clip_length(tmp_path):
    """Peak RSS for a 10x longer clip within 20 % (measured: 88 and 93 MB;
    if the frames piled up, the 1000-frame run would hold about 290 MB more)."""
    peaks = []
    for frames in (100, 1000):
        clip = make_clip(tmp_path / f"c{frames}.mp4", frames=frames, size=(160, 120))
        run = subprocess.run(
            [sys.executable, "-c", _RSS, str(clip), str(tmp_path / f"o{frames}.mp4")],
            env=dict(os.environ, PYTHONPATH=REPO),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr
        peaks.append(int(run.stdout.split()[-1]))
    out = read(tmp_path / "o1000.mp4")
    assert out["size"] == (320, 240) and len(out["times"]) == 1000
    assert 30_000 < peaks[0] and peaks[1] <= 1.2 * peaks[0], peaks


@pytest.mark.slow(reason="a vdsr-upscale subprocess stopped by SIGINT, then run again")
def test_ctrl_c_leaves_no_file_and_a_rerun_starts_over(tmp_path):
    """Ctrl-C once the progress bar shows frame 20 of 600: exit 130, no
    output and no temporary file; the same command then writes all 600."""
    make_clip(tmp_path / "long.mp4", frames=600, size=(160, 120), audio=None)
    env = dict(os.environ, PYTHONPATH=REPO)
    args = [sys.executable, "-m", "vdsr_tf.cli.upscale", "long.mp4", "--scale=2"]
    args += ["--weights=bicubic"]
    proc = subprocess.Popen(
        args + ["--progress"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=False
    )
    seen, deadline = b"", time.monotonic() + 120
    while b"frame 20/600" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    assert b"frame 20/600" in seen and proc.poll() is None, seen[-300:]
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp.mp4")]  # writing
    proc.send_signal(signal.SIGINT)
    err = (seen + proc.communicate(timeout=60)[1]).decode()
    assert proc.returncode == 130, err[-500:]
    assert "1 file not processed; run the same command again to finish them" in err
    assert sorted(os.listdir(tmp_path)) == ["long.mp4"]
    rerun = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(read(tmp_path / "long_x2.mp4")["times"]) == 600


@pytest.mark.slow(reason="vdsr-upscale subprocesses")
def test_command_line_errors_and_defaults(tmp_path):
    make_clip(tmp_path / "clip.mp4", frames=2, size=(32, 24), audio=None)
    (tmp_path / "mixed").mkdir()
    make_clip(tmp_path / "mixed" / "clip.mp4", frames=2, size=(32, 24), audio=None)
    Image.open(BUTTERFLY).resize((32, 24)).save(tmp_path / "mixed" / "photo.png")

    def without_av(*args):
        code = (
            f"import sys; sys.modules['av'] = None; sys.argv = ['vdsr-upscale', *{list(args)}]; "
            "from vdsr_tf.cli.upscale import run_cli; run_cli()"
        )
        return subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=REPO),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    run = without_av("clip.mp4", "--scale=2")
    assert run.returncode == 2
    assert run.stderr == "vdsr-upscale: error: videos need PyAV: pip install 'vdsr-tf[video]'\n"
    # a folder's videos are passed over, saying why; its photos are done
    run = without_av("mixed", "--scale=2", "--weights=bicubic", "--output=mixed_x2/")
    assert run.returncode == 0, run.stderr
    assert os.listdir(tmp_path / "mixed_x2") == ["photo.png"]
    assert (
        "1 skipped (mixed/clip.mp4; videos need PyAV: pip install 'vdsr-tf[video]')" in run.stderr
    )
    for args, message in [
        (["--video_codec=mpeg2"], "unknown --video_codec 'mpeg2'"),
        (
            ["--output=clip.png"],
            "clip.mp4 is a video: its output clip.png must be a video file too",
        ),
        (["--output=-"], "videos are read and written as files, not - (standard input or output)"),
    ]:
        run = cli("clip.mp4", "--scale=2", "--weights=bicubic", *args, cwd=tmp_path)
        assert run.returncode == 2 and message in run.stderr, run.stderr
        assert len(run.stderr.splitlines()) == 1, run.stderr
    # without --output: beside the input, --format and --suffix applied (photos too)
    for args, name in [
        (["clip.mp4", "--format=jpg"], "clip_x2.mp4"),
        (["mixed/photo.png", "--format=jpg"], "mixed/photo_x2.jpg"),
        (["mixed/photo.png", "--suffix=_big"], "mixed/photo_big.png"),
    ]:
        run = cli(*args, "--scale=2", "--weights=bicubic", cwd=tmp_path)
        assert run.returncode == 0 and f"-> {name} " in run.stdout, run.stderr
    assert Image.open(tmp_path / "mixed" / "photo_x2.jpg").format == "JPEG"
