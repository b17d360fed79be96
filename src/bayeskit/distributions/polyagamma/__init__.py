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
(:func:`~bayeskit.distributions.polyagamma.samplers.sample_jstar_h1`), and every integer
shape is sampled as a sum of that many shape-1 draws, which measured faster than the
chunks for every integer shape tried (benchmarks/RESULTS.md).

On CPU tensors both samplers run as compiled element-by-element loops (:mod:`.kernels`,
numba, under :mod:`bayeskit.compiled`'s policy); the vectorised torch code is the fallback
(CUDA tensors, no numba, ``BAYESKIT_COMPILED=0``). Both are tested for exactness.

The package's seams: :mod:`.series` (the series and its constants), :mod:`.envelopes`,
:mod:`.proposals`, :mod:`.samplers` (general and shape-1), :mod:`.kernels` (the compiled
samplers), :mod:`.dispatch`
(``sample_polya_gamma``), :mod:`.density` (moments, log-density, CDF) and
:mod:`.distribution` (``PolyaGamma``).
"""

from bayeskit.distributions.polyagamma.density import (
    polya_gamma_cdf,
    polya_gamma_log_cdf,
    polya_gamma_log_prob,
    polya_gamma_mean,
    polya_gamma_variance,
)
from bayeskit.distributions.polyagamma.dispatch import sample_polya_gamma
from bayeskit.distributions.polyagamma.distribution import PolyaGamma
from bayeskit.distributions.polyagamma.envelopes import envelope_acceptance_rate
from bayeskit.distributions.polyagamma.series import H_MAX

__all__ = ["PolyaGamma", "sample_polya_gamma", "polya_gamma_mean", "polya_gamma_variance",
           "polya_gamma_log_prob", "polya_gamma_cdf", "polya_gamma_log_cdf",
           "envelope_acceptance_rate", "H_MAX"]
