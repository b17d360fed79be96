"""Every public object documents itself (its own docstring, not one inherited from torch),
and the share with a runnable example (run as doctests by make test) does not fall."""

import importlib
import inspect

PACKAGES = ["linalg", "distributions", "gp", "mcmc", "bo", "ratio", "vae", "training",
            "plotting", "data", "errors", "validation"]
MIN_EXAMPLES = 162  # public objects with a >>> example (of 163: the other is a constant)


def _public():
    for pkg in PACKAGES:
        module = importlib.import_module(f"bayeskit.{pkg}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not inspect.ismodule(obj):
                yield f"{pkg}.{name}", obj


def _own_doc(obj) -> str:
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__") or ""
    return getattr(obj, "__doc__", None) or ""


def test_every_public_object_has_its_own_docstring():
    missing = [name for name, obj in _public()
               if not isinstance(obj, (str, tuple)) and not _own_doc(obj).strip()]
    assert missing == []


def test_examples_do_not_regress():
    with_example = [name for name, obj in _public() if ">>>" in _own_doc(obj)]
    assert len(with_example) >= MIN_EXAMPLES, len(with_example)
