"""Pólya-gamma augmented SVGP: coordinate-ascent fixed point, bounds, Gibbs reference,
quadrature SVGP, binomial counts, training/resume, bad input."""

import math

import pytest
import torch

from bayeskit.gp import SVGP, PolyaGammaSVGP, SquaredExponential
from bayeskit.gp.likelihoods import Bernoulli
from bayeskit.mcmc.gpc import gp_classification_gibbs

F64 = torch.float64


def _data(n=40, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    X = (torch.rand(n, 1, generator=g, dtype=F64) * 6 - 3)
    y = (torch.rand(n, generator=g, dtype=F64) < torch.sigmoid(2 * torch.sin(2 * X[:, 0])))
    return X.to(dtype), y.to(dtype)


def _kernel():
    k = SquaredExponential(torch.tensor([0.8], dtype=F64), variance=2.0)
    for p in k.parameters():
        p.requires_grad_(False)
    return k


def _converged(X, y, Z=None, sweeps=200):
    m = PolyaGammaSVGP(X if Z is None else Z, _kernel(), num_data=len(X))
    elbos = []
    for _ in range(sweeps):
        m.natural_gradient_step(X, y, gamma=1.0)
        elbos.append(float(m.augmented_elbo(X, y).detach()))
    return m, elbos


def test_step_size_one_reaches_the_coordinate_ascent_fixed_point():
    X, y = _data()
    m, elbos = _converged(X, y, Z=X[::3])
    # coordinate ascent never decreases the augmented bound, and it has converged
    assert all(b >= a - 1e-9 for a, b in zip(elbos[:-1], elbos[1:], strict=True))
    before = (m.q_mu.detach().clone(), m.q_sqrt.detach().clone())
    m.natural_gradient_step(X, y, gamma=1.0)
    assert torch.allclose(m.q_mu, before[0], atol=1e-10)
    assert torch.allclose(m.q_sqrt, before[1], atol=1e-10)
    # the fixed point is stationary for the bound collapsed over q(omega) (independent check
    # by autograd: the closed-form update never differentiates anything)
    m.zero_grad()
    m.augmented_elbo(X, y).backward()
    assert float(m.q_mu.grad.abs().max()) < 1e-7
    assert float(m.raw_q_sqrt.grad.abs().max()) < 1e-7


def test_bounds_are_ordered_augmented_true_and_log_marginal():
    X, y = _data()
    m, _ = _converged(X, y)  # Z = X: q(v) is the whole latent
    aug, true = float(m.augmented_elbo(X, y).detach()), float(m.elbo(X, y).detach())
    assert aug <= true + 1e-10
    # importance-sampled log p(y) with q as the proposal (independent of the bounds' algebra)
    g = torch.Generator().manual_seed(1)
    S = 20_000
    with torch.no_grad():
        L = m._prior_factor()
        eps = torch.randn(S, len(X), dtype=F64, generator=g)
        v = m.q_mu + eps @ m.q_sqrt.mT
        f = v @ L.mT
        log_lik = (y * f - torch.nn.functional.softplus(f)).sum(-1)
        log_prior = -0.5 * (v * v).sum(-1)
        log_q = -0.5 * (eps * eps).sum(-1) - m.q_sqrt.diagonal().log().sum()
        lw = log_lik + log_prior - log_q
        log_ml = float(torch.logsumexp(lw, 0) - math.log(S))
    assert true <= log_ml
    assert log_ml - true < 2.0  # the gap the Gaussian family leaves on 40 points


def test_predictions_close_to_the_gibbs_reference():
    X, y = _data()
    m, _ = _converged(X, y)
    K = _kernel()(X) + 1e-8 * torch.eye(len(X), dtype=F64)
    L, v, _ = gp_classification_gibbs(K, y, num_samples=1500, burn_in=300, num_chains=4,
                                      generator=torch.Generator().manual_seed(2))
    f = v.reshape(-1, len(X)) @ L.mT
    p_gibbs = torch.sigmoid(f).mean(0)
    p_vi = m.predict_y(X)[0]
    gap = float((p_gibbs - p_vi).abs().max())
    # Monte Carlo error of p_gibbs is ~0.003; the Gaussian q(f) leaves the rest
    assert gap < 0.02, gap  # measured 0.0066
    # latent means agree too (within a fraction of the posterior sd)
    mean_vi, var_vi = m.predict_f(X)
    sd = var_vi.sqrt()
    assert float(((f.mean(0) - mean_vi) / sd).abs().max()) < 0.2  # measured 0.09


def test_true_elbo_at_least_the_quadrature_svgp():
    X, y = _data()
    m, _ = _converged(X, y)
    q = SVGP(X, _kernel(), num_data=len(X), likelihood=Bernoulli("logit"))
    opt = torch.optim.Adam([q.q_mu, q.raw_q_sqrt], lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        loss = -q.elbo(X, y)
        loss.backward()
        opt.step()
    svgp_elbo, pg_elbo = -float(loss.detach()), float(m.elbo(X, y).detach())
    # PG-SVGP maximises the augmented bound, not the true ELBO: it may sit slightly lower
    # (measured 0.020 nats below on these 40 points)
    assert pg_elbo >= svgp_elbo - 0.05, (pg_elbo, svgp_elbo)


def test_binomial_counts_equal_replicated_labels():
    X, _ = _data(n=15)
    g = torch.Generator().manual_seed(3)
    trials = torch.randint(1, 6, (15,), generator=g).to(F64)
    y = torch.floor(torch.rand(15, generator=g, dtype=F64) * (trials + 1))
    binom = PolyaGammaSVGP(X, _kernel(), num_data=15)
    rows = torch.repeat_interleave(torch.arange(15), trials.long())
    labels = torch.cat([torch.cat([torch.ones(int(k)), torch.zeros(int(n - k))])
                        for k, n in zip(y, trials, strict=True)]).to(F64)
    bern = PolyaGammaSVGP(X, _kernel(), num_data=len(rows))
    for _ in range(100):
        binom.natural_gradient_step(X, y, trials)
        bern.natural_gradient_step(X[rows], labels)
    assert torch.allclose(binom.q_mu, bern.q_mu, atol=1e-8)
    assert torch.allclose(binom.q_sqrt, bern.q_sqrt, atol=1e-8)
    # the bounds differ by the binomial coefficients only
    log_binom = float((torch.lgamma(trials + 1) - torch.lgamma(y + 1)
                       - torch.lgamma(trials - y + 1)).sum())
    assert float(binom.elbo(X, y, trials).detach()) == pytest.approx(
        float(bern.elbo(X[rows], labels).detach()) + log_binom, abs=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fit_learns_and_follows_dtype(dtype):
    X, y = _data(n=300, seed=4, dtype=dtype)
    m = PolyaGammaSVGP(X[::15], num_data=300)
    hist = m.fit(X, y, epochs=15, batch_size=100, lr=0.05)
    assert m.q_mu.dtype == dtype and m.predict_y(X)[0].dtype == dtype
    assert hist[-1] > hist[0]
    acc = float(((m.predict_y(X)[0] > 0.5).to(dtype) == y).to(F64).mean())
    assert acc > 0.7
    assert int(m.natural_steps) == 15 * 3


def test_checkpoint_resume_is_exact(tmp_path):
    X, y = _data(n=120, seed=5)
    ck = tmp_path / "pg.pt"
    straight = PolyaGammaSVGP(X[::10], num_data=120)
    straight.fit(X, y, epochs=4, batch_size=40)
    first = PolyaGammaSVGP(X[::10], num_data=120)
    first.fit(X, y, epochs=2, batch_size=40, checkpoint=ck)
    resumed = PolyaGammaSVGP(X[::10], num_data=120)
    resumed.fit(X, y, epochs=4, batch_size=40, checkpoint=ck)
    assert torch.equal(resumed.q_mu, straight.q_mu)
    assert torch.equal(resumed.Z, straight.Z)
    assert int(resumed.natural_steps) == 12


def test_bad_input():
    X, y = _data(n=10)
    m = PolyaGammaSVGP(X, num_data=10)
    with pytest.raises(ValueError, match="0 or 1"):
        m.fit(X, y + 1)
    with pytest.raises(ValueError, match="trials"):
        m.natural_gradient_step(X, y * 3, torch.ones(10, dtype=F64))
    with pytest.raises(ValueError, match="whole numbers"):
        m.augmented_elbo(X, y, torch.full((10,), 0.5, dtype=F64))
    with pytest.raises(ValueError, match=r"\[N\]"):
        m.elbo(X, y, torch.ones(9, dtype=F64))
    with pytest.raises(ValueError, match="decay"):
        m.fit(X, y, decay=0.2)
    with pytest.raises(ValueError, match="gamma"):
        m.natural_gradient_step(X, y, gamma=0.0)
    with pytest.raises(ValueError, match="num_points"):
        m.elbo(X, y, num_points=0)
    for bad in ("64", None):  # compared with N before the trainer saw it: a bare TypeError
        with pytest.raises(TypeError, match="batch_size"):
            m.fit(X, y, batch_size=bad)


def _fit_for_ddp():
    X, y = _data(n=120, seed=6)
    m = PolyaGammaSVGP(X[::10].clone(), num_data=120)
    return m, m.fit(X, y, epochs=3, batch_size=40, lr=0.02, seed=1)


def test_two_process_data_parallel_matches_single_process(tmp_path):
    """Under torchrun each process takes half of every minibatch: the natural-gradient
    statistics and the Adam gradients are summed across processes, so the run equals the
    single-process one."""
    from tests.ddp import run_two_processes

    single, hist = _fit_for_ddp()
    saved = run_two_processes(_fit_for_ddp, tmp_path)
    for name, value in single.state_dict().items():
        assert torch.allclose(saved["state"][name].to(value.dtype), value, atol=1e-9), name
    assert torch.allclose(torch.tensor(saved["history"]), torch.tensor(hist), atol=1e-8)


def test_whitened_and_unwhitened_reach_the_same_posterior():
    X, y = _data()
    models = []
    for whiten in (True, False):
        m = PolyaGammaSVGP(X[::3], _kernel(), num_data=len(X), whiten=whiten)
        for _ in range(100):
            m.natural_gradient_step(X, y, gamma=1.0)
        models.append(m)
    with torch.no_grad():
        (m1, v1), (m2, v2) = (m.predict_f(X) for m in models)
        e1, e2 = (float(m.augmented_elbo(X, y)) for m in models)
    assert torch.allclose(m1, m2, atol=1e-8) and torch.allclose(v1, v2, atol=1e-8)
    assert e1 == pytest.approx(e2, abs=1e-8)


def test_hybrid_step_equals_its_public_pieces_and_guards_q_u():
    """One hybrid step = the gradient of the augmented bound at the current q(u), the
    natural step, then the optimiser step (computed separately through the public API):
    sharing the batch's kernel work and marginals changes nothing."""
    X, y = _data(n=60, seed=7)
    a, b = (PolyaGammaSVGP(X[::6].clone(), num_data=60) for _ in range(2))
    opt_a = torch.optim.Adam(a.hyperparameters(), lr=0.05)
    opt_b = torch.optim.Adam(b.hyperparameters(), lr=0.05)
    for t in range(6):
        rows = slice(t % 3 * 20, t % 3 * 20 + 20)
        gamma = a.step_size(t, 1.0, 0.6)
        bound = a.hybrid_step(X[rows], y[rows], optimizer=opt_a, gamma=gamma)
        opt_b.zero_grad()
        loss = -b.augmented_elbo(X[rows], y[rows])
        loss.backward()
        b.natural_gradient_step(X[rows], y[rows], gamma=gamma)
        opt_b.step()
        assert bound == pytest.approx(-float(loss), rel=1e-12)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if name != "natural_steps":  # counted by hybrid_step (and fit) only
            assert torch.allclose(pa, pb, atol=1e-12, rtol=0), name
    assert int(a.natural_steps) == 6
    assert {id(p) for p in a.hyperparameters()} == {
        id(p) for p in a.parameters()} - {id(a.q_mu), id(a.raw_q_sqrt)}
    with pytest.raises(ValueError, match="q_mu"):
        a.hybrid_step(X, y, optimizer=torch.optim.Adam(a.parameters()), gamma=0.5)
    with pytest.raises(TypeError, match="optimizer"):
        a.hybrid_step(X, y, optimizer="adam", gamma=0.5)


def test_hybrid_step_refuses_a_non_finite_bound_and_takes_no_step():
    X, y = _data(n=30, seed=8)
    m = PolyaGammaSVGP(X[::5].clone(), num_data=30)
    opt = torch.optim.Adam(m.hyperparameters(), lr=0.01)
    m.hybrid_step(X, y, optimizer=opt, gamma=0.5)
    with torch.no_grad():
        m.q_mu[0] = 1e300  # a hand-set q(u) gone bad: E f^2 overflows
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="non-finite"):
        m.hybrid_step(X, y, optimizer=opt, gamma=0.5)
    for k, v in m.state_dict().items():  # neither the natural nor the Adam step was taken
        assert torch.equal(v, before[k]), k
