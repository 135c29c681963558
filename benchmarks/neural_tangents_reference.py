"""Time neural-tangents 0.6.5 on the workloads of benchmarks/limits.py and benchmarks/empirical.py.

neural-tangents no longer imports on current JAX, so this script runs in a virtual environment of
its own and is never part of requirements.txt or CI:

    python3 -m venv /tmp/ntvenv
    /tmp/ntvenv/bin/pip install "neural-tangents==0.6.5" "jax[cpu]==0.5.3"
    /tmp/ntvenv/bin/python benchmarks/neural_tangents_reference.py

It prints JSON: each time is the median of a few calls after a warm-up call that compiles; the
ReLU kernels are timed alternately with a plain jitted X Xᵀ of the same size (``_timing.paired``,
the same baseline as benchmarks/limits.py), so the ratios can be set beside ntkbook's.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import neural_tangents as nt
from _timing import median_of, paired
from neural_tangents import stax


def mlp(widths: tuple[int, ...], nonlinearity) -> tuple:
    """stax MLP, the notes' counting: len(widths) − 1 affine maps, NTK parametrisation, β = 0."""
    layers = []
    for i, w in enumerate(widths[1:]):
        layers.append(stax.Dense(w, W_std=1.0, b_std=None, parameterization="ntk"))
        if i < len(widths) - 2:
            layers.append(nonlinearity)
    return stax.serial(*layers)


def limits() -> dict:
    out = {}
    gemm = jax.jit(lambda a: a @ a.T)
    _, _, relu_kernel = mlp((64, 1, 1, 1), stax.Relu())
    relu_kernel = jax.jit(relu_kernel, static_argnames="get")
    for n in (1000, 2000, 4000):
        x = jax.random.normal(jax.random.key(n), (n, 64), jnp.float32)
        r = paired(lambda x=x: relu_kernel(x, None, get="ntk"), lambda x=x: gemm(x))
        out[f"relu_ntk_{n}"] = {"seconds": r["s"], "gemm_s": r["floor_s"], "ratio": r["ratio"]}
    _, _, tanh_kernel = mlp((64, 1, 1, 1), stax.ElementwiseNumerical(jnp.tanh, deg=25))
    tanh_kernel = jax.jit(tanh_kernel, static_argnames="get")
    x = jax.random.normal(jax.random.key(2000), (2000, 64), jnp.float32)
    t = median_of(lambda: tanh_kernel(x, None, get="ntk"), repeats=1)
    out["tanh_numerical_deg25_ntk_2000"] = {"seconds": t}
    return out


def empirical() -> dict:
    out = {}
    workloads = {
        "mlp512": ((64, 512, 512, 1), 512),
        "mlp512_3hidden": ((64, 512, 512, 512, 1), 512),
        "fc2048": ((3072, 2048, 2048, 2048, 8), 16),
    }
    for name, (widths, n) in workloads.items():
        init_fn, apply_fn, _ = mlp(widths, stax.Relu())
        _, params = init_fn(jax.random.key(0), (-1, widths[0]))
        x = jax.random.normal(jax.random.key(1), (n, widths[0]), jnp.float32)
        out[name] = {}
        for impl, label in ((3, "structured"), (1, "jacobian"), (2, "ntvp")):
            fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=impl))
            try:
                call = lambda fn=fn, x=x, p=params: fn(x, None, p)  # noqa: E731
                out[name][label] = median_of(call, repeats=3)
            except Exception as err:  # e.g. out of memory for the Jacobian at full N
                out[name][label] = f"failed: {type(err).__name__}"
    return out


if __name__ == "__main__":
    print(
        json.dumps(
            {
                "neural_tangents": nt.__version__,
                "jax": jax.__version__,
                "limits": limits(),
                "empirical": empirical(),
            },
            indent=2,
        )
    )
