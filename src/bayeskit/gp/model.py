"""The model contract's shared half: every GP model (GPR, SGPR, SVGP) subclasses
:class:`GPModel`, implements :meth:`GPModel.posterior` (and ``dtype``/``input_dim``), and
inherits the same ``predict_f``, ``predict_y`` and ``sample_f``."""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from bayeskit.errors import ArgumentValueError
from bayeskit.gp.kernels import inverse_positive, positive
from bayeskit.gp.means import ConstantMean
from bayeskit.gp.posterior import GPPosterior
from bayeskit.validation import as_inputs, as_int, as_scalar

__all__ = ["GPModel", "GPRegressionModel", "data_scale"]


def data_scale(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and standard deviation of ``v`` ``[N, D]`` (or ``[N]``) in float64,
    without overflow (statistics of ``v / max|v|``, rescaled); a constant column gets
    scale ``max|v|`` (1 for an all-zero one).

    Examples:
        >>> loc, scale = data_scale(torch.tensor([[0.0], [4e300]], dtype=torch.float64))
        >>> float(loc[0]), float(scale[0])  # v.std() would overflow
        (2e+300, 2e+300)
    """
    v = v.detach().to(torch.float64)
    top = v.abs().amax(0)
    top = torch.where(torch.isfinite(top) & (top > 0), top, torch.ones_like(top))
    u = v / top
    sd = u.std(0, correction=0) if len(v) > 1 else torch.zeros_like(top)
    return u.mean(0) * top, torch.where(sd > 0, sd, torch.ones_like(sd)) * top


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
        """Data, kernel, noise and mean. ``None`` for the kernel, the noise or the mean
        means "from the data's scale": an ARD squared exponential with lengthscales the
        inputs' standard deviations and variance the targets' variance, measured in those
        units (:meth:`~bayeskit.gp.kernels.Stationary.set_units`); noise 0.1 of the
        targets' variance, measured in it; the targets' mean (0 when it is not learnt)."""
        from bayeskit.gp.exact import check_data, check_kernel, check_mean_function
        from bayeskit.gp.kernels import SquaredExponential

        X, y = check_data(X, y)
        self.register_buffer("X", X)
        self.register_buffer("y", y)
        _, x_scale = data_scale(X)
        y_loc, y_scale = data_scale(y)
        y_var = float(y_scale) * float(y_scale)  # inf, not OverflowError, past 1e154
        if not (math.isfinite(y_var) and y_var > 0 and bool(torch.isfinite(x_scale).all())):
            raise ArgumentValueError(
                f"the data's scale (inputs {x_scale.tolist()}, targets {float(y_scale):g}) "
                "cannot be squared in float64; standardise X and y first (the scikit-learn "
                "estimators GPRegressor / SparseGPRegressor do)")
        if kernel is None:
            kernel = SquaredExponential(torch.ones(X.shape[-1], dtype=torch.float64))
            kernel.set_units(x_scale, y_var)
        self.kernel = check_kernel(kernel)
        unit = y_var if noise_variance is None else 1.0
        noise = 0.1 if noise_variance is None else as_scalar(
            noise_variance, "noise_variance", low=1e-6, low_open=True)
        self.register_buffer("noise_unit", torch.tensor(unit, dtype=torch.float64))
        self.raw_noise = nn.Parameter(inverse_positive(noise))
        # the constant mean is offset + unit * raw: from the data, offset the targets' mean
        # and unit their spread (L-BFGS then sees y * 1e-6 as it sees y); else 0 and 1
        learn = bool(learn_mean) and mean_function is None
        offset, unit = (float(y_loc), float(y_scale)) if mean is None and learn else (0.0, 1.0)
        raw = 0.0 if mean is None else as_scalar(mean, "mean")
        self.register_buffer("mean_offset", torch.tensor(offset, dtype=torch.float64))
        self.register_buffer("mean_unit", torch.tensor(unit, dtype=torch.float64))
        self.raw_mean = nn.Parameter(torch.tensor(raw, dtype=torch.float64), requires_grad=learn)
        self.mean_function = check_mean_function(mean_function)

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    @property
    def input_dim(self) -> int:
        return self.X.shape[-1]

    @property
    def mean_constant(self) -> torch.Tensor:
        """The constant prior mean (float64 scalar; learnable unless ``learn_mean=False``)."""
        return self.mean_offset + self.mean_unit * self.raw_mean

    @mean_constant.setter
    def mean_constant(self, value) -> None:
        with torch.no_grad():
            self.raw_mean.copy_((as_scalar(value, "mean_constant") - self.mean_offset)
                                / self.mean_unit)

    @property
    def noise_variance(self) -> torch.Tensor:
        """The Gaussian noise variance (the one public name in every GP model)."""
        return (positive(self.raw_noise) * self.noise_unit).to(self.dtype)

    def prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        """``m(X)``: the mean function if one was given, else the constant ``mean``."""
        if self.mean_function is not None:
            return self.mean_function(X).to(X.dtype)
        return self.mean_constant.to(X.dtype).expand(X.shape[:-1])
