"""Test configuration: float64 available, and silent rank promotion is an error.

``jax_numpy_rank_promotion = "raise"`` turns every implicit broadcast between arrays of
different rank into an error, so a shape bug cannot hide behind broadcasting (as in
neural-tangents' tests). Float64 is enabled so cross-checks can be made at high accuracy;
tests of float32 behaviour pass ``dtype=jnp.float32`` explicitly.
"""

import os

# The suite is compile-bound: hundreds of tiny programs, each compiled once and run in
# milliseconds. LLVM's -O0 backend compiles them ~40 % faster (training.train: 3.4 → 2.0 CPU s per
# shape; tests/test_training_ch56.py 37 → 28 CPU s) and gives the same numbers to an ulp (≤ 6e-16
# relative on train, empirical.ntk, limits.ntk), far inside every tolerance here. XLA reads the flag
# when its CPU client starts (first computation), and subprocesses (the sharding child) inherit it.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Property tests are derandomised: CI must fail or pass the same way on every run (a seed-
# dependent red would be noise). Hypothesis still explores max_examples cases per test.
from hypothesis import settings  # noqa: E402

settings.register_profile("ntkbook", derandomize=True, database=None, print_blob=True)
settings.load_profile("ntkbook")


# Per-test cost, off by default: ``NTKBOOK_TEST_TIMES=out.json pytest tests`` writes, for every
# test phase (setup, call, teardown), its wall seconds and CPU seconds (this process, all its
# threads, plus any child process it waited for). CPU is what a shared or 2-core machine pays.
# Under pytest-xdist each worker writes its own file, out.gw0.json, out.gw1.json, ….
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

_TIMES_PATH = os.environ.get("NTKBOOK_TEST_TIMES")
if _TIMES_PATH and os.environ.get("PYTEST_XDIST_WORKER"):
    _TIMES_PATH = _TIMES_PATH.removesuffix(".json") + f".{os.environ['PYTEST_XDIST_WORKER']}.json"
_TIMES: dict[str, dict[str, float]] = {}


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


if _TIMES_PATH:

    def _timed(item: pytest.Item, phase: str):  # type: ignore[no-untyped-def]
        wall, cpu = time.perf_counter(), _cpu()
        yield
        row = _TIMES.setdefault(item.nodeid, {})
        row[f"{phase}_wall"] = time.perf_counter() - wall
        row[f"{phase}_cpu"] = _cpu() - cpu

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(item: pytest.Item):  # type: ignore[no-untyped-def]
        yield from _timed(item, "setup")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
        yield from _timed(item, "call")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(item: pytest.Item):  # type: ignore[no-untyped-def]
        yield from _timed(item, "teardown")

    def pytest_sessionfinish(session: pytest.Session) -> None:
        with open(_TIMES_PATH, "w") as f:
            json.dump(_TIMES, f, indent=1)


# Scheduling under ``pytest -n 2 --dist loadfile`` (``make unit``): a file runs whole in one
# worker, and xdist hands out files in collection order. The files that cost most go first, so
# they start at once on different workers and the cheap ones fill in behind them, instead of a
# long file starting last and running alone. Sizes (CPU s, one process) are in CONTRIBUTING.md.
# (`--dist loadgroup` could split one big file over both workers, but with these pins it does
# nothing: xdist 3.8 tags a grouped test by setting `item._nodeid`, which pytest 9.2 no longer
# reads, so every test is scheduled alone. `--dist loadscope` splits a file by its test classes.)
HEAVY_FIRST = (  # CPU s of each file alone (quiet-ish 2-core machine, before issue 21's cuts)
    "tests/test_limits.py",  # ≈ 500 in CI (helper "exact" cuts it)
    "tests/test_gaussian.py",  # new, split from test_limits
    "tests/test_transformations.py",  # ≈ 42 (issue 22; one 4-device child)
    "tests/test_derivatives.py",  # ≈ 50 (hessians of the closed forms)
    "tests/test_training.py",  # 34
    "tests/test_sharding.py",  # 33 → 24 (its 4-device child: 27 → 18)
    "tests/test_empirical.py",  # 29
    "tests/test_montecarlo.py",  # 21
    "tests/experiments/test_depth_width.py",  # 20
    "tests/test_regression.py",  # 19
    "tests/test_activations.py",  # 18
    "tests/test_plotting.py",  # 11
    "tests/test_data.py",  # 11
    "tests/experiments/test_lazy_training.py",  # 10
    "tests/test_package.py",  # 10
    "tests/experiments/test_lemma1.py",  # 10
)


# Every test has pyproject's 60 s limit (a hang fails instead of stalling CI), unless it or its
# module sets its own (@pytest.mark.timeout). Files listed here get a longer default until their
# tests are cut to a few CPU s each: test_limits had tests of 20–70 CPU s (issue 21, helper
# "exact"); beside two chapters, at nice 5, a test gets about a quarter of a core.
FILE_TIMEOUT_S = {
    "tests/test_limits.py": 300,
    "tests/test_transformations.py": 300,  # the 4-device child: one start for the file
    "tests/test_derivatives.py": 300,  # hessians of the closed forms: 6–16 CPU s each
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Items of the HEAVY_FIRST files first (in that order), the rest in collection order;
    the FILE_TIMEOUT_S defaults on the items of those files that set no limit of their own."""
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    for item in items:
        budget = FILE_TIMEOUT_S.get(item.nodeid.split("::", 1)[0])
        if budget is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(budget))

    def key(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the order within a file and among the rest is kept


def _stable_name(val: object) -> str | None:
    """A name for a callable or an activation that does not contain a memory address."""
    import functools  # noqa: PLC0415 (stdlib, local to this hook)

    if isinstance(val, functools.partial):
        inner = _stable_name(val.func) or type(val.func).__name__
        kwargs = ",".join(f"{k}={v!r}" for k, v in sorted(val.keywords.items()))
        return f"partial({inner}{',' if kwargs else ''}{kwargs})"
    name = getattr(val, "name", None)
    if isinstance(name, str):
        return name
    name = getattr(val, "__name__", None)
    if isinstance(name, str):
        return name
    wrapped = getattr(val, "__wrapped__", None)
    return _stable_name(wrapped) if wrapped is not None else None


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Parametrize ids without memory addresses (``<function gelu at 0x7f…>``).

    pytest-xdist requires every worker to collect the same test ids; reprs with addresses
    differ between processes and made ``make unit`` (``-n 2``) fail at collection."""
    if isinstance(val, str | int | float | bool | type(None)):
        return None
    if callable(val) or hasattr(val, "name"):
        return _stable_name(val)
    return None
