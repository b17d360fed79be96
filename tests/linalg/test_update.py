"""cholesky_update / cholesky_update_lowrank against recomputing the factor in float64."""

import pytest
import torch

from bayeskit.errors import ArgumentValueError, NonFiniteError, NotPositiveDefiniteError, ShapeError
from bayeskit.linalg import cholesky_update, cholesky_update_lowrank
from tests.conftest import on_one_thread, random_spd

TOL = {torch.float64: 1e-11, torch.float32: 2e-4}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 7, 64, 300])
@pytest.mark.parametrize("m", [1, 3, 16])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_update_matches_recomputed_factor(dtype, n, m, batch, gen, backend):
    A = random_spd(n, batch, dtype, gen)
    U = torch.randn(*batch, n, m, dtype=dtype, generator=gen) / n**0.5
    L = torch.linalg.cholesky(A)
    out = cholesky_update_lowrank(L, U)
    ref = torch.linalg.cholesky(A + U @ U.mT)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, atol=TOL[dtype], rtol=TOL[dtype])
    # exactly lower triangular, like torch.linalg.cholesky
    assert bool((torch.triu(out, diagonal=1) == 0).all())


@pytest.mark.parametrize("block_size", [1, 2, 5, 8, 13, 64])
@pytest.mark.parametrize("n", [9, 40])
def test_every_block_size_gives_the_same_factor(block_size, n, gen):
    A = random_spd(n, (2,), generator=gen)
    U = torch.randn(2, n, 4, dtype=torch.float64, generator=gen)
    L = torch.linalg.cholesky(A)
    ref = torch.linalg.cholesky(A + U @ U.mT)
    for u in (U, U[..., :1]):
        ref = torch.linalg.cholesky(A + u @ u.mT)
        torch.testing.assert_close(cholesky_update_lowrank(L, u, block_size=block_size), ref)
        torch.testing.assert_close(cholesky_update_lowrank(L[0], u[0], block_size=block_size),
                                   ref[0])


@pytest.mark.parametrize("n", [701, 1200])
@pytest.mark.parametrize("m", [1, 5, 16])
def test_large_factors_in_grouped_blocks(n, m, gen):
    """Large unbatched factors split the block rows into groups that skip zero columns."""
    A = random_spd(n, generator=gen)
    U = torch.randn(n, m, dtype=torch.float64, generator=gen) / n**0.5
    L = torch.linalg.cholesky(A)
    ref = torch.linalg.cholesky(A + U @ U.mT)
    out = cholesky_update_lowrank(L, U)
    torch.testing.assert_close(out, ref, atol=1e-11, rtol=1e-11)
    assert bool((torch.triu(out, diagonal=1) == 0).all())
    torch.testing.assert_close(cholesky_update_lowrank(out, U, -1.0), L, atol=1e-10, rtol=1e-10)


def test_gradients_through_grouped_blocks(gen):
    n, m = 701, 4
    L0 = torch.linalg.cholesky(random_spd(n, generator=gen))
    U0 = torch.randn(n, m, dtype=torch.float64, generator=gen) / n**0.5
    W = torch.randn(n, n, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        expected = cholesky_update_lowrank(L0, U0)
    U = U0.clone().requires_grad_(True)
    out = cholesky_update_lowrank(L0, U)
    torch.testing.assert_close(out.detach(), expected)
    (out * W).sum().backward()
    U2 = U0.clone().requires_grad_(True)
    (torch.linalg.cholesky(L0 @ L0.mT + U2 @ U2.mT) * W).sum().backward()
    torch.testing.assert_close(U.grad, U2.grad, atol=1e-8, rtol=1e-7)


def test_rank1_equals_tfp_semantics_with_multiplier(gen):
    """chol @ chol.T + multiplier * u u^T, the contract of tfp.math.cholesky_update."""
    A = random_spd(20, generator=gen)
    u = torch.randn(20, dtype=torch.float64, generator=gen) / 20
    L = torch.linalg.cholesky(A)
    for mult in (2.5, 0.0, -0.1):
        ref = torch.linalg.cholesky(A + mult * torch.outer(u, u))
        torch.testing.assert_close(cholesky_update(L, u, mult), ref)


def test_iterated_rank1_equals_rank_m(gen):
    """The reference's identity: a rank-M update is M successive rank-1 updates."""
    A = random_spd(30, generator=gen)
    U = torch.randn(30, 5, dtype=torch.float64, generator=gen)
    L = torch.linalg.cholesky(A)
    it = L
    for col in U.unbind(-1):
        it = cholesky_update(it, col)
    torch.testing.assert_close(it, cholesky_update_lowrank(L, U), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("n", [12, 300])
def test_downdate_round_trip(n, gen, backend):
    A = random_spd(n, (2,), generator=gen)
    U = torch.randn(2, n, 2, dtype=torch.float64, generator=gen)
    L = torch.linalg.cholesky(A)
    up = cholesky_update_lowrank(L, U)
    down = cholesky_update_lowrank(up, U, -1.0)
    torch.testing.assert_close(down, L, atol=1e-10, rtol=1e-10)


def test_batch_broadcasting_and_tensor_multiplier(gen, backend):
    A = random_spd(10, (2, 1), generator=gen)
    U = torch.randn(3, 10, 2, dtype=torch.float64, generator=gen)
    mult = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    out = cholesky_update_lowrank(torch.linalg.cholesky(A), U, mult)
    assert out.shape == (2, 3, 10, 10)
    ref = torch.linalg.cholesky(A + mult[:, None, None] * (U @ U.mT))
    torch.testing.assert_close(out, ref)


def test_row_major_factor_is_accepted(gen, backend):
    A = random_spd(50, generator=gen)
    u = torch.randn(50, dtype=torch.float64, generator=gen)
    L = torch.linalg.cholesky(A).contiguous()  # row-major copy
    torch.testing.assert_close(cholesky_update(L, u), torch.linalg.cholesky(A + torch.outer(u, u)))


def test_downdate_to_indefinite_raises_with_batch_index(gen, backend):
    A = random_spd(6, (3,), generator=gen)
    L = torch.linalg.cholesky(A)
    U = torch.zeros(3, 6, 1, dtype=torch.float64)
    # element 1: remove more than its smallest eigen-direction can take
    evals, evecs = torch.linalg.eigh(A[1])
    U[1, :, 0] = evecs[:, 0] * (2 * evals[0]).sqrt()
    with pytest.raises(NotPositiveDefiniteError, match=r"batch index \(1,\)") as err:
        cholesky_update_lowrank(L, U, -1.0)
    assert err.value.batch_index == (1,)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("n", [5, 300])
def test_downdate_failure_never_returns_nan(n, gen, backend):
    A = random_spd(n, generator=gen)
    L = torch.linalg.cholesky(A)
    u = torch.randn(n, dtype=torch.float64, generator=gen) * 100
    with pytest.raises(NotPositiveDefiniteError):
        cholesky_update(L, u, -1.0)


def test_gradients_match_autograd_through_recomputation(gen):
    n, m = 23, 2
    A = random_spd(n, generator=gen)
    L0 = torch.linalg.cholesky(A)
    U0 = torch.randn(n, m, dtype=torch.float64, generator=gen)
    W = torch.randn(n, n, dtype=torch.float64, generator=gen)
    grads = []
    for fn in (
        lambda L, U: cholesky_update_lowrank(L, U, block_size=5),
        lambda L, U: torch.linalg.cholesky(L @ L.mT + U @ U.mT),
    ):
        L = L0.clone().requires_grad_(True)
        U = U0.clone().requires_grad_(True)
        (fn(L, U) * W).sum().backward()
        grads.append((torch.tril(L.grad), U.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_gradcheck_small_rank1():
    g = torch.Generator().manual_seed(0)
    A = random_spd(6, generator=g)
    L = torch.linalg.cholesky(A).requires_grad_(True)
    u = torch.randn(6, dtype=torch.float64, generator=g, requires_grad=True)
    mult = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def f(L, u, mult):
        return cholesky_update(torch.tril(L), u, mult, block_size=4)

    assert torch.autograd.gradcheck(f, (L, u, mult))


def test_bad_inputs_give_clear_errors(gen):
    L = torch.linalg.cholesky(random_spd(4, generator=gen))
    with pytest.raises(ShapeError, match=r"\(4, 4\).*\(5,"):
        cholesky_update_lowrank(L, torch.ones(5, 1, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"\[\.\.\., N, N\].*\(4, 3\)"):
        cholesky_update(L[:, :3], torch.ones(4, dtype=torch.float64))
    with pytest.raises(NonFiniteError):
        cholesky_update(L, torch.tensor([1.0, float("nan"), 0, 0], dtype=torch.float64))
    bad = L.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError):
        cholesky_update(bad, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        cholesky_update(-L, torch.ones(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating"):
        cholesky_update(L, torch.ones(4, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        cholesky_update(L, torch.ones(4, dtype=torch.float32))
    with pytest.raises(ShapeError):
        cholesky_update(L, torch.tensor(1.0, dtype=torch.float64))


def test_empty_update_returns_a_copy(gen):
    L = torch.linalg.cholesky(random_spd(4, generator=gen))
    out = cholesky_update_lowrank(L, torch.zeros(4, 0, dtype=torch.float64))
    assert torch.equal(out, L) and out.data_ptr() != L.data_ptr()


@pytest.mark.parametrize("rank", [1, 5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_kernel_matches_the_eager_path(dtype, rank, gen):
    """256 rank-1 and rank-5 updates and downdates of 100 x 100 factors: the compiled sweep
    (parallel over the batch, and serial) and the eager blocked formula agree with each
    other and with recomputation."""
    from bayeskit import compiled

    A = random_spd(100, (256,), dtype, gen)
    U = torch.randn(256, 100, rank, dtype=dtype, generator=gen) / (10 * rank**0.5)
    L = torch.linalg.cholesky(A)
    alpha = torch.where(torch.arange(256) % 2 == 0, 1.0, -0.1).to(dtype)
    with compiled.use_compiled(True):
        ours = cholesky_update_lowrank(L, U, alpha)
        serial = on_one_thread(cholesky_update_lowrank, L, U, alpha)
    assert torch.equal(ours, serial)
    with compiled.use_compiled(False):
        eager = cholesky_update_lowrank(L, U, alpha)
    ref = torch.linalg.cholesky(A + alpha[:, None, None] * U @ U.mT)
    torch.testing.assert_close(ours, ref, atol=TOL[dtype], rtol=TOL[dtype])
    torch.testing.assert_close(ours, eager, atol=TOL[dtype], rtol=TOL[dtype])
    assert ours.mT.is_contiguous()  # column-major, like torch.linalg.cholesky


@pytest.mark.parametrize("rank", [1, 16])
def test_one_large_factor_takes_the_kernel_and_matches_the_blocked_route(rank, gen):
    """A rank-1 and a rank-16 update and downdate of one 1203 x 1203 factor (not a multiple
    of the kernel's panel or chunk): the parallel sweep equals the serial one exactly, and
    both routes agree with each other and with recomputation."""
    from bayeskit import compiled

    A = random_spd(1203, (), torch.float64, gen)
    U = torch.randn(1203, rank, dtype=torch.float64, generator=gen) / (40 * rank**0.5)
    L = torch.linalg.cholesky(A)
    for mult in (1.0, -0.5):
        with compiled.use_compiled(True):
            ours = cholesky_update_lowrank(L, U, mult)
            serial = on_one_thread(cholesky_update_lowrank, L, U, mult)
        with compiled.use_compiled(False):
            blocked = cholesky_update_lowrank(L, U, mult)
        ref = torch.linalg.cholesky(A + mult * U @ U.mT)
        assert torch.equal(ours, serial)
        torch.testing.assert_close(ours, ref, atol=1e-11, rtol=1e-11)
        torch.testing.assert_close(ours, blocked, atol=1e-12, rtol=1e-12)
        assert bool((torch.triu(ours, diagonal=1) == 0).all())


def _nearly_singular_factor(tiny: float, rank: int):
    g = torch.Generator().manual_seed(0)
    L = torch.tril(torch.randn(40, 40, dtype=torch.float64, generator=g))
    L.diagonal().abs_().add_(0.5)
    L[8, 8] = tiny
    return L, torch.randn(40, rank, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("dtype, tiny", [(torch.float64, 1e-8), (torch.float64, 1e-100),
                                         (torch.float32, 1e-20)])
@pytest.mark.parametrize("rank", [1, 4])
def test_updates_of_a_nearly_singular_factor(dtype, tiny, rank):
    """One diagonal entry of 1e-8 or 1e-100 in an O(1) factor: the compiled sweep (orthogonal
    rotations) stays accurate to rounding, and so do the eager route and the gradient route,
    which redo an update whose blocked result lost digits (|L'L'^T - A| ~ 1e174 |A| at
    1e-100) by a blocked QR of [L^T; U^T]."""
    from bayeskit import compiled

    L, U = _nearly_singular_factor(tiny, rank)
    A = L @ L.mT + U @ U.mT  # float64
    L, U = L.to(dtype), U.to(dtype)
    tol = 1e-14 if dtype == torch.float64 else 1e-6

    def rel_error(out):
        out = out.detach().double()
        return float((out @ out.mT - A).abs().max() / A.abs().max())
    for on in (True, False):
        with compiled.use_compiled(on):
            out = cholesky_update_lowrank(L, U)
        assert rel_error(out) < tol
        assert bool((torch.triu(out, diagonal=1) == 0).all())
        assert bool((out.diagonal() > 0).all())
    assert rel_error(cholesky_update_lowrank(L.clone().requires_grad_(True), U)) < tol
    if dtype == torch.float32:
        return
    # downdating back to L L^T, singular to working precision: either refused or a factor
    # that reproduces it to rounding (rank 1: pivot 6e-8 for 1e-100), never a wrong one
    for on in (True, False):
        with compiled.use_compiled(on):
            try:
                back = cholesky_update_lowrank(out.detach(), U, -1.0)
            except (NotPositiveDefiniteError, ArgumentValueError):
                continue
        A0 = L @ L.mT
        assert float((back @ back.mT - A0).abs().max() / A0.abs().max()) < 1e-10


def test_gradients_of_the_orthogonal_route_match_recomputation():
    """The QR route (taken here because L^-1 U overflows) differentiates like autograd
    through recomputing the factor, for chol, U and the multiplier."""
    L0, U0 = _nearly_singular_factor(1e-200, 3)
    W = torch.randn(40, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (lambda L, U, a: cholesky_update_lowrank(L, U, a),
               lambda L, U, a: torch.linalg.cholesky(L @ L.mT + a * U @ U.mT)):
        L, U = L0.clone().requires_grad_(True), U0.clone().requires_grad_(True)
        a = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
        (fn(L, U, a) * W).sum().backward()
        grads.append((torch.tril(L.grad), U.grad, a.grad))
    for ours, ref in zip(*grads, strict=True):
        torch.testing.assert_close(ours, ref, atol=1e-9, rtol=1e-9)


def test_kernel_downdate_that_loses_definiteness_names_the_batch_index(gen):
    """A rank-3 downdate that is not positive definite in one factor of a batch: the
    compiled sweep reports it and the error names that factor, as on the eager route."""
    from bayeskit import compiled

    A = random_spd(30, (4,), torch.float64, gen)
    U = torch.randn(4, 30, 3, dtype=torch.float64, generator=gen) * 0.01
    U[2] = torch.linalg.cholesky(A[2])[:, :3] * 3  # removes more than A[2] has
    for on in (True, False):
        with compiled.use_compiled(on), pytest.raises(NotPositiveDefiniteError,
                                                    match=r"batch index \(2,\)"):
            cholesky_update_lowrank(torch.linalg.cholesky(A), U, -1.0)


@pytest.mark.parametrize("layout", ["column-major", "row-major"])
def test_factor_checks_probe_either_layout(layout, gen):
    """The cheap factor check reads rows of a row-major factor and columns of a column-major
    one: an upper factor, a full matrix or a stray entry in a probed row/column is refused
    either way, and an infinite diagonal names the problem."""
    L = torch.linalg.cholesky(random_spd(6, (2,), torch.float64, gen))
    L = L if layout == "column-major" else L.contiguous()
    u = torch.ones(6, dtype=torch.float64)
    for bad in (L.mT, L @ L.mT):
        bad = bad.contiguous() if layout == "row-major" else bad.mT.contiguous().mT
        with pytest.raises(ValueError, match="above the diagonal"):
            cholesky_update(bad, u)
    stray = L.clone()
    stray[1, 0, 5] = 0.5  # row 0 (row-major probe) and column 5 (column-major probe)
    with pytest.raises(ValueError, match="above the diagonal"):
        cholesky_update(stray, u)
    inf_diag = L.clone()
    inf_diag[0, 3, 3] = float("inf")
    with pytest.raises(NonFiniteError, match="infinite diagonal"):
        cholesky_update(inf_diag, u)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_well_conditioned_updates_are_never_redone(dtype, monkeypatch, gen):
    """The eager route's redo threshold (64 eps on the 8 checked rows) sits far above what
    the blocked formula leaves on well-conditioned factors (condition numbers up to ~400):
    no update there is redone by the QR route."""
    from bayeskit import compiled
    from bayeskit.linalg import update

    redone = []
    original = update._orthogonal_update
    monkeypatch.setattr(update, "_orthogonal_update",
                        lambda *a: redone.append(1) or original(*a))
    with compiled.use_compiled(False):
        for n, batch in ((100, (8,)), (700, ())):
            for ridge in (1.0, 1e-2):
                A = random_spd(n, batch, dtype, gen, cond_shift=ridge)
                L = torch.linalg.cholesky(A)
                for m in (1, 4, 16):
                    U = torch.randn(*batch, n, m, dtype=dtype, generator=gen) / n**0.5
                    cholesky_update_lowrank(L, U)
    assert not redone


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_sweep_refuses_what_the_factor_check_refuses(dtype, gen, backend):
    """On the compiled route the sweep itself tests the factor (check_cholesky_factor's test,
    run for its message only when a factor fails): every defect the check catches is
    refused with the check's error on both routes, wherever in the batch it sits; an entry
    outside the probed ones passes on both (the probe's known limit)."""
    from bayeskit.validation import check_cholesky_factor

    n = 9
    L = torch.linalg.cholesky(random_spd(n, (4,), torch.float64, gen)).to(dtype)
    u = torch.randn(4, n, dtype=dtype, generator=gen) / 3
    defects = {"negative diagonal": (2, 4, 4, -1.0), "zero diagonal": (1, 0, 0, 0.0),
               "nan diagonal": (3, 8, 8, float("nan")), "inf diagonal": (0, 2, 2, float("inf")),
               "above, last column": (3, 0, 8, 0.5), "above, middle column": (2, 1, 4, -2.0),
               "nan above, last columns": (1, 5, 6, float("nan")),
               "above, unprobed column": (0, 0, 1, 0.5)}
    for name, (b, i, j, value) in defects.items():
        bad = L.clone()
        bad[b, i, j] = value
        try:
            check_cholesky_factor("chol", bad, full=False)
        except (ValueError, TypeError) as err:
            with pytest.raises(type(err), match=str(err)[:30]):
                cholesky_update(bad, u)
        else:
            assert name == "above, unprobed column"
            assert torch.isfinite(cholesky_update(bad, u)).all()


def test_row_major_batch_is_checked_by_rows(gen, backend):
    """A row-major batch is probed along rows (check_cholesky_factor's test for that
    layout), not by the sweep's column probe: a stray entry in the first row is refused."""
    L = torch.linalg.cholesky(random_spd(9, (3,), torch.float64, gen)).contiguous()
    bad = L.clone()
    bad[1, 0, 1] = 0.5  # row 0 (probed for row-major), column 1 (not a probed column)
    with pytest.raises(ValueError, match="above the diagonal"):
        cholesky_update(bad, torch.ones(3, 9, dtype=torch.float64))
