"""Training: learning on the digits, checkpoint/resume, early stopping, divergence, AVB,
and a 2-process data-parallel run that matches the single-process run."""

import math

import pytest
import torch

from bayeskit.data import load_digits_split
from bayeskit.errors import ArgumentTypeError, ShapeError
from bayeskit.vae import (
    VAE,
    BernoulliDecoder,
    DensityRatioKL,
    GaussianEncoder,
    TrainingDivergedError,
    evaluate,
    fit,
)


@pytest.fixture(scope="module")
def digits():
    x_tr, _, x_te, _ = load_digits_split()
    return x_tr[:600], x_te[:200]


def make(seed=0, kl="analytic", latent=2):
    torch.manual_seed(seed)
    enc = GaussianEncoder(64, latent, hidden=(64,))
    kl = DensityRatioKL(64, latent, hidden=(64,)) if kl == "avb" else kl
    return VAE(enc, BernoulliDecoder(latent, 64, hidden=(64,)), kl=kl)


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_training_improves_the_test_elbo(digits):
    x_tr, x_te = digits
    model = make()
    before = evaluate(model, x_te)["elbo"]
    hist = fit(model, x_tr, epochs=8, batch_size=50, lr=3e-3, validation=x_te, progress=False)
    after = evaluate(model, x_te, iwae_samples=200)
    assert after["elbo"] > before + 5
    assert after["iwae"] >= after["elbo"]
    assert len(hist["val_elbo"]) == 8 and hist["train_loss"][-1] < hist["train_loss"][0]


@pytest.mark.parametrize("objective", ["iwae", "iwae-dreg"])
def test_iwae_training_runs_and_learns(digits, objective):
    x_tr, x_te = digits
    model = make()
    before = evaluate(model, x_te, iwae_samples=50)["iwae"]
    fit(model, x_tr, epochs=4, batch_size=50, lr=3e-3, objective=objective, num_samples=5,
        optimizer="rmsprop", progress=False)
    assert evaluate(model, x_te, iwae_samples=50)["iwae"] > before + 3


def test_checkpoint_resume_reproduces_an_uninterrupted_run(digits, tmp_path):
    x_tr, _ = digits
    straight = make()
    fit(straight, x_tr, epochs=4, batch_size=100, seed=3, progress=False)
    path = tmp_path / "vae.pt"
    part = make()
    fit(part, x_tr, epochs=2, batch_size=100, seed=3, checkpoint=path, progress=False)
    resumed = make(seed=99)  # different initialisation: everything comes from the file
    hist = fit(resumed, x_tr, epochs=4, batch_size=100, seed=3, checkpoint=path,
               progress=False)
    assert hist["epoch"] == [0, 1, 2, 3]
    assert torch.equal(params(resumed), params(straight))


def test_early_stopping_restores_the_best_epoch(digits):
    x_tr, x_te = digits
    model = make()
    hist = fit(model, x_tr, epochs=40, batch_size=100, lr=1e-2, validation=x_te, patience=2,
               progress=False)
    assert len(hist["epoch"]) < 40
    best = max(hist["val_elbo"])
    assert evaluate(model, x_te)["elbo"] == pytest.approx(best, abs=1e-9)


def test_divergence_raises_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    x_tr, _ = digits
    path = tmp_path / "vae.pt"

    def poison(batch, g, calls=[0]):  # noqa: B006 - counts calls across the run
        calls[0] += 1
        return batch * math.nan if calls[0] > 12 else batch  # 6 batches per epoch

    with pytest.raises(TrainingDivergedError, match="non-finite at epoch 2"):
        fit(make(), x_tr, epochs=5, batch_size=100, checkpoint=path, transform=poison,
            progress=False)
    state = torch.load(path, weights_only=True)["state"]
    assert state["epoch"] == 2  # the one schema: epochs finished
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize("transform, error, what", [
    (lambda b, g: b[:, :2], ShapeError, r"shape \(100, 2\)"),
    (lambda b, g: b.double(), ShapeError, "torch.float64"),
    (lambda b, g: b.numpy(), ArgumentTypeError, "ndarray"),
])
def test_a_transform_that_changes_the_batch_is_named(digits, transform, error, what):
    """A transform returning other features gave torch's 'mat1 and mat2 shapes cannot be
    multiplied' from inside the encoder."""
    x_tr, _ = digits
    with pytest.raises(error, match=f"transform must return a \\[B, 64\\].*{what}"):
        fit(make(), x_tr, epochs=1, batch_size=100, transform=transform, progress=False)


def test_density_ratio_kl_estimates_the_analytic_kl(digits):
    x_tr, x_te = digits
    model = make()
    fit(model, x_tr, epochs=15, batch_size=50, lr=3e-3, progress=False)
    # the same encoder/decoder with a critic; lr=0 holds them fixed while the critic learns
    torch.manual_seed(1)
    avb = VAE(model.encoder, model.decoder, kl=DensityRatioKL(64, 2, hidden=(128, 128)))
    fit(avb, x_tr, epochs=10, batch_size=50, lr=0.0, critic_steps=3, critic_lr=1e-3,
        progress=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z, _ = avb.encoder.sample(x_te, avb.noise(20, len(x_te), g))
        estimate = float(avb.kl(x_te, z).mean())
        analytic = float(torch.distributions.kl_divergence(avb.encoder.distribution(x_te),
                                                           avb.prior()).mean())
    assert analytic > 1.0
    # a logistic critic of finite capacity: consistent, but biased low at this budget
    assert abs(estimate - analytic) < 0.3 * analytic


def test_bad_arguments(digits):
    x_tr, _ = digits
    with pytest.raises(ValueError, match="objective"):
        fit(make(), x_tr, objective="vr")
    with pytest.raises(ValueError, match="optimizer"):
        fit(make(), x_tr, optimizer="sgd")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit(make(), x_tr * 16)


def _fit_for_ddp():
    x = load_digits_split()[0][:300]  # the first 300 of the digits fixture's rows
    model = make()
    fit(model, x, epochs=2, batch_size=60, seed=5, progress=False)
    return model, None


def test_two_process_data_parallel_matches_single_process(tmp_path):
    from tests.ddp import run_two_processes

    single, _ = _fit_for_ddp()
    saved = run_two_processes(_fit_for_ddp, tmp_path)
    ddp = make()
    ddp.load_state_dict(saved["state"])
    assert torch.allclose(params(ddp), params(single), atol=1e-5)


def test_zero_epochs_leave_the_model_and_return_an_empty_history(digits):
    x_tr, _ = digits
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hist = fit(model, x_tr, epochs=0, progress=False)
    assert hist == {"epoch": [], "train_loss": [], "val_elbo": [], "seconds": []}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    hist = fit(model, x_tr, epochs=2, batch_size=200, progress=False)
    assert len(hist["seconds"]) == 2 and all(s > 0 for s in hist["seconds"])
