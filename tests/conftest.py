"""Shared pytest fixtures."""

import os
import pathlib

import pytest

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def datasets_dir() -> pathlib.Path:
    """Root of the benchmark images (``Set5/``, ``Set14/``, ``B100/``, ...).

    Read from ``$VDSR_DATA_DIR``, else ``<repo root>/../shared/datasets``.
    Tests that use this fixture are skipped when the folder is missing.
    """
    path = pathlib.Path(
        os.environ.get("VDSR_DATA_DIR", _REPO_ROOT.parent / "shared" / "datasets")
    )
    if not path.is_dir():
        pytest.skip(
            f"benchmark datasets not found at {path}; set VDSR_DATA_DIR to the "
            "folder holding Set5/, Set14/ and B100/"
        )
    return path
