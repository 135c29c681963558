r"""Lazy training, measured (Chizat et al. 2019; notes §8, chapter 8).

- :func:`train_rescaled`: gradient descent on the rescaled, centred model a (f_θ − f_θ₀), whose
  parameters move by O(1/a) while its function-space dynamics does not depend on a;
- :func:`jacobian_sizes`: the per-layer sizes of ∂f(x)/∂θ, each gradient formed explicitly;
- :func:`hessian_norm`: the spectral norm of the Hessian of f(x), by power iteration on
  Hessian–vector products;
- :func:`taylor_terms`: JΔθ, ½ΔθᵀHΔθ and the remainder f_θ − f^lin_θ along a training
  displacement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    *,
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


def jacobian_sizes(net: MLP, params: Params, x: Array) -> JacobianSizes:
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


def _scalar_fn(net: MLP, x: Array) -> Callable[[Params], Array]:
    return lambda p: forward(net, p, x).pre[-1][0, 0]


def _tree_dot(a: Any, b: Any) -> Array:
    return sum(jnp.vdot(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@partial(jax.jit, static_argnames=("net", "iters"))
def _hessian_power(net: MLP, params: Params, x: Array, key: Array, iters: int) -> Array:
    f = _scalar_fn(net, x)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    v = jax.tree.unflatten(
        treedef, [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    )

    def hvp(u: Params) -> Params:
        return jax.jvp(jax.grad(f), (params,), (u,))[1]

    def step(u: Params, _: None) -> tuple[Params, Array]:
        u = jax.tree.map(lambda a: a / jnp.sqrt(_tree_dot(u, u)), u)
        hu = hvp(u)
        return hu, jnp.sqrt(_tree_dot(hu, hu))

    _, history = jax.lax.scan(step, v, None, length=iters)
    return history


def hessian_norm(
    net: MLP, params: Params, x: Array, *, iters: int = 30, key: Array | None = None
) -> Array:
    r"""Spectral norm of the Hessian of f(x) in the parameters, by power iteration.

    .. math::

        H = \frac{\partial^2 f(x)}{\partial\theta\,\partial\theta^\top}, \qquad
        v_{k+1} = \frac{H v_k}{\lVert H v_k\rVert}, \qquad
        \lVert H v_k\rVert \to \lVert H\rVert_2 = \max_i \lvert\lambda_i(H)\rvert .

    Each product Hv is a Hessian–vector product, ``jax.jvp`` of ``jax.grad`` (about three
    forward passes; H is never formed). H is indefinite, often with ±λ pairs; the iteration on
    :math:`H^2` still converges to the largest :math:`\lvert\lambda\rvert`, at the rate
    :math:`(\lambda_2/\lambda_1)^{2k}` for the squared eigenvalues. The history lets the caller
    judge convergence.

    Args:
        net: a network with one output.
        params: its parameters.
        x: one input, shape (1, n_0).
        iters: number of Hessian–vector products (≥ 1).
        key: start vector's key (default ``jax.random.key(0)``).

    Returns:
        (iters,) the estimates ‖H v_k‖; the last is the norm.

    Raises:
        ValueError: naming ``net``, ``params``, ``x`` (not one row) or ``iters``.
    """
    net = empirical._check_net(net, params)
    if net.widths[-1] != 1:
        raise ValueError(f"net: needs one output (n_L = 1), got widths {net.widths}")
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params[0].W.dtype)
    if x.shape[0] != 1:
        raise ValueError(f"x: expected one input of shape (1, n_0), got {x.shape}")
    iters = _checks.positive_int("iters", iters)
    key = _checks.key("key", jax.random.key(0) if key is None else key)
    return _hessian_power(net, params, x, key, iters)


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


def taylor_terms(net: MLP, params0: Params, params: Params, x: Array) -> TaylorTerms:
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
