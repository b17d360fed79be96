"""The one posterior type every GP model returns (the model contract, as in BoTorch).

``GPR.posterior()``, ``SGPR.posterior()`` and ``SVGP.posterior()`` all return a
:class:`GPPosterior`: the (approximate) posterior process ``q(f)``, frozen (hyperparameters
detached) and differentiable in its inputs, in one whitened sparse form

    mean(x)     = m(x) + A(x)^T f
    cov(x, x')  = k(x, x') - A(x)^T A(x') + (S^T A(x))^T (S^T A(x')),   A(x) = L^-1 k(Z, x)

with ``L L^T = K_ZZ`` (plus the noise for the exact GP, whose ``S`` is absent). Every
identity is :func:`bayeskit.distributions.gaussian.conditional`. Acquisitions and the BO loop
see only this type, so every acquisition works on every model.

Observing new points conditions the process exactly and returns the same form again (so
conditioning can be repeated at no growing cost): for the exact GP by appending rows to ``L``
(:func:`~bayeskit.distributions.gaussian.append_observations`); for sparse posteriors by
appending the new inputs to ``Z`` (``u' = [u; f(X_c)]``, whose whitened ``q`` is ``q(v)``
padded with ``N(0, I)``: the prior conditional of ``f(X_c)`` given ``u``) and updating
``q(v')`` by a rank-q Cholesky update
(:func:`~bayeskit.distributions.gaussian.condition_whitened`), which is the Gaussian process
``q(f)`` conditioned on the observations (so a sparse model with ``Z = X`` fantasises
exactly like the exact GP). ``inducing="fixed"`` instead keeps ``Z`` and lets the
observations act on ``u`` through ``K_uu^-1 k(Z, x)`` only: what refitting an SGPR on the
augmented data with ``Z`` and the hyperparameters fixed gives (for an SVGP with a Gaussian
likelihood, the online variational conditioning of Maddox et al. 2021).
"""

from __future__ import annotations

import copy

import torch
from torch.distributions import MultivariateNormal

from bayeskit.distributions.gaussian import (
    append_observations,
    condition_whitened,
    conditional,
    cross_covariance,
    fantasy_sigma,
    sample_mvn,
)
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.gp.kernels import Kernel
from bayeskit.linalg import cholesky_append, jittered_cholesky, solve_lower
from bayeskit.validation import (
    as_int,
    as_scalar,
    as_tensor,
    check_choice,
    check_generator,
    check_instance,
    check_square,
    check_tensor,
)

__all__ = ["GPPosterior", "as_posterior"]


def _detach(t):
    return None if t is None else t.detach()


def _frozen(module):
    return None if module is None else copy.deepcopy(module).requires_grad_(False)


def _check_parts(Z, L, f, q_sqrt) -> None:
    """The posterior's tensors: ``Z [M, D]``, ``L [M, M]``, ``f [..., M]`` (and ``q_sqrt
    [..., M, M]``) of matching sizes; ``Z``, ``f`` and the factors' diagonals finite (O(M D):
    conditioning builds a posterior per call, so the M x M factors are not read in full)."""
    check_tensor("Z", Z, min_dim=2)
    check_tensor("f", f, min_dim=1)
    M = check_square("L", L)
    check_tensor("L's diagonal", L.diagonal(dim1=-2, dim2=-1))
    if q_sqrt is not None:
        check_square("q_sqrt", q_sqrt)
        check_tensor("q_sqrt's diagonal", q_sqrt.diagonal(dim1=-2, dim2=-1))
    sizes = {"Z": Z.shape[-2], "L": M, "f": f.shape[-1],
             **({} if q_sqrt is None else {"q_sqrt": q_sqrt.shape[-1]})}
    if len(set(sizes.values())) != 1 or Z.shape[-2] == 0:
        raise ShapeError(f"the posterior's parts must describe the same M > 0 points, got "
                         f"sizes {sizes}")


class GPPosterior:
    """Posterior process of a GP model (see the module docstring).

    Inputs of every method are ``[..., Q, D]`` (any batch shape), returned values
    ``[..., Q]`` (means, variances) or ``[..., Q, Q2]`` (covariances); after
    :meth:`fantasize` a leading fantasy dimension ``S`` comes first. Everything is
    differentiable in the inputs (not in the hyperparameters, which are frozen).

    Attributes:
        train_inputs: ``[N, D]`` the points the model was conditioned on (the training
            inputs; an SVGP's inducing inputs), used e.g. as optimiser starts.
        noise: the Gaussian observation-noise variance (``None`` for non-Gaussian
            likelihoods: :meth:`predict_y`-style noise and fantasies then raise).
        dim: ``D``. dtype: the model's dtype.

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.linspace(-1, 2, 8, dtype=torch.float64)[:, None]
        >>> post = GPR(X, torch.sin(3 * X[:, 0]), noise_variance=1e-3).posterior()
        >>> post.mean(torch.zeros(5, 3, 1, dtype=torch.float64)).shape
        torch.Size([5, 3])
        >>> post.rsample(X[:4], (2,), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 4])
    """

    def __init__(self, kernel, mean_function, Z: torch.Tensor, L: torch.Tensor,
                 f: torch.Tensor, *, q_sqrt: torch.Tensor | None = None,
                 noise: torch.Tensor | None = None, train_inputs: torch.Tensor | None = None):
        self.kernel = check_instance(kernel, "kernel", Kernel, "a bayeskit.gp Kernel")
        self.mean_function = mean_function if mean_function is None else check_instance(
            mean_function, "mean_function", torch.nn.Module, "a mean function (a torch.nn.Module)")
        _check_parts(Z, L, f, q_sqrt)
        self.Z, self.L, self.f, self.q_sqrt = Z, L, f, q_sqrt
        self.noise = None if noise is None else noise.detach()
        self.train_inputs = Z if train_inputs is None else train_inputs
        self.dim = Z.shape[-1]
        self.dtype = L.dtype

    @classmethod
    def from_model_parts(cls, kernel, mean_function, Z, L, f, *, q_sqrt=None, noise=None,
                         train_inputs=None) -> GPPosterior:
        """Build a frozen posterior from a model's parts (kernel and mean function are
        deep-copied with gradients off; tensors detached)."""
        return cls(_frozen(kernel), _frozen(mean_function), _detach(Z), _detach(L),
                   _detach(f), q_sqrt=_detach(q_sqrt), noise=noise,
                   train_inputs=_detach(train_inputs))

    # --- inputs -------------------------------------------------------------------------
    def check_inputs(self, X, name: str = "X") -> torch.Tensor:
        """``X`` as ``[..., Q, D]`` in the posterior's dtype; tensors keep their autograd
        graph (acquisitions differentiate through them)."""
        if not isinstance(X, torch.Tensor):
            X = as_tensor(X, name, dtype=self.dtype)
        elif X.dtype != self.dtype:
            if not (X.is_floating_point() or X.dtype in (torch.int32, torch.int64)):
                X = as_tensor(X, name, dtype=self.dtype)
            X = X.to(self.dtype)
        if X.dim() == 1:
            X = X[:, None] if self.dim == 1 else X[None]
        if X.dim() < 2 or X.shape[-1] != self.dim:
            raise ShapeError(f"{name} must be [..., Q, {self.dim}], got {tuple(X.shape)}")
        if X.numel() and not bool(torch.isfinite(X.detach()).all()):
            raise NonFiniteError(f"{name} contains NaN or infinite values")
        return X

    # --- the base form ---------------------------------------------------------------------
    def _prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        if self.mean_function is None:
            return torch.zeros(X.shape[:-1], dtype=X.dtype, device=X.device)
        return self.mean_function(X).to(X.dtype)

    def _base(self, X: torch.Tensor, X2: torch.Tensor | None, full: bool):
        """Variance (``full=False``) or covariance ``k_n(X, X2)`` of the base form."""
        Kzx = self.kernel(self.Z, X)
        if X2 is None:
            Knn = self.kernel(X) if full else self.kernel.diag(X)
            zero = torch.zeros(self.L.shape[-1], dtype=self.dtype, device=X.device)
            return conditional(Kzx, self.L, Knn, zero, q_sqrt=self.q_sqrt, full_cov=full,
                               white=True)[1]
        return cross_covariance(Kzx, self.kernel(self.Z, X2), self.L, self.kernel(X, X2),
                                q_sqrt=self.q_sqrt)

    def _shift(self, X: torch.Tensor) -> torch.Tensor:
        """``A(X)^T f``: ``[..., Q]``, or ``[S, ..., Q]`` with a fantasy dimension."""
        Kzx = self.kernel(self.Z, X)
        A = solve_lower(self.L, Kzx, names=("the posterior's factor", "K(Z, X)"))
        if self.f.dim() == 1:
            return (A * self.f[:, None]).sum(-2)
        return torch.einsum("sm,...mq->s...q", self.f, A)

    # --- the contract ----------------------------------------------------------------------
    def mean(self, X) -> torch.Tensor:
        """Posterior mean ``[..., Q]``."""
        X = self.check_inputs(X)
        return self._prior_mean(X) + self._shift(X)

    def variance(self, X) -> torch.Tensor:
        """Posterior variance of ``f`` ``[..., Q]`` (clamped at 0)."""
        return self._base(self.check_inputs(X), None, False)

    def mean_and_variance(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, variance)``, each ``[..., Q]`` (one projection of ``X`` for both)."""
        X = self.check_inputs(X)
        if self.f.dim() != 1:
            return self.mean(X), self.variance(X)
        mean, var = conditional(self.kernel(self.Z, X), self.L, self.kernel.diag(X), self.f,
                                q_sqrt=self.q_sqrt, white=True)
        return self._prior_mean(X) + mean, var

    def covariance(self, X, X2=None) -> torch.Tensor:
        """Posterior covariance ``k_n(X, X2)`` ``[..., Q, Q2]`` (``X2`` defaults to ``X``)."""
        X = self.check_inputs(X)
        X2 = None if X2 is None else self.check_inputs(X2, "X2")
        return self._base(X, X2, True)

    def predictive(self, X, *, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (or covariance) of new *observations* ``y`` at ``X``: the
        latent ones plus the Gaussian noise."""
        noise = self._require_noise("predictive")
        X = self.check_inputs(X)
        if full_cov:
            cov = self.covariance(X)
            eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
            return self.mean(X), cov + noise * eye
        mean, var = self.mean_and_variance(X)
        return mean, var + noise

    def distribution(self, X) -> MultivariateNormal:
        """The joint posterior of ``f(X)`` as ``torch.distributions.MultivariateNormal``
        (a relative jitter keeps the covariance factorisable)."""
        X = self.check_inputs(X)
        mean, cov = self.mean(X), self.covariance(X)
        L, _ = jittered_cholesky(cov)
        return MultivariateNormal(mean, scale_tril=L)

    def rsample(self, X, sample_shape: tuple[int, ...] = (), *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Joint draws of ``f(X)``: ``[*sample_shape, ..., Q]`` (reparameterised)."""
        check_generator(generator)
        X = self.check_inputs(X)
        mean, cov = self.mean(X), self.covariance(X)
        L, _ = jittered_cholesky(cov)
        return sample_mvn(mean, scale_tril=L, sample_shape=tuple(sample_shape),
                          generator=generator)

    def fantasy_sigma(self, X, Xc) -> torch.Tensor:
        """``sigma_tilde(X, X_c)`` ``[..., Q, q]``: how the mean at ``X`` ``[..., Q, D]``
        moves per standardised outcome observed at ``X_c`` ``[..., q, D]``
        (:func:`~bayeskit.distributions.gaussian.fantasy_sigma`)."""
        noise = self._require_noise("fantasies")
        X, Xc = self.check_inputs(X), self.check_inputs(Xc, "Xc")
        cross = self.covariance(X, Xc)
        if Xc.shape[-2] == 1:
            var = self.variance(Xc)[..., None, :]
        else:
            var = self.covariance(Xc)
        return fantasy_sigma(cross, var, noise)

    sigma_tilde = fantasy_sigma

    def condition_on_observations(self, Xc, yc, *, noise=None,
                                  inducing: str = "append") -> GPPosterior:
        """The posterior after also observing ``yc`` ``[q]`` (or ``[S, q]``: ``S`` outcome
        vectors at once) at ``Xc`` ``[q, D]`` with Gaussian noise (default the model's).

        ``inducing`` (sparse posteriors only): ``"append"`` (default) conditions the process
        exactly, adding ``Xc`` to the inducing inputs; ``"fixed"`` keeps them, as an SGPR
        refitted on the augmented data with fixed ``Z`` and hyperparameters would (see the
        module docstring). Either way the result is a posterior of the same form, O(M^2 q)
        for the update plus O(M^3) for the new factor."""
        inducing = check_choice(inducing, "inducing", ("append", "fixed"))
        Xc = self.check_inputs(Xc, "Xc")
        if Xc.dim() != 2:
            raise ShapeError(f"Xc must be [q, {self.dim}], got {tuple(Xc.shape)}")
        yc = as_tensor(yc, "yc", dtype=self.dtype, ndim=(1, 2)) \
            if not isinstance(yc, torch.Tensor) else yc.to(self.dtype)
        if yc.shape[-1] != Xc.shape[0] or yc.dim() not in (1, 2):
            raise ShapeError(f"yc must be [{Xc.shape[0]}] or [S, {Xc.shape[0]}], got "
                             f"{tuple(yc.shape)}")
        if not bool(torch.isfinite(yc.detach()).all()):
            raise NonFiniteError("yc contains NaN or infinite values")
        if self.f.dim() == 2 and yc.dim() == 2 and yc.shape[0] not in (1, self.f.shape[0]):
            raise ShapeError(f"this posterior already carries {self.f.shape[0]} fantasies: yc "
                             f"must be [{Xc.shape[0]}] or [{self.f.shape[0]}, {Xc.shape[0]}], "
                             f"got {tuple(yc.shape)}")
        noise = self._require_noise("conditioning") if noise is None else torch.tensor(
            as_scalar(noise, "noise", positive=True), dtype=self.dtype)
        resid = yc - self._prior_mean(Xc)
        inputs = torch.cat([self.train_inputs, Xc])
        if self.q_sqrt is None:
            # exact form: extend the Cholesky factor of K + noise I by the new rows
            eye = torch.eye(Xc.shape[0], dtype=self.dtype, device=Xc.device)
            L_new, f_new = append_observations(self.L, self.f, self.kernel(self.Z, Xc),
                                               self.kernel(Xc) + noise * eye, resid)
            return GPPosterior(self.kernel, self.mean_function, torch.cat([self.Z, Xc]),
                               L_new, f_new, noise=self.noise, train_inputs=inputs)
        Kzc = self.kernel(self.Z, Xc)
        if inducing == "fixed":
            B = torch.linalg.solve_triangular(self.L, Kzc, upper=False)
            f_new, S_new = condition_whitened(self.f, self.q_sqrt, B.mT,
                                              resid - self.f @ B, noise)
            return GPPosterior(self.kernel, self.mean_function, self.Z, self.L, f_new,
                               q_sqrt=S_new, noise=self.noise, train_inputs=inputs)
        # chol(K_Z'Z') for Z' = [Z; Xc] = [[L, 0], [B^T, D]]; a point at an inducing input
        # has a zero Schur complement, hence the jitter
        m, q = self.L.shape[-1], Xc.shape[0]
        L_new = cholesky_append(self.L, Kzc, self.kernel(Xc), jitter=True)
        H = L_new[m:]  # [B^T, D]: f(Xc) in the whitened coordinates of Z'
        S_pad = torch.block_diag(self.q_sqrt, torch.eye(q, dtype=self.dtype, device=Xc.device))
        f_pad = torch.cat([self.f, self.f.new_zeros(*self.f.shape[:-1], q)], -1)
        f_new, S_new = condition_whitened(f_pad, S_pad, H, resid - self.f @ H[:, :m].mT,
                                          noise)
        return GPPosterior(self.kernel, self.mean_function, torch.cat([self.Z, Xc]), L_new,
                           f_new, q_sqrt=S_new, noise=self.noise, train_inputs=inputs)

    def fantasize(self, Xc, num_fantasies: int, *,
                  generator: torch.Generator | None = None) -> GPPosterior:
        """The posterior conditioned on ``num_fantasies`` joint draws of noisy outcomes at
        ``Xc`` ``[q, D]``: its means carry a leading fantasy dimension ``[S, ..., Q]``."""
        S = as_int(num_fantasies, "num_fantasies", positive=True)
        Xc = self.check_inputs(Xc, "Xc")
        mean, cov = self.predictive(Xc, full_cov=True)
        L, _ = jittered_cholesky(cov)
        y = sample_mvn(mean, scale_tril=L, sample_shape=(S,), generator=generator)
        if y.dim() != 2:
            raise ShapeError("fantasize takes Xc [q, D] of a posterior without fantasies")
        return self.condition_on_observations(Xc, y)

    def _require_noise(self, what: str) -> torch.Tensor:
        if self.noise is None:
            raise ArgumentValueError(
                f"{what} need a Gaussian observation noise; this posterior's likelihood is "
                "not Gaussian (use a Gaussian likelihood or only the latent f)")
        return self.noise


def as_posterior(model) -> GPPosterior:
    """``model`` itself if it is a :class:`GPPosterior`, else ``model.posterior()`` (any
    model that follows the contract: GPR, SGPR, SVGP).

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None]
        >>> post = as_posterior(GPR(X, torch.sin(X[:, 0]), noise_variance=0.01))
        >>> type(post).__name__, as_posterior(post) is post
        ('GPPosterior', True)
    """
    if isinstance(model, GPPosterior):
        return model
    make = getattr(model, "posterior", None)
    post = make() if callable(make) else None
    if not isinstance(post, GPPosterior):
        raise ArgumentTypeError(f"expected a GP model with a posterior() method (GPR, SGPR, "
                                f"SVGP) or a GPPosterior, got {type(model).__name__}")
    return post
