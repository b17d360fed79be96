"""Property-based tests of the public layer-1 and layer-2 functions (issue 14): for random
shapes, dtypes, batch dimensions and adversarial values (NaN, inf, 0, negative, huge,
empty) every call returns finite output of the right shape or raises a bayeskit error
(never an opaque torch/LAPACK error, never NaN)."""

import math
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import bayeskit.linalg.blocked as blocked_module
from bayeskit import validation
from bayeskit.bo import knowledge_gradient_discrete
from bayeskit.distributions import (
    polya_gamma_cdf,
    polya_gamma_log_cdf,
    polya_gamma_log_prob,
    polya_gamma_mean,
    polya_gamma_variance,
    sample_polya_gamma,
)
from bayeskit.distributions.gaussian import conditional, gauss_kl, sample_mvn
from bayeskit.errors import BayeskitError
from bayeskit.gp import GPR, SGPR, SquaredExponential
from bayeskit.linalg import (
    cholesky_append,
    cholesky_delete,
    cholesky_inverse,
    cholesky_logdet,
    cholesky_solve,
    cholesky_update,
    cholesky_update_lowrank,
    jittered_cholesky,
    openblas,
    solve_lower,
)

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e300, -1e300, 1e-300]
dtypes = st.sampled_from([torch.float32, torch.float64])
values = st.one_of(st.floats(-10, 10, allow_nan=False), st.sampled_from(SPECIAL))


def spd_factor(n, batch, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(*batch, n, n + 2, dtype=torch.float64, generator=g)
    A = X @ X.mT / max(n, 1) + torch.eye(n, dtype=torch.float64)
    return torch.linalg.cholesky(A).to(dtype)


def corrupt(t: torch.Tensor, value: float, where: int) -> torch.Tensor:
    t = t.clone(memory_format=torch.contiguous_format)
    big = torch.finfo(t.dtype).max
    value = math.copysign(math.inf, value) if abs(value) > big else value  # as a cast would
    if t.numel():
        t.view(-1)[where % t.numel()] = value
    return t


def finite_or_bayeskit_error(fn, *args, **kwargs):
    """Run ``fn``; outputs must be finite, errors must be bayeskit's."""
    try:
        out = fn(*args, **kwargs)
    except BayeskitError:
        return None
    outs = out if isinstance(out, tuple) else (out,)
    for o in outs:
        if isinstance(o, torch.Tensor) and o.is_floating_point():
            assert bool(torch.isfinite(o).all()), f"{fn.__name__} returned non-finite values"
    return out


shapes = st.tuples(st.integers(0, 5), st.lists(st.integers(1, 3), max_size=2))


@given(shapes, dtypes, values, st.integers(0, 1000), st.booleans(), st.integers(0, 10**6))
def test_cholesky_update_and_lowrank(shape, dtype, value, where, corrupt_factor, seed):
    n, batch = shape
    L = spd_factor(n, batch, dtype, seed)
    u = 0.1 * torch.randn(*batch, n, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    if corrupt_factor:
        L = corrupt(L, value, where)
    else:
        u = corrupt(u, value, where)
    out = finite_or_bayeskit_error(cholesky_update, L, u)
    if out is not None:
        assert out.shape == L.shape
    out = finite_or_bayeskit_error(cholesky_update_lowrank, L, u[..., None], -0.5)
    if out is not None:
        assert out.shape == L.shape


@given(shapes, dtypes, values, st.integers(0, 1000), st.integers(1, 3), st.integers(0, 10**6))
def test_cholesky_append_delete_solve_logdet(shape, dtype, value, where, k, seed):
    n, batch = shape
    L = spd_factor(n, batch, dtype, seed)
    g = torch.Generator().manual_seed(seed)
    cross = 0.1 * torch.randn(*batch, n, k, dtype=dtype, generator=g)
    corner = (2 * torch.eye(k, dtype=dtype)).expand(*batch, k, k)
    which = where % 3
    L2 = corrupt(L, value, where) if which == 0 else L
    cross = corrupt(cross, value, where) if which == 1 else cross
    corner = corrupt(corner.clone(), value, where) if which == 2 else corner
    out = finite_or_bayeskit_error(cholesky_append, L2, cross, corner)
    if out is not None:
        assert out.shape[-1] == n + k
    if n:
        out = finite_or_bayeskit_error(cholesky_delete, L2, [where % n])
        if out is not None:
            assert out.shape[-1] == n - 1
    out = finite_or_bayeskit_error(cholesky_solve, L2, cross)
    if out is not None:
        assert out.shape == cross.shape
    out = finite_or_bayeskit_error(solve_lower, L2, cross)
    if out is not None:
        assert out.shape == cross.shape
    out = finite_or_bayeskit_error(cholesky_logdet, L2)
    if out is not None:
        assert out.shape == L.shape[:-2]


@given(shapes, dtypes, values, st.integers(0, 1000), st.booleans(), st.booleans(),
       st.integers(0, 10**6))
def test_cholesky_inverse_on_every_route(shape, dtype, value, where, corrupted, row_major,
                                         seed):
    """Every route (the blocked one in panels of 2 rows; SciPy's OpenBLAS where it is
    found): finite, symmetric and equal to each other to rounding, or a bayeskit error."""
    n, batch = shape
    L = spd_factor(n, batch, dtype, seed)
    L = L.contiguous() if row_major else L.mT.contiguous().mT
    if corrupted:
        L = corrupt(L, value, where)
    with mock.patch.object(blocked_module, "PANEL", 2):
        outs = [finite_or_bayeskit_error(cholesky_inverse, L, backend=b)
                for b in ("torch", "blocked") + ("openblas",) * openblas.available(dtype)]
    assert all((out is None) == (outs[0] is None) for out in outs)
    if outs[0] is not None:
        for out in outs[1:]:
            assert out.shape == L.shape and torch.equal(out, out.mT)
            if outs[0].numel():
                scale = max(float(outs[0].abs().max()), 1.0)
                tol = 1e-10 if dtype == torch.float64 else 1e-4
                assert float((outs[0] - out).abs().max()) <= tol * scale


@given(st.integers(0, 40), st.sampled_from([torch.float16, torch.float32, torch.float64]),
       st.lists(st.tuples(st.integers(0, 1000), values), max_size=3))
def test_all_finite_agrees_with_the_elementwise_test(n, dtype, corruptions):
    """The one-pass check says what ``isfinite(x).all()`` says, also where finite entries
    overflow the sum (huge values in float16/float32)."""
    x = torch.full((n,), 6e4 if dtype == torch.float16 else 3e38, dtype=dtype)
    for where, value in corruptions:
        x = corrupt(x, value, where)
    assert validation.all_finite(x) == bool(torch.isfinite(x).all())


@given(st.integers(0, 5), dtypes, values, st.integers(0, 100))
def test_jittered_cholesky(n, dtype, value, where):
    A = corrupt(torch.eye(n, dtype=dtype) * 2, value, where)
    out = finite_or_bayeskit_error(jittered_cholesky, A)
    if out is not None:
        assert out[0].shape == A.shape


@given(st.integers(1, 4), st.integers(1, 4), dtypes, values, st.integers(0, 100),
       st.booleans(), st.booleans())
def test_gaussian_floor(M, N, dtype, value, where, white, full_cov):
    g = torch.Generator().manual_seed(where)
    Lm = spd_factor(M, (), dtype, where)
    Kmn = corrupt(0.3 * torch.randn(M, N, dtype=dtype, generator=g), value, where)
    Knn = torch.eye(N, dtype=dtype) * 2 if full_cov else torch.full((N,), 2.0, dtype=dtype)
    f = torch.randn(M, dtype=dtype, generator=g)
    S = torch.eye(M, dtype=dtype) * 0.5
    try:
        mean, var = conditional(Kmn, Lm, Knn, f, q_sqrt=S, white=white, full_cov=full_cov)
    except BayeskitError:
        return
    assert bool(torch.isfinite(Kmn).all())  # a NaN/inf anywhere in Kmn is refused
    assert mean.shape == (N,) and bool(torch.isfinite(mean).all())
    assert bool(torch.isfinite(var).all())
    kl = gauss_kl(f, S, None if white else Lm)
    assert kl.shape == () and bool(torch.isfinite(kl))
    x = sample_mvn(f, scale_tril=S, sample_shape=(3,), generator=g)
    assert x.shape == (3, M)


@given(st.one_of(st.floats(0.1, 20), st.sampled_from(SPECIAL)),
       st.one_of(st.floats(-20, 20), st.sampled_from(SPECIAL)),
       st.one_of(st.floats(0.0, 5.0), st.sampled_from(SPECIAL)), st.integers(0, 4))
def test_polya_gamma_functions(b, c, w, n):
    for fn, args in ((polya_gamma_mean, (b, c)), (polya_gamma_variance, (b, c))):
        finite_or_bayeskit_error(fn, torch.tensor(args[0], dtype=torch.float64), args[1])
    try:
        lp = polya_gamma_log_prob(w, b, c)
        assert not bool(torch.isnan(lp)) and float(lp) < math.inf
        cdf = polya_gamma_cdf(w, b, c)
        assert 0.0 <= float(cdf) <= 1.0
    except BayeskitError:
        pass
    out = finite_or_bayeskit_error(sample_polya_gamma, b, torch.full((n,), c, dtype=torch.float64),
                                   generator=torch.Generator().manual_seed(n))
    if out is not None:  # draws near b / (2|c|) may underflow to 0 for |c| near 1e300
        assert out.shape == (n,) and bool((out >= 0).all())


@given(st.floats(1.0, 7.0), st.floats(-30, 30), st.floats(-12, 80))
def test_polya_gamma_density_and_cdf_cover_the_support_for_large_b(log10_b, c, z):
    """Issue 14: for every b up to 1e7 and any point z standard deviations from the mean,
    log_prob and log_cdf return numbers (no refusal): the series or the inversions."""
    b = 10.0**log10_b
    m = float(polya_gamma_mean(torch.tensor(b, dtype=torch.float64), c))
    sd = math.sqrt(float(polya_gamma_variance(torch.tensor(b, dtype=torch.float64), c)))
    w = torch.tensor(max(m + z * sd, m * 1e-3), dtype=torch.float64)
    lp = float(polya_gamma_log_prob(w, b, c))
    log_f = float(polya_gamma_log_cdf(w, b, c))
    assert math.isfinite(lp) and -math.inf < log_f <= 0


@given(st.lists(values, min_size=0, max_size=6), st.integers(0, 10**6))
def test_discrete_kg(mean, seed):
    s = torch.randn(len(mean), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    out = finite_or_bayeskit_error(knowledge_gradient_discrete,
                                   torch.tensor(mean, dtype=torch.float64), s)
    if out is not None:
        assert float(out) >= 0


bad_arrays = st.one_of(
    st.none(), st.text(max_size=3), st.just([[1.0, 2.0], [3.0]]), st.just(np.zeros((0, 2))),
    st.just(np.array([[1.0 + 2j, 0.0]])), st.just(np.array([[math.nan, 0.0]])),
    st.just(np.array([[math.inf, 0.0]])), st.just(np.zeros((2, 2, 2))),
    st.just(np.array([["a", "b"]])), st.just(np.full((2, 2), 1e300)))


@given(bad_arrays, st.sampled_from(["X", "y", "Xnew"]))
def test_models_refuse_bad_arrays_with_bayeskit_errors(bad, which):
    X = np.linspace(0, 1, 6)[:, None]
    y = np.sin(6 * X[:, 0])
    gp = GPR(X, y, SquaredExponential())
    with pytest.raises(BayeskitError):
        if which == "X":
            GPR(bad, y)
        elif which == "y":
            SGPR(X, bad, X[:3])
        else:
            out = gp.predict_f(bad)
            assume(False)  # pragma: no cover - reaching here means the input was accepted
            return out


@given(st.one_of(st.none(), st.text(max_size=2), st.booleans(), st.sampled_from(SPECIAL),
                 st.just([1.0, 2.0]), st.just(np.zeros(2))))
def test_scalar_checks(x):
    try:
        v = validation.as_scalar(x, "x", positive=True)
    except BayeskitError:
        return
    assert math.isfinite(v) and v > 0
