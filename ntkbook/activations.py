"""Nonlinearities σ and their derivatives σ̇ (notes §3, §4).

An :class:`Activation` bundles the pointwise nonlinearity ``sigma`` (σ), its derivative
``sigma_dot`` (σ̇), and — where one exists — a closed form for the Gaussian expectations that
the infinite-width recursions need (see :mod:`ntkbook.limits`).

Activations are looked up by name with :func:`get`, or built from any JAX-differentiable
function with :func:`from_function` (σ̇ then comes from autodiff).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

Array = jax.Array
ArrayFn = Callable[[Array], Array]


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity σ with its derivative σ̇.

    Attributes:
        name: a short name, used in error messages, plots and cache keys.
        sigma: σ, applied elementwise.
        sigma_dot: σ̇ = dσ/dz, applied elementwise (a.e. derivative for kinked σ).
        kinked: True when σ̇ is discontinuous (ReLU, abs, leaky ReLU, step): quadrature
            rules must then be chosen with care.
    """

    name: str
    sigma: ArrayFn
    sigma_dot: ArrayFn
    kinked: bool = False

    def __call__(self, z: Array) -> Array:
        return self.sigma(z)


def _elementwise_grad(fn: ArrayFn) -> ArrayFn:
    """σ̇ of a scalar function σ by autodiff, applied elementwise to arrays of any shape."""
    scalar_grad = jax.grad(fn)

    def sigma_dot(z: Array) -> Array:
        z = jnp.asarray(z)
        flat = jax.vmap(scalar_grad)(z.reshape(-1).astype(jnp.result_type(z, float)))
        return flat.reshape(z.shape)

    return sigma_dot


def from_function(fn: ArrayFn, *, name: str | None = None, kinked: bool = False) -> Activation:
    """Wrap a JAX function σ as an :class:`Activation`, with σ̇ from ``jax.grad``.

    Args:
        fn: an elementwise, JAX-traceable function of one array.
        name: a name for plots and messages (default: ``fn.__name__``).
        kinked: set True if σ̇ has jumps (affects the quadrature rule in :mod:`ntkbook.limits`).

    Returns:
        The activation.

    Example:
        >>> import jax.numpy as jnp
        >>> act = from_function(jnp.sin)
        >>> float(act.sigma_dot(jnp.array(0.0)))
        1.0
    """
    if not callable(fn):
        raise ValueError(f"activation: expected a name or a callable, got {fn!r}")
    label = name or getattr(fn, "__name__", "custom")
    return Activation(label, fn, _elementwise_grad(fn), kinked=kinked)


def leaky_relu(slope: float) -> Activation:
    """Leaky ReLU σ(z) = max(z, a z) with negative-side slope ``a``; a = -1 gives |z|."""
    a = float(slope)
    return Activation(
        f"leaky_relu({a:g})",
        lambda z: jnp.where(z > 0, z, a * z),
        lambda z: jnp.where(z > 0, 1.0, a).astype(jnp.result_type(z, float)),
        kinked=True,
    )


def _relu_dot(z: Array) -> Array:
    return (z > 0).astype(jnp.result_type(z, float))


def _erf_dot(z: Array) -> Array:
    return 2.0 / jnp.sqrt(jnp.pi) * jnp.exp(-jnp.square(z))


_REGISTRY: dict[str, Activation] = {
    "relu": Activation("relu", jax.nn.relu, _relu_dot, kinked=True),
    "erf": Activation("erf", jax.scipy.special.erf, _erf_dot),
    "identity": Activation("identity", lambda z: z, jnp.ones_like),
    "abs": Activation("abs", jnp.abs, jnp.sign, kinked=True),
    "tanh": Activation("tanh", jnp.tanh, lambda z: 1.0 - jnp.square(jnp.tanh(z))),
    "softplus": Activation("softplus", jax.nn.softplus, jax.nn.sigmoid),
    "gelu": from_function(lambda z: jax.nn.gelu(z, approximate=False), name="gelu"),
    "sin": Activation("sin", jnp.sin, jnp.cos),
    "square": Activation("square", jnp.square, lambda z: 2.0 * z),
}
_ALIASES = {"linear": "identity", "none": "identity", "x2": "square"}

NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))


def get(activation: str | ArrayFn | Activation) -> Activation:
    """Resolve ``activation`` — a name, a JAX function, or an :class:`Activation`.

    Known names: ``relu``, ``erf``, ``identity`` (alias ``linear``), ``abs``, ``tanh``,
    ``softplus``, ``gelu``, ``sin``, ``square``; use :func:`leaky_relu` for leaky ReLU.

    Raises:
        ValueError: naming ``activation`` if the name is unknown or the object is not callable.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        key = _ALIASES.get(activation.lower(), activation.lower())
        if key not in _REGISTRY:
            raise ValueError(
                f"activation: unknown name {activation!r}; known: {', '.join(NAMES)} "
                "(or pass a JAX function, or ntkbook.activations.leaky_relu(slope))"
            )
        return _REGISTRY[key]
    return from_function(activation)
