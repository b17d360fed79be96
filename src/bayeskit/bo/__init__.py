"""Bayesian optimisation with the knowledge gradient (reference 03), minimisation convention.

- Acquisitions see only the model contract: any model with ``posterior()`` returning a
  :class:`bayeskit.gp.GPPosterior` (GPR, SGPR, SVGP), whose ``fantasy_sigma`` gives the
  closed-form fantasy update.
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
from bayeskit.bo.loop import BayesianOptimizer
from bayeskit.bo.optim import maximize_box, minimize_box, optimize_acquisition
from bayeskit.gp.posterior import GPPosterior

__all__ = ["BayesianOptimizer", "GPPosterior", "DiscreteKnowledgeGradient",
           "LogExpectedImprovement",
           "OneShotKnowledgeGradient", "UpperConfidenceBound", "knowledge_gradient_discrete",
           "knowledge_gradient_mc", "optimize_discrete_kg", "posterior_minimum", "maximize_box",
           "minimize_box", "optimize_acquisition"]
