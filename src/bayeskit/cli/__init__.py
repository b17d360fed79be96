"""The ``bayeskit`` command line (layer 3): ``bayeskit reproduce`` and friends."""
