"""Checks of ntkbook.sharding on 4 simulated CPU devices, run by tests/test_sharding.py in a
subprocess (XLA_FLAGS must be set before jax is imported, and the rest of the suite keeps its
single device). Prints one JSON object: check name → measured value; the test asserts on it."""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
warnings.simplefilter("error")
# The fixed 16-term tanh case below checks sharded == single-device with the same short series,
# not its accuracy: limits warns (correctly) that 16 terms are too few at these variances.
warnings.filterwarnings("ignore", message=r"points: \d+ Mehler terms leave", category=UserWarning)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ntkbook import empirical, limits, montecarlo, networks, sharding, training  # noqa: E402

RESULT: dict[str, object] = {}


def rel(out: object, ref: object) -> float:
    """Largest |out − ref| / max |ref| over the leaves (ref computed on one device)."""
    errs = [
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
        for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True)
    ]
    return max(errs)


def layout(out: object, axis: int) -> dict[str, object]:
    """How the first leaf is split: its spec names the mesh axis at ``axis``; each of the 4
    devices holds one shard of 1/4 of that axis."""
    leaf = jax.tree.leaves(out)[0]
    shards = leaf.addressable_shards
    spec = tuple(leaf.sharding.spec) + (None,) * leaf.ndim
    return {
        "spec_axis": spec[axis] in ("devices", ("devices",)),
        "devices": len({s.device for s in shards}),
        "shard_rows": sorted({s.data.shape[axis] for s in shards}),
        "rows": leaf.shape[axis],
    }


def error(fn: object) -> str:
    """The ValueError message ``fn()`` raises, or 'no error'."""
    try:
        fn()  # type: ignore[operator]
    except ValueError as e:
        return str(e)
    return "no error"


def main() -> None:
    RESULT["device_count"] = jax.device_count()
    mesh = sharding.device_mesh()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(12, 5)))
    z = jnp.asarray(rng.normal(size=(7, 5)))

    # limits: ntk / nngp / kernels, symmetric and not, closed form and Mehler, diagonal, layers;
    # one case per code path of sharding._limits_rows (the kernel name only selects the function)
    cases = {
        "ntk_relu_sym": ("ntk", None, {}),
        "ntk_tanh_x2": ("ntk", z, {"activation": "tanh", "beta": 0.3, "points": 16}),
        "nngp_erf_sym": ("nngp", None, {"activation": "erf"}),
        "kernels_sym": ("kernels", None, {}),
        "kernels_layers_x2": ("kernels", z, {"layers": [-1], "activation": "abs"}),
        "ntk_diagonal": ("ntk", None, {"diagonal": True}),
        "kernels_diagonal_x2": ("kernels", x[::-1], {"diagonal": True}),
    }
    for name, (kind, x2, opts) in cases.items():
        ref = getattr(limits, kind)(x, x2, depth=2, **opts)
        out = getattr(sharding, kind)(x, x2, depth=2, mesh=mesh, **opts)
        row_axis = -1 if opts.get("diagonal") else -2
        leaf = jax.tree.leaves(out)[0]
        RESULT[f"limits/{name}"] = {"rel": rel(out, ref), **layout(out, leaf.ndim + row_axis)}
    # float32: the symmetric diagonal comes from the diagonal recursion, as on one device
    x32 = x.astype(jnp.float32)
    out = np.asarray(sharding.ntk(x32, depth=2, mesh="all"))
    RESULT["limits/float32_diagonal_bitwise"] = bool(
        np.array_equal(np.diag(out), np.asarray(limits.ntk(x32, depth=2, diagonal=True)))
    )

    # empirical NTK
    net = networks.mlp((5, 32, 32, 2), activation="relu")
    params = networks.init(net, key=jax.random.key(0), dtype=jnp.float64)
    for name, (x2, opts) in {
        "full_sym": (None, {}),
        "traced_x2": (z, {"traced": True}),
        "jacobian_x2": (z, {"method": "jacobian"}),
    }.items():
        ref = empirical.ntk(x, x2, net=net, params=params, **opts)
        out = sharding.empirical_ntk(x, x2, net=net, params=params, mesh=mesh, **opts)
        RESULT[f"empirical/{name}"] = {"rel": rel(out, ref), **layout(out, 0)}

    # ensembles over seeds
    def draw(key: jax.Array) -> jax.Array:
        p = networks.init(net, key=key, dtype=jnp.float64)
        return empirical.ntk(x[:4], net=net, params=p, traced=True)

    ref = montecarlo.ensemble(draw, key=jax.random.key(1), n_samples=8)
    for block in (None, 1):
        out = sharding.ensemble(
            draw, key=jax.random.key(1), n_samples=8, mesh=mesh, block_size=block
        )
        RESULT[f"ensemble/block_{block}"] = {"rel": rel(out, ref), **layout(out, 0)}

    y = jnp.asarray(rng.normal(size=(12, 2)))
    opts = {"lr": 0.5, "steps": 30, "record_at": 3, "record_ntk": True}
    # 2 members per device: the default block (1 on CPU devices) avoids jaxlib's batched-eigh
    # deadlock (training records operator norms by eigh); a hang fails the test by its timeout
    traj = sharding.train_ensemble(
        x, y, net=net, key=jax.random.key(2), n_samples=8, mesh=mesh, dtype=jnp.float64, x_test=z,
        **opts
    )  # fmt: skip
    keys = jax.random.split(jax.random.key(2), 8)
    errs = []
    for s in range(8):
        one = training.train(
            x,
            y,
            net=net,
            params=networks.init(net, key=keys[s], dtype=jnp.float64),
            x_test=z,
            **opts,
        )
        errs.append(rel(jax.tree.map(lambda a, s=s: a[s], traj), one))
    RESULT["train_ensemble"] = {"rel": max(errs), **layout(traj.f_train, 0)}
    RESULT["train_ensemble/moved"] = float(jnp.min(jnp.abs(traj.loss[:, -1] - traj.loss[:, 0])))

    # larger than memory: memmap file and host array equal the in-memory kernel
    x13 = jnp.asarray(rng.normal(size=(13, 5)))  # 13 rows: not a multiple of 4
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "theta.npy")
        for name, (x2, m, block) in {
            "sym_4dev_block4": (None, mesh, 4),
            "sym_4dev_default": (None, mesh, None),
            "x2_1dev_block3": (z, None, 3),
            "x2_4dev_block8": (z, mesh, 8),
        }.items():
            calls: list[tuple[int, int]] = []
            ref = np.asarray(limits.ntk(x13, x2, depth=2, activation="erf"))
            got = sharding.write_kernel(
                path, x13, x2, depth=2, mesh=m, block_size=block, activation="erf",
                progress=lambda d, t, calls=calls: calls.append((d, t)),
            )  # fmt: skip
            host = sharding.write_kernel(
                np.full(ref.shape, np.nan), x13, x2, depth=2, mesh=m, block_size=block,
                activation="erf",
            )  # fmt: skip
            RESULT[f"write/{name}"] = {
                "rel_file": rel(np.load(path), ref),
                "rel_host": rel(host, ref),
                "memmap": isinstance(got, np.memmap) and got.shape == ref.shape,
                "progress_done": [d for d, _ in calls],
                "progress_total": sorted({t for _, t in calls}),
            }

    # bad inputs
    bad = jnp.asarray(x).at[3, 1].set(jnp.nan)
    RESULT["errors"] = {
        "x1_not_dividing": error(lambda: sharding.ntk(x[:10], depth=2, mesh=mesh)),
        "x1_nan": error(lambda: sharding.ntk(bad, depth=2, mesh=mesh)),
        "x2_nan": error(lambda: sharding.nngp(x, bad, depth=2, mesh=mesh)),
        "x2_features": error(lambda: sharding.ntk(x, z[:, :3], depth=2, mesh=mesh)),
        "depth": error(lambda: sharding.ntk(x, depth=0, mesh=mesh)),
        "activation": error(lambda: sharding.ntk(x, depth=2, mesh=mesh, activation="nope")),
        "empirical_not_dividing": error(
            lambda: sharding.empirical_ntk(x[:6], net=net, params=params, mesh=mesh)
        ),
        "n_samples_not_dividing": error(
            lambda: sharding.ensemble(draw, key=jax.random.key(0), n_samples=6, mesh=mesh)
        ),
        "write_block_not_dividing": error(
            lambda: sharding.write_kernel(np.zeros((13, 13)), x13, depth=2, mesh=mesh, block_size=6)
        ),
        "write_too_few_rows": error(
            lambda: sharding.write_kernel(np.zeros((3, 3)), x[:3], depth=2, mesh=mesh)
        ),
        "train_y_rows": error(
            lambda: sharding.train_ensemble(
                x, y[:5], net=net, key=jax.random.key(0), n_samples=4, mesh=mesh, lr=0.1, steps=1
            )
        ),
    }


def init_ntks() -> None:
    """sharding.ntk_at_init against montecarlo.ntk_at_init (the per-layer split as well)."""
    mesh = sharding.device_mesh()
    x = jnp.asarray(np.random.default_rng(3).normal(size=(3, 4)))
    net = networks.mlp((4, 16, 2), activation="tanh")
    opts = {"n_samples": 4, "dtype": jnp.float64}
    ref = montecarlo.ntk_at_init(x, net=net, key=jax.random.key(2), **opts)
    out = sharding.ntk_at_init(x, net=net, key=jax.random.key(2), mesh=mesh, **opts)
    RESULT["ntk_at_init"] = {"rel": rel(out, ref), **layout(out, 0)}


if __name__ == "__main__":
    main()
    init_ntks()
    json.dump(RESULT, sys.stdout)
