"""Flows on the banana: bayeskit MAF / RealNVP vs zuko MAF / NSF, same loop, same data.

20 000 training and 5 000 test samples of the reference's banana (rho = 0.95); Adam at lr
1e-3, batch 256, float32; every model trains for the same wall-clock budget in one process.
Test NLL is evaluated every 25 steps (evaluation time excluded); reported: the first time
within 0.05 nats of the exact test NLL (mean of -log p over the test samples under the true
density) and the final test NLL.

    .venv-bench/bin/python benchmarks/bench_flows.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from bayeskit.distributions.flows import Flow
from bayeskit.distributions.transforms import banana_distribution


def train(name, log_prob, params, xtr, xte, exact, seconds, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=1e-3)
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
          f"(gap {nll - exact:+.4f}) after {steps} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    with open("/proc/loadavg") as f:
        print(f"# {time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__}, "
              f"loadavg {f.read().strip()}")
    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    xtr, xte = p.sample((20_000,)), p.sample((5_000,))
    exact = float(-p.log_prob(xte).mean())
    print(f"exact test NLL {exact:.4f}; budget {args.seconds:.0f} s per model")
    for kind, layers in (("maf", 3), ("realnvp", 6)):
        torch.manual_seed(1)
        flow = Flow(2, kind=kind, num_layers=layers, hidden=(64, 64))
        flow.standardise(xtr)
        train(f"bayeskit {kind} ({layers} layers, 64x64)", flow.log_prob, flow.parameters(),
              xtr, xte, exact, args.seconds)
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
        train(name, log_prob, model.parameters(), xtr, xte, exact, args.seconds)


if __name__ == "__main__":
    main()
