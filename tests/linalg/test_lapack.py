"""cholesky_inverse on its three routes (LAPACK's potri through torch and on SciPy's OpenBLAS,
blocked products) against a float64 brute-force inverse; the automatic choice; OpenBLAS's
workers stopped after each call; bad input."""

import os

import pytest
import torch

import bayeskit.linalg.blocked as blocked_module
import bayeskit.linalg.lapack as lapack_module
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.linalg import cholesky_inverse, lapack_backend, openblas
from bayeskit.linalg.blocked import PANEL
from tests.conftest import random_spd

F64 = torch.float64


def spd_factor(n, dtype=F64, batch=(), seed=0):
    """``(L, C)``: the factor in ``dtype`` of the float64 SPD ``C``."""
    C = random_spd(n, batch, generator=torch.Generator().manual_seed(seed), cond_shift=1.0)
    return torch.linalg.cholesky(C).to(dtype), C


ON_OPENBLAS = openblas.available(F64)
needs_openblas = pytest.mark.skipif(not ON_OPENBLAS, reason="SciPy's LAPACK is not OpenBLAS")
ROUTES = ["torch", "blocked", pytest.param("openblas", marks=needs_openblas)]


@pytest.mark.parametrize("backend", ROUTES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n", [1, 7, 300, 2 * PANEL + 31])
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
def test_blocked_route_reads_either_layout_and_leaves_the_factor_alone(layout):
    L, _ = spd_factor(PANEL + 50)
    L = L.contiguous() if layout == "row-major" else L.mT.contiguous().mT
    before = L.clone()
    inv = cholesky_inverse(L, backend="blocked")
    assert torch.equal(L, before)
    torch.testing.assert_close(inv, cholesky_inverse(L, backend="torch"), rtol=1e-11,
                               atol=1e-12)


def test_batches_on_every_route():
    L, C = spd_factor(20, batch=(2, 3))
    # one matrix at a time: batched torch.linalg.inv can fail in this torch build's LU
    ref = torch.stack([torch.linalg.inv(c) for c in C.reshape(-1, 20, 20)]).view(C.shape)
    for backend in ["torch", "blocked"] + ["openblas"] * ON_OPENBLAS:
        inv = cholesky_inverse(L, backend=backend)
        assert inv.shape == (2, 3, 20, 20)
        torch.testing.assert_close(inv, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("panel", [1, 2, 5, 16, 64])
def test_blocked_inverse_in_any_panel_size(dtype, panel, monkeypatch):
    """Every step of the block-column walk (panels that do and do not divide N), in a batch,
    against one float64 inverse per matrix; exactly symmetric, row-major."""
    L, C = spd_factor(67, dtype, batch=(3,), seed=panel)
    ref = torch.stack([torch.linalg.inv(c) for c in C])
    monkeypatch.setattr(blocked_module, "PANEL", panel)
    inv = cholesky_inverse(L, backend="blocked")
    tol = 1e-12 if dtype == F64 else 2e-5
    assert inv.shape == (3, 67, 67) and inv.dtype == dtype and inv.is_contiguous()
    assert torch.equal(inv, inv.mT)
    assert float((inv.double() - ref).abs().max() / ref.abs().max()) < tol


def _ill_conditioned_gp_factor(n: int) -> torch.Tensor:
    """The float64 factor of an exact GP's K + noise I with a small noise (condition 2e8)."""
    g = torch.Generator().manual_seed(3)
    X = torch.rand(n, 2, dtype=F64, generator=g)
    K = torch.exp(-0.5 * torch.cdist(X / 0.3, X / 0.3) ** 2) + 1e-6 * torch.eye(n, dtype=F64)
    return torch.linalg.cholesky(K)


@pytest.mark.parametrize(("n", "panel"), [(2000, None), (600, 16)])
def test_blocked_inverse_of_an_ill_conditioned_factor_is_as_accurate_as_lapack(
        n, panel, monkeypatch):
    """In float32 the blocked inverse is no further from the float64 truth (``potri`` in
    float64 on the float32 factor's exact value) than 1.5x LAPACK's own float32 ``potri``
    (measured 0.48x at N = 2000 and 0.79x with 16-row panels at N = 600: the error does not
    grow with the number of panels, as the first, bottom-up arrangement's did: 17x at
    N = 2000), and in float64 the routes differ by 1e-12 of the largest entry at most
    (measured 1.2e-13)."""
    if panel is not None:
        monkeypatch.setattr(blocked_module, "PANEL", panel)
    L64 = _ill_conditioned_gp_factor(n)
    L = L64.float()
    truth = torch.cholesky_inverse(L.double())
    err = {b: float((cholesky_inverse(L, backend=b).double() - truth).abs().max())
           for b in ("torch", "blocked")}
    assert err["blocked"] < 1.5 * err["torch"], err
    potri = cholesky_inverse(L64, backend="torch")
    gap = (cholesky_inverse(L64, backend="blocked") - potri).abs().max() / potri.abs().max()
    assert float(gap) < 1e-12


def test_gradient_through_torch_route_when_the_factor_requires_one():
    L, _ = spd_factor(6)
    L.requires_grad_(True)
    assert lapack_backend(L, "blocked") == "torch"
    cholesky_inverse(L, backend="blocked").trace().backward()
    L2 = L.detach().clone().requires_grad_(True)
    torch.cholesky_inverse(L2).trace().backward()
    torch.testing.assert_close(L.grad, L2.grad, rtol=1e-12, atol=1e-12)


def test_automatic_choice(monkeypatch):
    """``"auto"`` is LAPACK's ``potri`` on torch's library but for N >= 1500 on an AMD CPU
    beside MKL with no other Python thread (tqdm's monitor aside), where it is OpenBLAS's;
    the blocked route only when asked; never anything but torch's under autograd."""
    big = torch.eye(1500, dtype=F64)
    monkeypatch.delenv("BAYESKIT_LAPACK", raising=False)
    monkeypatch.setattr(lapack_module, "cpu_info", lambda field: "GenuineIntel")
    for A in (big, big.float(), torch.eye(3, dtype=F64)):
        assert lapack_backend(A) == "torch"
        assert lapack_backend(A, "blocked") == "blocked"
    assert lapack_backend(big.half(), "blocked") == "torch"  # no half-precision potri
    assert lapack_backend(big.clone().requires_grad_(True), "blocked") == "torch"
    with torch.no_grad():
        assert lapack_backend(big.clone().requires_grad_(True), "blocked") == "blocked"
    monkeypatch.setenv("BAYESKIT_LAPACK", "blocked")
    assert lapack_backend(torch.eye(3, dtype=F64)) == "blocked"
    monkeypatch.setenv("BAYESKIT_LAPACK", " Torch ")
    assert lapack_backend(big) == "torch"
    assert lapack_backend(big, "blocked") == "blocked"  # the argument wins
    monkeypatch.setenv("BAYESKIT_LAPACK", "scipy")  # a route taken out
    with pytest.raises(ArgumentValueError, match="BAYESKIT_LAPACK"):
        lapack_backend(big)


@needs_openblas
def test_automatic_choice_of_openblas(monkeypatch):
    monkeypatch.delenv("BAYESKIT_LAPACK", raising=False)
    monkeypatch.setattr(lapack_module, "cpu_info", lambda field: "AuthenticAMD")
    monkeypatch.setattr(openblas, "sole_thread", lambda: True)
    big = torch.eye(lapack_module.OPENBLAS_FROM, dtype=F64)
    if torch.backends.mkl.is_available():
        assert lapack_backend(big) == lapack_backend(big.float()) == "openblas"
    assert lapack_backend(big[1:, 1:]) == "torch"  # smaller: torch's
    assert lapack_backend(big.clone().requires_grad_(True)) == "torch"
    assert lapack_backend(big.half()) == "torch"
    assert lapack_backend(big, "torch") == "torch"
    monkeypatch.setattr(openblas, "sole_thread", lambda: False)  # another thread runs
    assert lapack_backend(big) == "torch"
    assert lapack_backend(big, "openblas") == "openblas"  # asked for: taken all the same
    assert lapack_backend(torch.eye(3, dtype=F64), "openblas") == "openblas"
    monkeypatch.setattr(lapack_module, "cpu_info", lambda field: "GenuineIntel")
    monkeypatch.setattr(openblas, "sole_thread", lambda: True)
    assert lapack_backend(big) == "torch"


_SOLE_THREAD_SCRIPT = """
import os, threading
from tqdm import tqdm
from bayeskit.linalg import openblas

assert openblas.sole_thread()
with open(os.devnull, "w") as sink, tqdm(total=1, file=sink, mininterval=0) as bar:
    bar.update(1)
assert any(type(t).__name__ == "TMonitor" for t in threading.enumerate())
assert openblas.sole_thread()  # tqdm's monitor does not count
stop = threading.Event()
other = threading.Thread(target=stop.wait)
other.start()
assert not openblas.sole_thread()
stop.set()
other.join()
assert openblas.sole_thread()
print("ok")
"""


def test_sole_thread_sees_other_python_threads_but_tqdms_monitor():
    """In a fresh interpreter (earlier tests leave Dask's and multiprocessing's threads)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SOLE_THREAD_SCRIPT], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_openblas_building_block_names_what_it_cannot_take():
    with pytest.raises(ArgumentValueError, match="not available for torch.float16"):
        openblas.cholesky_inverse_in_place(torch.eye(3, dtype=torch.float16))
    if ON_OPENBLAS:
        with pytest.raises(ArgumentValueError, match="contiguous square CPU buffer"):
            openblas.cholesky_inverse_in_place(torch.eye(4, dtype=F64)[:, :3])
        with pytest.raises(ArgumentValueError, match="contiguous square CPU buffer"):
            openblas.cholesky_inverse_in_place(torch.eye(4, dtype=F64).mT[::2, ::2])


@needs_openblas
def test_openblas_leaves_no_threads_and_its_own_thread_count():
    """Every call stops OpenBLAS's workers (the process has as many threads after 30 calls
    as before) and gives OpenBLAS back its own thread count, whatever torch's is."""
    from bayeskit.training import torch_threads

    lib = openblas._library()
    L, _ = spd_factor(300)
    with torch_threads(3):  # torch's own pool grows to 3 threads first
        torch.cholesky_inverse(L) @ L
    tasks = "/proc/self/task"
    before = len(os.listdir(tasks)) if os.path.isdir(tasks) else None
    count = lib.get_threads()
    for threads in (1, 2, 3):
        with torch_threads(threads):
            for _ in range(10):
                cholesky_inverse(L, backend="openblas")
        assert lib.get_threads() == count
    if before is not None:
        assert len(os.listdir(tasks)) == before


def test_invalid_factors_raise_by_name():
    L, _ = spd_factor(4)
    with pytest.raises(ShapeError, match="chol"):
        cholesky_inverse(L[:3])
    with pytest.raises(ArgumentTypeError, match="chol"):
        cholesky_inverse("L")
    bad = L.clone()
    bad[2, 2] = -1.0
    with pytest.raises(ArgumentValueError, match="positive diagonal"):
        cholesky_inverse(bad, backend="blocked")
    bad = L.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="chol"):
        cholesky_inverse(bad)
    with pytest.raises(ArgumentValueError, match="backend"):
        cholesky_inverse(L, backend="lapack")
    # a full matrix or an upper factor: LAPACK would read its lower triangle, silently
    for not_lower in (L @ L.mT, L.mT):
        for backend in ["torch", "blocked"] + ["openblas"] * ON_OPENBLAS:
            with pytest.raises(ArgumentValueError, match="above the diagonal"):
                cholesky_inverse(not_lower, backend=backend)


@pytest.mark.parametrize("backend", ROUTES)
def test_overflow_is_named(backend):
    L = torch.diag(torch.tensor([1.0, 1e-200], dtype=F64))
    with pytest.raises(NonFiniteError, match="numerically singular"):
        cholesky_inverse(L, backend=backend)
