"""Bad inputs to the limit kernels (issue 22): an error naming the argument, or a correct empty
result; an overflow is a named error, never NaN."""

import time

import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import limits


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_empty_inputs_give_empty_kernels(activation):
    empty = np.zeros((0, 3))
    assert limits.ntk(empty, depth=3, activation=activation).shape == (0, 0)
    assert limits.nngp(empty, depth=3, activation=activation, diagonal=True).shape == (0,)
    assert limits.kernels(empty, depth=2, activation=activation).theta.shape == (2, 0, 0)
    assert limits.ntk(np.ones((2, 3)), empty, depth=3, activation=activation).shape == (2, 0)


@pytest.mark.parametrize(
    "x, error",
    [(None, TypeError), ("abc", TypeError), ([[1.0, 2.0], [3.0]], ValueError),
     ([[object()]], TypeError)],
)  # fmt: skip
def test_non_arrays_raise_naming_x(x, error):
    with pytest.raises(error, match="^x1: "):
        limits.ntk(x, depth=2)
    if x is not None:  # x2=None is the default (x2 = x1)
        with pytest.raises(error, match="^x2: "):
            limits.nngp(np.ones((2, 2)), x, depth=2)


def test_numpy_ufunc_and_non_elementwise_activations_raise_naming_activation():
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="^activation: "):
        limits.ntk(x, depth=2, activation=np.tanh)
    with pytest.raises(ValueError, match="^activation: "):
        limits.ntk(x, depth=2, activation=lambda z: z - jnp.mean(z))
    with pytest.raises(TypeError, match="^diagonal: "):
        limits.ntk(x, depth=2, diagonal="yes")


def test_variances_that_overflow_with_depth_raise_naming_depth_quickly():
    # relu(z)²: Σ^(l+1) = (3/2)(Σ^(l))² σ_w⁴-ish, doubly exponential: float64 overflows near
    # layer 12. Was `cannot convert float NaN to integer` after 11 s of rule search.
    start = time.process_time()
    with pytest.raises(ValueError, match="^depth: .*overflows float64"):
        limits.ntk(np.ones((2, 3)), depth=20, activation=lambda z: jnp.maximum(z, 0.0) ** 2)
    assert time.process_time() - start < 5.0  # raised before any rule search


@pytest.mark.parametrize("activation", ["erf", "tanh"])
def test_float32_inputs_whose_gram_overflows_raise_naming_x(activation):
    # ‖x‖² ~ 5e40 > float32's 3.4e38: the Gram matrix is inf and the kernels were NaN
    big = np.array([[1e20, -2e20, 3e19], [0.5e20, 1e20, 1e20]], np.float32)
    with pytest.raises(ValueError, match="^x1: .*float32"):
        limits.ntk(big, depth=3, activation=activation)
    with pytest.raises(ValueError, match="^x2: .*float32"):
        limits.nngp(np.ones((2, 3), np.float32), big, depth=3, activation=activation)
    # in float64 the same inputs are fine, and erf's kernel is finite
    out = limits.nngp(big.astype(np.float64), depth=3, activation="erf")
    assert np.all(np.isfinite(np.asarray(out)))
