r"""Gradient descent on a cost, its gradient-flow limit, the linearised model (notes §5, §6, §8).

Full-batch gradient descent on the outputs' cost C(f) with the :math:`p^{\mathrm{in}}`
convention of :mod:`ntkbook.costs` (:math:`d = \partial C/\partial f` the function-space
gradient):

.. math::

    \theta_{k+1} = \theta_k - \eta\, s \sum_{i=1}^N J(x_i)^\top d_k(x_i),

with :math:`s = 1/N` for ``normalise=True`` and :math:`s = 1` for ``normalise=False``,

so that, to first order in η, f moves by −η s Θ d (Θ the NTK Gram matrix on the training points).
Time is t = η · k: as η → 0 at fixed t the iterates converge to the gradient flow
:math:`\partial_t \theta = -s \sum_i J(x_i)^\top d_t(x_i)` with error O(η) (Euler's method),
i.e. :math:`\partial_t f = -\Phi_\Theta(\langle d_t, \cdot\rangle_{p^{\mathrm{in}}})` for
``normalise=True``. There is no separate ODE solver: take a small ``lr``.

The *linearised* network (Lee et al. 2019) replaces f by its first-order Taylor expansion at θ₀,

.. math:: f^{lin}_\theta(x) = f_{\theta_0}(x) + J_{\theta_0}(x)\,(\theta - \theta_0),

evaluated with one JVP (no Jacobian is stored) and trained by the same loop; its NTK is Θ(θ₀) for
every θ, so least-squares training of it is solved in closed form by
:func:`ntkbook.regression.gradient_descent` (and, as η → 0,
:func:`~ntkbook.regression.gradient_flow`).

The loop is compiled: one ``jax.lax.scan`` over the chosen record steps, with a ``fori_loop`` of GD
steps between consecutive records, all inside one ``jit`` (no Python loop per step).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from ntkbook import networks
    >>> net = networks.mlp((2, 64, 1), activation="tanh")
    >>> params = networks.init(net, key=jax.random.key(0))
    >>> x = jnp.ones((4, 2)); y = jnp.zeros((4, 1))
    >>> traj = train(x, y, net=net, params=params, lr=0.5, steps=20, record_at=3)
    >>> traj.steps.tolist(), traj.f_train.shape, traj.w_change_fro.shape
    ([0, 10, 20], (3, 4, 1), (3, 2))
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, costs, empirical
from .networks import MLP, Params, check_params, forward

Array = jax.Array
ModelFn = Callable[[Params, Params, Array], Array]

_OP_NORM_ITERS = 6
"""Subspace iterations of :func:`op_norm` (each one multiplies by A and by Aᵀ)."""


class Trajectory(NamedTuple):
    r"""What :func:`train` records, at R chosen steps.

    Attributes:
        steps: (R,) step indices k.
        t: (R,) times t = η k.
        f_train: (R, N, n_L) outputs on the training inputs.
        f_test: (R, M, n_L) outputs on ``x_test``, or ``None``.
        loss: (R,) the cost C(f_k) (times N when ``normalise=False``), or ``None`` when the cost
            was given only as its gradient d.
        ntk: (R, N, N) traced empirical NTK :math:`\frac{1}{n_L}\sum_k \Theta_{kk}(t)` on the
            training inputs, or
            ``None``. For the linearised model it is Θ(θ₀) at every step.
        w_change_fro: (R, L) ‖W^(l)(t) − W^(l)(0)‖_F for l = 0 … L − 1.
        w_change_op: (R, L) ‖W^(l)(t) − W^(l)(0)‖_op (see :func:`op_norm`).
        d_integral: (R,) :math:`\int_0^t \lVert d_s \rVert_{p^{\mathrm{in}}}\, ds` as the left
            Riemann sum :math:`\sum_{j<k} \eta\, \lVert d_j \rVert_{p^{\mathrm{in}}}`.
        params: the parameters after the last step.
    """

    steps: Array
    t: Array
    f_train: Array
    f_test: Array | None
    loss: Array | None
    ntk: Array | None
    w_change_fro: Array
    w_change_op: Array
    d_integral: Array
    params: Params


# ------------------------------------------------------------------------------ models


def _network(net: MLP) -> ModelFn:
    """f(θ, θ₀, x) = f_θ(x): the network itself (θ₀ unused)."""
    return lambda params, params0, x: forward(net, params, x).pre[-1]


def _linearised(net: MLP) -> ModelFn:
    """f(θ, θ₀, x) = f_{θ₀}(x) + J_{θ₀}(x)(θ − θ₀), by one JVP."""

    def f_lin(params: Params, params0: Params, x: Array) -> Array:
        delta = jax.tree.map(jnp.subtract, params, params0)
        f0, df = jax.jvp(lambda p: forward(net, p, x).pre[-1], (params0,), (delta,))
        return f0 + df

    return f_lin


def linearise(*, net: MLP, params0: Params) -> Callable[[Params, Array], Array]:
    r"""The linearised network at θ₀ as a function of (θ, x).

    .. math:: f^{lin}_\theta(x) = f_{\theta_0}(x) + J_{\theta_0}(x)\,(\theta - \theta_0)

    Computed with one ``jax.jvp`` (no Jacobian is formed); jit-safe.

    Args:
        net: the architecture.
        params0: the expansion point θ₀ (usually the initial parameters).

    Returns:
        ``f_lin(params, x)`` → (N, n_L); equal to the network at ``params0``, linear in ``params``.
    """
    check_params(net, params0)
    model = _linearised(net)
    return lambda params, x: model(params, params0, x)


# ------------------------------------------------------------------------------ norms


def _orthonormalise(y: Array) -> Array:
    """An orthonormal basis of range(y) from the eigendecomposition of the small Gram yᵀy.

    (XLA's CPU QR of a tall matrix is ~100× slower than this.) Directions with a Gram eigenvalue
    below n · eps of the largest are dropped (set to zero), so a zero ``y`` gives zero, not NaN.
    """
    s, u = jnp.linalg.eigh(y.T @ y)
    keep = s > s[-1] * y.shape[0] * jnp.finfo(y.dtype).eps
    return y @ (u * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, s, 1.0)), 0.0)[None, :])


def op_norm(a: Array, *, block: int = 32, iters: int = _OP_NORM_ITERS) -> Array:
    r"""Operator (spectral) norm :math:`\lVert A \rVert_{op} = \sigma_{\max}(A)` of a 2-D array,
    cheaply.

    If min(A.shape) ≤ ``block``: exactly, as :math:`\sqrt{\lambda_{\max}}` of the smaller Gram
    matrix. Otherwise by subspace iteration with a fixed start (so results are reproducible):
    :math:`Q = \mathrm{orth}((A A^\top)^q A \Omega)` with
    :math:`\Omega \in \mathbb R^{n \times \mathrm{block}}`, then the Rayleigh–Ritz value
    :math:`\sigma_{\max}(Q^\top A) \le \lVert A \rVert_{op}`, whose relative error is
    :math:`\lesssim (\sigma_{\mathrm{block}+1}/\sigma_1)^{2q}`. A weight change accumulated by
    gradient descent on N points is dominated by its first ~N n_L singular directions, so
    ``block`` ≥ N n_L makes this essentially exact (an exact SVD of a 2048 × 2048 matrix takes
    seconds on a CPU; this takes milliseconds).

    Args:
        a: (m, n).
        block: subspace dimension.
        iters: q, the number of (A Aᵀ) multiplications.
    """
    m, n = a.shape
    if min(m, n) <= block:
        gram = a.T @ a if n <= m else a @ a.T
        return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(gram)[-1], 0.0))
    omega = jax.random.normal(jax.random.key(0), (n, block), a.dtype)
    q = a @ omega
    for _ in range(iters):
        # the span of (A Aᵀ)^q A Ω does not depend on how the columns are scaled on the way, so
        # rescaling them (cheap) instead of orthonormalising (slow on CPU) is enough to avoid
        # overflow; round-off can only blur directions far below σ_1, not σ_1 itself
        q = q / jnp.maximum(jnp.linalg.norm(q, axis=0, keepdims=True), jnp.finfo(a.dtype).tiny)
        q = a @ (a.T @ q)
    q = _orthonormalise(_orthonormalise(q))  # a second pass restores orthonormality
    c = a.T @ q
    return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(c.T @ c)[-1], 0.0))


def _weight_changes(params: Params, params0: Params, block: int) -> tuple[Array, Array]:
    """(L,) Frobenius and operator norms of W^(l) − W^(l)(0)."""
    deltas = [p.W - p0.W for p, p0 in zip(params, params0, strict=True)]
    fro = jnp.stack([jnp.linalg.norm(dw) for dw in deltas])
    op = jnp.stack([op_norm(dw, block=block) for dw in deltas])
    return fro, op


# ------------------------------------------------------------------------------ the loop


def _p_in_norm(d: Array) -> Array:
    return jnp.sqrt(costs._inner(d, d))


@partial(
    jax.jit,
    static_argnames=("net", "cost", "linearised", "record_ntk", "normalise", "trainable"),
)
def _run(
    params: Params,
    x: Array,
    y: Array,
    x_test: Array | None,
    lr: Array,
    alpha: Array,
    chunks: Array,
    *,
    net: MLP,
    cost: costs.Cost,
    linearised: bool,
    record_ntk: bool,
    normalise: bool,
    trainable: tuple[bool, ...] | None = None,
) -> tuple[Params, dict[str, Array]]:
    """The jitted loop: ``lax.scan`` over the R records; before record r, a compiled loop
    (``fori_loop``) runs ``chunks[r]`` GD steps. Step counts are data, so one compilation serves
    every ``steps`` and ``record_at`` with the same number of records."""
    base = _linearised(net) if linearised else _network(net)
    params0 = params

    def model(p: Params, p0: Params, z: Array) -> Array:
        return alpha * base(p, p0, z)

    n = x.shape[0]
    s = 1.0 / n if normalise else 1.0
    block = n * net.widths[-1] + 8  # ≥ N n_L: the rank that GD on N points builds up
    ntk0 = None
    if record_ntk and linearised:
        ntk0 = alpha**2 * empirical.ntk(x, net=net, params=params0, traced=True)

    def step(_: Array, carry: tuple[Params, Array]) -> tuple[Params, Array]:
        p, dint = carry
        f, pullback = jax.vjp(lambda q: model(_freeze(q, trainable), params0, x), p)
        d = cost.grad(f, y)
        (g,) = pullback(d * s)
        p = jax.tree.map(lambda a, b: a - lr * b, p, g)
        return p, dint + lr * _p_in_norm(d)

    def record(p: Params, dint: Array) -> dict[str, Array]:
        f = model(p, params0, x)
        out = {"f_train": f, "d_integral": dint}
        out["w_change_fro"], out["w_change_op"] = _weight_changes(p, params0, block)
        if cost.value is not None:
            c = cost.value(f, y)
            out["loss"] = c if normalise else c * n
        if x_test is not None:
            out["f_test"] = model(p, params0, x_test)
        if record_ntk:
            theta = ntk0  # linearised: the kernel of θ₀ at every step
            if theta is None:
                theta = alpha**2 * empirical.ntk(x, net=net, params=p, traced=True)
            out["ntk"] = theta
        return out

    def chunk(carry: tuple[Params, Array], length: Array) -> tuple[tuple, dict[str, Array]]:
        carry = jax.lax.fori_loop(0, length, step, carry)
        return carry, record(*carry)

    (p, _), records = jax.lax.scan(chunk, (params, jnp.zeros((), x.dtype)), chunks)
    return p, records


# ------------------------------------------------------------------------------ public API


def _record_steps(record_at: int | Sequence[int], steps: int) -> tuple[int, ...]:
    """A number of evenly spaced records (0 and ``steps`` included) or explicit step indices."""
    if isinstance(record_at, (int, np.integer)) and not isinstance(record_at, bool):
        n = _checks.positive_int("record_at", record_at)
        return tuple(int(k) for k in np.unique(np.round(np.linspace(0, steps, n)).astype(int)))
    try:
        items = [int(k) for k in record_at if float(k) == int(k)]  # type: ignore[union-attr]
        ok = len(items) == len(record_at) > 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ok = False
    if not ok or min(items) < 0 or max(items) > steps:
        raise ValueError(
            f"record_at: expected a number of records or integer steps in [0, {steps}], "
            f"got {record_at!r}"
        )
    return tuple(sorted(set(items)))


def _cost(cost: costs.Cost | Callable[[Array, Array], Array] | None) -> costs.Cost:
    if cost is None:
        return costs.MSE
    if isinstance(cost, costs.Cost):
        return cost
    if callable(cost):
        return costs.Cost(value=None, grad=cost)  # type: ignore[arg-type]
    raise ValueError(f"cost: expected None, a costs.Cost or a callable d(f, y), got {cost!r}")


def train(
    x: Array,
    y: Array,
    *,
    net: MLP,
    params: Params,
    lr: float,
    steps: int,
    record_at: int | Sequence[int] = 11,
    x_test: Array | None = None,
    cost: costs.Cost | Callable[[Array, Array], Array] | None = None,
    linearised: bool = False,
    record_ntk: bool = False,
    normalise: bool = True,
    trainable: Sequence[int] | None = None,
    output_scale: float = 1.0,
) -> Trajectory:
    r"""Full-batch gradient descent on a cost of the outputs, recording the trajectory.

    .. math::

        \theta_{k+1} = \theta_k - \eta\, s \sum_{i} J_{\theta_k}(x_i)^\top d_k(x_i),
        \qquad d_k = \partial C/\partial f\,(f_{\theta_k}), \quad s = 1/N \text{ or } 1,

    t = η k. For the MSE with ``normalise=True`` this is GD on
    :math:`C = \tfrac12 \lVert f - y \rVert^2_{p^{\mathrm{in}}}`; with ``normalise=False`` on
    :math:`\tfrac12 \sum_i \lVert f(x_i) - y_i \rVert^2` (Lee et al. 2019).

    Args:
        x: training inputs (N, n_0).
        y: targets (N, n_L).
        net: the architecture (:func:`ntkbook.networks.mlp`).
        params: initial parameters θ₀; their dtype is the compute dtype (x, y are cast to it).
        lr: η > 0.
        steps: number of updates k ≥ 0.
        record_at: a number R ≥ 1 of evenly spaced records (steps 0 and ``steps`` included;
            fewer if rounding merges some), or the step indices to record (each in [0, steps]).
            One compilation serves every ``steps`` with the same number of records.
        x_test: test inputs (M, n_0) whose outputs are recorded too.
        cost: ``None`` (MSE), a :class:`ntkbook.costs.Cost`, or a callable ``d(f, y)`` returning the
            function-space gradient ∂C/∂f (then no loss is recorded).
        linearised: train the linearised network of :func:`linearise` instead.
        record_ntk: record the traced empirical NTK on x (:func:`ntkbook.empirical.ntk`).
        normalise: the p_in (1/N) convention, or the plain sum over the training points.
        trainable: the layers l (0 … L − 1, the index of W^(l), b^(l); negative counts from
            the end) whose parameters move; the others stay at θ₀. Default: all layers.
            ``trainable=[-1]`` trains the read-out layer only, whose NTK is the last-layer
            kernel (1/n) Σ α α' + β² → Σ^(L) (notes §4.2), so training then is NNGP regression.
            (``record_ntk`` still records the NTK of all parameters.)
        output_scale: α > 0: train the model α f_θ instead of f_θ (its outputs, cost, d and
            traced NTK α² Θ are those recorded). With :math:`α = 1/\sqrt{n_{L-1}}`
            (:func:`ntkbook.experiments.mup.mup_scale`) and the learning rate
            :math:`η\, n_{L-1}` this is
            μP / mean-field training (Yang & Hu 2021, Table 3).

    Returns:
        a :class:`Trajectory`. The same inputs give bitwise the same trajectory.

    Raises:
        ValueError: naming the argument: mis-shaped or non-finite ``params``, ``x``, ``y``,
            ``x_test``; ``lr`` ≤ 0; ``steps`` < 0; bad ``record_at``, ``cost`` or ``trainable``.
    """
    if not isinstance(net, MLP):
        raise ValueError(f"net: expected an ntkbook.networks.MLP (see networks.mlp), got {net!r}")
    check_params(net, params)
    for ell, layer in enumerate(params):
        _checks.finite(f"params[{ell}]", layer.W)
        _checks.finite(f"params[{ell}]", layer.b)
    dtype = params[0].W.dtype
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(dtype)
    if x.shape[0] == 0:
        raise ValueError("x: no training points (N = 0 rows); need N >= 1")
    y = _checks.matrix("y", y, n_features=net.widths[-1], width_name="n_L").astype(dtype)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected {x.shape[0]} rows (one per row of x), got {y.shape}")
    if x_test is not None:
        x_test = _checks.matrix("x_test", x_test, n_features=net.widths[0]).astype(dtype)
    lr = _checks.positive("lr", lr)
    alpha = _checks.positive("output_scale", output_scale)
    steps = _checks.positive_int("steps", steps, minimum=0)
    rec = _record_steps(record_at, steps)
    ks = jnp.asarray(rec)
    chunks = jnp.asarray(np.diff(np.asarray(rec), prepend=0))
    p, buf = _run(
        params,
        x,
        y,
        x_test,
        jnp.asarray(lr, dtype),
        jnp.asarray(alpha, dtype),
        chunks,
        net=net,
        cost=_cost(cost),
        linearised=bool(linearised),
        record_ntk=bool(record_ntk),
        normalise=bool(normalise),
        trainable=_trainable(trainable, net.depth),
    )
    return Trajectory(
        steps=ks,
        t=lr * ks.astype(dtype),
        f_train=buf["f_train"],
        f_test=buf.get("f_test"),
        loss=buf.get("loss"),
        ntk=buf.get("ntk"),
        w_change_fro=buf["w_change_fro"],
        w_change_op=buf["w_change_op"],
        d_integral=buf["d_integral"],
        params=p,
    )


def singular_values(a: Array, *, k: int, iters: int = 3 * _OP_NORM_ITERS) -> Array:
    r"""The k largest singular values σ_1 ≥ … ≥ σ_k of a 2-D array, by subspace iteration.

    :math:`Q = \operatorname{orth}((A A^\top)^q A \Omega)` with a fixed Gaussian
    :math:`\Omega \in \mathbb R^{n \times (k + 8)}`, then the Rayleigh–Ritz values, the singular
    values of :math:`Q^\top A`, each a lower bound of the true :math:`\sigma_j` with relative
    error :math:`\lesssim (\sigma_{k+9}/\sigma_j)^{2q}`. Exact (an eigendecomposition of the smaller
    Gram matrix) when
    min(A.shape) ≤ k + 8. A gradient-descent weight change on N points has about N n_L
    significant singular values, so k = 2 N n_L shows where its spectrum ends.

    Args:
        a: (m, n), finite.
        k: how many, 1 ≤ k ≤ min(m, n).
        iters: q.

    Returns:
        (k,) in decreasing order.

    Raises:
        ValueError: naming ``a``, ``k`` or ``iters``.
    """
    a = _checks.matrix("a", a)
    k = _checks.positive_int("k", k)
    iters = _checks.positive_int("iters", iters, minimum=0)
    if k > min(a.shape):
        raise ValueError(f"k: must be <= min(a.shape) = {min(a.shape)}, got {k}")
    return _singular_values(a, k, iters)


@partial(jax.jit, static_argnames=("k", "iters"))
def _singular_values(a: Array, k: int, iters: int) -> Array:
    m, n = a.shape
    if min(m, n) <= k + 8:
        gram = a.T @ a if n <= m else a @ a.T
        return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(gram)[::-1][:k], 0.0))
    q = a @ jax.random.normal(jax.random.key(0), (n, k + 8), a.dtype)
    for _ in range(iters):
        q = _orthonormalise(a @ (a.T @ _orthonormalise(q)))
    q = _orthonormalise(_orthonormalise(q))
    c = a.T @ q
    return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(c.T @ c)[::-1][:k], 0.0))


def _trainable(layers: Sequence[int] | None, depth: int) -> tuple[bool, ...] | None:
    """A mask over the L layers from layer indices 0 … L − 1 (negative from the end), or None."""
    if layers is None:
        return None
    try:
        items = [operator.index(layer) for layer in layers]
    except TypeError:
        raise ValueError(
            f"trainable: expected a sequence of layer indices, got {layers!r}"
        ) from None
    if not items or any(not -depth <= layer < depth for layer in items):
        raise ValueError(
            f"trainable: each layer must be in 0 … {depth - 1} (or −{depth} … −1), got {layers!r}"
        )
    chosen = {layer % depth for layer in items}
    return tuple(ell in chosen for ell in range(depth))


def _freeze(params: Params, trainable: tuple[bool, ...] | None) -> Params:
    """Stop the gradient of the frozen layers: they get a zero update, and XLA drops the backward
    pass below the lowest trainable layer."""
    if trainable is None:
        return params
    return tuple(
        layer if on else jax.lax.stop_gradient(layer)
        for layer, on in zip(params, trainable, strict=True)
    )
