"""cholesky_inverse on both LAPACK routes (torch's, SciPy's) against a float64 brute-force
inverse; the automatic choice; bad input."""

import pytest
import torch
from threadpoolctl import threadpool_info

import bayeskit.linalg.lapack as lapack_module
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.linalg import cholesky_inverse, lapack_backend

F64 = torch.float64


def spd_factor(n, dtype=F64, batch=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(*batch, n, n, dtype=F64, generator=g)
    C = A @ A.mT / n + torch.eye(n, dtype=F64)
    return torch.linalg.cholesky(C).to(dtype), C


@pytest.mark.parametrize("backend", ["torch", "scipy"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n", [1, 7, 300])
def test_equals_the_brute_force_inverse(backend, dtype, n):
    L, C = spd_factor(n, dtype)
    inv = cholesky_inverse(L, backend=backend)
    ref = torch.linalg.inv(L.double() @ L.double().mT)
    tol = 1e-12 if dtype == F64 else 1e-4
    assert inv.dtype == dtype and inv.shape == (n, n)
    assert float((inv.double() - ref).abs().max() / ref.abs().max()) < tol
    assert inv.stride(-1) == 1  # row-major, whatever the factor's layout
    assert torch.equal(inv, inv.mT)  # exactly symmetric


@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_scipy_route_reads_either_layout_and_leaves_the_factor_alone(layout):
    L, _ = spd_factor(50)
    L = L.contiguous() if layout == "row-major" else L.mT.contiguous().mT
    before = L.clone()
    inv = cholesky_inverse(L, backend="scipy")
    assert torch.equal(L, before)
    torch.testing.assert_close(inv, cholesky_inverse(L, backend="torch"), rtol=1e-12,
                               atol=1e-13)


def test_batches_on_both_routes():
    L, C = spd_factor(20, batch=(2, 3))
    ref = torch.linalg.inv(C)
    for backend in ("torch", "scipy"):
        inv = cholesky_inverse(L, backend=backend)
        assert inv.shape == (2, 3, 20, 20)
        torch.testing.assert_close(inv, ref, rtol=1e-10, atol=1e-12)


def test_scipy_route_keeps_the_blas_thread_count():
    def counts():
        return [(i["filepath"], i["num_threads"]) for i in threadpool_info()
                if i["user_api"] == "blas"]

    before, threads = counts(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cholesky_inverse(spd_factor(64)[0], backend="scipy")
    finally:
        torch.set_num_threads(threads)
    assert counts() == before


def test_gradient_through_torch_route_when_the_factor_requires_one():
    L, _ = spd_factor(6)
    L.requires_grad_(True)
    assert lapack_backend(L, "scipy") == "torch"
    cholesky_inverse(L, backend="scipy").trace().backward()
    L2 = L.detach().clone().requires_grad_(True)
    torch.cholesky_inverse(L2).trace().backward()
    torch.testing.assert_close(L.grad, L2.grad, rtol=1e-12, atol=1e-12)


def test_automatic_choice(monkeypatch):
    big = torch.eye(2500, dtype=F64)
    monkeypatch.delenv("BAYESKIT_LAPACK", raising=False)
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    assert lapack_backend(torch.eye(2499, dtype=F64)) == "torch"  # small
    assert lapack_backend(big.half()) == "torch"  # no half-precision potri
    monkeypatch.setattr(lapack_module, "_cpu_vendor", lambda: "GenuineIntel")
    assert lapack_backend(big) == "torch"  # MKL against OpenBLAS not measured there
    monkeypatch.setattr(lapack_module, "_cpu_vendor", lambda: "AuthenticAMD")
    on_amd = "scipy" if lapack_module._scipy_is_openblas_beside_mkl() else "torch"
    assert lapack_backend(big) == on_amd
    # OpenBLAS's idle threads asleep at once: from N = 2000
    assert lapack_backend(torch.eye(2000, dtype=F64)) == "torch"
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    assert lapack_backend(torch.eye(2000, dtype=F64)) == on_amd
    assert lapack_backend(torch.eye(1999, dtype=F64)) == "torch"
    monkeypatch.setenv("BAYESKIT_LAPACK", "torch")
    assert lapack_backend(big) == "torch"
    monkeypatch.setenv("BAYESKIT_LAPACK", "scipy")
    assert lapack_backend(torch.eye(3, dtype=F64)) == "scipy"
    monkeypatch.setenv("BAYESKIT_LAPACK", "mkl")
    with pytest.raises(ArgumentValueError, match="BAYESKIT_LAPACK"):
        lapack_backend(big)


def test_invalid_factors_raise_by_name():
    L, _ = spd_factor(4)
    with pytest.raises(ShapeError, match="chol"):
        cholesky_inverse(L[:3])
    with pytest.raises(ArgumentTypeError, match="chol"):
        cholesky_inverse("L")
    bad = L.clone()
    bad[2, 2] = -1.0
    with pytest.raises(ArgumentValueError, match="positive diagonal"):
        cholesky_inverse(bad, backend="scipy")
    bad = L.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="chol"):
        cholesky_inverse(bad)
    with pytest.raises(ArgumentValueError, match="backend"):
        cholesky_inverse(L, backend="lapack")
    # a full matrix or an upper factor: LAPACK would read its lower triangle, silently
    for not_lower in (L @ L.mT, L.mT):
        for backend in ("torch", "scipy"):
            with pytest.raises(ArgumentValueError, match="above the diagonal"):
                cholesky_inverse(not_lower, backend=backend)


@pytest.mark.parametrize("backend", ["torch", "scipy"])
def test_overflow_is_named(backend):
    L = torch.diag(torch.tensor([1.0, 1e-200], dtype=F64))
    with pytest.raises(NonFiniteError, match="numerically singular"):
        cholesky_inverse(L, backend=backend)
