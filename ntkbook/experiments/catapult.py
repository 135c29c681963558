r"""Large learning rates: the lazy, catapult and divergent phases of gradient descent (Lewkowycz et
al. 2020; chapter 11).

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


def lr_phase(loss: Array, *, window: int = 10) -> str:
    r"""Classify a loss curve C(f_0), …, C(f_K) recorded at every step from its growth
    (Lewkowycz et al. 2020).

    With :math:`g = \log C(f_K) - \log C(f_{K-w})` the growth over the last w steps:

    - ``"divergent"``: a loss is not finite, or :math:`C(f_K) > C(f_0)` and :math:`g \ge 0` —
      above where it started and not coming down;
    - ``"lazy"``: otherwise, if the loss never exceeds C(f_0) (what linearised gradient
      descent does for η < 2/λ_0: every mode of f − y shrinks monotonically);
    - ``"catapult"``: otherwise — the loss rose above C(f_0) and is now below it or falling.

    A run that converges slowly (below C(f_0), still falling after K steps) is lazy or catapult,
    never divergent: the label says which way the loss goes, not how far it got.

    Args:
        loss: (K + 1,) losses, step 0 first (``Trajectory.loss`` with a record every step).
        window: w, the number of final steps over which the growth is read, 1 ≤ w ≤ K.

    Returns:
        one of :data:`PHASES`.

    Raises:
        ValueError: naming ``loss`` (not 1-D with ≥ 2 entries, or a non-finite or non-positive
            initial loss) or ``window``.
    """
    c = np.asarray(loss, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"loss: expected a 1-D curve with at least 2 records, got {c.shape}")
    if not np.isfinite(c[0]) or c[0] <= 0:
        raise ValueError(f"loss: the initial loss must be finite and > 0, got {c[0]!r}")
    w = _checks.positive_int("window", window)
    if w >= c.size:
        raise ValueError(f"window: must be below the number of records {c.size}, got {window!r}")
    if not np.all(np.isfinite(c)):
        return "divergent"
    if c[-1] > c[0] and c[-1] >= c[-1 - w]:
        return "divergent"
    return "lazy" if np.max(c) <= c[0] else "catapult"


def lr_phases(
    x: Array,
    y: Array,
    *,
    net: MLP,
    params: Params,
    lrs: Sequence[float],
    steps: int,
    window: int = 10,
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
        window: as in :func:`lr_phase`.

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
        traj = training.train(
            x, y, net=net, params=params, lr=float(eta), steps=steps, record_at=steps + 1
        )
        assert traj.loss is not None  # the MSE records its value
        phases.append(lr_phase(traj.loss, window=window))
        if phases[-1] == "divergent":
            break
    return tuple(phases)
