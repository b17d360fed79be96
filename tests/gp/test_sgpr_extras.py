"""Titsias's upper bound, inducing-point initialisers, SGPR with a mean function."""

import math

import pytest
import torch

from bayeskit.gp import GPR, SGPR, LinearMean, SquaredExponential, inducing

F64 = torch.float64


def data(n=150, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, dtype=F64, generator=g) * 5
    return X, torch.sin(2 * X[:, 0]) + 0.2 * X[:, 0] + 0.1 * torch.randn(n, dtype=F64, generator=g)


def pair(X, y, Z, jitter=1e-6, **kw):
    kern = dict(lengthscale=0.6, variance=1.3)
    gpr = GPR(X, y, SquaredExponential(**kern), noise_variance=0.02, **kw)
    sgpr = SGPR(X, y, Z, SquaredExponential(**kern), noise_variance=0.02, jitter=jitter, **kw)
    return gpr, sgpr


def test_bounds_sandwich_the_evidence_and_close_at_z_equals_x():
    X, y = data()
    for M in (5, 10, 20, 40):
        gpr, sgpr = pair(X, y, X[:M])
        with torch.no_grad():
            lo, exact, hi = float(sgpr.elbo()), float(gpr.log_marginal_likelihood()), \
                float(sgpr.upper_bound())
        assert lo <= exact <= hi, (M, lo, exact, hi)
    X, y = data(30)  # Z = X: K_uu must factorise with a tiny jitter (which biases both bounds)
    gpr, sgpr = pair(X, y, X.clone(), jitter=1e-11)
    with torch.no_grad():
        exact = float(gpr.log_marginal_likelihood())
        assert float(sgpr.upper_bound()) == pytest.approx(exact, rel=1e-5)
        assert float(sgpr.elbo()) == pytest.approx(exact, rel=1e-5)


def test_sgpr_with_linear_mean_equals_gpr_at_z_equals_x():
    X, y = data(30)
    w = torch.tensor([0.3], dtype=F64)
    gpr, sgpr = pair(X, y, X.clone(), jitter=1e-11,
                     mean_function=LinearMean(1, weight=w, bias=0.1))
    with torch.no_grad():
        assert float(sgpr.elbo()) == pytest.approx(float(gpr.log_marginal_likelihood()),
                                                   rel=1e-6)
    Xs = torch.linspace(0, 7, 9, dtype=F64)[:, None]
    assert torch.allclose(sgpr.predict_f(Xs)[0], gpr.predict_f(Xs)[0], atol=1e-5)


def test_inducing_initialisers():
    X, y = data(300)
    kern = SquaredExponential(0.6, 1.3)
    Zr = inducing.random_subset(X, 12, seed=1)
    Zk = inducing.kmeans(X, 12)
    Zg = inducing.greedy_variance(X, 12, kern)
    assert Zr.shape == Zk.shape == Zg.shape == (12, 1)
    assert len(torch.unique(Zg[:, 0])) == 12
    # greedy selection targets the bound's trace term: it beats a random subset here
    def trace_gap(Z):
        Kzz = kern(Z) + 1e-8 * torch.eye(len(Z), dtype=F64)
        A = torch.linalg.solve_triangular(torch.linalg.cholesky(Kzz), kern(Z, X), upper=False)
        return float(kern.diag(X).sum() - (A * A).sum())
    with torch.no_grad():
        assert trace_gap(Zg) < trace_gap(Zr)
        assert trace_gap(Zk) < trace_gap(Zr)
        # with M = N the greedy factorisation reproduces K exactly (all points chosen)
        small = X[:15]
        Zall = inducing.greedy_variance(small, 15, kern, threshold=1e-12)
        assert len(Zall) <= 15
    with pytest.raises(ValueError, match="M <= N"):
        inducing.kmeans(X[:5], 10)
    with pytest.raises(ValueError, match="NaN"):
        inducing.random_subset(torch.tensor([[0.0], [float("nan")]]), 1)


def test_quality_weighted_greedy_selection_is_the_greedy_dpp_map():
    """With quality q, each step picks the point that maximises det(L_S) for the DPP kernel
    L = diag(q) K diag(q) (brute force over determinants, float64); q = 1 is plain greedy
    variance; bad quality vectors are refused."""
    g = torch.Generator().manual_seed(4)
    X = torch.rand(20, 2, dtype=F64, generator=g)
    kern = SquaredExponential(0.3, 1.7)
    q = torch.rand(20, dtype=F64, generator=g) + 0.05
    with torch.no_grad():
        Lk = q[:, None] * kern(X) * q[None, :]
    chosen = []
    for _ in range(6):
        dets = [float(torch.linalg.det(Lk[chosen + [i]][:, chosen + [i]]))
                if i not in chosen else -1.0 for i in range(20)]
        chosen.append(int(torch.tensor(dets).argmax()))
    Z = inducing.greedy_variance(X, 6, kern, quality=q)
    assert torch.equal(Z, X[chosen])
    assert torch.equal(inducing.greedy_variance(X, 6, kern, quality=torch.ones(20)),
                       inducing.greedy_variance(X, 6, kern))
    with pytest.raises(ValueError, match="one entry per row"):
        inducing.greedy_variance(X, 6, kern, quality=q[:5])
    with pytest.raises(ValueError, match="quality"):
        inducing.greedy_variance(X, 6, kern, quality=-q)
    with pytest.raises(ValueError, match="NaN"):
        inducing.greedy_variance(X, 6, kern, quality=q * math.nan)


def test_greedy_variance_takes_given_rows_first_then_maximises_the_determinant():
    """first=[...]: those rows in that order, then each further choice maximises the
    determinant of K over the chosen set (brute force), as if the first had been greedy."""
    g = torch.Generator().manual_seed(2)
    X = torch.rand(20, 2, dtype=F64, generator=g)
    kern = SquaredExponential(0.3, 1.7)
    with torch.no_grad():
        K = kern(X)
    chosen = [7, 3]
    for _ in range(4):
        dets = [float(torch.linalg.det(K[chosen + [i]][:, chosen + [i]]))
                if i not in chosen else -1.0 for i in range(20)]
        chosen.append(int(torch.tensor(dets).argmax()))
    assert torch.equal(inducing.greedy_variance(X, 6, kern, first=[7, 3]), X[chosen])
    assert torch.equal(inducing.greedy_variance(X, 6, kern, first=torch.tensor([7, 3])),
                       X[chosen])
    # a duplicate of a forced row has no variance left and is skipped, never chosen twice
    Xd = torch.cat([X, X[7:8]])
    Zd = inducing.greedy_variance(Xd, 6, kern, first=[7, 20])
    assert Zd.shape == (6, 2) and torch.equal(Zd[0], X[7])
    assert int((Zd == X[7]).all(-1).sum()) == 1
    for bad, match in (([1, 1], "repeat"), ([0, 20 + 5], "out of range"),
                       (list(range(7)), "more than M"), ([-21], "out of range")):
        with pytest.raises(ValueError, match=match):
            inducing.greedy_variance(X, 6, kern, first=bad)
    with pytest.raises(TypeError, match="integers"):
        inducing.greedy_variance(X, 6, kern, first=[0.5])
    assert torch.equal(inducing.greedy_variance(X, 6, kern, first=[-13, 3]), X[chosen])


def test_chunked_fast_and_stable_routes_agree_with_gradients():
    X, y = data(500)
    Z = X[::25].clone() + 0.01
    out = {}
    for name, kw in (("fast", {}), ("fast-chunked", {"chunk_size": 128}),
                     ("stable", {"method": "stable"}),
                     ("stable-chunked", {"method": "stable", "chunk_size": 97})):
        m = SGPR(X, y, Z, SquaredExponential(0.6, 1.3), noise_variance=0.05, **kw)
        bound = m.elbo()
        bound.backward()
        grad = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        with torch.no_grad():
            out[name] = (float(bound), float(m.upper_bound()), grad)
    for route in ("fast", "stable"):  # chunking changes only the summation order
        a, b = out[route], out[f"{route}-chunked"]
        assert a[0] == pytest.approx(b[0], rel=1e-10)  # terms of ~1e4 cancel to ~200
        assert a[1] == pytest.approx(b[1], rel=1e-6)  # t = tr(K - Q) loses digits
        # errors are small relative to the largest gradient component (norm-wise)
        assert float((a[2] - b[2]).abs().max()) < 1e-8 * float(a[2].abs().max())
    # the M x M route squares K_uu's conditioning in its rounding error: ~1e-8 here
    fast, stable = out["fast"], out["stable"]
    assert fast[0] == pytest.approx(stable[0], rel=1e-6)
    assert float((fast[2] - stable[2]).abs().max()) < 1e-7 * float(stable[2].abs().max())
    with pytest.raises(ValueError, match="method"):
        SGPR(X, y, Z, method="fast")
