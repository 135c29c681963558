"""The call convention of book/api.md §Conventions, checked on every public function.

Keys, ``params0`` and the model (``net``, ``params``, ``fn``) are keyword-only, and no public
function forwards ``**options``; the documented exception is the model function itself
(``networks.apply``/``forward``/``affine``/``check_params``: ``(net, params, x)``).
"""

import importlib
import inspect
import pkgutil

import pytest

import ntkbook

# every public module, found rather than listed, so that a new module is checked too
MODULES = [
    importlib.import_module(m.name)
    for m in pkgutil.walk_packages(ntkbook.__path__, "ntkbook.")
    if not any(part.startswith("_") for part in m.name.split("."))
]
KEYWORD_ONLY = {"key", "params0", "net", "params", "fn"}
MODEL_FUNCTIONS = {("ntkbook.networks", n) for n in ("apply", "forward", "affine", "check_params")}
# where the model is the subject and the only argument, it comes first: the function an ensemble
# runner maps over the keys, the network init draws parameters for, the one an activation wraps
SUBJECT = {
    ("ntkbook.montecarlo", "ensemble"): "fn",
    ("ntkbook.sharding", "ensemble"): "fn",
    ("ntkbook.networks", "init"): "net",
    ("ntkbook.experiments.mup", "mup_scale"): "net",
    ("ntkbook.activations", "from_function"): "fn",
    ("ntkbook.activations", "recognise"): "fn",
    ("ntkbook.piecewise", "fit"): "fn",
}


def _public_functions():
    for mod in MODULES:
        for name, obj in vars(mod).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if obj.__module__ != mod.__name__:
                continue  # imported from elsewhere, checked there
            yield pytest.param(mod.__name__, name, obj, id=f"{mod.__name__}.{name}")


@pytest.mark.parametrize(("module", "name", "fn"), list(_public_functions()))
def test_public_signature_follows_the_convention(module, name, fn):
    params = inspect.signature(fn).parameters.values()
    assert not any(p.kind is p.VAR_KEYWORD for p in params), "no **options forwarding"
    if (module, name) in MODEL_FUNCTIONS:
        return
    positional = {p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
    positional -= {SUBJECT.get((module, name))}
    assert not positional & KEYWORD_ONLY, f"keyword-only: {sorted(positional & KEYWORD_ONLY)}"


def test_the_check_sees_the_functions_it_is_about():
    # the rule above must not pass vacuously: the finite-network functions are in the sweep
    seen = {(m, n) for m, n, _ in (p.values for p in _public_functions())}
    for want in [
        ("ntkbook.networks", "init"),
        ("ntkbook.empirical", "ntk"),
        ("ntkbook.training", "train"),
        ("ntkbook.sharding", "train_ensemble"),
        ("ntkbook.experiments.lemma1", "lemma1_norms"),
    ]:
        assert want in seen


def test_one_default_per_hyperparameter():
    defaults: dict[str, set[object]] = {}
    for _, _, fn in (p.values for p in _public_functions()):
        for p in inspect.signature(fn).parameters.values():
            if p.name in ("sigma_w", "beta", "activation", "normalise", "reg") and (
                p.default is not p.empty
            ):
                defaults.setdefault(p.name, set()).add(p.default)
    assert defaults["sigma_w"] == {1.0}
    assert defaults["beta"] == {0.0}
    assert defaults["normalise"] == {True}
    assert defaults["reg"] == {0.0}
    assert defaults["activation"] == {"relu"}
