"""The notebooks in ``notebooks/`` run top to bottom (QUICK mode) and are committed stripped.

Each notebook is executed with nbclient in a fresh kernel of *this* interpreter (a temporary
kernelspec running ``sys.executable -m ipykernel_launcher``, first on ``JUPYTER_PATH``; the
test checks the kernel's ``sys.executable`` and ``sys.prefix``), on the CPU, with
``MPLBACKEND=Agg`` and the working directory in a temporary folder. ``QUICK = True`` is
injected as a cell right after the ``parameters`` cell, in memory only.
"""

import json
import math
import os
import pathlib
import re
import sys
import time

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="notebook tests need nbformat (pip install -e '.[test]')"
)
nbclient = pytest.importorskip(
    "nbclient", reason="notebook tests need nbclient (pip install -e '.[test]')"
)
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel (pip install -e '.[test]')")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ["01_quickstart.ipynb", "02_training.ipynb", "03_deployment.ipynb"]
CELL_TIMEOUT_S = 300
MAX_QUICK_SECONDS = 180  # measured 7-11 s each on a busy 2-core CPU; a guard, not a benchmark
KERNEL_NAME = "vdsr-notebook-test"
NUMBER = r"([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|inf|nan)"


def _read(name):
    return nbformat.read(NOTEBOOK_DIR / name, as_version=4)


def _parameters_index(nb):
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return i
    raise AssertionError("no code cell tagged 'parameters'")


def _text(nb):
    """All stream and text/plain output of the executed notebook, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stdout":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _numbers(pattern, text):
    return [float(m) for m in re.findall(pattern, text)]


@pytest.fixture
def run_notebook(tmp_path, monkeypatch):
    """Executes a notebook in QUICK mode; returns (executed notebook, stdout text, seconds)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join([str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    )
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' tempfile.mkdtemp() folders
    # A kernelspec of exactly this interpreter, found first (JUPYTER_PATH precedes the user's
    # and the environment's kernel folders), so a user-wide "python3" kernel cannot win.
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"Python ({sys.executable})",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv(
        "JUPYTER_PATH",
        os.pathsep.join(
            [str(tmp_path / "jupyter")] + [p for p in [os.environ.get("JUPYTER_PATH")] if p]
        ),
    )
    work_dir = tmp_path / "cwd"
    work_dir.mkdir()

    def run(name):
        nb = _read(name)
        i = _parameters_index(nb)
        injected = nbformat.v4.new_code_cell(
            "QUICK = True\n"
            "import sys\n"
            "print('KERNEL_EXECUTABLE', sys.executable)\n"
            "print('KERNEL_PREFIX', sys.prefix)"
        )
        injected.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(i + 1, injected)
        client = nbclient.NotebookClient(
            nb,
            timeout=CELL_TIMEOUT_S,
            kernel_name=KERNEL_NAME,
            resources={"metadata": {"path": str(work_dir)}},
        )
        t0 = time.monotonic()
        client.execute()  # raises CellExecutionError with the traceback on any error
        seconds = time.monotonic() - t0
        print(f"{name}: executed in QUICK mode in {seconds:.1f} s")
        assert seconds < MAX_QUICK_SECONDS, f"{name} took {seconds:.0f} s in QUICK mode"
        text = _text(nb)
        assert f"KERNEL_EXECUTABLE {sys.executable}\n" in text, text[:500]
        assert f"KERNEL_PREFIX {sys.prefix}\n" in text, text[:500]
        return nb, text, seconds

    return run


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_stripped(name):
    nb = _read(name)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: a cell has outputs: {cell.source[:60]!r}"
            assert cell.execution_count is None, f"{name}: execution_count set"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "jupyter lab notebooks/" in first.source
    params = nb.cells[_parameters_index(nb)].source
    assert re.search(r"^QUICK = False\b", params, re.M), params
    assert re.search(r"^WEIGHTS = None\b|^DATA = None\b", params, re.M), params


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


def _figure_paths(text):
    paths = re.findall(r"figure saved to (\S+)", text)
    assert paths, "no figure was saved"
    for p in paths:
        assert os.path.getsize(p) > 1000, p
    return paths


@pytest.mark.slow(reason="executes a notebook")
def test_quickstart(run_notebook):
    _, text, _ = run_notebook("01_quickstart.ipynb")
    bicubic = _numbers(r"PSNR bicubic:\s+" + NUMBER + " dB", text)
    vdsr = _numbers(r"PSNR VDSR:\s+" + NUMBER + " dB", text)
    assert len(bicubic) == len(vdsr) == 1, text
    assert 15 < bicubic[0] < 50 and math.isfinite(vdsr[0]), (bicubic, vdsr)
    # By default the bundled weights: well above bicubic (butterfly x3: 24.0 -> 27+ dB).
    assert "bundled weights: GPU-trained" in text, text
    assert re.search(r"network: (litert|keras)-(fp32|bf16|int8)( on \d+ threads?)?: ", text), text
    assert vdsr[0] > bicubic[0] + 1, (bicubic, vdsr)
    _figure_paths(text)


@pytest.mark.slow(reason="executes a notebook (trains)")
def test_training(run_notebook):
    _, text, _ = run_notebook("02_training.ipynb")
    assert "input/target patch pairs" in text, text
    assert re.search(r"gradient clip active: values clipped to \[-" + NUMBER, text), text
    epochs = re.findall(
        r"epoch (\d+): loss " + NUMBER + r" clip_fraction " + NUMBER + r" .*val_psnr_x3 " + NUMBER,
        text,
    )
    assert len(epochs) == 2, text  # QUICK: 2 epochs, scale 3
    for _, loss, clipped, val in epochs:
        # 6 steps from He init (a random residual: about 8 dB), so only finite and sane.
        assert math.isfinite(float(loss)) and 0 <= float(clipped) <= 1, epochs
        assert 3 < float(val) < 60, epochs
    assert float(epochs[0][2]) > 0, epochs  # at lr 0.1 the clip acts from the first step
    final = _numbers(r"final val_psnr_x3: " + NUMBER + " dB", text)
    assert len(final) == 1 and math.isfinite(final[0]), text
    assert len(_figure_paths(text)) >= 2  # patch grid + curves


@pytest.mark.slow(reason="executes a notebook (exports a SavedModel and .tflite files)")
def test_deployment(run_notebook):
    _, text, _ = run_notebook("03_deployment.ipynb")
    for sig in ("serving_default", "upscale_image", "upscale_rgb"):
        diff = _numbers(sig + r": max abs difference to the Keras upscaler " + NUMBER, text)
        assert len(diff) == 1 and diff[0] <= (1e-4 if sig == "serving_default" else 1), (sig, text)
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("keras", "fp32", "fp16", "dynamic", "int8"):
            rows[cells[0]] = cells
    assert set(rows) == {"keras", "fp32", "fp16", "dynamic", "int8"}, text
    for variant, (_, kb, diff, db, _) in rows.items():
        assert float(kb) > 0 and math.isfinite(float(db)) and 15 < float(db) < 60, rows
        # float Y in [0, 1]; int8 quantizes every activation (BUILD.md: ~1e-2 when trained)
        bound = {"keras": 1e-6, "fp32": 1e-4, "fp16": 1e-2, "dynamic": 5e-2}.get(variant, 0.25)
        assert float(diff) < bound, (variant, rows)
