"""Rerun a chapter under other seeds (and, optionally, reduced sizes) and count passing runs.

The statistics standard asks that a correct chapter's checks pass on other seeds, not only on
the one the book uses: each assert's false-alarm rate is meant to be ≤ 1e-3. This script reads a
chapter with jupytext, rewrites its ``key = jax.random.key(N)`` line to each requested seed (and
any ``NAME = value`` parameter lines given with ``--set``), executes the notebook with nbclient
and reports, per seed, whether it ran to the end or which assert failed.

Usage::

    python scripts/seed_sweep.py book/04_ntk_limit.md --seeds 100-109 \\
        --set "WIDTHS = (16, 64, 128, 256, 512)" --set "N_SEEDS = 16"

With ``--jax-cache DIR`` the kernels share JAX's persistent compilation cache in DIR: a seed
changes only the values of the keys, not the compiled programs, so every run after the first
skips compilation (most of a chapter's CPU time at these sizes).

Prints one JSON object: ``{"chapter", "seeds", "overrides", "passed", "runs": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import jupytext
import nbclient
import nbformat


def seed_list(text: str) -> list[int]:
    """``"100-109"`` or ``"1,5,7"`` as a list of ints."""
    if "-" in text:
        lo, hi = (int(t) for t in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(t) for t in text.split(",")]


def rewrite(nb: nbformat.NotebookNode, seed: int, overrides: list[str]) -> nbformat.NotebookNode:
    """The notebook with its chapter seed and the given parameter lines replaced."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    key_line = re.compile(r"^key = jax\.random\.key\(\d+\)", flags=re.M)
    found_key = False
    pending = {o.split("=", 1)[0].strip(): o for o in overrides}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src, n = key_line.subn(f"key = jax.random.key({seed})", cell.source)
        found_key |= n > 0
        for name, line in list(pending.items()):
            pattern = re.compile(rf"^{re.escape(name)}\s*=.*$", flags=re.M)
            src, m = pattern.subn(line, src, count=1)
            if m:
                pending.pop(name)
        cell.source = src
    if not found_key:
        raise SystemExit("the chapter has no line `key = jax.random.key(N)`")
    if pending:
        raise SystemExit(f"--set names not found in the chapter: {sorted(pending)}")
    return nb


def glued(nb: nbformat.NotebookNode, names: list[str]) -> dict[str, str]:
    """The text of the values glued (myst_nb.glue) under ``names`` in an executed notebook."""
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name in names:  # myst_nb records the value under a papermill mime type
                data = out.get("data", {})
                found[name] = next((v for k, v in data.items() if k.endswith("text/plain")), "")
    return found


def run(nb: nbformat.NotebookNode, timeout: int, names: list[str]) -> dict[str, object]:
    start = time.perf_counter()
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3").execute()
    except nbclient.exceptions.CellExecutionError as err:
        last = [ln for ln in str(err).splitlines() if ln.strip()][-1]
        return {
            "ok": False,
            "error": last[:300],
            "seconds": round(time.perf_counter() - start),
            "glue": glued(nb, names),
        }
    return {"ok": True, "seconds": round(time.perf_counter() - start), "glue": glued(nb, names)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter")
    parser.add_argument("--seeds", default="100-109")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument(
        "--glue",
        default="",
        help="comma-separated glue keys to report per seed (the asserts' margins)",
    )
    parser.add_argument(
        "--jax-cache",
        default=None,
        help="directory of a persistent JAX compilation cache shared by the runs",
    )
    args = parser.parse_args(argv)
    if args.jax_cache:  # read by JAX in each kernel at start-up (kernels inherit the environment)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = args.jax_cache
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    nb = jupytext.read(args.chapter, fmt="md:myst")
    runs = []
    for seed in seed_list(args.seeds):
        names = [g for g in args.glue.split(",") if g]
        result = {"seed": seed, **run(rewrite(nb, seed, args.overrides), args.timeout, names)}
        print(json.dumps(result), file=sys.stderr, flush=True)
        runs.append(result)
    print(
        json.dumps(
            {
                "chapter": args.chapter,
                "seeds": args.seeds,
                "overrides": args.overrides,
                "passed": sum(r["ok"] for r in runs),
                "runs": runs,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
