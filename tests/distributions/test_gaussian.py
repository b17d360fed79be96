"""The Gaussian floor against float64 brute force and torch.distributions."""

import numpy as np
import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from bayeskit.distributions.gaussian import (
    append_observations,
    conditional,
    diagonal_gauss_kl,
    fantasy_sigma,
    gauss_hermite,
    gauss_hermite_expectation,
    gauss_kl,
    moments_to_natural,
    natural_to_moments,
    sample_mvn,
    whitened_sparse_terms,
    whitened_variance_reduction,
)
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError

F64 = torch.float64


def spd(n, g, batch=()):
    A = torch.randn(*batch, n, n, dtype=F64, generator=g)
    return A @ A.mT + n * torch.eye(n, dtype=F64)


@pytest.mark.parametrize("white", [True, False])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_conditional_matches_the_joint_gaussian(white, batch):
    """u ~ N(f, S S^T) (in v = L^-1 u when white); the marginal of f_n from the joint."""
    g = torch.Generator().manual_seed(0)
    M, N = 4, 5
    K = spd(M + N, g, batch)
    Kmm, Kmn, Knn = K[..., :M, :M], K[..., :M, M:], K[..., M:, M:]
    Lm = torch.linalg.cholesky(Kmm)
    f = torch.randn(*batch, M, dtype=F64, generator=g)
    S = torch.tril(torch.randn(*batch, M, M, dtype=F64, generator=g))
    mean, cov = conditional(Kmn, Lm, Knn, f, q_sqrt=S, full_cov=True, white=white)
    # brute force: u's mean and covariance, then f | u linear-Gaussian
    mu_u, cov_u = (Lm @ f[..., None])[..., 0], Lm @ S @ S.mT @ Lm.mT
    if not white:
        mu_u, cov_u = f, S @ S.mT
    P = torch.linalg.solve(Kmm, Kmn)  # Kmm^-1 Kmn
    ref_mean = (P.mT @ mu_u[..., None])[..., 0]
    ref_cov = Knn - Kmn.mT @ P + P.mT @ cov_u @ P
    torch.testing.assert_close(mean, ref_mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(cov, ref_cov, rtol=1e-10, atol=1e-10)
    _, var = conditional(Kmn, Lm, Knn.diagonal(dim1=-2, dim2=-1), f, q_sqrt=S, white=white)
    torch.testing.assert_close(var, ref_cov.diagonal(dim1=-2, dim2=-1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("white", [True, False])
@pytest.mark.parametrize("batched", [False, True])
def test_conditional_gradients_match_autograd_through_the_plain_formula(white, batched):
    """The marginals' hand-written backward (dA elementwise from the saved D A) against
    autograd through ``Knn - |A|^2 + |S^T P|^2`` in float64, every input at once, with the
    factor and q(u) shared across a batch of point sets (the gradients summed over it)."""
    g = torch.Generator().manual_seed(5)
    M, N = 5, 7
    batch = (3,) if batched else ()
    Lm = torch.linalg.cholesky(spd(M, g)).requires_grad_()
    Kmn = torch.randn(*batch, M, N, dtype=F64, generator=g, requires_grad=True)
    Knn = (10 + torch.rand(*batch, N, dtype=F64, generator=g)).requires_grad_()
    f = torch.randn(M, dtype=F64, generator=g, requires_grad=True)
    S = (0.3 * torch.tril(torch.randn(M, M, dtype=F64, generator=g))).requires_grad_()
    w = torch.randn(*batch, N, dtype=F64, generator=g)

    def plain():
        A = torch.linalg.solve_triangular(Lm, Kmn, upper=False)
        P = A if white else torch.linalg.solve_triangular(Lm.mT, A, upper=True)
        mean = (f.unsqueeze(-2) @ P).squeeze(-2)
        var = Knn - (A * A).sum(-2) + ((S.mT @ P) ** 2).sum(-2)
        return mean, var

    inputs = (Lm, Kmn, Knn, f, S)
    for outputs in (conditional(Kmn, Lm, Knn, f, q_sqrt=S, white=white), plain()):
        torch.testing.assert_close(outputs[0], plain()[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(outputs[1], plain()[1], rtol=1e-12, atol=1e-12)
    ours = torch.autograd.grad((conditional(Kmn, Lm, Knn, f, q_sqrt=S, white=white)[0] * w
                                + conditional(Kmn, Lm, Knn, f, q_sqrt=S, white=white)[1]
                                * w * w).sum(), inputs)
    mean, var = plain()
    ref = torch.autograd.grad((mean * w + var * w * w).sum(), inputs)
    for name, a, b in zip(("Lm", "Kmn", "Knn", "f", "q_sqrt"), ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    # only the mean used, only the variance used (one output's gradient is None)
    for pick in (0, 1):
        ours = torch.autograd.grad(
            (conditional(Kmn, Lm, Knn, f, q_sqrt=S, white=white)[pick] * w).sum(), inputs,
            allow_unused=True)
        ref = torch.autograd.grad((plain()[pick] * w).sum(), inputs, allow_unused=True)
        for a, b in zip(ours, ref, strict=True):  # None and a zero gradient both mean 0
            a = torch.zeros(()) if a is None else a
            b = torch.zeros(()) if b is None else b
            torch.testing.assert_close(a.expand_as(b) if a.dim() == 0 else a,
                                       b.expand_as(a) if b.dim() == 0 else b,
                                       rtol=1e-10, atol=1e-12, check_dtype=False)


def test_conditional_names_a_non_finite_kmn_and_refuses_an_overflow():
    """Kmn's finiteness is read off the results: a NaN still names Kmn; finite inputs whose
    moments overflow raise too, never return inf."""
    from bayeskit.errors import NonFiniteError

    g = torch.Generator().manual_seed(6)
    Lm = torch.linalg.cholesky(spd(3, g))
    Kmn = torch.randn(3, 4, dtype=F64, generator=g)
    f, S = torch.ones(3, dtype=F64), torch.eye(3, dtype=F64)
    bad = Kmn.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="Kmn"):
        conditional(bad, Lm, torch.ones(4, dtype=F64), f, q_sqrt=S, white=True)
    with pytest.raises(NonFiniteError, match="overflow"):
        conditional(Kmn * 1e200, Lm, torch.ones(4, dtype=F64), f, q_sqrt=2 * S, white=True)
    # not whitened, with the projection passed in: a factor that is not a Cholesky factor
    # is named (before: its solve of f gave inf and the message blamed Kmn's scale)
    A = torch.linalg.solve_triangular(Lm, Kmn, upper=False)
    bad_L = Lm.clone()
    bad_L[1, 1] = 0.0
    with pytest.raises(ValueError, match="Lm must be a lower Cholesky factor"):
        conditional(Kmn, bad_L, torch.ones(4, dtype=F64), f, q_sqrt=S, white=False,
                    projection=A)


@pytest.mark.parametrize("whitened", [True, False])
def test_gauss_kl_matches_torch_distributions(whitened):
    g = torch.Generator().manual_seed(1)
    M = 5
    mu = torch.randn(3, M, dtype=F64, generator=g)
    S = torch.tril(torch.randn(3, M, M, dtype=F64, generator=g))
    S.diagonal(dim1=-2, dim2=-1).abs_().add_(0.5)
    K = spd(M, g)
    L = None if whitened else torch.linalg.cholesky(K)
    prior = MultivariateNormal(torch.zeros(M, dtype=F64),
                               scale_tril=torch.eye(M, dtype=F64) if whitened else L)
    ref = kl_divergence(MultivariateNormal(mu, scale_tril=S), prior)
    torch.testing.assert_close(gauss_kl(mu, S, L), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_diagonal_gauss_kl_matches_torch_distributions(dtype):
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(4, 6, 3, dtype=dtype, generator=g).requires_grad_()
    log_var = torch.randn(4, 6, 3, dtype=dtype, generator=g).requires_grad_()
    kl = diagonal_gauss_kl(mean, log_var)
    q = Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)
    p = Independent(Normal(torch.zeros(3, dtype=dtype), torch.ones(3, dtype=dtype)), 1)
    ref = kl_divergence(q, p)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == F64 else {"rtol": 1e-5, "atol": 1e-6}
    assert kl.shape == (4, 6) and kl.dtype == dtype
    torch.testing.assert_close(kl, ref, **tol)
    w = torch.randn(4, 6, dtype=dtype, generator=g)
    grads = torch.autograd.grad((w * kl).sum(), (mean, log_var))
    refs = torch.autograd.grad((w * ref).sum(), (mean, log_var))
    for a, b in zip(grads, refs, strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_diagonal_gauss_kl_stays_exact_where_the_variance_underflows():
    # the variance exp(-800) is 0 in float64: a KL through its logarithm is infinite there
    log_var = torch.tensor([-800.0, 0.0], dtype=F64, requires_grad=True)
    through_variance = kl_divergence(Normal(torch.zeros(2, dtype=F64),
                                            torch.exp(0.5 * log_var.detach())),
                                     Normal(0.0, 1.0)).sum()
    assert float(through_variance) == float("inf")
    kl = diagonal_gauss_kl(torch.zeros(2, dtype=F64), log_var)
    assert kl.item() == pytest.approx(0.5 * (0.0 - 1 + 800.0))
    (grad,) = torch.autograd.grad(kl, log_var)
    torch.testing.assert_close(grad, torch.tensor([-0.5, 0.0], dtype=F64))


def test_diagonal_gauss_kl_refuses_non_finite_and_mismatched_inputs():
    ok = torch.zeros(2, 3, dtype=F64)
    bad = ok.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="mean"):
        diagonal_gauss_kl(bad, ok)
    with pytest.raises(NonFiniteError, match="log_variance"):
        diagonal_gauss_kl(ok, bad)
    with pytest.raises(NonFiniteError, match="overflows"):
        diagonal_gauss_kl(ok, torch.full_like(ok, 800.0))
    with pytest.raises(NonFiniteError, match="overflows"):
        diagonal_gauss_kl(torch.full_like(ok, 1e200), ok)
    with pytest.raises(ShapeError, match="one shape"):
        diagonal_gauss_kl(ok, ok[:, :2])
    with pytest.raises(ArgumentTypeError, match="log_variance"):
        diagonal_gauss_kl(ok, "x")
    with pytest.raises(ArgumentTypeError, match="share a dtype"):
        diagonal_gauss_kl(ok.float(), ok)


def test_natural_parameters_round_trip():
    g = torch.Generator().manual_seed(2)
    cov = spd(4, g)
    mean = torch.randn(4, dtype=F64, generator=g)
    eta, prec = moments_to_natural(mean, torch.linalg.cholesky(cov))
    torch.testing.assert_close(prec, torch.linalg.inv(cov), rtol=1e-10, atol=1e-12)
    m2, L2 = natural_to_moments(eta, prec)
    torch.testing.assert_close(m2, mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(L2 @ L2.mT, cov, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_natural_to_moments_gives_the_cholesky_factor_of_the_inverse(dtype):
    """The reverse-Cholesky route returns the unique lower factor (positive diagonal) of
    Lambda^-1 and Lambda^-1 eta, batched, in both dtypes."""
    g = torch.Generator().manual_seed(3)
    prec = spd(6, g, (2,))
    eta = torch.randn(2, 6, dtype=F64, generator=g)
    mean, L = natural_to_moments(eta.to(dtype), prec.to(dtype))
    cov = torch.linalg.inv(prec)
    tol = 1e-12 if dtype == F64 else 1e-5
    assert mean.dtype == dtype and L.dtype == dtype
    assert torch.equal(L, torch.tril(L)) and bool((L.diagonal(dim1=-2, dim2=-1) > 0).all())
    torch.testing.assert_close(L.double(), torch.linalg.cholesky(cov), rtol=tol, atol=tol)
    torch.testing.assert_close(mean.double(), (cov @ eta[..., None])[..., 0], rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("kind", ["scale", "precision"])
def test_sample_mvn_moments(kind):
    g = torch.Generator().manual_seed(3)
    cov = spd(3, g) / 3
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    L = torch.linalg.cholesky(cov if kind == "scale" else torch.linalg.inv(cov))
    n = 200_000
    x = sample_mvn(mean, **{f"{kind}_tril": L}, sample_shape=(n,), generator=g)
    assert x.shape == (n, 3)
    # 6 standard errors of the sample mean and covariance entries
    se = (cov.diagonal() / n).sqrt()
    assert bool(((x.mean(0) - mean).abs() < 6 * se).all())
    emp = torch.cov(x.T)
    se_cov = ((cov ** 2 + torch.outer(cov.diagonal(), cov.diagonal())) / n).sqrt()
    assert bool(((emp - cov).abs() < 6 * se_cov).all())
    again = sample_mvn(mean, **{f"{kind}_tril": L}, sample_shape=(5,),
                       generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(again, sample_mvn(mean, **{f"{kind}_tril": L}, sample_shape=(5,),
                                                 generator=torch.Generator().manual_seed(9)))


def test_gauss_hermite_is_exact_for_polynomials():
    x, w = gauss_hermite(6)
    moments = [float((w * x ** k).sum()) for k in range(12)]
    exact = [1, 0, 1, 0, 3, 0, 15, 0, 105, 0, 945, 0]
    np.testing.assert_allclose(moments, exact, rtol=1e-10, atol=1e-10)
    m, v = torch.tensor([0.3, -1.0], dtype=F64), torch.tensor([2.0, 0.5], dtype=F64)
    got = gauss_hermite_expectation(lambda f: f ** 4, m, v, 5)
    torch.testing.assert_close(got, m ** 4 + 6 * m ** 2 * v + 3 * v ** 2, rtol=1e-12, atol=0)


def test_append_observations_and_fantasy_sigma_match_refactorising():
    g = torch.Generator().manual_seed(4)
    n, q, noise = 6, 2, 0.1
    K = spd(n + q + 3, g) / 5  # training, new and prediction points
    C = K[: n + q, : n + q] + noise * torch.eye(n + q, dtype=F64)
    y = torch.randn(n + q, dtype=F64, generator=g)
    L = torch.linalg.cholesky(C[:n, :n])
    f = torch.linalg.solve_triangular(L, y[:n, None], upper=False)[:, 0]
    L_new, f_new = append_observations(L, f, C[:n, n:], C[n:, n:], y[n:])
    torch.testing.assert_close(L_new, torch.linalg.cholesky(C), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        f_new, torch.linalg.solve_triangular(L_new, y[:, None], upper=False)[:, 0])
    # fantasy_sigma: the posterior mean change per standardised outcome at the new points
    star = slice(n + q, None)
    Ks_n = K[star, :n]
    post_cov = K[n:, n:] - K[n:, :n] @ torch.cholesky_solve(K[:n, n:], L)
    cross, cov_new = post_cov[q:, :q], post_cov[:q, :q]
    st = fantasy_sigma(cross, cov_new, torch.tensor(noise, dtype=F64))
    z = torch.randn(q, dtype=F64, generator=g)
    Cn = torch.linalg.cholesky(cov_new + noise * torch.eye(q, dtype=F64))
    y_new = (K[n:n + q, :n] @ torch.cholesky_solve(y[:n, None], L))[:, 0] + Cn @ z
    mu_before = (Ks_n @ torch.cholesky_solve(y[:n, None], L))[:, 0]
    full = torch.cat([y[:n], y_new])
    mu_after = (K[star, : n + q] @ torch.cholesky_solve(full[:, None], torch.linalg.cholesky(
        C)))[:, 0]
    torch.testing.assert_close(mu_after, mu_before + st @ z, rtol=1e-9, atol=1e-10)


def test_cross_covariance_is_the_off_diagonal_block_of_the_full_conditional():
    from bayeskit.distributions.gaussian import cross_covariance

    g = torch.Generator().manual_seed(5)
    M, Q, Q2 = 4, 3, 2
    K = spd(M + Q + Q2, g)
    Lm = torch.linalg.cholesky(K[:M, :M])
    S = torch.tril(torch.randn(M, M, dtype=F64, generator=g))
    Kmx = K[:M, M:]  # both point sets at once
    _, full = conditional(Kmx, Lm, K[M:, M:], torch.zeros(M, dtype=F64), q_sqrt=S,
                          full_cov=True, white=True)
    got = cross_covariance(Kmx[:, :Q], Kmx[:, Q:], Lm, K[M:M + Q, M + Q:], q_sqrt=S)
    torch.testing.assert_close(got, full[:Q, Q:], rtol=1e-12, atol=1e-12)


def test_conditioning_noise_is_validated():
    from bayeskit.errors import BayeskitError
    from bayeskit.gp import GPR

    X = torch.linspace(0, 1, 5, dtype=F64)[:, None]
    post = GPR(X, X[:, 0]).posterior()
    for bad in ("0.1", -1.0, float("nan")):
        with pytest.raises(BayeskitError):
            post.condition_on_observations(X[:1], torch.zeros(1, dtype=F64), noise=bad)


def test_whitened_variance_reduction_gradients_match_autograd():
    """<L^-1 P L^-T, I - S S^T> with its hand-written backward: value and gradients in P,
    L, S against autograd of the plain formula, and torch's gradcheck."""

    g = torch.Generator().manual_seed(4)
    K = torch.randn(7, 30, dtype=F64, generator=g)
    P = (K @ K.mT).requires_grad_()
    L = torch.linalg.cholesky(P.detach() / 30 + torch.eye(7, dtype=F64)).requires_grad_()
    S = torch.tril(0.3 * torch.randn(7, 7, dtype=F64, generator=g)).requires_grad_()

    def plain(P, L, S):
        C = torch.linalg.solve_triangular(L, torch.linalg.solve_triangular(
            L, P, upper=False).mT, upper=False)
        return C.diagonal().sum() - (S * (C @ S)).sum()

    ours, ref = whitened_variance_reduction(P, L, S), plain(P, L, S)
    torch.testing.assert_close(ours, ref, rtol=1e-13, atol=0)
    # gradients of the symmetric input P and of the lower triangles of L and S
    for a, b, mask in zip(torch.autograd.grad(ours, (P, L, S)),
                          torch.autograd.grad(ref, (P, L, S)),
                          (None, torch.ones(7, 7).tril().bool(), torch.ones(7, 7).tril().bool()),
                          strict=True):
        if mask is None:
            a, b = a + a.mT, b + b.mT  # only P's symmetric part is defined
        else:
            a, b = a[mask], b[mask]
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    sym = lambda p, low, s: whitened_variance_reduction(p + p.mT, torch.tril(low), torch.tril(s))  # noqa: E731
    assert torch.autograd.gradcheck(sym, (P.detach().clone().requires_grad_(),
                                          L.detach().clone().requires_grad_(),
                                          S.detach().clone().requires_grad_()))


def test_whitened_variance_reduction_equals_the_per_point_variances_and_checks_inputs():
    g = torch.Generator().manual_seed(5)
    Kmn = torch.randn(6, 40, dtype=F64, generator=g)
    Lm = torch.linalg.cholesky(Kmn @ Kmn.mT / 40 + torch.eye(6, dtype=F64))
    S = torch.tril(0.4 * torch.randn(6, 6, dtype=F64, generator=g))
    S.diagonal().abs_()
    Knn = torch.full((40,), 100.0, dtype=F64)  # no variance reaches conditional's floor at 0
    _, var = conditional(Kmn, Lm, Knn, torch.zeros(6, dtype=F64), q_sqrt=S, white=True)
    assert bool((var > 0).all())
    reduction = whitened_variance_reduction(Kmn @ Kmn.mT, Lm, S)
    torch.testing.assert_close(reduction, (Knn - var).sum(), rtol=1e-12, atol=1e-12)
    P = Kmn @ Kmn.mT
    bad_P = P.clone()
    bad_P[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="gram"):
        whitened_variance_reduction(bad_P, Lm, S)
    with pytest.raises(ShapeError, match="q_sqrt"):
        whitened_variance_reduction(P, Lm, S[:5, :5])
    with pytest.raises(ValueError, match="above the diagonal"):
        whitened_variance_reduction(P, Lm.mT.contiguous(), S)
    with pytest.raises(ShapeError, match="one"):
        whitened_variance_reduction(P.expand(2, 6, 6), Lm.expand(2, 6, 6), S.expand(2, 6, 6))
    with pytest.raises(TypeError):
        whitened_variance_reduction("P", Lm, S)


def test_whitened_sparse_terms_match_autograd_through_the_factorisation():
    """Means and variance reduction with the Cholesky adjoint written in: values and the
    gradients of Kmm (through L = chol(Kmm + jitter I)), Kmn, q_mu and S against autograd
    of the plain formulas, for either output alone and for both."""
    g = torch.Generator().manual_seed(6)
    A = torch.randn(7, 7, dtype=F64, generator=g)
    Kmn0 = torch.randn(7, 30, dtype=F64, generator=g)
    q0 = torch.randn(7, dtype=F64, generator=g)
    S0 = torch.tril(0.3 * torch.randn(7, 7, dtype=F64, generator=g))
    g_mean = torch.randn(30, dtype=F64, generator=g)
    jitter = 1e-3

    def leaves():
        return [(A @ A.mT + 7 * torch.eye(7, dtype=F64)).requires_grad_(),
                Kmn0.clone().requires_grad_(), q0.clone().requires_grad_(),
                S0.clone().requires_grad_()]

    def plain(Kmm, Kmn, q, S):
        L = torch.linalg.cholesky(Kmm + jitter * torch.eye(7, dtype=F64))
        w = torch.linalg.solve_triangular(L.mT, q[:, None], upper=True)[:, 0]
        C = torch.linalg.solve_triangular(L, torch.linalg.solve_triangular(
            L, Kmn @ Kmn.mT, upper=False).mT, upper=False)
        return Kmn.mT @ w, C.diagonal().sum() - (S * (C @ S)).sum()

    def ours(Kmm, Kmn, q, S):
        with torch.no_grad():
            L = torch.linalg.cholesky(Kmm + jitter * torch.eye(7, dtype=F64))
        return whitened_sparse_terms(Kmm, L, Kmn, q, S)

    for weights in ((1.0, 0.0), (0.0, 1.0), (0.7, -1.3)):
        grads, values = [], []
        for fn in (ours, plain):
            xs = leaves()
            mean, red = fn(*xs)
            values.append((mean, red))
            total = weights[0] * (mean * g_mean).sum() + weights[1] * red
            grads.append([torch.zeros_like(x) if d is None else d
                          for x, d in zip(xs, torch.autograd.grad(total, xs, allow_unused=True),
                                          strict=True)])
        for a, b in zip(*values, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        for k, (a, b) in enumerate(zip(*grads, strict=True)):
            if k == 0:  # symmetric input: only the symmetric part is defined
                a, b = a + a.mT, b + b.mT
            if k == 3:  # S is lower triangular
                a, b = torch.tril(a), torch.tril(b)
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


def test_whitened_sparse_terms_check_their_inputs():
    Lm = torch.linalg.cholesky(2 * torch.eye(4, dtype=F64))
    ok = dict(Kmm=Lm @ Lm.mT, Lm=Lm, Kmn=torch.ones(4, 6, dtype=F64),
              q_mu=torch.zeros(4, dtype=F64), q_sqrt=Lm)
    whitened_sparse_terms(**ok)
    with pytest.raises(ShapeError, match="Kmn"):
        whitened_sparse_terms(**{**ok, "Kmn": torch.ones(3, 6, dtype=F64)})
    with pytest.raises(ShapeError, match="Kmm"):
        whitened_sparse_terms(**{**ok, "Kmm": torch.eye(3, dtype=F64)})
    with pytest.raises(NonFiniteError, match="q_mu"):
        whitened_sparse_terms(**{**ok, "q_mu": torch.full((4,), float("nan"), dtype=F64)})
    with pytest.raises(ValueError, match="above the diagonal"):
        whitened_sparse_terms(**{**ok, "Lm": Lm.mT.contiguous() + torch.triu(
            torch.ones(4, 4, dtype=F64), 1)})
    # mixed precision: a clear TypeError naming the arguments, not torch's addmv message
    for name in ("Kmn", "q_sqrt", "q_mu"):
        with pytest.raises(TypeError, match=f"{name}.* must share a dtype"):
            whitened_sparse_terms(**{**ok, name: ok[name].float()})
    with pytest.raises(TypeError, match="gram .*must share a dtype"):  # was silently promoted
        whitened_variance_reduction(torch.eye(4), Lm, Lm)


def test_moments_to_natural_names_a_bad_factor():
    bad = torch.tensor([[1.0, 0.0], [0.5, -1.0]], dtype=torch.float64)
    with pytest.raises(ArgumentValueError, match="cov_cholesky"):
        moments_to_natural(torch.zeros(2, dtype=torch.float64), bad)
    L = torch.eye(2, dtype=torch.float64)
    # a NaN mean gave a NaN eta, a wrong length torch's cholesky_solve error
    with pytest.raises(NonFiniteError, match="mean"):
        moments_to_natural(torch.tensor([float("nan"), 0.0], dtype=torch.float64), L)
    with pytest.raises(ShapeError, match="mean"):
        moments_to_natural(torch.zeros(3, dtype=torch.float64), L)
    with pytest.raises(ArgumentTypeError, match="mean"):
        moments_to_natural(torch.zeros(2), L)
    eta, prec = moments_to_natural(torch.zeros(2, dtype=torch.float64), L)
    assert torch.equal(prec, prec.mT)


def test_batch_dimensions_that_do_not_broadcast_are_named():
    """moments_to_natural and sample_mvn named neither argument (torch's "size of tensor a
    must match" came through); the shared check names both."""
    L = torch.eye(2, dtype=torch.float64).expand(4, 2, 2)
    with pytest.raises(ShapeError, match="mean .*cov_cholesky .*do not broadcast"):
        moments_to_natural(torch.zeros(3, 2, dtype=torch.float64), L)
    with pytest.raises(ShapeError, match="mean .*factor .*do not broadcast"):
        sample_mvn(torch.zeros(3, 2, dtype=torch.float64), scale_tril=L,
                   generator=torch.Generator().manual_seed(0))
    eta, _ = moments_to_natural(torch.zeros(5, 1, 2, dtype=torch.float64), L)
    assert eta.shape == (5, 4, 2)
