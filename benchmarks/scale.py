"""Benchmark of ntkbook.sharding: 1 vs 4 (simulated) devices; JSON on stdout.

Workloads (float32, d = 64, depth-3 ReLU MLP, the issue's list):
- Θ∞ for N = 20 000 held in device memory (1.6 GB), ``sharding.ntk`` on a mesh of 1 and of 4
  devices; baseline ``limits.ntk`` on one device, timed in the same process;
- Θ∞ for N = 50 000 (10 GB in float32) written block by block to a ``.npy`` memmap with
  ``sharding.write_kernel`` (the file is deleted afterwards); a few rows are checked against
  ``limits.ntk`` of those rows;
- an ensemble of 64 networks (widths (8, 64, 64, 1), 64 points, 100 GD steps) trained with
  ``sharding.train_ensemble``; baseline: a Python loop of 64 ``training.train`` calls (one
  compilation, timed once after a single warm-up call).

Each device count runs in a fresh subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=D`` set before jax is imported; it reports
wall time, CPU time (user + sys of the process) and peak RSS (``ru_maxrss``), next to the RSS of
a process that only imports. Times are of a second call (the first compiles), except for the
N = 50 000 file, written once (its compile is < 2 % of it).

On a CPU the D simulated devices share the same cores: 4 devices cannot beat 1, and the
figures show the overhead of the sharded program and how memory is split, not a speed-up.
On D real accelerators the per-device work is 1/D of the total.

Usage: ``python benchmarks/scale.py [--quick] [--devices 1,4] [--skip-file]``
(quick: N = 2000 / 5000 and 8 networks, a smoke test).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

DEPTH, D_IN = 3, 64


def _usage() -> dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": r.ru_utime + r.ru_stime, "peak_rss_gib": r.ru_maxrss / 2**20}


def _clock(fn):  # noqa: ANN001, ANN202 - tiny helper, returns (result, wall s, cpu s)
    import jax

    start, cpu = time.perf_counter(), _usage()["cpu_s"]
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start, _usage()["cpu_s"] - cpu


def dense(n: int) -> dict:
    """Θ∞ (N × N) in device memory: sharded over every device, then the one-device baseline."""
    import jax.numpy as jnp
    import numpy as np

    from ntkbook import limits, sharding

    x = jnp.asarray(np.random.default_rng(0).normal(size=(n, D_IN)), jnp.float32)
    mesh = sharding.device_mesh()
    row: dict = {}
    for name, fn in (
        ("sharded", lambda: sharding.ntk(x, depth=DEPTH, mesh=mesh)),
        ("one_device_limits_ntk", lambda: limits.ntk(x, depth=DEPTH)),
    ):
        out, first, _ = _clock(fn)
        if name == "sharded":
            row["shards"] = len(out.addressable_shards)
            row["shard_shape"] = list(out.addressable_shards[0].data.shape)
        del out
        out, wall, cpu = _clock(fn)
        del out
        row[name] = {"first_call_s": first, "s": wall, "cpu_s": cpu, **_peak()}
    row["ratio_to_one_device"] = row["sharded"]["s"] / row["one_device_limits_ntk"]["s"]
    return row


def _peak() -> dict[str, float]:
    return {"peak_rss_gib_so_far": _usage()["peak_rss_gib"]}


def to_file(n: int) -> dict:
    """Θ∞ (N × N) written to a .npy memmap block by block; a few rows checked, file deleted."""
    import jax.numpy as jnp
    import numpy as np

    from ntkbook import limits, sharding

    x = np.random.default_rng(0).normal(size=(n, D_IN)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="ntkbook-scale-") as tmp:
        path = os.path.join(tmp, "theta.npy")
        progress = sharding.TextProgress(f"N = {n}, write_kernel", every=30.0)
        theta, wall, cpu = _clock(
            lambda: sharding.write_kernel(path, x, depth=DEPTH, mesh="all", progress=progress)
        )
        rows = np.array([0, 1, n // 2, n - 1])
        ref = np.asarray(limits.ntk(jnp.asarray(x[rows]), jnp.asarray(x), depth=DEPTH))
        err = float(np.max(np.abs(theta[rows] - ref)) / np.max(np.abs(ref)))
        size = os.path.getsize(path)
        del theta
    return {
        "s": wall,
        "cpu_s": cpu,
        "file_gib": size / 2**30,
        "checked_rows_max_rel_err": err,
        **_usage(),
    }


def ensemble(n_nets: int) -> dict:
    """``n_nets`` trained networks: sharded over the seeds, then a loop of single runs."""
    import jax
    import jax.numpy as jnp

    from ntkbook import networks, sharding, training

    net = networks.mlp((8, 64, 64, 1), activation="relu")
    x = jax.random.normal(jax.random.key(1), (64, 8), jnp.float32)
    y = jnp.sin(x[:, :1])
    opts = {"lr": 0.5, "steps": 100, "record_at": 5}
    key = jax.random.key(0)

    def sharded() -> jax.Array:
        return sharding.train_ensemble(
            x, y, net=net, key=key, n_samples=n_nets, mesh="all", **opts
        ).loss

    def loop(count: int = n_nets) -> list[jax.Array]:
        return [
            training.train(x, y, net=net, params=networks.init(net, key=k), **opts).loss
            for k in jax.random.split(key, n_nets)[:count]
        ]

    row: dict = {"networks": n_nets, "widths": list(net.widths), "points": 64, **opts}
    _, first, _ = _clock(sharded)
    losses, wall, cpu = _clock(sharded)
    row["sharded"] = {"first_call_s": first, "s": wall, "cpu_s": cpu}
    row["sharded"]["final_loss_mean"] = float(jnp.mean(losses[:, -1]))
    _, first, _ = _clock(lambda: loop(1))  # compiles training.train's loop
    losses, wall, cpu = _clock(loop)  # once: 64 calls of the compiled loop
    row["loop_of_train_calls"] = {"first_call_s": first, "s": wall, "cpu_s": cpu}
    row["loop_of_train_calls"]["final_loss_mean"] = float(jnp.mean(jnp.stack(losses)[:, -1]))
    row["ratio_to_loop"] = row["sharded"]["s"] / row["loop_of_train_calls"]["s"]
    return row


def child(devices: int, work: str, size: int) -> None:
    import jax

    assert jax.device_count() == devices, (jax.device_count(), devices)
    if work == "import":
        out: dict = _usage()
    else:
        out = {"dense": dense, "file": to_file, "ensemble": ensemble}[work](size)
    print(json.dumps(out))


def run(devices: int, work: str, size: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(devices), work, str(size)],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    sys.stderr.write(done.stderr[-2000:])
    if done.returncode:
        raise RuntimeError(f"{work} on {devices} devices failed")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{work}, {devices} devices: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        child(int(args[1]), args[2], int(args[3]))
        return
    quick = "--quick" in args
    devices = [1, 4]
    if "--devices" in args:
        devices = [int(d) for d in args[args.index("--devices") + 1].split(",")]
    sizes = {"dense": 2000, "file": 5000, "ensemble": 8} if quick else {
        "dense": 20_000, "file": 50_000, "ensemble": 64,
    }  # fmt: skip
    works = ["import", "dense"] + ([] if "--skip-file" in args else ["file"]) + ["ensemble"]
    result: dict = {"dtype": "float32", "depth": DEPTH, "d": D_IN, "cpu_count": os.cpu_count()}
    for work in works:
        result[work] = {}
        for d in devices:
            size = sizes.get(work, 0)
            result[work][f"{d}_devices"] = {"n": size, **run(d, work, size)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
