"""bayeskit: probabilistic machine learning on PyTorch.

Layer 1 (functions on tensors) lives in subpackages such as :mod:`bayeskit.linalg` and
:mod:`bayeskit.distributions`; models (:mod:`bayeskit.gp`, :mod:`bayeskit.vae`, ...) and
estimators build on it. Subpackages load on first use (``bayeskit.gp`` works after
``import bayeskit``). See the README for a tour and ``docs/architecture.md`` for the shape.
"""

import importlib

from bayeskit import errors, linalg

__version__ = "0.1.0"

_SUBPACKAGES = ("bo", "data", "distributions", "gp", "mcmc", "nn", "plotting", "ratio",
                "training", "vae", "validation")

__all__ = ["errors", "linalg", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"bayeskit.{name}")
    raise AttributeError(f"module 'bayeskit' has no attribute {name!r}")
