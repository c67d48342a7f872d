"""Thin absl entry points: flags in, a config or arguments out, library calls.

Errors a user can fix are reported as one line, ``<prog>: error: <message>``,
with exit status 2, never a traceback: a ``CliError`` raised by a command, a
malformed or unknown flag. ``-h`` / ``--help`` print the command's own flags
and exit 0. Every command starts through ``run``.
"""

import importlib.abc
import importlib.util
import os
import signal
import sys

from vdsr_tf.io.stderr import native_lines_dropped  # noqa: E402

_HELP = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort")
_HELP_FULL = ("--helpfull", "-helpfull")


_VERBOSE = ("-v", "--verbose", "-verbose", "--verbosity", "-verbosity")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def stopped_by(signum):
    """How a stop by signal ``signum`` is said: "interrupted" (Ctrl-C) or
    "terminated (SIGTERM)"."""
    return (
        "interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})"
    )


def entry_point(prog):
    """Decorates an absl ``main``: a ``CliError`` becomes one stderr line, exit
    2; Ctrl-C (``KeyboardInterrupt``) one line, exit 130 (128 + SIGINT, as a
    shell reports a program the signal killed)."""

    def wrap(main):
        def wrapped(argv):
            try:
                return main(argv)
            except CliError as e:
                print(f"{prog}: error: {e}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as e:
                signum = getattr(e, "signum", signal.SIGINT)
                print(f"\n{prog}: stopped: {stopped_by(signum)}", file=sys.stderr)
                return 128 + signum

        return wrapped

    return wrap


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` inside ``native_lines_dropped``.

    Probes (``importlib.util.find_spec``) pass through it too; it leaves
    ``sys.meta_path`` when the module is executed.
    """

    _busy = False

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self._busy:
            return None
        self._busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy = False
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def quiet_exec(module):
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                with native_lines_dropped():
                    exec_module(module)

            spec.loader.exec_module = quiet_exec
        return spec


def _verbose(argv):
    return any(a.split("=")[0] in _VERBOSE for a in _options(argv))


def _plain_log_lines(prog):
    """The library's absl log lines (``logging.info``: "Timing the network paths
    ...", warnings) printed as the command's own: ``prog: message``."""
    import logging as std_logging

    from absl import logging

    class Plain(std_logging.Formatter):
        def format(self, record):
            level = "" if record.levelno <= std_logging.INFO else f"{record.levelname.lower()}: "
            text = f"{prog}: {level}{record.getMessage()}"
            if record.exc_info:  # logging.exception: the traceback stays
                text += "\n" + self.formatException(record.exc_info)
            if record.stack_info:
                text += "\n" + self.formatStack(record.stack_info)
            return text

    logging.get_absl_handler().setFormatter(Plain())


def quiet_native_logging():
    """Silences TensorFlow's and absl's C++ logging: for this process through
    the environment (read when TensorFlow loads, and by subprocesses) and a
    filter on the import itself, whose first lines come before the
    environment is read. Python warnings and the command's own lines stay.
    ``run`` calls it unless ``-v``, ``--verbose`` or ``--verbosity`` is given."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def help_text(module_name, doc):
    """The command's docstring and its own flags (absl's ``--help`` shows only
    the flags of ``__main__``, which a console script is not)."""
    import textwrap

    from absl import flags

    from vdsr_tf.cli.flags import DEPRECATED_ALIASES

    name = sys.argv[0] if module_name == "__main__" else module_name
    lines = [(doc or "").strip(), "", "Flags:"]
    for flag in sorted(flags.FLAGS.get_flags_for_module(name), key=lambda f: f.name):
        if flag.boolean:
            head = f"--{flag.name}, --no{flag.name}"
        elif getattr(flag.parser, "enum_values", None):
            head = f"--{flag.name}={'|'.join(flag.parser.enum_values)}"
        else:
            head = f"--{flag.name}=VALUE"
        value = flag.default
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        default = "" if value in (None, "") else f" (default: {value})"
        text = (flag.help or "").split(">: ", 1)[-1] if flag.help.startswith("<") else flag.help
        if flag.name in DEPRECATED_ALIASES:
            text = text.rstrip(".") + "; deprecated, goes in the next release."
        lines.append(f"  {head}")
        lines += textwrap.wrap(
            (text or "") + default, 76, initial_indent="      ", subsequent_indent="      "
        )
    lines += ["", "Try --helpfull for absl's own flags too."]
    return "\n".join(lines)


def _options(argv):
    """The arguments before a ``--`` terminator."""
    args = list(argv[1:])
    return args[: args.index("--")] if "--" in args else args


def _print_and_exit(text):
    """Prints help and exits 0, quietly when the reader has gone (``| head``)."""
    import os

    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _apply_aliases(argv, aliases):
    """``argv`` with each bare short option of ``aliases`` spelled out, before
    any ``--``: ``-v`` becomes ``--verbose``, but ``-v 1`` / ``-v=1`` (absl's
    verbosity) stay as they are."""
    out, done = [argv[0]], False
    for i, arg in enumerate(argv[1:], 1):
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if not done and arg in aliases and not nxt.lstrip("-").isdigit():
            arg = aliases[arg]
        done = done or arg == "--"
        out.append(arg)
    return out


def run(main, prog, module_name, doc, known_only=False, aliases=None):
    """``absl.app.run(main)`` with the package's conventions for help and flag errors.

    Args:
        main: the command's ``main(argv)`` (``entry_point``-decorated).
        prog: the command's name, for messages.
        module_name, doc: the command module's ``__name__`` and ``__doc__``.
        known_only: leave flags this program does not define in ``argv`` for
            ``main`` (Beam pipeline options), instead of refusing them.
        aliases: ``{"-v": "--verbose"}``: short options that stand for a
            boolean flag of the command.
    """
    from absl import app, flags

    if not _verbose(sys.argv):
        quiet_native_logging()
        _plain_log_lines(prog)

    def parse(argv):
        argv = _apply_aliases(argv, aliases or {})
        options = _options(argv)
        if any(a in _HELP for a in options):
            _print_and_exit(help_text(module_name, doc))
        if any(a in _HELP_FULL for a in options):
            _print_and_exit(f"{(doc or '').strip()}\n\n{flags.FLAGS.get_help()}")
        try:
            return flags.FLAGS(argv, known_only=known_only)
        except flags.Error as e:
            message = " ".join(str(e).split())
            print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
            sys.exit(2)

    app.run(main, flags_parser=parse)
