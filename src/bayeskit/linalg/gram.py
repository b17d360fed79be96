"""``A A^T`` and ``A v`` together, with half the multiply-adds forward and one product back.

A sparse GP's bound needs ``P = K_uf K_fu`` (``[M, M]`` from ``[M, N]``, N large) and
``K_uf r``. ``A @ A.mT`` under autograd multiplies ``M^2 N`` forward and twice that backward
(``G A`` and ``G^T A``, then their sum), and ``A @ v``'s backward adds a rank-one ``[M, N]``
matrix in two more passes. :func:`gram` computes the lower block triangle of ``P`` only
(block rows of :data:`PANEL`: about ``(1 + PANEL / M) / 2`` of the products) and mirrors it,
and its backward is one product, ``(G + G^T) A``, with ``g v^T`` added in place. SGPR's
bound and gradient at N = 100 000, M = 256 with and without it: ``benchmarks/bench_gp.py``'s
row "plain products (no linalg.gram)" (1.56x ours on a 2-core Intel Xeon, one run).

Examples:
    >>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    >>> P, Av = gram(A, torch.ones(2, dtype=torch.float64))
    >>> P.tolist(), Av.tolist()
    ([[5.0, 11.0], [11.0, 25.0]], [3.0, 7.0])
    >>> P.trace().backward()  # d trace(A A^T) / dA = 2 A
    >>> A.grad.tolist()
    [[2.0, 4.0], [6.0, 8.0]]
"""

from __future__ import annotations

import torch

from bayeskit.linalg.blocked import _mirror_lower

__all__ = ["gram", "PANEL"]

#: rows per block of the forward product
PANEL = 64


def _lower_blocks(A: torch.Tensor) -> torch.Tensor:
    """The lower block triangle of ``A A^T`` for ``A [M, N]``: each block row's product
    with the rows above it and itself (the rest of ``P`` is left unset)."""
    m = A.shape[0]
    P = torch.empty(m, m, dtype=A.dtype, device=A.device)
    for i0 in range(0, m, PANEL):
        i1 = min(m, i0 + PANEL)
        torch.mm(A[i0:i1], A[:i1].mT, out=P[i0:i1, :i1])
    return P


class _Gram(torch.autograd.Function):
    @staticmethod
    def forward(A, v):
        P = _lower_blocks(A) if A.dim() == 2 and A.shape[0] > PANEL else A @ A.mT
        _mirror_lower(P, PANEL)  # exactly symmetric, whatever the products' rounding
        return P, (None if v is None else (A @ v.unsqueeze(-1)).squeeze(-1))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, dP, dAv):
        A, v = ctx.saved_tensors
        dA = dv = None
        if ctx.needs_input_grad[0]:
            dA = (dP + dP.mT) @ A if dP is not None else torch.zeros_like(A)
            if dAv is not None:  # + dAv v^T: in place unless the backward is recorded
                if dA.dim() > 2 or v.dim() > 1:
                    dA = dA + dAv.unsqueeze(-1) * v.unsqueeze(-2)
                else:
                    dA = dA.addr(dAv, v) if torch.is_grad_enabled() else dA.addr_(dAv, v)
                dA = dA.sum_to_size(A.shape)
        if v is not None and ctx.needs_input_grad[1] and dAv is not None:
            dv = (A.mT @ dAv.unsqueeze(-1)).squeeze(-1).sum_to_size(v.shape)
        return dA, dv


def gram(A: torch.Tensor, v: torch.Tensor | None = None):
    """``(A A^T, A v)`` for ``A [..., M, N]`` and ``v [..., N]`` (``A v`` is ``None`` without
    ``v``); ``A A^T`` exactly symmetric. Differentiable in both (twice, too: the backward is
    out-of-place torch products when it is itself recorded). A 2-D ``A`` with more than
    :data:`PANEL` rows takes the blocked product (the module's docstring); otherwise
    ``A @ A.mT``. Unchecked: a building block for bayeskit's models, which validate.

    Returns:
        ``P [..., M, M]`` and ``A v [..., M]`` (or ``None``).
    """
    return _Gram.apply(A, v)
