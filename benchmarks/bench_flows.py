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
Every model is initialised from torch's seed 1 and draws minibatches from seed 0; with
``--repeats R``, run ``r`` uses seeds ``1 + r`` and ``r`` (initialisation varies too).

    .venv-bench/bin/python benchmarks/bench_flows.py [--seconds 20] [--only banana|ring|steps]
        [--models nsf,zuko-maf] [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from _timing import header, interleaved_medians
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
    return None if first_ok is None else first_ok[0]


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
    parser.add_argument("--models", default=",".join(BANANA_MODELS),
                        help=f"banana contenders, comma-separated from {BANANA_MODELS}")
    parser.add_argument("--repeats", type=int, default=1,
                        help="banana runs (all models each run); prints medians and the "
                             "per-run NSF / zuko MAF ratio")
    args = parser.parse_args()
    header()
    if args.only == "steps":
        steps()
        return
    if args.only != "ring":
        models = tuple(m.strip() for m in args.models.split(","))
        unknown = set(models) - set(BANANA_MODELS)
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}; choose from {BANANA_MODELS}")
        banana(args.seconds, models, args.repeats)
    if args.only != "banana":
        ring(args.seconds)


def steps(rounds: int = 20, per_round: int = 25) -> None:
    """One training step (3 layers, 64x64, batch 256, float32, Adam 1e-3) of our NSF with
    the compiled spline kernels and with the eager torch code, our MAF and zuko's MAF,
    interleaved in ``rounds`` rounds of ``per_round`` steps (order shuffled each round)
    after a warm-up; median ms per step."""
    from bayeskit import compiled

    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    xtr = p.sample((20_000,))
    g = torch.Generator().manual_seed(0)

    def stepper(name, kind, on=True):
        if kind == "zuko-maf":
            _, log_prob, params = _banana_model("zuko-maf", xtr)
        else:
            torch.manual_seed(1)
            flow = Flow(2, kind=kind, num_layers=3, hidden=(64, 64))
            flow.standardise(xtr)
            log_prob, params = flow.log_prob, flow.parameters()
        opt = torch.optim.Adam(params, lr=1e-3)

        def run():
            with compiled.use_compiled(on):
                for _ in range(per_round):
                    idx = torch.randint(0, xtr.shape[0], (256,), generator=g)
                    loss = -log_prob(xtr[idx]).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        return run

    contenders = {"bayeskit NSF (compiled spline)": stepper("nsf", "nsf"),
                  "bayeskit NSF (eager spline)": stepper("nsf", "nsf", on=False),
                  "bayeskit MAF": stepper("maf", "maf")}
    try:
        import zuko  # noqa: F401
        contenders["zuko MAF"] = stepper("zuko-maf", "zuko-maf")
    except ImportError:
        print("zuko not installed (make bench-env): its MAF is skipped")
    med = interleaved_medians(contenders, rounds)
    print(f"training step, 3 layers 64x64, batch 256, float32, Adam; median of {rounds} "
          f"interleaved rounds of {per_round} steps:")
    base = med.get("zuko MAF")
    for name, sec in med.items():
        ms = sec / per_round * 1e3
        rel = f"  ({sec / base:.2f}x zuko MAF's)" if base else ""
        print(f"  {name:32s} {ms:6.2f} ms{rel}")


BANANA_MODELS = ("nsf", "nsf-coupling", "maf", "realnvp", "zuko-maf", "zuko-nsf",
                 "zuko-nsf-std")
_OURS = {"nsf": 3, "nsf-coupling": 4, "maf": 3, "realnvp": 6}  # layers of each kind


def _banana_model(name: str, xtr: torch.Tensor, seed: int = 1):
    """``(label, log_prob, parameters)`` of one contender, built with torch's seed ``seed``."""
    torch.manual_seed(seed)
    if name in _OURS:
        flow = Flow(2, kind=name, num_layers=_OURS[name], hidden=(64, 64))
        flow.standardise(xtr)
        return f"bayeskit {name} ({_OURS[name]} layers, 64x64)", flow.log_prob, \
            flow.parameters()
    import zuko

    if name == "zuko-maf":
        model, label = zuko.flows.MAF(2, transforms=3, hidden_features=(64, 64)), \
            "zuko MAF (3 transforms, 64x64)"
    else:
        model = zuko.flows.NSF(2)
        label = "zuko NSF (standardised data)" if name == "zuko-nsf-std" else \
            "zuko NSF (defaults)"
    if name == "zuko-nsf-std":
        mean, sd = xtr.mean(0), xtr.std(0)

        # density of the raw data = density of standardised data / prod(sd)
        def log_prob(x):
            return model().log_prob((x - mean) / sd) - torch.log(sd).sum()
    else:
        def log_prob(x):
            return model().log_prob(x)
    return label, log_prob, model.parameters()


def banana(seconds: float, models: tuple[str, ...] = BANANA_MODELS, repeats: int = 1) -> None:
    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    xtr, xte = p.sample((20_000,)), p.sample((5_000,))
    exact = float(-p.log_prob(xte).mean())
    print(f"banana: exact test NLL {exact:.4f}; budget {seconds:.0f} s per model")
    try:
        import zuko  # noqa: F401
    except ImportError:
        print("  zuko not installed (make bench-env): its models are skipped")
        models = tuple(m for m in models if not m.startswith("zuko"))
    reached: dict[str, list[float | None]] = {m: [] for m in models}
    for r in range(repeats):
        if repeats > 1:  # run r: every model initialised from seed 1 + r, minibatches seed r
            print(f" run {r + 1} of {repeats} (seeds {1 + r}, {r})")
        for name in models:
            label, log_prob, params = _banana_model(name, xtr, seed=1 + r)
            reached[name].append(train(label, log_prob, params, xtr, xte, exact, seconds,
                                       seed=r))
    if repeats == 1:
        return
    print(f" time to within 0.05 nats over {repeats} runs (median; runs in order):")
    for name, times in reached.items():
        ok = [t for t in times if t is not None]
        med = f"{statistics.median(ok):.2f} s" if ok else "never"
        print(f"  {name:14s} {med:>8s}  {[None if t is None else round(t, 2) for t in times]}")
    if "nsf" in reached and "zuko-maf" in reached:
        ratios = [a / b for a, b in zip(reached["nsf"], reached["zuko-maf"], strict=True)
                  if a is not None and b is not None]
        if ratios:
            print(f"  our NSF / zuko MAF per run: median {statistics.median(ratios):.2f}, "
                  f"range {min(ratios):.2f}-{max(ratios):.2f} ({len(ratios)} runs)")


if __name__ == "__main__":
    main()
