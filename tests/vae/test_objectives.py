"""VAE objectives against closed forms: KL, IWAE >= ELBO, pPCA marginal likelihood,
unbiased IWAE gradients."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, TransformedDistribution

from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.vae import (
    VAE,
    BernoulliDecoder,
    CategoricalDecoder,
    FlowEncoder,
    GaussianDecoder,
    GaussianEncoder,
    RelaxedCategoricalEncoder,
    check_data,
)

F64 = torch.float64


def ppca(seed=0, D=5, L=2, sigma=0.5):
    """A linear-Gaussian VAE: x = W z + b + sigma eps, W with orthogonal columns so the
    exact posterior has diagonal covariance, and an encoder set to that posterior."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(D, L, dtype=F64, generator=g))
    W = Q * torch.tensor([2.0, 1.0], dtype=F64)
    b = torch.randn(D, dtype=F64, generator=g)
    dec = GaussianDecoder(L, D, hidden=(), sigma=sigma).double()
    enc = GaussianEncoder(D, L, hidden=()).double()
    M = W.T @ W + sigma**2 * torch.eye(L, dtype=F64)  # diagonal
    with torch.no_grad():
        dec.net[0].weight.copy_(W)
        dec.net[0].bias.copy_(b)
        A = torch.linalg.solve(M, W.T)  # posterior mean = A (x - b)
        enc.net[0].weight.copy_(torch.cat([A, torch.zeros(L, D, dtype=F64)]))
        enc.net[0].bias.copy_(torch.cat([-A @ b, torch.log(sigma**2 / M.diagonal())]))
    prior = torch.distributions.Independent(torch.distributions.Normal(
        torch.zeros(L, dtype=F64), torch.ones(L, dtype=F64)), 1)
    model = VAE(enc, dec, prior=prior)
    exact = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(D, dtype=F64))
    x = b + torch.randn(7, D, dtype=F64, generator=g) @ torch.linalg.cholesky(
        exact.covariance_matrix).T
    return model, exact, x


def noise(model, k, b, seed, dtype=F64):
    return model.noise(k, b, torch.Generator().manual_seed(seed)).to(dtype)


def test_ppca_importance_sampled_log_likelihood_is_exact():
    model, exact, x = ppca()
    # exact posterior as proposal: every weight equals p(x), so the estimate is exact
    lw = model.log_weights(x, noise(model, 50, len(x), 0))
    assert torch.allclose(lw, exact.log_prob(x).expand_as(lw), atol=1e-10)
    # a wrong proposal: the weights' mean is unbiased for p(x); the log of the estimate is
    # within its delta-method standard error std(w) / (mean(w) sqrt(K))
    with torch.no_grad():
        model.encoder.net[0].bias[:2] += 0.1
        model.encoder.net[0].bias[2:] += 0.2
    K = 20_000
    lw = model.log_weights(x, noise(model, K, len(x), 1)).detach()
    est = torch.logsumexp(lw, 0) - math.log(K)
    w = torch.exp(lw - lw.max(0).values)
    se = w.std(0) / (w.mean(0) * math.sqrt(K))
    assert bool(((est - exact.log_prob(x)).abs() < 4 * se + 1e-4).all())
    g = torch.Generator().manual_seed(2)
    # and the ELBO is strictly below, IWAE in between
    elbo = model.elbo(x, num_samples=2000, generator=g)
    assert bool((elbo < exact.log_prob(x) - 1e-3).all())


def test_analytic_and_mc_kl_agree_within_mc_error():
    torch.manual_seed(0)
    prior = torch.distributions.Independent(torch.distributions.Normal(
        torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)), 1)
    for cov in ("diagonal", "full"):
        enc = GaussianEncoder(6, 3, hidden=(16,), covariance=cov).double()
        dec = BernoulliDecoder(3, 6).double()
        x = torch.rand(4, 6, dtype=F64)
        mu, p = enc.params(x)
        S = torch.diag_embed(p.exp()) if cov == "diagonal" else p @ p.mT
        # KL[N(mu, S) || N(0, I)] = (tr S + mu^T mu - L - log det S) / 2
        closed = 0.5 * (S.diagonal(dim1=-2, dim2=-1).sum(-1) + (mu * mu).sum(-1) - 3
                        - torch.logdet(S))
        eps = noise(VAE(enc, dec, prior=prior), 5, 4, 7)
        z, _ = enc.sample(x, eps)
        log_lik = dec(z).log_prob(x).mean(0)
        analytic = VAE(enc, dec, prior=prior).elbo(x, eps)
        assert torch.allclose(analytic, log_lik - closed, atol=1e-10)
        K = 40_000
        z, log_q = enc.sample(x, noise(VAE(enc, dec, prior=prior), K, 4, 3))
        assert torch.allclose(log_q, enc.distribution(x).log_prob(z), atol=1e-10)
        terms = log_q - prior.log_prob(z)
        se = terms.std(0) / math.sqrt(K)
        assert bool(((terms.mean(0) - closed).abs() < 4 * se).all())


def test_analytic_elbo_runs_the_encoder_once():
    """The analytic-KL ELBO takes z, log q and q(. | x) from one pass of the encoder (its
    gradients equal those of the two-pass formula)."""
    torch.manual_seed(0)
    enc, dec = GaussianEncoder(6, 3, hidden=(16,)).double(), BernoulliDecoder(3, 6).double()
    model = VAE(enc, dec)
    calls = []
    enc.net[-1].register_forward_hook(lambda *args: calls.append(1))  # the output layer
    x = torch.rand(4, 6, dtype=F64)
    eps = noise(model, 5, 4, 7)
    elbo = model.elbo(x, eps)
    assert len(calls) == 1
    z, _ = enc.sample(x, eps)
    two_pass = dec(z).log_prob(x).mean(0) - torch.distributions.kl_divergence(
        enc.distribution(x), model.prior().__class__(
            torch.distributions.Normal(torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)), 1))
    assert torch.allclose(elbo, two_pass, atol=1e-12)
    params = list(model.parameters())
    for a, b in zip(torch.autograd.grad(elbo.sum(), params),
                    torch.autograd.grad(two_pass.sum(), params), strict=True):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_closed_form_kl_route_equals_the_distributions_route(covariance, dtype):
    """With the default N(0, I) prior the ELBO takes z and the KL from the encoder's
    ``sample_and_kl`` (closed form); an explicit N(0, I) prior goes through
    torch.distributions' KL: same values and gradients."""
    torch.manual_seed(1)
    enc = GaussianEncoder(6, 3, hidden=(16,), covariance=covariance).to(dtype)
    dec = BernoulliDecoder(3, 6).to(dtype)
    prior = torch.distributions.Independent(torch.distributions.Normal(
        torch.zeros(3, dtype=dtype), torch.ones(3, dtype=dtype)), 1)
    x = torch.rand(4, 6, dtype=dtype).round()
    eps = noise(VAE(enc, dec), 5, 4, 7, dtype)
    z, kl = enc.sample_and_kl(x, eps)
    z_ref, _ = enc.sample(x, eps)
    assert torch.equal(z, z_ref)
    assert kl.shape == (4,)
    fast, ref = VAE(enc, dec).elbo(x, eps), VAE(enc, dec, prior=prior).elbo(x, eps)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == F64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(fast, ref, **tol)
    params = list(enc.parameters()) + list(dec.parameters())
    for a, b in zip(torch.autograd.grad(fast.sum(), params),
                    torch.autograd.grad(ref.sum(), params), strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_iwae_bounds_ordering():
    model, exact, x = ppca()
    with torch.no_grad():
        model.encoder.net[0].bias += 0.5  # a poor proposal makes the gaps visible
    means = []
    for k in (1, 5, 50):
        reps = torch.stack([model.iwae(x, k, noise(model, k, len(x), s)) for s in range(200)])
        means.append(reps.mean(0))
    mc_model = VAE(model.encoder, model.decoder, prior=model.prior(), kl="mc")
    eps = noise(model, 1, len(x), 0)
    assert torch.allclose(model.iwae(x, 1, eps), mc_model.elbo(x, eps), atol=1e-12)
    assert bool((means[0] < means[1]).all()) and bool((means[1] < means[2]).all())
    assert bool((means[2] < exact.log_prob(x)).all())


def test_iwae_gradients_unbiased_and_dreg_lower_variance():
    model, _, x = ppca()
    with torch.no_grad():
        model.encoder.net[0].bias += 0.3
    enc = list(model.encoder.parameters())
    K, reps = 20, 300
    std_grads, dreg_grads = [], []
    for s in range(reps):
        eps = noise(model, K, len(x), 100 + s)
        g1 = torch.autograd.grad(-model.iwae(x, K, eps).mean(), enc)
        _, enc_loss, _ = model.iwae_dreg_surrogates(x, eps)
        g2 = torch.autograd.grad(enc_loss, enc)
        std_grads.append(torch.cat([g.flatten() for g in g1]))
        dreg_grads.append(torch.cat([g.flatten() for g in g2]))
    a, b = torch.stack(std_grads), torch.stack(dreg_grads)
    assert bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    se = torch.sqrt(a.var(0) / reps + b.var(0) / reps)
    assert bool(((a.mean(0) - b.mean(0)).abs() <= 4.5 * se + 1e-12).all())
    assert float(b.var(0).sum()) < 0.5 * float(a.var(0).sum())


def test_flow_and_relaxed_encoders():
    torch.manual_seed(0)
    base = GaussianEncoder(6, 2, hidden=(8,)).double()
    flow = FlowEncoder(base, num_flows=2, hidden=(8,)).double()
    x = torch.rand(3, 6, dtype=F64)
    z, log_q = flow.sample(x, noise(VAE(flow, BernoulliDecoder(2, 6), kl="mc"), 4, 3, 0))
    q = TransformedDistribution(base.distribution(x), flow.transforms(x))
    assert torch.allclose(log_q, q.log_prob(z), atol=1e-10)
    with pytest.raises(ValueError, match="no closed-form"):
        VAE(flow, BernoulliDecoder(2, 6))

    rel = RelaxedCategoricalEncoder(6, num_variables=3, num_categories=4, hidden=(8,))
    model = VAE(rel, CategoricalDecoder(12, 6, num_classes=17), kl="mc")
    xi = torch.randint(0, 17, (5, 6)).float()
    z, log_q = rel.sample(xi, model.noise(2, 5, torch.Generator().manual_seed(0)))
    assert z.shape == (2, 5, 3, 4) and torch.allclose(z.sum(-1), torch.ones(2, 5, 3))
    assert bool(torch.isfinite(log_q).all())
    elbo = model.elbo(xi, num_samples=3, generator=torch.Generator().manual_seed(0))
    assert elbo.shape == (5,) and bool(torch.isfinite(elbo).all())
    with pytest.raises(ValueError, match="temperature"):
        RelaxedCategoricalEncoder(6, 3, 4, temperature=0.0)


def test_bad_data():
    model = VAE(GaussianEncoder(4, 2, hidden=(8,)), BernoulliDecoder(2, 4, hidden=(8,)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        check_data(model, torch.full((2, 4), 2.0))
    with pytest.raises(ShapeError, match="4"):
        check_data(model, torch.rand(2, 5))
    with pytest.raises(NonFiniteError):
        check_data(model, torch.tensor([[0.1, float("nan"), 0.2, 0.3]]))
    with pytest.raises(ValueError, match="kl must be"):
        VAE(GaussianEncoder(4, 2), BernoulliDecoder(2, 4), kl="exact")
    with pytest.raises(ValueError, match="covariance"):
        GaussianEncoder(4, 2, covariance="banded")


def test_data_dtype_follows_the_model_and_evaluate_checks():
    from bayeskit.vae import evaluate, fit

    model = VAE(GaussianEncoder(4, 2, hidden=(8,)), BernoulliDecoder(2, 4, hidden=(8,)))
    x64 = torch.rand(10, 4, dtype=F64)
    assert check_data(model, x64).dtype == torch.float32
    hist = fit(model, x64, epochs=1, progress=False)
    assert len(hist["epoch"]) == 1
    with pytest.raises(NonFiniteError):
        evaluate(model, torch.full((3, 4), float("nan")))


def test_noise_of_another_shape_or_dtype_is_refused_by_name():
    """Noise [B, L] used to broadcast through the decoder into a mean over the batch: a
    [B] result of the wrong values, no error."""
    from bayeskit.errors import ArgumentTypeError

    model = VAE(GaussianEncoder(6, 2, hidden=(8,)), BernoulliDecoder(2, 6, hidden=(8,)))
    x = torch.rand(5, 6).round()
    for bad in (torch.randn(5, 2), torch.randn(1, 6, 2), torch.randn(1, 5, 3),
                torch.randn(0, 5, 2)):
        for call in (lambda n: model.elbo(x, n), lambda n: model.iwae(x, 1, n),
                     lambda n: model.log_weights(x, n)):
            with pytest.raises(ShapeError, match=r"noise must be \[K, 5, 2\]"):
                call(bad)
    with pytest.raises(ArgumentTypeError, match="float32 like the model"):
        model.elbo(x, torch.randn(1, 5, 2, dtype=F64))
    with pytest.raises(ArgumentTypeError, match="x must be a torch.Tensor"):
        model.elbo("x")
    relaxed = VAE(RelaxedCategoricalEncoder(6, 3, 4), BernoulliDecoder(12, 6), kl="mc")
    assert relaxed.elbo(x, relaxed.noise(2, 5)).shape == (5,)
    with pytest.raises(ShapeError, match=r"\[K, 5, 3, 4\]"):
        relaxed.elbo(x, torch.rand(2, 5, 4, 3))


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_one_sample_elbo_equals_the_sample_axis_route(covariance):
    """One noise draw takes a route without the sample axis: the same value and gradients
    as the same draw repeated twice (the route with the axis and its mean)."""
    torch.manual_seed(0)
    model = VAE(GaussianEncoder(6, 3, hidden=(8,), covariance=covariance),
                BernoulliDecoder(3, 6, hidden=(8,))).double()
    x = torch.rand(5, 6, dtype=F64).round()
    eps = torch.randn(1, 5, 3, dtype=F64)
    values, grads = [], []
    for noise in (eps, eps.expand(2, 5, 3)):
        model.zero_grad()
        value = model.elbo(x, noise, beta=0.7)
        value.sum().backward()
        values.append(value.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(values[0], values[1], rtol=1e-13, atol=1e-13)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_the_noise_check_follows_a_replaced_encoder():
    """The noise's expected shape is the current encoder's."""
    model = VAE(GaussianEncoder(6, 2, hidden=(8,)), BernoulliDecoder(2, 6, hidden=(8,)),
                kl="mc")
    x = torch.rand(5, 6).round()
    model.elbo(x, torch.randn(1, 5, 2))
    model.encoder = GaussianEncoder(6, 3, hidden=(8,))
    model.decoder = BernoulliDecoder(3, 6, hidden=(8,))
    with pytest.raises(ShapeError, match=r"noise must be \[K, 5, 3\]"):
        model.elbo(x, torch.randn(1, 5, 2))
    assert model.elbo(x, torch.randn(1, 5, 3)).shape == (5,)


def test_decoders_take_latents_with_sample_and_batch_axes_row_by_row():
    """The decoders run their network on [K * B, L] rows: the same values as on each
    [B, L] slice, for K = 1 and K > 1 and the relaxed-categorical [K, B, V, C] latents."""
    g = torch.Generator().manual_seed(0)
    for dec, z in ((BernoulliDecoder(2, 6, hidden=(8,)), torch.randn(3, 5, 2, generator=g)),
                   (GaussianDecoder(2, 6, hidden=(8,)), torch.randn(1, 5, 2, generator=g)),
                   (CategoricalDecoder(12, 6, 4, hidden=(8,)),
                    torch.rand(2, 5, 3, 4, generator=g))):
        x = dec(z).sample()
        lp = dec(z).log_prob(x)
        assert lp.shape == z.shape[:2]
        for k in range(z.shape[0]):
            one = dec(z[k:k + 1]).log_prob(x[k:k + 1])[0]  # K = 1
            torch.testing.assert_close(lp[k], one, rtol=1e-6, atol=1e-6)
            if z.dim() == 3:  # a [B, L] latent (no sample axis)
                torch.testing.assert_close(lp[k], dec(z[k]).log_prob(x[k]), rtol=1e-6,
                                           atol=1e-6)


@pytest.mark.parametrize("kl", ["analytic", "analytic-prior", "mc"])
@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_data_is_named_as_x(kl, decoder, bad):
    """NaN data handed to the ELBO directly used to surface as the encoder's 'mean contains
    NaN' (closed-form KL) or torch.distributions' support error; an infinite entry under a
    Gaussian decoder gave a -inf bound with no error."""
    prior = None
    if kl == "analytic-prior":
        prior = torch.distributions.Independent(
            torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
    dec = BernoulliDecoder(2, 6, hidden=(8,)) if decoder == "bernoulli" else \
        GaussianDecoder(2, 6, hidden=(8,))
    model = VAE(GaussianEncoder(6, 2, hidden=(8,)), dec, prior=prior,
                kl="mc" if kl == "mc" else "analytic")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 6, generator=g).round()
    assert bool(torch.isfinite(model.elbo(x, generator=g)).all())
    x[2, 3] = bad
    for call in (lambda: model.elbo(x, generator=g), lambda: model.iwae(x, 3, generator=g),
                 lambda: model.log_weights(x, model.noise(2, 5, g)),
                 lambda: model.log_likelihood(x, 4, generator=g)):
        with pytest.raises(NonFiniteError, match="x contains NaN or infinity"):
            call()


def test_a_diverged_model_keeps_its_nonfinite_bound():
    """Finite data and NaN weights: the bound is returned (``fit`` reports divergence)."""
    model = VAE(GaussianEncoder(6, 2, hidden=(8,)), GaussianDecoder(2, 6, hidden=(8,)), kl="mc")
    with torch.no_grad():
        model.decoder.net[-1].bias.fill_(float("inf"))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 6, generator=g)
    assert not bool(torch.isfinite(model.elbo(x, generator=g)).any())
