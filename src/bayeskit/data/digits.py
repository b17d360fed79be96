"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 17 grey levels), scaled to
[0, 1], with a fixed stratified train/test split."""

from __future__ import annotations

import torch

from bayeskit.validation import as_int, as_scalar

__all__ = ["load_digits_split"]


def load_digits_split(test_fraction: float = 0.2, seed: int = 0,
                      dtype: torch.dtype = torch.float32):
    """``(x_train, y_train, x_test, y_test)``: images ``[N, 64]`` in [0, 1] (pixel / 16)
    and labels ``[N]``; the split is stratified by digit and fixed by ``seed``.

    Examples:
        >>> x_train, y_train, x_test, y_test = load_digits_split()  # scikit-learn's digits
        >>> x_train.shape, x_test.shape, float(x_train.max())
        (torch.Size([1437, 64]), torch.Size([360, 64]), 1.0)
    """
    test_fraction = as_scalar(test_fraction, "test_fraction", low=0.0, high=1.0,
                              low_open=True, high_open=True)
    seed = as_int(seed, "seed", nonnegative=True)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(digits.data / 16.0, digits.target,
                                              test_size=test_fraction, random_state=seed,
                                              stratify=digits.target)
    return (torch.as_tensor(x_tr, dtype=dtype), torch.as_tensor(y_tr),
            torch.as_tensor(x_te, dtype=dtype), torch.as_tensor(y_te))
