"""Test configuration: float64 available, and silent rank promotion is an error.

``jax_numpy_rank_promotion = "raise"`` turns every implicit broadcast between arrays of
different rank into an error, so a shape bug cannot hide behind broadcasting (as in
neural-tangents' tests). Float64 is enabled so cross-checks can be made at high accuracy;
tests of float32 behaviour pass ``dtype=jnp.float32`` explicitly.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Property tests are derandomised: CI must fail or pass the same way on every run (a seed-
# dependent red would be noise). Hypothesis still explores max_examples cases per test.
from hypothesis import settings  # noqa: E402

settings.register_profile("ntkbook", derandomize=True, database=None, print_blob=True)
settings.load_profile("ntkbook")
