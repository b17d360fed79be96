"""Standard normal draws from bayeskit's compiled counter-based streams (numba), for
:func:`bayeskit.distributions.gaussian.standard_normal`.

torch's CPU generator fills normals on one thread (40-60 million a second on a 2-vCPU AMD
EPYC; these streams 110-215 million on 2 threads: ``benchmarks/bench_gpc_gibbs.py
--normals``, which also times a GP-classification Gibbs sweep of 64 chains with each: 2-3
ms of ~35 ms). Here every block of :data:`bayeskit.compiled.BLOCK`
draws has its own xoshiro256+ stream seeded from one seed (the policy of
:mod:`bayeskit.compiled`), filled by Marsaglia's polar method
(:func:`bayeskit.compiled.normal_pair`), the blocks in parallel: the draws depend on the
seed and the count only, never on the number of threads.
"""

from __future__ import annotations

import numpy as np

from bayeskit import compiled
from bayeskit.compiled import BLOCK, block_state, jit, normal_pair, prange

__all__ = ["fill_standard_normal", "MIN_SIZE"]

#: fewer draws than this come from ``torch.randn``: below it a compiled call's fixed cost
#: (~10 us: the seed, the dispatch) exceeds torch's fill (``benchmarks/bench_gpc_gibbs.py
#: --normals``, AMD EPYC 2 vCPU: 30 draws 3 us for torch against 12 us; 1024 draws 20
#: against 19 us; 36 416 draws 625 against 230 us)
MIN_SIZE = 1024


@jit
def _blocks(out, seed, first, stop):
    for blk in range(first, stop):
        s = block_state(seed, blk)
        end = min(out.size, (blk + 1) * BLOCK)
        for i in range(blk * BLOCK, end, 2):
            a, b = normal_pair(s)
            out[i] = a
            if i + 1 < end:
                out[i + 1] = b


@jit(parallel=True)
def _parallel(out, seed):
    for blk in prange((out.size + BLOCK - 1) // BLOCK):
        _blocks(out, seed, blk, blk + 1)


def fill_standard_normal(out: np.ndarray, seed: int) -> np.ndarray:
    """Fill the flat float32 or float64 array ``out`` with N(0, 1) draws of stream ``seed``
    (computed in float64, rounded on storing) and return it.

    Examples:
        >>> a = fill_standard_normal(np.empty(5), 7)
        >>> b = fill_standard_normal(np.empty(5), 7)
        >>> bool((a == b).all()), a.shape
        (True, (5,))
    """
    compiled.launch(_blocks, _parallel, out.size, (out, seed))
    return out
