"""The model contract: GPR, SGPR and SVGP answer posterior(), predict_f and predict_y alike,
in float32 and float64; with Z = X the sparse models equal the exact GP, so every
acquisition (log-EI, UCB, exact discrete KG, MC KG) gives the exact GP's values on them."""

import numpy as np
import pytest
import torch

from bayeskit.bo import (
    DiscreteKnowledgeGradient,
    LogExpectedImprovement,
    UpperConfidenceBound,
    knowledge_gradient_mc,
)
from bayeskit.errors import ShapeError
from bayeskit.gp import GPR, SGPR, SVGP, GPPosterior, SquaredExponential

F64 = torch.float64


def data(dtype=F64, n=10):
    g = torch.Generator().manual_seed(0)
    X = (torch.rand(n, 2, dtype=F64, generator=g) * 6 - 3)
    y = torch.sin(X[:, 0]) + 0.5 * torch.cos(X[:, 1])
    return X.to(dtype), y.to(dtype)


def models(dtype=F64):
    X, y = data(dtype)
    kern = lambda: SquaredExponential(0.9, 1.3)  # noqa: E731
    gpr = GPR(X, y, kern(), noise_variance=0.05, learn_mean=False)
    sgpr = SGPR(X, y, X, kern(), noise_variance=0.05, learn_mean=False, jitter=0.0)
    svgp = SVGP(X, kern(), noise_variance=0.05, num_data=len(X), jitter=0.0)
    svgp.natural_gradient_step(X, y, 1.0)  # q(u) at its optimum: SGPR's
    return X, y, {"gpr": gpr, "sgpr": sgpr, "svgp": svgp}


def test_every_model_returns_the_one_posterior_type_with_the_exact_values():
    X, y, ms = models()
    Xs = torch.tensor([[0.1, -0.4], [2.0, 1.0], [-2.5, 0.3]], dtype=F64)
    ref_f = ms["gpr"].predict_f(Xs, full_cov=True)
    ref_y = ms["gpr"].predict_y(Xs)
    for name, m in ms.items():
        post = m.posterior()
        assert isinstance(post, GPPosterior), name
        for a, b in zip(m.predict_f(Xs, full_cov=True), ref_f, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8, msg=name)
        for a, b in zip(m.predict_y(Xs), ref_y, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8, msg=name)
        assert float(m.noise_variance.detach()) == pytest.approx(0.05)
        # fantasies and conditioning agree with the exact GP's Cholesky append
        st = post.fantasy_sigma(Xs, Xs[:2])
        torch.testing.assert_close(st, ms["gpr"].posterior().fantasy_sigma(Xs, Xs[:2]),
                                   rtol=1e-7, atol=1e-8)
        y_new = torch.tensor([0.3, -0.2], dtype=F64)
        cond = post.condition_on_observations(Xs[:2], y_new)
        exact = ms["gpr"].condition_on_observations(Xs[:2], y_new)
        torch.testing.assert_close(cond.mean(Xs), exact.predict_f(Xs)[0], rtol=1e-7, atol=1e-8)
        torch.testing.assert_close(cond.covariance(Xs), exact.predict_f(Xs, True)[1],
                                   rtol=1e-7, atol=1e-8)


def test_fantasize_adds_a_leading_dimension_and_matches_conditioning():
    X, y, ms = models()
    Xs = torch.tensor([[0.1, -0.4], [2.0, 1.0]], dtype=F64)
    for m in ms.values():
        post = m.posterior()
        fant = post.fantasize(Xs[:1], 4, generator=torch.Generator().manual_seed(0))
        assert fant.mean(Xs).shape == (4, 2)
        assert fant.mean(Xs[None].expand(3, 2, 2)).shape == (4, 3, 2)
        assert fant.variance(Xs).shape == (2,)
        # the posterior variance at the fantasy point shrinks to about the noise level
        assert float(fant.variance(Xs[:1])) < float(post.variance(Xs[:1]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_models_follow_their_data_dtype(dtype):
    X, y, ms = models(dtype)
    _, _, ref = models(F64)
    Xs = torch.tensor([[0.1, -0.4], [2.0, 1.0]], dtype=dtype)
    tol = 1e-3 if dtype == torch.float32 else 1e-8
    for name, m in ms.items():
        mean, var = m.predict_f(Xs)
        ym, yv = m.predict_y(Xs)
        assert mean.dtype == var.dtype == ym.dtype == yv.dtype == dtype, name
        rm, rv = ref[name].predict_f(Xs.double())
        torch.testing.assert_close(mean.double(), rm, rtol=tol, atol=tol, msg=name)
        torch.testing.assert_close(var.double(), rv, rtol=tol, atol=tol, msg=name)
        assert m.posterior().rsample(Xs, (3,), generator=torch.Generator().manual_seed(0)
                                     ).dtype == dtype
    assert ms["gpr"].log_marginal_likelihood().dtype == dtype
    assert ms["sgpr"].elbo().dtype == dtype
    assert ms["svgp"].elbo(X, y).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_acquisitions_on_sparse_models_equal_the_exact_gp(dtype):
    X, y, ms = models(dtype)
    tol = 2e-3 if dtype == torch.float32 else 1e-6
    cand = torch.tensor([[[0.5, 0.5]], [[-1.0, 2.0]], [[2.5, -2.5]]], dtype=dtype)
    alt = torch.rand(50, 2, dtype=dtype, generator=torch.Generator().manual_seed(1)) * 6 - 3
    bounds = torch.tensor([[-3.0, -3.0], [3.0, 3.0]], dtype=F64)
    values = {}
    for name, m in ms.items():
        values[name] = [
            LogExpectedImprovement(m, best_f=-1.0)(cand),
            UpperConfidenceBound(m, beta=2.0)(cand),
            DiscreteKnowledgeGradient(m, alt)(cand),
            knowledge_gradient_mc(m, cand[:, 0].double(), bounds, num_fantasies=8,
                                  raw_samples=64, generator=torch.Generator().manual_seed(0)),
        ]
    for name in ("sgpr", "svgp"):
        for a, b in zip(values[name], values["gpr"], strict=True):
            torch.testing.assert_close(a.double(), b.double(), rtol=tol, atol=tol, msg=name)
    assert bool((values["gpr"][2] > 0).all())


def test_gpr_copies_its_data_and_fits_a_read_only_memmap(tmp_path):
    X, y = data()
    path = tmp_path / "x.npy"
    np.save(path, X.numpy())
    X_mm = np.load(path, mmap_mode="r")  # read-only mapping
    gp = GPR(X_mm, y.numpy(), SquaredExponential(1.0, 1.0), noise_variance=0.1).fit(max_iter=20)
    X_np = X.numpy().copy()
    gp2 = GPR(X_np, y.numpy(), SquaredExponential(1.0, 1.0), noise_variance=0.1)
    before = gp2.predict_f(X_np[:3])[0].clone()
    X_np[:] = 0.0  # the caller changes its array afterwards
    torch.testing.assert_close(gp2.predict_f(X.numpy()[:3])[0], before)
    assert bool(torch.isfinite(gp.predict_f(X[:3])[0]).all())


def test_user_kernel_is_not_converted_in_place():
    X, y = data(torch.float32)
    k = SquaredExponential(1.0, 1.0)
    dtypes = [p.dtype for p in k.parameters()]
    GPR(X, y, k).predict_f(X[:2])
    assert [p.dtype for p in k.parameters()] == dtypes


def sparse_models(dtype=F64, n=40, m=8):
    """An SGPR and an SVGP (at its Gaussian optimum, i.e. SGPR's q(u)) with M < N."""
    X, y = data(dtype, n)
    Z = X[:m].clone() + 0.1
    kern = lambda: SquaredExponential(0.9, 1.3)  # noqa: E731
    sgpr = SGPR(X, y, Z, kern(), noise_variance=0.05, learn_mean=False, jitter=0.0)
    svgp = SVGP(Z, kern(), noise_variance=0.05, num_data=n, jitter=0.0).to(dtype)
    svgp.natural_gradient_step(X, y, 1.0)
    return X, y, Z, {"sgpr": sgpr, "svgp": svgp}


def brute_force_conditioning(post, Xc, yc, Xs, noise):
    """The posterior process conditioned on noisy ``yc`` at ``Xc``: dense Gaussian algebra."""
    joint = torch.cat([Xc, Xs])
    mean, cov = post.mean(joint), post.covariance(joint)
    q = Xc.shape[0]
    Ccc = cov[:q, :q] + noise * torch.eye(q, dtype=cov.dtype)
    gain = torch.linalg.solve(Ccc, cov[:q, q:]).mT  # [Q, q]
    return mean[q:] + gain @ (yc - mean[:q]), cov[q:, q:] - gain @ cov[:q, q:]


def test_sparse_conditioning_appends_the_inputs_and_is_exact_for_the_process():
    X, y, Z, ms = sparse_models()
    Xs = torch.tensor([[0.1, -0.4], [2.0, 1.0], [-2.5, 0.3], [0.0, 0.0]], dtype=F64)
    Xc = torch.tensor([[0.3, 0.2], [-1.0, 1.5], [2.9, -2.9]], dtype=F64)
    yc = torch.tensor([0.4, -0.3, 1.0], dtype=F64)
    for name, m in ms.items():
        post = m.posterior()
        cond = post.condition_on_observations(Xc, yc)
        mean, cov = brute_force_conditioning(post, Xc, yc, Xs, 0.05)
        torch.testing.assert_close(cond.mean(Xs), mean, rtol=1e-9, atol=1e-10, msg=name)
        torch.testing.assert_close(cond.covariance(Xs), cov, rtol=1e-9, atol=1e-10, msg=name)
        torch.testing.assert_close(cond.variance(Xs), cov.diagonal(), rtol=1e-9, atol=1e-10)
        assert cond.Z.shape == (Z.shape[0] + 3, 2)
        assert cond.train_inputs.shape[0] == post.train_inputs.shape[0] + 3
        # one point at a time (the kriging believer's chain) equals all at once, and each
        # step is the same flat form: no chain of parents to re-evaluate
        step = post
        for i in range(3):
            step = step.condition_on_observations(Xc[i:i + 1], yc[i:i + 1])
        torch.testing.assert_close(step.mean(Xs), mean, rtol=1e-9, atol=1e-10, msg=name)
        torch.testing.assert_close(step.covariance(Xs), cov, rtol=1e-9, atol=1e-10, msg=name)


def test_sparse_conditioning_at_an_inducing_input_stays_finite_and_exact():
    X, y, Z, ms = sparse_models()
    post = ms["sgpr"].posterior()
    Xc, yc = Z[:2].clone(), torch.tensor([0.5, -0.5], dtype=F64)
    cond = post.condition_on_observations(Xc, yc)
    Xs = torch.cat([Z[:3], X[:3]])
    mean, cov = brute_force_conditioning(post, Xc, yc, Xs, 0.05)
    torch.testing.assert_close(cond.mean(Xs), mean, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(cond.covariance(Xs), cov, rtol=1e-7, atol=1e-8)


def test_fixed_inducing_conditioning_equals_refitting_the_sgpr_on_the_augmented_data():
    X, y, Z, ms = sparse_models()
    Xc = torch.tensor([[0.3, 0.2], [-1.0, 1.5]], dtype=F64)
    yc = torch.tensor([0.4, -0.3], dtype=F64)
    Xs = torch.tensor([[0.1, -0.4], [2.0, 1.0], [-2.5, 0.3]], dtype=F64)
    refit = SGPR(torch.cat([X, Xc]), torch.cat([y, yc]), Z, SquaredExponential(0.9, 1.3),
                 noise_variance=0.05, learn_mean=False, jitter=0.0)
    ref_mean, ref_cov = refit.predict_f(Xs, full_cov=True)
    for name, m in ms.items():
        cond = m.posterior().condition_on_observations(Xc, yc, inducing="fixed")
        assert cond.Z.shape == Z.shape
        torch.testing.assert_close(cond.mean(Xs), ref_mean, rtol=1e-9, atol=1e-10, msg=name)
        torch.testing.assert_close(cond.covariance(Xs), ref_cov, rtol=1e-9, atol=1e-10,
                                   msg=name)
    # the inducing inputs leave information out: the exact process update differs
    appended = ms["sgpr"].posterior().condition_on_observations(Xc, yc)
    assert float((appended.mean(Xs) - ref_mean).abs().max()) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sparse_fantasies_follow_the_dtype_and_batch_the_outcomes(dtype):
    X, y, Z, ms = sparse_models(dtype)
    Xc = torch.tensor([[0.3, 0.2]], dtype=dtype)
    Xs = torch.tensor([[0.1, -0.4], [2.0, 1.0]], dtype=dtype)
    post = ms["sgpr"].posterior()
    fant = post.fantasize(Xc, 6, generator=torch.Generator().manual_seed(0))
    assert fant.mean(Xs).shape == (6, 2) and fant.mean(Xs).dtype == dtype
    ys = fant.f.new_tensor([[0.1], [0.7]])  # two outcome vectors at once = one by one
    both = post.condition_on_observations(Xc, ys)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for i in range(2):
        one = post.condition_on_observations(Xc, ys[i])
        torch.testing.assert_close(both.mean(Xs)[i], one.mean(Xs), rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="inducing"):
        post.condition_on_observations(Xc, ys[0], inducing="both")


def test_conditioning_a_fantasised_posterior_checks_the_outcome_count():
    X, y, Z, ms = sparse_models()
    Xc = torch.tensor([[0.3, 0.2]], dtype=F64)
    for post in (ms["sgpr"].posterior(), GPR(X, y, noise_variance=0.05).posterior()):
        fant = post.fantasize(Xc, 3, generator=torch.Generator().manual_seed(0))
        assert fant.condition_on_observations(Xc + 0.1, torch.zeros(3, 1, dtype=F64)
                                              ).mean(X[:2]).shape == (3, 2)
        with pytest.raises(ShapeError, match="3 fantasies"):
            fant.condition_on_observations(Xc + 0.1, torch.zeros(4, 1, dtype=F64))
