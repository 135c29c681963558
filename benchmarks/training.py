"""Benchmark of ntkbook.training.train: steps per second of full-batch GD (issue 4, item 8).

Workload (the issue's target): an MLP of depth L = 3 and width 2048 (widths (d, 2048, 2048, 1)),
N = 64 training points, 1000 GD steps on the MSE, float32, on whatever CPU runs this.

Baseline, measured in the same process: one jitted forward + backward pass (``jax.value_and_grad``
of the MSE, plus the parameter update) on the same network and data, timed per call and
multiplied by the number of steps. ``ratio_to_baseline`` = train time / (steps × baseline): 1
means the compiled loop costs exactly one gradient evaluation per step; below 1 means the loop
saves dispatch overhead. Run ``python benchmarks/training.py`` (prints one JSON object).
"""

from __future__ import annotations

import json
import os
import platform
import time

import jax
import jax.numpy as jnp
from _timing import best_of

from ntkbook import networks, training

WIDTH, DEPTH, N_POINTS, DIM, STEPS, LR = 2048, 3, 64, 16, 1000, 0.5


@jax.jit
def _three_matmuls(a: jax.Array, d: jax.Array, w: jax.Array) -> tuple[jax.Array, ...]:
    """Forward α W, backprop δ Wᵀ and weight gradient αᵀ δ of one hidden layer."""
    return a @ w, d @ w.T, a.T @ d


def main() -> dict:
    net = networks.mlp((DIM, *[WIDTH] * (DEPTH - 1), 1), activation="relu")
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float32)
    x = jax.random.normal(jax.random.key(1), (N_POINTS, DIM), jnp.float32)
    y = jnp.sin(x[:, :1])

    @jax.jit
    def one_step(p):
        def loss(q):
            f = networks.forward(net, q, x).pre[-1]
            return 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=1))

        value, grads = jax.value_and_grad(loss)(p)
        return jax.tree.map(lambda a, g: a - LR * g, p, grads), value

    baseline_step = best_of(lambda: one_step(params), repeats=20)

    def run(record_at, record_ntk=False):
        return training.train(
            x,
            y,
            net=net,
            params=params,
            lr=LR,
            steps=STEPS,
            record_at=record_at,
            record_ntk=record_ntk,
        ).f_train

    # the compute floor of one step: the three (N × n) @ (n × n) products of the hidden layer
    # (forward, backprop to α^(1), gradient of W^(1)); everything else is O(N n) or O(n²)
    w = params[1].W
    a, d = jax.random.normal(jax.random.key(2), (2, N_POINTS, WIDTH), jnp.float32)
    floor_step = best_of(lambda: _three_matmuls(a, d, w), repeats=20)

    start = time.perf_counter()
    jax.block_until_ready(run(2))
    first_call = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(run(2))  # compiled by the first call
    t_plain = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(run(11, True))  # compiles once more (record_ntk): includes compile
    t_recorded = time.perf_counter() - start
    baseline = STEPS * baseline_step
    return {
        "benchmark": "training.train",
        "workload": {
            "widths": list(net.widths),
            "n_points": N_POINTS,
            "steps": STEPS,
            "dtype": "float32",
            "activation": "relu",
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "backend": jax.default_backend(),
        },
        "baseline_one_jitted_grad_step_s": baseline_step,
        "baseline_steps_x_grad_step_s": baseline,
        "train_first_call_s_incl_compile": first_call,
        "train_s": t_plain,
        "train_steps_per_s": STEPS / t_plain,
        "ratio_to_baseline": t_plain / baseline,
        "train_11_records_with_ntk_s": t_recorded,
        "ratio_11_records_with_ntk_to_baseline": t_recorded / baseline,
        "floor_three_hidden_matmuls_per_step_s": floor_step,
        "ratio_to_matmul_floor": t_plain / (STEPS * floor_step),
        "effective_gflops_floor": 3 * 2 * N_POINTS * WIDTH**2 / floor_step / 1e9,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
