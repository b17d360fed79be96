"""Bayesian optimisation with the knowledge gradient (reference 03), minimisation convention.

- :mod:`bayeskit.bo.posterior`: a fitted GP's posterior, differentiable in the inputs, with
  the closed-form fantasy update ``sigma_tilde``.
- :mod:`bayeskit.bo.acquisition`: exact discrete KG, Monte Carlo KG, one-shot KG, log-EI, UCB.
- :mod:`bayeskit.bo.optim`: the multi-start L-BFGS-B box optimiser they all share.
- :mod:`bayeskit.bo.loop`: :class:`BayesianOptimizer` (ask/tell, executors, checkpoints).
- :mod:`bayeskit.bo.test_functions`: the reference's 1-D function, Branin, Hartmann-6.
"""

from bayeskit.bo.acquisition import (
    DiscreteKnowledgeGradient,
    LogExpectedImprovement,
    OneShotKnowledgeGradient,
    UpperConfidenceBound,
    knowledge_gradient_discrete,
    knowledge_gradient_mc,
    optimize_discrete_kg,
    posterior_minimum,
)
from bayeskit.bo.optim import maximize_box, minimize_box, optimize_acquisition
from bayeskit.bo.posterior import GPPosterior

__all__ = ["GPPosterior", "DiscreteKnowledgeGradient", "LogExpectedImprovement",
           "OneShotKnowledgeGradient", "UpperConfidenceBound", "knowledge_gradient_discrete",
           "knowledge_gradient_mc", "optimize_discrete_kg", "posterior_minimum", "maximize_box",
           "minimize_box", "optimize_acquisition"]
