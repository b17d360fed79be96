"""VAE on the bundled digits: bayeskit vs an equivalent Pyro VAE (SVI, Trace_ELBO), same
process, same architecture (64-256-2 encoder, 2-256-64 Bernoulli decoder), Adam 1e-3,
batch 100, same epochs, float32, 2 threads. Both models are scored by one function: the
test ELBO (analytic KL, 10 samples) and the importance-sampled log-likelihood (k = 1000).
A third row times the same networks and ELBO as a hand-written torch loop (fused Adam, no
library): the floor both libraries' epochs are measured against.

    .venv-bench/bin/python benchmarks/bench_vae.py [--epochs 60] [--repeats 3]
    .venv-bench/bin/python benchmarks/bench_vae.py --mnist DIR   # IDX files you supply
    .venv-bench/bin/python benchmarks/bench_vae.py --synthetic 50000 --batch 500 --epochs 5
    .venv-bench/bin/python benchmarks/bench_vae.py --synthetic 10000 --batch 500 --ops 3

``--synthetic N``: N training and N/5 test images of 64 binary pixels drawn from a fixed
random "teacher" decoder (z ~ N(0, I_2), 2-256-64 ReLU network, Bernoulli pixels), with
``--batch`` rows per minibatch: more work per step, so less of the time is per-step
overhead.

``--ops EPOCHS``: instead of the comparison, where our epoch spends its time over the
hand-written loop's: both timed per aten call over ``EPOCHS`` epochs
(``_timing.aten_op_times``), the time and number of calls per batch, and the ops ours calls
more often than the loop.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from _timing import header, headline
from bayeskit.data import load_digits_split
from bayeskit.vae import VAE, BernoulliDecoder, GaussianEncoder, fit


def score(mu_sd, logits, x, k=1000, seed=0):
    """Test ELBO (analytic KL, 10 samples) and log p(x) with k importance samples."""
    g = torch.Generator().manual_seed(seed)
    elbo, ll = 0.0, 0.0
    with torch.no_grad():
        for batch in x.split(250):
            mu, sd = mu_sd(batch)
            eps = torch.randn(k, *mu.shape, generator=g)
            z = mu + sd * eps
            log_lik = -nn.functional.binary_cross_entropy_with_logits(
                logits(z), batch.expand(k, *batch.shape), reduction="none").sum(-1)
            log_q = (-0.5 * eps**2 - sd.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_p = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
            kl = 0.5 * (sd**2 + mu**2 - 1 - 2 * sd.log()).sum(-1)
            elbo += float((log_lik[:10].mean(0) - kl).sum())
            lw = log_lik + log_p - log_q
            ll += float((torch.logsumexp(lw, 0) - math.log(k)).sum())
    return elbo / len(x), ll / len(x)


def synthetic_images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` binary 64-pixel images from a fixed random decoder of a 2-D latent."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.Generator().manual_seed(1234)
    W1 = torch.randn(2, 256, generator=teacher) * 2
    b1 = torch.randn(256, generator=teacher)
    W2 = torch.randn(256, 64, generator=teacher) / 4
    z = torch.randn(n, 2, generator=g)
    p = torch.sigmoid(torch.relu(z @ W1 + b1) @ W2 - 1)
    return (torch.rand(n, 64, generator=g) < p).float()


def run_ours(x_tr, epochs, seed, batch=100):
    torch.manual_seed(seed)
    model = VAE(GaussianEncoder(x_tr.shape[1], 2, hidden=(256,)),
                BernoulliDecoder(2, x_tr.shape[1], hidden=(256,)))
    start = time.perf_counter()
    fit(model, x_tr, epochs=epochs, batch_size=batch, lr=1e-3, seed=seed, progress=False)
    seconds = time.perf_counter() - start

    def mu_sd(x):
        mu, log_var = model.encoder.params(x)
        return mu, torch.exp(0.5 * log_var)

    return seconds, mu_sd, model.decoder.net


def run_pyro(x_tr, epochs, seed, batch=100):
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    D = x_tr.shape[1]
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.h = nn.Linear(D, 256)
            self.loc = nn.Linear(256, 2)
            self.log_var = nn.Linear(256, 2)

        def forward(self, x):
            h = torch.relu(self.h(x))
            return self.loc(h), torch.exp(0.5 * self.log_var(h))

    decoder = nn.Sequential(nn.Linear(2, 256), nn.ReLU(), nn.Linear(256, D))
    encoder = Encoder()

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z), validate_args=False).to_event(1),
                        obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    svi = SVI(model, guide, Adam({"lr": 1e-3}), loss=Trace_ELBO())
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(x_tr), generator=g).split(batch):
            svi.step(x_tr[idx])
    seconds = time.perf_counter() - start
    return seconds, encoder, decoder


def run_plain(x_tr, epochs, seed, batch=100):
    """The floor: the same networks, ELBO (analytic KL) and fused Adam as a hand-written
    torch loop, no library around it; timed only (what our ``fit`` costs on top of it)."""
    torch.manual_seed(seed)
    D = x_tr.shape[1]
    encoder = nn.Sequential(nn.Linear(D, 256), nn.ReLU(), nn.Linear(256, 4))
    decoder = nn.Sequential(nn.Linear(2, 256), nn.ReLU(), nn.Linear(256, D))
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3,
                           fused=True)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(x_tr), generator=g).split(batch):
            x = x_tr[idx]
            mu, log_var = encoder(x).chunk(2, dim=-1)
            z = mu + torch.exp(0.5 * log_var) * torch.randn(mu.shape, generator=g)
            log_lik = -nn.functional.binary_cross_entropy_with_logits(
                decoder(z), x, reduction="none").sum(-1)
            kl = 0.5 * (log_var.exp() + mu * mu - 1 - log_var).sum(-1)
            opt.zero_grad()
            (kl - log_lik).mean().backward()
            opt.step()
    return time.perf_counter() - start


def adam_step_timing() -> None:
    """One Adam step on this VAE's parameters: torch's default (a loop over the tensors)
    vs the fused Adam our trainer builds (``make_optimizer``); median of interleaved
    rounds of 2000 steps."""
    from _timing import interleaved_medians
    from bayeskit.training import make_optimizer

    model = VAE(GaussianEncoder(64, 2, hidden=(256,)), BernoulliDecoder(2, 64, hidden=(256,)))
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    opts = {"default": torch.optim.Adam(params, lr=1e-3),
            "fused": make_optimizer("adam", params, 1e-3)}

    def steps(opt):
        for _ in range(2000):
            opt.step()
    med = interleaved_medians({k: (lambda o=o: steps(o)) for k, o in opts.items()}, 5)
    print(f"# Adam step on the VAE's {len(params)} tensors: default "
          f"{med['default'] / 2000 * 1e6:.0f} us, fused {med['fused'] / 2000 * 1e6:.0f} us")


def op_comparison(x_tr, epochs: int, batch: int) -> None:
    """Per batch: time inside aten and calls, ours against the hand-written loop, and the
    ops ours calls more often (``--ops``)."""
    from collections import Counter

    from _timing import aten_op_times

    torch.manual_seed(0)
    model = VAE(GaussianEncoder(x_tr.shape[1], 2, hidden=(256,)),
                BernoulliDecoder(2, x_tr.shape[1], hidden=(256,)))
    fit(model, x_tr, epochs=1, batch_size=batch, lr=1e-3, seed=0, progress=False)  # warm
    batches = epochs * math.ceil(len(x_tr) / batch)
    runs = {"bayeskit": lambda: fit(model, x_tr, epochs=1, batch_size=batch, lr=1e-3, seed=0,
                                    progress=False),
            "torch loop": lambda: run_plain(x_tr, 1, 0, batch=batch)}
    calls = {}
    for name, fn in runs.items():
        rows = aten_op_times(fn, epochs)
        calls[name] = Counter()
        for r in rows:
            calls[name][r["op"]] += r["calls"] * epochs / batches
        print(f"{name:10s} {sum(r['ms'] for r in rows) * epochs / batches:.3f} ms a batch "
              f"inside aten, {sum(calls[name].values()):.1f} calls")
    extra = {op: n - calls["torch loop"][op] for op, n in calls["bayeskit"].items()
             if n - calls["torch loop"][op] >= 0.5}
    print("ops ours calls more often, per batch: " + ", ".join(
        f"{op} {n:.0f}" for op, n in sorted(extra.items(), key=lambda kv: -kv[1])))


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mnist", default=None, help="directory with MNIST IDX files")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="N synthetic training images instead of the digits")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--ops", type=int, default=0, metavar="EPOCHS",
                        help="only compare our epoch with the torch loop's, aten call by call")
    args = parser.parse_args()
    header()
    adam_step_timing()
    if args.mnist:
        from bayeskit.data import load_mnist

        x_tr, _ = load_mnist(args.mnist, "train", binarize="static")
        x_te, _ = load_mnist(args.mnist, "test", binarize="static")
        print("# MNIST (statically binarised); the IWAE paper's 50-d, two-layer numbers "
              "(-86.76 VAE, -84.78 IWAE k=50) use a bigger model: compare with care")
    elif args.synthetic:
        x_tr, x_te = synthetic_images(args.synthetic, 0), synthetic_images(args.synthetic // 5, 1)
        print(f"# synthetic: {args.synthetic} training images (teacher decoder), batch "
              f"{args.batch}")
    else:
        x_tr, _, x_te, _ = load_digits_split()
    if args.ops:
        op_comparison(x_tr, args.ops, args.batch)
        return
    try:
        import pyro
        print(f"# pyro {pyro.__version__}")
    except ImportError:
        pyro = None
        print("# pyro not installed: ours only")
    times = {"bayeskit": [], "pyro": [], "torch loop": []}
    scores: dict[str, list] = {"bayeskit": [], "pyro": []}
    for r in range(args.repeats):
        seconds, mu_sd, logits = run_ours(x_tr, args.epochs, seed=r, batch=args.batch)
        times["bayeskit"].append(seconds / args.epochs)
        scores["bayeskit"].append(score(mu_sd, logits, x_te))
        times["torch loop"].append(run_plain(x_tr, args.epochs, seed=r, batch=args.batch)
                                   / args.epochs)
        if pyro is not None:
            seconds, enc, dec = run_pyro(x_tr, args.epochs, seed=r, batch=args.batch)
            times["pyro"].append(seconds / args.epochs)
            scores["pyro"].append(score(enc, dec, x_te))
    print(f"\n{args.epochs} epochs, {len(x_tr)} training images, batch {args.batch}, "
          f"{args.repeats} seeds "
          "(mean ± sd over seeds)")
    print("| library | test ELBO | test log p(x), k=1000 | s / epoch (median) |")
    print("|---|---|---|---|")
    for lib, rows in scores.items():
        if not rows:
            continue
        elbo = [e for e, _ in rows]
        ll = [v for _, v in rows]
        print(f"| {lib} | {statistics.mean(elbo):.3f} ± {sd(elbo):.3f} | "
              f"{statistics.mean(ll):.3f} ± {sd(ll):.3f} | "
              f"{statistics.median(times[lib]):.4f} |")
    floor = statistics.median(times["torch loop"])
    print(f"\nthe same networks and ELBO as a hand-written torch loop (fused Adam, no "
          f"library): {floor:.4f} s / epoch; per epoch over it: bayeskit "
          f"{statistics.median(times['bayeskit']) / floor:.2f}x"
          + (f", pyro {statistics.median(times['pyro']) / floor:.2f}x" if times["pyro"] else ""))
    if scores["pyro"]:
        ratio = statistics.median(times["pyro"]) / statistics.median(times["bayeskit"])
        print(f"\nepoch-time ratio pyro / bayeskit: {ratio:.2f}x")
        data = "synthetic" if args.synthetic else "mnist" if args.mnist else "digits"
        headline(f"vae.{data}.time_ratio", ratio)
        headline(f"vae.{data}.ll_gap", statistics.mean(v for _, v in scores["bayeskit"])
                 - statistics.mean(v for _, v in scores["pyro"]))


if __name__ == "__main__":
    main()
