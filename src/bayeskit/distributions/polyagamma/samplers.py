"""The two exact ``J*(h, z)`` samplers: the general series method for ``0 < h <= H_MAX``
and the vectorised shape-1 sampler (sums of it give every integer shape)."""

from __future__ import annotations

import math

import torch

from bayeskit.distributions.polyagamma.envelopes import left_probability, shape_constants, take
from bayeskit.distributions.polyagamma.proposals import (
    RandomStream,
    accept,
    left_proposal,
    right_proposal,
    split,
    until_accepted,
)
from bayeskit.distributions.polyagamma.series import F64, PI2_8, log_a0, log_kernel_right

__all__ = ["sample_jstar", "sample_jstar_h1", "sample_h1_blocks", "sample_h1_group",
           "h1_round", "h1_series_test", "H1_MAX_WORK", "Z_IG", "T1"]

def sample_jstar(h: torch.Tensor, z: torch.Tensor, rng: RandomStream) -> torch.Tensor:
    """Exact draws of ``J*(h, z)`` for flat float64 ``h`` in ``(0, H_MAX]``, ``z >= 0``."""
    h, t, log_c, lgh = shape_constants(h)
    p_left = left_probability(h, z, t, log_c)

    n = z.numel()

    def propose(idx):
        m = idx.numel()
        if m == n:  # first round: every element, no gathers
            hh, zz, tt, lc, lg, pl = h, z, t, log_c, lgh, p_left
        else:
            hh, zz, tt, lc, lg = (take(v, idx) for v in (h, z, t, log_c, lgh))
            pl = p_left[idx]
        left = rng.uniform(m) <= pl
        x = torch.empty(m, dtype=F64, device=z.device)
        li, ri = split(left)
        # v = U k(x) / a_0(x): the envelope relative to the series' first term (1 on the left)
        v = rng.uniform(m)
        if li.numel():
            x[li] = left_proposal(take(hh, li), zz[li], take(tt, li), rng)
        if ri.numel():
            hr, xr = take(hh, ri), right_proposal(take(hh, ri), zz[ri], take(tt, ri), rng)
            x[ri] = xr
            log_k_rel = (take(lc, ri) + log_kernel_right(xr, hr, take(lg, ri))
                         - log_a0(xr, hr))
            v[ri] = v[ri] * torch.exp(log_k_rel)
        return x, accept(x, hh, v)

    return until_accepted(z.numel(), propose, z.device)


# ------------------------------------------------------------------- shape 1, vectorised
# Devroye's b = 1 sampler rearranged so that every proposal round is a fixed sequence of
# whole-array operations (no per-piece index gathers) and consumes two uniforms:
#
# - t = 2/pi. Left piece (x <= t): for z <= Z_IG the envelope is the *untilted* a_0 times
#   y / A (y = x^-1/2 > A = t^-1/2), whose y is sqrt(A^2 + 2E) with E exponential
#   (Rayleigh tail); the factors A / y and exp(-z^2 x / 2) become acceptance probabilities.
#   For z > Z_IG the envelope is the tilted a_0 over all x > 0, 2 e^-z times the inverse
#   Gaussian IG(1/z, 1), accepted only below t. Right piece (x > t): the tilted kernel
#   (pi/2) exp(-(pi^2/8 + z^2/2) x) itself, a shifted exponential.
# - The uniform that picks the piece is reused: given the piece it is again uniform.
# - One more uniform V decides everything else at once: accept iff V <= (product of the
#   acceptance probabilities) * f(x) / envelope(x), tested against the first partial sums
#   of the left series (x <= t) or of Devroye's right series a_n = pi (n + 1/2)
#   exp(-(n + 1/2)^2 pi^2 x / 2) (x > t), which both decrease from n = 0 there. The third
#   partial sum leaves a gap of relative size 5 exp(-12 / x) <= 4e-8 (left) or
#   5 exp(-3 pi^2 x) <= 4e-8 (right); the rare draw inside it goes to the general test.
T1 = 2 / math.pi
A2 = math.pi / 2                                   # A^2 = 1 / t
PHI_A = math.exp(-0.5 * A2) / math.sqrt(2 * math.pi)
MASS_RAYLEIGH = 4 * PHI_A / math.sqrt(A2)        # left envelope mass for z <= Z_IG
Z_IG = math.log(2 / MASS_RAYLEIGH)                # where 2 e^-z is the smaller mass
LOG_A2 = math.log(A2)
PI2 = math.pi**2


def h1_round(z: torch.Tensor, rng: RandomStream, inverse_gaussian: bool):
    """One proposal round for ``J*(1, z)``: ``(x, accepted, undecided, log_v, left)``.

    Written with in-place operations and ``lerp`` by a 0/1 weight instead of ``where``
    (both branches are finite, so the blend is exact): on large arrays a fresh result or a
    ``where`` costs several times an in-place arithmetic pass.
    """
    m = z.numel()
    u, log_v = rng.uniform(m), rng.uniform(m)
    lam = z * z
    half_z2 = lam * 0.5
    lam.mul_(0.5).add_(PI2_8)
    if inverse_gaussian:
        # p = 2 e^-z / (2 e^-z + (pi/2) e^(-t lam) / lam), in log space: both masses
        # underflow for |c| beyond ~1500
        p = lam.log().add_(lam, alpha=T1).sub_(z).add_(math.log(4 / math.pi)).sigmoid_()
    else:  # z <= Z_IG: nothing can underflow
        p = lam.mul(-T1).exp_().div_(lam).mul_(0.5 * math.pi)  # right envelope mass
        p = p.add_(MASS_RAYLEIGH).reciprocal_().mul_(MASS_RAYLEIGH)
    left = u <= p
    lf = left.to(F64)
    # the uniform given the piece: u / p on the left, (u - p) / (1 - p) on the right
    den = p.mul(lf).mul_(2).sub_(lf).sub_(p).add_(1)   # p if left else 1 - p
    e = u.sub_(p).addcmul_(p, lf).div_(den).log_().neg_()  # an exponential variate
    x = e.div(lam).add_(T1)                           # right: shifted exponential
    log_v.log_()
    if inverse_gaussian:
        mu = z.reciprocal()
        # a chi-square(1) variate by Box-Muller from two uniforms (cheaper than randn here)
        mc = rng.uniform(m).log_().mul_(-2).mul_(
            rng.uniform(m).mul_(2 * math.pi).cos_().square_()).mul_(mu)
        x_ig = mc.mul(mc).add_(mc, alpha=4).sqrt_().sub_(mc).mul_(-0.5).add_(1).mul_(mu)
        flip = (torch.exp(-e).mul_(x_ig.add(mu)) > mu).to(F64)  # the uniform, reused
        x_ig = x_ig.lerp_(mu.square_().div_(x_ig), flip)
        x.lerp_(x_ig, lf)
        # beyond t the left envelope is wasted: push log v to +huge so every test fails
        log_v.add_(torch.logical_and(left, x > T1).to(F64), alpha=1e300)
    else:
        y2 = e.mul_(2).add_(A2)                        # left: y^2 = A^2 + 2E, x = 1/y^2
        x.lerp_(y2.reciprocal(), lf)
        # left: divide V by (A / y) exp(-z^2 x / 2)
        log_v.addcmul_(y2.log_().sub_(LOG_A2).mul_(0.5).addcmul_(half_z2, x), lf)
    accepted, undecided = h1_series_test(x, lf, log_v)
    return x, accepted, undecided, log_v, left


def h1_series_test(x: torch.Tensor, left: torch.Tensor, log_v: torch.Tensor):
    """``(v <= f / a_0 decided yes, undecided)`` for shape 1, from two partial sums.

    ``left`` is a 0/1 float (or bool) mask. ``a_0`` is the first term of the left series
    where ``left`` (``x <= t``), else of Devroye's right series; ``r_n = a_n / a_0`` is
    ``r1 = 3 e^s``, ``r2 = 5 e^3s`` with ``s = -4/x`` (left) or ``-pi^2 x`` (right). Both
    series decrease from ``n = 0`` there, so ``v <= 1 - r1`` accepts, ``v > 1 - r1 + r2``
    rejects, and the gap is undecided.
    """
    es = x.mul(-PI2).lerp_(x.reciprocal().mul_(-4), left.to(x.dtype)).exp_()
    d = log_v.exp().sub_(1).add_(es, alpha=3)         # v - (1 - r1)
    accepted = d <= 0
    undecided = torch.logical_and(d > 0, d <= es.pow_(3).mul_(5))
    return accepted, undecided


H1_SMALL = 1 << 12  # below this many pending elements, several proposals per element


def sample_h1_group(z: torch.Tensor, rng: RandomStream, inverse_gaussian: bool) -> torch.Tensor:
    """Rounds of :func:`h1_round` until every element has an accepted draw.

    Small arrays are dominated by per-operation overhead, not arithmetic: when fewer than
    ``H1_SMALL`` elements are pending each gets ``k <= 8`` independent proposals in one
    round and keeps the first accepted one (still exact rejection sampling), so a Gibbs
    sweep over a few thousand observations needs one or two rounds instead of ten.
    """
    out = torch.empty_like(z)
    pending = None
    zz = z
    h1 = torch.ones((), dtype=F64, device=z.device)
    while zz.numel():
        m = zz.numel()
        k = max(1, min(8, H1_SMALL // m))
        x, ok, und, log_v, left = h1_round(zz.repeat(k) if k > 1 else zz, rng,
                                            inverse_gaussian)
        if bool(und.any()):  # rare: settle with the general series test (left series)
            iu = torch.nonzero(und).squeeze(-1)
            xu = x[iu]
            log_rel = torch.where(left[iu], torch.zeros_like(xu),
                                  log_kernel_right(xu, h1, torch.zeros_like(xu))
                                  - log_a0(xu, h1))
            ok = ok.clone()
            ok[iu] = accept(xu, h1, torch.exp(log_v[iu] + log_rel))
        if k > 1:  # the first accepted of each element's k proposals
            oks, xs = ok.view(k, m), x.view(k, m)
            x = xs[k - 1]
            for j in range(k - 2, -1, -1):
                x = torch.where(oks[j], xs[j], x)
            ok = oks.any(0)
        if pending is None:
            out.copy_(x)
            pending = torch.nonzero(~ok).squeeze(-1)
            zz = z[pending]
        else:
            out[pending] = x
            keep = torch.nonzero(~ok).squeeze(-1)
            pending, zz = pending[keep], zz[keep]
    return out


H1_BLOCK = 1 << 18  # elements per block: its temporaries stay cache- and allocator-friendly
H1_MAX_WORK = 1 << 23  # at most this many shape-1 draws are materialised at once


def sample_h1_blocks(z: torch.Tensor, rng: RandomStream, inverse_gaussian: bool,
                      copies: int) -> torch.Tensor:
    """Sum of ``copies`` independent ``J*(1, z)`` draws per element, in blocks."""
    total = None
    per_pass = max(1, H1_MAX_WORK // max(z.numel(), 1))  # bounds the memory of z.repeat
    for done in range(0, copies, per_pass):
        k = min(per_pass, copies - done)
        zr = z.repeat(k) if k > 1 else z
        draws = torch.empty_like(zr)
        for start in range(0, zr.numel(), H1_BLOCK):
            sl = slice(start, start + H1_BLOCK)
            draws[sl] = sample_h1_group(zr[sl], rng, inverse_gaussian)
        part = draws.view(k, -1).sum(0) if k > 1 else draws
        total = part if total is None else total.add_(part)
    return total


def sample_jstar_h1(z: torch.Tensor, rng: RandomStream, copies: int = 1) -> torch.Tensor:
    """Exact draws of ``J*(copies, z)`` as sums of ``copies`` shape-1 draws, for flat
    float64 ``z >= 0`` (see the block comment). The elements are split once by left
    envelope (Rayleigh or inverse Gaussian), then sampled in blocks of ``H1_BLOCK``."""
    ig = z > Z_IG
    if not bool(ig.any()):
        return sample_h1_blocks(z, rng, False, copies)
    if bool(ig.all()):
        return sample_h1_blocks(z, rng, True, copies)
    out = torch.empty_like(z)
    i_ig, i_ray = split(ig)
    out[i_ray] = sample_h1_blocks(z[i_ray], rng, False, copies)
    out[i_ig] = sample_h1_blocks(z[i_ig], rng, True, copies)
    return out

