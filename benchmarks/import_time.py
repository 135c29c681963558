"""Benchmark of ``import ntkbook``: JSON on stdout.

Each measurement is a fresh interpreter (``sys.executable``, this process's environment, so run
it with ``PYTHONPATH`` pointing at the checkout to time the source tree) that times, with
``time.perf_counter``, first ``import jax`` and then ``import ntkbook`` on top of it, and reports
the modules each added to ``sys.modules``, whether matplotlib or IPython was loaded, and
whether ``import ntkbook`` changed JAX's configuration (x64, default device, rank promotion).
The ratio to jax's own import time is the number to compare across machines.
Usage: ``python benchmarks/import_time.py [--repeats R]`` (default 7; medians reported).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import jax
mid = time.perf_counter()
before = set(sys.modules)
config = lambda: (jax.config.jax_enable_x64, jax.config.jax_numpy_rank_promotion,
                  jax.config.jax_default_matmul_precision)
cfg0 = config()
import ntkbook
end = time.perf_counter()
added = set(sys.modules) - before
print(json.dumps({
    "jax_s": mid - start,
    "ntkbook_s": end - mid,
    "modules_total": len(sys.modules),
    "modules_added_by_ntkbook": len(added),
    "ntkbook_modules": sorted(m for m in added if m.split(".")[0] == "ntkbook"),
    "third_party_added": sorted({m.split(".")[0] for m in added} - {"ntkbook"}),
    "matplotlib_loaded": "matplotlib" in sys.modules,
    "ipython_loaded": "IPython" in sys.modules,
    "jax_config_changed": config() != cfg0,
    "ntkbook_file": ntkbook.__file__,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True,
                             text=True)  # fmt: skip
        runs.append(json.loads(out.stdout))
    last = runs[-1]
    jax_s = statistics.median(r["jax_s"] for r in runs)
    ntk_s = statistics.median(r["ntkbook_s"] for r in runs)
    print(json.dumps({
        "benchmark": "import_time",
        "repeats": args.repeats,
        "import_jax_s_median": round(jax_s, 4),
        "import_ntkbook_after_jax_s_median": round(ntk_s, 4),
        "import_ntkbook_total_s_median": round(jax_s + ntk_s, 4),
        "ntkbook_over_jax_ratio": round(ntk_s / jax_s, 3),
        "import_ntkbook_after_jax_s_all": [round(r["ntkbook_s"], 4) for r in runs],
        **{k: last[k] for k in ("modules_total", "modules_added_by_ntkbook", "ntkbook_modules",
                                "third_party_added", "matplotlib_loaded", "ipython_loaded",
                                "jax_config_changed", "ntkbook_file")},
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
