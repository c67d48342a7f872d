"""Time to quality of the bundled weights' training chain: each cycle's nine
cells (Set5, Set14, B100 at x2/x3/x4) against cumulative GPU training seconds.

    python tools/chain_chart.py                                   # redraw
    python tools/chain_chart.py --add=RUN --eval_json=EVAL.json   # after a lease

The chain's scored history is ``tools/release/history.json``: one point per
cycle, with the cycle's date, device, training seconds and patches (from the
run's ``state.npz``, which records every cycle) and two sets of PSNR: the
job's own quick score (``scores.json``: Y planes, uint8 LR), which every
cycle has and which compares cycles like with like, and ``vdsr-eval``'s (the
reference; ``--json`` of the run's weights), null where the weights were not
kept. ``--add`` appends the run's last cycle, whether its weights were
bundled or not. The chart, ``tools/release/time_to_quality.svg`` (shown in
BUILD.md), plots PSNR minus the paper's (0 is the paper, the issue's goal
+0.10 dB): lines through the quick scores, filled markers at vdsr-eval's.
It is plain SVG written here (no plotting library); ``--check`` exits 1 when
the file on disk is not what the history draws.
"""

import json
import os
import sys

from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vdsr_tf import cli  # noqa: E402 (the repository's package)
from vdsr_tf.io.presets import PAPER_PSNR  # noqa: E402

RELEASE = os.path.join(REPO, "tools", "release")
HISTORY = os.path.join(RELEASE, "history.json")
CHART = os.path.join(RELEASE, "time_to_quality.svg")
SETS = ("Set5", "Set14", "B100")
SCALES = ("x2", "x3", "x4")
GOAL = 0.10  # dB above the paper in every cell (issue 38)
RUN_FIELDS = ("cycle", "date", "device", "peak_lr", "train_seconds", "patches")

FLAGS = flags.FLAGS
flags.DEFINE_string("add", None, "A train_release.sh output folder whose cycle to append.")
flags.DEFINE_string("eval_json", None, "vdsr-eval --json of that run's weights.")
flags.DEFINE_string("history", HISTORY, "The chain's scored history.")
flags.DEFINE_string("chart", CHART, "The SVG to write.")
flags.DEFINE_boolean("check", False, "Write nothing; exit 1 if the chart is out of date.")


def read_history(path):
    """The history file, checked: every point has the run's fields, nine
    quick cells and nine vdsr-eval cells (or null)."""
    try:
        with open(path) as f:
            history = json.load(f)
        for i, point in enumerate(history["points"]):
            for key in RUN_FIELDS + ("quick", "vdsr_eval"):
                if key not in point:
                    raise ValueError(f"point {i + 1} has no {key}")
            for key in ("quick", "vdsr_eval"):
                cells = point[key]
                if cells is None and key == "vdsr_eval":
                    continue
                for s in SETS:
                    for x in SCALES:
                        if not isinstance(cells[s][x], (int, float)):
                            raise ValueError(f"point {i + 1}: {key} {s} {x} is not a number")
    except OSError as e:
        raise cli.CliError(f"cannot read {path}: {e.strerror}") from None
    except KeyError as e:
        raise cli.CliError(f"{path} is not a chain history: no {e}") from None
    except (ValueError, TypeError) as e:
        raise cli.CliError(f"{path} is not a chain history: {e}") from None
    return history


def new_point(run_dir, eval_path, history):
    """The history point of ``run_dir``'s last cycle, scored by ``eval_path``."""
    from vdsr_tf.io.checkpoint import read_state

    try:
        meta = read_state(os.path.join(run_dir, "state.npz"))[0]
    except (FileNotFoundError, ValueError) as e:
        raise cli.CliError(str(e)) from None
    runs = meta.get("runs") or []
    if not runs or any(k not in runs[-1] for k in RUN_FIELDS):
        raise cli.CliError(f"{run_dir}/state.npz records no finished cycle")
    run = runs[-1]
    cycles = [p["cycle"] for p in history["points"]]
    if run["cycle"] in cycles:
        raise cli.CliError(f"cycle {run['cycle']} is in {FLAGS.history} already")
    if cycles and run["cycle"] != cycles[-1] + 1:
        raise cli.CliError(f"cycle {run['cycle']} does not follow cycle {cycles[-1]}")
    quick_path = os.path.join(run_dir, "scores.json")
    quick = _cells(quick_path, lambda d, s, x: d[f"{s}/{x}"], "the job's scores.json")
    reference = _cells(eval_path, lambda d, s, x: d[s][x], "vdsr-eval --json")
    point = {k: run[k] for k in RUN_FIELDS}
    point.update(quick=quick, quick_by=f"the job on the {run['device']}", vdsr_eval=reference)
    return point


def _cells(path, get, what):
    """The nine cells' PSNR (to 0.0001 dB) of a scores file: ``get(data, set, scale)``."""
    try:
        with open(path) as f:
            data = json.load(f)
        return {s: {x: round(float(get(data, s, x)["psnr"]), 4) for x in SCALES} for s in SETS}
    except OSError as e:
        raise cli.CliError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise cli.CliError(f"{path} is not {what} of {'/'.join(SETS)}: {e}") from None


def gaps(psnr):
    """``{(set, scale): dB above the paper}`` of one point's nine cells."""
    return {(s, x): psnr[s][x] - PAPER_PSNR[s][x] for s in SETS for x in SCALES}


# Drawing. Colours by set, dashes by scale; lines and hollow markers are the
# job's quick scores, filled markers vdsr-eval's.
COLOURS = {"Set5": "#1f77b4", "Set14": "#d62728", "B100": "#2ca02c"}
DASHES = {"x2": "", "x3": ' stroke-dasharray="6 3"', "x4": ' stroke-dasharray="2 3"'}
W, H = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 40, 50


def _ticks(lo, hi, step):
    first = int(lo / step + (0 if lo <= 0 else 0.999999))
    return [round(i * step, 6) for i in range(first, int(hi / step + 1e-9) + 1)]


def render(history):
    """The chart of ``history`` as SVG text (deterministic: same history, same bytes)."""
    points = history["points"]
    xs, total = [], 0.0
    for p in points:
        total += p["train_seconds"]
        xs.append(total)
    quick = [gaps(p["quick"]) for p in points]
    reference = [gaps(p["vdsr_eval"]) if p["vdsr_eval"] else None for p in points]
    all_gaps = [g for q in quick + reference if q for g in q.values()]
    y_lo = min([-0.10] + [int(g / 0.05 - 1) * 0.05 for g in all_gaps])
    y_hi = max([GOAL + 0.05] + [int(g / 0.05 + 1) * 0.05 for g in all_gaps])
    x_hi = max(100.0, (int(total / 100) + 1) * 100.0)
    px = lambda x: LEFT + (W - LEFT - RIGHT) * x / x_hi  # noqa: E731
    py = lambda y: TOP + (H - TOP - BOTTOM) * (y_hi - y) / (y_hi - y_lo)  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2:.1f}" y="22" text-anchor="middle" font-size="14">'
        "Bundled chain: PSNR minus the paper's, per cell</text>",
    ]
    for y in _ticks(y_lo, y_hi, 0.05):
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'stroke="#eeeeee"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:+.2f}</text>')
    for x in _ticks(0, x_hi, 100.0):
        out.append(
            f'<text x="{px(x):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{x:.0f}</text>'
        )
    for y, label, dash in ((0.0, "paper", ""), (GOAL, "goal +0.10", ' stroke-dasharray="4 4"')):
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'stroke="black"{dash}/>'
        )
        out.append(f'<text x="{LEFT + 4}" y="{py(y) - 4:.1f}">{label}</text>')
    out.append(
        f'<text x="{(LEFT + W - RIGHT) / 2:.1f}" y="{H - 12}" text-anchor="middle">'
        "cumulative GPU training seconds</text>"
    )
    out.append(
        f'<text x="16" y="{(TOP + H - BOTTOM) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(TOP + H - BOTTOM) / 2:.1f})">dB vs the paper</text>'
    )
    for i, (s, x) in enumerate((s, x) for s in SETS for x in SCALES):
        colour = COLOURS[s]
        coords = [(px(xv), py(q[(s, x)])) for xv, q in zip(xs, quick)]
        line = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
        out.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"'
            f"{DASHES[x]}/>"
        )
        for a, b in coords:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="white" stroke="{colour}"/>')
        for xv, r in zip(xs, reference):
            if r:
                out.append(
                    f'<circle cx="{px(xv):.1f}" cy="{py(r[(s, x)]):.1f}" r="3.5" fill="{colour}"/>'
                )
        ly = TOP + 40 + 18 * i
        out.append(
            f'<line x1="{W - RIGHT + 4}" x2="{W - RIGHT + 30}" y1="{ly}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="1.5"{DASHES[x]}/>'
        )
        out.append(f'<text x="{W - RIGHT + 36}" y="{ly + 4}">{s} ×{x[1]}</text>')
    ly = TOP + 40 + 18 * 9 + 8
    for j, note in enumerate(
        ("lines, hollow: the job's", "quick Y-plane scores;", "filled: vdsr-eval")
    ):
        out.append(f'<text x="{W - RIGHT + 4}" y="{ly + 12 * j}" font-size="10">{note}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


@cli.entry_point("chain_chart")
def main(argv):
    del argv
    from vdsr_tf.io.atomic import atomic_write_text

    if bool(FLAGS.add) != bool(FLAGS.eval_json):
        raise cli.CliError("--add and --eval_json go together")
    if FLAGS.check and FLAGS.add:
        raise cli.CliError("--check writes nothing: it cannot --add")
    history = read_history(FLAGS.history)
    if FLAGS.add:
        history["points"].append(new_point(FLAGS.add, FLAGS.eval_json, history))
    if not history["points"]:
        raise cli.CliError(f"{FLAGS.history} has no points yet: --add a run's cycle")
    svg = render(history)
    if FLAGS.check:
        try:
            with open(FLAGS.chart) as f:
                current = f.read()
        except OSError:
            current = None
        if current != svg:
            print(f"{FLAGS.chart} is out of date: run python tools/chain_chart.py")
            return 1
        return 0
    if FLAGS.add:
        atomic_write_text(FLAGS.history, json.dumps(history, indent=1) + "\n")
    atomic_write_text(FLAGS.chart, svg)
    last = history["points"][-1]
    print(
        f"{FLAGS.chart}: {len(history['points'])} cycles, {sum(p['train_seconds'] for p in history['points']):.1f} s; "
        f"cycle {last['cycle']}: "
        + ", ".join(
            f"{s} {x} {g:+.2f}" for (s, x), g in gaps(last["vdsr_eval"] or last["quick"]).items()
        )
    )
    return 0


if __name__ == "__main__":
    cli.run(main, "chain_chart", __name__, __doc__)
