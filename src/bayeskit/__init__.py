"""bayeskit: probabilistic machine learning on PyTorch.

Layer 1 (functions on tensors) lives in subpackages such as :mod:`bayeskit.linalg`;
models and estimators build on it. See the README for a tour.
"""

from bayeskit import errors, linalg

__version__ = "0.1.0"

__all__ = ["errors", "linalg", "__version__"]
