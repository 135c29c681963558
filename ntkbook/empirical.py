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
    >>> params = networks.init(jax.random.key(0), net)
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> ntk(net, params, x, traced=True).shape
    (5, 5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
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
    terms = jax.tree.leaves(_jacobian_terms(fn, params, x1, x2, traced))
    return sum(terms[1:], start=terms[0])


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
    net: MLP, params: Params, x1: Array, x2: Array, *, traced: bool, batch_size: int | None,
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
    net: MLP,
    params: Params,
    x1: Array,
    x2: Array | None = None,
    *,
    method: Method = "auto",
    traced: bool = False,
    block_size: int | None = None,
) -> Array:
    r"""The empirical NTK of an MLP, Θ_kk′(x, x′) = Σ_p ∂_p f_k(x) ∂_p f_k′(x′), on one device
    (:func:`ntkbook.sharding.empirical_ntk` splits the rows of ``x1`` over several).

    Args:
        net: the architecture (:func:`ntkbook.networks.mlp`).
        params: its parameters (:func:`ntkbook.networks.init`, or trained ones).
        x1: inputs (N1, n_0).
        x2: inputs (N2, n_0); default ``x1``.
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
        _mlp_fn(net), params, x1, x2, method=method, traced=bool(traced),
        batch_size=block_size, same=same,
    )


def ntk_fn(
    fn: ModelFn,
    params: Any,
    x1: Array,
    x2: Array | None = None,
    *,
    method: Literal["auto", "jacobian", "ntvp"] = "auto",
    traced: bool = False,
    block_size: int | None = None,
) -> Array:
    r"""The empirical NTK of any model ``fn(params, x)`` → (N, n_out), by autodiff.

    .. math::

        \Theta_{kk'}(x, x') = \sum_p \partial_{\theta_p} f_k(x)\, \partial_{\theta_p} f_{k'}(x')

    ``fn`` must treat the rows of ``x`` independently (batching splits them into blocks).

    Args:
        fn: a JAX function of (params pytree, inputs (N, d)) returning (N, n_out). Pass the same
            function object on repeated calls to reuse the compiled kernel.
        params: the parameter pytree θ.
        x1, x2: inputs (N1, d) and (N2, d); x2 defaults to x1.
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
        >>> ntk_fn(fn, {"w": jnp.ones((2, 3))}, jnp.ones((4, 2))).shape
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
    net: MLP,
    params: Params,
    x1: Array,
    x2: Array | None = None,
    *,
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
        net, params, x1, x2, block_size: as in :func:`ntk`.
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
    net: MLP,
    params: Params,
    x1: Array,
    x2: Array | None = None,
    *,
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
    by_layer = ntk_by_layer(net, params, x1, x2, method=method, block_size=block_size)
    return Split(by_layer[-1], by_layer[:-1].sum(axis=0))


def subnetwork_ntk(
    net: MLP,
    params: Params,
    x1: Array,
    x2: Array | None = None,
    *,
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
    return ntk(sub, params[:layer], x1, x2, traced=traced, block_size=block_size)


# ------------------------------------------------- Lemma 1's recursion (chapter 6)


def subnetwork_ntk_full(
    net: MLP,
    params: Params,
    x1: Array,
    x2: Array | None = None,
    *,
    layer: int,
) -> Array:
    r"""The full NTK :math:`\Theta^{(l)}` of the preactivations
    :math:`\tilde\alpha^{(l)} \in \mathbb R^{n_l}`, by autodiff (Lemma 1).

    .. math::

        \begin{aligned}
        \Theta^{(l)}_{ii'}(x, x') = \sum_p{} & \partial_p \tilde\alpha^{(l)}_i(x) \\
            & \times \partial_p \tilde\alpha^{(l)}_{i'}(x'),
        \end{aligned}

    p over the parameters of layers 0 … l − 1. The traced version is :func:`subnetwork_ntk`.
    Memory ∝ N1 N2 n_l².

    Args:
        net, params, x1, x2: as in :func:`ntk`.
        layer: l with 1 ≤ l ≤ L.

    Returns:
        (N1, N2, n_l, n_l).
    """
    net = _check_net(net, params)
    layer = _checks.positive_int("layer", layer)
    if layer > net.depth:
        raise ValueError(f"layer: must be <= depth L = {net.depth}, got {layer}")
    sub = dataclasses.replace(net, widths=net.widths[: layer + 1])
    return ntk(sub, params[:layer], x1, x2, traced=False)


def ntk_recursion(net: MLP, params: Params, x: Array, theta: Array, *, layer: int) -> Array:
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
        theta: :math:`\Theta^{(l)}` on x, (N, N, n_l, n_l) (e.g. :func:`subnetwork_ntk_full`).
        layer: l with 1 ≤ l ≤ L − 1.

    Returns:
        :math:`\Theta^{(l+1)}` on x, shape :math:`(N, N, n_{l+1}, n_{l+1})`.

    Raises:
        ValueError: naming ``net``, ``params``, ``x``, ``theta`` or ``layer``.
    """
    net = _check_net(net, params)
    if net.parametrisation != "ntk":
        raise ValueError(f"net: the recursion is written for parametrisation='ntk', got "
                         f"{net.parametrisation!r}")
    layer = _checks.positive_int("layer", layer)
    if layer > net.depth - 1:
        raise ValueError(f"layer: must be in 1 … L − 1 = {net.depth - 1}, got {layer}")
    x = _checks.matrix("x", x, n_features=net.widths[0])
    n, n_l = x.shape[0], net.widths[layer]
    theta = jnp.asarray(theta)
    if theta.shape != (n, n, n_l, n_l):
        raise ValueError(f"theta: expected Θ^({layer}) of shape {(n, n, n_l, n_l)}, "
                         f"got {theta.shape}")
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


# --------------------------------------------------------- Jacobian and Hessian sizes (notes §8)


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
    rule of :func:`ntk_by_layer`, whose diagonal it reproduces.

    Args:
        net: a network with one output (n_L = 1).
        params: its parameters.
        x: inputs (N, n_0).

    Returns:
        :class:`JacobianSizes`.

    Raises:
        ValueError: naming ``net`` (n_L ≠ 1), ``params`` or ``x``.
    """
    net = _check_net(net, params)
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
    net = _check_net(net, params)
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
    net = _check_net(net, params0)
    if net.widths[-1] != 1:
        raise ValueError(f"net: needs one output (n_L = 1), got widths {net.widths}")
    try:
        check_params(net, params)
    except ValueError as err:
        raise ValueError(f"params: {err}") from None
    x = _checks.matrix("x", x, n_features=net.widths[0]).astype(params0[0].W.dtype)
    return _taylor_terms(net, params0, params, x)
