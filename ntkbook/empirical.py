r"""The empirical NTK of a finite network (notes §2, §4, §5).

For a network :math:`f_\theta : \mathbb R^{n_0} \to \mathbb R^{n_L}` with parameters
:math:`\theta = (\theta_p)_p`,

.. math::

    \Theta_{kk'}(x, x') = \sum_p \partial_{\theta_p} f_k(x)\, \partial_{\theta_p} f_{k'}(x'),

an (N1, N2, n_L, n_L) array over two sets of inputs; the *traced* kernel
:math:`\frac{1}{n_L} \sum_k \Theta_{kk}(x, x')` is the scalar kernel that converges to
:math:`\Theta_\infty^{(L)}` (notes Theorem 1).

Three implementations, selectable with ``method``:

``"jacobian"``
    Jacobian contraction: J = ∂f/∂θ by reverse mode, then Θ = J Jᵀ leaf by leaf. Works for any
    ``fn(params, x)`` (:func:`ntk_fn`). Memory N · n_L · P per block.
``"ntvp"``
    NTK–vector products: for each x′ and output k′, a VJP gives :math:`J^\top(x') e_{k'}` and a
    JVP pushes it through J(x): :math:`\Theta(\cdot, x') e_{k'} = J(x)\,(J^\top(x') e_{k'})`. No
    Jacobian is stored for x. Any ``fn``.
``"structured"`` (MLPs only; what ``"auto"`` picks for an :class:`~ntkbook.networks.MLP`)
    the layer-wise structure of the notes' Lemma 1 / §4.2. With
    :math:`g^{(l+1)} = \partial f / \partial\tilde\alpha^{(l+1)}`, of shape
    :math:`(N, n_{l+1}, n_L)`, from one backward sweep,

    .. math::

        \Theta_{kk'}(x, x') = \sum_{l=0}^{L-1}
            \Big[c_w^{(l)}\, \alpha^{(l)}(x)\cdot\alpha^{(l)}(x') + c_b\Big]\,
            \sum_j g^{(l+1)}_{jk}(x)\, g^{(l+1)}_{jk'}(x'),

    with :math:`c_w^{(l)} = \sigma_w^2/n_l`, :math:`c_b = \beta^2` in the NTK parametrisation
    and :math:`c_w^{(l)} = c_b = 1` in the standard one — one pair of GEMMs per layer, no
    per-parameter Jacobian ever formed. The l-th term is the contribution of
    :math:`(W^{(l)}, b^{(l)})`: :func:`ntk_by_layer` and :func:`last_layer_split` come for free.

Every method batches over row blocks of x1 and x2 (``block_size``, a ``lax.map`` over blocks),
so peak memory is set by the block size, not by N.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from ntkbook import networks
    >>> net = networks.mlp((3, 256, 256, 1), activation="relu")
    >>> params = networks.init(net, key=jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> ntk(x, net=net, params=params, traced=True).shape
    (5, 5)
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from functools import partial, reduce
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from . import _checks
from .networks import MLP, Params, check_params, forward

Array = jax.Array
ModelFn = Callable[[Any, Array], Array]
Method = Literal["auto", "jacobian", "ntvp", "structured"]
METHODS: tuple[str, ...] = ("auto", "jacobian", "ntvp", "structured")
_GENERIC_METHODS: tuple[str, ...] = ("auto", "jacobian", "ntvp")
_LAYER_METHODS: tuple[str, ...] = ("auto", "structured", "jacobian")
_HIGHEST = jax.lax.Precision.HIGHEST


class Split(NamedTuple):
    """The notes' §4.2 split of the traced NTK: last layer's parameters vs all the others θ̃."""

    last: Array
    rest: Array


# --------------------------------------------------------------------------- blocking


def _row_blocks(x: Array, size: int) -> Array:
    """(N, d) → (ceil(N/size), size, d), padding by repeating the last row (always finite)."""
    n_blocks = -(-x.shape[0] // size)
    pad = n_blocks * size - x.shape[0]
    padded = jnp.pad(x, ((0, pad), (0, 0)), mode="edge")
    return padded.reshape(n_blocks, size, x.shape[1])


def _blocked(
    block_fn: Callable[[Array, Array], Array], x1: Array, x2: Array, batch_size: int | None
) -> Array:
    """Evaluate ``block_fn(x1_block, x2_block)`` → (b1, b2, ...) over row blocks, reassembled.

    Memory is that of one block pair; the blocks run one after the other (``lax.map``).
    """
    n1, n2 = x1.shape[0], x2.shape[0]
    if batch_size is None or (batch_size >= n1 and batch_size >= n2):
        return block_fn(x1, x2)
    b1, b2 = min(batch_size, n1), min(batch_size, n2)
    xs1, xs2 = _row_blocks(x1, b1), _row_blocks(x2, b2)
    out = jax.lax.map(lambda a: jax.lax.map(lambda b: block_fn(a, b), xs2), xs1)
    # (nb1, nb2, b1, b2, ...) → (nb1 b1, nb2 b2, ...), then drop the padded rows.
    out = jnp.moveaxis(out, 2, 1)
    out = out.reshape((xs1.shape[0] * b1, xs2.shape[0] * b2) + out.shape[4:])
    return out[:n1, :n2]


def _trace_outputs(theta: Array) -> Array:
    """(N1, N2, n, n) → (1/n) Σ_k Θ_kk, shape (N1, N2)."""
    return jnp.trace(theta, axis1=2, axis2=3) / theta.shape[-1]


# --------------------------------------------------------------------------- generic methods


def _per_example_jacobian(fn: ModelFn, params: Any, x: Array) -> Any:
    """∂f_k(x_i)/∂θ for every row x_i: leaves of shape (N, n_L, *leaf.shape).

    ``vmap`` over rows of a per-example ``jacrev`` costs N·n_L backward passes of *one* input;
    ``jacrev`` of the batched model would run N·n_L backward passes of the whole batch.
    """

    def single(p: Any, row: Array) -> Array:
        return fn(p, row[None, :])[0]

    return jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, x)


def _jacobian_terms(fn: ModelFn, params: Any, x1: Array, x2: Array, traced: bool) -> Any:
    r"""Per-parameter-leaf contributions Σ_{p ∈ leaf} ∂_p f_k(x) ∂_p f_{k'}(x′) (a pytree).

    Each leaf is (N1, N2, n, n), or (N1, N2) if ``traced``.
    """
    j1 = _per_example_jacobian(fn, params, x1)
    j2 = j1 if x2 is x1 else _per_example_jacobian(fn, params, x2)

    def contract(a: Array, b: Array) -> Array:
        a = a.reshape(a.shape[0], a.shape[1], -1)
        b = b.reshape(b.shape[0], b.shape[1], -1)
        if traced:
            return jnp.einsum("akp,bkp->ab", a, b, precision=_HIGHEST) / a.shape[1]
        return jnp.einsum("akp,bmp->abkm", a, b, precision=_HIGHEST)

    return jax.tree.map(contract, j1, j2)


def _jacobian_block(fn: ModelFn, params: Any, x1: Array, x2: Array, traced: bool) -> Array:
    """Θ by Jacobian contraction: the sum over all parameter leaves of :func:`_jacobian_terms`."""
    terms: list[Array] = jax.tree.leaves(_jacobian_terms(fn, params, x1, x2, traced))
    return reduce(operator.add, terms)


def _ntvp_block(fn: ModelFn, params: Any, x1: Array, x2: Array, traced: bool) -> Array:
    r"""Θ by NTK–vector products: Θ(x1, x′) e_{k′} = J(x1) [Jᵀ(x′) e_{k′}] for each x′ ∈ x2, k′."""

    def f1(p: Any) -> Array:
        return fn(p, x1)

    def column(x: Array) -> Array:  # one row x′ of x2 → (n_{k'}, N1, n_k)
        out, vjp = jax.vjp(lambda p: fn(p, x[None, :])[0], params)
        (tangents,) = jax.vmap(vjp)(jnp.eye(out.shape[0], dtype=out.dtype))
        return jax.vmap(lambda t: jax.jvp(f1, (params,), (t,))[1])(tangents)

    theta = jnp.transpose(jax.vmap(column)(x2), (2, 0, 3, 1))  # (N2, k', N1, k) → (N1, N2, k, k')
    return _trace_outputs(theta) if traced else theta


_GENERIC_BLOCKS = {"jacobian": _jacobian_block, "ntvp": _ntvp_block}


@partial(jax.jit, static_argnames=("fn", "method", "traced", "batch_size", "same"))
def _ntk_generic(
    fn: ModelFn,
    params: Any,
    x1: Array,
    x2: Array,
    *,
    method: str,
    traced: bool,
    batch_size: int | None,
    same: bool,
) -> Array:
    block = _GENERIC_BLOCKS[method]

    def block_fn(a: Array, b: Array) -> Array:
        return block(fn, params, a, b, traced)

    if same and batch_size is None:
        return block(fn, params, x1, x1, traced)
    return _blocked(block_fn, x1, x2, batch_size)


# --------------------------------------------------------------------------- structured (MLP)


def _layer_factors(net: MLP, ell: int) -> tuple[float, float]:
    """(c_w, c_b): Σ_{ij} ∂_{W_ij}·∂_{W_ij} = c_w α·α′ ⊗ gᵀg′ and Σ_j ∂_{b_j}·∂_{b_j} = c_b gᵀg′."""
    if net.parametrisation == "standard":
        return 1.0, 1.0
    return net.sigma_w**2 / net.widths[ell], net.beta**2


def _output_jacobians(net: MLP, params: Params, pre: tuple[Array, ...]) -> tuple[Array, ...]:
    r"""g^{(l)} = ∂f/∂α̃^{(l)} for l = 1 … L (index l − 1), each (N, n_l, n_L), by backprop.

    .. math::

        g^{(L)} = I, \qquad
        g^{(l)}_{ik} = \dot\sigma(\tilde\alpha^{(l)}_i)\, s_l \sum_j W^{(l)}_{ij} g^{(l+1)}_{jk},

    with s_l = σ_w/√n_l (NTK parametrisation) or 1 (standard).
    """
    n_out = net.widths[-1]
    g = jnp.broadcast_to(jnp.eye(n_out, dtype=pre[-1].dtype), (pre[-1].shape[0], n_out, n_out))
    grads = [g]
    for ell in range(net.depth - 1, 0, -1):
        scale = 1.0 if net.parametrisation == "standard" else net.sigma_w / net.widths[ell] ** 0.5
        back = scale * jnp.einsum("ij,njk->nik", params[ell].W, g, precision=_HIGHEST)
        g = net.activation.sigma_dot(pre[ell - 1])[:, :, None] * back
        grads.append(g)
    return tuple(reversed(grads))


class _Features(NamedTuple):
    post: tuple[Array, ...]  # α^(0..L−1)
    grads: tuple[Array, ...]  # g^(1..L)


def _features(net: MLP, params: Params, x: Array) -> _Features:
    layers = forward(net, params, x)
    return _Features(layers.post, _output_jacobians(net, params, layers.pre))


def _structured_terms(net: MLP, f1: _Features, f2: _Features, traced: bool) -> Array:
    """Per-layer contributions, stacked on axis 2: (N1, N2, L[, n_L, n_L])."""
    terms = []
    n_out = net.widths[-1]
    for ell in range(net.depth):
        c_w, c_b = _layer_factors(net, ell)
        k = c_w * jnp.matmul(f1.post[ell], f2.post[ell].T, precision=_HIGHEST) + c_b
        g1, g2 = f1.grads[ell], f2.grads[ell]
        if traced:
            gg = jnp.einsum("ajk,bjk->ab", g1, g2, precision=_HIGHEST) / n_out
            terms.append(k * gg)
        else:
            gg = jnp.einsum("ajk,bjm->abkm", g1, g2, precision=_HIGHEST)
            terms.append(k[:, :, None, None] * gg)
    return jnp.stack(terms, axis=2)


@partial(jax.jit, static_argnames=("net", "traced", "batch_size", "same"))
def _structured_by_layer(
    net: MLP,
    params: Params,
    x1: Array,
    x2: Array,
    *,
    traced: bool,
    batch_size: int | None,
    same: bool,
) -> Array:
    """(N1, N2, L[, n_L, n_L]) per-layer contributions by the structured rule."""
    if same and batch_size is None:
        f1 = _features(net, params, x1)
        return _structured_terms(net, f1, f1, traced)

    def block_fn(a: Array, b: Array) -> Array:
        return _structured_terms(net, _features(net, params, a), _features(net, params, b), traced)

    return _blocked(block_fn, x1, x2, batch_size)


@partial(jax.jit, static_argnames=("net", "batch_size", "same"))
def _jacobian_by_layer(
    net: MLP, params: Params, x1: Array, x2: Array, *, batch_size: int | None, same: bool
) -> Array:
    """(N1, N2, L) traced per-layer terms by Jacobian contraction (W and b leaves summed)."""

    def block_fn(a: Array, b: Array) -> Array:
        terms = _jacobian_terms(_mlp_fn(net), params, a, b, True)
        return jnp.stack([layer.W + layer.b for layer in terms], axis=2)

    if same and batch_size is None:
        return block_fn(x1, x1)
    return _blocked(block_fn, x1, x2, batch_size)


def _mlp_fn(net: MLP) -> ModelFn:
    """f(params, x) of an MLP, for the generic methods (cached so jit sees the same function)."""
    return _MLP_FNS.setdefault(net, lambda params, x: forward(net, params, x).pre[-1])


_MLP_FNS: dict[MLP, ModelFn] = {}


# --------------------------------------------------------------------------- validation


def _check_net(net: object, params: Params) -> MLP:
    if not isinstance(net, MLP):
        raise ValueError(f"net: expected an ntkbook.networks.MLP (see networks.mlp), got {net!r}")
    check_params(net, params)
    for ell, layer in enumerate(params):  # as training.train: a NaN would spread silently
        _checks.finite(f"params[{ell}]", layer.W)
        _checks.finite(f"params[{ell}]", layer.b)
    return net


def _inputs(x1: object, x2: object, n_features: int | None) -> tuple[Array, Array, bool]:
    """Validated (x1, x2, same); x2 = None means x2 = x1."""
    a = _checks.matrix("x1", x1, n_features=n_features)
    if x2 is None:
        return a, a, True
    return a, _checks.matrix("x2", x2, n_features=a.shape[1]), False


def _batch(block_size: int | None) -> int | None:
    return None if block_size is None else _checks.positive_int("block_size", block_size)


# --------------------------------------------------------------------------- public API


def ntk(
    x1: Array,
    x2: Array | None = None,
    *,
    net: MLP,
    params: Params,
    method: Method = "auto",
    traced: bool = False,
    block_size: int | None = None,
) -> Array:
    r"""The empirical NTK of an MLP, Θ_kk′(x, x′) = Σ_p ∂_p f_k(x) ∂_p f_k′(x′), on one device
    (:func:`ntkbook.sharding.empirical_ntk` splits the rows of ``x1`` over several).

    Args:
        x1: inputs (N1, n_0).
        x2: inputs (N2, n_0); default ``x1``.
        net: the architecture (:func:`ntkbook.networks.mlp`).
        params: its parameters (:func:`ntkbook.networks.init`, or trained ones).
        method: ``"structured"`` (the layer-wise rule; what ``"auto"`` picks), ``"jacobian"``
            or ``"ntvp"`` — see the module docstring. All agree to float rounding.
        traced: return :math:`\frac{1}{n_L} \sum_k \Theta_{kk}(x, x')`, shape (N1, N2), which
            converges to :math:`\Theta_\infty^{(L)}`.
        block_size: rows of x1 and of x2 per block (bounds memory); ``None``: one block.

    Returns:
        (N1, N2, n_L, n_L), or (N1, N2) if ``traced``.

    Raises:
        ValueError: naming the argument (``net``, ``params``, ``x1``, ``x2``, ``method``,
            ``block_size``).
    """
    net = _check_net(net, params)
    x1, x2, same = _inputs(x1, x2, net.widths[0])
    method = _checks.choice("method", method, METHODS)
    block_size = _batch(block_size)
    if method in ("auto", "structured"):
        terms = _structured_by_layer(
            net, params, x1, x2, traced=bool(traced), batch_size=block_size, same=same
        )
        return terms.sum(axis=2)
    return _ntk_generic(
        _mlp_fn(net),
        params,
        x1,
        x2,
        method=method,
        traced=bool(traced),
        batch_size=block_size,
        same=same,
    )


def ntk_fn(
    x1: Array,
    x2: Array | None = None,
    *,
    fn: ModelFn,
    params: Any,
    method: Literal["auto", "jacobian", "ntvp"] = "auto",
    traced: bool = False,
    block_size: int | None = None,
) -> Array:
    r"""The empirical NTK of any model ``fn(params, x)`` → (N, n_out), by autodiff.

    .. math::

        \Theta_{kk'}(x, x') = \sum_p \partial_{\theta_p} f_k(x)\, \partial_{\theta_p} f_{k'}(x')

    ``fn`` must treat the rows of ``x`` independently (batching splits them into blocks).

    Args:
        x1, x2: inputs (N1, d) and (N2, d); x2 defaults to x1.
        fn: a JAX function of (params pytree, inputs (N, d)) returning (N, n_out). Pass the same
            function object on repeated calls to reuse the compiled kernel.
        params: the parameter pytree θ.
        method: ``"jacobian"``, ``"ntvp"``, or ``"auto"``: Jacobian contraction costs
            ∝ N1 N2 n_out² P for the full kernel against ∝ N1 N2 n_out P for NTK-vector products,
            so ``"auto"`` picks ``"jacobian"`` when ``traced`` or n_out = 1, else ``"ntvp"``.
        traced: return (1/n_out) Σ_k Θ_kk, shape (N1, N2).
        block_size: rows per block (peak memory ∝ block_size · n_out · P).

    Returns:
        (N1, N2, n_out, n_out), or (N1, N2) if ``traced``.

    Example:
        >>> import jax.numpy as jnp
        >>> fn = lambda p, x: jnp.tanh(x @ p["w"])
        >>> ntk_fn(jnp.ones((4, 2)), fn=fn, params={"w": jnp.ones((2, 3))}).shape
        (4, 4, 3, 3)
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a function fn(params, x), got {fn!r}")
    x1, x2, same = _inputs(x1, x2, None)
    method = _checks.choice("method", method, _GENERIC_METHODS)
    block_size = _batch(block_size)
    out = jax.eval_shape(fn, params, x1)
    if len(out.shape) != 2 or out.shape[0] != x1.shape[0]:
        raise ValueError(
            f"fn: must map inputs (N, d) to outputs (N, n_out); got {tuple(out.shape)} "
            f"for inputs {tuple(x1.shape)}"
        )
    if method == "auto":
        method = "jacobian" if traced or out.shape[1] == 1 else "ntvp"
    return _ntk_generic(
        fn, params, x1, x2, method=method, traced=bool(traced), batch_size=block_size, same=same
    )


def ntk_by_layer(
    x1: Array,
    x2: Array | None = None,
    *,
    net: MLP,
    params: Params,
    method: Literal["auto", "structured", "jacobian"] = "auto",
    block_size: int | None = None,
) -> Array:
    r"""Traced contribution of each layer's parameters :math:`(W^{(l)}, b^{(l)})`,
    l = 0 … L − 1.

    .. math::

        \Theta^{[l]}(x, x') = \frac{1}{n_L} \sum_k \sum_{p \in \{W^{(l)}, b^{(l)}\}}
            \partial_p f_k(x)\, \partial_p f_k(x'),

    so that :math:`\sum_l \Theta^{[l]}` is ``ntk(..., traced=True)``.

    Args:
        x1, x2, net, params, block_size: as in :func:`ntk`.
        method: ``"structured"`` (= ``"auto"``) or ``"jacobian"`` (leaves grouped by layer).

    Returns:
        (L, N1, N2); index l holds the parameters of affine layer l
        (:math:`W^{(l)}`: :math:`n_l \to n_{l+1}`).
    """
    net = _check_net(net, params)
    x1, x2, same = _inputs(x1, x2, net.widths[0])
    method = _checks.choice("method", method, _LAYER_METHODS)
    block_size = _batch(block_size)
    if method == "jacobian":
        terms = _jacobian_by_layer(net, params, x1, x2, batch_size=block_size, same=same)
    else:
        terms = _structured_by_layer(
            net, params, x1, x2, traced=True, batch_size=block_size, same=same
        )
    return jnp.moveaxis(terms, 2, 0)


def last_layer_split(
    x1: Array,
    x2: Array | None = None,
    *,
    net: MLP,
    params: Params,
    method: Literal["auto", "structured", "jacobian"] = "auto",
    block_size: int | None = None,
) -> Split:
    r"""The notes' §4.2 split of the traced NTK: the last layer :math:`(W^{(L-1)}, b^{(L-1)})`
    against the rest :math:`\tilde\theta`.

    In the NTK parametrisation the last-layer term is exactly the empirical
    :math:`\sigma_w^2\, \alpha^{(L-1)}(x) \cdot \alpha^{(L-1)}(x') / n_{L-1} + \beta^2`, which
    tends to :math:`\Sigma^{(L)}`; the rest tends to
    :math:`\Theta_\infty^{(L-1)}\, \dot\Sigma^{(L)}`.

    Returns:
        :class:`Split` ``(last, rest)``, each (N1, N2); ``last + rest`` is the traced NTK.
    """
    by_layer = ntk_by_layer(x1, x2, net=net, params=params, method=method, block_size=block_size)
    return Split(by_layer[-1], by_layer[:-1].sum(axis=0))


def subnetwork_ntk(
    x1: Array,
    x2: Array | None = None,
    *,
    net: MLP,
    params: Params,
    layer: int,
    block_size: int | None = None,
    traced: bool = True,
) -> Array:
    r"""NTK :math:`\Theta^{(l)}` of the preactivations :math:`\tilde\alpha^{(l)}`: the
    sub-network of the first l layers.

    .. math::

        \begin{aligned}
        \Theta^{(l)}_{ii'}(x, x') &= \sum_p
            \partial_p \tilde\alpha^{(l)}_i(x)\, \partial_p \tilde\alpha^{(l)}_{i'}(x'), \\
        \Theta^{(l)}(x, x') &= \frac{1}{n_l} \sum_{i=1}^{n_l} \Theta^{(l)}_{ii}(x, x')
        \ \text{(traced)},
        \end{aligned}

    with p over :math:`W^{(j)}, b^{(j)}` for j < l.
    :math:`\Theta^{(1)}(x, x') = \sigma_w^2\, x^\top x' / n_0 + \beta^2` exactly (notes §4.1), and
    :math:`\Theta^{(L)}` is ``ntk(..., traced=True)``. The induction hypothesis of Theorem 1 is the
    untraced statement :math:`\Theta^{(l)}_{ii'} \to \Theta_\infty^{(l)} \delta_{ii'}`. Memory ∝
    block_size · :math:`n_l^2` (the Jacobians
    :math:`\partial\tilde\alpha^{(l)} / \partial\tilde\alpha^{(j)}`); the untraced kernel itself has
    :math:`N_1 N_2 n_l^2` entries.

    Args:
        layer: l with 1 ≤ l ≤ L.
        traced: ``True`` for the traced (N1, N2) kernel, ``False`` for all of
            :math:`\Theta^{(l)}_{ii'}`.

    Returns:
        (N1, N2), or (N1, N2, n_l, n_l) with ``traced=False``.
    """
    net = _check_net(net, params)
    layer = _checks.positive_int("layer", layer)
    if layer > net.depth:
        raise ValueError(f"layer: must be <= depth L = {net.depth}, got {layer}")
    sub = dataclasses.replace(net, widths=net.widths[: layer + 1])
    return ntk(x1, x2, net=sub, params=params[:layer], traced=traced, block_size=block_size)


def kernel_op_norm(theta: Array) -> Array:
    r"""Operator norm of :math:`\Phi_\Theta` on :math:`L^2(p^{in}; \mathbb R^k)` (notes §5, §6),
    :math:`\Phi_\Theta : g \mapsto \langle\Theta(\cdot, x'), g(x')\rangle_{p^{in}}`.

    For Θ given on the N training inputs,
    :math:`\Phi_\Theta g(x) = \frac1N \sum_{x'} \Theta(x, x') g(x')`, and with the norm
    :math:`\|g\|^2_{p^{in}} = \frac1N \sum_x \|g(x)\|^2` its operator norm is

    .. math:: \|\Theta\|_{op} = \lambda_{max}\big(\tfrac1N\, \Theta_{(x,k),(x',k')}\big),

    the largest eigenvalue of the (N k × N k) Gram matrix over (input, output) pairs, over N.

    Args:
        theta: (N, N) or (N, N, k, k), symmetric positive semi-definite.

    Returns:
        a scalar.

    Raises:
        ValueError: naming ``theta`` if it is not (N, N) or (N, N, k, k), or not finite.
    """
    theta = jnp.asarray(theta)
    if theta.ndim == 2:
        theta = theta[:, :, None, None]
    if theta.ndim != 4 or theta.shape[0] != theta.shape[1] or theta.shape[2] != theta.shape[3]:
        raise ValueError(f"theta: expected (N, N) or (N, N, k, k), got {theta.shape}")
    _checks.finite("theta", theta)
    n, _, k, _ = theta.shape
    gram = jnp.transpose(theta, (0, 2, 1, 3)).reshape(n * k, n * k)
    return jnp.linalg.eigvalsh(0.5 * (gram + gram.T))[-1] / n


def kernel_target_alignment(theta: Array, y: Array) -> Array:
    r"""Kernel–target alignment (Cristianini et al. 2002) of a Gram matrix with the targets:

    .. math::

        A(\Theta, y) = \frac{\langle \Theta, y y^\top\rangle_F}{\lVert\Theta\rVert_F\,
            \lVert y y^\top\rVert_F}
            = \frac{y^\top \Theta\, y}{\lVert\Theta\rVert_F\, \lVert y\rVert^2} \in [-1, 1],

    1 when Θ ∝ y yᵀ. A kernel that learns features of the target aligns with it during training.

    Args:
        theta: (N, N) or (R, N, N) traced kernels (e.g. ``Trajectory.ntk``).
        y: (N, 1) targets, not all zero.

    Returns:
        () or (R,).

    Raises:
        ValueError: naming ``theta`` or ``y`` on mismatched shapes, zero or non-finite values.
    """
    t = jnp.asarray(theta)
    if t.ndim not in (2, 3) or t.shape[-1] != t.shape[-2]:
        raise ValueError(f"theta: expected (N, N) or (R, N, N), got shape {t.shape}")
    y = _checks.matrix("y", y, n_features=1)
    if y.shape[0] != t.shape[-1]:
        raise ValueError(f"y: expected {t.shape[-1]} rows (one per row of theta), got {y.shape}")
    _checks.finite("theta", t)
    if _checks.is_concrete(y) and float(jnp.sum(y * y)) == 0.0:
        raise ValueError("y: all targets are zero (the alignment is undefined)")
    v = y[:, 0]
    num = jnp.einsum("i,...ij,j->...", v, t, v)
    return num / (jnp.sqrt(jnp.sum(t * t, axis=(-2, -1))) * jnp.sum(v * v))
