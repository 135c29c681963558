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
    >>> params = networks.init(jax.random.key(0), net)
    >>> x = jnp.ones((4, 2)); y = jnp.zeros((4, 1))
    >>> traj = train(net, params, x, y, lr=0.5, steps=20, record_at=3)
    >>> traj.steps.tolist(), traj.f_train.shape, traj.w_change_fro.shape
    ([0, 10, 20], (3, 4, 1), (3, 2))
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
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


def linearise(net: MLP, params0: Params) -> Callable[[Params, Array], Array]:
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
    model = _linearised(net) if linearised else _network(net)
    params0 = params
    n = x.shape[0]
    s = 1.0 / n if normalise else 1.0
    block = n * net.widths[-1] + 8  # ≥ N n_L: the rank that GD on N points builds up
    ntk0 = empirical.ntk(net, params0, x, traced=True) if record_ntk and linearised else None

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
            out["ntk"] = ntk0 if linearised else empirical.ntk(net, p, x, traced=True)
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
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    *,
    lr: float,
    steps: int,
    record_at: int | Sequence[int] = 11,
    x_test: Array | None = None,
    cost: costs.Cost | Callable[[Array, Array], Array] | None = None,
    linearised: bool = False,
    record_ntk: bool = False,
    normalise: bool = True,
    trainable: Sequence[int] | None = None,
) -> Trajectory:
    r"""Full-batch gradient descent on a cost of the outputs, recording the trajectory.

    .. math::

        \theta_{k+1} = \theta_k - \eta\, s \sum_{i} J_{\theta_k}(x_i)^\top d_k(x_i),
        \qquad d_k = \partial C/\partial f\,(f_{\theta_k}), \quad s = 1/N \text{ or } 1,

    t = η k. For the MSE with ``normalise=True`` this is GD on
    :math:`C = \tfrac12 \lVert f - y \rVert^2_{p^{\mathrm{in}}}`; with ``normalise=False`` on
    :math:`\tfrac12 \sum_i \lVert f(x_i) - y_i \rVert^2` (Lee et al. 2019).

    Args:
        net: the architecture (:func:`ntkbook.networks.mlp`).
        params: initial parameters θ₀; their dtype is the compute dtype (x, y are cast to it).
        x: training inputs (N, n_0).
        y: targets (N, n_L).
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
    steps = _checks.positive_int("steps", steps, minimum=0)
    rec = _record_steps(record_at, steps)
    ks = jnp.asarray(rec)
    chunks = jnp.asarray(np.diff(np.asarray(rec), prepend=0))
    p, buf = _run(
        params, x, y, x_test, jnp.asarray(lr, dtype), chunks,
        net=net, cost=_cost(cost), linearised=bool(linearised), record_ntk=bool(record_ntk),
        normalise=bool(normalise), trainable=_trainable(trainable, net.depth),
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


# ------------------------------------------------- the proofs' quantities (chapters 5–6)


def _ntk_param_net(net: object, params: Params) -> MLP:
    """The net, validated, in the NTK parametrisation (the proofs' 1/√n_l scalings need it)."""
    if not isinstance(net, MLP):
        raise ValueError(f"net: expected an ntkbook.networks.MLP (see networks.mlp), got {net!r}")
    check_params(net, params)
    if net.parametrisation != "ntk":
        raise ValueError(
            f"net: the proofs' quantities are defined in the NTK parametrisation, "
            f"got parametrisation={net.parametrisation!r}"
        )
    return net


def _scales(net: MLP) -> tuple[float, ...]:
    """s_l = σ_w/√n_l, the factor in front of W^(l) (l = 0 … L − 1)."""
    return tuple(net.sigma_w / n**0.5 for n in net.widths[:-1])


def _pin_rows(a: Array) -> Array:
    """‖a_i‖_{p_in} = (1/N Σ_x a_i(x)²)^{1/2} for every column i of a (N, n): shape (n,)."""
    return jnp.sqrt(jnp.mean(jnp.square(a), axis=0))


def layer_directions(net: MLP, params: Params, x: Array, d: Array) -> tuple[Array, ...]:
    r"""The layer-wise training directions :math:`d^{(l)} = \partial C/\partial\tilde\alpha^{(l)}`
    of Lemma 1, l = 1 … L.

    .. math::

        \begin{aligned}
        d^{(L)} &= d, \\
        d^{(l)}(x) &= \dot\sigma\big(\tilde\alpha^{(l)}(x)\big) \odot
            \Big(\frac{\sigma_w}{\sqrt{n_l}} W^{(l)}\Big) d^{(l+1)}(x),
        \quad l = L-1, \dots, 1,
        \end{aligned}

    with :math:`W^{(l)}` of shape :math:`(n_l, n_{l+1})` (so no transpose is needed in this
    convention), and d the function-space gradient ∂C/∂f of the cost (:mod:`ntkbook.costs`). Then
    :math:`\partial C/\partial W^{(l)} = (\sigma_w/\sqrt{n_l})\,
    \langle\alpha^{(l)}, d^{(l+1)}\rangle_{p^{in}}`, an outer product averaged over x.

    Args:
        net: the architecture, in the NTK parametrisation.
        params: its parameters.
        x: inputs (N, n_0).
        d: the gradient d(x_i) at those inputs, (N, n_L).

    Returns:
        :math:`(d^{(1)}, \dots, d^{(L)})`, each (N, n_l).

    Raises:
        ValueError: naming ``net``, ``params``, ``x`` or ``d``.
    """
    net = _ntk_param_net(net, params)
    x = _checks.matrix("x", x, n_features=net.widths[0])
    d = _checks.matrix("d", d, n_features=net.widths[-1])
    if d.shape[0] != x.shape[0]:
        raise ValueError(f"d: expected {x.shape[0]} rows (one per row of x), got {d.shape}")
    return _layer_directions(net, params, x.astype(params[0].W.dtype), d.astype(params[0].W.dtype))


@partial(jax.jit, static_argnames=("net",))
def _layer_directions(net: MLP, params: Params, x: Array, d: Array) -> tuple[Array, ...]:
    layers = forward(net, params, x)
    grads = empirical._output_jacobians(net, params, layers.pre)  # g^(l) = ∂f/∂α̃^(l)
    return tuple(jnp.einsum("nik,nk->ni", g, d, precision=jax.lax.Precision.HIGHEST)
                 for g in grads)


class NeuronChanges(NamedTuple):
    r"""Per-neuron sizes of the last-layer dynamics of Theorem 2's inductive step (notes §5.3).

    For the neurons i = 1 … n_l of hidden layer l (:math:`W_i^{(l)} \in \mathbb R^{n_{l+1}}` is
    row i of :math:`W^{(l)}`):

    Attributes:
        w0: (n_l,) :math:`\|W_i^{(l)}(0)\|_2`.
        w_change: (n_l,) :math:`\|W_i^{(l)}(t) - W_i^{(l)}(0)\|_2`.
        act0: (n_l,) :math:`\|\alpha_i^{(l)}(0)\|_{p^{in}}`.
        pre_change: (n_l,) :math:`\|\tilde\alpha_i^{(l)}(t) - \tilde\alpha_i^{(l)}(0)\|_{p^{in}}`.
    """

    w0: Array
    w_change: Array
    act0: Array
    pre_change: Array

    def gronwall_a(self, c: float) -> Array:
        r"""The quantity of the notes' Grönwall argument (§5.3), neuron by neuron.

        .. math::

            \begin{aligned}
            A_i(t) ={} & \|\alpha_i(0)\|_{p^{in}}
                + c\,\|\tilde\alpha_i(t) - \tilde\alpha_i(0)\|_{p^{in}} \\
                & + \|W_i(0)\|_2 + \|W_i(t) - W_i(0)\|_2
            \end{aligned}

        Args:
            c: the Lipschitz constant of σ.

        Returns:
            (n_l,) A_i(t), the quantity to which the notes apply Grönwall's lemma.
        """
        c = _checks.positive("c", c)
        return self.act0 + c * self.pre_change + self.w0 + self.w_change


def neuron_changes(
    net: MLP, params: Params, params0: Params, x: Array, *, layer: int | None = None
) -> NeuronChanges:
    r"""How far each neuron of a hidden layer and its outgoing weights moved (notes §5.3).

    .. math::

        \begin{aligned}
        &\|W_i^{(l)}(t) - W_i^{(l)}(0)\|_2, \\
        &\|\tilde\alpha_i^{(l)}(t) - \tilde\alpha_i^{(l)}(0)\|_{p^{in}}
            = \Big(\frac1N \sum_{x} \big(\tilde\alpha_i^{(l)}(x;\theta_t)
              - \tilde\alpha_i^{(l)}(x;\theta_0)\big)^2\Big)^{1/2},
        \end{aligned}

    and the sizes at initialisation :math:`\|W_i^{(l)}(0)\|_2` and
    :math:`\|\alpha_i^{(l)}(0)\|_{p^{in}}`.

    Args:
        net: the architecture (NTK parametrisation), depth L ≥ 2.
        params: the parameters θ_t.
        params0: the parameters θ_0.
        x: the inputs of p_in, (N, n_0).
        layer: hidden layer l in 1 … L − 1; default L − 1 (the layer below the output).

    Returns:
        :class:`NeuronChanges`.

    Raises:
        ValueError: naming ``net``, ``params``, ``params0``, ``x`` or ``layer``.
    """
    net = _ntk_param_net(net, params)
    check_params(net, params0)
    if net.depth < 2:
        raise ValueError(f"net: needs a hidden layer (depth L >= 2), got depth {net.depth}")
    layer = net.depth - 1 if layer is None else _checks.positive_int("layer", layer)
    if layer > net.depth - 1:
        raise ValueError(f"layer: must be a hidden layer in 1 … {net.depth - 1}, got {layer}")
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params[0].W.dtype)
    return _neuron_changes(net, params, params0, x, layer)


@partial(jax.jit, static_argnames=("net", "layer"))
def _neuron_changes(
    net: MLP, params: Params, params0: Params, x: Array, layer: int
) -> NeuronChanges:
    now, start = forward(net, params, x), forward(net, params0, x)
    return NeuronChanges(
        w0=jnp.linalg.norm(params0[layer].W, axis=1),
        w_change=jnp.linalg.norm(params[layer].W - params0[layer].W, axis=1),
        act0=_pin_rows(start.post[layer]),
        pre_change=_pin_rows(now.pre[layer - 1] - start.pre[layer - 1]),
    )


class Lemma1Norms(NamedTuple):
    r"""The norms of Lemma 1's proof (notes §6, steps 2–3) for hidden layers k = 1 … L − 1.

    With :math:`s_k = \sigma_w/\sqrt{n_k}` (:math:`1/\sqrt{n_k}` in the notes):

    Attributes:
        a: (L−1,) :math:`a^{(k)} = \|s_k \alpha^{(k)}(t)\|_{p^{in}}`.
        a0: (L−1,) :math:`a^{(k)}(0)`.
        a_change: (L−1,)
            :math:`\tilde a^{(k)} = \|s_k (\tilde\alpha^{(k)}(t) -
            \tilde\alpha^{(k)}(0))\|_{p^{in}}`.
        w: (L−1,) :math:`w^{(k)} = \|s_k W^{(k)}(t)\|_{op}`.
        w0: (L−1,) :math:`w^{(k)}(0)`.
        w_change: (L−1,) :math:`\tilde w^{(k)} = \|s_k (W^{(k)}(t) - W^{(k)}(0))\|_{op}`.
    """

    a: Array
    a0: Array
    a_change: Array
    w: Array
    w0: Array
    w_change: Array

    def big_a(self, c: float) -> Array:
        r"""The proof's
        :math:`A(t) = \sum_k a^{(k)}(0) + c\, \tilde a^{(k)}(t) + w^{(k)}(0) + \tilde w^{(k)}(t)`.

        Args:
            c: the Lipschitz constant of σ.
        """
        c = _checks.positive("c", c)
        return jnp.sum(self.a0 + c * self.a_change + self.w0 + self.w_change)


def lemma1_norms(net: MLP, params: Params, params0: Params, x: Array) -> Lemma1Norms:
    r"""The sizes :math:`a^{(k)}, w^{(k)}` and the variations :math:`\tilde a^{(k)}, \tilde w^{(k)}`
    of Lemma 1 (notes §6).

    .. math::

        \begin{aligned}
        a^{(k)} &= \Big\|\tfrac{1}{\sqrt{n_k}}\alpha^{(k)}\Big\|_{p^{in}}, &
        w^{(k)} &= \Big\|\tfrac{1}{\sqrt{n_k}}W^{(k)}\Big\|_{op}, \\
        \tilde a^{(k)} &= \Big\|\tfrac{1}{\sqrt{n_k}}\big(\tilde\alpha^{(k)}(t)
            - \tilde\alpha^{(k)}(0)\big)\Big\|_{p^{in}}, \\
        \tilde w^{(k)} &= \Big\|\tfrac{1}{\sqrt{n_k}}\big(W^{(k)}(t) - W^{(k)}(0)\big)\Big\|_{op},
        \end{aligned}

    for k = 1 … L − 1 (times σ_w when σ_w ≠ 1), where
    :math:`\|g\|^2_{p^{in}} = \frac1N \sum_x \|g(x)\|^2`. Operator
    norms by :func:`op_norm` (a Rayleigh–Ritz lower bound for large random matrices, whose
    top singular values cluster; exact up to rounding for the low-rank variations).

    Args:
        net: the architecture (NTK parametrisation), depth L ≥ 2.
        params: θ_t.
        params0: θ_0.
        x: the inputs of p_in, (N, n_0).

    Returns:
        :class:`Lemma1Norms`.

    Raises:
        ValueError: naming ``net``, ``params``, ``params0`` or ``x``.
    """
    net = _ntk_param_net(net, params)
    check_params(net, params0)
    if net.depth < 2:
        raise ValueError(f"net: needs a hidden layer (depth L >= 2), got depth {net.depth}")
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params[0].W.dtype)
    return _lemma1_norms(net, params, params0, x)


@partial(jax.jit, static_argnames=("net",))
def _lemma1_norms(net: MLP, params: Params, params0: Params, x: Array) -> Lemma1Norms:
    now, start = forward(net, params, x), forward(net, params0, x)
    s = _scales(net)
    n = x.shape[0]
    block = n * net.widths[-1] + 8
    out: dict[str, list[Array]] = {f: [] for f in Lemma1Norms._fields}
    for k in range(1, net.depth):
        out["a"].append(s[k] * _p_in_norm(now.post[k]))
        out["a0"].append(s[k] * _p_in_norm(start.post[k]))
        out["a_change"].append(s[k] * _p_in_norm(now.pre[k - 1] - start.pre[k - 1]))
        out["w"].append(s[k] * op_norm(params[k].W, block=block))
        out["w0"].append(s[k] * op_norm(params0[k].W, block=block))
        out["w_change"].append(s[k] * op_norm(params[k].W - params0[k].W, block=block))
    return Lemma1Norms(**{f: jnp.stack(v) for f, v in out.items()})


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


def scaled_mse(kappa: float) -> costs.Cost:
    r"""Least squares on the rescaled output κ f, as a cost of the network's own output f.

    .. math::

        C(f) = \tfrac12 \|\kappa f - y\|^2_{p^{in}}, \qquad d = \partial_f C = \kappa(\kappa f - y).

    With :math:`\kappa = 1/\sqrt{n_{L-1}}` and the learning rate multiplied by 1/κ², :func:`train`
    runs the
    *mean-field* scaling f_mf = κ f (the output layer divides by n rather than √n): the outputs
    still move by O(1), but the parameters, and so the kernel, move by O(1) too — the regime
    that Theorem 2 excludes (Chizat et al. 2019's "non-lazy" training).

    Args:
        kappa: κ > 0.

    Returns:
        a :class:`ntkbook.costs.Cost` for the ``cost`` argument of :func:`train`; the recorded
        ``f_train`` is the unscaled f, and ``loss`` is C.
    """
    kappa = _checks.positive("kappa", kappa)
    return costs.Cost(
        value=lambda f, y: costs.MSE.value(kappa * f, y),
        grad=lambda f, y: kappa * costs.MSE.grad(kappa * f, y),
    )
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
    return tuple(layer if on else jax.lax.stop_gradient(layer)
                 for layer, on in zip(params, trainable, strict=True))
# ------------------------------------------------------------------ large learning rates (ch. 10)

PHASES: tuple[str, ...] = ("lazy", "catapult", "divergent")


def top_eigenvalue(ntk: Array, *, normalise: bool = True) -> np.ndarray:
    r"""λ_max of the NTK Gram matrix on the training points, per record: the curvature that sets
    gradient descent's stability, :math:`\lambda_{\max}(\Theta_t / N)` (``normalise=True``, the
    p_in convention of :func:`train`) or :math:`\lambda_{\max}(\Theta_t)`.

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
        net, params, x, y: as in :func:`train`.
        lrs: learning rates η > 0, strictly increasing.
        steps: gradient-descent steps per run.
        converged: as in :func:`lr_phase`.

    Returns:
        the phases, in the order of ``lrs`` (possibly fewer).

    Raises:
        ValueError: naming ``lrs`` (empty, non-positive or not increasing), or as :func:`train`.
    """
    etas = np.asarray(lrs, dtype=np.float64)
    if etas.ndim != 1 or etas.size == 0 or np.any(~np.isfinite(etas)) or np.any(etas <= 0):
        raise ValueError(f"lrs: expected a non-empty sequence of learning rates > 0, got {lrs!r}")
    if np.any(np.diff(etas) <= 0):
        raise ValueError(f"lrs: must be strictly increasing, got {lrs!r}")
    phases: list[str] = []
    for eta in etas:
        traj = train(net, params, x, y, lr=float(eta), steps=steps, record_at=steps + 1)
        phases.append(lr_phase(traj.loss, converged=converged))
        if phases[-1] == "divergent":
            break
    return tuple(phases)


# ------------------------------------------------------------------ μP / mean-field (ch. 10)


def mup_scale(net: MLP) -> float:
    r"""The factor :math:`1/\sqrt{n_{L-1}}` that turns the NTK-parametrised network into its
    μP (mean-field) counterpart, whose last layer is scaled by 1/n instead of 1/√n:

    .. math::

        f^{\mu P}_\theta(x) = \frac{1}{\sqrt{n_{L-1}}} f^{ntk}_\theta(x)
            = \frac{\sigma_w}{n_{L-1}} W^{(L-1)\top} \alpha^{(L-1)}(x)
              + \frac{\beta}{\sqrt{n_{L-1}}} b^{(L-1)} .

    Raises:
        ValueError: naming ``net`` unless it is an NTK-parametrised :class:`~ntkbook.networks.MLP`.
    """
    if not isinstance(net, MLP) or net.parametrisation != "ntk":
        raise ValueError(f"net: expected an MLP in the NTK parametrisation, got {net!r}")
    return 1.0 / net.widths[-2] ** 0.5


@lru_cache(maxsize=64)
def _scaled_mse(alpha: float) -> costs.Cost:
    """The MSE of α f as a cost of f: value ½‖αf − y‖², gradient α (αf − y) (cached: one jit)."""
    return costs.Cost(
        value=lambda f, y: costs.MSE.value(alpha * f, y),
        grad=lambda f, y: alpha * costs.MSE.grad(alpha * f, y),
    )


def train_mup(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    *,
    lr: float,
    steps: int,
    record_at: int | Sequence[int] = 11,
    x_test: Array | None = None,
    record_ntk: bool = False,
) -> Trajectory:
    r"""Gradient descent on the MSE of the μP / mean-field network (Yang & Hu 2021, Table 3;
    Chizat & Bach 2018 for two layers).

    With all parameters N(0, 1) and layer multipliers σ_w/√n_l (the NTK parametrisation) except
    the last, :math:`\sigma_w/n_{L-1}` (:func:`mup_scale`), μP trains every parameter with the
    learning rate :math:`\eta\, n_{L-1}`:

    .. math::

        \theta_{k+1} = \theta_k - \eta\, n_{L-1}\, \frac1N \sum_i J^{\mu P}(x_i)^\top
            \big(f^{\mu P}_{\theta_k}(x_i) - y_i\big),

    so that, with η fixed, every hidden unit moves by O(1) as n → ∞ (features are learned),
    while the μP kernel :math:`\Theta^{\mu P} = \Theta^{ntk}/n_{L-1}` moves by O(1) of itself.
    Implemented as :func:`train` on the NTK network with the cost ½‖α f − y‖²
    (α = :func:`mup_scale`) and the learning rate :math:`\eta\, n_{L-1}`; no new network code.

    Args:
        net: an NTK-parametrised MLP (its widths define :math:`n_{L-1}`).
        params, x, y, steps, record_at, x_test, record_ntk: as in :func:`train`.
        lr: η > 0, the width-independent μP learning rate.

    Returns:
        a :class:`Trajectory` of the μP network: ``f_train``, ``f_test`` are
        :math:`f^{\mu P}`, ``loss`` is :math:`\frac12\|f^{\mu P} - y\|^2_{p^{in}}`, ``ntk`` is
        the traced :math:`\Theta^{\mu P}`, ``t`` = η k and ``d_integral`` uses
        :math:`d = f^{\mu P} - y`; ``params`` and the weight changes are those of θ itself.

    Raises:
        ValueError: as :func:`train` and :func:`mup_scale`.
    """
    alpha = mup_scale(net)
    lr = _checks.positive("lr", lr)
    n = net.widths[-2]
    traj = train(net, params, x, y, lr=lr * n, steps=steps, record_at=record_at, x_test=x_test,
                 cost=_scaled_mse(alpha), record_ntk=record_ntk)
    return traj._replace(
        t=traj.t / n,
        f_train=alpha * traj.f_train,
        f_test=None if traj.f_test is None else alpha * traj.f_test,
        ntk=None if traj.ntk is None else alpha**2 * traj.ntk,
        d_integral=traj.d_integral / (alpha * n),
    )


def activation_flips(net: MLP, params0: Params, params: Params, x: Array) -> Array:
    r"""Fraction of hidden units whose preactivation changed sign between θ₀ and θ, per layer:

    .. math::

        \begin{aligned}
        \phi^{(l)} = \frac{1}{N n_l} \sum_{i=1}^N \sum_{j=1}^{n_l}
            \mathbf 1\big[ & \operatorname{sign}\tilde\alpha^{(l)}_j(x_i; \theta_0) \\
            & \ne \operatorname{sign}\tilde\alpha^{(l)}_j(x_i; \theta)\big],
        \qquad l = 1, \dots, L-1 .
        \end{aligned}

    For ReLU these are the units that crossed the kink, where σ̈ is a Dirac mass: Theorem 2's
    bound on σ̈ fails exactly there.

    Args:
        net: the architecture.
        params0, params: two parameter sets (e.g. θ₀ and ``Trajectory.params``).
        x: inputs (N, n_0).

    Returns:
        (L − 1,) fractions in [0, 1].

    Raises:
        ValueError: naming ``params0``/``params``/``x`` on mismatched shapes, or ``net`` if it
            has no hidden layer.
    """
    if not isinstance(net, MLP) or net.depth < 2:
        raise ValueError(f"net: expected an MLP with at least one hidden layer, got {net!r}")
    check_params(net, params0)
    check_params(net, params)
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params0[0].W.dtype)
    before = forward(net, params0, x).pre[:-1]
    after = forward(net, params, x).pre[:-1]
    return jnp.stack([jnp.mean(jnp.signbit(a) != jnp.signbit(b))
                      for a, b in zip(before, after, strict=True)])


# ------------------------------------------------------- lazy training by rescaling (notes §8)


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
    model = _linearised(net) if linearised else _network(net)
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
        record_at: number of evenly spaced records, or the steps to record (as in :func:`train`).
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
    rec = _record_steps(record_at, steps)
    chunks = jnp.asarray(np.diff(np.asarray(rec), prepend=0))
    p, buf = _run_rescaled(
        params, x, y, jnp.asarray(scale, dtype), jnp.asarray(lr, dtype), chunks, net=net,
        linearised=bool(linearised),
    )  # fmt: skip
    return RescaledTrajectory(jnp.asarray(rec), buf["f_train"], buf["loss"], buf["rel_change"], p)
