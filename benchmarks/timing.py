"""The one timer of the benchmark scripts (imported from their folder)."""

import statistics
import time


def median_seconds(fn, repeats):
    """Median wall seconds of ``repeats`` calls of ``fn()``, after one
    untimed warm-up call (tracing, allocation, caches)."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)
