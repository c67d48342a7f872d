"""vdsr-app: a local web page to upscale photos (needs pip install 'vdsr-tf[app]').

    vdsr-app                      # http://127.0.0.1:7860, the bundled weights
    vdsr-app --port=7861 --weights=my_preset/
    vdsr-app --host=0.0.0.0       # others on the network can use it: no login!

Drop or choose images, pick the scale (x2, x3, x4, another factor or an
exact size), the ensemble and the precision, compare each result with
bicubic (a slider; the mouse wheel zooms), and download it as vdsr-upscale
writes it: same pixels, EXIF and colour profile kept. Requests queue: at
most --concurrency run at once, at most --queue_size wait. Uploads and
results live in a temporary folder: removed about an hour after they are
made, and all of it when the app stops (Ctrl-C).

There is no authentication: keep the app on 127.0.0.1 (the default), or
put it behind a proxy that has one. --share makes a public gradio.live link
through Gradio's servers; it is off by default.
"""

import contextlib
import importlib.util
import io
import logging
import re
import signal
import sys
import time

from absl import flags

from vdsr_tf import cli
from vdsr_tf.cli import CliError, entry_point
from vdsr_tf.cli import flags as shared
from vdsr_tf.inference.batch import Stopped

FLAGS = flags.FLAGS
PROG = "vdsr-app"
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer(
    "port",
    7860,
    "Port to listen on (0: the first free one from 7860).",
    lower_bound=0,
    upper_bound=65535,
)
flags.DEFINE_boolean(
    "share", False, "Also serve through a public gradio.live link (needs the internet; no login)."
)
shared.define_weights_flag(", or 'bicubic'")
shared.define_precision_flag("auto", "The precision the page offers first.")
flags.DEFINE_boolean("examples", True, "Offer the bundled sample images as examples.")
shared.define_tile_flags("Refuse outputs with more pixels than this, before decoding.")
flags.DEFINE_integer(
    "threads", None, "CPU threads of the network (default: every core).", lower_bound=1
)
flags.DEFINE_integer(
    "concurrency",
    1,
    "Requests upscaled at once; more wait in the queue (each holds an image's "
    "working memory, and one already uses every core).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "queue_size", 16, "Requests that may wait; more are told the queue is full.", lower_bound=1
)
flags.DEFINE_string(
    "max_file_size", "100mb", "The largest upload: a whole number and b, kb, mb or gb."
)
flags.register_validator(
    "max_file_size",
    lambda value: re.fullmatch(r"\d+\s*[kmgt]?b", value.strip().lower()) is not None,
    "--max_file_size must be a whole number and a unit, like 20mb or 1gb",
)
flags.DEFINE_boolean("open", False, "Open the page in the default browser.")
flags.DEFINE_boolean("verbose", False, "Show TensorFlow's and Gradio's own log lines (also -v).")


@entry_point(PROG)
def main(argv):
    if len(argv) > 1:
        raise CliError(f"vdsr-app takes no arguments, got {' '.join(argv[1:])}")
    if importlib.util.find_spec("gradio") is None:
        raise CliError("the web page needs Gradio: pip install 'vdsr-tf[app]'")
    if not FLAGS.verbose:  # the Gradio client's request lines
        logging.getLogger("httpx").setLevel(logging.WARNING)
    from vdsr_tf.app.jobs import Jobs
    from vdsr_tf.app.jobs import one_line as _line
    from vdsr_tf.app.page import launch

    try:
        jobs = Jobs(FLAGS.weights, FLAGS.tile, FLAGS.max_pixels, FLAGS.threads)
    except (OSError, ValueError) as e:
        raise CliError(_line(e))
    page = None
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        try:
            upscaler = jobs.upscaler(FLAGS.precision)  # loaded before the page: errors here
        except ValueError as e:
            raise CliError(str(e))
        try:
            page = launch(
                jobs,
                host=FLAGS.host,
                port=FLAGS.port or None,
                share=FLAGS.share,
                examples=FLAGS.examples,
                precision=FLAGS.precision,
                concurrency=FLAGS.concurrency,
                queue_size=FLAGS.queue_size,
                max_file_size=FLAGS.max_file_size,
                open_browser=FLAGS.open,
                quiet=not FLAGS.verbose,
            )
        except (OSError, ValueError) as e:  # a port in use
            raise CliError(_line(e))
        print(f"{PROG}: network: {upscaler.describe()}", file=sys.stderr)
        if FLAGS.host not in ("127.0.0.1", "localhost", "::1") or FLAGS.share:
            print(
                f"{PROG}: warning: anyone who can reach this address can use the app (no login)",
                file=sys.stderr,
            )
        if FLAGS.share and not page.share_url:
            print(
                f"{PROG}: warning: no share link (-v shows why); serving locally", file=sys.stderr
            )
        urls = [page.local_url] + ([page.share_url] if page.share_url else [])
        print(f"{PROG}: serving {' and '.join(urls)} (Ctrl-C stops)", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if page is not None:
            with contextlib.redirect_stdout(io.StringIO()):  # Gradio's "Closing server" line
                page.close()
        jobs.close()


def _stop(signum, frame):
    raise Stopped(signum)


def run_cli():
    cli.run(main, PROG, __name__, __doc__, aliases={"-v": "--verbose"})


if __name__ == "__main__":
    run_cli()
