r"""The quantities of the proofs of Theorem 2 and Lemma 1, measured on a finite network (notes §5.3,
§6; chapters 5–6).

- :func:`layer_directions`: the layer-wise training directions :math:`d^{(l)}` of Lemma 1;
- :func:`neuron_changes`: how far each neuron of a hidden layer moved (Theorem 2's inductive step);
- :func:`lemma1_norms`: the sizes :math:`a^{(k)}, w^{(k)}` and variations
  :math:`\tilde a^{(k)}, \tilde w^{(k)}` of Lemma 1's Grönwall argument;
- :func:`ntk_recursion`: :math:`\Theta^{(l+1)}` from :math:`\Theta^{(l)}` by the (corrected)
  recursion of Lemma 1's proof, to compare with the autodiff sub-network NTK
  :func:`ntkbook.empirical.subnetwork_ntk` (``traced=False``);
- :func:`subnetwork_op_norm`: the operator norm of that kernel without forming it.

All of them are written for the NTK parametrisation and built from :mod:`ntkbook.networks`,
:mod:`ntkbook.empirical` and :mod:`ntkbook.training`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import _checks, empirical, training
from ..networks import MLP, Params, check_params, forward

Array = jax.Array

_HIGHEST = jax.lax.Precision.HIGHEST


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


def layer_directions(x: Array, d: Array, *, net: MLP, params: Params) -> tuple[Array, ...]:
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
    return tuple(jnp.einsum("nik,nk->ni", g, d, precision=jax.lax.Precision.HIGHEST) for g in grads)


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
    x: Array, *, net: MLP, params: Params, params0: Params, layer: int | None = None
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


def lemma1_norms(x: Array, *, net: MLP, params: Params, params0: Params) -> Lemma1Norms:
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
    norms by :func:`~ntkbook.training.op_norm` (a Rayleigh–Ritz lower bound for large random
    matrices, whose top singular values cluster; exact up to rounding for the low-rank variations).

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
        out["a"].append(s[k] * training._p_in_norm(now.post[k]))
        out["a0"].append(s[k] * training._p_in_norm(start.post[k]))
        out["a_change"].append(s[k] * training._p_in_norm(now.pre[k - 1] - start.pre[k - 1]))
        out["w"].append(s[k] * training.op_norm(params[k].W, block=block))
        out["w0"].append(s[k] * training.op_norm(params0[k].W, block=block))
        out["w_change"].append(s[k] * training.op_norm(params[k].W - params0[k].W, block=block))
    return Lemma1Norms(**{f: jnp.stack(v) for f, v in out.items()})


def ntk_recursion(x: Array, theta: Array, *, net: MLP, params: Params, layer: int) -> Array:
    r""":math:`\Theta^{(l+1)}` from :math:`\Theta^{(l)}` by the recursion of Lemma 1's proof (notes
    §6, step 1, corrected).

    With :math:`s = \sigma_w/\sqrt{n_l}` (:math:`1/\sqrt{n_l}` in the notes),
    :math:`W = W^{(l)} \in \mathbb R^{n_l \times n_{l+1}}` and
    :math:`D(x) = \operatorname{diag} \dot\sigma(\tilde\alpha^{(l)}(x))`,

    .. math::

        \begin{aligned}
        \Theta^{(l+1)}(x, x') ={} & (s W)^\top D(x)\, \Theta^{(l)}(x, x')\, D(x')\, (s W) \\
            & + \big(s^2 \alpha^{(l)}(x) \cdot \alpha^{(l)}(x') + \beta^2\big)\,
              \mathrm{Id}_{n_{l+1}},
        \end{aligned}

    an identity at every finite width (the chain rule through one layer plus the new layer's
    own parameters). The identity matrix is :math:`\mathrm{Id}_{n_{l+1}}`, and the first term
    carries a transpose (:math:`W` maps :math:`\mathbb R^{n_l}` to :math:`\mathbb R^{n_{l+1}}`
    through :math:`W^\top`): the notes' display has :math:`\mathrm{Id}_{n_l}` and no transpose.
    The start is :math:`\Theta^{(1)} = (\sigma_w^2 x^\top x'/n_0 + \beta^2)\, \mathrm{Id}_{n_1}`.

    Args:
        net: the architecture (NTK parametrisation).
        params: its parameters.
        x: inputs (N, n_0).
        theta: :math:`\Theta^{(l)}` on x, (N, N, n_l, n_l) (e.g.
            :func:`~ntkbook.empirical.subnetwork_ntk` with ``traced=False``).
        layer: l with 1 ≤ l ≤ L − 1.

    Returns:
        :math:`\Theta^{(l+1)}` on x, shape :math:`(N, N, n_{l+1}, n_{l+1})`.

    Raises:
        ValueError: naming ``net``, ``params``, ``x``, ``theta`` or ``layer``.
    """
    net = empirical._check_net(net, params)
    if net.parametrisation != "ntk":
        raise ValueError(
            f"net: the recursion is written for parametrisation='ntk', got {net.parametrisation!r}"
        )
    layer = _checks.positive_int("layer", layer)
    if layer > net.depth - 1:
        raise ValueError(f"layer: must be in 1 … L − 1 = {net.depth - 1}, got {layer}")
    x = _checks.matrix("x", x, n_features=net.widths[0])
    n, n_l = x.shape[0], net.widths[layer]
    theta = jnp.asarray(theta)
    if theta.shape != (n, n, n_l, n_l):
        raise ValueError(
            f"theta: expected Θ^({layer}) of shape {(n, n, n_l, n_l)}, got {theta.shape}"
        )
    _checks.finite("theta", theta)
    return _ntk_recursion(net, params, x.astype(theta.dtype), theta, layer)


@partial(jax.jit, static_argnames=("net", "layer"))
def _ntk_recursion(net: MLP, params: Params, x: Array, theta: Array, layer: int) -> Array:
    layers = forward(net, params, x)
    s = net.sigma_w / net.widths[layer] ** 0.5
    m = s * net.activation.sigma_dot(layers.pre[layer - 1])[:, :, None] * params[layer].W[None]
    first = jnp.einsum("aip,abij,bjq->abpq", m, theta, m, precision=_HIGHEST)
    a = layers.post[layer]
    k = s**2 * jnp.matmul(a, a.T, precision=_HIGHEST) + net.beta**2
    eye = jnp.eye(net.widths[layer + 1], dtype=theta.dtype)
    return first + k[:, :, None, None] * eye[None, None]


def subnetwork_op_norm(
    x: Array, *, net: MLP, params: Params, layer: int, block: int = 8, iters: int = 40
) -> Array:
    r"""Operator norm of the untraced sub-network NTK :math:`\Theta^{(l)}` on
    :math:`L^2(p^{in}; \mathbb R^{n_l})` (notes §5.3, §6), without forming the kernel.

    .. math::

        \|\Theta^{(l)}\|_{op} = \lambda_{max}\Big(\tfrac1N J J^\top\Big),
        \qquad J = \partial\tilde\alpha^{(l)}(X) / \partial\theta_{<l}
        \in \mathbb R^{N n_l \times P_l},

    the same number as :func:`ntkbook.empirical.kernel_op_norm` of
    :func:`~ntkbook.empirical.subnetwork_ntk` (``traced=False``), by subspace iteration with
    ``block`` vectors on :math:`v \mapsto J(J^\top v)/N` (one VJP and one JVP per vector and
    iteration) and a final Rayleigh–Ritz step. The result is a *lower bound* on the norm
    (a Rayleigh quotient of a positive semi-definite operator), exact up to rounding once
    the iteration has converged; memory is O(block · (N n_l + P_l)), not the
    :math:`N^2 n_l^2` of the kernel. The start block is fixed, so the result is deterministic.

    Args:
        x: the inputs of p_in, (N, n_0).
        net: the architecture (NTK parametrisation).
        params: its parameters (those of layers ≥ l are not used).
        layer: l with 1 ≤ l ≤ L (l = L: the NTK of the outputs).
        block: number of vectors iterated together (≥ 1).
        iters: subspace iterations (≥ 1).

    Returns:
        a scalar, :math:`\|\Theta^{(l)}\|_{op}` (a lower bound, tight when converged).

    Raises:
        ValueError: naming ``net``, ``params``, ``x``, ``layer``, ``block`` or ``iters``.
    """
    net = _ntk_param_net(net, params)
    layer = _checks.positive_int("layer", layer)
    if layer > net.depth:
        raise ValueError(f"layer: must be in 1 … L = {net.depth}, got {layer}")
    block = _checks.positive_int("block", block)
    iters = _checks.positive_int("iters", iters)
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params[0].W.dtype)
    return _subnetwork_op_norm(net, params, x, layer, block, iters)


@partial(jax.jit, static_argnames=("net", "layer", "block", "iters"))
def _subnetwork_op_norm(
    net: MLP, params: Params, x: Array, layer: int, block: int, iters: int
) -> Array:
    n = x.shape[0]
    below, above = tuple(params[:layer]), tuple(params[layer:])

    def pre(sub: tuple) -> Array:  # α̃^(l)(X) as a function of the parameters below layer l
        return forward(net, sub + above, x).pre[layer - 1].reshape(-1)

    _, jvp = jax.linearize(pre, below)
    vjp = jax.linear_transpose(jvp, below)

    def gram(v: Array) -> Array:  # v ↦ J Jᵀ v / N, for one vector v of length N n_l
        return jvp(*vjp(v)) / n

    size = n * net.widths[layer]
    v = jax.random.normal(jax.random.key(0), (size, block), dtype=x.dtype)
    apply = jax.vmap(gram, in_axes=1, out_axes=1)
    v = jax.lax.fori_loop(
        0, iters, lambda _, q: training._orthonormalise(apply(q)), training._orthonormalise(v)
    )
    return jnp.linalg.eigvalsh(v.T @ apply(v))[-1]
