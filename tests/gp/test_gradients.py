"""Finite-difference checks of every GP objective's gradient (float64, small sizes)."""

import torch

from bayeskit.gp import GPR, SGPR, SquaredExponential
from bayeskit.gp.likelihoods import Bernoulli
from bayeskit.gp.svgp import SVGP

F64 = torch.float64


def _data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, dtype=F64, generator=g) * 3
    y = torch.sin(X[:, 0]) + 0.1 * torch.randn(n, dtype=F64, generator=g)
    return X, y


class _Objective(torch.nn.Module):
    """Wraps a model so that torch.func.functional_call can swap in its parameters."""

    def __init__(self, model, objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self):
        return self.objective()


def _check(model, objective):
    wrapper = _Objective(model, objective)
    names = [n for n, p in wrapper.named_parameters() if p.requires_grad]
    base = dict(wrapper.named_parameters())

    def fn(*values):
        return torch.func.functional_call(wrapper, dict(zip(names, values, strict=True)), ())

    inputs = tuple(base[n].detach().clone().requires_grad_(True) for n in names)
    return torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gpr_log_marginal_likelihood_gradient():
    X, y = _data()
    model = GPR(X, y, SquaredExponential(torch.tensor([0.7, 1.3]), 1.2), noise_variance=0.2)
    assert _check(model, model.log_marginal_likelihood)


def test_sgpr_bound_gradient_including_inducing_inputs():
    X, y = _data(15, 1)
    model = SGPR(X, y, X[:4] + 0.05, SquaredExponential(0.8, 1.1), noise_variance=0.1)
    assert _check(model, model.elbo)


def test_svgp_elbo_gradients_whitened_unwhitened_and_bernoulli():
    X, y = _data(10, 2)
    for kw in (dict(whiten=True), dict(whiten=False),
               dict(likelihood=Bernoulli(num_points=10), whiten=True)):
        target = (y > 0).to(F64) if "likelihood" in kw else y
        model = SVGP(X[:3] + 0.1, SquaredExponential(0.9, 1.0), num_data=10, **kw)
        with torch.no_grad():
            model.q_mu.add_(0.1 * torch.arange(3, dtype=F64))
            model.raw_q_sqrt.add_(0.05)
        assert _check(model, lambda model=model, target=target: model.elbo(X, target))
