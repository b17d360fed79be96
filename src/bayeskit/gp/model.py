"""The model contract's shared half: every GP model (GPR, SGPR, SVGP) subclasses
:class:`GPModel`, implements :meth:`GPModel.posterior` (and ``dtype``/``input_dim``), and
inherits the same ``predict_f``, ``predict_y`` and ``sample_f``."""

from __future__ import annotations

import abc

import torch
from torch import nn

from bayeskit.gp.kernels import inverse_positive, positive
from bayeskit.gp.means import ConstantMean
from bayeskit.gp.posterior import GPPosterior
from bayeskit.validation import as_inputs, as_int, as_scalar

__all__ = ["GPModel", "GPRegressionModel"]


class GPModel(nn.Module, abc.ABC):
    """Base class of the GP models: predictions through :meth:`posterior` only."""

    @abc.abstractmethod
    def posterior(self) -> GPPosterior:
        """The posterior process ``q(f)`` (each model builds its own)."""

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in (its data's)."""

    @property
    @abc.abstractmethod
    def input_dim(self) -> int:
        """``D``, the number of input features."""

    def _inputs(self, X) -> torch.Tensor:
        ref = next(self.buffers(), None)
        device = ref.device if ref is not None else None
        return as_inputs(X, "X", dim=self.input_dim, dtype=self.dtype, device=device)

    def _mean_module(self):
        """The prior mean as a module: the mean function, or the learned constant."""
        if getattr(self, "mean_function", None) is not None:
            return self.mean_function
        return ConstantMean(float(self.mean_constant), learn=False)

    def predict_f(self, X, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean ``[M]`` and variance ``[M]`` (or covariance ``[M, M]``) of ``f``
        at ``X`` ``[M, D]``."""
        X = self._inputs(X)
        post = self.posterior()
        with torch.no_grad():
            return (post.mean(X), post.covariance(X)) if full_cov else post.mean_and_variance(X)

    def predict_y(self, X, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (or covariance) of new observations at ``X`` (the latent ones
        plus the Gaussian noise)."""
        X = self._inputs(X)
        with torch.no_grad():
            return self.posterior().predictive(X, full_cov=full_cov)

    def sample_f(self, X, num_samples: int, *, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Joint posterior draws of ``f`` at ``X``: ``[num_samples, M]``."""
        X = self._inputs(X)
        n = as_int(num_samples, "num_samples", positive=True)
        with torch.no_grad():
            return self.posterior().rsample(X, (n,), generator=generator)


class GPRegressionModel(GPModel):
    """Shared half of the models that hold their data and a Gaussian noise (GPR, SGPR):
    data buffers, kernel, noise, constant mean or mean function."""

    def _init_regression(self, X, y, kernel, noise_variance, mean, learn_mean,
                         mean_function) -> None:
        from bayeskit.gp.exact import check_data, check_kernel, check_mean_function

        X, y = check_data(X, y)
        self.register_buffer("X", X)
        self.register_buffer("y", y)
        self.kernel = check_kernel(kernel)
        noise = as_scalar(noise_variance, "noise_variance", low=1e-6, low_open=True)
        self.raw_noise = nn.Parameter(inverse_positive(noise))
        self.mean_constant = nn.Parameter(
            torch.tensor(as_scalar(mean, "mean"), dtype=torch.float64),
            requires_grad=bool(learn_mean) and mean_function is None)
        self.mean_function = check_mean_function(mean_function)

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    @property
    def input_dim(self) -> int:
        return self.X.shape[-1]

    @property
    def noise_variance(self) -> torch.Tensor:
        """The Gaussian noise variance (the one public name in every GP model)."""
        return positive(self.raw_noise).to(self.dtype)

    def prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        """``m(X)``: the mean function if one was given, else the constant ``mean``."""
        if self.mean_function is not None:
            return self.mean_function(X).to(X.dtype)
        return self.mean_constant.to(X.dtype).expand(X.shape[:-1])
