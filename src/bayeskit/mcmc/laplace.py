"""The binomial-regression posterior in closed form up to a constant, its Laplace
approximation, and independence Metropolis steps from it.

``log p(beta | y) = sum_i [y_i f_i - n_i log(1 + e^f_i)] - (beta - m)^T S (beta - m) / 2 +
const`` with ``f = o + Phi beta``. The posterior is log-concave, so Newton's method with
backtracking finds its mode; the precision there, ``H = Phi^T diag(n s (1 - s)) Phi + S``
(``s = sigmoid(f)``), gives the Gaussian ``N(mode, H^-1)``. Used as the proposal of an
independence Metropolis-Hastings step, it leaves the exact posterior invariant whatever the
quality of the approximation; between Gibbs sweeps it moves the chain across the posterior
in one step where the data-augmentation chain is autocorrelated (nearly separable data).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from bayeskit.distributions.gaussian import standard_normal
from bayeskit.errors import ArgumentTypeError, ShapeError
from bayeskit.validation import (
    as_int,
    as_scalar,
    check_cholesky_factor,
    check_generator,
    check_instance,
    check_tensor,
)

__all__ = ["binomial_log_posterior", "laplace_approximation", "independence_metropolis"]

log = logging.getLogger(__name__)


_DATA_ONLY = object()


def _checked(data, beta=_DATA_ONLY, name="beta", ndim=(1, 2)):
    """``data`` is a BinomialRegressionData; ``beta`` a finite tensor ``[..., D]`` of its
    dtype, returned as it is (no copy: the log posterior stays differentiable)."""
    from bayeskit.mcmc.gibbs import BinomialRegressionData  # gibbs imports this module

    check_instance(data, "data", BinomialRegressionData,
                   "a BinomialRegressionData (build it with BinomialRegressionData.create)")
    if beta is _DATA_ONLY:
        return None
    check_tensor(name, beta, min_dim=1)
    d = data.Phi.shape[1]
    if beta.dim() not in ndim or beta.shape[-1] != d:
        raise ShapeError(f"{name} must be {' or '.join(['[D]', '[C, D]'][k - 1] for k in ndim)}"
                         f" with D = {d} (one coefficient per column of Phi), got "
                         f"{tuple(beta.shape)}")
    if beta.dtype != data.Phi.dtype:
        raise ArgumentTypeError(f"{name} is {beta.dtype} but the data are {data.Phi.dtype}: "
                                f"pass {name}.to({data.Phi.dtype})")
    return beta


def binomial_log_posterior(data, beta: torch.Tensor) -> torch.Tensor:
    """``log p(beta | y)`` up to a constant, for ``beta: [..., D]``; returns ``[...]``.

    ``data`` is a :class:`bayeskit.mcmc.BinomialRegressionData`.

    Examples:
        >>> from bayeskit.mcmc import BinomialRegressionData
        >>> Phi = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
        >>> data = BinomialRegressionData.create(Phi, [0, 1], prior_precision=1.0)
        >>> float(binomial_log_posterior(data, torch.zeros(2, dtype=torch.float64)))
        -1.3862943611198906
    """
    return _log_posterior(data, _checked(data, beta))


def laplace_approximation(data, *, tol: float = 1e-20, max_iter: int = 100
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior mode ``[D]`` and the Cholesky factor ``L`` ``[D, D]`` of the precision
    there (``H = L L^T``), by Newton's method with backtracking from the prior mean,
    until the squared Newton decrement ``g^T H^-1 g`` is below ``tol``. After
    ``max_iter`` steps the last iterate is returned with a logged warning (as a proposal
    it need not be exact).

    Examples:
        >>> from bayeskit.mcmc import BinomialRegressionData
        >>> Phi = torch.tensor([[1.0, -1.0], [1.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> data = BinomialRegressionData.create(Phi, [0, 1, 1], prior_precision=1.0)
        >>> mode, L = laplace_approximation(data)
        >>> grad = torch.func.grad(lambda b: binomial_log_posterior(data, b))(mode)
        >>> bool(grad.abs().max() < 1e-10)
        True
    """
    _checked(data)
    tol = as_scalar(tol, "tol", low=0.0)
    max_iter = as_int(max_iter, "max_iter", positive=True)
    beta = data.prior_mean.clone()
    value = binomial_log_posterior(data, beta)
    for _ in range(max_iter):
        f = data.offset + data.Phi @ beta
        s = torch.sigmoid(f)
        grad = data.Phi.mT @ (data.y - data.n_trials * s) - data.prior_precision @ (
            beta - data.prior_mean)
        H = data.Phi.mT @ ((data.n_trials * s * (1 - s)).unsqueeze(-1) * data.Phi) \
            + data.prior_precision
        L = torch.linalg.cholesky(H)  # S is positive definite, so H is
        step = torch.cholesky_solve(grad.unsqueeze(-1), L).squeeze(-1)
        decrement = float(grad @ step)  # the Newton decrement squared
        if decrement <= tol:
            return beta, L
        t = 1.0
        while True:  # backtracking (Armijo): a full step can overshoot on separable data
            candidate = beta + t * step
            new = binomial_log_posterior(data, candidate)
            if new >= value + 0.25 * t * decrement:
                break
            t /= 2
            if t < 1e-10:  # no ascent left at this precision: the mode to rounding
                return beta, L
        beta, value = candidate, new
    log.warning("laplace_approximation: Newton decrement %.3g after %d steps", decrement,
                max_iter)
    return beta, L


def independence_metropolis(data, beta: torch.Tensor, log_post: torch.Tensor,
                            mode: torch.Tensor, precision_tril: torch.Tensor, steps: int,
                            generator: torch.Generator | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``steps`` independence Metropolis-Hastings steps for every chain, proposing from
    ``N(mode, (L L^T)^-1)``; ``beta: [C, D]`` with ``log_post: [C]`` its log posterior.
    Returns the new ``beta``, its log posterior and the acceptance count ``[C]``.

    The acceptance ratio is ``p(b') q(b) / (p(b) q(b'))`` with ``log q(b) = -|L^T (b -
    mode)|^2 / 2`` (constants cancel).

    Examples:
        >>> from bayeskit.mcmc import BinomialRegressionData
        >>> Phi = torch.tensor([[1.0, -1.0], [1.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> data = BinomialRegressionData.create(Phi, [0, 1, 1], prior_precision=1.0)
        >>> mode, L = laplace_approximation(data)
        >>> beta = torch.zeros(4, 2, dtype=torch.float64)  # 4 chains
        >>> beta, lp, accepted = independence_metropolis(
        ...     data, beta, binomial_log_posterior(data, beta), mode, L, 10,
        ...     generator=torch.Generator().manual_seed(0))
        >>> beta.shape, bool((accepted > 0).all())
        (torch.Size([4, 2]), True)
    """
    beta = _checked(data, beta, ndim=(2,))
    mode = _checked(data, mode, "mode", ndim=(1,))
    check_tensor("log_post", log_post, min_dim=1)
    check_cholesky_factor("precision_tril", precision_tril)
    if precision_tril.shape != beta.shape[-1:] * 2 or log_post.shape != beta.shape[:1]:
        raise ShapeError(f"for beta [C, D] = {tuple(beta.shape)}, precision_tril must be "
                         f"[D, D] and log_post [C]; got {tuple(precision_tril.shape)} and "
                         f"{tuple(log_post.shape)}")
    if not precision_tril.dtype == log_post.dtype == beta.dtype:
        raise ArgumentTypeError(f"precision_tril ({precision_tril.dtype}) and log_post "
                                f"({log_post.dtype}) must have the data's dtype {beta.dtype}")
    steps = as_int(steps, "steps", nonnegative=True)
    check_generator(generator, device=beta.device)

    return _independence_metropolis(data, beta, log_post, mode, precision_tril, steps,
                                    generator)


def _log_posterior(data, beta):
    f = data.offset + beta @ data.Phi.mT
    centred = beta - data.prior_mean
    s = data.prior_scale  # S = s I: the prior term without a [.., D] @ [D, D] product
    quadratic = centred @ data.prior_precision if s is None else s * centred
    return ((data.y * f - data.n_trials * F.softplus(f)).sum(-1)
            - 0.5 * (centred * quadratic).sum(-1))


def _independence_metropolis(data, beta, log_post, mode, precision_tril, steps, generator):
    """The steps without argument checks (the Gibbs loop calls this every sweep). All
    ``steps`` proposals are drawn and scored at once (one matrix product); only the
    accept/reject decisions run in sequence."""
    if steps == 0:
        return beta, log_post, torch.zeros_like(log_post)
    chains, d = beta.shape
    eps = standard_normal(d, steps * chains, dtype=beta.dtype, device=beta.device,
                          generator=generator)
    # proposal = mode + L^-T eps (one solve, every proposal a column), and
    # |L^T (proposal - mode)|^2 = |eps|^2
    proposals = mode + torch.linalg.solve_triangular(
        precision_tril.mT, eps, upper=True).mT.reshape(steps, chains, d)
    log_posts = _log_posterior(data, proposals)
    weights = log_posts + 0.5 * (eps * eps).sum(0).reshape(steps, chains)
    v = (beta - mode) @ precision_tril
    weight = log_post + 0.5 * (v * v).sum(-1)  # log p - log q of the current state
    log_u = torch.rand(steps, chains, dtype=beta.dtype, device=beta.device,
                       generator=generator).log()
    accepted = torch.zeros_like(log_post)
    for k in range(steps):  # the ratio is p(b') q(b) / (p(b) q(b')) = exp(w' - w)
        accept = log_u[k] < weights[k] - weight
        beta = torch.where(accept.unsqueeze(-1), proposals[k], beta)
        weight = torch.where(accept, weights[k], weight)
        log_post = torch.where(accept, log_posts[k], log_post)
        accepted += accept.to(beta.dtype)
    return beta, log_post, accepted
