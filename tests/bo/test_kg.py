"""Posterior fantasies, Monte Carlo / discrete / one-shot KG, log-EI and UCB."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from bayeskit.bo import (
    DiscreteKnowledgeGradient,
    LogExpectedImprovement,
    OneShotKnowledgeGradient,
    UpperConfidenceBound,
    knowledge_gradient_mc,
    optimize_discrete_kg,
    posterior_minimum,
)
from bayeskit.bo.acquisition.analytic import log_h
from bayeskit.bo.test_functions import reference_1d
from bayeskit.gp import GPR, SquaredExponential

F64 = torch.float64
BOUNDS = torch.tensor([[-1.0], [2.0]], dtype=F64)


def reference_model(seed=0, n=10, noise=0.1):
    """The reference's setting: f(x) = sin(3x) + x^2 - 0.7x, n noisy points, type-II ML."""
    f = reference_1d()
    g = torch.Generator().manual_seed(seed)
    X = -1 + 3 * torch.rand(n, 1, dtype=F64, generator=g)
    y = f(X) + noise * torch.randn(n, dtype=F64, generator=g)
    return GPR(X, y).fit(restarts=2)


@pytest.fixture(scope="module")
def model():
    return reference_model()


def test_posterior_matches_gpr_and_fantasy_matches_conditioning(model):
    post = model.posterior()
    Xq = torch.linspace(-1, 2, 7, dtype=F64)[:, None]
    mean, var = model.predict_f(Xq)
    m2, v2 = post.mean_and_variance(Xq)
    assert torch.allclose(m2, mean, atol=1e-12) and torch.allclose(v2, var, atol=1e-12)
    # fantasised mean = mean of the model conditioned on the fantasy (via cholesky_append)
    for Xc in (torch.tensor([[0.1]], dtype=F64), torch.tensor([[0.1], [1.3]], dtype=F64)):
        z = torch.tensor([0.7, -1.2][: len(Xc)], dtype=F64)
        mc, Sc = model.predict_y(Xc, full_cov=True)
        y_fant = mc + torch.linalg.cholesky(Sc) @ z
        conditioned = model.condition_on_observations(Xc, y_fant)
        expected, _ = conditioned.predict_f(Xq)
        got = post.mean(Xq) + post.sigma_tilde(Xq, Xc) @ z
        assert torch.allclose(got, expected, atol=1e-10)


def test_posterior_minimum(model):
    x, tau = posterior_minimum(model, BOUNDS, generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-1, 2, 30001, dtype=F64)[:, None]
    mean, _ = model.predict_f(grid)
    assert tau <= float(mean.min()) + 1e-12
    assert float(model.predict_f(x[None])[0]) == pytest.approx(tau, abs=1e-12)


def test_mc_kg_converges_to_exact_discrete_kg(model):
    grid = torch.linspace(-1, 2, 2001, dtype=F64)[:, None]
    exact_kg = DiscreteKnowledgeGradient(model, grid)
    cands = torch.tensor([[-0.6], [0.1], [1.2]], dtype=F64)
    exact = exact_kg(cands[:, None])
    M = 512
    mc, info = knowledge_gradient_mc(model, cands, BOUNDS, num_fantasies=M,
                                     generator=torch.Generator().manual_seed(1),
                                     return_details=True)
    # MC error bound from the sample itself; the grid only adds O(1e-6) here
    assert bool(((mc - exact).abs() <= 4 * info["se"] + 1e-6).all()), (mc, exact, info["se"])
    gh = knowledge_gradient_mc(model, cands, BOUNDS, num_fantasies=48, fantasies="gauss-hermite")
    assert torch.allclose(gh, exact, rtol=0.05, atol=2e-5)


def test_kg_nonnegative_and_zero_at_noise_free_observation():
    X = torch.tensor([[-0.8], [-0.2], [0.4], [1.0], [1.7]], dtype=F64)
    y = reference_1d()(X)
    gp = GPR(X, y, kernel=SquaredExponential(lengthscale=0.4), noise_variance=2e-6)
    cands = torch.cat([X[2:3], torch.tensor([[0.05]], dtype=F64)])
    mc = knowledge_gradient_mc(gp, cands, BOUNDS, num_fantasies=64,
                               generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-1, 2, 1001, dtype=F64)[:, None]
    exact = DiscreteKnowledgeGradient(gp, grid)(cands[:, None])
    assert bool((mc >= 0).all()) and bool((exact >= 0).all())
    assert float(mc[0]) < 1e-6 and float(exact[0]) < 1e-6  # measuring it again teaches nothing
    assert float(exact[1]) > 1e-3


def test_mc_kg_gradient_matches_finite_difference(model):
    def kg(x):
        return knowledge_gradient_mc(model, x, BOUNDS, num_fantasies=16,
                                     fantasies="gauss-hermite",
                                     generator=torch.Generator().manual_seed(0))

    x = torch.tensor([[-0.55]], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(kg(x).sum(), x)
    h = 1e-5
    x0 = torch.tensor([[-0.55]], dtype=F64)
    fd = (kg(x0 + h) - kg(x0 - h)) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)


def test_discrete_kg_gradient_matches_finite_difference(model):
    acq = DiscreteKnowledgeGradient(model, torch.linspace(-1, 2, 301, dtype=F64)[:, None])
    x = torch.tensor([[[0.33]]], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(acq(x).sum(), x)
    h = 1e-6
    fd = (acq(x.detach() + h) - acq(x.detach() - h)) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-4, abs=1e-8)


def test_one_shot_is_a_lower_bound_of_mc_kg_with_the_same_fantasies(model):
    g = torch.Generator().manual_seed(0)
    acq = OneShotKnowledgeGradient(model, BOUNDS, num_fantasies=16, generator=g)
    x, value = acq.optimize(generator=g)
    assert x.shape == (1, 1) and float(value) >= 0
    # nested MC KG with the one-shot's own fantasies: inner minima are at least as good
    post = acq.post
    z = acq.z[:, 0]
    grid = torch.linspace(-1, 2, 20001, dtype=F64)[:, None]
    fantasised = post.mean(grid[None])[0][:, None] + post.sigma_tilde(grid, x) * z  # [G, M]
    nested = acq.tau_n - (fantasised.min(0).values * acq.w).sum()
    assert float(value) <= float(nested) + 1e-7  # the grid resolves minima to ~1e-8
    assert float(value) >= float(nested) - 1e-4  # and the joint optimum is tight


def test_one_shot_batch_q2():
    model = reference_model(seed=3)
    g = torch.Generator().manual_seed(0)
    acq = OneShotKnowledgeGradient(model, BOUNDS, num_fantasies=8, q=2, generator=g)
    x, value = acq.optimize(generator=g, num_restarts=4, raw_samples=64)
    assert x.shape == (2, 1) and float(value) >= 0
    assert bool(((x >= -1) & (x <= 2)).all())


@pytest.mark.parametrize("seed", [0, 1])
def test_discretised_kg_maximisation_finds_the_grid_maximum(seed):
    model = reference_model(seed=seed)
    fine = DiscreteKnowledgeGradient(model, torch.linspace(-1, 2, 3001, dtype=F64)[:, None])
    best = float(fine(torch.linspace(-1, 2, 601, dtype=F64)[:, None, None]).max())
    x, _ = optimize_discrete_kg(model, BOUNDS)
    assert float(fine(x[None])) >= 0.99 * best


def test_log_ei_and_ucb(model):
    X = torch.linspace(-1, 2, 9, dtype=F64)[:, None, None]
    best = 0.1
    acq = LogExpectedImprovement(model, best_f=best)
    mean, var = model.predict_f(X[:, 0])
    sd = var.sqrt()
    z = (best - mean) / sd
    zn = z.numpy()
    ei = sd.numpy() * (norm.pdf(zn) + zn * norm.cdf(zn))
    ok = ei > 1e-300
    assert np.allclose(acq(X).exp().numpy()[ok], ei[ok], rtol=1e-10, atol=0)
    ucb = UpperConfidenceBound(model, beta=4.0)(X)
    assert torch.allclose(ucb, -(mean - 2 * sd))
    # far tail: asymptote log h(z) ~ -z^2/2 - log(sqrt(2 pi)) - 2 log|z|
    zz = torch.tensor([-50.0, -500.0], dtype=F64)
    asym = -0.5 * zz**2 - 0.5 * math.log(2 * math.pi) - 2 * torch.log(-zz)
    assert torch.allclose(log_h(zz), asym, atol=1e-3)
    with pytest.raises(ValueError, match="beta"):
        UpperConfidenceBound(model, beta=-1.0)


def test_bad_inputs_give_clear_errors(model):
    from bayeskit.errors import NonFiniteError

    with pytest.raises(NonFiniteError, match="NaN"):
        model.posterior().mean(torch.tensor([[math.nan]], dtype=F64))
    with pytest.raises(ValueError, match="even num_fantasies"):
        OneShotKnowledgeGradient(model, BOUNDS, num_fantasies=5, q=2)
    with pytest.raises(ValueError, match="even num_fantasies"):
        knowledge_gradient_mc(model, [[0.5]], BOUNDS, num_fantasies=3)
