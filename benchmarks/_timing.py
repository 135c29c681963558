"""Wall-clock timing shared by the benchmark scripts.

Standard library and JAX only, so the neural-tangents reference script can use it from its own
virtual environment. Scripts run as ``python benchmarks/NAME.py``, which puts this folder on
``sys.path``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def timed_calls(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` calls of ``fn`` after one warm-up call (which compiles), each
    waited for with ``block_until_ready``; returns (times, the last result)."""
    out = jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return times, out


def best_of(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Minimum wall time of ``repeats`` calls after a warm-up call."""
    return min(timed_calls(fn, repeats)[0])


def median_of(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls after a warm-up call."""
    return statistics.median(timed_calls(fn, repeats)[0])


def paired(fn: Callable[[], Any], floor: Callable[[], Any], repeats: int = 7) -> dict[str, float]:
    """Times of ``fn`` against a ``floor`` workload, measured alternately in the same process.

    Each repeat times ``floor`` then ``fn`` back to back, so both see the same machine state (a
    shared CPU's load and memory bandwidth drift over seconds); the ratio reported is the median
    of the per-pair ratios, next to the median times of each.
    """
    jax.block_until_ready(floor())
    jax.block_until_ready(fn())
    base, times = [], []
    for _ in range(repeats):
        for fun, sink in ((floor, base), (fn, times)):
            start = time.perf_counter()
            jax.block_until_ready(fun())
            sink.append(time.perf_counter() - start)
    ratios = [t / b for t, b in zip(times, base, strict=True)]
    return {
        "s": statistics.median(times),
        "floor_s": statistics.median(base),
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
    }
