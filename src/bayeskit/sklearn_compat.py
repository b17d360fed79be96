"""scikit-learn conventions shared by every bayeskit estimator (layer 0: imports only
scikit-learn, errors and validation).

- :func:`check_features`: predict-time input check with scikit-learn's wording for a
  feature-count mismatch (``"X has 3 features, but Foo is expecting 2 features as input"``).
- :func:`binary_labels`: any two classes (numbers, strings, booleans) through ``classes_``,
  with scikit-learn's errors for continuous targets ("Unknown label type") and one class.
- :class:`BinaryClassifierMixin`: declares the binary-only tag (scikit-learn >= 1.6 tags
  API) so ``parametrize_with_checks`` tests two-class problems.

Supported scikit-learn: >= 1.6 (the tags API); tested with 1.9.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, BayeskitError, ShapeError
from bayeskit.validation import as_binary_labels

__all__ = ["check_training_data", "check_features", "binary_labels", "BinaryClassifierMixin"]


def _in_bayeskit_terms(check, *args, **kwargs):
    """Run a scikit-learn input check; its ``ValueError``/``TypeError`` become the
    bayeskit error of the same kind with scikit-learn's message (which the compliance
    checks match, and which names the argument: "Input X contains NaN.")."""
    try:
        return check(*args, **kwargs)
    except BayeskitError:
        raise
    except ValueError as err:
        raise ArgumentValueError(str(err)) from None
    except TypeError as err:
        raise ArgumentTypeError(str(err)) from None


def check_training_data(X, y, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``check_X_y(X, y, **kwargs)`` with bayeskit errors (``ArgumentValueError`` /
    ``ArgumentTypeError``) in scikit-learn's words.

    Examples:
        >>> X, y = check_training_data([[0.0], [1.0]], [0, 1], dtype=np.float64)
        >>> X.shape, y.tolist()
        ((2, 1), [0, 1])
        >>> try:
        ...     check_training_data([[float("nan")]], [0])
        ... except ArgumentValueError as e:
        ...     print(e)
        Input X contains NaN.
    """
    return _in_bayeskit_terms(check_X_y, X, y, **kwargs)


def check_features(estimator, X, fitted_attribute: str) -> np.ndarray:
    """``X`` as a float64 array after ``check_is_fitted(estimator, fitted_attribute)``;
    a ``ValueError`` in scikit-learn's words when the feature count differs from fit."""
    check_is_fitted(estimator, fitted_attribute)
    X = _in_bayeskit_terms(check_array, X, dtype=np.float64)
    if X.shape[1] != estimator.n_features_in_:
        raise ShapeError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
                         f"expecting {estimator.n_features_in_} features as input")
    return X


def binary_labels(y):
    """``(codes as a float64 tensor of 0/1, classes_)`` for two-class targets."""
    check_classification_targets(y)  # "Unknown label type: continuous ..."
    classes = np.unique(np.asarray(y))
    if len(classes) == 1:
        raise ArgumentValueError(f"Classifier can't train when only one class is present: "
                                 f"got 1 class {classes.tolist()}")
    if len(classes) > 2:
        raise ArgumentValueError(f"Only binary classification is supported. The type of the "
                                 f"target is {type_of_target(y)} ({len(classes)} classes); "
                                 "use PolyaGammaSVGPClassifier for more classes")
    return as_binary_labels(y)


class BinaryClassifierMixin:
    """Binary-only classifiers: the tag, and ``predict`` that checks fitting first."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
