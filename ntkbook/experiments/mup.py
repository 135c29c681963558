r"""μP / mean-field training, where features are learned (Yang & Hu 2021; chapter 11).

:func:`mup_scale` is the factor :math:`1/\sqrt{n_{L-1}}` between the NTK-parametrised network
and its μP counterpart, which :func:`ntkbook.training.train` trains with
``output_scale=mup_scale(net)`` and the learning rate η·n with n = n_L−1 (the last hidden width);
:func:`activation_flips` counts the hidden units whose preactivation changed sign, the units at
which a ReLU network's Theorem 2 bound fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import _checks
from ..networks import MLP, Params, check_params, forward

Array = jax.Array


def mup_scale(net: MLP) -> float:
    r"""The factor :math:`1/\sqrt{n_{L-1}}` that turns the NTK-parametrised network into its
    μP (mean-field) counterpart, whose last layer is scaled by 1/n instead of 1/√n:

    .. math::

        f^{\mu P}_\theta(x) = \frac{1}{\sqrt{n_{L-1}}} f^{ntk}_\theta(x)
            = \frac{\sigma_w}{n_{L-1}} W^{(L-1)\top} \alpha^{(L-1)}(x)
              + \frac{\beta}{\sqrt{n_{L-1}}} b^{(L-1)} .

    μP (Yang & Hu 2021, Table 3; Chizat & Bach 2018 for two layers) trains every parameter with
    the learning rate :math:`\eta\, n_{L-1}`,

    .. math::

        \theta_{k+1} = \theta_k - \eta\, n_{L-1}\, \frac1N \sum_i J^{\mu P}(x_i)^\top
            \big(f^{\mu P}_{\theta_k}(x_i) - y_i\big),

    which is ``training.train(x, y, net=net, params=params, lr=eta * n, output_scale=alpha)``
    with α = ``mup_scale(net)`` and n = n_L−1 (the last hidden width): with η fixed every
    hidden unit moves by O(1) as n → ∞ (features are learned), and the μP kernel
    :math:`\Theta^{\mu P} = \Theta^{ntk}/n_{L-1}` (the recorded ``ntk``) moves by O(1) of itself.
    The trajectory's ``t`` is then η n k.

    Raises:
        ValueError: naming ``net`` unless it is an NTK-parametrised :class:`~ntkbook.networks.MLP`.
    """
    if not isinstance(net, MLP) or net.parametrisation != "ntk":
        raise ValueError(f"net: expected an MLP in the NTK parametrisation, got {net!r}")
    return 1.0 / net.widths[-2] ** 0.5


def activation_flips(x: Array, *, net: MLP, params: Params, params0: Params) -> Array:
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
    return jnp.stack(
        [jnp.mean(jnp.signbit(a) != jnp.signbit(b)) for a, b in zip(before, after, strict=True)]
    )
