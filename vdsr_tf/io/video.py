"""Video files in and out with PyAV (FFmpeg's libraries): the optional extra
``video`` (``pip install "vdsr-tf[video]"``).

``VideoReader`` opens a file and yields, in the file's own order, the frames
of its main video stream as RGB arrays with their timestamps, and the
packets of its audio and subtitle streams, untouched. ``VideoWriter`` writes
the new file: the frames encoded again at their new size with the input's
timestamps (variable frame rate included), display matrix (rotation),
colour range, matrix, primaries and transfer tags, sample aspect ratio and
stream metadata; the audio and subtitle packets copied as they are (no
re-encoding); the container's metadata and chapters.

Colour: a frame becomes RGB with its stream's own matrix and range
(swscale's defaults, BT.601 and limited range, where the file does not
say), and goes back with the same, so the network sees what a player shows
and the round trip itself changes nothing but the encoder's loss. 8-bit
formats give uint8 RGB(A), deeper ones (10-bit HEVC, ...) uint16.

Errors are one line (``VideoError``, a ValueError): a file FFmpeg cannot
open, no video stream, a corrupt frame (``on_corrupt="fail"``, the default;
``"skip"`` drops it and counts it), frames the header announced that are
missing (a truncated file), an encoder that fails. A full disk stays an
``OSError``.

Nothing here imports PyAV at module level: the extensions and ``is_video``
serve the batch planner without it, and ``load_av`` says what to install.
"""

import collections
import contextlib
import fractions
import os
import re
import struct

# What the batch planner treats as a video, and the container each extension writes.
CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}
VIDEO_EXTENSIONS = tuple(CONTAINERS)

INSTALL = "pip install 'vdsr-tf[video]'"

ON_CORRUPT = ("fail", "skip")

# --video_codec NAME -> (FFmpeg encoder, default CRF, highest CRF); None: no CRF
# (FFV1 is lossless, ProRes is an intra-frame mezzanine codec). The defaults aim
# at visually transparent frames: the upscaled detail is what the user waits for.
ENCODERS = {
    "h264": ("libx264", 18, 51),
    "hevc": ("libx265", 20, 51),
    "vp9": ("libvpx-vp9", 24, 63),
    "av1": ("libsvtav1", 28, 63),
    "ffv1": ("ffv1", None, None),
    "prores": ("prores_ks", None, None),
}
ALIASES = {"h265": "hevc", "avc": "h264"} | {enc: name for name, (enc, _, _) in ENCODERS.items()}

# Each encoder's options besides the CRF: speed settings where FFmpeg's
# default is far slower than the network (libvpx), and the libraries' own
# log lines off (x265 prints to stderr by itself).
_OPTIONS = {
    "libx265": {"x265-params": "log-level=error"},
    "libvpx-vp9": {"b": "0", "row-mt": "1", "cpu-used": "4", "deadline": "good"},
    "libsvtav1": {"preset": "8", "svtav1-params": "enable-stat-report=0"},
}

# Without --video_codec a video keeps its codec where it is one of ENCODERS' (and
# the container holds it); others get the container's default.
_CONTAINER_DEFAULT = {"webm": "vp9"}  # every other container: h264

# The streams copied from the input besides the main video stream.
_COPIED = ("audio", "subtitle")

# Stream metadata that describes the old encoding, not the content.
_STALE = ("duration", "encoder", "bps", "number_of_frames", "number_of_bytes", "_statistics")

Frame = collections.namedtuple("Frame", "array pts")  # RGB(A) array, pts in the stream's time base
Packet = collections.namedtuple("Packet", "packet index")  # a packet to copy, its input stream


class VideoError(ValueError):
    """A video that cannot be read, is damaged, or cannot be encoded (one line)."""


def is_video(path):
    """Whether ``path``'s extension is one of ``VIDEO_EXTENSIONS``."""
    return os.path.splitext(os.fspath(path))[1].lower() in CONTAINERS


def load_av():
    """The ``av`` module; ImportError with the install line when it is missing."""
    try:
        import av
    except ImportError:
        raise ImportError(f"videos need PyAV: {INSTALL}") from None
    return av


def available():
    """Whether PyAV can be imported (``load_av`` would succeed)."""
    try:
        load_av()
    except ImportError:
        return False
    return True


def encoder_for(codec, crf, input_codec, container, held=None):
    """``(name, encoder, options)`` for ``--video_codec`` / ``--crf``.

    Args:
        codec: a name of ``ENCODERS`` (or an alias, or an encoder's own
            name), or None: the input's codec when it is one of those and
            the output container holds it, else H.264 (VP9 in WebM).
        crf: the quality (lower is better) or None: the codec's default.
        input_codec: the input stream's codec name ("h264", "mpeg4", ...).
        container: the output's FFmpeg format name ("mp4", "webm", ...).
        held: the codec names the output container holds (None: any).

    Raises:
        ValueError: an unknown codec, one this FFmpeg has no encoder for, or
            a CRF the codec does not take.
    """
    av = load_av()
    if codec is None:
        kept = input_codec in ENCODERS and (held is None or input_codec in held)
        name = input_codec if kept else _CONTAINER_DEFAULT.get(container, "h264")
    else:
        name = ALIASES.get(codec.lower(), codec.lower())
        if name not in ENCODERS:
            raise ValueError(
                f"unknown --video_codec {codec!r}; use one of {', '.join(sorted(ENCODERS))}"
            )
    encoder, default, highest = ENCODERS[name]
    try:
        av.codec.Codec(encoder, "w")
    except av.codec.codec.UnknownCodecError:
        raise ValueError(f"this FFmpeg (PyAV {av.__version__}) has no {encoder} encoder") from None
    options = dict(_OPTIONS.get(encoder, {}))
    if encoder == "libsvtav1":  # SVT-AV1 prints its settings to stderr unless told not to
        os.environ.setdefault("SVT_LOG", "1")  # errors only (it reads this at each encoder's start)
    if crf is not None and default is None:
        raise ValueError(
            f"--crf is for {', '.join(n for n, e in ENCODERS.items() if e[1])}, not {name}"
        )
    if default is not None:
        crf = default if crf is None else crf
        if not 0 <= crf <= highest:
            raise ValueError(f"--crf for {name} must be in 0-{highest}, got {crf}")
        options["crf"] = str(crf)
    return name, encoder, options


def encodable_size(height, width):
    """(H, W) rounded down to even numbers, at least 2: 4:2:0 chroma needs
    them, and every encoder here takes them."""
    return max(2, height - height % 2), max(2, width - width % 2)


def _reason(error):
    """An FFmpeg error's message without the file name PyAV appends."""
    text = getattr(error, "strerror", None) or str(error)
    return text.rstrip(".")


def _codec(stream):
    context = stream.codec_context
    return context.codec.canonical_name if context is not None else "no codec"


def _fresh(metadata):
    return {k: v for k, v in metadata.items() if not k.lower().startswith(_STALE)}


class VideoReader:
    """A video file's frames (RGB arrays) and the packets of its other streams.

    Attributes:
        stream: the main video stream (the first one that is not cover art).
        width, height: its frame size as stored (before the display rotation).
        rotation: the display rotation in degrees (counter-clockwise).
        rate: the average frame rate; total: the frame count the file
            announces (or estimates from its duration), or None.
        copied: the input streams whose packets are copied; dropped: a note
            per stream that is not (data, attachments, cover art).
        decoded, skipped: frames so far; ``skipped`` counts corrupt ones
            (``on_corrupt="skip"``) and announced ones never decoded.

    Raises:
        VideoError: the file cannot be opened, has no video stream, or no
            frame can be decoded.
        ImportError: PyAV is not installed.
    """

    def __init__(self, path, on_corrupt="fail"):
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(
                f"on_corrupt must be one of {', '.join(ON_CORRUPT)}, got {on_corrupt!r}"
            )
        self.av = load_av()
        self.on_corrupt = on_corrupt
        try:
            self.container = self.av.open(os.fspath(path), metadata_errors="ignore")
        except (self.av.FFmpegError, OSError) as e:
            raise VideoError(
                f"cannot read it as a video ({_reason(e)}; a truncated or damaged file?)"
            ) from None
        try:
            self._describe()
            self.decoded = self.skipped = 0
            self.matrix = self.colour = None
            self.rotation = 0
            self._last, self._packets = None, 0
            self._items = self._demux()
            self._ahead = []
            for item in self._items:  # up to the first frame: its side data describes the stream
                self._ahead.append(item)
                if isinstance(item, Frame):
                    break
        except BaseException:
            self.container.close()
            raise
        if not self.decoded:
            self.container.close()
            raise VideoError("no frame could be decoded")

    def _describe(self):
        streams = self.container.streams
        pictures = self.av.stream.Disposition.attached_pic
        video = [s for s in streams.video if not s.disposition & pictures]
        if not video:
            raise VideoError("no video stream")
        self.stream = stream = video[0]
        context = stream.codec_context
        self.width, self.height = context.width, context.height
        self.codec = _codec(stream)
        self.rate = stream.average_rate or stream.guessed_rate or fractions.Fraction(25)
        seconds = (
            float(stream.duration * stream.time_base)
            if stream.duration
            else (self.container.duration or 0) / 1e6
        )
        self.total = stream.frames or round(seconds * self.rate) or None
        components = context.format.components if context.format else ()
        deep = any(c.bits > 8 for c in components)
        alpha = any(c.is_alpha for c in components)
        if alpha:
            self.rgb_format = "rgba64le" if deep else "rgba"
        else:
            self.rgb_format = "rgb48le" if deep else "rgb24"
        self.pix_fmt = context.format.name if context.format else "yuv420p"
        self.copied = [s for s in streams if s is not stream and s.type in _COPIED]
        self.dropped = [
            f"stream #{s.index} ({s.type}, {_codec(s)}) not copied"
            for s in streams
            if s is not stream and s not in self.copied
        ]

    def __iter__(self):
        """The frames (``Frame``) and the other streams' packets (``Packet``), in file order."""
        yield from self._ahead
        self._ahead = []
        yield from self._items

    def _demux(self):
        copied = {s.index for s in self.copied}
        try:
            for packet in self.container.demux():
                index = packet.stream.index
                if index in copied:
                    if packet.size:
                        yield Packet(packet, index)
                elif packet.stream is self.stream:
                    self._packets += bool(packet.size)
                    yield from self._decode(packet)
        except self.av.FFmpegError as e:
            raise VideoError(
                f"cannot read past frame {self.decoded} ({_reason(e)}): a truncated or damaged file"
            ) from None
        missing = self._missing()
        if missing > 0:
            self._corrupt(
                f"{missing} more frame{'s' * (missing > 1)} announced than could be "
                "decoded: a truncated or damaged file",
                missing,
            )

    def _missing(self):
        """Frames the file announces but does not hold: its frame count (MP4,
        MOV) against the packets read (not the frames decoded: an edit list
        discards some), or the time between the last frame and the stream's
        duration tag (Matroska, WebM)."""
        stream = self.stream
        if stream.frames:
            return stream.frames - self._packets
        tag = {k.lower(): v for k, v in stream.metadata.items()}.get("duration", "")
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", tag.strip())
        if not match or self._last is None:
            return 0
        hours, minutes, seconds = match.groups()
        end = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        start = float((stream.start_time or 0) * stream.time_base)
        shown = float(self._last * stream.time_base) - start + float(1 / self.rate)
        return max(0, round((end - shown) * float(self.rate)) - 1)

    def _decode(self, packet):
        try:
            frames = packet.decode()
        except self.av.FFmpegError as e:
            when = float(packet.pts * packet.time_base) if packet.pts is not None else None
            at = f" at {when:.3f} s" if when is not None else ""
            self._corrupt(f"a corrupt frame{at} ({_reason(e)})")
            return
        for frame in frames:
            if frame.is_corrupt:
                self._corrupt(f"a corrupt frame at {frame.time:.3f} s")
                continue
            if self.decoded == 0:
                self._first(frame)
            self.decoded += 1
            yield Frame(self._to_rgb(frame), self._pts(frame))

    def _corrupt(self, what, count=1):
        if self.on_corrupt == "fail":
            raise VideoError(f"{what}; --on_corrupt=skip drops such frames and goes on")
        self.skipped += count

    def _first(self, frame):
        """The display matrix and colour tags, from the first frame."""
        matrices = [d for d in frame.side_data if d.type.name == "DISPLAYMATRIX"]
        self.matrix = bytes(matrices[0]) if matrices else None
        self.rotation = frame.rotation or 0
        full = self.pix_fmt.startswith("yuvj")  # the deprecated full-range formats
        self.colour = {
            "color_range": frame.color_range or (2 if full else 0),
            "colorspace": frame.colorspace,
            "color_primaries": frame.color_primaries,
            "color_trc": frame.color_trc,
        }

    def _to_rgb(self, frame):
        """RGB(A) of the frame, at the stream's size (a stream whose size
        changes midway is scaled to its first)."""
        return frame.reformat(
            width=self.width,
            height=self.height,
            format=self.rgb_format,
            src_color_range=self.colour["color_range"] or None,
            interpolation="BICUBIC",
        ).to_ndarray()

    def _pts(self, frame):
        """The frame's pts; made up (one frame period on) where the file has
        none or repeats one, which no encoder takes."""
        pts = frame.pts
        if self._last is None:
            pts = 0 if pts is None else pts
        elif pts is None:
            pts = self._last + max(1, round(1 / (self.rate * self.stream.time_base)))
        elif pts <= self._last:
            pts = self._last + 1
        self._last = pts
        return pts

    def close(self):
        self.container.close()


@contextlib.contextmanager
def _encoding(av):
    """FFmpeg's errors while writing as one line (``VideoError``); those of
    the file system (a full disk) stay ``OSError``."""
    try:
        yield
    except av.FFmpegError as e:
        if isinstance(e, OSError):
            raise
        raise VideoError(f"FFmpeg cannot write the video ({_reason(e)})") from None


def _pixel_format(av, encoder, reader):
    """The input's pixel format where the encoder takes it (the full-range
    ``yuvj`` ones as their tagged ``yuv`` twins), else 4:2:0 of its depth."""
    formats = [f.name for f in av.codec.Codec(encoder, "w").video_formats or ()]
    own = reader.pix_fmt.replace("yuvj", "yuv")
    deep = reader.rgb_format in ("rgb48le", "rgba64le")
    for name in [own] + (["yuv420p10le"] if deep else []) + ["yuv420p"]:
        if name in formats:
            return name
    return formats[0]


class VideoWriter:
    """The new file of a ``VideoReader``'s video: its frames at ``size``
    encoded again, its other streams copied.

    Args:
        path: the file to write (the caller writes a temporary one and
            renames it: ``vdsr_tf.io.atomic``).
        container: the FFmpeg format name (``CONTAINERS``' values).
        reader: the ``VideoReader``, past its first frame.
        size: the output (H, W), even (``encodable_size``).
        codec, crf: as ``encoder_for``.

    Raises:
        ValueError: ``encoder_for``'s, or a container that cannot hold the
            video codec or a copied stream.
    """

    def __init__(self, path, container, reader, size, codec=None, crf=None):
        av = load_av()
        self.reader = reader
        self.out = av.open(os.fspath(path), "w", format=container)
        try:
            with _encoding(av):
                self._add_streams(av, container, codec, crf, size)
        except BaseException:
            self.out.close()
            raise

    def _add_streams(self, av, container, codec, crf, size):
        out, reader = self.out, self.reader
        held = out.supported_codecs
        self.name, encoder, options = encoder_for(codec, crf, reader.codec, container, held)
        if self.name not in held:
            raise ValueError(
                f"the {container} container cannot hold {self.name} video (--video_codec)"
            )
        for stream in reader.copied:
            codec = _codec(stream)
            if codec not in held:
                raise ValueError(
                    f"the {container} container cannot hold stream #{stream.index} ({stream.type}, "
                    f"{codec}) of the input: write to the input's container"
                )
        video = out.add_stream(encoder, rate=reader.rate)
        video.height, video.width = size
        video.pix_fmt = self.pix_fmt = _pixel_format(av, encoder, reader)
        video.time_base = reader.stream.time_base
        context = video.codec_context
        context.time_base = reader.stream.time_base
        for tag, value in reader.colour.items():
            setattr(context, tag, value)
        if reader.stream.sample_aspect_ratio:
            context.sample_aspect_ratio = reader.stream.sample_aspect_ratio
        video.options = options
        if reader.matrix:
            video.set_display_matrix(list(struct.unpack("=9i", reader.matrix)))
        video.metadata.update(_fresh(reader.stream.metadata))
        self.video = video
        self.copies = {}
        for stream in reader.copied:
            copy = out.add_stream_from_template(stream)
            copy.metadata.update(_fresh(stream.metadata))
            self.copies[stream.index] = copy
        out.metadata.update(_fresh(reader.container.metadata))
        chapters = reader.container.chapters()
        if chapters:
            out.set_chapters(chapters)

    def write(self, array, pts):
        """Encodes one RGB(A) frame (the reader's array type, at ``size``) at ``pts``."""
        av, colour = self.reader.av, self.reader.colour
        frame = av.VideoFrame.from_ndarray(array, format=self.reader.rgb_format).reformat(
            format=self.pix_fmt,
            dst_colorspace=colour["colorspace"] or None,
            dst_color_range=colour["color_range"] or None,
            interpolation="BICUBIC",
        )
        frame.pts, frame.time_base = pts, self.reader.stream.time_base
        with _encoding(av):
            self.out.mux(self.video.encode(frame))

    def copy(self, item):
        """Writes a ``Packet`` of a copied stream as it is."""
        item.packet.stream = self.copies[item.index]
        with _encoding(self.reader.av):
            self.out.mux(item.packet)

    def close(self):
        """Flushes the encoder and writes the container's trailer."""
        with _encoding(self.reader.av):
            self.out.mux(self.video.encode(None))
            self.out.close()

    def abort(self):
        """Closes without flushing (the file is discarded)."""
        with contextlib.suppress(Exception):
            self.out.close()
