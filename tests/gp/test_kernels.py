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


def test_squared_exponential_under_torch_func_transforms():
    k = SquaredExponential(torch.tensor([0.5, 1.0]), 1.3).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(5, 2, dtype=torch.float64, generator=g)
    x = torch.randn(3, 2, dtype=torch.float64, generator=g)

    def row(xi):
        return k(xi[None], X)[0]

    J = torch.func.vmap(torch.func.jacrev(row))(x)
    J_ref = torch.stack([torch.autograd.functional.jacobian(row, xi) for xi in x])
    torch.testing.assert_close(J, J_ref)
    H = torch.func.hessian(lambda xi: k(xi[None], X).sum())(x[0])
    H_ref = torch.autograd.functional.hessian(lambda xi: k(xi[None], X).sum(), x[0])
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
