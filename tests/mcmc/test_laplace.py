"""The binomial posterior's Laplace approximation and the independence Metropolis steps
drawn from it (alone and between Gibbs sweeps), against autograd, a quadrature grid and
the plain Gibbs sampler."""

import numpy as np
import pytest
import torch

from bayeskit.errors import CheckpointError
from bayeskit.mcmc import BinomialRegressionData, run_gibbs
from bayeskit.mcmc.laplace import (
    binomial_log_posterior,
    independence_metropolis,
    laplace_approximation,
)

F64 = torch.float64


def _problem(n=25, binomial=False, offset=0.0, separable=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    Phi = np.stack([np.ones_like(x), x], 1)
    n_trials = rng.integers(1, 6, size=n) if binomial else np.ones(n)
    slope = 6.0 if separable else 1.2
    p = 1 / (1 + np.exp(-(0.4 + slope * x)))
    y = rng.binomial(n_trials.astype(int), p).astype(float)
    return Phi, y, n_trials, BinomialRegressionData.create(
        Phi, y, n_trials, prior_mean=[0.1, -0.2], prior_precision=[[0.5, 0.1], [0.1, 0.4]],
        offset=offset)


def _grid_moments(Phi, y, n_trials, offset=0.0):
    """Posterior mean and sd by quadrature (float64 brute force), the same prior."""
    b0, b1 = np.meshgrid(np.linspace(-8, 8, 801), np.linspace(-8, 12, 1001), indexing="ij")
    B = np.stack([b0.ravel(), b1.ravel()], 1)
    f = offset + B @ Phi.T
    S = np.array([[0.5, 0.1], [0.1, 0.4]])
    c = B - np.array([0.1, -0.2])
    logpost = (y * f - n_trials * np.logaddexp(0, f)).sum(1) - 0.5 * np.einsum(
        "gi,ij,gj->g", c, S, c)
    w = np.exp(logpost - logpost.max())
    w /= w.sum()
    mean = w @ B
    return mean, np.sqrt(w @ (B - mean) ** 2)


@pytest.mark.parametrize("binomial,offset", [(False, 0.0), (True, 0.3)])
def test_log_posterior_differences_are_the_closed_form(binomial, offset):
    Phi, y, n_trials, data = _problem(binomial=binomial, offset=offset)
    B = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    f = offset + B.numpy() @ Phi.T
    S = np.array([[0.5, 0.1], [0.1, 0.4]])
    c = B.numpy() - np.array([0.1, -0.2])
    exact = (y * f - n_trials * np.logaddexp(0, f)).sum(1) - 0.5 * np.einsum(
        "gi,ij,gj->g", c, S, c)
    ours = binomial_log_posterior(data, B).numpy()
    np.testing.assert_allclose(ours - ours[0], exact - exact[0], rtol=0, atol=1e-11)


@pytest.mark.parametrize("separable", [False, True])
def test_laplace_mode_and_precision_against_autograd(separable):
    _, _, _, data = _problem(n=60, binomial=not separable, separable=separable)
    mode, L = laplace_approximation(data)
    logp = lambda b: binomial_log_posterior(data, b)  # noqa: E731
    assert float(torch.func.grad(logp)(data.prior_mean).abs().max()) > 1.0  # a real gradient
    assert float(torch.func.grad(logp)(mode).abs().max()) < 1e-9
    torch.testing.assert_close(L @ L.T, -torch.func.hessian(logp)(mode), rtol=1e-10,
                               atol=1e-10)


def test_metropolis_alone_samples_the_exact_posterior():
    """2,000 chains of 40 independence steps from the Laplace proposal: the last states
    are (nearly independent) posterior draws; their mean is within 4 standard errors of
    the quadrature mean and their sd within 10 % of it."""
    Phi, y, n_trials, data = _problem(binomial=True)
    mode, L = laplace_approximation(data)
    g = torch.Generator().manual_seed(1)
    beta = torch.zeros(2000, 2, dtype=F64)
    beta, _, accepted = independence_metropolis(
        data, beta, binomial_log_posterior(data, beta), mode, L, 40, generator=g)
    mean, sd = _grid_moments(Phi, y, n_trials)
    draws = beta.numpy()
    assert np.all(np.abs(draws.mean(0) - mean) < 4 * sd / np.sqrt(2000)), (draws.mean(0), mean)
    assert np.all(np.abs(draws.std(0) / sd - 1) < 0.1)
    assert 0.5 < float(accepted.mean()) / 40 < 1.0  # a close proposal in two dimensions


@pytest.mark.parametrize("offset", [0.0, 0.7])
def test_gibbs_with_metropolis_steps_matches_the_grid(offset):
    Phi, y, n_trials, data = _problem(offset=offset)
    res = run_gibbs(data, num_samples=600, burn_in=100, num_chains=8, metropolis_steps=2,
                    generator=torch.Generator().manual_seed(1))
    draws = res.beta.reshape(-1, 2).numpy()
    mean, sd = _grid_moments(Phi, y, n_trials, offset)
    assert np.all(np.abs(draws.mean(0) - mean) < 0.1 * sd), (draws.mean(0), mean, sd)
    assert np.all(np.abs(draws.std(0) / sd - 1) < 0.1)


def _lag1(draws):
    """Lag-1 autocorrelation per coefficient, pooled over chains: [C, S, D] -> [D]."""
    x = draws - draws.mean(1, keepdims=True)
    return (x[:, 1:] * x[:, :-1]).sum((0, 1)) / (x * x).sum((0, 1))


def test_metropolis_steps_cut_the_autocorrelation_on_nearly_separable_data():
    """Where the augmented chain is sticky (large coefficients), the independence steps
    decorrelate it: lag-1 autocorrelation of the slowest coefficient falls from > 0.6
    (0.71 with this seed) by more than half."""
    _, _, _, data = _problem(n=80, separable=True)
    plain, mixed = (run_gibbs(data, num_samples=400, burn_in=100, num_chains=4,
                              metropolis_steps=k, generator=torch.Generator().manual_seed(2))
                    for k in (0, 4))
    slow_plain = float(_lag1(plain.beta.numpy()).max())
    slow_mixed = float(_lag1(mixed.beta.numpy()).max())
    assert slow_plain > 0.6, slow_plain
    assert slow_mixed < 0.5 * slow_plain, (slow_plain, slow_mixed)


def test_a_checkpoint_of_other_metropolis_steps_is_refused(tmp_path):
    _, _, _, data = _problem()
    path = tmp_path / "g.pt"
    run_gibbs(data, num_samples=5, burn_in=0, num_chains=2, checkpoint=path,
              metropolis_steps=1)
    with pytest.raises(CheckpointError):
        run_gibbs(data, num_samples=5, burn_in=0, num_chains=2, checkpoint=path,
                  metropolis_steps=2)


def test_isotropic_prior_takes_no_product_and_gives_the_same_log_posterior():
    """prior_precision = s I: the prior term as s |beta - m|^2 / 2 (data.prior_scale),
    equal to the general quadratic form; a general S keeps the product."""
    Phi, y, n_trials, general = _problem(binomial=True)
    assert general.prior_scale is None
    iso = BinomialRegressionData.create(Phi, y, n_trials, prior_mean=[0.1, -0.2],
                                        prior_precision=0.7)
    assert iso.prior_scale == 0.7
    beta = torch.randn(15, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    fast = binomial_log_posterior(iso, beta)
    f = beta @ torch.as_tensor(Phi).T  # [15, N]
    centred = beta - torch.tensor([0.1, -0.2], dtype=F64)
    ref = (torch.as_tensor(y) * f - torch.as_tensor(n_trials)
           * torch.nn.functional.softplus(f)).sum(-1) \
        - 0.5 * (centred @ (0.7 * torch.eye(2, dtype=F64)) * centred).sum(-1)
    torch.testing.assert_close(fast, ref, rtol=1e-14, atol=1e-12)


def test_isotropic_prior_autograd_records_keeps_its_gradient():
    """A prior precision s I that autograd records takes the product (prior_scale None):
    d log p / ds = -|beta - m|^2 / 2 (the shortcut would have dropped it)."""
    Phi, y, n_trials, _ = _problem(binomial=True)
    s = torch.tensor(0.7, dtype=F64, requires_grad=True)
    data = BinomialRegressionData.create(Phi, y, n_trials, prior_mean=[0.1, -0.2],
                                         prior_precision=s)
    assert data.prior_scale is None
    beta = torch.tensor([0.4, 0.3], dtype=F64)
    (grad,) = torch.autograd.grad(binomial_log_posterior(data, beta), s)
    expected = -0.5 * float(((beta - torch.tensor([0.1, -0.2], dtype=F64)) ** 2).sum())
    assert abs(float(grad) - expected) < 1e-14


def test_metropolis_returns_the_log_posterior_of_its_states():
    """The returned log posterior is each chain's, whether it moved or stayed (it is
    carried along, not recomputed)."""
    _, _, _, data = _problem(binomial=True)
    mode, L = laplace_approximation(data)
    beta = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    beta, log_post, accepted = independence_metropolis(
        data, beta, binomial_log_posterior(data, beta), mode, L, 3,
        generator=torch.Generator().manual_seed(4))
    assert 0 < float(accepted.sum()) < 64 * 3
    torch.testing.assert_close(log_post, binomial_log_posterior(data, beta), rtol=0, atol=0)
