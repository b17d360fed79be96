"""Flows on the banana: bayeskit NSF / MAF / RealNVP vs zuko MAF / NSF, same loop, same data;
then NSF vs MAF on a ring of 8 Gaussians.

20 000 training and 5 000 test samples of the reference's banana (rho = 0.95); Adam at lr
1e-3, batch 256, float32; every model trains for the same wall-clock budget in one process.
Each model first runs one untimed forward/backward pass (warm-up: kernel loading, lazy
initialisation; its time is printed). Test NLL is evaluated every 25 steps (evaluation time
excluded); reported: the first time
within 0.05 nats of the exact test NLL (mean of -log p over the test samples under the true
density) and the final test NLL.

Our flows standardise with the training data's mean and sd exactly as :func:`fit_flow` does
on its own (``flow.standardise``); zuko's get raw data ("defaults") or data we standardise.

    .venv-bench/bin/python benchmarks/bench_flows.py [--seconds 20] [--only banana|ring|steps]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from _timing import header
from bayeskit.distributions.flows import Flow
from bayeskit.distributions.transforms import banana_distribution


def train(name, log_prob, params, xtr, xte, exact, seconds, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = list(params)
    opt = torch.optim.Adam(params, lr=1e-3)
    # untimed warm-up: one forward and backward pass, gradients discarded (loads compiled
    # kernels, e.g. our spline's numba code: ~0.4 s once per process; lazy initialisation)
    t0 = time.perf_counter()
    (-log_prob(xtr[:256]).mean()).backward()
    opt.zero_grad()
    warm = time.perf_counter() - t0
    elapsed, steps, first_ok, nll = 0.0, 0, None, float("nan")
    while elapsed < seconds:
        t0 = time.perf_counter()
        for _ in range(25):
            idx = torch.randint(0, xtr.shape[0], (256,), generator=g)
            loss = -log_prob(xtr[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        elapsed += time.perf_counter() - t0
        steps += 25
        with torch.no_grad():
            nll = float(-log_prob(xte).mean())
        if first_ok is None and nll - exact < 0.05:
            first_ok = (elapsed, steps)
    ok = f"{first_ok[0]:7.2f} s ({first_ok[1]} steps)" if first_ok else "     never"
    print(f"  {name:34s} within 0.05 nats: {ok}   final NLL {nll:.4f} "
          f"(gap {nll - exact:+.4f}) after {steps} steps (warm-up {warm:.2f} s)")


def ring_of_gaussians(n: int, generator: torch.Generator, sd: float = 0.15):
    """``n`` draws from an equal mixture of 8 Gaussians (sd ``sd``) on the circle of radius 4,
    and the exact log density."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    centres = 4 * torch.stack([angles.cos(), angles.sin()], -1)
    which = torch.randint(0, 8, (n,), generator=generator)
    x = centres[which] + sd * torch.randn(n, 2, generator=generator)

    def log_prob(y):
        d2 = ((y[:, None, :] - centres) ** 2).sum(-1)
        return torch.logsumexp(-0.5 * d2 / sd**2, -1) - math.log(8 * 2 * math.pi * sd**2)
    return x, log_prob


def ring(seconds: float) -> None:
    g = torch.Generator().manual_seed(0)
    xtr, log_p = ring_of_gaussians(20_000, g)
    xte, _ = ring_of_gaussians(5_000, g)
    exact = float(-log_p(xte).mean())
    print(f"\nring of 8 Gaussians (sd 0.15, radius 4): exact test NLL {exact:.4f}; budget "
          f"{seconds:.0f} s per model")
    for kind, layers in (("maf", 5), ("nsf", 5), ("nsf-coupling", 6)):
        torch.manual_seed(1)
        flow = Flow(2, kind=kind, num_layers=layers, hidden=(64, 64))
        flow.standardise(xtr)
        train(f"bayeskit {kind} ({layers} layers, 64x64)", flow.log_prob, flow.parameters(),
              xtr, xte, exact, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=("banana", "ring", "steps"))
    args = parser.parse_args()
    header()
    if args.only == "steps":
        steps()
        return
    if args.only != "ring":
        banana(args.seconds)
    if args.only != "banana":
        ring(args.seconds)


def steps(rounds: int = 3, per_round: int = 200) -> None:
    """One NSF training step (3 autoregressive spline layers, 64x64, batch 256, float32,
    Adam) with the compiled spline kernels and with the eager torch code, interleaved in
    rounds of ``per_round`` steps after a warm-up; median ms per step."""
    from bayeskit import compiled

    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    xtr = p.sample((20_000,))
    times = {True: [], False: []}
    for _ in range(rounds):
        for on in (True, False):
            with compiled.use_compiled(on):
                torch.manual_seed(1)
                flow = Flow(2, kind="nsf", num_layers=3, hidden=(64, 64))
                flow.standardise(xtr)
                opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
                g = torch.Generator().manual_seed(0)
                for i in range(per_round + 5):
                    if i == 5:
                        t0 = time.perf_counter()
                    idx = torch.randint(0, xtr.shape[0], (256,), generator=g)
                    loss = -flow.log_prob(xtr[idx]).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                times[on].append((time.perf_counter() - t0) / per_round * 1e3)
    fast, slow = statistics.median(times[True]), statistics.median(times[False])
    print(f"NSF training step, median of {rounds} interleaved rounds of {per_round}: "
          f"compiled spline {fast:.2f} ms, eager {slow:.2f} ms ({slow / fast:.2f}x); "
          f"rounds: compiled {[round(t, 2) for t in times[True]]}, "
          f"eager {[round(t, 2) for t in times[False]]}")


def banana(seconds: float) -> None:
    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    xtr, xte = p.sample((20_000,)), p.sample((5_000,))
    exact = float(-p.log_prob(xte).mean())
    print(f"banana: exact test NLL {exact:.4f}; budget {seconds:.0f} s per model")
    for kind, layers in (("nsf", 3), ("nsf-coupling", 4), ("maf", 3), ("realnvp", 6)):
        torch.manual_seed(1)
        flow = Flow(2, kind=kind, num_layers=layers, hidden=(64, 64))
        flow.standardise(xtr)
        train(f"bayeskit {kind} ({layers} layers, 64x64)", flow.log_prob, flow.parameters(),
              xtr, xte, exact, seconds)
    try:
        import zuko
    except ImportError:
        print("  zuko not installed (make bench-env)")
        return
    mean, sd = xtr.mean(0), xtr.std(0)
    zmodels = {
        "zuko MAF (3 transforms, 64x64)": (
            zuko.flows.MAF(2, transforms=3, hidden_features=(64, 64)), False),
        "zuko NSF (defaults)": (zuko.flows.NSF(2), False),
        "zuko NSF (standardised data)": (zuko.flows.NSF(2), True),
    }
    for name, (model, standardise) in zmodels.items():
        torch.manual_seed(1)
        if standardise:
            # density of the raw data = density of standardised data / prod(sd)
            def log_prob(x, model=model):
                return model().log_prob((x - mean) / sd) - torch.log(sd).sum()
        else:
            def log_prob(x, model=model):
                return model().log_prob(x)
        train(name, log_prob, model.parameters(), xtr, xte, exact, seconds)


if __name__ == "__main__":
    main()
