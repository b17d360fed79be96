"""Flows: layer invariants, fit to the banana, checkpoint/resume, bad input."""

import pytest
import torch

from bayeskit.distributions.flows import (
    AffineCoupling,
    Flow,
    MaskedAutoregressiveAffine,
    Permute,
    fit_flow,
)
from bayeskit.distributions.transforms import banana_distribution, check_transform
from bayeskit.errors import NonFiniteError, ShapeError


def _randomised(t):
    """A layer with non-trivial weights (layers start at the identity)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in t.module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return t


@pytest.mark.parametrize("layer", [
    lambda: _randomised(MaskedAutoregressiveAffine(3, (16, 16))),
    lambda: _randomised(MaskedAutoregressiveAffine(4, (16,))),
    lambda: _randomised(AffineCoupling(3, (16,))),
    lambda: Permute(torch.tensor([2, 0, 1])),
])
def test_layers_pass_the_transform_checks(layer):
    t = layer()
    if hasattr(t, "module"):
        t.module.double()
    dim = 4 if isinstance(t, MaskedAutoregressiveAffine) and t.dim == 4 else 3
    x = torch.randn(5, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    report = check_transform(t, x)
    assert report["round_trip"] < 1e-10


def test_maf_is_autoregressive():
    t = _randomised(MaskedAutoregressiveAffine(4, (16, 16)))
    x = torch.randn(1, 4)
    jac = torch.autograd.functional.jacobian(lambda v: t.module(v)[0], x)[0, :, 0, :]
    assert torch.all(torch.triu(jac) == 0)  # shift_i depends on x_<i only


@pytest.mark.parametrize("kind,layers", [("maf", 3), ("realnvp", 6)])
def test_flows_learn_the_banana(kind, layers):
    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    train, test = p.sample((4000,)), p.sample((2000,))
    exact = float(-p.log_prob(test).mean())
    torch.manual_seed(1)
    flow = Flow(2, kind=kind, num_layers=layers, hidden=(32, 32))
    hist = fit_flow(flow, train, epochs=40, batch_size=128, lr=3e-3, patience=6)
    with torch.no_grad():
        gap = float(-flow.log_prob(test).mean()) - exact
    assert gap < 0.1, gap
    assert hist["val_nll"][0] > min(hist["val_nll"])
    assert flow.sample(10).shape == (10, 2)


def test_checkpoint_resume_continues_training(tmp_path):
    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    x = p.sample((600,))
    ck = tmp_path / "flow.pt"
    torch.manual_seed(2)
    a = Flow(2, hidden=(8,))
    fit_flow(a, x, epochs=2, checkpoint=ck, patience=100)
    torch.manual_seed(3)
    b = Flow(2, hidden=(8,))  # different init: the checkpoint must override it
    hist = fit_flow(b, x, epochs=4, checkpoint=ck, patience=100)
    assert len(hist["val_nll"]) == 4
    assert int(torch.load(ck, weights_only=True)["state"]["epoch"]) == 4


def test_bad_inputs():
    flow = Flow(2)
    with pytest.raises(ShapeError):
        fit_flow(flow, torch.zeros(10, 3))
    with pytest.raises(NonFiniteError):
        fit_flow(flow, torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="kind"):
        Flow(2, kind="nsf")
    with pytest.raises(ShapeError, match=r"\[\.\.\., 2\]"):
        flow.log_prob(torch.zeros(4, 3))
