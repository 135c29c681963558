r"""Large learning rates: the lazy, catapult and divergent phases of gradient descent (Lewkowycz et
al. 2020; chapter 10).

Linearised gradient descent on the MSE is stable iff η < 2/λ_max(Θ/N) (:func:`top_eigenvalue`).
:func:`lr_phase` classifies one loss curve, :func:`lr_phases` trains from one θ₀ at increasing
learning rates (with :func:`ntkbook.training.train`) and classifies each run.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from .. import _checks, training
from ..networks import MLP, Params

Array = jax.Array


PHASES: tuple[str, ...] = ("lazy", "catapult", "divergent")


def top_eigenvalue(ntk: Array, *, normalise: bool = True) -> np.ndarray:
    r"""λ_max of the NTK Gram matrix on the training points, per record: the curvature that sets
    gradient descent's stability, :math:`\lambda_{\max}(\Theta_t / N)` (``normalise=True``, the
    p_in convention of :func:`~ntkbook.training.train`) or :math:`\lambda_{\max}(\Theta_t)`.

    Linearised gradient descent on the MSE multiplies the component of f − y along the top
    eigenvector by 1 − ηλ_max each step, so it is stable iff η < 2/λ_max.

    Args:
        ntk: (N, N) or (R, N, N) symmetric kernels (e.g. ``Trajectory.ntk``).
        normalise: divide by N.

    Returns:
        () or (R,) float64 array; NaN for a record whose kernel has a NaN or inf entry (a
        diverged run), instead of an error.

    Raises:
        ValueError: naming ``ntk`` if it is not square in its last two axes.
    """
    a = np.asarray(ntk, dtype=np.float64)
    if a.ndim not in (2, 3) or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"ntk: expected (N, N) or (R, N, N), got shape {a.shape}")
    stack = a.reshape((-1,) + a.shape[-2:]) / (a.shape[-1] if normalise else 1.0)
    ok = np.all(np.isfinite(stack), axis=(1, 2))
    out = np.full(stack.shape[0], np.nan)
    if ok.any():
        out[ok] = np.linalg.eigvalsh(stack[ok])[:, -1]
    return out.reshape(a.shape[:-2])


def lr_phase(loss: Array, *, converged: float = 1e-3) -> str:
    r"""Classify a loss curve C(f_0), …, C(f_K) recorded at every step (Lewkowycz et al. 2020).

    - ``"divergent"``: the last loss is not finite, or above ``converged`` · C(f_0);
    - ``"lazy"``: otherwise, if the loss never exceeds C(f_0) (what linearised gradient
      descent does for η < 2/λ_0: every mode of f − y shrinks monotonically);
    - ``"catapult"``: otherwise — the loss rose above C(f_0) and then came back down.

    Args:
        loss: (K + 1,) losses, step 0 first (``Trajectory.loss`` with a record every step).
        converged: the factor below the initial loss that counts as converged, in (0, 1).

    Returns:
        one of :data:`PHASES`.

    Raises:
        ValueError: naming ``loss`` (not 1-D with ≥ 2 entries, or a non-finite or non-positive
            initial loss) or ``converged``.
    """
    c = np.asarray(loss, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"loss: expected a 1-D curve with at least 2 records, got {c.shape}")
    if not np.isfinite(c[0]) or c[0] <= 0:
        raise ValueError(f"loss: the initial loss must be finite and > 0, got {c[0]!r}")
    level = _checks.positive("converged", converged)
    if level >= 1:
        raise ValueError(f"converged: must be in (0, 1), got {converged!r}")
    if not np.all(np.isfinite(c)) or c[-1] > level * c[0]:
        return "divergent"
    return "lazy" if np.max(c) <= c[0] else "catapult"


def lr_phases(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    *,
    lrs: Sequence[float],
    steps: int,
    converged: float = 1e-3,
) -> tuple[str, ...]:
    r"""Train from the same θ₀ at each learning rate in increasing order and classify each run
    with :func:`lr_phase` (loss recorded at every step; MSE, p_in convention).

    The scan stops at the first ``"divergent"`` run (larger rates are not tried: Lewkowycz et al.
    find no convergent rate above the first divergent one), so the result has one entry per
    learning rate up to and including the first divergent one. One compilation serves every η.

    Args:
        net, params, x, y: as in :func:`ntkbook.training.train`.
        lrs: learning rates η > 0, strictly increasing.
        steps: gradient-descent steps per run.
        converged: as in :func:`lr_phase`.

    Returns:
        the phases, in the order of ``lrs`` (possibly fewer).

    Raises:
        ValueError: naming ``lrs`` (empty, non-positive or not increasing), or as
            :func:`ntkbook.training.train`.
    """
    etas = np.asarray(lrs, dtype=np.float64)
    if etas.ndim != 1 or etas.size == 0 or np.any(~np.isfinite(etas)) or np.any(etas <= 0):
        raise ValueError(f"lrs: expected a non-empty sequence of learning rates > 0, got {lrs!r}")
    if np.any(np.diff(etas) <= 0):
        raise ValueError(f"lrs: must be strictly increasing, got {lrs!r}")
    phases: list[str] = []
    for eta in etas:
        traj = training.train(net, params, x, y, lr=float(eta), steps=steps, record_at=steps + 1)
        phases.append(lr_phase(traj.loss, converged=converged))
        if phases[-1] == "divergent":
            break
    return tuple(phases)
