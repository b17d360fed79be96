"""Knowledge gradient: bayeskit vs BoTorch qKnowledgeGradient, same GP, same process.

Both libraries get the *same* posterior: our GP is fitted by type-II ML and BoTorch's
SingleTaskGP is given those hyperparameters (BoTorch maximises, so it sees -y). Every
candidate is then judged by one referee on our model:

* 1-D (the reference's f(x) = sin(3x) + x^2 - 0.7x, 10 noisy points, 10 seeds): the exact
  discrete KG over a 3001-point grid; the target is >= 0.99 of its maximum.
* Hartmann-6 (20 Sobol points): a nested Monte Carlo KG with 256 antithetic fantasies and
  multi-start inner L-BFGS-B, the same fantasies for every candidate.
* Full BO loops (Branin; Hartmann-6 optional): simple regret after N evaluations and wall
  time, ours (acquisition="kg") vs a BoTorch loop (fit_gpytorch_mll + optimize_acqf(qKG)).

    .venv-bench/bin/python benchmarks/bench_kg.py [--part 1d hartmann loop scale] [--seeds 10]
    .venv-bench/bin/python benchmarks/bench_kg.py --part scale --scale-n 1000 5000 \
        --scale-surrogates sgpr --scale-acquisitions kg --scale-botorch 1000 5000
    .venv-bench/bin/python benchmarks/bench_kg.py --part loop --ours-only \
        --loop-problems hartmann6 --loop-evals 200 --loop-seeds 10 --loop-surrogate sgpr \
        --loop-save runs/        # then the recommendation with other neighbourhoods:
    .venv-bench/bin/python benchmarks/bench_kg.py --part recommend --recommend-from runs/ \
        --recommend-neighbours 0 64 128 256     # 0: recommend()'s default
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from _timing import header, headline
from bayeskit.bo import (
    DiscreteKnowledgeGradient,
    OneShotKnowledgeGradient,
    knowledge_gradient_mc,
    optimize_discrete_kg,
    posterior_minimum,
)
from bayeskit.bo.loop import BayesianOptimizer
from bayeskit.bo.test_functions import branin, hartmann6, levy, reference_1d
from bayeskit.gp import GPR, Matern, SquaredExponential

F64 = torch.float64


def botorch_twin(model: GPR, kind: str):
    """A BoTorch SingleTaskGP with our fitted hyperparameters, on -y."""
    import gpytorch
    from botorch.models import SingleTaskGP

    D = model.X.shape[1]
    if kind == "rbf":
        base = gpytorch.kernels.RBFKernel(ard_num_dims=D)
    else:
        base = gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=D)
    covar = gpytorch.kernels.ScaleKernel(base)
    twin = SingleTaskGP(model.X, -model.y[:, None], covar_module=covar,
                        outcome_transform=None, input_transform=None).to(F64)
    with torch.no_grad():
        ls = model.kernel.lengthscale.detach().expand(D)
        base.lengthscale = ls[None]
        covar.outputscale = model.kernel.variance.detach()
        twin.likelihood.noise = model.noise_variance.detach()
        twin.mean_module.constant.fill_(-float(model.mean_constant))
    return twin.eval()


def botorch_kg(twin, bounds, num_restarts=10, raw_samples=256, num_fantasies=64,
               options=None):
    from botorch.acquisition import qKnowledgeGradient
    from botorch.optim import optimize_acqf

    acq = qKnowledgeGradient(twin, num_fantasies=num_fantasies)
    x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=num_restarts,
                         raw_samples=raw_samples, options=options)
    return x.detach()


def part_1d(seeds: int) -> None:
    f = reference_1d()
    print("\n## 1-D: maximise KG over [-1, 2] (referee: exact discrete KG, 3001-point grid)")
    print("| seed | ours x | ours KG / max | ours s | BoTorch x | BoTorch KG / max | BoTorch s |")
    print("|---|---|---|---|---|---|---|")
    ratios, ours_t, bt_t, bt_ratio = [], [], [], []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        X = -1 + 3 * torch.rand(10, 1, dtype=F64, generator=g)
        y = f(X) + 0.1 * torch.randn(10, dtype=F64, generator=g)
        model = GPR(X, y, SquaredExponential()).fit(restarts=2)
        grid = torch.linspace(-1, 2, 3001, dtype=F64)[:, None]
        referee = DiscreteKnowledgeGradient(model, grid)
        best = float(referee(torch.linspace(-1, 2, 3001, dtype=F64)[:, None, None]).max())
        start = time.perf_counter()
        x_ours, _ = optimize_discrete_kg(model, f.bounds)
        t_ours = time.perf_counter() - start
        r_ours = float(referee(x_ours[None])) / best
        line = f"| {seed} | {float(x_ours):.4f} | {r_ours:.5f} | {t_ours:.3f} |"
        try:
            twin = botorch_twin(model, "rbf")
            torch.manual_seed(seed)
            start = time.perf_counter()
            x_bt = botorch_kg(twin, f.bounds)
            t_bt = time.perf_counter() - start
            r_bt = float(referee(x_bt[None])) / best
            line += f" {float(x_bt):.4f} | {r_bt:.5f} | {t_bt:.2f} |"
            bt_t.append(t_bt)
            bt_ratio.append(r_bt)
        except ImportError:
            line += " - | - | - |"
        print(line, flush=True)
        ratios.append(r_ours)
        ours_t.append(t_ours)
    print(f"\nours: min KG/max {min(ratios):.5f}, {sum(r >= 0.99 for r in ratios)}/{seeds} "
          f">= 0.99, median {statistics.median(ours_t):.3f} s")
    if bt_t:
        print(f"BoTorch: min KG/max {min(bt_ratio):.5f}, {sum(r >= 0.99 for r in bt_ratio)}/"
              f"{seeds} >= 0.99, median {statistics.median(bt_t):.2f} s; time ratio "
              f"{statistics.median(bt_t) / statistics.median(ours_t):.1f}x")


def part_hartmann(seeds: int, num_fantasies: int) -> None:
    h = hartmann6()
    print(f"\n## Hartmann-6, 20 Sobol points: optimise KG (referee: nested MC KG, 256 "
          f"antithetic fantasies); ours one-shot with {num_fantasies} fantasies")
    print("| seed | ours KG | ours s | BoTorch KG | BoTorch s |")
    print("|---|---|---|---|---|")
    for seed in range(seeds):
        X = torch.quasirandom.SobolEngine(6, scramble=True, seed=seed).draw(20, dtype=F64)
        y = h(X)
        ys = (y - y.mean()) / y.std()
        model = GPR(X, ys, Matern(2.5, torch.full((6,), 0.3)), noise_variance=1e-3)
        model.fit(restarts=2, seed=seed)
        post = model.posterior()
        g = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        tau = posterior_minimum(post, h.bounds, generator=g)
        acq = OneShotKnowledgeGradient(post, h.bounds, num_fantasies=num_fantasies,
                                       generator=g, tau=tau)
        x_ours, _ = acq.optimize(generator=g)
        t_ours = time.perf_counter() - start
        cands = [x_ours]
        t_bt = float("nan")
        try:
            twin = botorch_twin(model, "matern")
            torch.manual_seed(seed)
            start = time.perf_counter()
            x_bt = botorch_kg(twin, h.bounds)
            t_bt = time.perf_counter() - start
            cands.append(x_bt)
        except ImportError:
            pass
        judge = knowledge_gradient_mc(post, torch.cat(cands), h.bounds, num_fantasies=256,
                                      generator=torch.Generator().manual_seed(1000 + seed),
                                      num_restarts=4, raw_samples=1024, tau=tau,
                                      return_details=True)
        kg, se = judge[0].detach(), judge[1]["se"]
        line = f"| {seed} | {float(kg[0]):.4f} ± {float(se[0]):.4f} | {t_ours:.2f} |"
        if len(cands) > 1:
            line += f" {float(kg[1]):.4f} ± {float(se[1]):.4f} | {t_bt:.2f} |"
        print(line, flush=True)


def botorch_loop(problem, n_init, n_total, seed):
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    d = problem.dim
    X = problem.bounds[0] + (problem.bounds[1] - problem.bounds[0]) * \
        torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(n_init, dtype=F64)
    Y = -problem(X)[:, None]
    torch.manual_seed(seed)
    while len(X) < n_total:
        model = SingleTaskGP(X, Y, input_transform=Normalize(d), outcome_transform=Standardize(1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        x = botorch_kg(model, problem.bounds)
        X = torch.cat([X, x])
        Y = torch.cat([Y, -problem(x)[:, None]])
    return float(-Y.max())


def part_loop(problems, seeds: int, n_total: int, competitor: bool = True,
              acquisition: str = "kg", num_fantasies: int = 16, surrogate: str = "gpr",
              num_inducing: int = 128, first_seed: int = 0,
              inducing_selection: str = "variance", save: str | None = None) -> None:
    print(f"\n## Full BO, {n_total} evaluations: simple regret (best observed - minimum); "
          f"ours: {acquisition} on {surrogate}"
          + (f" (M = {num_inducing} once n > M, {inducing_selection} selection)"
             if surrogate != "gpr" else ""))
    print("| problem | seed | ours regret | ours s | BoTorch regret | BoTorch s |")
    print("|---|---|---|---|---|---|")
    for problem in problems:
        n_init = 2 * problem.dim + 2
        ours_r, bt_r, ours_t, bt_t, rec_r, final_r = [], [], [], [], [], []
        for seed in range(first_seed, first_seed + seeds):
            start = time.perf_counter()
            bo = BayesianOptimizer(problem, problem.bounds, acquisition=acquisition,
                                   n_init=n_init, num_fantasies=num_fantasies, seed=seed,
                                   progress=False, executor="serial", surrogate=surrogate,
                                   num_inducing=num_inducing,
                                   inducing_selection=inducing_selection)
            bo.run(n_total - n_init)
            ours_t.append(time.perf_counter() - start)
            if save:  # BayesianOptimizer.resume(path, problem) continues from it
                bo.save(Path(save) / f"{problem.name}-{acquisition}-{surrogate}-{seed}.json")
            ours_r.append(bo.best_value - problem.minimum)
            # the inference regret: what the loop would recommend (KG's own criterion),
            # at the last ask (the surrogate the loop itself used) and after the budget
            # (BayesianOptimizer.recommend: every evaluation; a sparse surrogate refined
            # by an exact GP on the incumbent's neighbourhood)
            x_hat = torch.tensor(bo.history[-1]["best_predicted_x"] if bo.history
                                 else bo.best_x, dtype=F64)  # no model yet: the best seen
            rec_r.append(float(problem(x_hat[None])) - problem.minimum)
            x_rec = torch.tensor(bo.recommend(), dtype=F64)
            final_r.append(float(problem(x_rec[None])) - problem.minimum)
            line = f"| {problem.name} | {seed} | {ours_r[-1]:.4g} | {ours_t[-1]:.1f} |"
            try:
                if not competitor:
                    raise ImportError
                start = time.perf_counter()
                best = botorch_loop(problem, n_init, n_total, seed)
                bt_t.append(time.perf_counter() - start)
                bt_r.append(best - problem.minimum)
                line += f" {bt_r[-1]:.4g} | {bt_t[-1]:.1f} |"
            except ImportError:
                line += " - | - |"
            print(line, flush=True)
        summary = (f"{problem.name}: median regret ours {statistics.median(ours_r):.4g} "
                   f"(total {sum(ours_t):.0f} s)")
        if bt_r:
            summary += (f", BoTorch {statistics.median(bt_r):.4g} (total {sum(bt_t):.0f} s); "
                        f"time ratio {sum(bt_t) / sum(ours_t):.1f}x")
        print(summary, flush=True)
        if bt_r:  # BoTorch's median regret less ours (>= 0: ours no worse), and the time
            key = "kg." + "".join(ch for ch in problem.name.lower() if ch.isalnum())
            headline(f"{key}.regret_margin", statistics.median(bt_r) - statistics.median(ours_r))
            headline(f"{key}.time_ratio", sum(bt_t) / sum(ours_t))
        print(f"{problem.name}: ours at the recommended point (the posterior mean's minimiser "
              f"at the last ask): median {statistics.median(rec_r):.4g}, per seed "
              + " ".join(f"{r:.3g}" for r in rec_r), flush=True)
        print(f"{problem.name}: ours at bo.recommend() after the budget: median "
              f"{statistics.median(final_r):.4g}, per seed "
              + " ".join(f"{r:.3g}" for r in final_r), flush=True)


def part_recommend(folder: str, neighbours: list[int]) -> None:
    """Regret at ``BayesianOptimizer.recommend(neighbours=k)`` for every loop saved by
    ``--loop-save`` in ``folder`` (resumed from its JSON state; ``k = 0``: the default),
    grouped by the file name without its seed."""
    probs = {p.name: p for p in (branin(), hartmann6(), levy(10))}
    groups: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).glob("*.json"), key=lambda p: (len(p.name), p.name)):
        groups.setdefault(path.stem.rsplit("-", 1)[0], []).append(path)
    print(f"\n## Regret at bo.recommend(neighbours=k) of the loops saved in {folder}")
    print("| loops | k | median | per seed | seconds per call |")
    print("|---|---|---|---|---|")
    for name, paths in groups.items():
        problem = next(p for key, p in probs.items() if name.startswith(key))
        for k in neighbours:
            regrets, secs = [], []
            for path in paths:
                bo = BayesianOptimizer.resume(path, problem, progress=False,
                                              executor="serial")
                start = time.perf_counter()
                x = torch.tensor(bo.recommend(neighbours=k or None), dtype=F64)
                secs.append(time.perf_counter() - start)
                regrets.append(float(problem(x[None])) - problem.minimum)
            print(f"| {name} ({len(paths)}) | {k or 'default'} | "
                  f"{statistics.median(regrets):.3g} | "
                  + " ".join(f"{r:.2g}" for r in regrets)
                  + f" | {min(secs):.1f}-{max(secs):.1f} |", flush=True)


def botorch_scale(X, y, bounds, num_inducing: int, num_fantasies: int = 8) -> str:
    """One BoTorch iteration at the loop's scale: SingleTaskGP (Normalize/Standardize, as in
    :func:`botorch_loop`) fitted by ``fit_gpytorch_mll`` and ``optimize_acqf`` on
    ``qKnowledgeGradient`` (``num_fantasies`` as ours, 10 restarts, 256 raw samples, scored
    16 at a time and optimised 5 restarts at a time: with its defaults, all 256 raw samples
    at once, n = 1 000 exceeded 24 GiB and was killed); then
    the variational contender: SingleTaskVariationalGP with ``num_inducing`` points and the
    same qKG, which needs the model's ``fantasize`` (GPyTorch's online variational
    conditioning). Returns the table cells."""
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP, SingleTaskVariationalGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood, VariationalELBO

    d = X.shape[1]
    Y = -y[:, None]
    t0 = time.perf_counter()
    model = SingleTaskGP(X, Y, input_transform=Normalize(d), outcome_transform=Standardize(1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    limits = {"init_batch_limit": 16, "batch_limit": 5}
    botorch_kg(model, bounds, num_fantasies=num_fantasies, options=limits)
    cells = f"exact: fit {t_fit:.1f} s + qKG {time.perf_counter() - t0:.1f} s"
    try:
        vgp = SingleTaskVariationalGP(X, Y, inducing_points=num_inducing,
                                      outcome_transform=Standardize(1)).to(F64)
        fit_gpytorch_mll(VariationalELBO(vgp.likelihood, vgp.model, num_data=len(X)))
        t0 = time.perf_counter()
        botorch_kg(vgp.eval(), bounds, num_fantasies=num_fantasies, options=limits)
        cells += f"; variational: qKG {time.perf_counter() - t0:.1f} s"
    except Exception as err:  # noqa: BLE001 - record why the contender does not run
        cells += f"; variational: does not run ({type(err).__name__}: {str(err)[:80]})"
    return cells


def part_scale(sizes, surrogates, acquisitions, num_inducing: int, batch: int = 1,
               botorch_sizes=()) -> None:
    """Per-iteration wall time of the loop at n observations (issue #17): Hartmann-6 at n
    uniform points told to a BayesianOptimizer, then two iterations timed (surrogate refit
    warm-started from the previous fit, inducing points by greedy variance, acquisition
    maximisation): the first refits from both starts (as every 5th iteration does), the
    second is a typical one. ``batch`` > 1 asks that many points per iteration (EI: the
    kriging believer, which conditions the sparse posterior once per point). Then one
    ``recommend()`` (a refit and, for a sparse surrogate, the exact GP on 512 neighbours)
    and the regret at its point."""
    f = hartmann6()
    print(f"\nScale: one BO iteration on Hartmann-6 with n observations (M = {num_inducing}, "
          f"{batch} point(s) per ask)")
    print("| n | surrogate | acquisition | first ask (full refit) s | next ask (warm) s | "
          "cold fit s | recommend() s | its regret |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        X = torch.rand(n, 6, dtype=F64, generator=g)
        y = f(X) + 0.01 * torch.randn(n, dtype=F64, generator=g)
        for surrogate in surrogates:
            if surrogate == "gpr" and n > 5000:
                print(f"| {n} | gpr | - | skipped (O(n^3) per L-BFGS step) | - |", flush=True)
                continue
            for acq in acquisitions:
                bo = BayesianOptimizer(f, f.bounds, acquisition=acq, n_init=2, seed=0,
                                       progress=False, executor="serial",
                                       surrogate=surrogate, num_inducing=num_inducing,
                                       num_fantasies=8, fit_restarts=0)
                bo.tell(X, y)
                t0 = time.perf_counter()
                bo.fit_model()
                t_fit = time.perf_counter() - t0
                asks = []
                for _ in range(2):  # the first refits from both starts, the next warm only
                    t0 = time.perf_counter()
                    x = bo.ask(batch)
                    asks.append(time.perf_counter() - t0)
                    bo.tell(x, f(torch.as_tensor(x)))
                t0 = time.perf_counter()
                x_rec = torch.as_tensor(bo.recommend())
                t_rec = time.perf_counter() - t0
                print(f"| {n} | {surrogate} | {acq} | {asks[0]:.1f} | {asks[1]:.1f} | "
                      f"{t_fit:.1f} | {t_rec:.1f} | {float(f(x_rec[None])) - f.minimum:.3g} |",
                      flush=True)
        if n in botorch_sizes:
            print(f"| {n} | BoTorch | qKG | {botorch_scale(X, y, f.bounds, num_inducing)} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", nargs="*", default=["1d", "hartmann", "loop"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--hartmann-seeds", type=int, default=5)
    parser.add_argument("--fantasies", type=int, default=16)
    parser.add_argument("--loop-seeds", type=int, default=3)
    parser.add_argument("--loop-evals", type=int, default=30)
    parser.add_argument("--loop-problems", nargs="*", default=["branin"])
    parser.add_argument("--ours-only", action="store_true", help="skip BoTorch in the loops")
    parser.add_argument("--loop-acquisition", default="kg", help="ours: kg, ei, ucb, ...")
    parser.add_argument("--loop-fantasies", type=int, default=16)
    parser.add_argument("--loop-surrogate", default="gpr", help="ours: gpr, sgpr or svgp")
    parser.add_argument("--loop-inducing", type=int, default=128)
    parser.add_argument("--loop-first-seed", type=int, default=0)
    parser.add_argument("--loop-inducing-selection", default="variance",
                        help="ours, sparse surrogates: variance, improvement or local")
    parser.add_argument("--loop-save", default=None,
                        help="a folder: each loop's final state as JSON (resumable)")
    parser.add_argument("--recommend-from", default=None,
                        help="--part recommend: a folder written by --loop-save")
    parser.add_argument("--recommend-neighbours", type=int, nargs="*", default=[0])
    parser.add_argument("--scale-n", type=int, nargs="*", default=[1000, 5000, 20000])
    parser.add_argument("--scale-surrogates", nargs="*", default=["gpr", "sgpr"])
    parser.add_argument("--scale-acquisitions", nargs="*", default=["ei", "kg"])
    parser.add_argument("--scale-inducing", type=int, default=128)
    parser.add_argument("--scale-batch", type=int, default=1)
    parser.add_argument("--scale-botorch", type=int, nargs="*", default=[],
                        help="n values at which to also time one BoTorch qKG iteration "
                             "(exact SingleTaskGP, and SingleTaskVariationalGP where it runs)")
    args = parser.parse_args()
    header()
    try:
        import botorch
        print(f"# botorch {botorch.__version__}")
    except ImportError:
        print("# botorch not installed: ours only")
    if "1d" in args.part:
        part_1d(args.seeds)
    if "hartmann" in args.part:
        part_hartmann(args.hartmann_seeds, args.fantasies)
    if "loop" in args.part:
        probs = {"branin": branin(), "hartmann6": hartmann6(), "levy10": levy(10)}
        part_loop([probs[p] for p in args.loop_problems], args.loop_seeds, args.loop_evals,
                  competitor=not args.ours_only, acquisition=args.loop_acquisition,
                  num_fantasies=args.loop_fantasies, surrogate=args.loop_surrogate,
                  num_inducing=args.loop_inducing, first_seed=args.loop_first_seed,
                  inducing_selection=args.loop_inducing_selection, save=args.loop_save)
    if "recommend" in args.part:
        part_recommend(args.recommend_from, args.recommend_neighbours)
    if "scale" in args.part:
        part_scale(args.scale_n, args.scale_surrogates, args.scale_acquisitions,
                   args.scale_inducing, args.scale_batch, tuple(args.scale_botorch))


if __name__ == "__main__":
    main()
