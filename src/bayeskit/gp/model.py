"""The model contract's shared half: every GP model (GPR, SGPR, SVGP) subclasses
:class:`GPModel`, implements :meth:`GPModel.posterior` (and ``dtype``/``input_dim``), and
inherits the same ``predict_f``, ``predict_y`` and ``sample_f``."""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from bayeskit.errors import ArgumentValueError, NonFiniteError
from bayeskit.gp.kernels import inverse_positive, positive
from bayeskit.gp.means import ConstantMean
from bayeskit.gp.posterior import GPPosterior
from bayeskit.validation import all_finite, as_inputs, as_int, as_scalar, as_tensor

__all__ = ["GPModel", "GPRegressionModel", "data_scale", "ALL_NOISE"]

#: a fit whose noise variance is at least this fraction of the targets' variance explains
#: (almost) everything as noise
ALL_NOISE = 0.9


def data_scale(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and standard deviation of ``v`` ``[N, D]`` (or ``[N]``) in float64,
    without overflow (statistics of ``v / max|v|``, rescaled); a constant column gets
    scale ``max|v|`` (1 for an all-zero one).

    Examples:
        >>> loc, scale = data_scale(torch.tensor([[0.0], [4e300]], dtype=torch.float64))
        >>> float(loc[0]), float(scale[0])  # v.std() would overflow
        (2e+300, 2e+300)
    """
    v = as_tensor(v.detach() if isinstance(v, torch.Tensor) else v, "data",
                  dtype=torch.float64, ndim=(1, 2), min_rows=1)
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
        self.kernel = check_kernel(kernel, X)
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

    def explains_all_as_noise(self) -> bool:
        """Whether the (learnable) noise variance is at least ``ALL_NOISE`` (0.9) of the
        targets' variance: the flat fit that marginal likelihoods often have as a local
        optimum when the lengthscales start far too long."""
        y_var = float(data_scale(self.y)[1]) ** 2
        return bool(self.raw_noise.requires_grad) and \
            float(self.noise_variance.detach()) >= ALL_NOISE * y_var

    def _small_noise_start(self) -> dict[str, torch.Tensor]:
        """The current parameters with the noise at 0.01 of the targets' variance, every
        stationary kernel's variance at the targets' and its lengthscales at a third of the
        inputs' spread."""
        from bayeskit.gp.kernels import Stationary
        from bayeskit.training import parameter_values

        start = parameter_values(self)
        y_var = float(data_scale(self.y)[1]) ** 2
        start["raw_noise"] = inverse_positive(max(0.01 * y_var / float(self.noise_unit), 2e-6))
        x_scale = data_scale(self.X)[1]
        for name, module in self.kernel.named_modules():
            if isinstance(module, Stationary):
                raw = module.raw_lengthscale
                target = x_scale / 3 if raw.dim() else (x_scale / 3).log().mean().exp()
                relative = (target / module._unit("lengthscale")).clamp_min(2e-6)
                prefix = f"kernel.{name + '.' if name else ''}"
                start[prefix + "raw_lengthscale"] = \
                    inverse_positive(relative.expand(raw.shape).clone())
                # the flat fit also shrinks the signal variance, which stalls the lengthscales
                variance = torch.as_tensor(y_var / module._unit("variance")).clamp_min(2e-6)
                start[prefix + "raw_variance"] = inverse_positive(
                    variance.expand(module.raw_variance.shape).clone())
        return start

    def _escape_all_noise(self, objective, *, max_iter: int, seed: int, info: dict) -> None:
        """After a fit: if it explains everything as noise, fit again from
        :meth:`_small_noise_start` and keep the better optimum; warn if that is still the
        all-noise one (it may be the right answer: y could be noise)."""
        import warnings

        from bayeskit.training import fit_with_restarts, parameter_values

        if not self.explains_all_as_noise():
            return
        fit_with_restarts(self, objective, max_iter=max_iter, seed=seed, info=info,
                          starts=[parameter_values(self), self._small_noise_start()])
        if self.explains_all_as_noise():
            warnings.warn(
                f"{type(self).__name__} explains (almost) all of y's variance as noise "
                f"(noise variance >= {ALL_NOISE} of it), also from a start with small noise "
                "and short lengthscales; if y has structure, try another kernel (or more "
                "inducing points)", RuntimeWarning, stacklevel=3)

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

    def _noise_and_residual(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(noise_variance, y - m(X))`` for an objective, refusing non-finite values (a
        diverged optimiser, a NaN set by hand) with an error that says which, where the
        objective would otherwise be NaN."""
        noise, resid = self.noise_variance, self.y - self.prior_mean(self.X)
        if not all_finite(noise.detach()):
            raise NonFiniteError(f"noise_variance is {float(noise.detach())}: its parameter "
                                 "is not finite (an optimiser that diverged?); set a finite "
                                 "positive noise_variance")
        if not all_finite(resid.detach()):
            raise NonFiniteError("the prior mean at X has NaN or infinite values: the mean's "
                                 "parameters are not finite (an optimiser that diverged?); "
                                 "reset them to finite values")
        return noise, resid
