"""Chapter-scale experiments built from the toolkit, one module per topic (issue 21).

- :mod:`ntkbook.experiments.moments` — exact finite-width moments of the output (chapter 3);
- :mod:`ntkbook.experiments.lemma1` — the quantities of the proofs of Theorem 2 and Lemma 1
  (chapters 5–6);
- :mod:`ntkbook.experiments.lazy_training` — lazy training: rescaling, Jacobian and Hessian
  sizes, Taylor terms (chapter 8);
- :mod:`ntkbook.experiments.catapult` — large learning rates: lazy, catapult, divergent
  (chapter 10);
- :mod:`ntkbook.experiments.mup` — μP / mean-field training: its output scale, and the units
  whose preactivation changed sign (chapters 10–11);
- :mod:`ntkbook.experiments.depth_width` — the depth-to-width law of the NTK's fluctuations
  (chapter 10).

These modules import the toolkit (and may import :mod:`ntkbook.sharding`); nothing in the toolkit
or in ``sharding`` imports them (``tests/test_architecture.py`` checks it).
"""

from . import catapult, depth_width, lazy_training, lemma1, moments, mup

__all__ = ["catapult", "depth_width", "lazy_training", "lemma1", "moments", "mup"]
