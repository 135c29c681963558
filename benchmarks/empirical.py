"""Benchmark of ntkbook.empirical.ntk: every method on the issue's two workloads (issue 4, item 8).

Workloads (float32, ReLU, NTK parametrisation, the full kernel Θ_kk′ of shape (N, N, n_L, n_L)):

- ``mlp512``: a 3-layer MLP in the notes' counting (3 affine maps, 2 hidden layers of width
  512) — widths (64, 512, 512, 1) — on N = 512 inputs of dimension d = 64;
- ``mlp512_3hidden``: the larger reading, 3 hidden layers — widths (64, 512, 512, 512, 1);
- ``fc2048``: "FC 3×2048" — widths (3072, 2048, 2048, 2048, 8) — on N = 16 inputs of dimension
  3072 (CIFAR-sized), 8 outputs.

(Both readings of "a 3-layer MLP" are run.)

Every method runs at the full N on the MLP workloads (one block: the Jacobians fit in memory).
On ``fc2048`` the autodiff methods (Jacobian contraction, NTK-vector products) need blocks of 4
inputs to bound memory and take minutes at the full N on 2 cores, so they run on the first
``n_points_measured`` inputs and ``seconds_at_full_n`` scales that by (N/N_measured)² — their
cost is ∝ N1·N2 over block pairs — an extrapolation, labelled as such.

Baseline, in the same process: the jitted forward pass of the same network on the same N inputs
(``ratio_to_forward`` = method time / forward time). Each time is the best of ``--repeats`` calls
after one warm-up call that compiles. No neural-tangents figures are printed (the ones once
hard-coded here were unsourced): ``benchmarks/neural_tangents_reference.py`` times neural-tangents
on the same workloads in a virtual environment of its own.

Run ``python benchmarks/empirical.py`` (prints one JSON object); ``--quick`` shrinks N for a
smoke test.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
from collections.abc import Callable

import jax
import jax.numpy as jnp
from _timing import timed_calls

from ntkbook import empirical, networks

WORKLOADS = {
    # name: (widths, N, batch_size for the autodiff methods — bounds their N·n_L·P memory,
    #        N at which the autodiff methods are measured on the shared 2-core CPU)
    "mlp512": ((64, 512, 512, 1), 512, None, 512),
    "mlp512_3hidden": ((64, 512, 512, 512, 1), 512, None, 512),
    "fc2048": ((3072, 2048, 2048, 2048, 8), 16, 4, 4),
}


def _best_of(fn: Callable[[], jax.Array], repeats: int) -> tuple[float, jax.Array]:
    """(minimum wall time over ``repeats`` calls after a warm-up call that compiles, result)."""
    times, out = timed_calls(fn, repeats)
    return min(times), out


def run_workload(name: str, *, n_points: int | None, repeats: int) -> dict:
    widths, n, batch, n_autodiff = WORKLOADS[name]
    n = n_points or n
    n_autodiff = min(n, n_autodiff)
    net = networks.mlp(widths, activation="relu")
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float32)
    x = jax.random.normal(jax.random.key(1), (n, widths[0]), jnp.float32)
    forward = jax.jit(lambda p, a: networks.forward(net, p, a).pre[-1])
    t_forward, _ = _best_of(lambda: forward(params, x), repeats)
    result: dict = {
        "widths": list(widths),
        "n_points": n,
        "n_params": sum(int(leaf.size) for leaf in jax.tree.leaves(params)),
        "baseline": "jitted forward pass, same net and inputs",
        "forward_s": t_forward,
        "methods": {},
    }
    kernels = {}
    for method in ("structured", "jacobian", "ntvp"):
        structured = method == "structured"
        batch_size = None if structured or batch is None else min(batch, n)
        m_points = n if structured else n_autodiff
        xm = x[:m_points]

        def call(m: str = method, b: int | None = batch_size, a: jax.Array = xm) -> jax.Array:
            return empirical.ntk(a, net=net, params=params, method=m, block_size=b)

        seconds, kernels[method] = _best_of(call, repeats if structured else 1)
        result["methods"][method] = {
            "seconds": seconds,
            "n_points_measured": m_points,
            # The autodiff methods cost ∝ N² (block pairs) here: their time at the full N.
            "seconds_at_full_n": seconds * (n / m_points) ** 2,
            "batch_size": batch_size,
            "ratio_to_forward": seconds * (n / m_points) ** 2 / t_forward,
        }
    ref = kernels["jacobian"]
    for method, theta in kernels.items():
        theta = theta[:n_autodiff, :n_autodiff]
        rel = jnp.linalg.norm((theta - ref).ravel()) / jnp.linalg.norm(ref.ravel())
        result["methods"][method]["rel_diff_to_jacobian"] = float(rel)
    return result


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 32 / 4: a smoke test")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    out = {
        "benchmark": "empirical.ntk",
        "dtype": "float32",
        "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "machine": platform.processor() or platform.machine(),
        "workloads": {
            name: run_workload(name, n_points=32 if args.quick else None, repeats=args.repeats)
            for name in ("mlp512", "mlp512_3hidden")
        }
        | {
            "fc2048": run_workload(
                "fc2048", n_points=4 if args.quick else None, repeats=args.repeats
            ),
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
