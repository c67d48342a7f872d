"""tools/chain_chart.py and tools/release/history.json: the bundled weights'
chain, scored cycle by cycle, and its time-to-quality chart (BUILD.md).

The history must agree with the chain's state (every committed cycle has its
point, with the state's own seconds and patches), with the bundled weights'
scores, and with the chart on disk."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vdsr_tf.io.checkpoint import read_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "chain_chart.py")
RELEASE = os.path.join(REPO, "tools", "release")
CELLS = [(s, x) for s in ("Set5", "Set14", "B100") for x in ("x2", "x3", "x4")]


def _tool(*args):
    return subprocess.run(
        [sys.executable, TOOL, *args], capture_output=True, text=True, timeout=120
    )


def _refused(message, *args):
    """``chain_chart.py ARGS`` answers one error line, exit 2."""
    proc = _tool(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"chain_chart: error: {message}"]


def _history():
    with open(os.path.join(RELEASE, "history.json")) as f:
        return json.load(f)["points"]


def test_the_chart_on_disk_is_what_the_history_draws():
    proc = _tool("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "time_to_quality.svg" in open(os.path.join(REPO, "BUILD.md")).read()


def test_every_cycle_of_the_chain_state_has_its_point():
    meta = read_state(os.path.join(RELEASE, "state.npz"))[0]
    points = _history()
    assert [p["cycle"] for p in points] == [r["cycle"] for r in meta["runs"]]
    for point, run in zip(points, meta["runs"]):
        for key in ("date", "device", "peak_lr", "train_seconds", "patches"):
            assert point[key] == run[key], (point["cycle"], key)
    assert sum(p["patches"] for p in points) == meta["patches_total"]


def test_the_bundled_weights_point_has_their_scores():
    with open(os.path.join(REPO, "vdsr_tf", "presets", "bundled", "metadata.json")) as f:
        bundled = json.load(f)
    seen, matched = 0, []
    for point in _history():
        seen += point["patches"]
        if seen == bundled["patches_seen"]:
            matched.append(point)
    assert len(matched) == 1
    for s, x in CELLS:
        reference = matched[0]["vdsr_eval"][s][x]
        assert reference == pytest.approx(bundled["scores"][s][x]["psnr"], abs=1e-4)
        # The job's quick score reads below vdsr-eval's (uint8 LR), by a little.
        assert 0 < reference - matched[0]["quick"][s][x] < 0.2, (s, x)


def _fake_run(folder, cycle, runs, quick):
    """A release-job output folder: a weights-less state whose meta has
    ``runs``, and the job's ``scores.json``."""
    folder.mkdir()
    meta = {"cycles": cycle, "runs": runs}
    blob = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(folder / "state.npz", meta=blob)
    scores = {f"{s}/{x}": {"psnr": v, "ssim": 0.9, "n": 5} for (s, x), v in quick.items()}
    (folder / "scores.json").write_text(json.dumps(scores))
    return folder


def test_add_appends_the_runs_last_cycle_and_redraws(tmp_path):
    history = tmp_path / "history.json"
    shutil.copy(os.path.join(RELEASE, "history.json"), history)
    chart = tmp_path / "chart.svg"
    n = len(_history())
    run = {
        "cycle": n + 1,
        "date": "2027-01-02",
        "device": "NVIDIA H200",
        "peak_lr": 3e-4,
        "train_seconds": 250.0,
        "patches": 7_000_000,
    }
    quick = {cell: 29.0 + i / 10 for i, cell in enumerate(CELLS)}
    folder = _fake_run(tmp_path / "run", n + 1, [{"cycle": 1}, run], quick)
    scores = {
        s: {x: {"psnr": 30.0 + i, "ssim": 0.9} for i, x in enumerate(("x2", "x3", "x4"))}
        for s in ("Set5", "Set14", "B100")
    }
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps(scores))
    args = [f"--history={history}", f"--chart={chart}"]

    proc = _tool(f"--add={folder}", f"--eval_json={eval_json}", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    points = json.loads(history.read_text())["points"]
    assert len(points) == n + 1
    assert points[-1] == dict(
        run,
        quick={
            s: {x: quick[(s, x)] for x in ("x2", "x3", "x4")} for s in ("Set5", "Set14", "B100")
        },
        quick_by="the job on the NVIDIA H200",
        vdsr_eval={s: {"x2": 30.0, "x3": 31.0, "x4": 32.0} for s in ("Set5", "Set14", "B100")},
    )
    svg = chart.read_text()
    # A hollow marker per cell and cycle (quick), a filled one per vdsr-eval score.
    scored = sum(p["vdsr_eval"] is not None for p in points)
    assert svg.count('fill="white" stroke=') == 9 * (n + 1)
    assert svg.count("<circle") == 9 * (n + 1 + scored) and svg.count("<polyline") == 9
    assert _tool("--check", *args).returncode == 0

    # The same cycle twice, or scores that lack a cell: one line, nothing changed.
    before = history.read_bytes(), chart.read_bytes()
    _refused(
        f"cycle {n + 1} is in {history} already",
        f"--add={folder}",
        f"--eval_json={eval_json}",
        *args,
    )
    del scores["B100"]
    eval_json.write_text(json.dumps(scores))
    other = _fake_run(tmp_path / "run2", n + 2, [dict(run, cycle=n + 2)], quick)
    _refused(
        f"{eval_json} is not vdsr-eval --json of Set5/Set14/B100: 'B100'",
        f"--add={other}",
        f"--eval_json={eval_json}",
        *args,
    )
    assert (history.read_bytes(), chart.read_bytes()) == before
    # A cycle that skips one: refused too.
    gap = _fake_run(tmp_path / "run3", n + 3, [dict(run, cycle=n + 3)], quick)
    _refused(
        f"cycle {n + 3} does not follow cycle {n + 1}",
        f"--add={gap}",
        f"--eval_json={eval_json}",
        *args,
    )
    assert (history.read_bytes(), chart.read_bytes()) == before


def test_check_reports_a_stale_chart(tmp_path):
    chart = tmp_path / "chart.svg"
    chart.write_text("<svg/>\n")
    proc = _tool("--check", f"--chart={chart}")
    assert proc.returncode == 1
    assert proc.stdout.strip() == f"{chart} is out of date: run python tools/chain_chart.py"
    assert chart.read_text() == "<svg/>\n"


def test_a_broken_history_is_one_line(tmp_path):
    history = tmp_path / "history.json"
    points = _history()
    del points[0]["quick"]["B100"]
    history.write_text(json.dumps({"points": points}))
    _refused(
        f"{history} is not a chain history: no 'B100'",
        f"--history={history}",
        f"--chart={tmp_path / 'chart.svg'}",
    )
    assert not (tmp_path / "chart.svg").exists()
