"""A shared Upscaler under threads, and a long-lived one's memory: issue 34's
figures at small scale (benchmarks/concurrency.py makes the full ones)."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "concurrency.py")


@pytest.mark.slow(reason="the bundled 20 x 64 network on 4 threads, three engines")
@pytest.mark.parametrize("path", ["litert-fp32", "litert-int8", "keras-fp32"])
def test_shared_upscaler_on_threads_equals_one_thread_bit_for_bit(path, load_script):
    pytest.importorskip("ai_edge_litert")
    r = load_script("benchmarks/concurrency.py").threads_check(
        path, n_threads=4, calls=8, largest=40
    )
    assert r["calls_n_threads"] == 32
    assert r["error_count"] == 0, r["errors"]
    assert r["hung_threads"] == 0
    assert r["mismatches"] == 0


@pytest.mark.slow(reason="400 calls through one Upscaler in a fresh process, two engines")
@pytest.mark.parametrize("path", ["keras-fp32", "litert-fp32"])
def test_long_lived_upscaler_memory_stays_flat(path, tmp_path):
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "rss.json"
    proc = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "rss",
            "--tiny",
            f"--path={path}",
            "--calls=400",
            "--largest=512",
            f"--json={out}",
        ],
        # Few malloc arenas: on a many-core host glibc's per-thread arenas alone hold
        # tens of MB that are the allocator's, not the Upscaler's. TensorFlow's oneDNN
        # kernels off: their per-shape cache is bounded (an LRU) but its size depends on
        # the CPU (3 x 8 network: +36 MB by call 2,000 on an AVX2 EPYC, +200 MB,
        # flat after call 800, on an AVX-512 one; BUILD.md), and this test is about the
        # package's own shape-keyed state.
        env=dict(
            os.environ,
            PYTHONPATH=REPO,
            TF_CPP_MIN_LOG_LEVEL="3",
            MALLOC_ARENA_MAX="2",
            TF_ENABLE_ONEDNN_OPTS="0",
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())["results"]
    assert r["calls"] == 400 and r["output_megapixels"] > 5
    # Nearly every call has a new shape: a cache keyed by shape would grow with them.
    assert r["growth_mb"] < 50, r
