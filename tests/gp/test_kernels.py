"""Kernels against their closed forms."""

import math

import pytest
import torch

from bayeskit.errors import ShapeError
from bayeskit.gp import SquaredExponential
from bayeskit.gp.kernels import inverse_positive, positive


def test_squared_exponential_matches_formula_and_is_psd():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(7, 3, dtype=torch.float64, generator=g)
    Y = torch.randn(5, 3, dtype=torch.float64, generator=g)
    k = SquaredExponential(lengthscale=torch.tensor([0.5, 1.0, 2.0]), variance=1.7)
    K = k(X, Y)
    d2 = (((X[:, None, :] - Y[None, :, :]) / torch.tensor([0.5, 1.0, 2.0])) ** 2).sum(-1)
    torch.testing.assert_close(K, 1.7 * torch.exp(-0.5 * d2), atol=1e-12, rtol=1e-10)
    Kxx = k(X).detach()
    assert float(torch.linalg.eigvalsh(Kxx).min()) > -1e-10
    torch.testing.assert_close(k.diag(X), Kxx.diagonal())
    assert k(X[None].expand(2, 7, 3)).shape == (2, 7, 7)


def test_parameters_are_positive_and_trainable():
    k = SquaredExponential(lengthscale=0.3, variance=2.0)
    assert float(k.lengthscale.detach()) == pytest.approx(0.3)
    assert float(k.variance.detach()) == pytest.approx(2.0)
    X = torch.linspace(0, 1, 4, dtype=torch.float64)[:, None]
    k(X).sum().backward()
    assert k.raw_lengthscale.grad is not None
    assert float(positive(inverse_positive(5.0))) == pytest.approx(5.0)
    assert float(positive(torch.tensor(-50.0))) > 0
    with pytest.raises(ValueError):
        inverse_positive(0.0)
    assert "lengthscale=0.3" in repr(k)
    assert math.isfinite(float(k.raw_variance.detach()))


def test_shape_errors():
    k = SquaredExponential()
    with pytest.raises(ShapeError):
        k(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ShapeError, match="features"):
        k(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64))


def _se_reference(a, b, log_variance):
    return torch.exp(log_variance - 0.5 * ((a[..., :, None, :] - b[..., None, :, :]) ** 2).sum(-1))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gradcheck's forward-AD uses jit
def test_squared_exponential_function_derivatives_all_modes():
    """The hand-written SE matrix: value, backward (twice) and forward mode against
    finite differences, cross and symmetric cases, broadcast batch dimensions."""
    from bayeskit.gp.kernels import _SquaredExponentialMatrix as SE

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=g).requires_grad_()
    x2 = torch.randn(4, 3, dtype=torch.float64, generator=g).requires_grad_()
    lv = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    x2_fixed = x2.detach()  # training inputs: the lengthscale term without W^T a
    for ls in (torch.tensor([0.7, 1.3, 2.0], dtype=torch.float64, requires_grad=True),
               torch.tensor(0.8, dtype=torch.float64, requires_grad=True)):
        torch.testing.assert_close(SE.apply(x, x2, ls, lv), _se_reference(x / ls, x2 / ls, lv),
                                   rtol=1e-13, atol=0)
        torch.testing.assert_close(SE.apply(x, None, ls, lv), _se_reference(x / ls, x / ls, lv),
                                   rtol=1e-13, atol=1e-15)
        for fn, inputs in ((lambda x, x2, ls, lv: SE.apply(x, x2, ls, lv), (x, x2, ls, lv)),
                           (lambda x, ls, lv: SE.apply(x, x2_fixed, ls, lv), (x, ls, lv)),
                           (lambda ls, lv: SE.apply(x.detach(), x2_fixed, ls, lv), (ls, lv)),
                           (lambda x, ls, lv: SE.apply(x, None, ls, lv), (x, ls, lv)),
                           (lambda ls, lv: SE.apply(x.detach(), None, ls, lv), (ls, lv))):
            assert torch.autograd.gradcheck(fn, inputs, check_forward_ad=True)
            assert torch.autograd.gradgradcheck(fn, inputs)


def _rq_reference(a, b, log_variance, alpha):
    """The rational quadratic from exact differences (not the kernel's expansion)."""
    r2 = ((a[..., :, None, :] - b[..., None, :, :]) ** 2).sum(-1)
    return torch.exp(log_variance) * (1 + r2 / (2 * alpha)) ** (-alpha)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gradcheck's forward-AD uses jit
def test_rational_quadratic_function_derivatives_all_modes():
    """The hand-written rational quadratic matrix: value, backward (twice) and forward
    mode against finite differences, every input, cross and symmetric cases, broadcast
    batch dimensions; the values against exact differences."""
    from bayeskit.gp.kernels import _RationalQuadraticMatrix as RQ

    def rq(*args):
        return RQ.apply(*args)[0]

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, dtype=torch.float64, generator=g).requires_grad_()
    x2 = torch.randn(4, 3, dtype=torch.float64, generator=g).requires_grad_()
    lv = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    al = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    x2_fixed = x2.detach()
    for ls in (torch.tensor([0.7, 1.3, 2.0], dtype=torch.float64, requires_grad=True),
               torch.tensor(0.8, dtype=torch.float64, requires_grad=True)):
        torch.testing.assert_close(rq(x, x2, ls, lv, al), _rq_reference(x / ls, x2 / ls, lv, al),
                                   rtol=1e-13, atol=0)
        torch.testing.assert_close(rq(x, None, ls, lv, al),
                                   _rq_reference(x / ls, x / ls, lv, al), rtol=1e-13, atol=1e-15)
        for fn, inputs in ((lambda x, x2, ls, lv, al: rq(x, x2, ls, lv, al), (x, x2, ls, lv, al)),
                           (lambda x, ls, al: rq(x, x2_fixed, ls, lv.detach(), al), (x, ls, al)),
                           (lambda ls, lv, al: rq(x.detach(), x2_fixed, ls, lv, al), (ls, lv, al)),
                           (lambda x, ls, lv, al: rq(x, None, ls, lv, al), (x, ls, lv, al)),
                           (lambda ls, al: rq(x.detach(), None, ls, lv.detach(), al), (ls, al))):
            assert torch.autograd.gradcheck(fn, inputs, check_forward_ad=True)
            assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lengthscale", [0.9, [0.7, 1.3]])
def test_rational_quadratic_parameters_gradients_match_the_written_out_formula(dtype,
                                                                                lengthscale):
    """The module's value and the gradients of alpha, lengthscales, variance and inputs
    (symmetric and cross) against autograd of the written-out formula, in either dtype."""
    from bayeskit.gp import RationalQuadratic

    g = torch.Generator().manual_seed(3)
    X = torch.randn(7, 2, dtype=dtype, generator=g)
    X2 = torch.randn(4, 2, dtype=dtype, generator=g)
    k = RationalQuadratic(0.6, torch.tensor(lengthscale, dtype=torch.float64), 1.4).to(dtype)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5,
                                                                          "atol": 2e-6}
    for other in (None, X2):
        Xg = X.clone().requires_grad_()
        got = k(Xg, other)
        ls, v, al = k.lengthscale, k.variance, k.alpha
        ref_b = Xg if other is None else other
        expected = _rq_reference(Xg / ls, ref_b / ls, torch.log(v), al)
        torch.testing.assert_close(got, expected, **tol)
        w = torch.randn(got.shape, dtype=dtype, generator=g)
        params = [Xg, *k.parameters()]
        for a, b in zip(torch.autograd.grad((w * got).sum(), params),
                        torch.autograd.grad((w * expected).sum(), params), strict=True):
            torch.testing.assert_close(a, b, **tol)


@pytest.fixture(params=["product", "differences"])
def matern_route(request, monkeypatch):
    """The Matérn kernel's route whatever the size: distances by the matrix product with
    the hand-written backward, or from the differences under plain autograd."""
    from bayeskit.gp import kernels

    monkeypatch.setattr(kernels, "_EXACT_DIFFERENCES", 0 if request.param == "product" else 2**62)
    return request.param


@pytest.mark.parametrize("nu", [None, 0.5, 1.5, 2.5, "rq", "periodic"])
def test_hand_written_kernels_under_torch_func_transforms(nu, matern_route):
    """vmap of jacrev and functorch's Hessian (forward over reverse) against autograd of the
    closed form from exact differences: the squared exponential (``nu=None``), Matérn and
    the rational quadratic (``"rq"``, alpha 0.8)."""
    from bayeskit.gp import Matern, Periodic, RationalQuadratic

    ls = torch.tensor([0.5, 1.0], dtype=torch.float64)
    k = (SquaredExponential(ls, 1.3) if nu is None else RationalQuadratic(0.8, ls, 1.3)
         if nu == "rq" else Periodic(0.9, ls, 1.3) if nu == "periodic" else Matern(nu, ls, 1.3))
    g = torch.Generator().manual_seed(1)
    X = torch.randn(5, 2, dtype=torch.float64, generator=g)
    x = torch.randn(3, 2, dtype=torch.float64, generator=g)

    def row(xi):
        return k(xi[None], X)[0]

    def reference(xi):
        d2 = (((xi - X) / ls) ** 2).sum(-1)
        if nu is None:
            return 1.3 * torch.exp(-0.5 * d2)
        if nu == "rq":
            return 1.3 * (1 + d2 / 1.6) ** -0.8
        if nu == "periodic":
            return 1.3 * torch.exp(-2 * ((torch.sin(math.pi * (xi - X) / 0.9) / ls) ** 2).sum(-1))
        return _matern_of_squared_distance(d2, nu, 1.3)

    J = torch.func.vmap(torch.func.jacrev(row))(x)
    J_ref = torch.stack([torch.autograd.functional.jacobian(reference, xi) for xi in x])
    torch.testing.assert_close(J, J_ref)
    H = torch.func.hessian(lambda xi: row(xi).sum())(x[0])
    H_ref = torch.autograd.functional.hessian(lambda xi: reference(xi).sum(), x[0])
    torch.testing.assert_close(H, H_ref)


def test_set_units_refuses_what_is_not_a_positive_scale():
    from bayeskit.errors import BayeskitError
    from bayeskit.gp import SquaredExponential

    for bad in ("abc", None, float("nan"), 0.0, -1.0):
        with pytest.raises(BayeskitError):
            SquaredExponential().set_units(bad, 1.0)
    k = SquaredExponential().set_units([1.0, 4.0], 9.0)  # one lengthscale: geometric mean
    assert float(k.lengthscale.detach()) == pytest.approx(2.0)
    assert float(k.variance.detach()) == pytest.approx(9.0)


def _matern_of_squared_distance(d2, nu, var):
    """The Matérn closed form ``var f_nu(sqrt(2 nu r^2))`` (not the kernel's code)."""
    s = torch.sqrt(2 * nu * d2)
    return var * {0.5: 1, 1.5: 1 + s, 2.5: 1 + s + s * s / 3}[nu] * torch.exp(-s)


def _matern_reference(X, Y, nu, ls, var):
    """The Matérn kernel from exact differences in float64 (not the kernel's expansion)."""
    d2 = (((X[..., :, None, :] - Y[..., None, :, :]) / ls) ** 2).sum(-1)
    return _matern_of_squared_distance(d2, nu, var)


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matern_matches_exact_differences_far_from_the_origin_and_at_duplicates(nu, dtype,
                                                                                matern_route):
    """The expansion on centred inputs: inputs offset by 1e3 lengthscales, a duplicate pair
    and test points equal to training points keep float64's digits (float32's to rounding
    of the centred inputs), the diagonal is exactly the variance."""
    from bayeskit.gp import Matern

    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 40, 3, dtype=torch.float64, generator=g) + 1e3
    X[:, 7] = X[:, 3]
    Y = torch.cat([X[:, :5], torch.randn(2, 6, 3, dtype=torch.float64, generator=g) + 1e3], 1)
    ls = torch.tensor([0.7, 1.3, 2.0], dtype=torch.float64)
    k = Matern(nu, lengthscale=ls, variance=1.7)
    # float32: the centred inputs' rounding; nu = 1/2 is not differentiable at r = 0, so a
    # duplicate pair's value carries the square root of the expansion's rounding
    tol = {torch.float64: 1e-13 if nu > 0.5 else 1e-7, torch.float32: 2e-3}[dtype]
    Xd, Yd = X.to(dtype), Y.to(dtype)
    for K, ref in ((k(Xd), _matern_reference(Xd.double(), Xd.double(), nu, ls, 1.7)),
                   (k(Yd, Xd), _matern_reference(Yd.double(), Xd.double(), nu, ls, 1.7))):
        assert K.dtype == dtype
        torch.testing.assert_close(K.detach().double(), ref, rtol=0, atol=tol)
    assert torch.equal(k(Xd).detach().diagonal(dim1=-2, dim2=-1),
                       torch.full((2, 40), 1.7, dtype=torch.float64).to(dtype))


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
def test_matern_gradients_are_finite_at_duplicates_and_exact_elsewhere(nu, matern_route):
    from bayeskit.gp import Matern

    g = torch.Generator().manual_seed(1)
    X = torch.randn(9, 2, dtype=torch.float64, generator=g)
    X[4] = X[1]
    Y = torch.cat([X[:2], torch.randn(3, 2, dtype=torch.float64, generator=g)])
    k = Matern(nu, lengthscale=torch.tensor([0.6, 1.4]), variance=1.3).double()
    for x2 in (None, Y):
        x = X.clone().requires_grad_()
        W = torch.randn(9, 9 if x2 is None else 5, dtype=torch.float64, generator=g)
        (k(x, x2) * W).sum().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in k.parameters())
        k.zero_grad()
    # away from duplicates: every derivative mode of the module against finite differences
    x = X[[0, 2, 3, 5]].clone().requires_grad_()
    y = Y[2:].clone().requires_grad_()
    raw = (k.raw_lengthscale.detach().clone().requires_grad_(),
           k.raw_variance.detach().clone().requires_grad_())

    def matrix(x, y, raw_ls, raw_var):
        params = {"raw_lengthscale": raw_ls, "raw_variance": raw_var}
        return torch.func.functional_call(k, params, (x, y))

    assert torch.autograd.gradcheck(matrix, (x, y, *raw), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(matrix, (x, y, *raw))
    assert torch.autograd.gradcheck(lambda x, *raw: matrix(x, None, *raw), (x, *raw),
                                    check_forward_ad=True)
    assert torch.autograd.gradgradcheck(lambda x, *raw: matrix(x, None, *raw), (x, *raw))


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
def test_matern_value_and_weight_for_the_fused_likelihood(nu):
    """``K`` equals the module's matrix and ``M = dK/dE`` (``E = -r^2 / 2``) equals autograd's
    derivative of the closed form in ``r^2`` off the diagonal."""
    from bayeskit.gp import Matern
    from bayeskit.gp.kernels import _centred, _matern_distance, _matern_value_and_weight

    g = torch.Generator().manual_seed(3)
    X = torch.randn(12, 3, dtype=torch.float64, generator=g)
    ls = torch.tensor([0.8, 1.1, 1.9], dtype=torch.float64)
    k = Matern(nu, ls, 1.6)
    a = _centred(X, None, ls)[0]
    s = _matern_distance(a, a, nu, True)
    K, M = _matern_value_and_weight(s, nu, torch.tensor(1.6, dtype=torch.float64).log())
    torch.testing.assert_close(K, k(X).detach(), rtol=1e-14, atol=1e-15)
    d2 = (((X[:, None] - X[None]) / ls) ** 2).sum(-1).requires_grad_()
    off = ~torch.eye(12, dtype=torch.bool)
    ref = _matern_reference(torch.zeros(1, 1), torch.zeros(1, 1), nu, 1.0, 1.6)  # 1.6 at r = 0
    assert float(ref) == pytest.approx(1.6)
    value = _matern_of_squared_distance(d2[off], nu, 1.6)
    (dk_dd2,) = torch.autograd.grad(value.sum(), d2)
    torch.testing.assert_close(M[off], -2 * dk_dd2[off], rtol=1e-12, atol=0)


@pytest.mark.parametrize("nu", [0.5, 2.5])
def test_matern_in_float16_is_computed_in_float32(nu, matern_route):
    """float16's smallest normal number has a square root of 7.8e-3: the distance floor
    would put k(x, x) at 0.992 variance for nu = 1/2, so half precision goes through
    float32 (the diagonal exact, the rest float32's values rounded)."""
    from bayeskit.gp import Matern

    X = torch.rand(6, 2, generator=torch.Generator().manual_seed(4))
    k = Matern(nu, lengthscale=0.5, variance=1.0)
    K = k(X.half())
    assert K.dtype == torch.float16
    assert torch.equal(K.detach().diagonal(), torch.ones(6, dtype=torch.float16))
    torch.testing.assert_close(K.detach(), k(X).detach().half())


def test_ard_lengthscales_for_another_number_of_features_are_refused_by_name():
    from bayeskit.gp import GPR, SGPR, SVGP, Matern, Periodic, RationalQuadratic, Scale

    X = torch.rand(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = X.sum(-1)
    three = torch.ones(3, dtype=torch.float64)
    kernels = [SquaredExponential(three), Matern(2.5, three), Periodic(1.0, three),
               RationalQuadratic(1.0, three)]
    for k in kernels:
        with pytest.raises(ShapeError, match="3 lengthscales .* 2 features"):
            k(X)
    # models refuse such a kernel at construction (the exact GP's fused likelihood skips
    # the kernel's forward; L-BFGS would otherwise report only that every start failed)
    for make in (lambda: GPR(X, y, SquaredExponential(three)),
                 lambda: GPR(X, y, Matern(1.5, three)),
                 lambda: SGPR(X, y, X[:3].clone(), Scale(SquaredExponential() * Periodic(
                     1.0, three))),
                 lambda: SVGP(X[:3].clone(), RationalQuadratic(1.0, three), num_data=6)):
        with pytest.raises(ShapeError, match="3 lengthscales"):
            make()
    # one lengthscale, or one per feature, is fine
    assert GPR(X, y, SquaredExponential(torch.ones(2, dtype=torch.float64))
               ).log_marginal_likelihood().isfinite()
    assert SquaredExponential(torch.ones(1, dtype=torch.float64))(X).shape == (6, 6)
