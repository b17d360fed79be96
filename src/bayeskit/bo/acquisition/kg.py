"""Knowledge gradient (minimisation): Monte Carlo, discretised-exact and one-shot.

``KG(x) = E_{y ~ p(y | x, D_n)}[tau_n - tau_{n+1}]`` with ``tau = min_x' mu(x')`` (reference
03, Frazier et al. 2009). A fantasised outcome moves the posterior mean by
``sigma_tilde(x', x) Z`` (:class:`~bayeskit.gp.GPPosterior`), so each fantasy costs one
inner minimisation of ``mu_n(x') + sigma_tilde(x', x) Z`` and no refit.

- :func:`knowledge_gradient_mc`: the reference's estimator with common random numbers
  (antithetic pairs by default, or Gauss-Hermite nodes) and multi-start inner L-BFGS-B;
  differentiable in ``x`` through the envelope theorem.
- :class:`DiscreteKnowledgeGradient`: exact KG when the minimum is taken over a finite set
  of alternatives (plus the candidate itself); differentiable in ``x``.
- :class:`OneShotKnowledgeGradient`: the fantasy minimisers are optimised jointly with
  ``x`` (Balandat et al. 2020), any batch size ``q``.
"""

from __future__ import annotations

import math

import torch

from bayeskit.bo.acquisition.discrete_kg import knowledge_gradient_discrete
from bayeskit.bo.optim import (
    maximize_box,
    maximize_box_all,
    refine_lbfgsb,
    uniform_in_box,
)
from bayeskit.distributions.gaussian import fantasy_sigma, gauss_hermite
from bayeskit.errors import ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.gp.posterior import as_posterior
from bayeskit.validation import as_bounds, as_int, as_tensor, check_choice

__all__ = ["best_observed_inputs", "posterior_minimum", "fantasy_normals", "knowledge_gradient_mc",
           "DiscreteKnowledgeGradient", "OneShotKnowledgeGradient", "optimize_discrete_kg"]

F64 = torch.float64


def posterior_minimum(model, bounds, *, num_restarts: int = 8, raw_samples: int = 512,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
    """``(x*, tau_n)``: the minimiser ``[D]`` and minimum of the posterior mean in the box
    (multi-start L-BFGS-B; the training inputs are extra starts).

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.tensor([[-1.0], [0.0], [0.5], [1.5]], dtype=torch.float64)
        >>> gp = GPR(X, torch.sin(3 * X[:, 0]) + X[:, 0] ** 2 - 0.7 * X[:, 0], noise_variance=1e-3)
        >>> bounds = torch.tensor([[-1.0], [2.0]], dtype=torch.float64)  # [2, D]: lower, upper
        >>> x_star, tau = posterior_minimum(gp, bounds, generator=torch.Generator().manual_seed(0))
        >>> x_star.shape, round(tau, 4)
        (torch.Size([1]), -0.5673)
    """
    post = as_posterior(model)
    bounds = as_bounds(bounds)
    X_obs = post.train_inputs
    inside = X_obs[((X_obs >= bounds[0]) & (X_obs <= bounds[1])).all(-1)]
    with torch.no_grad():  # the few observed inputs with the lowest means are extra starts
        initial = inside[torch.argsort(post.mean(inside[None])[0])[:4]]
    x, v = maximize_box_all(lambda X: -post.mean(X[:, None, :])[:, 0], bounds,
                            num_restarts=num_restarts, raw_samples=raw_samples,
                            initial=initial if len(initial) else None, generator=generator)
    best = int(torch.argmax(v))
    return x[best], float(-v[best])


def fantasy_normals(num_fantasies: int, kind: str = "antithetic",
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal fantasy outcomes ``Z`` ``[M]`` and weights ``[M]`` summing to 1.

    ``"antithetic"``: M/2 draws and their negatives (the estimate is then never negative);
    ``"gauss-hermite"``: probabilists' Gauss-Hermite nodes (exact for polynomials of degree
    < 2M); ``"random"``: i.i.d. draws.
    """
    num_fantasies = as_int(num_fantasies, "num_fantasies", positive=True)
    check_choice(kind, "fantasies", ("antithetic", "gauss-hermite", "random"))
    if kind == "gauss-hermite":
        return gauss_hermite(num_fantasies)
    if kind == "antithetic":
        if num_fantasies % 2:
            raise ArgumentValueError("antithetic fantasies need an even num_fantasies")
        half = torch.randn(num_fantasies // 2, dtype=F64, generator=generator)
        z = torch.cat([half, -half])
    elif kind == "random":
        z = torch.randn(num_fantasies, dtype=F64, generator=generator)
    else:
        raise ArgumentValueError(f"unknown fantasy kind {kind!r}; use 'antithetic', "
                                 "'gauss-hermite' or 'random'")
    return z, torch.full((num_fantasies,), 1.0 / num_fantasies, dtype=F64)


def best_observed_inputs(model, limit: int = 256) -> torch.Tensor:
    """The observed inputs ``[min(N, limit), D]`` with the lowest posterior means: the
    alternatives a KGCP-style discretisation adds to the box's random points. Past a few
    hundred observations the others are unlikely fantasy minimisers (the box's random points
    and the posterior minimiser stay in the set) and would make every KG evaluation O(N): at
    N = 20,000 they were half of a sparse-GP KG iteration (bench_kg.py --part scale).

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None]
        >>> gp = GPR(X, (X[:, 0] - 0.3) ** 2, noise_variance=1e-4)
        >>> best_observed_inputs(gp, limit=3)[:, 0].tolist()
        [0.25, 0.5, 0.0]
    """
    post = as_posterior(model)
    limit = as_int(limit, "limit", positive=True)
    X = post.train_inputs
    if X.shape[0] <= limit:
        return X
    with torch.no_grad():
        means = torch.cat([post.mean(chunk) for chunk in X.split(4096)])
    return X[torch.argsort(means)[:limit]]


def _check_candidates(x, dim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = as_tensor(x, "x", dtype=F64)
    x = x.to(F64)
    if x.dim() == 1:
        x = x[None] if dim > 1 or x.shape[0] == 1 else x[:, None]
    if x.dim() != 2 or x.shape[-1] != dim:
        raise ShapeError(f"candidates must be [C, {dim}], got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ShapeError(f"candidates must be [C >= 1, {dim}], got {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise NonFiniteError("candidates must be finite")
    return x


def knowledge_gradient_mc(model, x, bounds, *, num_fantasies: int = 64,
                          fantasies: str = "antithetic", generator: torch.Generator | None = None,
                          num_restarts: int = 4, raw_samples: int = 256,
                          tau: tuple[torch.Tensor, float] | None = None,
                          return_details: bool = False):
    """Monte Carlo KG at candidates ``x`` ``[C, D]`` (or ``[D]``): ``[C]`` estimates.

    For each candidate and fantasy ``Z_m`` the fantasised mean
    ``mu_n + sigma_tilde(., x) Z_m`` is minimised by L-BFGS-B from the best ``num_restarts``
    of ``raw_samples`` shared raw points, the candidate itself and ``x*_n``; all
    ``C * M * num_restarts`` problems run as one vectorised optimisation. The same ``Z``
    (common random numbers) serve every candidate, so the estimate is smooth in ``x``;
    if ``x`` requires grad, the result is differentiable (envelope theorem).

    With ``return_details=True`` also returns a dict with the standard error ``se`` ``[C]``,
    ``tau_n``, the fantasy minima ``tau_next`` ``[C, M]``, minimisers ``[C, M, D]`` and ``z``.

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.tensor([[-1.0], [0.0], [0.5], [1.5]], dtype=torch.float64)
        >>> gp = GPR(X, torch.sin(3 * X[:, 0]) + X[:, 0] ** 2 - 0.7 * X[:, 0], noise_variance=1e-3)
        >>> bounds = torch.tensor([[-1.0], [2.0]], dtype=torch.float64)  # [2, D]: lower, upper
        >>> candidates = torch.tensor([[0.1], [1.0]], dtype=torch.float64)  # [C, D]
        >>> kg = knowledge_gradient_mc(gp, candidates, bounds, num_fantasies=32,
        ...                            generator=torch.Generator().manual_seed(0))
        >>> kg.shape
        torch.Size([2])
    """
    post = as_posterior(model)
    bounds = as_bounds(bounds)
    x = _check_candidates(x, post.dim)
    C, D = x.shape
    x_star, tau_n = tau if tau is not None else posterior_minimum(post, bounds,
                                                                  generator=generator)
    z, w = fantasy_normals(num_fantasies, fantasies, generator)
    M = z.shape[0]
    xd = x.detach()
    raw = torch.cat([uniform_in_box(raw_samples, bounds, generator=generator),
                     x_star[None]])
    with torch.no_grad():
        raw_vals = (post.mean(raw[None])[:, :, None]
                    + post.sigma_tilde(raw.expand(C, -1, -1), xd[:, None, :]) * z)  # [C, R, M]
    k = min(num_restarts, raw.shape[0])
    top = torch.topk(-raw_vals, k, dim=1).indices.permute(0, 2, 1)  # [C, M, k]
    starts = torch.cat([raw[top], xd[:, None, None, :].expand(C, M, 1, D)], 2)  # [C, M, k+1, D]
    K = starts.shape[2]

    def neg_fantasy_mean(flat: torch.Tensor) -> torch.Tensor:  # [C*M*K, D] -> [C*M*K]
        xp = flat.reshape(C, M * K, D)
        st = post.sigma_tilde(xp, xd[:, None, :])[..., 0].reshape(C, M, K)
        val = post.mean(xp).reshape(C, M, K) + st * z[None, :, None]
        return -val.reshape(-1)

    xs, vs = refine_lbfgsb(neg_fantasy_mean, starts.reshape(-1, D), bounds)
    vals = -vs.reshape(C, M, K)
    xs = xs.reshape(C, M, K, D)
    with torch.no_grad():  # x*_n is always feasible: tau_{n+1} <= mu_n(x*) + s(x*) Z
        s_star = post.sigma_tilde(x_star.expand(C, 1, D), xd[:, None, :])[:, 0, 0]  # [C]
    at_star = tau_n + s_star[:, None] * z  # [C, M]
    best = vals.argmin(-1)
    x_min = torch.gather(xs, 2, best[..., None, None].expand(C, M, 1, D))[:, :, 0]
    use_star = at_star < vals.min(-1).values
    x_min = torch.where(use_star[..., None], x_star.expand(C, M, D), x_min)
    # re-evaluate at the (detached) minimisers: value and, via autograd, the gradient in x
    st = post.sigma_tilde(x_min, x[:, None, :])[..., 0]  # [C, M]
    tau_next = post.mean(x_min) + st * z
    gains = tau_n - tau_next
    kg = (gains * w).sum(-1)
    if not return_details:
        return kg
    g = gains.detach()
    if fantasies == "antithetic":
        pairs = 0.5 * (g[:, : M // 2] + g[:, M // 2:])
        se = pairs.std(-1) / math.sqrt(pairs.shape[-1]) if M > 2 else torch.full((C,), math.nan)
    elif fantasies == "random":
        se = g.std(-1) / math.sqrt(M) if M > 1 else torch.full((C,), math.nan)
    else:
        se = torch.zeros(C, dtype=F64)
    return kg, {"se": se, "tau_n": tau_n, "x_star": x_star, "tau_next": tau_next.detach(),
                "minimisers": x_min.detach(), "z": z}


class DiscreteKnowledgeGradient:
    """Exact KG with the minimum taken over fixed ``alternatives`` ``[A, D]`` plus the
    candidate itself (Frazier et al. 2009; "KGCP" when the alternatives are the observed
    inputs). On a fine grid of a low-dimensional box it is the continuous KG up to the grid
    resolution. Call with ``X`` ``[B, 1, D]`` (or ``[B, D]``) -> ``[B]``, differentiable.

    Examples:
        >>> X = torch.linspace(-1, 2, 6, dtype=torch.float64)[:, None]
        >>> from bayeskit.gp import GPR
        >>> grid = torch.linspace(-1, 2, 101)[:, None]
        >>> kg = DiscreteKnowledgeGradient(GPR(X, X[:, 0] ** 2), grid)
        >>> bool((kg(torch.rand(4, 1, 1, dtype=torch.float64)) >= 0).all())
        True
    """

    def __init__(self, model, alternatives, *, include_candidate: bool = True):
        self.post = as_posterior(model)
        alt = as_tensor(alternatives, "alternatives", dtype=self.post.dtype)
        if alt.dim() != 2 or alt.shape[-1] != self.post.dim or alt.shape[0] == 0:
            raise ShapeError(f"alternatives must be [A, {self.post.dim}], got {tuple(alt.shape)}")
        self.alternatives = self.post.check_inputs(alt, "alternatives")
        self.include_candidate = include_candidate
        with torch.no_grad():
            self.alt_mean = self.post.mean(self.alternatives)  # [A]

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        post = self.post
        X = post.check_inputs(X)
        X = X[:, None, :] if X.dim() == 2 else X
        if X.dim() != 3 or X.shape[1] != 1:
            raise ShapeError(f"DiscreteKnowledgeGradient scores one point per batch: X must be "
                             f"[B, 1, D], got {tuple(X.shape)}")
        var_x = post.variance(X)[:, 0]  # k_n(x, x): [B]
        cross = post.covariance(self.alternatives, X)[..., 0]  # k_n(alt, x): [B, A]
        mean = self.alt_mean.expand(X.shape[0], -1)
        if self.include_candidate:
            cross = torch.cat([cross, var_x[:, None]], 1)
            mean = torch.cat([mean, post.mean(X)], 1)
        # sigma_tilde = k_n(alt, x) / sqrt(k_n(x, x) + noise): one appended Cholesky row
        st = fantasy_sigma(cross[..., None], var_x[:, None, None], post.noise)[..., 0]
        return knowledge_gradient_discrete(mean, st)


class OneShotKnowledgeGradient:
    """One-shot KG for ``q`` points: maximise, jointly over ``x`` ``[q, D]`` and one
    minimiser ``x'_m`` per fantasy,

        tau_n - sum_m w_m [mu_n(x'_m) + sigma_tilde(x'_m, x) Z_m],   Z_m ~ N(0, I_q),

    a lower bound on the MC KG of ``x`` for these ``Z`` that is tight at the inner optima.
    :meth:`optimize` starts from raw candidates scored by the discretised KG (q = 1) or the
    bound itself, with each ``x'_m`` started at the best raw alternative for its fantasy.

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.linspace(-1, 2, 6, dtype=torch.float64)[:, None]
        >>> acq = OneShotKnowledgeGradient(GPR(X, X[:, 0] ** 2), [[-1.0], [2.0]], num_fantasies=8)
        >>> x, value = acq.optimize(generator=torch.Generator().manual_seed(0))
        >>> x.shape, bool(value >= 0)
        (torch.Size([1, 1]), True)
    """

    def __init__(self, model, bounds, *, num_fantasies: int = 16, q: int = 1,
                 fantasies: str = "antithetic", generator: torch.Generator | None = None,
                 tau: tuple[torch.Tensor, float] | None = None):
        q = as_int(q, "q", positive=True)
        num_fantasies = as_int(num_fantasies, "num_fantasies", positive=True)
        self.post = as_posterior(model)
        self.bounds = as_bounds(bounds)
        if self.bounds.shape[1] != self.post.dim:
            raise ShapeError(f"bounds are for {self.bounds.shape[1]} dimensions, the model has "
                             f"{self.post.dim}")
        self.q = q
        if q == 1:
            self.z, self.w = fantasy_normals(num_fantasies, fantasies, generator)
            self.z = self.z[:, None]
        else:  # antithetic pairs of q-vectors
            if fantasies == "antithetic" and num_fantasies % 2:
                raise ArgumentValueError("antithetic fantasies need an even num_fantasies")
            check_choice(fantasies, "fantasies (for q > 1)", ("antithetic", "random"))
            half = torch.randn(num_fantasies // 2, q, dtype=F64, generator=generator)
            self.z = torch.cat([half, -half]) if fantasies == "antithetic" else \
                torch.randn(num_fantasies, q, dtype=F64, generator=generator)
            self.w = torch.full((self.z.shape[0],), 1.0 / self.z.shape[0], dtype=F64)
        self.x_star, self.tau_n = tau if tau is not None else posterior_minimum(
            self.post, self.bounds, generator=generator)

    @property
    def num_fantasies(self) -> int:
        return self.z.shape[0]

    def objective(self, block: torch.Tensor) -> torch.Tensor:
        """``block`` ``[R, q + M, D]`` (candidates then fantasy minimisers) -> ``[R]``."""
        x, xf = block[:, : self.q], block[:, self.q:]
        st = self.post.sigma_tilde(xf, x)  # [R, M, q]
        val = self.post.mean(xf) + (st * self.z).sum(-1)
        return self.tau_n - (val * self.w).sum(-1)

    def _inner_starts(self, x: torch.Tensor, alt: torch.Tensor) -> torch.Tensor:
        """For candidates ``x`` ``[R, q, D]``, the best alternative of each fantasy."""
        with torch.no_grad():
            st = self.post.sigma_tilde(alt.expand(x.shape[0], -1, -1), x)  # [R, A, q]
            vals = self.post.mean(alt[None])[..., None] + st @ self.z.T  # [R, A, M]
            best = vals.argmin(1)  # [R, M]
        return alt[best]

    def optimize(self, *, num_restarts: int = 4, raw_samples: int = 256,
                 num_alternatives: int = 256, generator: torch.Generator | None = None,
                 max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        """Maximise the one-shot objective; returns ``(x [q, D], value [])``."""
        bounds, q = self.bounds, self.q
        alt = torch.cat([uniform_in_box(num_alternatives, bounds, generator=generator),
                         best_observed_inputs(self.post), self.x_star[None]])
        raw = uniform_in_box(raw_samples, bounds, (q,), generator)
        with torch.no_grad():
            if q == 1:
                scores = DiscreteKnowledgeGradient(self.post, alt)(raw)
            else:
                scores = torch.cat([self.objective(torch.cat(
                    [r, self._inner_starts(r, alt)], 1)) for r in raw.split(256)])
        top = raw[torch.topk(scores, min(num_restarts, raw_samples)).indices]
        starts = torch.cat([top, self._inner_starts(top, alt)], 1)
        xs, vs = refine_lbfgsb(self.objective, starts, bounds, max_iter=max_iter)
        best = int(torch.argmax(vs))
        return xs[best, :q].detach(), vs[best].detach()


def optimize_discrete_kg(model, bounds, *, num_alternatives: int | None = None,
                         raw_samples: int | None = None, num_restarts: int = 3,
                         generator: torch.Generator | None = None,
                         tau: tuple[torch.Tensor, float] | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise the discretised exact KG (:class:`DiscreteKnowledgeGradient`) over the box:
    ``(x [1, D], value [])``.

    In 1-D the alternatives and raw candidates are even grids (401 and 101 points: on the
    reference's problem the result is within 1e-5 of the 3001-point grid maximum in 10 of 10
    seeds); above, ``num_alternatives`` uniform points plus the observed inputs and the
    current posterior minimiser ``x*_n`` (a KGCP-style discretisation, a lower bound).

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.tensor([[-1.0], [0.0], [0.5], [1.5]], dtype=torch.float64)
        >>> gp = GPR(X, torch.sin(3 * X[:, 0]) + X[:, 0] ** 2 - 0.7 * X[:, 0], noise_variance=1e-3)
        >>> bounds = torch.tensor([[-1.0], [2.0]], dtype=torch.float64)  # [2, D]: lower, upper
        >>> x, value = optimize_discrete_kg(gp, bounds)
        >>> x.shape, bool(value >= 0)
        (torch.Size([1, 1]), True)
    """
    post = as_posterior(model)
    bounds = as_bounds(bounds)
    if num_alternatives is not None:
        num_alternatives = as_int(num_alternatives, "num_alternatives", positive=True)
    if raw_samples is not None:
        raw_samples = as_int(raw_samples, "raw_samples", positive=True)
    lo, hi = bounds[0], bounds[1]
    if post.dim == 1:
        alt = torch.linspace(0, 1, num_alternatives or 401, dtype=F64)[:, None] * (hi - lo) + lo
        raw = torch.linspace(0, 1, raw_samples or 101, dtype=F64)[:, None, None] * (hi - lo) + lo
    else:
        x_star = (tau if tau is not None else posterior_minimum(post, bounds,
                                                                generator=generator))[0]
        alt = torch.cat([uniform_in_box(num_alternatives or 1024, bounds, generator=generator),
                         best_observed_inputs(post), x_star[None]])
        raw = uniform_in_box(raw_samples or 256, bounds, (1,), generator)
    acq = DiscreteKnowledgeGradient(post, alt)
    return maximize_box(acq, bounds, shape=(1,), raw=raw, num_restarts=num_restarts,
                        generator=generator)
