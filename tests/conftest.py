"""Shared pytest fixtures."""

import importlib.util
import os
import pathlib

import pytest

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _timing_cache(tmp_path_factory):
    """``precision="auto"``'s per-machine timing cache lives in a folder of
    this test session (subprocesses inherit it), never in the user's home."""
    os.environ["VDSR_TF_CACHE"] = str(tmp_path_factory.mktemp("vdsr_tf_cache"))


@pytest.fixture(scope="session")
def load_script():
    """``load_script("tools/kill_soak.py")``: a script of the repository (not
    a package module) imported by path, once per session."""
    loaded = {}

    def load(relative):
        if relative not in loaded:
            path = _REPO_ROOT / relative
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[relative] = module
        return loaded[relative]

    return load


@pytest.fixture(scope="session")
def datasets_dir() -> pathlib.Path:
    """Root of the benchmark images (``Set5/``, ``Set14/``, ``B100/``, ...).

    Read from ``$VDSR_DATA_DIR``, else ``<repo root>/../shared/datasets``.
    Tests that use this fixture are skipped when the folder is missing.
    """
    path = pathlib.Path(os.environ.get("VDSR_DATA_DIR", _REPO_ROOT.parent / "shared" / "datasets"))
    if not path.is_dir():
        pytest.skip(
            f"benchmark datasets not found at {path}; set VDSR_DATA_DIR to the "
            "folder holding Set5/, Set14/ and B100/"
        )
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> str:
    """A depth-3, 8-filter ``vdsr.weights.h5`` with the ``config.json`` that
    ``vdsr-train`` would write beside it (so ``load_pretrained`` finds the
    architecture). Untrained: for tests of plumbing, not of quality."""
    from vdsr_tf import config as C
    from vdsr_tf.models.vdsr import build_vdsr

    folder = tmp_path_factory.mktemp("tiny_weights")
    cfg = C.override(C.get_preset("paper"), **{"model.depth": 3, "model.filters": 8})
    (folder / "config.json").write_text(C.to_json(cfg))
    path = str(folder / "vdsr.weights.h5")
    build_vdsr(depth=3, filters=8).save_weights(path)
    return path


@pytest.fixture
def no_tf_env(tmp_path):
    """Environment for a subprocess that runs as on the GPU host: TensorFlow
    cannot be imported (a ``sitecustomize`` blocks it), KERAS_BACKEND unset
    (the scripts set it). Skips when JAX is missing."""
    pytest.importorskip("jax")
    block = tmp_path / "block_tf"
    block.mkdir(exist_ok=True)
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None\n")
    env = dict(os.environ, PYTHONPATH=str(block), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    return env
