"""``PolyaGamma``: the distribution as a ``torch.distributions.Distribution``."""

from __future__ import annotations

import torch

from bayeskit.distributions.polyagamma.density import (
    polya_gamma_cdf,
    polya_gamma_log_cdf,
    polya_gamma_log_prob,
    polya_gamma_mean,
    polya_gamma_variance,
)
from bayeskit.distributions.polyagamma.dispatch import sample_polya_gamma
from bayeskit.distributions.polyagamma.series import F64, check_params
from bayeskit.errors import ShapeError
from bayeskit.validation import as_param

__all__ = ["PolyaGamma"]

def broadcast_params(b, c) -> tuple[torch.Tensor, torch.Tensor]:
    b_t, c_t = as_param(b, "b"), as_param(c, "c")
    try:
        return torch.broadcast_tensors(b_t, c_t)
    except RuntimeError as err:
        raise ShapeError(f"b {tuple(b_t.shape)} and c {tuple(c_t.shape)} do not broadcast") \
            from err


class PolyaGamma(torch.distributions.Distribution):
    """The Pólya-gamma distribution ``PG(b, c)`` as a ``torch.distributions.Distribution``.

    Args:
        b: shape, ``b > 0`` (real, not only integer); broadcasts with ``c``.
        c: tilt, any finite real.

    Examples:
        >>> d = PolyaGamma(torch.tensor([1.0, 2.5]), torch.tensor([0.0, 3.0]))
        >>> d.sample((4,), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 2])
        >>> d.mean
        tensor([0.2500, 0.3771])
    """

    arg_constraints = {"b": torch.distributions.constraints.positive,
                       "c": torch.distributions.constraints.real}
    support = torch.distributions.constraints.positive
    has_rsample = False

    def __init__(self, b, c=0.0, validate_args: bool | None = None):
        self.b, self.c = broadcast_params(b, c)
        if validate_args is not False:  # validate_args=False skips the checks, as in torch
            check_params(self.b.detach().to(F64), self.c.detach().to(F64))
        super().__init__(self.b.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PolyaGamma, _instance)
        batch_shape = torch.Size(batch_shape)
        new.b, new.c = self.b.expand(batch_shape), self.c.expand(batch_shape)
        super(PolyaGamma, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return polya_gamma_mean(self.b, self.c)

    @property
    def variance(self) -> torch.Tensor:
        return polya_gamma_variance(self.b, self.c)

    def sample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Exact draws, ``[*sample_shape, *batch_shape]``; pass a generator to reproduce."""
        with torch.no_grad():
            return sample_polya_gamma(self.b, self.c, sample_shape, generator=generator)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return polya_gamma_log_prob(value, self.b, self.c).to(self.b.dtype)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return polya_gamma_cdf(value, self.b, self.c).to(self.b.dtype)

    def log_cdf(self, value: torch.Tensor) -> torch.Tensor:
        """``log P(W <= value)``, accurate where the CDF itself underflows."""
        return polya_gamma_log_cdf(value, self.b, self.c).to(self.b.dtype)
