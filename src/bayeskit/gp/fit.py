"""The one L-BFGS helper used to fit GP hyperparameters (GPR, SGPR, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

__all__ = ["minimise_lbfgs"]


def minimise_lbfgs(params: Iterable[torch.nn.Parameter], loss: Callable[[], torch.Tensor],
                   max_iter: int = 200) -> float:
    """Minimise ``loss()`` over the trainable ``params`` with strong-Wolfe L-BFGS.

    Returns the final loss. A ``ValueError`` from the loss (e.g. a Cholesky failure
    reported by ``bayeskit.linalg``) propagates to the caller.
    """
    trainable = [p for p in params if p.requires_grad]
    opt = torch.optim.LBFGS(trainable, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return float(loss())
