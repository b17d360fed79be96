"""GP classification at scale: Pólya-gamma augmented SVGP (closed-form natural-gradient
steps + Adam, ``PolyaGammaSVGP.hybrid_step``) vs quadrature SVGP with Adam (ours) vs
GPyTorch's variational GP (Adam; and, as an extra, natural gradients with NGD): same data,
same inducing points, same minibatches, same wall budget, in one process.

The issue's protocol: per data set the threshold is the worst of the final test NLPDs of
(a) ours PG, (b) ours quadrature and (c) GPyTorch Adam, plus 0.01 nats; each contender's
time is the training time (evaluation excluded from the clock) until its test NLPD first
reaches the threshold. The test NLPD is evaluated after every one of the first ``--dense``
minibatch steps, then every ``--eval-every`` steps (the same for all contenders), so a
method that needs less than an epoch is not rounded up to one, nor to ten steps.
``--repeats R`` runs every contender R times (round-robin, a new minibatch order each
round) and reports medians.

Data sets:
- ``synthetic``: 4-D, P(y = 1 | x) = sigmoid(3 sin(x_1) + 2 x_2 x_3), x ~ N(0, I); N train
  (default 100 000), 10 000 test; the NLPD of the true probabilities is the floor.
- ``breast-cancer``: scikit-learn's bundled data (no download), 30 standardised features,
  a stratified 70/30 split.

Float64, SE-ARD kernel, M inducing points (a random subset of the training inputs, trained),
Adam 0.01 on hyperparameters; our logit link, GPyTorch's probit (its Bernoulli likelihood).

    .venv-bench/bin/python benchmarks/bench_pgsvgp.py [--data synthetic breast-cancer]
        [--n 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _timing import header
from bayeskit.gp import SVGP, Bernoulli, PolyaGammaSVGP, SquaredExponential

F64 = torch.float64
THRESHOLD_FROM = ("bayeskit PG-SVGP", "bayeskit SVGP quadrature", "GPyTorch VGP Adam")


def synthetic(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g, dtype=F64)
    logit = 3 * torch.sin(X[:, 0]) + 2 * X[:, 1] * X[:, 2]
    y = (torch.rand(n, generator=g, dtype=F64) < torch.sigmoid(logit)).to(F64)
    return X, y, torch.sigmoid(logit)


def breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    return [torch.as_tensor(a, dtype=F64) for a in ((Xtr - mu) / sd, ytr, (Xte - mu) / sd, yte)]


def scores(p1: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    p1 = p1.clamp(1e-12, 1 - 1e-12)
    nll = -float((y * p1.log() + (1 - y) * (1 - p1).log()).mean())
    return nll, float(((p1 > 0.5).to(F64) == y).to(F64).mean())


def minibatches(n, batch, g):
    """Shuffled minibatches forever, a new order every epoch."""
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            yield perm[i:i + batch]


def run(step, predict, rows, Xte, yte, seconds, eval_every, dense):
    """Steps until the budget is spent; ``(seconds, steps, nll, accuracy)`` after each of the
    first ``dense`` steps, then every ``eval_every`` steps; evaluation not timed."""
    elapsed, steps, trace = 0.0, 0, []
    while elapsed < seconds:
        k = 1 if steps < dense else eval_every
        t0 = time.perf_counter()
        for _ in range(k):
            step(next(rows))
        elapsed += time.perf_counter() - t0
        steps += k
        with torch.no_grad():
            trace.append((elapsed, steps, *scores(predict(Xte), yte)))
    return trace


def ours_pg(X, y, Z):
    m = PolyaGammaSVGP(Z.clone(), SquaredExponential(torch.ones(X.shape[1], dtype=F64)),
                       num_data=len(X))
    opt = torch.optim.Adam(m.hyperparameters(), lr=0.01)
    state = {"t": 0}

    def step(rows):
        m.hybrid_step(X[rows], y[rows], optimizer=opt, gamma=m.step_size(state["t"], 1.0, 0.6))
        state["t"] += 1
    return step, lambda Xt: m.predict_y(Xt)[0]


def ours_quadrature(X, y, Z):
    m = SVGP(Z.clone(), SquaredExponential(torch.ones(X.shape[1], dtype=F64)),
             num_data=len(X), likelihood=Bernoulli("logit"))
    opt = torch.optim.Adam(m.parameters(), lr=0.01)

    def step(rows):
        opt.zero_grad()
        (-m.elbo(X[rows], y[rows])).backward()
        opt.step()
    return step, lambda Xt: m.predict_y(Xt)[0]


def gpytorch_model(X, y, Z, natural: bool):
    import gpytorch

    dist_cls = (gpytorch.variational.NaturalVariationalDistribution if natural
                else gpytorch.variational.CholeskyVariationalDistribution)

    class Model(gpytorch.models.ApproximateGP):
        def __init__(self):
            dist = dist_cls(Z.shape[0])
            strat = gpytorch.variational.VariationalStrategy(
                self, Z.clone(), dist, learn_inducing_locations=True)
            super().__init__(strat)
            self.mean_module = gpytorch.means.ZeroMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(
                gpytorch.kernels.RBFKernel(ard_num_dims=X.shape[1]))

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x),
                                                             self.covar_module(x))

    model = Model().double()
    lik = gpytorch.likelihoods.BernoulliLikelihood().double()
    mll = gpytorch.mlls.VariationalELBO(lik, model, num_data=len(X))
    hyper = [p for n, p in model.named_parameters() if "variational_distribution" not in n]
    if natural:
        ngd = gpytorch.optim.NGD(model.variational_parameters(), num_data=len(X), lr=0.1)
        adam = torch.optim.Adam(hyper + list(lik.parameters()), lr=0.01)
        opts = [ngd, adam]
    else:
        opts = [torch.optim.Adam(list(model.parameters()) + list(lik.parameters()), lr=0.01)]
    model.train()
    lik.train()

    def step(rows):
        for o in opts:
            o.zero_grad()
        (-mll(model(X[rows]), y[rows])).backward()
        for o in opts:
            o.step()

    def predict(Xt):
        model.eval()
        lik.eval()
        with gpytorch.settings.fast_pred_var():
            p = torch.cat([lik(model(c)).mean for c in Xt.split(2000)])
        model.train()
        lik.train()
        return p
    return step, predict


def time_to(trace, threshold):
    """``(seconds, steps)`` when the test NLPD first reached ``threshold``, or None."""
    return next(((t, k) for t, k, nll, _ in trace if nll <= threshold), None)


def study(name, X, y, Xte, yte, args, batch, eval_every, seconds, dense, floor=None):
    M = min(args.m, len(X))
    Z = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(2))[:M]]
    print(f"\n## {name}: N={len(X)}, {len(Xte)} test, D={X.shape[1]}, M={M}, batch {batch}, "
          f"NLPD after each of the first {dense} steps, then every {eval_every}, "
          f"{seconds:.0f} s each, {args.repeats} round(s)"
          + ("" if floor is None else f"; NLPD of the true probabilities {floor:.4f}"))
    contenders = {
        "bayeskit PG-SVGP": lambda: ours_pg(X, y, Z),
        "bayeskit SVGP quadrature": lambda: ours_quadrature(X, y, Z),
        "GPyTorch VGP Adam": lambda: gpytorch_model(X, y, Z, False),
        "GPyTorch VGP NGD 0.1 + Adam": lambda: gpytorch_model(X, y, Z, True),
    }
    # untimed: a few steps of each contender first, so that compiling (numba's kernels on a
    # fresh machine, torch's first calls) does not land in the first contender's first round
    for build in contenders.values():
        step, predict = build()
        rows = minibatches(len(X), batch, torch.Generator().manual_seed(1))
        for _ in range(3):
            step(next(rows))
        with torch.no_grad():
            predict(Xte[:10])
    traces = {k: [] for k in contenders}
    for r in range(args.repeats):
        for cname, build in contenders.items():
            torch.manual_seed(3 + r)
            step, predict = build()
            rows = minibatches(len(X), batch, torch.Generator().manual_seed(4 + r))
            traces[cname].append(run(step, predict, rows, Xte, yte, seconds, eval_every,
                                     dense))
    hits = {k: [] for k in contenders}
    for r in range(args.repeats):
        threshold = max(traces[k][r][-1][2] for k in THRESHOLD_FROM) + 0.01
        for cname in contenders:
            hits[cname].append(time_to(traces[cname][r], threshold))
    print(f"{'contender':30s} {'steps/s':>8s} {'final NLPD':>10s} {'accuracy':>8s}  "
          "seconds (steps) to threshold per round -> median")
    medians = {}
    for cname, tr in traces.items():
        ok = [h[0] for h in hits[cname] if h is not None]
        medians[cname] = statistics.median(ok) if len(ok) == len(hits[cname]) else None
        final = statistics.median(t[-1][2] for t in tr)
        acc = statistics.median(t[-1][3] for t in tr)
        rate = statistics.median(t[-1][1] / t[-1][0] for t in tr)
        per = " ".join("never" if h is None else f"{h[0]:.2f} ({h[1]})" for h in hits[cname])
        med = "never" if medians[cname] is None else f"{medians[cname]:.2f} s"
        print(f"{cname:30s} {rate:8.1f} {final:10.4f} {acc:8.4f}  {per} -> {med}")
    ours = medians["bayeskit PG-SVGP"]
    for cname, med in medians.items():
        if cname != "bayeskit PG-SVGP" and ours and med:
            print(f"  {cname} / bayeskit PG-SVGP: {med / ours:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", default=["synthetic", "breast-cancer"],
                        choices=["synthetic", "breast-cancer"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--dense", type=int, default=300,
                        help="evaluate after every one of the first DENSE steps")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    header()
    if "synthetic" in args.data:
        X, y, _ = synthetic(args.n, 0)
        Xte, yte, truth = synthetic(10_000, 1)
        study("synthetic", X, y, Xte, yte, args, args.batch, args.eval_every, args.seconds,
              args.dense, floor=scores(truth, yte)[0])
    if "breast-cancer" in args.data:
        Xtr, ytr, Xte, yte = breast_cancer()
        # 398 training rows: minibatches of 64, the NLPD after every step
        study("breast cancer", Xtr, ytr, Xte, yte, args, 64, 1, args.seconds / 4, 0)


if __name__ == "__main__":
    main()
