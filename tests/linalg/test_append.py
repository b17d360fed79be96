"""cholesky_append / cholesky_delete against factorising the enlarged/reduced matrix."""

import pytest
import torch

from bayeskit.errors import NonFiniteError, NotPositiveDefiniteError, ShapeError
from bayeskit.linalg import cholesky_append, cholesky_delete
from tests.conftest import random_spd


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,k", [(0, 1), (1, 1), (10, 1), (10, 4), (100, 7)])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_append_matches_factor_of_bordered_matrix(dtype, n, k, batch, gen):
    A = random_spd(n + k, batch, dtype, gen)
    L = torch.linalg.cholesky(A[..., :n, :n])
    out = cholesky_append(L, A[..., :n, n:], A[..., n:, n:])
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(out, torch.linalg.cholesky(A), atol=tol, rtol=tol)
    assert out.stride()[-2] == 1  # column-major, like torch.linalg.cholesky


def test_append_into_preallocated_buffer_skips_the_copy(gen):
    A = random_spd(12, generator=gen)
    buf = torch.zeros(12, 12, dtype=torch.float64).mT
    buf[:8, :8] = torch.linalg.cholesky(A[:8, :8])
    L = buf[:8, :8]
    L.diagonal().mul_(1.0)  # still a view into buf
    out = cholesky_append(L, A[:8, 8:], A[8:, 8:], out=buf)
    assert out.data_ptr() == buf.data_ptr()
    torch.testing.assert_close(out, torch.linalg.cholesky(A))
    with pytest.raises(ShapeError, match="out must have shape"):
        cholesky_append(L, A[:8, 8:], A[8:, 8:], out=torch.zeros(11, 11, dtype=torch.float64))


@pytest.mark.parametrize("capacity", [700, 1000])
def test_growing_buffer_of_a_large_factor(capacity, gen):
    """Appending into a preallocated buffer solves against a strided view without copying."""
    A = random_spd(capacity, generator=gen)
    buf = torch.zeros(capacity, capacity, dtype=torch.float64).mT
    n = 600
    buf[:n, :n] = torch.linalg.cholesky(A[:n, :n])
    while n < capacity:
        k = min(37, capacity - n)
        out = cholesky_append(buf[:n, :n], A[:n, n:n + k], A[n:n + k, n:n + k],
                              out=buf[:n + k, :n + k])
        assert out.data_ptr() == buf.data_ptr()
        n += k
    torch.testing.assert_close(buf, torch.linalg.cholesky(A), atol=1e-11, rtol=1e-11)


def test_append_gradients_match_recomputation(gen):
    A = random_spd(9, generator=gen)
    W = torch.randn(9, 9, dtype=torch.float64, generator=gen)
    grads = []
    for fn in (lambda C, D: cholesky_append(torch.linalg.cholesky(A[:6, :6]), C, D),
               lambda C, D: torch.linalg.cholesky(
                   torch.cat([torch.cat([A[:6, :6], C], 1), torch.cat([C.mT, D], 1)]))):
        C = A[:6, 6:].clone().requires_grad_(True)
        D = A[6:, 6:].clone().requires_grad_(True)
        (fn(C, D) * W).sum().backward()
        grads.append((C.grad, torch.tril(D.grad) + torch.triu(D.grad, 1).mT))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_append_not_pd_and_bad_shapes(gen):
    A = random_spd(5, generator=gen)
    L = torch.linalg.cholesky(A[:4, :4])
    with pytest.raises(NotPositiveDefiniteError, match="bordered"):
        cholesky_append(L, A[:4, 4:], -torch.ones(1, 1, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"\[\.\.\., 4, 1\]"):
        cholesky_append(L, A[:3, 4:], A[4:, 4:])
    with pytest.raises(NonFiniteError):
        cholesky_append(L, A[:4, 4:] * float("inf"), A[4:, 4:])
    with pytest.raises(TypeError):
        cholesky_append(L, A[:4, 4:].float(), A[4:, 4:])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_append_with_jitter_factors_a_repeated_row(dtype, gen):
    """Appending copies of existing rows makes the bordered matrix singular: plain append
    refuses, ``jitter=True`` returns a finite factor reproducing it to rounding level."""
    A = random_spd(4, generator=gen).to(dtype)
    L = torch.linalg.cholesky(A)
    cross, corner = A[:, 1:3], A[1:3, 1:3]  # rows 1 and 2 again
    with pytest.raises(NotPositiveDefiniteError):
        cholesky_append(L, cross, corner)
    L_new = cholesky_append(L, cross, corner, jitter=True)
    big = torch.cat([torch.cat([A, cross], 1), torch.cat([cross.mT, corner], 1)])
    assert bool(torch.isfinite(L_new).all())
    eps = torch.finfo(dtype).eps
    assert float((L_new @ L_new.mT - big).abs().max()) < 1e3 * eps * float(A.abs().max())
    torch.testing.assert_close(L_new[:4, :4], L)


@pytest.mark.parametrize("indices", [0, 3, 9, -1, [1, 4], [0, 5, 9], [8, 9], list(range(9))])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_delete_matches_factor_of_reduced_matrix(indices, batch, gen):
    A = random_spd(10, batch, generator=gen)
    drop = torch.as_tensor(indices).reshape(-1) % 10
    keep = [i for i in range(10) if i not in drop.tolist()]
    out = cholesky_delete(torch.linalg.cholesky(A), indices)
    ref = torch.linalg.cholesky(A[..., keep, :][..., :, keep])
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)


def test_delete_on_a_large_factor_uses_the_block_update(gen):
    A = random_spd(400, generator=gen)
    keep = [i for i in range(400) if i not in (3, 250)]
    out = cholesky_delete(torch.linalg.cholesky(A), torch.tensor([250, 3]))
    torch.testing.assert_close(out, torch.linalg.cholesky(A[keep][:, keep]))


def test_delete_bad_indices(gen):
    L = torch.linalg.cholesky(random_spd(4, generator=gen))
    with pytest.raises(ValueError, match="out of range"):
        cholesky_delete(L, 4)
    with pytest.raises(ValueError, match="repeat"):
        cholesky_delete(L, [1, 1])
    with pytest.raises(TypeError, match="integers"):
        cholesky_delete(L, [1.5])
    torch.testing.assert_close(cholesky_delete(L, []), L)
