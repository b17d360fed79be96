"""Reproducers of issue 14's invalid arguments: each now raises a bayeskit error that names
the argument (never NaN, an opaque torch error or silent acceptance)."""

import math

import numpy as np
import pytest
import torch

from bayeskit.bo import LogExpectedImprovement, UpperConfidenceBound
from bayeskit.distributions import Flow, fit_flow
from bayeskit.distributions.flows import Permute
from bayeskit.distributions.transforms import Banana, banana_distribution
from bayeskit.errors import BayeskitError
from bayeskit.gp import GPR, SGPR, SVGP, Bernoulli, Poisson, SquaredExponential
from bayeskit.mcmc.logistic import polynomial_basis
from bayeskit.ratio.estimators import ULSIF
from bayeskit.vae.modules import GaussianDecoder

X = np.linspace(0, 1, 8)[:, None]
Y = np.sin(6 * X[:, 0])

CASES = {
    "SquaredExponential(lengthscale=nan)": lambda: SquaredExponential(lengthscale=math.nan),
    "Banana(curvature=nan)": lambda: Banana(curvature=math.nan),
    "banana_distribution(curvature=inf)": lambda: banana_distribution(curvature=math.inf),
    "UpperConfidenceBound(beta=nan)": lambda: UpperConfidenceBound(GPR(X, Y), beta=math.nan),
    "LogExpectedImprovement(best_f=inf)": lambda: LogExpectedImprovement(GPR(X, Y),
                                                                        best_f=math.inf),
    "GaussianDecoder(sigma=nan)": lambda: GaussianDecoder(2, 3, sigma=math.nan),
    "GPR(mean=nan)": lambda: GPR(X, Y, mean=math.nan),
    "GPR(noise_variance=nan)": lambda: GPR(X, Y, noise_variance=math.nan),
    "GPR(X=strings)": lambda: GPR([["a"], ["b"]], [0.0, 1.0]),
    "GPR(X=None)": lambda: GPR(None, Y),
    "GPR(complex)": lambda: GPR(X + 1j, Y),
    "GPR.fit(restarts=-1)": lambda: GPR(X, Y).fit(restarts=-1),
    "SGPR(chunk_size=0)": lambda: SGPR(X, Y, X[:3], chunk_size=0),
    "SVGP(num_data=0)": lambda: SVGP(X[:3], num_data=0),
    "SVGP.predict_f(nan)": lambda: SVGP(X[:3], num_data=8).predict_f([[math.nan]]),
    "SVGP Bernoulli labels -1": lambda: SVGP(X[:3], num_data=8, likelihood=Bernoulli()).elbo(
        X, -np.ones(8)),
    "SVGP Bernoulli labels 0.5": lambda: SVGP(X[:3], num_data=8, likelihood=Bernoulli()).elbo(
        X, np.full(8, 0.5)),
    "SVGP Poisson y < 0": lambda: SVGP(X[:3], num_data=8, likelihood=Poisson()).elbo(
        X, -np.ones(8)),
    "SVGP.fit(batch_size=0)": lambda: SVGP(X[:3], num_data=8).fit(X, Y, batch_size=0),
    "ULSIF(sigmas=[0])": lambda: ULSIF(sigmas=[0.0]).fit(np.ones((20, 1)), np.zeros((20, 1))),
    "ULSIF(sigmas=[-1])": lambda: ULSIF(sigmas=[-1.0]).fit(np.ones((20, 1)), np.zeros((20, 1))),
    "ULSIF(lambdas=[nan])": lambda: ULSIF(lambdas=[math.nan]).fit(np.ones((20, 1)),
                                                                   np.zeros((20, 1))),
    "ULSIF(folds=1)": lambda: ULSIF(folds=1).fit(np.ones((20, 1)), np.zeros((20, 1))),
    "ULSIF(n_centers=0)": lambda: ULSIF(n_centers=0).fit(np.ones((20, 1)), np.zeros((20, 1))),
    "fit_flow(batch_size=-5)": lambda: fit_flow(Flow(2, hidden=(4,)), torch.randn(50, 2),
                                                batch_size=-5),
    "fit_flow(samples requiring grad)": lambda: fit_flow(
        Flow(2, hidden=(4,)), torch.randn(50, 2, requires_grad=True)),
    "Permute([0, 0, 1])": lambda: Permute([0, 0, 1]),
    "Flow(dim=0)": lambda: Flow(0),
    "polynomial_basis(2.5)": lambda: polynomial_basis(2.5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_arguments_raise_bayeskit_errors(case):
    with pytest.raises(BayeskitError):
        CASES[case]()
