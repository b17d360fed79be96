"""Flows: layer invariants, fit to the banana, checkpoint/resume, bad input."""

import pytest
import torch

from bayeskit.distributions.flows import (
    AffineCoupling,
    Flow,
    MaskedAutoregressiveAffine,
    MaskedAutoregressiveSpline,
    Permute,
    SplineCoupling,
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
    lambda: _randomised(MaskedAutoregressiveSpline(3, (16, 16), bins=5, bound=2.0)),
    lambda: _randomised(MaskedAutoregressiveSpline(3, (16,), affine=False)),
    lambda: _randomised(SplineCoupling(3, (16,), bins=6, bound=1.5)),
    lambda: _randomised(SplineCoupling(4, (16,), affine=False)),
    lambda: Permute(torch.tensor([2, 0, 1])),
])
def test_layers_pass_the_transform_checks(layer):
    t = layer()
    if hasattr(t, "module"):
        t.module.double()
        t = t.conditioned(None)
    dim = getattr(t, "dim", None) or (t.split + t.rest if hasattr(t, "rest") else 3)
    # spread beyond the spline interval: the tails are part of the check
    x = 2.5 * torch.randn(64, dim, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(1))
    report = check_transform(t, x)
    assert report["round_trip"] < 1e-10
    assert report["log_det"] < 1e-10


@pytest.mark.parametrize("make", [
    lambda c: MaskedAutoregressiveAffine(3, (16,), context_dim=c),
    lambda c: AffineCoupling(3, (16,), context_dim=c),
    lambda c: MaskedAutoregressiveSpline(3, (16,), context_dim=c),
    lambda c: SplineCoupling(3, (16,), context_dim=c),
])
def test_conditional_layers_read_the_context(make):
    t = _randomised(make(2))
    t.module.double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 3, dtype=torch.float64, generator=g)
    c1, c2 = (torch.randn(6, 2, dtype=torch.float64, generator=g) for _ in range(2))
    a, b = t.conditioned(c1), t.conditioned(c2)
    with torch.no_grad():
        assert float((a.inv(x) - b.inv(x)).abs().max()) > 1e-3  # the context matters
    # a context [C] broadcasts over a batch of events; the original stays unconditioned
    one = t.conditioned(c1[0])
    report = check_transform(one, x)
    assert report["round_trip"] < 1e-10 and report["log_det"] < 1e-10
    assert one(x).shape == (6, 3)
    assert torch.allclose(one.inv(x)[2], t.conditioned(c1[0:1]).inv(x[2:3])[0])
    with pytest.raises(ValueError, match="context"):
        t.inv(x)
    with pytest.raises(ValueError, match="context_dim=2"):
        t.conditioned(None)


def test_spline_layers_start_at_the_identity():
    x = 3 * torch.randn(10, 2, dtype=torch.float64)
    for t in (MaskedAutoregressiveSpline(2, (8,)), SplineCoupling(2, (8,))):
        t.module.double()
        t = t.conditioned(None)
        assert torch.allclose(t(x), x, atol=1e-12)


@pytest.mark.parametrize("kind", ["maf", "realnvp", "nsf", "nsf-coupling"])
@pytest.mark.parametrize("context_dim", [0, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flow_log_prob_equals_its_transformed_distribution(kind, context_dim, dtype):
    """Flow.log_prob's direct pass (layers' data -> noise passes, the reversal, the base)
    is the density of flow.distribution(), values and gradients in x and the parameters."""
    g = torch.Generator().manual_seed(4)
    flow = Flow(3, kind=kind, num_layers=3, hidden=(16,), context_dim=context_dim).to(dtype)
    with torch.no_grad():
        for q in flow.nets.parameters():
            q.copy_(0.3 * torch.randn(q.shape, generator=g, dtype=dtype))
        flow.loc.copy_(torch.tensor([0.5, -1.0, 2.0]))
        flow.scale.copy_(torch.tensor([2.0, 0.5, 3.0]))
    # spread beyond the spline interval: the tails are part of the check
    x = (4 * torch.randn(7, 3, generator=g, dtype=dtype)).requires_grad_()
    c = torch.randn(7, context_dim, generator=g, dtype=dtype) if context_dim else None
    direct = flow.log_prob(x, c)
    reference = flow.distribution(c).log_prob(x)
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    assert direct.dtype == dtype
    assert torch.allclose(direct, reference, rtol=tol, atol=tol)
    params = [x, *flow.nets.parameters()]
    g_direct = torch.autograd.grad(direct.sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad(reference.sum(), params, allow_unused=True)
    for a, b in zip(g_direct, g_ref, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=10 * tol, atol=10 * tol)


def test_made_loads_state_dicts_of_the_parameter_major_layout():
    """Checkpoints written before the output layer became coordinate-major (its units were
    ordered parameter-major, the layer last in ``net``) load to the same network."""
    from torch import nn

    from bayeskit.distributions.flow_layers import MADE

    dim, hidden, per_dim = 3, (8, 8), 4
    new = MADE(dim, hidden, per_dim, context_dim=2)
    g = torch.Generator().manual_seed(5)
    old_layers = []
    for layer in [*new.net, new.out]:
        if isinstance(layer, nn.ReLU):
            old_layers.append(nn.ReLU())
            continue
        lin = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g))
        old_layers.append(lin)
    # the old output layer: unit p * D + d holds parameter p of coordinate d
    out_deg = torch.arange(1, dim + 1).repeat(per_dim)
    last_deg = torch.arange(hidden[-1]) % (dim - 1) + 1
    old_mask = (out_deg[:, None] > last_deg[None]).float()
    old = nn.Sequential(*old_layers)
    state = {}
    for i, layer in enumerate(old):
        if isinstance(layer, nn.Linear):
            mask = old_mask if i == len(old) - 1 else new.net[i].mask
            state.update({f"net.{i}.weight": layer.weight, f"net.{i}.bias": layer.bias,
                          f"net.{i}.mask": mask})
    new.load_state_dict(state)
    x = torch.randn(5, dim + 2, generator=g)
    with torch.no_grad():
        h = x
        for i, layer in enumerate(old):
            h = (nn.functional.linear(h, layer.weight * state[f"net.{i}.mask"], layer.bias)
                 if isinstance(layer, nn.Linear) else layer(h))
        expected = h.unflatten(-1, (per_dim, dim)).transpose(-1, -2)
        assert torch.allclose(new(x), expected, atol=1e-6)
    # and a current state dict round-trips unchanged
    again = MADE(dim, hidden, per_dim, context_dim=2)
    again.load_state_dict(new.state_dict())
    assert torch.equal(again(x), new(x))


def test_maf_is_autoregressive():
    t = _randomised(MaskedAutoregressiveAffine(4, (16, 16)))
    x = torch.randn(1, 4)
    jac = torch.autograd.functional.jacobian(lambda v: t._params(v)[0], x)[0, :, 0, :]
    assert torch.all(torch.triu(jac) == 0)  # shift_i depends on x_<i only


@pytest.mark.parametrize("kind,layers", [("maf", 3), ("realnvp", 6), ("nsf", 2),
                                         ("nsf-coupling", 4)])
def test_flows_learn_the_banana(kind, layers):
    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    train, test = p.sample((4000,)), p.sample((2000,))
    exact = float(-p.log_prob(test).mean())
    torch.manual_seed(1)
    flow = Flow(2, kind=kind, num_layers=layers, hidden=(32, 32))
    # at lr 3e-3 the validation NLL moves by up to ~0.1 between epochs, so a short patience
    # can stop a run at an unlucky epoch; 12 leaves room for the noise
    hist = fit_flow(flow, train, epochs=40, batch_size=128, lr=3e-3, patience=12)
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
        Flow(2, kind="spline")
    with pytest.raises(ValueError, match="dim >= 2"):
        Flow(1, kind="nsf-coupling")
    with pytest.raises(ValueError, match="unconditional"):
        flow.log_prob(torch.zeros(4, 2), torch.zeros(4, 1))
    cond = Flow(2, context_dim=3)
    with pytest.raises(ValueError, match="conditional"):
        cond.log_prob(torch.zeros(4, 2))
    with pytest.raises(ShapeError, match=r"\[\.\.\., 3\]"):
        cond.log_prob(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="context"):
        fit_flow(cond, torch.zeros(10, 2))
    with pytest.raises(ShapeError, match="one context per sample"):
        fit_flow(cond, torch.randn(10, 2), context=torch.randn(9, 3))
    with pytest.raises(ShapeError, match=r"\[\.\.\., 2\]"):
        flow.log_prob(torch.zeros(4, 3))


@pytest.mark.parametrize("kind", ["nsf", "maf", "nsf-coupling"])
def test_conditional_flow_learns_a_known_conditional_density(kind):
    """p(y | x) = N(sin x, 0.2^2) per coordinate pair (y_1, y_2 = y_1 + noise): the mean KL
    from the truth, estimated by held-out NLL minus the exact NLL, falls below 0.1 nats."""
    g = torch.Generator().manual_seed(0)

    def draw(n):
        x = 6 * torch.rand(n, 1, generator=g) - 3
        y1 = torch.sin(x) + 0.2 * torch.randn(n, 1, generator=g)
        y2 = y1 + 0.3 * torch.randn(n, 1, generator=g)
        exact = (torch.distributions.Normal(torch.sin(x), 0.2).log_prob(y1)
                 + torch.distributions.Normal(y1, 0.3).log_prob(y2)).sum(-1)
        return torch.cat([y1, y2], -1), x, exact

    y, x, _ = draw(4000)
    y_te, x_te, exact_te = draw(2000)
    torch.manual_seed(1)
    flow = Flow(2, kind=kind, num_layers=2, hidden=(32, 32),
                context_dim=1)
    fit_flow(flow, y, context=x, epochs=40, batch_size=128, lr=3e-3, patience=6,
             generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        kl = float((exact_te - flow.log_prob(y_te, x_te)).mean())
        draws = flow.sample(4000, torch.tensor([1.0]), generator=g)
    print(f"{kind}: KL {kl:.4f}")
    assert kl < 0.1, kl
    assert draws.shape == (4000, 2)
    se = 0.2 / 4000 ** 0.5
    assert abs(float(draws[:, 0].mean()) - float(torch.sin(torch.tensor(1.0)))) < 0.03 + 4 * se
    batch = flow.sample(3, torch.tensor([[0.0], [1.0]]), generator=g)
    assert batch.shape == (3, 2, 2)
