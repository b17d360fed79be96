"""Grids against np.mgrid / np.ogrid / np.meshgrid, including the reference's examples."""

import numpy as np
import pytest
import torch

from bayeskit.errors import ShapeError
from bayeskit.plotting import Grid, evaluate_on_grid, mgrid, ogrid


def test_reference_example_integer_steps():
    x2, y2 = mgrid((1, 11, 2), (-12, -3, 3))
    ex2, ey2 = np.mgrid[1:11:2, -12:-3:3]
    np.testing.assert_array_equal(x2.numpy(), ex2)
    np.testing.assert_array_equal(y2.numpy(), ey2)
    x1, y1 = np.meshgrid(np.arange(1, 11, 2), np.arange(-12, -3, 3))
    np.testing.assert_array_equal(x2.numpy().T, x1)  # mgrid is meshgrid transposed
    xy = Grid.from_ranges((1, 11, 2), (-12, -3, 3)).dense(indexing="xy")
    np.testing.assert_array_equal(xy[0].numpy(), x1)
    np.testing.assert_array_equal(xy[1].numpy(), y1)


def test_reference_example_complex_steps():
    y3, x3 = mgrid((-12, -3, 3j), (-5, 5, 5j))
    x1, y1 = np.meshgrid(np.linspace(-5, 5, 5), np.linspace(-12, -3, 3))
    np.testing.assert_array_equal(x3.numpy(), x1)
    np.testing.assert_array_equal(y3.numpy(), y1)


@pytest.mark.parametrize("ranges", [
    [(0, 1, 0.1)], [(0.5, -1.0, -0.25), (0, 3, 1)], [(-2, 2, 7j), (0, 1, 0.3), (1, 2, 2j)],
])
def test_matches_numpy_mgrid_and_ogrid(ranges):
    slices = tuple(slice(*r) for r in ranges)
    np.testing.assert_allclose(mgrid(*ranges).numpy(), np.mgrid[slices], rtol=0, atol=1e-15)
    for ours, theirs in zip(ogrid(*ranges), np.ogrid[slices], strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-15)


def test_points_and_reshape_round_trip():
    grid = Grid.from_ranges((0, 1), (10, 12), num=(3, 4))
    pts = grid.points()
    assert pts.shape == (12, 2)
    np.testing.assert_array_equal(grid.reshape(pts[:, 0]).numpy(), grid.dense()[0].numpy())
    np.testing.assert_array_equal(grid.reshape(pts.T)[1].numpy(), grid.dense()[1].numpy())
    with pytest.raises(ShapeError, match="12"):
        grid.reshape(torch.zeros(11))


def test_evaluate_on_grid_batches_and_matches_direct_evaluation():
    def density(x):
        return torch.exp(-0.5 * (x**2).sum(-1))

    grid, z = evaluate_on_grid(density, (-3, 3), (-2, 2), num=(31, 21), batch_size=50)
    X, Y = grid.dense()
    torch.testing.assert_close(z, torch.exp(-0.5 * (X**2 + Y**2)))
    _, both = evaluate_on_grid(lambda x: torch.stack([x[:, 0], -x[:, 1]], -1), (0, 1, 2j),
                               (0, 1, 3j))
    assert both.shape == (2, 3, 2)


def test_bad_ranges_are_reported():
    with pytest.raises(ValueError, match="num="):
        mgrid((0, 1))
    with pytest.raises(ValueError, match="non-zero"):
        mgrid((0, 1, 0))
    with pytest.raises(ValueError, match="imaginary"):
        mgrid((0, 1, 1 + 2j))
    with pytest.raises(ValueError, match="finite"):
        mgrid((0, float("inf"), 1))
    with pytest.raises(TypeError):
        mgrid("0:1")
    with pytest.raises(ShapeError, match="one value per point"):
        evaluate_on_grid(lambda x: x.sum(), (0, 1, 3j))
