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
Also (issue 22): ``rule_search`` — seconds to choose the rule for a new (activation,
max_variance) on the host, cold (cache cleared; σ's compiled evaluation kept) and cached, each
as a ratio to a baseline measured in the same run (compiling and running a fresh jitted
X Xᵀ); ``agreement`` — from a child process on 4 simulated CPU devices, the largest relative
difference (to √(Θ(x,x)Θ(x',x'))) between eager, ``jax.jit``, ``jax.vmap`` and ``mesh=``
results, float64, rows at ‖x‖²/n₀ = 1e-4, 1, 1e2, 1e4 (``max_variance=2^15``; tanh under 16 by
default: rows 1e-4 … 8).
Usage: ``python benchmarks/limits.py [--quick | --rules]`` (quick: smaller N, for a smoke
test; rules: only rule_search and agreement).
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


AGREEMENT = """
import os, sys, json
flag = " --xla_force_host_platform_device_count=4"
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + flag
import functools, jax, numpy as np
jax.config.update("jax_enable_x64", True)
from ntkbook import limits, sharding
mesh = sharding.device_mesh()
out = {}
cases = {"relu": ("relu", None, (1e-4, 1, 1e2, 1e4)), "tanh": ("tanh", None, (1e-4, 1e-2, 1, 8)),
         "tanh_big": ("tanh", 2.0**15, (1e-4, 1, 1e2, 1e4)),
         "softplus": ("softplus", 2.0**15, (1e-4, 1, 1e2, 1e4)),
         "jax.nn.elu": (jax.nn.elu, 2.0**15, (1e-4, 1, 1e2, 1e4))}
for name, (act, mv, scales) in cases.items():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(8, 3)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = d * np.sqrt(np.repeat(scales, 2) * 3)[:, None]
    opts = dict(depth=3, activation=act, beta=0.1, max_variance=mv)
    fn = functools.partial(limits.ntk, **opts)
    eager = np.asarray(fn(x, x[::-1]))
    scale = np.sqrt(np.outer(np.diag(np.asarray(fn(x))), np.diag(np.asarray(fn(x[::-1])))))
    others = {"jit": jax.jit(fn)(x, x[::-1]),
              "vmap": jax.vmap(lambda r: fn(r[None], x[::-1])[0])(x),
              "mesh": sharding.ntk(x, x[::-1], mesh=mesh, **opts)}
    out[name] = {k: float(np.max(np.abs(np.asarray(v) - eager) / scale)) for k, v in others.items()}
print(json.dumps(out))
"""


def agreement() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", AGREEMENT], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def rule_search() -> dict:
    import time

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from ntkbook import quadrature
    from ntkbook.activations import get

    def baseline() -> float:
        fresh = jax.jit(lambda a: a @ a.T + 1.0)  # a new function: compiled anew
        t = time.perf_counter()
        fresh(jnp.asarray(np.ones((64, 64)))).block_until_ready()
        return time.perf_counter() - t

    acts = {"tanh": "tanh", "gelu": "gelu", "softplus": "softplus", "jax.nn.elu": jax.nn.elu,
            "silu_lambda": lambda z: z * jax.nn.sigmoid(z)}  # fmt: skip
    out: dict = {}
    for name, a in acts.items():
        act = get(a)
        for bound in (16.0, 2.0**15):
            quadrature.choose(act, "auto", None, bound, jnp.dtype(jnp.float64))  # σ compiled
            quadrature.choose.cache_clear()
            base = baseline()
            t = time.perf_counter()
            rule, _ = quadrature.choose(act, "auto", None, bound, jnp.dtype(jnp.float64))
            cold = time.perf_counter() - t
            t = time.perf_counter()
            quadrature.choose(act, "auto", None, bound, jnp.dtype(jnp.float64))
            cached = time.perf_counter() - t
            out[f"{name}@{bound:g}"] = {
                "rule": f"{rule.method} {rule.points}/{rule.points_dot} levels {rule.levels}",
                "cold_s": cold, "cached_s": cached, "baseline_s": base,
                "cold_vs_baseline": cold / base, "cached_vs_baseline": cached / base,
            }  # fmt: skip
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    sizes = [250, 500] if quick else [1000, 2000, 4000]
    tanh_n = 500 if quick else 2000
    big = 2000 if quick else 20_000
    if "--rules" in sys.argv:  # only the issue-22 part
        print(json.dumps({"rule_search": rule_search(), "agreement": agreement()}, indent=1))
        return
    result = {
        "rule_search": rule_search(),
        "agreement": agreement(),
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
