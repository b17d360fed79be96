"""The shared minibatch trainer: the loss it records, divergence, and what loss_fn must
return."""

import math

import pytest
import torch

from bayeskit.errors import ArgumentTypeError
from bayeskit.training import train
from bayeskit.training.trainer import TrainingDivergedError


def _data():
    x = torch.linspace(-1, 1, 40, dtype=torch.float64)[:, None]
    return x, 3 * x


def test_history_is_the_mean_of_the_batch_losses_seen():
    model = torch.nn.Linear(1, 1, dtype=torch.float64)
    seen = []

    def loss_fn(batch, rows, g):
        xb, yb = (t[rows] for t in batch)
        loss = ((model(xb) - yb) ** 2).mean()
        seen.append(float(loss.detach()))
        return loss

    history = train(model, loss_fn, _data(), epochs=2, batch_size=16, lr=0.01, progress=False)
    per_epoch = [seen[:3], seen[3:]]  # 40 rows in batches of 16: 3 a epoch
    assert len(seen) == 6
    assert history["train_loss"] == pytest.approx([sum(v) / 3 for v in per_epoch], rel=1e-15)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_stops_training_with_the_epoch(bad):
    model = torch.nn.Linear(1, 1, dtype=torch.float64)
    calls = []

    def loss_fn(batch, rows, g):
        calls.append(1)
        loss = ((model(batch[0][rows]) - batch[1][rows]) ** 2).mean()
        return loss * bad if len(calls) == 4 else loss  # the first batch of epoch 1

    before = None

    def remember(epoch):
        nonlocal before
        before = model.weight.detach().clone()

    with pytest.raises(TrainingDivergedError, match="non-finite at epoch 1"):
        train(model, loss_fn, _data(), epochs=3, batch_size=16, lr=0.01, progress=False,
              callback=remember)
    # raised before backward and the step: the parameters are those at the end of epoch 0
    assert len(calls) == 4
    assert torch.equal(model.weight.detach(), before)


@pytest.mark.parametrize("returned, what", [
    (lambda loss: loss.expand(2), r"shape \(2,\)"),
    (lambda loss: float(loss.detach()), "float"),
    (lambda loss: None, "NoneType"),
    (lambda loss: torch.tensor(1), "torch.int64"),  # these gave torch's RuntimeErrors
    (lambda loss: torch.tensor(True), "torch.bool"),
    (lambda loss: torch.tensor(1 + 1j), "torch.complex64"),
])
def test_loss_fn_must_return_a_one_element_tensor(returned, what):
    model = torch.nn.Linear(1, 1, dtype=torch.float64)

    def loss_fn(batch, rows, g):
        return returned(((model(batch[0][rows]) - batch[1][rows]) ** 2).mean())

    with pytest.raises(ArgumentTypeError, match=f"one-element floating-point tensor.*{what}"):
        train(model, loss_fn, _data(), epochs=1, batch_size=16, progress=False)
