"""Grids and figures. ``grids`` needs only torch; figure helpers import matplotlib lazily."""

from bayeskit.plotting.grids import Grid, evaluate_on_grid, mgrid, ogrid

__all__ = ["Grid", "evaluate_on_grid", "mgrid", "ogrid"]
