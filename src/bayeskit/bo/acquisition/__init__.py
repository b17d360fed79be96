"""Acquisition functions (minimisation convention; every acquisition is maximised)."""

from bayeskit.bo.acquisition.analytic import LogExpectedImprovement, UpperConfidenceBound
from bayeskit.bo.acquisition.bore import BORE
from bayeskit.bo.acquisition.discrete_kg import knowledge_gradient_discrete
from bayeskit.bo.acquisition.kg import (
    DiscreteKnowledgeGradient,
    OneShotKnowledgeGradient,
    best_observed_inputs,
    fantasy_normals,
    knowledge_gradient_mc,
    optimize_discrete_kg,
    posterior_minimum,
)

__all__ = ["BORE", "LogExpectedImprovement", "UpperConfidenceBound", "knowledge_gradient_discrete",
           "DiscreteKnowledgeGradient", "OneShotKnowledgeGradient", "best_observed_inputs",
           "fantasy_normals", "knowledge_gradient_mc", "optimize_discrete_kg", "posterior_minimum"]
