"""ntkbook: infinite-width kernels and finite-width experiments for the NTK lecture notes.

Modules follow the notes (see ``book/intro.md`` for the map):

- :mod:`ntkbook.activations` — σ, σ̇ and closed-form Gaussian expectations;
- :mod:`ntkbook.costs` — costs on outputs and the p_in inner product;
- :mod:`ntkbook.limits` — Σ^(l), Σ̇^(l), Θ∞^(l) for every layer;
- :mod:`ntkbook.networks` — the MLP of Fig. 1 (NTK and standard parametrisation);
- :mod:`ntkbook.empirical` — the empirical NTK of a finite network;
- :mod:`ntkbook.training` — gradient descent / flow and the linearised model;
- :mod:`ntkbook.regression` — closed-form kernel regression and GP inference;
- :mod:`ntkbook.montecarlo` — ensembles over initialisations and the moments of their draws;
- :mod:`ntkbook.sharding` — the same on several devices or hosts (meshes, memmap output);
- :mod:`ntkbook.experiments` — chapter-scale experiments built from the modules above, one per
  topic (lazy training, μP, catapult, depth vs width, Lemma 1's norms, exact moments);
- :mod:`ntkbook.data` — small datasets made in code;
- :mod:`ntkbook.plotting` — the book's figures (needs matplotlib, the ``plot`` extra).

``import ntkbook`` loads no matplotlib and changes no global state: :mod:`ntkbook.plotting` is
imported on first access of ``ntkbook.plotting`` (PEP 562).
"""

import importlib
from types import ModuleType

from . import (
    activations,
    costs,
    data,
    empirical,
    experiments,
    gaussian,
    limits,
    montecarlo,
    networks,
    regression,
    sharding,
    spectra,
    training,
)
from ._version import __version__
from .limits import kernels, nngp, ntk

__all__ = [
    "__version__",
    "activations",
    "costs",
    "data",
    "empirical",
    "experiments",
    "gaussian",
    "kernels",
    "limits",
    "montecarlo",
    "networks",
    "nngp",
    "ntk",
    "plotting",
    "regression",
    "sharding",
    "spectra",
    "training",
]


def __getattr__(name: str) -> ModuleType:
    """``ntkbook.plotting`` is imported on first access, so that ``import ntkbook`` loads no
    matplotlib."""
    if name == "plotting":
        return importlib.import_module(".plotting", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
