r"""Lazy training, measured (Chizat et al. 2019; notes §8, chapter 8).

- :func:`train_rescaled`: gradient descent on the rescaled, centred model a (f_θ − f_θ₀), whose
  parameters move by O(1/a) while its function-space dynamics does not depend on a;
- :func:`jacobian_sizes`: the per-layer sizes of ∂f(x)/∂θ, each gradient formed explicitly;
- :func:`hessian_norm`: the spectral norm of the Hessian of f(x), by power iteration on
  Hessian–vector products, stopped on the residual of its Ritz pair;
- :func:`taylor_terms`: JΔθ, ½ΔθᵀHΔθ and the remainder f_θ − f^lin_θ along a training
  displacement;
- :func:`linearisation_gap`: gradient descent on a network and on its linearisation side by
  side, seeds vmapped: sup_t of their distance, the Jacobian sums at θ₀, the Taylor terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .. import _checks, costs, empirical, training
from ..networks import MLP, Params, check_params, forward

Array = jax.Array


class RescaledTrajectory(NamedTuple):
    r"""What :func:`train_rescaled` records, at R steps.

    Attributes:
        steps: (R,) step indices k.
        f_train: (R, N, n_L) the rescaled outputs a (f_θ − f_θ₀) on the training inputs.
        loss: (R,) :math:`\tfrac12 \lVert a (f_\theta - f_{\theta_0}) - y\rVert^2_{p^{in}}`.
        rel_change: (R,) ‖θ − θ₀‖ / ‖θ₀‖ over all parameters (weights and biases).
        params: the parameters after the last step.
    """

    steps: Array
    f_train: Array
    loss: Array
    rel_change: Array
    params: Params


def _tree_norm(tree: Params) -> Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


@partial(jax.jit, static_argnames=("net", "linearised"))
def _run_rescaled(
    params: Params, x: Array, y: Array, scale: Array, lr: Array, chunks: Array, *, net: MLP,
    linearised: bool,
) -> tuple[Params, dict[str, Array]]:  # fmt: skip
    model = training._linearised(net) if linearised else training._network(net)
    params0 = params
    f0 = model(params0, params0, x)
    norm0 = _tree_norm(params0)
    s = 1.0 / x.shape[0]

    def rescaled(p: Params) -> Array:
        return scale * (model(p, params0, x) - f0)

    def step(_: Array, p: Params) -> Params:
        f, pullback = jax.vjp(rescaled, p)
        (g,) = pullback(costs._mse_grad(f, y) * s)
        return jax.tree.map(lambda a, b: a - lr * b, p, g)

    def chunk(p: Params, length: Array) -> tuple[Params, dict[str, Array]]:
        p = jax.lax.fori_loop(0, length, step, p)
        f = rescaled(p)
        rel = _tree_norm(jax.tree.map(jnp.subtract, p, params0)) / norm0
        return p, {"f_train": f, "loss": costs._mse(f, y), "rel_change": rel}

    return jax.lax.scan(chunk, params, chunks)


def train_rescaled(
    x: Array,
    y: Array,
    *,
    net: MLP,
    params: Params,
    scale: float,
    lr: float,
    steps: int,
    record_at: int | Sequence[int] = 11,
    linearised: bool = False,
) -> RescaledTrajectory:
    r"""Gradient descent on the rescaled, centred model of Chizat et al. (2019).

    .. math::

        F_\theta(x) &= a\,\big(f_\theta(x) - f_{\theta_0}(x)\big), \\
        \theta_{k+1} &= \theta_k - \eta\,\nabla_\theta
            \tfrac12 \lVert F_{\theta_k} - y\rVert^2_{p_{in}}
        = \theta_k - \eta\, a\, \tfrac1N \textstyle\sum_i J_{\theta_k}(x_i)^\top
            (F_{\theta_k}(x_i) - y_i).

    One step moves F by :math:`-\eta a^2 \tfrac1N \Theta (F - y)` to first order, and the
    second-order term by :math:`O(\eta^2 a^3)`: with η = η₀/a² the function-space dynamics is
    independent of a while the parameters move by O(1/a) (lazy training); with η = η₀/a the
    function-space step grows like a. Centring (subtracting f_θ₀) makes F₀ = 0 for every a.

    Args:
        net: the architecture.
        params: θ₀.
        x: training inputs (N, n_0).
        y: targets (N, n_L).
        scale: a > 0.
        lr: η > 0.
        steps: number of updates ≥ 0.
        record_at: number of evenly spaced records, or the steps to record (as in
            :func:`ntkbook.training.train`).
        linearised: train the linearised model a J_θ₀ (θ − θ₀) instead.

    Returns:
        :class:`RescaledTrajectory`.

    Raises:
        ValueError: naming the argument (``net``, ``params``, ``x``, ``y``, ``scale``, ``lr``,
            ``steps``, ``record_at``).
    """
    if not isinstance(net, MLP):
        raise ValueError(f"net: expected an ntkbook.networks.MLP (see networks.mlp), got {net!r}")
    check_params(net, params)
    dtype = params[0].W.dtype
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(dtype)
    y = _checks.matrix("y", y, n_features=net.widths[-1]).astype(dtype)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected {x.shape[0]} rows (one per row of x), got {y.shape}")
    scale = _checks.positive("scale", scale)
    lr = _checks.positive("lr", lr)
    steps = _checks.positive_int("steps", steps, minimum=0)
    rec = training._record_steps(record_at, steps)
    chunks = jnp.asarray(np.diff(np.asarray(rec), prepend=0))
    p, buf = _run_rescaled(
        params, x, y, jnp.asarray(scale, dtype), jnp.asarray(lr, dtype), chunks, net=net,
        linearised=bool(linearised),
    )  # fmt: skip
    return RescaledTrajectory(jnp.asarray(rec), buf["f_train"], buf["loss"], buf["rel_change"], p)


class JacobianSizes(NamedTuple):
    r"""Per-layer sizes of the gradient ∂f(x)/∂θ of a one-output network, one row per input.

    Attributes:
        rms_w: (N, L) root mean square of :math:`\partial f/\partial W^{(l)}_{ij}` over the
            :math:`n_l n_{l+1}` entries.
        sumsq_w: (N, L) :math:`\sum_{ij} (\partial f/\partial W^{(l)}_{ij})^2`, the weights'
            share of Θ(x, x).
        rms_b: (N, L) root mean square of :math:`\partial f/\partial b^{(l)}_j`.
        sumsq_b: (N, L) :math:`\sum_j (\partial f/\partial b^{(l)}_j)^2`.
    """

    rms_w: Array
    sumsq_w: Array
    rms_b: Array
    sumsq_b: Array


@partial(jax.jit, static_argnums=0)
def _jacobian_sizes(net: MLP, params: Params, x: Array) -> JacobianSizes:
    def one(xi: Array) -> tuple[Array, Array]:
        g = jax.grad(lambda p: forward(net, p, xi[None, :]).pre[-1][0, 0])(params)
        sw = jnp.stack([jnp.sum(jnp.square(layer.W)) for layer in g])
        sb = jnp.stack([jnp.sum(jnp.square(layer.b)) for layer in g])
        return sw, sb

    # one input at a time (lax.map): memory is one gradient, P numbers, even at width 4096
    sw, sb = jax.lax.map(one, x)
    pw = jnp.asarray([p.W.size for p in params], sw.dtype)
    pb = jnp.asarray([p.b.size for p in params], sb.dtype)
    return JacobianSizes(jnp.sqrt(sw / pw[None, :]), sw, jnp.sqrt(sb / pb[None, :]), sb)


def jacobian_sizes(x: Array, *, net: MLP, params: Params) -> JacobianSizes:
    r"""Sizes of the per-parameter derivatives of f(x), layer by layer, by reverse-mode autodiff.

    .. math::

        \mathrm{rms}^{(l)}_W(x) = \Big(\frac{1}{n_l n_{l+1}} \sum_{i,j}
            \big(\partial f(x)/\partial W^{(l)}_{ij}\big)^2\Big)^{1/2},

        \sum_l \Big[\sum_{ij} (\partial f/\partial W^{(l)}_{ij})^2
            + \sum_j (\partial f/\partial b^{(l)}_j)^2\Big] = \Theta(x, x).

    Each gradient is formed explicitly (one input at a time), independently of the layer-wise
    rule of :func:`ntkbook.empirical.ntk_by_layer`, whose diagonal it reproduces.

    Args:
        net: a network with one output (n_L = 1).
        params: its parameters.
        x: inputs (N, n_0).

    Returns:
        :class:`JacobianSizes`.

    Raises:
        ValueError: naming ``net`` (n_L ≠ 1), ``params`` or ``x``.
    """
    net = empirical._check_net(net, params)
    if net.widths[-1] != 1:
        raise ValueError(f"net: needs one output (n_L = 1), got widths {net.widths}")
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params[0].W.dtype)
    return _jacobian_sizes(net, params, x)


class HessianNorm(NamedTuple):
    r"""Result of :func:`hessian_norm`.

    Attributes:
        norm: :math:`\lvert\lambda\rvert` of the Ritz value of largest modulus, estimating ‖H‖₂.
        residual: :math:`\lVert Hz - \lambda z\rVert / \lvert\lambda\rvert` of its Ritz vector z.
        iterations: power iterations run (two Hessian–vector products each).
    """

    norm: Array
    residual: Array
    iterations: Array


@partial(jax.jit, static_argnames=("net", "max_iters"))
def _hessian_power(
    net: MLP, params: Params, x: Array, key: Array, tol: Array, max_iters: int
) -> HessianNorm:
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(lambda q: forward(net, unravel(q), x).pre[-1][0, 0])

    def hvp(u: Array) -> Array:
        return jax.jvp(grad, (flat,), (u,))[1]

    def body(c: tuple[Array, Array, Array, Array]) -> tuple[Array, Array, Array, Array]:
        v = c[0] / jnp.linalg.norm(c[0])
        a = hvp(v)
        b = hvp(a)
        alpha = v @ a
        r = a - alpha * v
        beta = jnp.linalg.norm(r)
        t22 = r @ (b - alpha * a) / beta**2  # H on span{v, Hv}: [[alpha, beta], [beta, t22]]
        m, d = (alpha + t22) / 2, jnp.sqrt(((alpha - t22) / 2) ** 2 + beta**2)
        lam = jnp.where(jnp.abs(m + d) >= jnp.abs(m - d), m + d, m - d)
        c1, c2 = beta / jnp.hypot(beta, lam - alpha), (lam - alpha) / jnp.hypot(beta, lam - alpha)
        z, hz = c1 * v + c2 * r / beta, c1 * a + c2 * (b - alpha * a) / beta
        return b, jnp.abs(lam), jnp.linalg.norm(hz - lam * z) / jnp.abs(lam), c[3] + 1

    def running(c: tuple[Array, Array, Array, Array]) -> Array:
        return (c[2] >= tol) & (c[3] < max_iters)

    one = jnp.ones((), flat.dtype)
    init = (jax.random.normal(key, flat.shape, flat.dtype), one, jnp.inf * one, jnp.int32(0))
    _, lam, res, it = jax.lax.while_loop(running, body, init)
    return HessianNorm(lam, res, it)


def hessian_norm(
    x: Array,
    *,
    net: MLP,
    params: Params,
    key: Array | None = None,
    tol: float = 1e-3,
    max_iters: int = 200,
) -> HessianNorm:
    r"""Spectral norm of the Hessian of f(x) in the parameters, by power iteration on H².

    .. math::

        H = \frac{\partial^2 f(x)}{\partial\theta\,\partial\theta^\top}, \qquad
        v_{k+1} = \frac{H^2 v_k}{\lVert H^2 v_k\rVert},

        (\lambda, z) = \text{Ritz pair of largest } \lvert\lambda\rvert
            \text{ of } H \text{ on } \mathrm{span}\{v_k, Hv_k\},

    stopped when :math:`\lVert Hz - \lambda z\rVert/\lvert\lambda\rvert <` ``tol``. H is
    indefinite, often with near-opposite pairs ±λ, on which plain power iteration on H
    oscillates; on H² it converges to their span, and the 2×2 Rayleigh–Ritz step separates them.
    For a symmetric H a residual ρ|λ| guarantees an eigenvalue within ρ|λ| of λ. Each Hv is a
    Hessian–vector product (``jax.jvp`` of ``jax.grad``; H is never formed); the whole loop is
    one compiled ``lax.while_loop``.

    Args:
        net: a network with one output.
        params: its parameters.
        x: one input, shape (1, n_0).
        tol: residual at which to stop, in (0, 1).
        max_iters: most iterations (≥ 1); check ``residual`` when it is reached.
        key: start vector's key (default ``jax.random.key(0)``).

    Returns:
        :class:`HessianNorm` ``(norm, residual, iterations)``.

    Raises:
        ValueError: naming ``net``, ``params``, ``x`` (not one row), ``tol`` or ``max_iters``.
    """
    net = empirical._check_net(net, params)
    if net.widths[-1] != 1:
        raise ValueError(f"net: needs one output (n_L = 1), got widths {net.widths}")
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params[0].W.dtype)
    if x.shape[0] != 1:
        raise ValueError(f"x: expected one input of shape (1, n_0), got {x.shape}")
    if not 0.0 < tol < 1.0:
        raise ValueError(f"tol: must be in (0, 1), got {tol!r}")
    max_iters = _checks.positive_int("max_iters", max_iters)
    key = _checks.key("key", jax.random.key(0) if key is None else key)
    return _hessian_power(net, params, x, key, jnp.asarray(tol, params[0].W.dtype), max_iters)


class TaylorTerms(NamedTuple):
    r"""Terms of f(θ₀ + Δθ) = f(θ₀) + JΔθ + ½ΔθᵀHΔθ + …, one value per input.

    Attributes:
        linear: J(x)Δθ.
        quadratic: ½ Δθᵀ H(x) Δθ.
        remainder: :math:`f_\theta(x) - f^{lin}_\theta(x) = f(\theta_0 + \Delta\theta) - f(\theta_0)
            - J\Delta\theta` (everything beyond first order).
        delta_norm: ‖Δθ‖, the Euclidean norm over all parameters (a scalar).
    """

    linear: Array
    quadratic: Array
    remainder: Array
    delta_norm: Array


@partial(jax.jit, static_argnums=0)
def _taylor_terms(net: MLP, params0: Params, params: Params, x: Array) -> TaylorTerms:
    delta = jax.tree.map(jnp.subtract, params, params0)

    def f(p: Params) -> Array:
        return forward(net, p, x).pre[-1][:, 0]

    def jvp(p: Params) -> Array:
        return jax.jvp(f, (p,), (delta,))[1]

    f0, lin = jax.jvp(f, (params0,), (delta,))
    second = jax.jvp(jvp, (params0,), (delta,))[1]  # Δθᵀ H Δθ, for every input at once
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(d)) for d in jax.tree.leaves(delta)))
    return TaylorTerms(lin, 0.5 * second, f(params) - f0 - lin, norm)


def taylor_terms(x: Array, *, net: MLP, params: Params, params0: Params) -> TaylorTerms:
    r"""First- and second-order terms of f along a parameter displacement Δθ = θ − θ₀.

    .. math::

        f_\theta(x) - f^{lin}_\theta(x) = \tfrac12\,\Delta\theta^\top H_{\theta_0}(x)\,\Delta\theta
            + O(\lVert\Delta\theta\rVert^3),

    with JΔθ by one JVP and ΔθᵀHΔθ by a JVP of a JVP (the second directional derivative of
    s ↦ f(θ₀ + sΔθ) at 0); neither J nor H is formed.

    Args:
        net: a network with one output.
        params0: θ₀, the expansion point.
        params: θ (e.g. after training).
        x: inputs (N, n_0).

    Returns:
        :class:`TaylorTerms`, each (N,) (``delta_norm`` a scalar).

    Raises:
        ValueError: naming ``net``, ``params0``, ``params`` or ``x``.
    """
    net = empirical._check_net(net, params0)
    if net.widths[-1] != 1:
        raise ValueError(f"net: needs one output (n_L = 1), got widths {net.widths}")
    try:
        check_params(net, params)
    except ValueError as err:
        raise ValueError(f"params: {err}") from None
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params0[0].W.dtype)
    return _taylor_terms(net, params0, params, x)


class LinearisationGap(NamedTuple):
    r"""What :func:`linearisation_gap` measures, one row per seed (the leading axis of θ₀).

    Attributes:
        gap: (S,) :math:`\sup_{0 \le t \le T} \mathrm{RMS}_x \lvert g_t(x) - g^{lin}_t(x)\rvert`,
            g = f_θ − f_θ₀ the centred output, over the T steps of the run.
        sumsq_w: (S, N, L) :math:`\sum_{ij} (\partial f(x_n)/\partial W^{(l)}_{ij})^2` at θ₀,
            the weights' share of Θ₀(x_n, x_n) (as :attr:`JacobianSizes.sumsq_w`).
        taylor: :class:`TaylorTerms` of θ_T − θ₀ on x, fields (S, N) (``delta_norm`` (S,)).
    """

    gap: Array
    sumsq_w: Array
    taylor: TaylorTerms


@partial(jax.jit, static_argnames=("net", "steps"))
def _linearisation_gap(
    params0: Params, x: Array, y: Array, lr: Array, *, net: MLP, steps: int
) -> LinearisationGap:  # fmt: skip
    s = 1.0 / x.shape[0]

    def one(p0: Params) -> LinearisationGap:
        def fx(p: Params) -> Array:
            return forward(net, p, x).pre[-1][:, 0]

        f0, jac = fx(p0), jax.jacrev(fx)(p0)
        sumsq = jnp.stack([jnp.sum(jnp.square(g.W), axis=(1, 2)) for g in jac], axis=1)
        theta0 = sum(jnp.tensordot(a, a, axes=(tuple(range(1, a.ndim)),) * 2)
                     for a in jax.tree.leaves(jac))  # empirical NTK Θ₀(X, X)  # fmt: skip

        def rms_gap(p: Params, g: Array) -> Array:
            return jnp.sqrt(jnp.mean(jnp.square(fx(p) - f0 - g)))

        def step(c: tuple[Params, Array], _: None) -> tuple[tuple[Params, Array], Array]:
            p, g = c
            r, pull = jax.vjp(fx, p)
            (grad,) = pull((r - f0 - y) * s)
            gap = jnp.sqrt(jnp.mean(jnp.square(r - f0 - g)))
            p = jax.tree.map(lambda a, b: a - lr * b, p, grad)
            return (p, g - lr * s * theta0 @ (g - y)), gap

        (p, g), gaps = jax.lax.scan(step, (p0, jnp.zeros_like(f0)), None, length=steps)
        gap = jnp.maximum(jnp.max(gaps), rms_gap(p, g))
        return LinearisationGap(gap, sumsq, _taylor_terms(net, p0, p, x))

    return jax.vmap(one)(params0)


def linearisation_gap(
    x: Array, y: Array, *, net: MLP, params0: Params, lr: float, steps: int
) -> LinearisationGap:  # fmt: skip
    r"""Gradient descent on a network and on its linearisation, side by side, for S seeds at once.

    .. math::

        g_t = f_{\theta_t} - f_{\theta_0}, \quad
        \theta_{t+1} = \theta_t - \tfrac{\eta}{N} J_{\theta_t}^\top (g_t - y), \quad
        g^{lin}_{t+1} = g^{lin}_t - \tfrac{\eta}{N}\,\Theta_0\,(g^{lin}_t - y),

    on the training inputs x, with :math:`g^{lin}_0 = 0` and Θ₀ the empirical NTK at θ₀: on x
    the linearised model :math:`f_{\theta_0} + J_{\theta_0}(\theta - \theta_0)` trained by the
    same gradient descent moves exactly like :math:`g^{lin}` (function space), so it costs one
    N × N matrix. Reports :math:`\sup_t \mathrm{RMS}_x\lvert g_t - g^{lin}_t\rvert` (Lee et al.
    2019 bound it by :math:`O(n^{-1/2})`), the per-layer Jacobian sums at θ₀ (from the Jacobian that
    gives Θ₀) and :func:`taylor_terms` of θ_T − θ₀. Seeds run together under ``jax.vmap``: one
    compilation per architecture.

    Args:
        x: training inputs (N, n_0).
        y: targets, (N,) or (N, 1).
        net: a network with one output (n_L = 1).
        params0: θ₀ for S seeds, every leaf stacked along a leading axis of length S.
        lr: η > 0.
        steps: T ≥ 1.

    Returns:
        :class:`LinearisationGap`.

    Raises:
        ValueError: naming ``net``, ``params0``, ``x``, ``y``, ``lr`` or ``steps``.
    """
    if not isinstance(net, MLP):
        raise ValueError(f"net: expected an ntkbook.networks.MLP (see networks.mlp), got {net!r}")
    if net.widths[-1] != 1:
        raise ValueError(f"net: needs one output (n_L = 1), got widths {net.widths}")
    leaves = jax.tree.leaves(params0)
    if not leaves or any(
        jnp.ndim(a) < 1 or jnp.shape(a)[0] != jnp.shape(leaves[0])[0] for a in leaves
    ):
        raise ValueError("params0: expected every leaf stacked along one leading seed axis")
    try:
        check_params(net, jax.tree.map(lambda a: a[0], params0))
    except ValueError as err:
        raise ValueError(f"params0: {err}") from None
    dtype = leaves[0].dtype
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(dtype)
    y = jnp.asarray(y, dtype)
    if y.shape not in ((x.shape[0],), (x.shape[0], 1)):
        raise ValueError(f"y: expected shape ({x.shape[0]},) or ({x.shape[0]}, 1), got {y.shape}")
    lr = _checks.positive("lr", lr)
    steps = _checks.positive_int("steps", steps)
    return _linearisation_gap(
        params0, x, y.reshape(-1), jnp.asarray(lr, dtype), net=net, steps=steps
    )
