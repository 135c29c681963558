"""Benchmark of ntkbook.limits: JSON on stdout, each time as a ratio to a jitted X Xᵀ GEMM.

Workloads (float32, d = 64, the issue's list):
- ReLU Θ∞ (which computes Σ on the way) of a depth-3 MLP at N ∈ {1000, 2000, 4000}; also
  Σ, Σ̇ and Θ of the last layer returned together (``kernels(layers=[-1])``, three outputs) and
  every layer (``kernels``, 3L outputs); at the largest N also erf, and ReLU in float64 (its
  own float64 GEMM as the floor);
- tanh depth-3 MLP at N = 2000 with the automatic rule (the Mehler series, its length chosen
  from the variance), for inputs scaled to Σ¹(x, x) = 1 and 30 (neural-tangents'
  ElementwiseNumerical, tensor Gauss–Hermite deg = 25, takes 27 s at Σ¹ ≈ 1 on this 2-core
  CPU: figure from issue 3);
- peak RSS at N = 20 000, diagonal and full blocked Θ∞, each in a fresh subprocess
  (resource.getrusage ru_maxrss), next to the baseline RSS of a process that only imports.

Times: after one warm-up (compile) call, ``REPEATS`` pairs of calls (GEMM, then the kernel),
each waited for with ``block_until_ready``; the ratio is the median of the per-pair ratios
(``_timing.paired``), so a drift in the machine's load affects both sides alike.
Usage: ``python benchmarks/limits.py [--quick]`` (quick: smaller N, for a smoke test).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

from _timing import paired

REPEATS = 9


def timings(sizes: list[int], tanh_n: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)  # for the float64 row; every input is typed
    import jax.numpy as jnp
    import numpy as np

    import ntkbook

    gemm = jax.jit(lambda a: a @ a.T)
    out = {}
    rng = np.random.default_rng(0)
    for n in sorted({*sizes, tanh_n}):
        x = jnp.asarray(rng.normal(size=(n, 64)), jnp.float32)
        floor = functools.partial(gemm, x)
        row = {}
        if n in sizes:
            row["relu_ntk"] = paired(lambda x=x: ntkbook.ntk(x, depth=3), floor, REPEATS)
            row["relu_last_layer_sigma_sigma_dot_theta"] = paired(
                lambda x=x: ntkbook.limits.kernels(x, depth=3, layers=[-1]), floor, REPEATS
            )
            row["relu_all_layers"] = paired(
                lambda x=x: ntkbook.limits.kernels(x, depth=3), floor, max(3, REPEATS // 3)
            )
        if n == max(sizes):
            row["erf_ntk"] = paired(
                lambda x=x: ntkbook.ntk(x, depth=3, activation="erf"), floor, REPEATS
            )
            x64 = x.astype(jnp.float64)
            row["relu_ntk_float64"] = paired(
                lambda x=x64: ntkbook.ntk(x, depth=3), functools.partial(gemm, x64), REPEATS
            )
        if n == tanh_n:
            # rows scaled to Σ¹(x, x) = ‖x‖²/d = 1 and 30: the automatic rule's cost grows with
            # the variance (Mehler terms for relative error 1e-8 in float32)
            unit = x / jnp.linalg.norm(x, axis=1, keepdims=True) * jnp.sqrt(64.0)
            for s1, repeats in ((1, 5), (30, 3)):
                xs = unit * jnp.sqrt(float(s1))
                tanh = paired(
                    lambda x=xs: ntkbook.ntk(x, depth=3, activation="tanh"), floor, repeats
                )
                row[f"tanh_ntk_sigma1_{s1}"] = {**tanh, "vs_neural_tangents_27s": 27.0 / tanh["s"]}
        out[str(n)] = row
    return out


PEAK = """
import resource, sys, jax, jax.numpy as jnp, numpy as np, ntkbook
n, mode = int(sys.argv[1]), sys.argv[2]
if mode != "none":
    x = jnp.asarray(np.random.default_rng(0).normal(size=(n, 64)), jnp.float32)
    ntkbook.ntk(x, depth=3, diagonal=(mode == "diagonal")).block_until_ready()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def peak_gib(n: int, mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(n), mode], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


def main() -> None:
    quick = "--quick" in sys.argv
    sizes = [250, 500] if quick else [1000, 2000, 4000]
    tanh_n = 500 if quick else 2000
    big = 2000 if quick else 20_000
    result = {
        "dtype": "float32",
        "depth": 3,
        "d": 64,
        "times": timings(sizes, tanh_n),
        "peak_rss_gib": {
            "n": big,
            "import_only": peak_gib(big, "none"),
            "diagonal": peak_gib(big, "diagonal"),
            "full_blocked": peak_gib(big, "full"),
            "output_matrix": big * big * 4 / 2**30,
        },
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
