"""The performance targets of issue #18, measured on this machine in one command.

Runs each benchmark in the configuration its recorded figures came from (one process at a
time, never two at once), ``--runs`` rounds of every group in turn (so slow drift of the
machine is spread over the groups), reads the ``HEADLINE <key> <value>`` lines the scripts
print (``_timing.headline``) and prints one table: every figure's runs, their median, the
target and whether the median meets it, under the provenance line (date, torch, CPU model,
load) and the competitors' versions. The table is what RESULTS.md records per vendor.

    .venv-bench/bin/python benchmarks/check_targets.py [--runs 3] [--only pg gp chol]
        [--kg] [--logs DIR] [--json FILE]

Groups: ``pg`` (target 1), ``gibbs`` and ``gpc`` (target 2), ``gp`` (target 3), ``chol``
(target 4), ``vae`` and ``vae-synthetic`` (target 6), and with ``--kg`` target 7's 10 seeds
(one run: about an hour, BoTorch's 90 % of it). Target 5 (the GPU) is ``gpu_check.py``'s.
One round of the default groups takes ~13 minutes on 2 cores (Intel Xeon). Check ``cat
/proc/loadavg`` first: other load on a 2-core machine hurts the two-thread contenders more
than the one-thread ones.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _timing import header

HERE = Path(__file__).resolve().parent

#: group -> (script and its arguments, extra environment)
GROUPS: dict[str, tuple[list[str], dict[str, str]]] = {
    "pg": (["bench_polyagamma.py", "--headline", "--repeats", "7"], {}),
    # NUTS's best chain count here: 16 (vectorized; ESS/s at 4, 16, 64 chains 286, 467,
    # 347 on an Intel Xeon, 2026-12-07; sequential slower at 4 and 16)
    "gibbs": (["bench_gibbs.py", "--headline", "--chains", "16", "--our-chains", "64",
               "--metropolis-steps", "4", "--nuts-methods", "vectorized"], {}),
    "gpc": (["bench_gpc_gibbs.py", "--solvers", "cg", "--our-chains", "64",
             "--metropolis-steps", "4", "--our-warmup", "100", "--warmup", "200",
             "--chains", "16"], {}),
    "gp": (["bench_gp.py", "--sizes", "2000", "4000", "--sgpr-sizes", "100000",
            "--repeats", "7"], {}),
    "chol": (["bench_cholesky.py", "--no-memory", "--no-competitors", "--sizes", "2000"], {}),
    "vae": (["bench_vae.py"], {}),
    "vae-synthetic": (["bench_vae.py", "--synthetic", "50000", "--batch", "500",
                       "--epochs", "5"], {}),
    "kg": (["bench_kg.py", "--part", "loop", "--loop-problems", "hartmann6", "--loop-seeds",
            "10", "--loop-evals", "40"], {"BENCH_THREADS": "1"}),
}

#: (target, group, headline key, what it is, ">=" or "<=", bound)
TARGETS = [
    ("1", "pg", "pg.b1_cN", "PG b = 1, c ~ N(0, 2^2): polyagamma default / ours", ">=", 2.0),
    ("1", "pg", "pg.b1_c0", "PG b = 1, c = 0", ">=", 2.0),
    ("1", "pg", "pg.b2.7_c1.5", "PG b = 2.7, c = 1.5", ">=", 1.5),
    ("1", "pg", "pg.b10_cN", "PG b = 10, c ~ N(0, 2^2)", ">=", 2.0),
    ("2", "gibbs", "gibbs.ess_ratio", "Gibbs / NumPyro NUTS min-ESS/s, weight space", ">=", 1.0),
    ("2", "gibbs", "gibbs.mean_diff", "  its largest |mean difference| / sd", "<=", 0.1),
    ("2", "gpc", "gpc.ess_ratio", "Gibbs / NUTS min-ESS/s, GP classification", ">=", 3.0),
    ("2", "gpc", "gpc.mean_diff", "  its largest |mean difference| / sd", "<=", 0.1),
    ("3", "gp", "gp.se.exact.2000", "exact GP N = 2000: GPyTorch Cholesky / ours", ">=", 3.0),
    ("3", "gp", "gp.se.exact.4000", "exact GP N = 4000", ">=", 3.0),
    ("3", "gp", "gp.se.floor.2000", "  ours / (Cholesky + inverse), N = 2000", "<=", 1.1),
    ("3", "gp", "gp.se.floor.4000", "  ours / (Cholesky + inverse), N = 4000", "<=", 1.1),
    ("3", "gp", "gp.se.sgpr.100000", "SGPR N = 10^5, M = 256: GPyTorch / ours", ">=", 4.0),
    ("3", "gp", "gp.svgp", "SVGP Adam step M = 256, B = 1024: GPyTorch / ours", ">=", 1.5),
    ("4", "chol", "chol.rank16", "rank-16 update N = 2000: recompute / ours", ">=", 3.0),
    ("4", "chol", "chol.batch", "256 rank-1 updates of 100 x 100: recompute / ours", ">=", 5.0),
    ("4", "chol", "chol.append", "append a row at N = 2000 into a buffer: recompute / ours",
     ">=", 20.0),
    ("6", "vae", "vae.digits.time_ratio", "VAE epoch, digits: Pyro / ours", ">=", 1.5),
    ("6", "vae", "vae.digits.ll_gap", "  test log p(x), ours - Pyro (nats)", ">=", -0.1),
    ("6", "vae-synthetic", "vae.synthetic.time_ratio", "VAE epoch, synthetic 50 000: Pyro / ours",
     ">=", 1.5),
    ("6", "vae-synthetic", "vae.synthetic.ll_gap", "  test log p(x), ours - Pyro (nats)", ">=",
     -0.1),
    ("7", "kg", "kg.hartmann6.regret_margin",
     "Hartmann-6 KG, 10 seeds: BoTorch's median regret - ours", ">=", 0.0),
    ("7", "kg", "kg.hartmann6.time_ratio", "  BoTorch qKG's time / ours", ">=", 5.0),
]

COMPETITORS = ["polyagamma", "numba", "gpytorch", "numpyro", "jax", "pyro-ppl", "botorch",
               "arviz"]


def parse_headlines(text: str) -> dict[str, float]:
    """``{key: value}`` of the ``HEADLINE key value`` lines in a script's output."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "HEADLINE":
            found[parts[1]] = float(parts[2])
    return found


def run_group(group: str, timeout: float, log: Path | None) -> dict[str, float]:
    """Run one group's script once; its headline figures (none if it failed)."""
    args, extra_env = GROUPS[group]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra_env}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], env=env,
                              cwd=HERE.parent, capture_output=True, text=True, timeout=timeout)
        out, status = done.stdout + done.stderr, f"exit {done.returncode}"
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        status = f"timed out after {timeout:.0f} s"
    if log is not None:
        log.write_text(out)
    found = parse_headlines(out)
    print(f"  {group}: {status}, {time.perf_counter() - start:.0f} s, "
          f"{len(found)} figures", flush=True)
    return found


def verdict(values: list[float], op: str, bound: float) -> tuple[float | None, str]:
    if not values:
        return None, "not measured"
    med = statistics.median(values)
    met = med >= bound if op == ">=" else med <= bound
    return med, "met" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=[g for g in GROUPS if g != "kg"],
                        help="these groups only (default: all but kg)")
    parser.add_argument("--kg", action="store_true", help="also target 7 (one run, ~1 hour)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per script run")
    parser.add_argument("--logs", help="keep each run's whole output in this folder")
    parser.add_argument("--json", help="also write the runs and verdicts to this file")
    args = parser.parse_args()
    header()
    versions = {}
    for name in COMPETITORS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    print("# " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
    groups = list(args.only) if args.only else [g for g in GROUPS if g != "kg"]
    logs = Path(args.logs) if args.logs else None
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[float]] = {}
    plan = [(r, g) for r in range(args.runs) for g in groups] + ([(0, "kg")] if args.kg else [])
    for r, group in plan:
        if group == groups[0] or group == "kg":
            print(f"# round {r + 1}" if group != "kg" else "# target 7", flush=True)
        log = logs / f"{group}-{r + 1}.txt" if logs is not None else None
        for key, value in run_group(group, args.timeout, log).items():
            runs.setdefault(key, []).append(value)
    print("\n| target | figure | runs | median | target | verdict |")
    print("|---|---|---|---|---|---|")
    table = []
    for target, group, key, what, op, bound in TARGETS:
        if group not in groups and not (group == "kg" and args.kg):
            continue
        values = runs.get(key, [])
        med, word = verdict(values, op, bound)
        table.append({"target": target, "key": key, "figure": what.strip(), "runs": values,
                      "median": med, "op": op, "bound": bound, "verdict": word})
        shown = ", ".join(f"{v:.3g}" for v in values) or "-"
        med_s = "-" if med is None else f"**{med:.3g}**"
        print(f"| {target} | {what} | {shown} | {med_s} | {op} {bound:g} | {word} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"versions": versions, "runs": runs, "table": table}, f, indent=1)


if __name__ == "__main__":
    main()
