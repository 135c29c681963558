r"""μP / mean-field training, where features are learned (Yang & Hu 2021; chapter 11).

:func:`mup_scale` is the factor :math:`1/\sqrt{n_{L-1}}` between the NTK-parametrised network
and its μP counterpart; :func:`train_mup` trains the μP network with
:func:`ntkbook.training.train` and the cost :func:`ntkbook.costs.scaled_mse`;
:func:`activation_flips` counts the hidden units whose preactivation changed sign, the units at
which a ReLU network's Theorem 2 bound fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from .. import _checks, costs, training
from ..networks import MLP, Params, check_params, forward

Array = jax.Array


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
) -> training.Trajectory:
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
    Implemented as :func:`~ntkbook.training.train` on the NTK network with the cost ½‖α f − y‖²
    (α = :func:`mup_scale`, :func:`ntkbook.costs.scaled_mse`) and the learning rate
    :math:`\eta\, n_{L-1}`; no new network code.

    Args:
        net: an NTK-parametrised MLP (its widths define :math:`n_{L-1}`).
        params, x, y, steps, record_at, x_test, record_ntk: as in :func:`ntkbook.training.train`.
        lr: η > 0, the width-independent μP learning rate.

    Returns:
        a :class:`~ntkbook.training.Trajectory` of the μP network: ``f_train``, ``f_test`` are
        :math:`f^{\mu P}`, ``loss`` is :math:`\frac12\|f^{\mu P} - y\|^2_{p^{in}}`, ``ntk`` is
        the traced :math:`\Theta^{\mu P}`, ``t`` = η k and ``d_integral`` uses
        :math:`d = f^{\mu P} - y`; ``params`` and the weight changes are those of θ itself.

    Raises:
        ValueError: as :func:`ntkbook.training.train` and :func:`mup_scale`.
    """
    alpha = mup_scale(net)
    lr = _checks.positive("lr", lr)
    n = net.widths[-2]
    traj = training.train(
        x, y, net=net, params=params, lr=lr * n, steps=steps, record_at=record_at, x_test=x_test,
        cost=costs.scaled_mse(alpha), record_ntk=record_ntk
    )
    return traj._replace(
        t=traj.t / n,
        f_train=alpha * traj.f_train,
        f_test=None if traj.f_test is None else alpha * traj.f_test,
        ntk=None if traj.ntk is None else alpha**2 * traj.ntk,
        d_integral=traj.d_integral / (alpha * n),
    )


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
    return jnp.stack([jnp.mean(jnp.signbit(a) != jnp.signbit(b))
                      for a, b in zip(before, after, strict=True)])
