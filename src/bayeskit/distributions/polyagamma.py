"""The Pólya-gamma distribution PG(b, c): an exact sampler for every b > 0, density and CDF.

``PG(b, c) = J*(b, c / 2) / 4``, where ``J*(h, z)`` has density
``cosh(z)^h exp(-z^2 x / 2) f(x | h)`` and ``f(x | h)`` is the density of ``J*(h, 0)``:

    f(x | h) = sum_n (-1)^n a_n(x | h),
    a_n(x | h) = 2^h Gamma(n + h) / (Gamma(h) n!) (2n + h) / sqrt(2 pi x^3) exp(-(2n + h)^2 / (2x))

(Polson, Scott & Windle 2013; Windle, Polson & Scott 2014). The sampler is the series
method of Devroye (2009), generalised to any shape ``h``: propose from the envelope

    k(x | h) = a_0(x | h)                                         for x <= t(h),
    k(x | h) = C(h) (pi/2)^h x^(h-1) exp(-pi^2 x / 8) / Gamma(h)  for x >  t(h),

tilted by ``exp(-z^2 x / 2)`` (a truncated inverse Gaussian on the left, a truncated gamma
on the right), and accept when ``U k(x) <= f(x | h)``, deciding with the partial sums of the
alternating series once its terms decrease (from there on they bracket ``f``). No step is
approximate: the only error is float64 rounding in the series.

The envelope constants were checked numerically (``tests/distributions/test_polyagamma.py``
rechecks them): ``a_0 >= f`` everywhere; for ``h >= 1`` the right-hand kernel bounds ``f``
with ``C = 1`` (it is the leading term of the expansion at the pole ``-pi^2/8`` of the
Laplace transform ``cosh(sqrt(2 s))^(-h)``), and ``t(h)`` is where the two pieces cross
(``t(1) = 2/pi``, Devroye's 0.64); for ``h < 1``, ``t = 0.64`` and ``f / kernel`` falls on
``(t, inf)``, so ``C(h) = f(t | h) / kernel(t | h)`` (at most 1.104). The acceptance rate is
``cosh(z)^-h`` over the envelope mass: above 0.98 for ``h <= 1``, 0.90 at ``h = 2`` and 0.69
at ``h = 4``; non-integer shapes above ``H_MAX = 4`` are sampled as sums of equal chunks.

Shape 1 (logistic regression) has its own vectorised form of Devroye's sampler
(``_sample_jstar_h1``, see the comment above it), and every integer shape is sampled as a
sum of that many shape-1 draws, which measured faster than the chunks for every integer
shape tried (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools
import math

import torch

from bayeskit.errors import NonFiniteError, ShapeError

__all__ = ["PolyaGamma", "sample_polya_gamma", "polya_gamma_mean", "polya_gamma_variance",
           "polya_gamma_log_prob", "polya_gamma_cdf", "H_MAX"]

LOG2 = math.log(2.0)
LOG_PI_2 = math.log(math.pi / 2)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
PI2_8 = math.pi**2 / 8
T_SMALL = 0.64
H_MAX = 4.0
_F64 = torch.float64


# --------------------------------------------------------------------------- the series
def _log_a0(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return h * LOG2 + torch.log(h) - HALF_LOG_2PI - 1.5 * torch.log(x) - h * h / (2 * x)


def _log_kernel_right(x: torch.Tensor, h: torch.Tensor,
                      lgamma_h: torch.Tensor | None = None) -> torch.Tensor:
    lg = torch.lgamma(h) if lgamma_h is None else lgamma_h
    return h * LOG_PI_2 + (h - 1) * torch.log(x) - PI2_8 * x - lg


def _log_ratio_step(n: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``log(a_{n+1} / a_n)`` for the left series."""
    return (torch.log((n + h) / (n + 1)) + torch.log((2 * n + 2 + h) / (2 * n + h))
            - 2 * (2 * n + 1 + h) / x)


def _series_sum(x: torch.Tensor, h: torch.Tensor, max_terms: int = 400) -> tuple:
    """``(f / a_0, sum |a_n| / a_0)``: the series relative to its first term, and its mass.

    Terms are added until they are below ``1e-17`` of the running magnitude after the
    sequence has started to decrease (the terms are unimodal in ``n``).
    """
    total = torch.ones_like(x)
    mass = torch.ones_like(x)
    log_r = torch.zeros_like(x)
    active = torch.ones_like(x, dtype=torch.bool)
    for n in range(max_terms):
        step = _log_ratio_step(n, x, h)
        log_r = log_r + step
        term = torch.exp(log_r)
        sign = -1.0 if n % 2 == 0 else 1.0
        total = torch.where(active, total + sign * term, total)
        mass = torch.where(active, mass + term, mass)
        active = active & ~((step < 0) & (term < 1e-17 * mass))
        if not bool(active.any()):
            break
    return total, mass


# The series is summed in float64: its relative error is about eps * sum|a_n| / |f|.
MAX_SERIES_ERROR = 1e-6


def _jstar_log_density(x: torch.Tensor, h: torch.Tensor, *, check: bool = False) -> torch.Tensor:
    """``log f(x | h)`` (untilted ``J*(h)``) by the left series.

    With ``check``, raise instead of returning a number whose estimated relative error
    (from the cancellation in the alternating sum) exceeds ``MAX_SERIES_ERROR``.
    """
    total, mass = _series_sum(x, h)
    log_f = _log_a0(x, h) + torch.log(total.clamp_min(torch.finfo(_F64).tiny))
    right = (h == 1) & (x > 2 / math.pi)
    if bool(right.any()):
        # h = 1 has Devroye's right-hand series, exact and cancellation-free for x > 2/pi
        xr = x[right]
        k = torch.arange(40, dtype=_F64, device=x.device)[:, None] + 0.5
        signs = 1.0 - 2.0 * (torch.arange(40, device=x.device)[:, None] % 2)
        rel = (signs * 2 * k * torch.exp(-(k * k - 0.25) * math.pi**2 * xr / 2)).sum(0)
        log_f = log_f.clone()
        log_f[right] = LOG_PI_2 - PI2_8 * xr + torch.log(rel)
        mass = torch.where(right, total.abs(), mass)
    if check:
        _check_series(total, mass, x, h)
    return log_f


def _check_series(total: torch.Tensor, mass: torch.Tensor, x: torch.Tensor,
                  h: torch.Tensor) -> None:
    err = torch.finfo(_F64).eps * mass / total.abs()
    bad = ~(err <= MAX_SERIES_ERROR)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0]) if bad.dim() else 0
        xb = float(x.reshape(-1)[i]) / 4
        hb = float(h.expand_as(x).reshape(-1)[i])
        raise ValueError(
            f"the Polya-gamma series cannot evaluate PG(b={hb:g}) at {xb:g} to relative "
            f"accuracy {MAX_SERIES_ERROR:g} in float64 (cancellation; large b or far right "
            "tail). Sampling is unaffected; evaluate the density nearer the bulk or for "
            "smaller b."
        )


# ------------------------------------------------------------------------- the envelope
def _truncation_point(h: torch.Tensor) -> torch.Tensor:
    """``t(h)``: 0.64 for ``h < 1``, else where ``a_0`` meets the right-hand kernel."""
    lo = torch.full_like(h, 0.05)
    hi = 3 * h + 3
    for _ in range(60):  # bisection: a_0 / kernel rises through 1 exactly once
        mid = 0.5 * (lo + hi)
        above = _log_a0(mid, h) > _log_kernel_right(mid, h)
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    return torch.where(h < 1, torch.full_like(h, T_SMALL), 0.5 * (lo + hi))


def _take(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``v[idx]``, or ``v`` itself for a 0-dim (shared by every element) constant."""
    return v if v.dim() == 0 else v[idx]


@functools.lru_cache(maxsize=4096)
def _constants_for(h: float) -> tuple[float, float, float]:
    """``(t, log C, lgamma(h))`` for one shape value, cached (a Gibbs sweep reuses them)."""
    ht = torch.tensor([h], dtype=_F64)
    t = _truncation_point(ht)
    log_c = (_jstar_log_density(t, ht) - _log_kernel_right(t, ht)).clamp_min(0.0)
    log_c = log_c + 1e-12 if h < 1 else torch.zeros_like(log_c)
    return float(t), float(log_c), math.lgamma(h)


def _shape_constants(h: torch.Tensor):
    """``h, t, log C, lgamma(h)``: 0-dim tensors when every element shares one ``h``."""
    if h.numel() and bool((h == h[0]).all()):
        vals = torch.tensor(_constants_for(float(h[0])), dtype=_F64, device=h.device)
        return h[0], vals[0], vals[1], vals[2]
    hu, inverse = torch.unique(h, return_inverse=True)
    table = torch.tensor([_constants_for(v) for v in hu.tolist()], dtype=_F64,
                         device=h.device)[inverse]
    return h, table[:, 0], table[:, 1], table[:, 2]


def _left_probability(h, z, t, log_c) -> torch.Tensor:
    """Probability that the tilted envelope draws from its left piece ``(0, t]``.

    Left mass ``2^h [exp(-hz) Phi(z sqrt(t) - h/sqrt(t)) + exp(hz) Phi(-z sqrt(t) - h/sqrt(t))]``
    (an inverse-Gaussian CDF), right mass ``C (pi/2)^h lam^-h Q(h, lam t)`` with
    ``lam = pi^2/8 + z^2/2``. Computed in linear space where nothing can overflow or
    underflow (``h z < 600``), in log space elsewhere.
    """
    sqrt_t = torch.sqrt(t)
    lam = PI2_8 + 0.5 * z * z
    y = lam * t
    integer_h = h.dim() == 0 and float(h) == round(float(h)) and float(h) <= 8
    if integer_h:
        # integer shape: Q(h, y) = exp(-y) sum_{k<h} y^k / k!  (cheaper than gammaincc)
        partial = torch.ones_like(y)
        term = torch.ones_like(y)
        for k in range(1, int(float(h))):
            term = term * y / k
            partial = partial + term
        q = torch.exp(-y) * partial
    else:
        q = torch.special.gammaincc(h, y)
    hz = h * z
    a = z * sqrt_t - h / sqrt_t
    b = -z * sqrt_t - h / sqrt_t
    m_left = torch.exp(-hz) * torch.special.ndtr(a) + torch.exp(hz) * torch.special.ndtr(b)
    m_right = torch.exp(log_c + h * LOG_PI_2 - h * torch.log(lam)) * q / 2**h
    p = m_left / (m_left + m_right)
    risky = ~(hz < 600) | ~torch.isfinite(p)
    if bool(risky.any()):
        idx = torch.nonzero(risky).squeeze(-1)
        hh, zz, tt, cc = (_take(v, idx) for v in (h, z, t, log_c))
        st = torch.sqrt(tt)
        log_left = hh * LOG2 + torch.logaddexp(
            -hh * zz + torch.special.log_ndtr(zz * st - hh / st),
            hh * zz + torch.special.log_ndtr(-zz * st - hh / st))
        ll = PI2_8 + 0.5 * zz * zz
        log_right = (cc + hh * LOG_PI_2 - hh * torch.log(ll)
                     + torch.log(torch.special.gammaincc(hh, ll * tt)))
        p = p.clone()
        p[idx] = torch.sigmoid(log_left - log_right)
    return p


def envelope_acceptance_rate(b: float, c: float = 0.0) -> float:
    """Probability that one proposal of the ``J*(b, |c|/2)`` envelope is accepted.

    ``cosh(z)^-b`` (the target's normaliser relative to ``f``) over the envelope mass; the
    expected number of proposals per draw is its inverse. For ``b <= H_MAX``.
    """
    h = torch.tensor(float(b), dtype=_F64)
    z = torch.tensor(abs(float(c)) / 2, dtype=_F64)
    _, t, log_c, _ = _shape_constants(h.reshape(1))
    sqrt_t = torch.sqrt(t)
    log_left = h * LOG2 + torch.logaddexp(
        -h * z + torch.special.log_ndtr(z * sqrt_t - h / sqrt_t),
        h * z + torch.special.log_ndtr(-z * sqrt_t - h / sqrt_t))
    lam = PI2_8 + 0.5 * z * z
    log_right = (log_c + h * LOG_PI_2 - h * torch.log(lam)
                 + torch.log(torch.special.gammaincc(h, lam * t)))
    return float(torch.exp(-h * _log_cosh(z) - torch.logaddexp(log_left, log_right)))


# ------------------------------------------------------------------------ the proposals
class _Rng:
    """Uniform, normal and exponential draws from one ``torch.Generator``."""

    def __init__(self, generator: torch.Generator | None, device: torch.device):
        self.g = generator
        self.device = device

    def uniform(self, n: int) -> torch.Tensor:
        # (0, 1]: 1 - U with U in [0, 1) never gives 0, so logs stay finite
        return 1.0 - torch.rand(n, dtype=_F64, device=self.device, generator=self.g)

    def normal(self, n: int) -> torch.Tensor:
        return torch.randn(n, dtype=_F64, device=self.device, generator=self.g)

    def exponential(self, n: int) -> torch.Tensor:
        return torch.empty(n, dtype=_F64, device=self.device).exponential_(generator=self.g)


def _until_accepted(n: int, propose, device) -> torch.Tensor:
    """Run ``propose(idx) -> (x, accept)`` on the still-pending indices until all accept."""
    out = torch.empty(n, dtype=_F64, device=device)
    pending = torch.arange(n, device=device)
    while pending.numel():
        x, ok = propose(pending)
        out[pending[ok]] = x[ok]
        pending = pending[~ok]
    return out


def _split(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.nonzero(mask).squeeze(-1), torch.nonzero(~mask).squeeze(-1)


def _levy_left(h, z, t, rng: _Rng, m: int):
    """Levy law truncated to ``(0, t]`` (``x = h^2 / Y^2``, ``|Y| >= h / sqrt(t)``), tilted."""
    tail = torch.special.ndtr(-h / torch.sqrt(t))
    y = torch.special.ndtri(rng.uniform(m) * tail)
    x = h * h / (y * y)
    return x, rng.uniform(m) <= torch.exp(-0.5 * z * z * x)


def _inverse_gaussian_left(h, z, t, rng: _Rng, m: int):
    """IG(h/z, h^2) (Michael, Schucany & Haas 1976), kept if it falls in ``(0, t]``."""
    mu = h / z
    lam = h * h
    v = rng.normal(m) ** 2
    x = mu + mu * mu * v / (2 * lam) - mu / (2 * lam) * torch.sqrt(4 * mu * lam * v + (mu * v) ** 2)
    x = torch.where(rng.uniform(m) * (mu + x) > mu, mu * mu / x, x)
    return x, x <= t


def _left_proposal(h, z, t, rng: _Rng) -> torch.Tensor:
    """``x`` on ``(0, t]`` with density prop. to ``x^-1.5 exp(-h^2 / (2x) - z^2 x / 2)``.

    Two exact proposals; each element takes the one with the higher acceptance rate:
    a truncated Levy draw tilted by ``exp(-z^2 x / 2)`` (rate ``m / (2 Phi(-h/sqrt(t)))``)
    or an inverse Gaussian kept when it falls below ``t`` (rate ``exp(h z) m``), where
    ``m = exp(-h z) Phi(z sqrt(t) - h/sqrt(t)) + exp(h z) Phi(-z sqrt(t) - h/sqrt(t))``.
    """
    # Levy wins when 1 / (2 Phi(-h / sqrt(t))) > exp(h z); m cancels from the comparison
    levy = (z == 0) | (-LOG2 - torch.special.log_ndtr(-h / torch.sqrt(t)) > h * z)

    def propose(idx):
        hh, zz, tt = _take(h, idx), z[idx], _take(t, idx)
        lv = levy[idx]
        x = torch.empty(idx.numel(), dtype=_F64, device=z.device)
        ok = torch.empty(idx.numel(), dtype=torch.bool, device=z.device)
        a, b = _split(lv)
        for sub, fn in ((a, _levy_left), (b, _inverse_gaussian_left)):
            if sub.numel():
                x[sub], ok[sub] = fn(_take(hh, sub), zz[sub], _take(tt, sub), rng, sub.numel())
        return x, ok

    return _until_accepted(z.numel(), propose, z.device)


def _right_proposal(h, z, t, rng: _Rng) -> torch.Tensor:
    """``x`` on ``(t, inf)`` with density prop. to ``x^(h-1) exp(-(pi^2/8 + z^2/2) x)``."""
    lam = PI2_8 + 0.5 * z * z
    # gamma mode (h-1)/lam well left of t, or h <= 1: a shifted exponential proposal whose
    # rate keeps the density ratio below one; otherwise a gamma draw kept beyond t
    use_exp = (h <= 1) | ((h - 1) <= 0.9 * lam * t)

    def exponential(hh, ll, tt, m):
        small = hh <= 1
        rate = torch.where(small, ll, ll - (hh - 1) / tt)
        x = tt + rng.exponential(m) / rate
        log_ratio = torch.where(small, (1 - hh) * torch.log(tt / x),
                                (hh - 1) * (torch.log(x / tt) - (x - tt) / tt))
        if hh.dim() == 0 and float(hh) == 1.0:
            return x, torch.ones(m, dtype=torch.bool, device=x.device)
        return x, torch.log(rng.uniform(m)) <= log_ratio

    def gamma(hh, ll, tt, m):
        d = hh - 1.0 / 3.0  # Marsaglia & Tsang (2000), shape >= 1
        cc = 1.0 / torch.sqrt(9 * d)
        y = rng.normal(m)
        v = (1 + cc * y) ** 3
        ok = (v > 0) & (torch.log(rng.uniform(m)) < 0.5 * y * y + d - d * v
                        + d * torch.log(v.clamp_min(1e-300)))
        x = d * v / ll
        return x, ok & (x > tt)

    def propose(idx):
        hh, ll, tt = _take(h, idx), lam[idx], _take(t, idx)
        ue = use_exp[idx]
        x = torch.empty(idx.numel(), dtype=_F64, device=z.device)
        ok = torch.empty(idx.numel(), dtype=torch.bool, device=z.device)
        a, b = _split(ue)
        for sub, fn in ((a, exponential), (b, gamma)):
            if sub.numel():
                x[sub], ok[sub] = fn(_take(hh, sub), ll[sub], _take(tt, sub), sub.numel())
        return x, ok

    return _until_accepted(z.numel(), propose, z.device)


def _accept(x, h, v) -> torch.Tensor:
    """Decide ``v <= f(x | h) / a_0(x | h)`` with the alternating series (exactly)."""
    m = x.numel()
    decision = torch.zeros(m, dtype=torch.bool, device=x.device)
    idx = torch.arange(m, device=x.device)
    total = torch.ones_like(x)
    log_r = torch.zeros_like(x)
    xs, hs, vs = x, h, v
    for n in range(2000):
        step = _log_ratio_step(n, xs, hs)
        decreasing = step < 0  # a_{n+1} < a_n: from here the partial sums bracket f
        if n % 2 == 0:
            decided = decreasing & (vs > total)  # S_n >= f and v above it: reject
        else:
            decided = decreasing & (vs <= total)  # S_n <= f and v below it: accept
        if bool(decided.any()):
            if n % 2:
                decision[idx[decided]] = True
            keep = ~decided
            idx, xs, vs = idx[keep], xs[keep], vs[keep]
            hs = _take(hs, keep) if hs.dim() else hs
            total, log_r, step = total[keep], log_r[keep], step[keep]
            if idx.numel() == 0:
                return decision
        log_r = log_r + step
        total = total + (1.0 if n % 2 else -1.0) * torch.exp(log_r)
    decision[idx] = vs <= total  # pragma: no cover  (needs x beyond ~1e5)
    return decision


def _sample_jstar(h: torch.Tensor, z: torch.Tensor, rng: _Rng) -> torch.Tensor:
    """Exact draws of ``J*(h, z)`` for flat float64 ``h`` in ``(0, H_MAX]``, ``z >= 0``."""
    h, t, log_c, lgh = _shape_constants(h)
    p_left = _left_probability(h, z, t, log_c)

    n = z.numel()

    def propose(idx):
        m = idx.numel()
        if m == n:  # first round: every element, no gathers
            hh, zz, tt, lc, lg, pl = h, z, t, log_c, lgh, p_left
        else:
            hh, zz, tt, lc, lg = (_take(v, idx) for v in (h, z, t, log_c, lgh))
            pl = p_left[idx]
        left = rng.uniform(m) <= pl
        x = torch.empty(m, dtype=_F64, device=z.device)
        li, ri = _split(left)
        # v = U k(x) / a_0(x): the envelope relative to the series' first term (1 on the left)
        v = rng.uniform(m)
        if li.numel():
            x[li] = _left_proposal(_take(hh, li), zz[li], _take(tt, li), rng)
        if ri.numel():
            hr, xr = _take(hh, ri), _right_proposal(_take(hh, ri), zz[ri], _take(tt, ri), rng)
            x[ri] = xr
            log_k_rel = (_take(lc, ri) + _log_kernel_right(xr, hr, _take(lg, ri))
                         - _log_a0(xr, hr))
            v[ri] = v[ri] * torch.exp(log_k_rel)
        return x, _accept(x, hh, v)

    return _until_accepted(z.numel(), propose, z.device)


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
_T1 = 2 / math.pi
_A2 = math.pi / 2                                   # A^2 = 1 / t
_PHI_A = math.exp(-0.5 * _A2) / math.sqrt(2 * math.pi)
_MASS_RAYLEIGH = 4 * _PHI_A / math.sqrt(_A2)        # left envelope mass for z <= Z_IG
_Z_IG = math.log(2 / _MASS_RAYLEIGH)                # where 2 e^-z is the smaller mass
_LOG_A2 = math.log(_A2)
_PI2 = math.pi**2


def _h1_round(z: torch.Tensor, rng: _Rng, inverse_gaussian: bool):
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
        p = lam.log().add_(lam, alpha=_T1).sub_(z).add_(math.log(4 / math.pi)).sigmoid_()
    else:  # z <= Z_IG: nothing can underflow
        p = lam.mul(-_T1).exp_().div_(lam).mul_(0.5 * math.pi)  # right envelope mass
        p = p.add_(_MASS_RAYLEIGH).reciprocal_().mul_(_MASS_RAYLEIGH)
    left = u <= p
    lf = left.to(_F64)
    # the uniform given the piece: u / p on the left, (u - p) / (1 - p) on the right
    den = p.mul(lf).mul_(2).sub_(lf).sub_(p).add_(1)   # p if left else 1 - p
    e = u.sub_(p).addcmul_(p, lf).div_(den).log_().neg_()  # an exponential variate
    x = e.div(lam).add_(_T1)                           # right: shifted exponential
    log_v.log_()
    if inverse_gaussian:
        mu = z.reciprocal()
        # a chi-square(1) variate by Box-Muller from two uniforms (cheaper than randn here)
        mc = rng.uniform(m).log_().mul_(-2).mul_(
            rng.uniform(m).mul_(2 * math.pi).cos_().square_()).mul_(mu)
        x_ig = mc.mul(mc).add_(mc, alpha=4).sqrt_().sub_(mc).mul_(-0.5).add_(1).mul_(mu)
        flip = (torch.exp(-e).mul_(x_ig.add(mu)) > mu).to(_F64)  # the uniform, reused
        x_ig = x_ig.lerp_(mu.square_().div_(x_ig), flip)
        x.lerp_(x_ig, lf)
        # beyond t the left envelope is wasted: push log v to +huge so every test fails
        log_v.add_(torch.logical_and(left, x > _T1).to(_F64), alpha=1e300)
    else:
        y2 = e.mul_(2).add_(_A2)                        # left: y^2 = A^2 + 2E, x = 1/y^2
        x.lerp_(y2.reciprocal(), lf)
        # left: divide V by (A / y) exp(-z^2 x / 2)
        log_v.addcmul_(y2.log_().sub_(_LOG_A2).mul_(0.5).addcmul_(half_z2, x), lf)
    accepted, undecided = _h1_series_test(x, lf, log_v)
    return x, accepted, undecided, log_v, left


def _h1_series_test(x: torch.Tensor, left: torch.Tensor, log_v: torch.Tensor):
    """``(v <= f / a_0 decided yes, undecided)`` for shape 1, from two partial sums.

    ``left`` is a 0/1 float (or bool) mask. ``a_0`` is the first term of the left series
    where ``left`` (``x <= t``), else of Devroye's right series; ``r_n = a_n / a_0`` is
    ``r1 = 3 e^s``, ``r2 = 5 e^3s`` with ``s = -4/x`` (left) or ``-pi^2 x`` (right). Both
    series decrease from ``n = 0`` there, so ``v <= 1 - r1`` accepts, ``v > 1 - r1 + r2``
    rejects, and the gap is undecided.
    """
    es = x.mul(-_PI2).lerp_(x.reciprocal().mul_(-4), left.to(x.dtype)).exp_()
    d = log_v.exp().sub_(1).add_(es, alpha=3)         # v - (1 - r1)
    accepted = d <= 0
    undecided = torch.logical_and(d > 0, d <= es.pow_(3).mul_(5))
    return accepted, undecided


_H1_SMALL = 1 << 12  # below this many pending elements, several proposals per element


def _sample_h1_group(z: torch.Tensor, rng: _Rng, inverse_gaussian: bool) -> torch.Tensor:
    """Rounds of :func:`_h1_round` until every element has an accepted draw.

    Small arrays are dominated by per-operation overhead, not arithmetic: when fewer than
    ``_H1_SMALL`` elements are pending each gets ``k <= 8`` independent proposals in one
    round and keeps the first accepted one (still exact rejection sampling), so a Gibbs
    sweep over a few thousand observations needs one or two rounds instead of ten.
    """
    out = torch.empty_like(z)
    pending = None
    zz = z
    h1 = torch.ones((), dtype=_F64, device=z.device)
    while zz.numel():
        m = zz.numel()
        k = max(1, min(8, _H1_SMALL // m))
        x, ok, und, log_v, left = _h1_round(zz.repeat(k) if k > 1 else zz, rng,
                                            inverse_gaussian)
        if bool(und.any()):  # rare: settle with the general series test (left series)
            iu = torch.nonzero(und).squeeze(-1)
            xu = x[iu]
            log_rel = torch.where(left[iu], torch.zeros_like(xu),
                                  _log_kernel_right(xu, h1, torch.zeros_like(xu))
                                  - _log_a0(xu, h1))
            ok = ok.clone()
            ok[iu] = _accept(xu, h1, torch.exp(log_v[iu] + log_rel))
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


_H1_BLOCK = 1 << 18  # elements per block: its temporaries stay cache- and allocator-friendly
_H1_MAX_WORK = 1 << 23  # at most this many shape-1 draws are materialised at once


def _sample_h1_blocks(z: torch.Tensor, rng: _Rng, inverse_gaussian: bool,
                      copies: int) -> torch.Tensor:
    """Sum of ``copies`` independent ``J*(1, z)`` draws per element, in blocks."""
    total = None
    per_pass = max(1, _H1_MAX_WORK // max(z.numel(), 1))  # bounds the memory of z.repeat
    for done in range(0, copies, per_pass):
        k = min(per_pass, copies - done)
        zr = z.repeat(k) if k > 1 else z
        draws = torch.empty_like(zr)
        for start in range(0, zr.numel(), _H1_BLOCK):
            sl = slice(start, start + _H1_BLOCK)
            draws[sl] = _sample_h1_group(zr[sl], rng, inverse_gaussian)
        part = draws.view(k, -1).sum(0) if k > 1 else draws
        total = part if total is None else total.add_(part)
    return total


def _sample_jstar_h1(z: torch.Tensor, rng: _Rng, copies: int = 1) -> torch.Tensor:
    """Exact draws of ``J*(copies, z)`` as sums of ``copies`` shape-1 draws, for flat
    float64 ``z >= 0`` (see the block comment). The elements are split once by left
    envelope (Rayleigh or inverse Gaussian), then sampled in blocks of ``_H1_BLOCK``."""
    ig = z > _Z_IG
    if not bool(ig.any()):
        return _sample_h1_blocks(z, rng, False, copies)
    if bool(ig.all()):
        return _sample_h1_blocks(z, rng, True, copies)
    out = torch.empty_like(z)
    i_ig, i_ray = _split(ig)
    out[i_ray] = _sample_h1_blocks(z[i_ray], rng, False, copies)
    out[i_ig] = _sample_h1_blocks(z[i_ig], rng, True, copies)
    return out


# ---------------------------------------------------------------------- public functions
def _check_params(b: torch.Tensor, c: torch.Tensor) -> None:
    if not bool(torch.isfinite(b).all()) or not bool((b > 0).all()):
        raise ValueError("b must be positive and finite (PG(b, c) needs b > 0)")
    if not bool(torch.isfinite(c).all()):
        raise NonFiniteError("c must be finite")


def _chunk_sizes(b: float) -> dict[float, int]:
    """Split a shape ``b > H_MAX`` into ``k = ceil(b / H_MAX)`` chunks: ``{size: count}``.

    Integer ``b`` gets integer chunks (cheaper constants); otherwise equal chunks.
    """
    k = math.ceil(b / H_MAX)
    if b == round(b):
        low = int(b) // k
        extra = int(b) - low * k
        sizes = {float(low + 1): extra, float(low): k - extra}
        return {s: c for s, c in sizes.items() if c}
    return {b / k: k}


def sample_polya_gamma(
    b: torch.Tensor | float,
    c: torch.Tensor | float = 0.0,
    sample_shape: torch.Size | tuple[int, ...] = (),
    *,
    generator: torch.Generator | None = None,
    method: str = "exact",
) -> torch.Tensor:
    """Exact draws of ``PG(b, c)``; ``b`` and ``c`` broadcast.

    Args:
        b: shape parameter(s), ``b > 0`` (any real value, not only integers).
        c: tilting parameter(s), any finite real.
        sample_shape: leading shape of the draws.
        generator: a ``torch.Generator`` for reproducible draws.
        method: ``"exact"`` (default), or ``"normal"``: an opt-in moment-matched normal
            approximation (clipped at a tiny positive value) for very large ``b``, where
            the exact sampler costs O(b); see benchmarks/RESULTS.md for its measured error.

    Returns:
        ``[*sample_shape, *broadcast(b, c).shape]`` draws, in the floating dtype of the
        parameters (float64 if they are not floating tensors).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> w = sample_polya_gamma(torch.ones(100_000), 0.0, generator=g)
        >>> abs(float(w.mean()) - 0.25) < 0.003
        True
    """
    b_t, c_t = torch.as_tensor(b), torch.as_tensor(c)
    dtype = torch.promote_types(b_t.dtype, c_t.dtype)
    dtype = dtype if dtype.is_floating_point else _F64
    device = b_t.device
    b_t, c_t = b_t.to(device=device, dtype=_F64), c_t.to(device=device, dtype=_F64)
    _check_params(b_t, c_t)
    shape = torch.Size(sample_shape) + torch.broadcast_shapes(b_t.shape, c_t.shape)
    zb = c_t.abs().mul_(0.5).expand(shape).reshape(-1)
    rng = _Rng(generator, device)
    if method not in ("exact", "normal"):
        raise ValueError(f"method must be 'exact' or 'normal', got {method!r}")
    flat_b = b_t.reshape(-1)
    shared_b = flat_b.numel() == 1 or bool((flat_b == flat_b[0]).all())
    integer_b = bool((flat_b == flat_b.round()).all())
    if method == "exact" and shared_b and integer_b:
        # integer b (b = 1: logistic regression): a sum of b shape-1 draws, the fastest
        # exact route for every integer b measured (benchmarks/RESULTS.md)
        draws = _sample_jstar_h1(zb, rng, copies=int(flat_b[0]))
        return (0.25 * draws).reshape(shape).to(dtype)
    hb = b_t.expand(shape).reshape(-1)
    if method == "exact" and integer_b and float(hb.sum()) <= _H1_MAX_WORK:
        # varying integer b (binomial counts), as long as all sum(b) shape-1 draws fit in
        # one pass; beyond that the chunks below need a quarter of the memory
        owner = torch.repeat_interleave(torch.arange(hb.numel(), device=device),
                                        hb.to(torch.long))
        parts = _sample_jstar_h1(zb[owner], rng)
        draws = torch.zeros_like(hb).index_add_(0, owner, parts)
        return (0.25 * draws).reshape(shape).to(dtype)
    if method == "normal":
        mean, var = polya_gamma_mean(hb, 2 * zb), polya_gamma_variance(hb, 2 * zb)
        draws = mean + var.sqrt() * rng.normal(hb.numel())
        return draws.clamp_min(1e-12 * mean).reshape(shape).to(dtype)
    # b > H_MAX: a sum of k chunks, each at most H_MAX (integers when b is an integer)
    chunks = torch.ceil(hb / H_MAX).to(torch.long).clamp_min(1)
    if bool((chunks == 1).all()):
        draws = _sample_jstar(hb, zb, rng)
    elif shared_b:
        draws = torch.zeros_like(hb)
        for size, copies in _chunk_sizes(float(hb[0])).items():
            h_rep = torch.full((copies * hb.numel(),), size, dtype=_F64, device=device)
            part = _sample_jstar(h_rep, zb.repeat(copies), rng)
            draws += part.view(copies, -1).sum(0)
    else:
        owner = torch.repeat_interleave(torch.arange(hb.numel(), device=device), chunks)
        parts = _sample_jstar((hb / chunks)[owner], zb[owner], rng)
        draws = torch.zeros_like(hb).index_add_(0, owner, parts)
    return (0.25 * draws).reshape(shape).to(dtype)


def polya_gamma_mean(b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``E[PG(b, c)] = b tanh(c/2) / (2c)`` (``b / 4`` at ``c = 0``)."""
    c = torch.as_tensor(c)
    a = c.abs()
    safe = torch.where(a < 1e-4, torch.ones_like(a), a)
    return b * torch.where(a < 1e-4, 0.25 - a * a / 48, torch.tanh(safe / 2) / (2 * safe))


def polya_gamma_variance(b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``Var[PG(b, c)] = b (2 tanh(c/2) - c sech^2(c/2)) / (4 c^3)`` (``b/24`` at 0)."""
    c = torch.as_tensor(c)
    a = c.abs()
    safe = torch.where(a < 1e-3, torch.ones_like(a), a)
    sech2 = 1.0 / torch.cosh(safe / 2) ** 2
    exact = (2 * torch.tanh(safe / 2) - safe * sech2) / (4 * safe**3)
    return b * torch.where(a < 1e-3, (1 - a * a / 5) / 24, exact)


def _log_cosh(u: torch.Tensor) -> torch.Tensor:
    a = u.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - LOG2


def polya_gamma_log_prob(value: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``log p(value | b, c)``; ``-inf`` for ``value <= 0``.

    ``p(w) = 4 cosh(c/2)^b exp(-c^2 w / 2) f(4w | b)`` with ``f`` the left series. Its
    relative error is ``eps * sum|a_n| / f``: about 1e-14 at the mean for ``b <= 10``,
    growing in the far right tail and with ``b`` (1e-13 at the mean for ``b = 32``).
    Where it would exceed ``MAX_SERIES_ERROR`` (1e-7) a ``ValueError`` is raised rather
    than a wrong number returned.
    """
    value, b, c = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=_F64)
                                            for v in (value, b, c)))
    positive = value > 0
    x = torch.where(positive, 4 * value, torch.ones_like(value))
    log_f = _jstar_log_density(x, b, check=True)
    out = LOG2 * 2 + b * _log_cosh(c / 2) - 0.5 * c * c * value + log_f
    return torch.where(positive, out, torch.full_like(out, -math.inf))


def polya_gamma_cdf(value: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``P(PG(b, c) <= value)`` by integrating the left series term by term.

    Each tilted term integrates to an inverse-Gaussian CDF (two normal CDFs), so
    ``F(w) = cosh(z)^b sum_n (-1)^n 2^b Gamma(n+b)/(Gamma(b) n!)
    [e^{-m z} Phi(z sqrt(x) - m/sqrt(x)) + e^{m z} Phi(-z sqrt(x) - m/sqrt(x))]``
    with ``x = 4 w``, ``z = |c|/2``, ``m = 2n + b``.
    """
    value, b, c = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=_F64)
                                            for v in (value, b, c)))
    positive = value > 0
    x = torch.where(positive, 4 * value, torch.ones_like(value))
    z = 0.5 * c.abs()
    sx = torch.sqrt(x)
    lead = b * _log_cosh(z) + b * LOG2 - torch.lgamma(b)
    total = torch.zeros_like(x)
    mass = torch.zeros_like(x)
    active = torch.ones_like(x, dtype=torch.bool)
    for n in range(400):
        m = 2 * n + b
        log_term = lead + torch.lgamma(n + b) - math.lgamma(n + 1) + torch.logaddexp(
            -m * z + torch.special.log_ndtr(z * sx - m / sx),
            m * z + torch.special.log_ndtr(-z * sx - m / sx))
        term = torch.exp(log_term)
        total = torch.where(active, total + (-term if n % 2 else term), total)
        mass = torch.where(active, mass + term, mass)
        active = active & ~(term < 1e-17 * total.abs().clamp_min(1e-300))
        if n > 2 and not bool(active.any()):
            break
    # absolute error of a probability: eps times the mass of the alternating terms
    bad = positive & ~(torch.finfo(_F64).eps * mass <= MAX_SERIES_ERROR)
    if bool(bad.any()):
        i = int(torch.nonzero(bad.reshape(-1))[0, 0])
        raise ValueError(
            f"the Polya-gamma series cannot evaluate the CDF of PG(b={float(b.reshape(-1)[i]):g})"
            f" at {float(value.reshape(-1)[i]):g} to {MAX_SERIES_ERROR:g} in float64 "
            "(cancellation for large b); sampling is unaffected")
    out = total.clamp(0.0, 1.0)
    return torch.where(positive, out, torch.zeros_like(out))


def _broadcast_params(b, c) -> tuple[torch.Tensor, torch.Tensor]:
    b_t, c_t = torch.as_tensor(b), torch.as_tensor(c)
    if not b_t.is_floating_point():
        b_t = b_t.to(_F64)
    if not c_t.is_floating_point():
        c_t = c_t.to(b_t.dtype)
    try:
        return torch.broadcast_tensors(b_t, c_t)
    except RuntimeError as err:
        raise ShapeError(f"b {tuple(b_t.shape)} and c {tuple(c_t.shape)} do not broadcast") \
            from err


class PolyaGamma(torch.distributions.Distribution):
    """The Pólya-gamma distribution ``PG(b, c)`` as a ``torch.distributions.Distribution``.

    Args:
        b: shape, ``b > 0`` (real, not only integer); broadcasts with ``c``.
        c: tilt, any finite real.

    Example:
        >>> d = PolyaGamma(torch.tensor([1.0, 2.5]), torch.tensor([0.0, 3.0]))
        >>> d.sample((4,), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 2])
        >>> d.mean
        tensor([0.2500, 0.3771])
    """

    arg_constraints = {"b": torch.distributions.constraints.positive,
                       "c": torch.distributions.constraints.real}
    support = torch.distributions.constraints.positive
    has_rsample = False

    def __init__(self, b, c=0.0, validate_args: bool | None = None):
        self.b, self.c = _broadcast_params(b, c)
        _check_params(self.b.detach().to(_F64), self.c.detach().to(_F64))
        super().__init__(self.b.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PolyaGamma, _instance)
        batch_shape = torch.Size(batch_shape)
        new.b, new.c = self.b.expand(batch_shape), self.c.expand(batch_shape)
        super(PolyaGamma, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return polya_gamma_mean(self.b, self.c)

    @property
    def variance(self) -> torch.Tensor:
        return polya_gamma_variance(self.b, self.c)

    def sample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Exact draws, ``[*sample_shape, *batch_shape]``; pass a generator to reproduce."""
        with torch.no_grad():
            return sample_polya_gamma(self.b, self.c, sample_shape, generator=generator)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return polya_gamma_log_prob(value, self.b, self.c).to(self.b.dtype)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return polya_gamma_cdf(value, self.b, self.c).to(self.b.dtype)
