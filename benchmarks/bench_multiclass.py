"""Multi-class GP classification on the bundled digits (10 classes, 1437 train / 360 test):
our logistic-softmax augmented SVGP (one joint model), our one-vs-rest Pólya-gamma SVGP,
and scikit-learn's GaussianProcessClassifier (Laplace, one-vs-rest), on the same split.
Accuracy, test NLPD (nats per point) and fit time; run with `python
benchmarks/bench_multiclass.py` (scikit-learn is a core dependency, no competitor venv).
"""

from __future__ import annotations

import time

import numpy as np

import _timing
from bayeskit.data import load_digits_split
from bayeskit.gp.estimators import PolyaGammaSVGPClassifier


def _scores(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    accuracy = float((proba.argmax(1) == y).mean())
    nlpd = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())
    return accuracy, nlpd


def main() -> None:
    import argparse

    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ours-only", action="store_true",
                        help="skip scikit-learn's GPC (about 4 minutes on 2 cores)")
    args = parser.parse_args()
    _timing.header()
    x_tr, y_tr, x_te, y_te = (a.double().numpy() if a.is_floating_point() else a.numpy()
                              for a in load_digits_split())
    contenders = {
        "bayeskit logistic-softmax SVGP (M=100, 60 epochs, batch 256)":
            lambda: PolyaGammaSVGPClassifier(num_inducing=100, epochs=60, random_state=0,
                                             multiclass="softmax"),
        "bayeskit one-vs-rest PG-SVGP (M=100, 60 epochs, batch 256)":
            lambda: PolyaGammaSVGPClassifier(num_inducing=100, epochs=60, random_state=0),
        "scikit-learn GaussianProcessClassifier (Laplace, one-vs-rest)":
            lambda: GaussianProcessClassifier(ConstantKernel() * RBF(3.0), random_state=0),
    }
    if args.ours_only:
        contenders = {k: v for k, v in contenders.items() if k.startswith("bayeskit")}
    print("| method | fit time (s) | test accuracy | test NLPD |")
    print("|---|---|---|---|")
    for name, make in contenders.items():
        model = make()
        start = time.perf_counter()
        model.fit(x_tr, y_tr)
        seconds = time.perf_counter() - start
        accuracy, nlpd = _scores(model.predict_proba(x_te), y_te)
        print(f"| {name} | {seconds:.1f} | {accuracy:.4f} | {nlpd:.4f} |", flush=True)


if __name__ == "__main__":
    main()
