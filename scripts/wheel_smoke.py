"""Smoke test of an installed ntkbook wheel (run by scripts/wheel_smoke.sh in a fresh venv).

Checks, with only the declared dependencies installed: the package imports from site-packages
without loading matplotlib; ``ntk`` of a tiny input equals the ReLU arc-cosine closed form for
depth 2 written out here; the empirical NTK has shape (N1, N2, n_L, n_L); and the optional parts
(plotting, data.digits) fail with an ImportError naming their extra when it is not installed.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np


def relu_depth2_ntk(x: np.ndarray) -> np.ndarray:
    r"""Θ∞^(2) for ReLU, β = 0, σ_w = 1 (the notes' convention Σ¹ = x·x′/n_0):
    Σ² = √(s s′)/(2π) (sin θ + (π − θ) cos θ), Σ̇² = (π − θ)/(2π), Θ² = Σ¹ Σ̇² + Σ²."""
    s1 = x @ x.T / x.shape[1]
    d = np.sqrt(np.diag(s1))
    cos = np.clip(s1 / np.outer(d, d), -1.0, 1.0)
    theta = np.arccos(cos)
    sigma2 = np.outer(d, d) / (2 * math.pi) * (np.sin(theta) + (math.pi - theta) * cos)
    sigma_dot2 = (math.pi - theta) / (2 * math.pi)
    return s1 * sigma_dot2 + sigma2


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import ntkbook
    from ntkbook import empirical, networks

    where = Path(ntkbook.__file__).resolve()
    assert "site-packages" in where.parts, f"ntkbook imported from {where}, not the wheel"
    assert "matplotlib" not in sys.modules, "import ntkbook loaded matplotlib"
    print(f"ntkbook {ntkbook.__version__} from {where.parent}, jax {jax.__version__}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    got = np.asarray(ntkbook.ntk(jnp.asarray(x), depth=2))
    want = relu_depth2_ntk(x)
    err = float(np.max(np.abs(got - want)))
    # float64 closed forms on both sides: agreement to rounding (a wrong Σ̇ or a missing Σ¹
    # factor changes entries by O(0.1)).
    assert err < 1e-10, f"ntk vs arc-cosine closed form: max error {err:.3e}"
    print(f"ntk(5x3, depth=2) vs arc-cosine closed form: max |diff| = {err:.1e}")

    net = networks.mlp((3, 16, 2))
    params = networks.init(net, key=jax.random.key(0))
    theta = empirical.ntk(jnp.asarray(x), jnp.asarray(x[:2]), net=net, params=params)
    assert theta.shape == (5, 2, 2, 2), theta.shape
    assert bool(jnp.all(jnp.isfinite(theta)))
    print(f"empirical.ntk shape {theta.shape}")

    for module, extra, missing in (
        ("ntkbook.plotting", "plot", "matplotlib"),
        ("ntkbook.data.digits", "data", "sklearn"),
    ):
        if importlib.util.find_spec(missing) is not None:
            print(f"{missing} is installed: skipping the missing-{extra} check")
            continue
        try:
            if module == "ntkbook.plotting":
                _ = ntkbook.plotting
            else:
                ntkbook.data.digits(key=jax.random.key(0), n_train=10, n_test=10)
        except ImportError as err:
            assert f"ntkbook[{extra}]" in str(err), f"{module}: no extra named in: {err}"
            print(f"{module} without {missing}: ImportError naming ntkbook[{extra}]")
        else:
            raise AssertionError(f"{module} worked although {missing} is not installed")
    print("wheel smoke test: OK")


if __name__ == "__main__":
    main()
