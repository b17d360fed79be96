"""Exact proposals from the two envelope pieces and the exact series acceptance test."""

from __future__ import annotations

import torch

from bayeskit.distributions.polyagamma.envelopes import take
from bayeskit.distributions.polyagamma.series import F64, LOG2, PI2_8, log_ratio_step

__all__ = ["RandomStream", "until_accepted", "split", "levy_left", "inverse_gaussian_left",
           "left_proposal", "right_proposal", "accept"]

class RandomStream:
    """Uniform, normal and exponential draws from one ``torch.Generator``."""

    def __init__(self, generator: torch.Generator | None, device: torch.device):
        self.g = generator
        self.device = device

    def uniform(self, n: int) -> torch.Tensor:
        # (0, 1]: 1 - U with U in [0, 1) never gives 0, so logs stay finite
        return 1.0 - torch.rand(n, dtype=F64, device=self.device, generator=self.g)

    def normal(self, n: int) -> torch.Tensor:
        return torch.randn(n, dtype=F64, device=self.device, generator=self.g)

    def exponential(self, n: int) -> torch.Tensor:
        return torch.empty(n, dtype=F64, device=self.device).exponential_(generator=self.g)


def until_accepted(n: int, propose, device) -> torch.Tensor:
    """Run ``propose(idx) -> (x, accept)`` on the still-pending indices until all accept."""
    out = torch.empty(n, dtype=F64, device=device)
    pending = torch.arange(n, device=device)
    while pending.numel():
        x, ok = propose(pending)
        out[pending[ok]] = x[ok]
        pending = pending[~ok]
    return out


def split(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.nonzero(mask).squeeze(-1), torch.nonzero(~mask).squeeze(-1)


def levy_left(h, z, t, rng: RandomStream, m: int):
    """Levy law truncated to ``(0, t]`` (``x = h^2 / Y^2``, ``|Y| >= h / sqrt(t)``), tilted."""
    tail = torch.special.ndtr(-h / torch.sqrt(t))
    y = torch.special.ndtri(rng.uniform(m) * tail)
    x = h * h / (y * y)
    return x, rng.uniform(m) <= torch.exp(-0.5 * z * z * x)


def inverse_gaussian_left(h, z, t, rng: RandomStream, m: int):
    """IG(h/z, h^2) (Michael, Schucany & Haas 1976), kept if it falls in ``(0, t]``."""
    mu = h / z
    lam = h * h
    v = rng.normal(m) ** 2
    x = mu + mu * mu * v / (2 * lam) - mu / (2 * lam) * torch.sqrt(4 * mu * lam * v + (mu * v) ** 2)
    x = torch.where(rng.uniform(m) * (mu + x) > mu, mu * mu / x, x)
    return x, x <= t


def left_proposal(h, z, t, rng: RandomStream) -> torch.Tensor:
    """``x`` on ``(0, t]`` with density prop. to ``x^-1.5 exp(-h^2 / (2x) - z^2 x / 2)``.

    Two exact proposals; each element takes the one with the higher acceptance rate:
    a truncated Levy draw tilted by ``exp(-z^2 x / 2)`` (rate ``m / (2 Phi(-h/sqrt(t)))``)
    or an inverse Gaussian kept when it falls below ``t`` (rate ``exp(h z) m``), where
    ``m = exp(-h z) Phi(z sqrt(t) - h/sqrt(t)) + exp(h z) Phi(-z sqrt(t) - h/sqrt(t))``.
    """
    # Levy wins when 1 / (2 Phi(-h / sqrt(t))) > exp(h z); m cancels from the comparison
    levy = (z == 0) | (-LOG2 - torch.special.log_ndtr(-h / torch.sqrt(t)) > h * z)

    def propose(idx):
        hh, zz, tt = take(h, idx), z[idx], take(t, idx)
        lv = levy[idx]
        x = torch.empty(idx.numel(), dtype=F64, device=z.device)
        ok = torch.empty(idx.numel(), dtype=torch.bool, device=z.device)
        a, b = split(lv)
        for sub, fn in ((a, levy_left), (b, inverse_gaussian_left)):
            if sub.numel():
                x[sub], ok[sub] = fn(take(hh, sub), zz[sub], take(tt, sub), rng, sub.numel())
        return x, ok

    return until_accepted(z.numel(), propose, z.device)


def right_proposal(h, z, t, rng: RandomStream) -> torch.Tensor:
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
        hh, ll, tt = take(h, idx), lam[idx], take(t, idx)
        ue = use_exp[idx]
        x = torch.empty(idx.numel(), dtype=F64, device=z.device)
        ok = torch.empty(idx.numel(), dtype=torch.bool, device=z.device)
        a, b = split(ue)
        for sub, fn in ((a, exponential), (b, gamma)):
            if sub.numel():
                x[sub], ok[sub] = fn(take(hh, sub), ll[sub], take(tt, sub), sub.numel())
        return x, ok

    return until_accepted(z.numel(), propose, z.device)


def accept(x, h, v) -> torch.Tensor:
    """Decide ``v <= f(x | h) / a_0(x | h)`` with the alternating series (exactly)."""
    m = x.numel()
    decision = torch.zeros(m, dtype=torch.bool, device=x.device)
    idx = torch.arange(m, device=x.device)
    total = torch.ones_like(x)
    log_r = torch.zeros_like(x)
    xs, hs, vs = x, h, v
    for n in range(2000):
        step = log_ratio_step(n, xs, hs)
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
            hs = take(hs, keep) if hs.dim() else hs
            total, log_r, step = total[keep], log_r[keep], step[keep]
            if idx.numel() == 0:
                return decision
        log_r = log_r + step
        total = total + (1.0 if n % 2 else -1.0) * torch.exp(log_r)
    decision[idx] = vs <= total  # pragma: no cover  (needs x beyond ~1e5)
    return decision

