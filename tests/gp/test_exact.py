"""Exact GP regression against scikit-learn's GaussianProcessRegressor and refactorisation."""

import math

import numpy as np
import pytest
import torch
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.gaussian_process.kernels import Matern as SkMatern

import bayeskit.linalg.blocked as blocked_module
from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.gp import GPR, Matern, SquaredExponential
from bayeskit.linalg import openblas

F64 = torch.float64


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 2))
    y = np.sin(X[:, 0]) + 0.5 * np.cos(2 * X[:, 1]) + 0.1 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("which", ["se", "matern52", "matern32", "matern12"])
def test_log_marginal_likelihood_and_predictions_match_sklearn(which):
    X, y = _data()
    ls, var, noise = 0.8, 1.7, 0.05
    if which == "se":
        ours, theirs = SquaredExponential(ls, var), RBF(ls)
    else:
        nu = {"matern52": 2.5, "matern32": 1.5, "matern12": 0.5}[which]
        ours, theirs = Matern(nu, ls, var), SkMatern(length_scale=ls, nu=nu)
    gp = GPR(X, y, ours, noise_variance=noise, mean=0.0, learn_mean=False)
    sk = GaussianProcessRegressor(ConstantKernel(var, "fixed") * theirs.clone_with_theta(
        theirs.theta) + WhiteKernel(noise, "fixed"), optimizer=None, alpha=0.0).fit(X, y)
    sk.kernel_ = ConstantKernel(var, "fixed") * theirs + WhiteKernel(noise, "fixed")
    assert float(gp.log_marginal_likelihood().detach()) == pytest.approx(
        sk.log_marginal_likelihood(sk.kernel_.theta), rel=1e-10)
    Xs = np.random.default_rng(1).uniform(-3, 3, size=(7, 2))
    mean, var_f = gp.predict_f(Xs)
    sk_mean, sk_std = sk.predict(Xs, return_std=True)  # includes the white noise
    np.testing.assert_allclose(mean.numpy(), sk_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose((var_f + noise).numpy(), sk_std**2, rtol=1e-8, atol=1e-10)


def test_fit_maximises_the_marginal_likelihood_like_sklearn():
    X, y = _data(40, 2)
    gp = GPR(X, y, SquaredExponential(1.0, 1.0), noise_variance=0.1, learn_mean=False)
    before = float(gp.log_marginal_likelihood().detach())
    gp.fit(restarts=2)
    after = float(gp.log_marginal_likelihood().detach())
    sk = GaussianProcessRegressor(ConstantKernel(1.0) * RBF(1.0) + WhiteKernel(0.1),
                                  n_restarts_optimizer=3, random_state=0).fit(X, y)
    assert after > before
    assert after == pytest.approx(sk.log_marginal_likelihood_value_, abs=1e-3)


def test_condition_on_observations_equals_refactorising():
    X, y = _data(25, 3)
    gp = GPR(X[:20], y[:20], SquaredExponential(0.9, 1.2), noise_variance=0.02)
    updated = gp.condition_on_observations(X[20:], y[20:])
    full = GPR(X, y, SquaredExponential(0.9, 1.2), noise_variance=0.02)
    with torch.no_grad():
        full.mean_constant = gp.mean_constant
    Xs = torch.randn(6, 2, dtype=F64)
    for a, b in zip(updated.predict_f(Xs, full_cov=True), full.predict_f(Xs, full_cov=True),
                    strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    assert updated.X.shape == (25, 2) and gp.X.shape == (20, 2)


def test_predict_y_and_samples():
    X, y = _data(15, 4)
    gp = GPR(X, y, noise_variance=0.3)
    m_f, v_f = gp.predict_f(X[:4])
    m_y, v_y = gp.predict_y(X[:4])
    torch.testing.assert_close(m_f, m_y)
    torch.testing.assert_close(v_y - v_f, torch.full((4,), float(gp.noise_variance.detach()),
                                                     dtype=F64))
    draws = gp.sample_f(X[:4], 20000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), m_f, atol=4 * math.sqrt(float(v_f.max()) / 20000))
    _, cov = gp.predict_f(X[:4], full_cov=True)
    torch.testing.assert_close(torch.cov(draws.T), cov, atol=0.02, rtol=0.05)


def test_bad_inputs():
    with pytest.raises(ShapeError):
        GPR(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(NonFiniteError):
        GPR(np.array([[0.0], [np.nan]]), np.zeros(2))
    gp = GPR(np.zeros((3, 1)) + np.arange(3)[:, None], np.zeros(3))
    with pytest.raises(ShapeError, match="features"):
        gp.predict_f(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="nu"):
        Matern(nu=2.0)


def use_inverse(route, monkeypatch):
    """The exact GP's inverse on ``route``; the blocked one in panels of 2 rows, so that small
    test problems take every step of it."""
    monkeypatch.setenv("BAYESKIT_LAPACK", route)
    monkeypatch.setattr(blocked_module, "PANEL", 2)


INVERSES = ["torch", "blocked", pytest.param("openblas", marks=pytest.mark.skipif(
    not openblas.available(F64), reason="SciPy's LAPACK is not OpenBLAS here"))]


@pytest.mark.parametrize("inverse", INVERSES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_closed_form_gradient_matches_autograd_through_cholesky(dtype, inverse, monkeypatch):
    from bayeskit.gp.exact import _GaussianNLL

    use_inverse(inverse, monkeypatch)
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 8, dtype=F64, generator=g)
    K0 = A @ A.T / 8 + 0.5 * torch.eye(6, dtype=F64)
    r0 = torch.randn(6, dtype=F64, generator=g)
    eye = torch.eye(6, dtype=F64)
    grads = []
    for fn, fn_dtype in ((lambda K, s, r: _GaussianNLL.apply(K, s, r), dtype),
                         (lambda K, s, r: (0.5 * r @ torch.linalg.solve(K + s * eye, r)
                                           + 0.5 * torch.logdet(K + s * eye)), F64)):
        K = K0.to(fn_dtype, copy=True).requires_grad_(True)
        s = torch.tensor(0.3, dtype=fn_dtype, requires_grad=True)
        r = r0.to(fn_dtype, copy=True).requires_grad_(True)
        fn(K, s, r).backward()
        grads.append((0.5 * (K.grad + K.grad.T), s.grad, r.grad))
    for ours, reference in zip(*grads, strict=True):
        assert ours.dtype == dtype
        torch.testing.assert_close(ours.to(F64), reference, rtol=1e-5 if dtype != F64 else 1e-7,
                                   atol=1e-5 if dtype != F64 else 1e-7)


@pytest.mark.parametrize("inverse", INVERSES)
def test_marginal_likelihood_backward_can_be_repeated_with_retain_graph(inverse, monkeypatch):
    use_inverse(inverse, monkeypatch)
    gp = GPR(torch.linspace(0, 1, 8, dtype=F64)[:, None], torch.sin(torch.arange(8.0)))
    lml = gp.log_marginal_likelihood()
    first = torch.autograd.grad(lml, list(gp.parameters()), retain_graph=True)
    second = torch.autograd.grad(lml, list(gp.parameters()), retain_graph=True)
    third = torch.autograd.grad(lml, list(gp.parameters()))
    for a, b, c in zip(first, second, third, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("x_scale,y_scale", [(1e6, 1.0), (1e-6, 1.0), (1.0, 1e6), (1.0, 1e-6),
                                             (1e-6, 1e6), (1e3, 1e-3)])
def test_default_models_fit_alike_at_any_scale(x_scale, y_scale):
    """Issue 14: with the defaults (kernel, noise and mean from the data's scale, optimised
    in its units) GPR and SGPR on X * s, y * t are the unit-scale fits rescaled: the same
    predictions / t and the same optimum (log marginal likelihood + N log t). Before, X or
    y scaled by 1e6 or 1e-6 gave flat predictors or errors of 3.6e5."""
    from bayeskit.gp import SGPR

    g = torch.Generator().manual_seed(0)
    X = torch.rand(60, 2, generator=g, dtype=F64) * 4 - 2
    y = torch.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.05 * torch.randn(60, generator=g,
                                                                           dtype=F64)
    Xt = torch.rand(20, 2, generator=g, dtype=F64) * 4 - 2
    for make in (lambda a, b: GPR(a, b), lambda a, b: SGPR(a, b, a[:15])):
        unit, scaled = make(X, y).fit(), make(X * x_scale, y * y_scale).fit()
        torch.testing.assert_close(scaled.predict_f(Xt * x_scale)[0] / y_scale,
                                   unit.predict_f(Xt)[0], rtol=0, atol=1e-4)
        objective = (lambda m: m.log_marginal_likelihood()) if isinstance(unit, GPR) else \
            (lambda m: m.elbo())
        with torch.no_grad():
            assert float(objective(scaled)) + 60 * math.log(y_scale) == pytest.approx(
                float(objective(unit)), abs=1e-4)
        assert float(scaled.noise_variance.detach()) / y_scale**2 == pytest.approx(
            float(unit.noise_variance.detach()), rel=1e-3)


def test_default_initialisation_comes_from_the_data():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(50, 2, generator=g, dtype=F64) * torch.tensor([3.0, 1e-4], dtype=F64)
    y = 1e5 + 200 * torch.randn(50, generator=g, dtype=F64)
    gp = GPR(X, y)
    torch.testing.assert_close(gp.kernel.lengthscale.detach(), X.std(0, correction=0))
    assert float(gp.kernel.variance.detach()) == pytest.approx(float(y.var(correction=0)))
    assert float(gp.noise_variance.detach()) == pytest.approx(0.1 * float(y.var(correction=0)))
    assert float(gp.mean_constant.detach()) == pytest.approx(float(y.mean()))
    # explicit values are kept as given; learn_mean=False keeps the zero-mean GP
    gp = GPR(X, y, noise_variance=0.5, mean=3.0)
    assert float(gp.noise_variance.detach()) == pytest.approx(0.5)
    assert float(gp.mean_constant.detach()) == pytest.approx(3.0)
    assert float(GPR(X, y, learn_mean=False).mean_constant) == 0.0
    with pytest.raises(ValueError, match="standardise"):
        GPR(X, y * 1e300)


def test_fit_escapes_the_all_noise_optimum_or_says_so():
    """Issue 14: lengthscales started far too long (5 on a function with lengthscale 0.08)
    put L-BFGS on the flat fit (noise 0.493 of var(y) 0.500, log marginal likelihood -85.2);
    the fit now retries from a small noise and short lengthscales and keeps the better
    optimum (40.7). Pure noise stays all-noise, with a warning; BO's own refits opt out."""
    import warnings

    from bayeskit.gp import SGPR

    g = torch.Generator().manual_seed(0)
    X = torch.rand(80, 1, dtype=F64, generator=g)
    y = torch.sin(25 * X[:, 0]) + 0.1 * torch.randn(80, dtype=F64, generator=g)
    trapped = GPR(X, y, SquaredExponential(5.0, 1.0), noise_variance=2.0).fit(
        escape_all_noise=False)
    assert trapped.explains_all_as_noise()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: it escaped
        fit = GPR(X, y, SquaredExponential(5.0, 1.0), noise_variance=2.0).fit()
        sparse = SGPR(X, y, X[::4], SquaredExponential(5.0, 1.0), noise_variance=2.0).fit()
    with torch.no_grad():
        assert float(fit.log_marginal_likelihood()) == pytest.approx(40.694, abs=1e-2)
        assert float(trapped.log_marginal_likelihood()) == pytest.approx(-85.249, abs=1e-2)
    assert not fit.explains_all_as_noise() and not sparse.explains_all_as_noise()
    grid = torch.linspace(0, 1, 200, dtype=F64)[:, None]
    noise = torch.randn(200, dtype=F64, generator=torch.Generator().manual_seed(5))
    with pytest.warns(RuntimeWarning, match="as noise"):
        assert GPR(grid, noise).fit().explains_all_as_noise()


_KERNELS = {"se": None, "matern12": 0.5, "matern32": 1.5, "matern52": 2.5}


def _kernel(which, ls, var):
    nu = _KERNELS[which]
    return SquaredExponential(ls, var) if nu is None else Matern(nu, ls, var)


def _brute_force(which, X, ls, var, noise, r):
    """-log p(r) + const for K = k(X, X) + noise I from exact differences, autograd through
    float64 LAPACK (the kernel's own code not used)."""
    d2 = (((X[:, None, :] - X[None, :, :]) / ls) ** 2).sum(-1)
    nu = _KERNELS[which]
    if nu is None:
        K = var * torch.exp(-0.5 * d2)
    else:
        off = ~torch.eye(len(X), dtype=torch.bool)
        s = torch.sqrt(2 * nu * torch.where(off, d2, 1.0)) * off  # r = 0 on the diagonal
        K = var * {0.5: 1, 1.5: 1 + s, 2.5: 1 + s + s * s / 3}[nu] * torch.exp(-s)
    C = K + noise * torch.eye(len(X), dtype=X.dtype)
    L = torch.linalg.cholesky(C)
    z = torch.linalg.solve_triangular(L, r[:, None], upper=False)
    return 0.5 * (z * z).sum() + L.diagonal().log().sum()


def _lml_and_grads(gp):
    gp.zero_grad()
    lml = gp.log_marginal_likelihood()
    lml.backward()
    return float(lml.detach()), {k: p.grad.clone() for k, p in gp.named_parameters()}


@pytest.mark.parametrize("which", list(_KERNELS))
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n,ard", [(1, True), (7, False), (130, True), (300, True)])
def test_fused_likelihood_matches_brute_force_and_the_general_route(which, dtype, n, ard,
                                                                    monkeypatch):
    from bayeskit.gp import exact
    from bayeskit.linalg import direct

    g = torch.Generator().manual_seed(n)
    X = torch.rand(n, 3, dtype=F64, generator=g) * 4
    y = torch.sin(X).sum(-1) + 0.1 * torch.randn(n, dtype=F64, generator=g)
    ls = torch.tensor([0.7, 1.3, 0.9], dtype=F64) if ard else torch.tensor(0.8, dtype=F64)

    def model():
        return GPR(X.to(dtype), y.to(dtype), _kernel(which, ls, 1.7), noise_variance=0.05,
                   mean=0.2)

    gp = model()
    fused = exact._fuses(gp.kernel, gp.X, gp.noise_variance)
    assert fused == (direct.available("potrf", dtype) and direct.available("potri", dtype))
    ours = _lml_and_grads(gp)
    monkeypatch.setattr(exact, "_fuses", lambda *args: False)
    general = _lml_and_grads(model())
    # float64 brute force with the parameters' own autograd
    ls_, var_, noise_, mean_ = (t.clone().requires_grad_(True) for t in (
        ls, torch.tensor(1.7, dtype=F64), torch.tensor(0.05, dtype=F64),
        torch.tensor(0.2, dtype=F64)))
    nll = _brute_force(which, X, ls_, var_, noise_, y - mean_) + 0.5 * n * math.log(2 * math.pi)
    nll.backward()
    tol = 1e-10 if dtype == F64 else 2e-4  # float32: 2e-5 of the largest gradient seen
    assert ours[0] == pytest.approx(general[0], rel=tol, abs=tol)
    assert ours[0] == pytest.approx(-float(nll.detach()), rel=tol, abs=tol)
    # the raw parameters' gradients: chain rule through positive() on both routes alike
    for name, grad in ours[1].items():
        assert grad.dtype == general[1][name].dtype
        torch.testing.assert_close(grad, general[1][name], rtol=tol,
                                   atol=tol * (1 + general[1][name].abs().max()))
    gp = model()
    scale = {"kernel.raw_lengthscale": ls_.grad, "kernel.raw_variance": var_.grad,
             "raw_noise": noise_.grad, "raw_mean": mean_.grad}
    for name, p in gp.named_parameters():  # d/d raw = d/d value * d value/d raw
        value = {"kernel.raw_lengthscale": gp.kernel.lengthscale,
                 "kernel.raw_variance": gp.kernel.variance, "raw_noise": gp.noise_variance,
                 "raw_mean": gp.mean_constant}[name]
        (dv,) = torch.autograd.grad(value.sum(), p)
        expected = -(scale[name] * dv.double())
        torch.testing.assert_close(ours[1][name].double(), expected, rtol=tol,
                                   atol=tol * (1 + expected.abs().max()))


@pytest.mark.parametrize("which", ["se", "matern12", "matern52"])
def test_fused_likelihood_takes_the_general_factor_where_potrf_fails(which, monkeypatch):
    """A failed in-place factor (as for a matrix not positive definite in working
    precision) falls back to the jittered factor and torch's inverse: same numbers."""
    from bayeskit.gp import exact

    X, y = _data(40)
    gp = GPR(X, y, _kernel(which, 0.8, 1.7), noise_variance=0.05)
    expected = _lml_and_grads(gp)
    calls = []

    def failing(buf, zero_triangle=True):
        calls.append(buf.shape)
        return torch.ones((), dtype=torch.int32)

    monkeypatch.setattr(exact.direct, "cholesky_in_place", failing)
    got = _lml_and_grads(gp)
    assert calls == ([(40, 40)] if exact._fuses(gp.kernel, gp.X, gp.noise_variance) else [])
    assert got[0] == pytest.approx(expected[0], rel=1e-12)
    for name, grad in got[1].items():
        torch.testing.assert_close(grad, expected[1][name], rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not openblas.available(F64), reason="SciPy's LAPACK is not OpenBLAS here")
@pytest.mark.parametrize("which", ["se", "matern52"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fused_and_general_likelihoods_on_openblas_equal_torchs_lapack(which, dtype,
                                                                        monkeypatch):
    """The inverse on SciPy's OpenBLAS (in the fused likelihood's buffer and through
    cholesky_inverse on the general route) gives torch's LAPACK's value and gradients."""
    from bayeskit.gp import exact

    X, y = (torch.as_tensor(a) for a in _data(90))
    tol = 1e-10 if dtype == F64 else 1e-4
    for general in (False, True):
        results = {}
        for route in ("torch", "openblas"):
            monkeypatch.setenv("BAYESKIT_LAPACK", route)
            with monkeypatch.context() as m:
                if general:
                    m.setattr(exact, "_fuses", lambda *args: False)
                gp = GPR(X.to(dtype), y.to(dtype), _kernel(which, 0.8, 1.7),
                         noise_variance=0.05)
                results[route] = _lml_and_grads(gp)
        assert results["openblas"][0] == pytest.approx(results["torch"][0], rel=tol)
        for name, grad in results["openblas"][1].items():
            torch.testing.assert_close(grad, results["torch"][1][name], rtol=tol, atol=tol)


@pytest.mark.skipif(not openblas.available(F64), reason="SciPy's LAPACK is not OpenBLAS here")
def test_automatic_route_takes_openblas_for_a_large_model_on_amd(monkeypatch):
    """With the automatic choice's conditions met (an AMD CPU beside MKL, no other thread,
    N >= OPENBLAS_FROM) the fused likelihood's inverse runs on OpenBLAS, once per
    backward, and gives torch's LAPACK's value and gradients."""
    import bayeskit.linalg.lapack as lapack_module
    from bayeskit.gp import exact

    if not (torch.backends.mkl.is_available() and exact.direct.available("potri", F64)):
        pytest.skip("torch's LAPACK is not MKL here")
    monkeypatch.delenv("BAYESKIT_LAPACK", raising=False)
    monkeypatch.setattr(lapack_module, "cpu_info", lambda field: "AuthenticAMD")
    monkeypatch.setattr(openblas, "sole_thread", lambda: True)
    calls = []
    real = openblas.cholesky_inverse_in_place
    monkeypatch.setattr(openblas, "cholesky_inverse_in_place",
                        lambda buf: calls.append(buf.shape) or real(buf))
    n = lapack_module.OPENBLAS_FROM
    X, y = (torch.as_tensor(a) for a in _data(n, seed=4))
    auto = _lml_and_grads(GPR(X, y, SquaredExponential(0.8, 1.7), noise_variance=0.05))
    assert calls == [(n, n)]
    monkeypatch.setenv("BAYESKIT_LAPACK", "torch")
    mkl = _lml_and_grads(GPR(X, y, SquaredExponential(0.8, 1.7), noise_variance=0.05))
    assert calls == [(n, n)]
    assert auto[0] == pytest.approx(mkl[0], rel=1e-12)
    for name, grad in auto[1].items():
        torch.testing.assert_close(grad, mkl[1][name], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("inverse", INVERSES[::2])
@pytest.mark.parametrize("which", ["se", "matern32"])
def test_fused_likelihood_names_a_failed_inverse(which, inverse, monkeypatch):
    from bayeskit.gp import exact

    X, y = _data(20)
    gp = GPR(X, y, _kernel(which, 0.8, 1.7), noise_variance=0.05)
    if not exact._fuses(gp.kernel, gp.X, gp.noise_variance):
        pytest.skip("no direct LAPACK here: the general route runs")
    monkeypatch.setenv("BAYESKIT_LAPACK", inverse)
    monkeypatch.setattr(exact.direct if inverse == "torch" else openblas,
                        "cholesky_inverse_in_place",
                        lambda buf: torch.full((), 3, dtype=torch.int32))
    with torch.no_grad():  # the factor's own smallest pivot, which potri would overwrite
        K = gp.kernel(gp.X) + gp.noise_variance * torch.eye(20, dtype=F64)
        smallest = float(torch.linalg.cholesky(K).diagonal().min())
    with pytest.raises(NonFiniteError, match=f"the inverse overflowed: the Cholesky factor of "
                       f"K \\+ noise I is numerically singular .*{smallest:.3g}"):
        gp.log_marginal_likelihood().backward()


@pytest.mark.parametrize("which", ["se", "matern52"])
@pytest.mark.parametrize("fused", [True, False])
def test_non_finite_hyperparameters_are_named_on_either_route(which, fused, monkeypatch):
    from bayeskit.gp import exact

    if not fused:
        monkeypatch.setattr(exact, "_fuses", lambda *args: False)
    X, y = _data(30)
    gp = GPR(X, y, _kernel(which, 0.8, 1.7), noise_variance=0.05)
    with torch.no_grad():
        gp.kernel.raw_lengthscale.fill_(float("nan"))  # as after a diverged optimiser
    with pytest.raises(NonFiniteError, match="hyperparameters or the noise variance"):
        gp.log_marginal_likelihood()


@pytest.mark.parametrize("model", ["gpr", "gpr-general", "sgpr"])
@pytest.mark.parametrize("what", ["mean", "noise"])
def test_non_finite_mean_or_noise_is_named_not_a_nan_objective(model, what, monkeypatch):
    from bayeskit.gp import SGPR, LinearMean, exact

    if model == "gpr-general":
        monkeypatch.setattr(exact, "_fuses", lambda *args: False)
    X, y = _data(30)
    kw = dict(mean_function=LinearMean(2)) if what == "mean" else {}
    gp = (SGPR(X, y, X[:5], SquaredExponential(0.8, 1.7), **kw) if model == "sgpr"
          else GPR(X, y, SquaredExponential(0.8, 1.7), **kw))
    with torch.no_grad():  # as after a diverged optimiser
        if what == "mean":
            for p in gp.mean_function.parameters():
                p.fill_(float("nan"))
        else:
            gp.raw_noise.fill_(float("inf"))
    objective = gp.elbo if model == "sgpr" else gp.log_marginal_likelihood
    match = "prior mean at X" if what == "mean" else "noise_variance is inf"
    with pytest.raises(NonFiniteError, match=match):
        objective()
