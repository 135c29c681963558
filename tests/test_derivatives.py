"""First and second derivatives of the limit kernels (issue 22) against central finite
differences of the kernels' own values.

F(θ) = Σ_ij W_ij Θ(x_i, x_j), θ = (x, β, σ_w), so one scalar function covers the derivatives
with respect to x, β and σ_w and their mixed second derivatives. Directional derivatives
F′·v and uᵀF″v are compared with

    D1(h) = [F(θ + hv) − F(θ − hv)] / 2h,
    D2(h) = [F(θ+hu+hv) − F(θ+hu−hv) − F(θ−hu+hv) + F(θ−hu−hv)] / 4h²,

both of order h² for a smooth F. Tolerance (no tuning): the truncation error of D(h) of order
p is ≈ |D(2h) − D(h)|/(2^p − 1) (Richardson); we allow 3× that, plus the rounding of F
amplified by the stencil, 2ε/h (D1) and ε/h² (D2), with ε = 64 eps (|F| + 1) (F is a sum of
O(10) rounded terms per entry). At a cone (Θ at x = x′, whose Σ̇ ∝ θ has an h·abs(h) term
along a line) the central difference is only of order p = 1. Each check also asserts that its
tolerance is below 1e-4 of the scale, so it has the power to see a wrong derivative (a
missing chain-rule factor is an O(1) relative error).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import limits

EPS = float(np.finfo(np.float64).eps)
H1, H2 = 1e-4, 1e-3  # near the optimal steps (3ε)^(1/3), (48ε)^(1/4) for an O(1) scale


def _sin_plus_linear(z):
    """A JAX callable the package does not know (no closed form, smooth)."""
    return jnp.sin(z) + 0.5 * z


# Explicit rules for the smooth σ, so that every call (and every FD neighbour) runs the same
# rule: the check is then on the derivative of one fixed function. 64 Mehler terms / 16 polar
# points are accurate (their own warning threshold, 1e-8) at these variances (Σ ≤ 2).
ACTIVATIONS = {
    "relu": dict(activation="relu"),
    "erf": dict(activation="erf"),
    "relu6": dict(activation="relu6"),
    "tanh": dict(activation="tanh", quadrature="mehler", points=64),
    "gelu": dict(activation="gelu", quadrature="mehler", points=64),
    "elu": dict(activation=jax.nn.elu, quadrature="polar", points=16),
    "callable": dict(activation=_sin_plus_linear, quadrature="mehler", points=64),
}
X = np.array([[0.9, -0.4], [0.2, 1.1]])
W = np.array([[1.0, -0.3], [0.2, 0.8]])


def _scalar(kernel, options, x_shape, *, scale=1.0, w=W):
    """θ ↦ Σ W ⊙ kernel(x), θ = (x.ravel(), β, σ_w); relu6's inputs are scaled up so that
    its kink at 6 is reached (scale multiplies x)."""
    n = int(np.prod(x_shape))

    def f(theta):
        x = scale * theta[:n].reshape(x_shape)
        k = kernel(x, depth=2, beta=theta[n], sigma_w=theta[n + 1], **options)
        return jnp.sum(jnp.asarray(w) * k)

    return jax.jit(f)  # one compile per (kernel, options): the FD neighbours reuse it


def _theta(x, beta=0.3, sigma_w=1.2):
    return jnp.asarray(np.concatenate([np.ravel(x), [beta, sigma_w]]))


def _rounding(f, theta):
    """ε = 64 eps Σ|W||K|: the rounding of F (see the module docstring)."""
    return 64 * EPS * (abs(float(f(theta))) + 1.0)


def _d1(f, theta, v, h):
    return (float(f(theta + h * v)) - float(f(theta - h * v))) / (2 * h)


def _d2(f, theta, u, v, h):
    pp, pm = float(f(theta + h * u + h * v)), float(f(theta + h * u - h * v))
    mp, mm = float(f(theta - h * u + h * v)), float(f(theta - h * u - h * v))
    return (pp - pm - mp + mm) / (4 * h * h)


def _check_first(f, theta, v, got, *, order=2):
    fd, fd2 = _d1(f, theta, v, H1), _d1(f, theta, v, 2 * H1)
    tol = 3 * abs(fd2 - fd) / (2**order - 1) + 2 * _rounding(f, theta) / H1
    scale = abs(fd) + abs(float(f(theta))) + 1.0
    assert tol < 1e-4 * scale, (tol, scale)  # the check has power
    for name, value in got.items():
        assert np.isfinite(value), name
        # rejects a wrong first derivative (false alarm: none beyond the FD bound)
        assert abs(value - fd) <= tol, (name, value, fd, tol)


def _check_second(f, theta, u, v, got):
    fd, fd2 = _d2(f, theta, u, v, H2), _d2(f, theta, u, v, 2 * H2)
    tol = abs(fd2 - fd) + 2 * _rounding(f, theta) / H2**2
    scale = abs(fd) + abs(float(f(theta))) + 1.0
    assert tol < 1e-4 * scale, (tol, scale)
    for name, value in got.items():
        assert np.isfinite(value), name
        assert abs(value - fd) <= tol, (name, value, fd, tol)


def _directions(size, seed):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(2, size))
    return jnp.asarray(u / np.linalg.norm(u)), jnp.asarray(v / np.linalg.norm(v))


# Under grad/jacfwd w.r.t. x the inputs have no values, so an explicit rule is checked against
# the traced path's assumed variance range (up to 100) and warns; irrelevant here, where the
# derivative of the same fixed rule is compared with that rule's own values.
TRACED_POINTS_WARNING = "ignore:points:UserWarning"


# The quadrature-rule activations compile for minutes under hessian (the Mehler series and the
# polar rule, differentiated twice): they are marked slow, outside `make test` (run them with
# `pytest -m slow tests/test_derivatives.py`); the closed forms run in every suite.
SLOW = pytest.mark.slow
FD_CASES = ["relu", "erf", "relu6"] + [
    pytest.param(n, marks=SLOW) for n in ("tanh", "gelu", "elu", "callable")
]


@pytest.mark.filterwarnings(TRACED_POINTS_WARNING)
@pytest.mark.parametrize("name", FD_CASES)
def test_first_and_second_derivatives_match_finite_differences(name):
    # every transformation JAX composes: forward (jacfwd), reverse (grad), and the hessian
    # (jacfwd ∘ jacrev); all four second-order compositions for relu
    scale = 4.0 if name == "relu6" else 1.0
    f = _scalar(limits.ntk, ACTIVATIONS[name], X.shape, scale=scale)
    theta = _theta(X)
    u, v = _directions(theta.size, 0)
    first = {
        "grad": float(jax.grad(f)(theta) @ v),
        "jacfwd": float(jax.jacfwd(f)(theta) @ v),
    }
    _check_first(f, theta, v, first)
    second = {"hessian": float(u @ jax.hessian(f)(theta) @ v)}
    if name == "relu":
        second["jacrev∘jacrev"] = float(u @ jax.jacrev(jax.jacrev(f))(theta) @ v)
        second["jacfwd∘jacfwd"] = float(u @ jax.jacfwd(jax.jacfwd(f))(theta) @ v)
        second["jacrev∘jacfwd"] = float(u @ jax.jacrev(jax.jacfwd(f))(theta) @ v)
    _check_second(f, theta, u, v, second)


# relu6 at x = x′: the NNGP hessian is 17.174 against a finite difference of 16.927 (1.5 %,
# tolerance 2.5e-4) — a known defect of the kink closed form's second derivative at ρ = 1,
# not yet found; strict, so a fix shows up.
RELU6_AT_X = pytest.mark.xfail(strict=True, reason="relu6 NNGP hessian at x = x′ is 1.5 % off")


@pytest.mark.parametrize(
    ("name", "sign"),
    [
        ("relu", 1.0),
        ("relu", -1.0),
        pytest.param("relu6", 1.0, marks=[SLOW, RELU6_AT_X]),
        pytest.param("relu6", -1.0, marks=SLOW),
    ],
)
def test_derivatives_at_x_equal_to_plus_minus_x_prime(name, sign):
    # Rows 0 and 2 satisfy x = ±x′ (ρ = ±1, θ = 0 or π). Σ is C² there (its singular part is
    # θ³ or (π − θ)³), so its first and second derivatives match FD. Θ has Σ̇ ∝ π − θ, a cone
    # in x − x′: its first derivative is the symmetric subgradient, which is what the central
    # difference measures (both one-sided slopes averaged), and its second derivative is
    # singular: returned finite (the singular term dropped), not NaN.
    x = np.concatenate([X, X[:1] * sign])  # row 2 is ±row 0
    w = np.array([[1.0, -0.3, 0.5], [0.2, 0.8, -0.6], [0.4, 0.1, 0.7]])
    scale = 4.0 if name == "relu6" else 1.0
    theta = _theta(x)
    u, v = _directions(theta.size, 1)
    nngp = _scalar(limits.nngp, ACTIVATIONS[name], x.shape, scale=scale, w=w)
    _check_first(nngp, theta, v, {"grad": float(jax.grad(nngp)(theta) @ v)})
    _check_second(nngp, theta, u, v, {"hessian": float(u @ jax.hessian(nngp)(theta) @ v)})
    ntk = _scalar(limits.ntk, ACTIVATIONS[name], x.shape, scale=scale, w=w)
    fwd = float(jax.jacfwd(ntk)(theta) @ v)
    rev = float(jax.grad(ntk)(theta) @ v)
    _check_first(ntk, theta, v, {"grad": rev, "jacfwd": fwd}, order=1)
    assert np.all(np.isfinite(jax.hessian(ntk)(theta)))
