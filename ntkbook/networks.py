r"""The fully-connected network of the notes' Fig. 1 (notes §1, §2.2).

A network with L affine layers (L − 1 hidden layers) and widths (n_0, …, n_L):

.. math::

    \alpha^{(0)} = x, \qquad
    \tilde\alpha^{(l+1)} = \tfrac{\sigma_w}{\sqrt{n_l}} W^{(l)\top} \alpha^{(l)} + \beta b^{(l)},
    \qquad
    \alpha^{(l)} = \sigma(\tilde\alpha^{(l)}), \qquad f = \tilde\alpha^{(L)},

with :math:`W^{(l)}_{ij}, b^{(l)}_j \sim \mathcal N(0, 1)` (the *NTK parametrisation*,
``"ntk"``). The *standard* parametrisation (``"standard"``) draws
:math:`W \sim \mathcal N(0, \sigma_w^2/n_l)`, :math:`b \sim \mathcal N(0, \beta^2)` and computes
:math:`\tilde\alpha^{(l+1)} = W^{(l)\top} \alpha^{(l)} + b^{(l)}`: the same distribution of
functions at initialisation, a different NTK (notes §2.2).

``W`` of layer l has shape :math:`(n_l, n_{l+1})` — index i runs over layer l, j over layer
l + 1, as in the notes' :math:`\partial_t W^{(L)}_{ij}` — and inputs are rows: ``x`` has shape
:math:`(N, n_0)`.

Example:
    >>> import jax
    >>> net = mlp((3, 512, 1), activation="relu")
    >>> params = init(net, key=jax.random.key(0))
    >>> apply(net, params, jax.numpy.ones((4, 3))).shape
    (4, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple, overload

import jax
import jax.numpy as jnp

from . import _checks
from .activations import Activation, get

Array = jax.Array
Parametrisation = Literal["ntk", "standard"]
PARAMETRISATIONS: tuple[str, ...] = ("ntk", "standard")


class Dense(NamedTuple):
    """Parameters of one affine layer l: ``W`` of shape :math:`(n_l, n_{l+1})` and ``b`` of
    shape :math:`(n_{l+1},)`."""

    W: Array
    b: Array


Params = tuple[Dense, ...]


class Layers(NamedTuple):
    """Every hidden quantity of a forward pass.

    Attributes:
        pre: (α̃^(1), …, α̃^(L)), each (N, n_l); the last one is the output f.
        post: (α^(0) = x, α^(1), …, α^(L−1)), each (N, n_l): the inputs of each affine layer.
    """

    pre: tuple[Array, ...]
    post: tuple[Array, ...]


@dataclass(frozen=True)
class MLP:
    """Architecture of the notes' network: hashable, so it can be a static argument of ``jit``.

    Build it with :func:`mlp`, which validates every field.
    """

    widths: tuple[int, ...]
    activation: Activation
    beta: float = 0.0
    parametrisation: Parametrisation = "ntk"
    sigma_w: float = 1.0

    @property
    def depth(self) -> int:
        """L, the number of affine layers."""
        return len(self.widths) - 1


def mlp(
    widths: Sequence[int],
    *,
    activation: str | Callable[[Array], Array] | Activation = "relu",
    beta: float = 0.0,
    parametrisation: Parametrisation = "ntk",
    sigma_w: float = 1.0,
) -> MLP:
    """Describe an MLP with widths (n_0, …, n_L).

    Args:
        widths: (n_0, …, n_L); L = len(widths) − 1 ≥ 1 affine layers.
        activation: a name known to :func:`ntkbook.activations.get`, a JAX function, or an
            :class:`~ntkbook.activations.Activation`.
        beta: β ≥ 0, the bias scale.
        parametrisation: ``"ntk"`` or ``"standard"``.
        sigma_w: σ_w > 0, the weight scale (1 in the notes; √2 is He initialisation for ReLU).

    Raises:
        ValueError: naming the offending argument.
    """
    return MLP(
        widths=_checks.widths(widths),
        activation=get(activation),
        beta=_checks.nonnegative("beta", beta),
        parametrisation=_checks.choice("parametrisation", parametrisation, PARAMETRISATIONS),
        sigma_w=_checks.positive("sigma_w", sigma_w),
    )


def init(net: MLP, *, key: Array, dtype: jnp.dtype = jnp.float32) -> Params:
    r"""Draw parameters at initialisation.

    NTK parametrisation: :math:`W^{(l)}_{ij}, b^{(l)}_j \sim \mathcal N(0, 1)`. Standard:
    :math:`W^{(l)}_{ij} \sim \mathcal N(0, \sigma_w^2/n_l)`,
    :math:`b^{(l)}_j \sim \mathcal N(0, \beta^2)`.

    Args:
        net: the architecture, from :func:`mlp`.
        key: a ``jax.random`` key; the same key gives bitwise the same parameters.
        dtype: float dtype of the parameters.

    Returns:
        A tuple of :class:`Dense`, one per affine layer l = 0 … L − 1.

    Raises:
        ValueError: naming ``key`` if it is not a ``jax.random`` key.
    """
    return _init(_checks.key("key", key), net, jnp.dtype(dtype))


@partial(jax.jit, static_argnames=("net", "dtype"))
def _init(key: Array, net: MLP, dtype: jnp.dtype) -> Params:
    # One normal draw for all parameters, then sliced: one compiled RNG kernel per network
    # instead of 2L (compiling the Gaussian sampler dominates init time on CPU).
    shapes = [(n_in, n_out) for n_in, n_out in zip(net.widths[:-1], net.widths[1:], strict=True)]
    z = jax.random.normal(key, (sum(n_in * n_out + n_out for n_in, n_out in shapes),), dtype)
    params, offset = [], 0
    for n_in, n_out in shapes:
        W = z[offset : offset + n_in * n_out].reshape(n_in, n_out)
        b = z[offset + n_in * n_out : offset + n_in * n_out + n_out]
        offset += n_in * n_out + n_out
        if net.parametrisation == "standard":
            W = W * (net.sigma_w / n_in**0.5)
            b = b * net.beta
        params.append(Dense(W, b))
    return tuple(params)


def affine(net: MLP, layer: Dense, a: Array) -> Array:
    r"""One affine map :math:`\alpha^{(l)} \mapsto \tilde\alpha^{(l+1)}` in the network's
    parametrisation."""
    if net.parametrisation == "standard":
        return a @ layer.W + layer.b[None, :]
    n_in = layer.W.shape[0]
    scale = net.sigma_w / jnp.sqrt(jnp.asarray(n_in, a.dtype))
    return scale * (a @ layer.W) + net.beta * layer.b[None, :]


def forward(net: MLP, params: Params, x: Array) -> Layers:
    r"""The forward pass, keeping every :math:`\tilde\alpha^{(l)}` and :math:`\alpha^{(l)}` (no
    input validation: jit-safe)."""
    post = [x]
    pre = []
    for ell, layer in enumerate(params):
        z = affine(net, layer, post[-1])
        pre.append(z)
        if ell < net.depth - 1:
            post.append(net.activation.sigma(z))
    return Layers(tuple(pre), tuple(post))


def check_params(net: MLP, params: Params) -> None:
    """Raise ``ValueError`` naming ``params`` if its shapes do not match ``net.widths``."""
    if not isinstance(params, (tuple, list)) or len(params) != net.depth:
        got = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
        raise ValueError(
            f"params: expected a tuple of {net.depth} Dense layers for widths {net.widths}, "
            f"got {got}"
        )
    for ell, layer in enumerate(params):
        if not isinstance(layer, Dense):
            raise ValueError(f"params[{ell}]: expected a networks.Dense(W, b), got {layer!r}")
        want = (net.widths[ell], net.widths[ell + 1])
        if tuple(layer.W.shape) != want or tuple(layer.b.shape) != want[1:]:
            raise ValueError(
                f"params[{ell}]: expected W {want} and b {want[1:]}, got W {tuple(layer.W.shape)} "
                f"and b {tuple(layer.b.shape)}"
            )


@overload
def apply(
    net: MLP, params: Params, x: Array, *, return_layers: Literal[False] = False
) -> Array: ...
@overload
def apply(
    net: MLP, params: Params, x: Array, *, return_layers: Literal[True]
) -> tuple[Array, Layers]: ...
@overload
def apply(
    net: MLP, params: Params, x: Array, *, return_layers: bool
) -> Array | tuple[Array, Layers]: ...
def apply(
    net: MLP, params: Params, x: Array, *, return_layers: bool = False
) -> Array | tuple[Array, Layers]:
    r"""Evaluate :math:`f(x) = \tilde\alpha^{(L)}(x)`, validating the inputs.

    Args:
        net: the architecture.
        params: parameters from :func:`init` (or trained ones).
        x: inputs, shape (N, n_0), finite.
        return_layers: also return :class:`Layers` with every :math:`\tilde\alpha^{(l)}`,
            :math:`\alpha^{(l)}`.

    Returns:
        f of shape (N, n_L), or ``(f, layers)``.
    """
    check_params(net, params)
    x = _checks.matrix("x", x, n_features=net.widths[0])
    layers = _forward_jit(net, params, x)
    return (layers.pre[-1], layers) if return_layers else layers.pre[-1]


_forward_jit = jax.jit(forward, static_argnums=0)
