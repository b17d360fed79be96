"""Density-ratio estimators from samples only: a probabilistic classifier and uLSIF.

``r(x) = p(x) / q(x)``. A classifier trained to tell samples of ``p`` (label 1) from ``q``
(label 0) with the binary cross-entropy has logit ``log r(x) + log(N_p / N_q)`` at the
optimum, so ``log r = logit - log(N_p / N_q)``. uLSIF (Kanamori, Hido & Sugiyama 2009)
fits ``r(x) = sum_l alpha_l k(x, c_l)`` by least squares in closed form, with kernel width
and ridge chosen by k-fold cross-validation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bayeskit.errors import ArgumentValueError, ShapeError
from bayeskit.linalg import cholesky_solve, jittered_cholesky
from bayeskit.nn import mlp
from bayeskit.ratio.fdivergences import MonteCarloEstimate, monte_carlo_kl
from bayeskit.training.trainer import train
from bayeskit.validation import as_inputs, as_int, as_scalar, as_tensor, check_choice

__all__ = ["ClassifierDensityRatio", "ULSIF", "KLIEP", "estimate_kl", "estimate_js",
           "nwj_lower_bound", "check_samples"]

F64 = torch.float64


def check_samples(x_p, x_q, min_samples: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert to ``[N, D]`` float64 tensors; errors for mismatched dims, too few, NaN/inf.

    Examples:
        >>> x_p, x_q = check_samples([[1.0], [2.0], [3.0], [4.0], [5.0]], [0.0, 1.0, 2.0, 3.0, 4.0])
        >>> x_p.shape, x_q.shape, x_p.dtype
        (torch.Size([5, 1]), torch.Size([5, 1]), torch.float64)
    """
    min_samples = as_int(min_samples, "min_samples", positive=True)
    out = [as_inputs(x, name, dtype=F64, min_rows=min_samples)
           for name, x in (("x_p", x_p), ("x_q", x_q))]
    if out[0].shape[1] != out[1].shape[1]:
        raise ShapeError(f"x_p has {out[0].shape[1]} dimensions and x_q {out[1].shape[1]}")
    return out[0], out[1]


class ClassifierDensityRatio:
    """``log r(x)`` from a classifier: a small MLP (two hidden layers, ReLU) trained with BCE.

    Args:
        hidden: hidden layer widths (reference: 16, 32).
        epochs, batch_size, lr: Adam training, full batch by default (``batch_size=None``,
            as in the reference); early stopping on a held-out split (``val_fraction``)
            with ``patience`` epochs restores the best weights; ``val_fraction=0`` trains
            on everything for ``epochs`` epochs (small samples, e.g. BORE's).
        min_samples: fewest samples accepted from each distribution.
        activation: the MLP's hidden activation (a ``torch.nn`` module class; ReLU).
        seed: initialisation and minibatch order.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> xp = 1 + torch.randn(2000, 1, generator=g); xq = 2 * torch.randn(2000, 1, generator=g)
        >>> est = ClassifierDensityRatio(epochs=50).fit(xp, xq)
        >>> est.log_ratio(torch.zeros(1, 1)).shape
        torch.Size([1])
    """

    #: probabilities from a plug-in classifier are clipped to [EPS, 1 - EPS], so a
    #: classifier that outputs exactly 0 or 1 gives |log r| <= log((1 - EPS) / EPS) ~ 27.6
    EPS = 1e-12

    def __init__(self, hidden: tuple[int, ...] = (16, 32), epochs: int = 800,
                 batch_size: int | None = None, lr: float = 1e-2, val_fraction: float = 0.2,
                 patience: int = 100, seed: int = 0, classifier=None, min_samples: int = 5,
                 activation: type[nn.Module] = nn.ReLU):
        self.hidden, self.epochs, self.batch_size = hidden, epochs, batch_size
        self.activation = activation
        self.min_samples = min_samples
        self.lr, self.val_fraction, self.patience, self.seed = lr, val_fraction, patience, seed
        self.classifier = classifier

    def fit(self, x_p, x_q) -> ClassifierDensityRatio:
        """Train on ``x_p`` (label 1) and ``x_q`` (label 0). With ``classifier`` (any
        scikit-learn classifier with ``predict_proba``) that model is fitted instead of the
        MLP; its probabilities are clipped to ``[EPS, 1 - EPS]``."""
        x_p, x_q = check_samples(x_p, x_q, min_samples=self.min_samples)
        if self.classifier is not None:
            from sklearn.base import clone

            self.model_ = clone(self.classifier).fit(
                torch.cat([x_p, x_q]).numpy(),
                torch.cat([torch.ones(len(x_p)), torch.zeros(len(x_q))]).numpy())
            self.log_prior_odds_ = math.log(len(x_p) / len(x_q))
            return self
        g = torch.Generator().manual_seed(self.seed)
        self.loc_ = torch.cat([x_p, x_q]).mean(0)
        self.scale_ = torch.cat([x_p, x_q]).std(0).clamp_min(1e-12)
        self.net_ = mlp((x_p.shape[1], *self.hidden, 1), dtype=F64, generator=g,
                        activation=self.activation)
        x = torch.cat([x_p, x_q])
        y = torch.cat([torch.ones(len(x_p), dtype=F64), torch.zeros(len(x_q), dtype=F64)])
        perm = torch.randperm(len(x), generator=g)
        n_val = max(2, int(self.val_fraction * len(x))) if self.val_fraction > 0 else 0
        val, tr = perm[:n_val], perm[n_val:]
        # the logit carries log(N_p / N_q) of the training split; removed in log_ratio
        self.log_prior_odds_ = math.log(float(y[tr].sum()) / float((1 - y[tr]).sum()))
        bce = nn.BCEWithLogitsLoss(reduction="sum")  # log-sum-exp form: stable when saturated
        xt, yt = x[tr], y[tr]

        def loss_fn(batch, rows, _generator):
            xb, yb = batch
            return bce(self._logit(xb[rows]), yb[rows]) / xb.shape[0]

        hist = train(self.net_, loss_fn, (xt, yt), epochs=self.epochs,
                     batch_size=self.batch_size or len(tr), lr=self.lr, seed=self.seed,
                     validate=(lambda: bce(self._logit(x[val]), y[val]) / len(val))
                     if n_val else None,
                     patience=self.patience if n_val else None, min_delta=1e-6,
                     desc="classifier", progress=False)
        self.history_ = {"train_bce": hist["train_loss"], "val_bce": hist.get("val_loss", [])}
        return self

    def _logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_((x - self.loc_) / self.scale_).squeeze(-1)

    def log_ratio(self, x) -> torch.Tensor:
        """``log p(x) / q(x)`` at ``x: [M, D]`` (or ``[M]`` for 1-D)."""
        x = as_inputs(x, "x", dtype=F64)
        return self._log_ratio(x)

    @property
    def differentiable(self) -> bool:
        """Whether :meth:`log_ratio_tensor` has gradients (the MLP; not a scikit-learn
        classifier)."""
        return self.classifier is None

    def log_ratio_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`log_ratio` on a float64 tensor ``[..., D]`` without input conversion,
        differentiable in ``x`` for the MLP (what a gradient-based optimiser of the ratio
        calls, e.g. BORE's acquisition)."""
        if self.differentiable:
            return self._logit(x) - self.log_prior_odds_
        flat = x.detach().reshape(-1, x.shape[-1])
        return self._log_ratio(flat).reshape(x.shape[:-1])

    def _log_ratio(self, x: torch.Tensor) -> torch.Tensor:
        if self.classifier is not None:
            proba = torch.as_tensor(self.model_.predict_proba(x.numpy()), dtype=F64)
            col = list(self.model_.classes_).index(1.0)
            p1 = proba[:, col].clamp(self.EPS, 1 - self.EPS)
            return torch.log(p1) - torch.log1p(-p1) - self.log_prior_odds_
        with torch.no_grad():
            return self._logit(x) - self.log_prior_odds_

    def predict_proba(self, x) -> torch.Tensor:
        """Classifier output ``P(x from p)`` for equal class sizes: ``sigmoid(log r(x))``."""
        return torch.sigmoid(self.log_ratio(x))

    def calibration(self, x_p, x_q, bins: int = 10) -> tuple[torch.Tensor, torch.Tensor,
                                                              torch.Tensor]:
        """Reliability table on (held-out) samples: per probability bin, the mean predicted
        ``P(p | x)``, the observed fraction of ``p`` samples, and the bin count.

        Uses the prior odds of the given samples, so it checks the classifier itself.
        """
        x_p, x_q = check_samples(x_p, x_q, min_samples=2)
        odds = math.log(len(x_p) / len(x_q))
        prob = torch.sigmoid(torch.cat([self.log_ratio(x_p), self.log_ratio(x_q)]) + odds)
        label = torch.cat([torch.ones(len(x_p), dtype=F64), torch.zeros(len(x_q), dtype=F64)])
        idx = torch.clamp((prob * bins).long(), max=bins - 1)
        count = torch.bincount(idx, minlength=bins).to(F64)
        mean_pred = torch.bincount(idx, prob, minlength=bins) / count.clamp_min(1)
        observed = torch.bincount(idx, label, minlength=bins) / count.clamp_min(1)
        return mean_pred, observed, count


def _solve_spd(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``A^-1 b`` for symmetric positive definite ``A [..., L, L]`` (here ``H + lambda I``,
    lambda > 0) by Cholesky: half LU's cost, and torch 2.13's batched LU returns invalid
    pivots at L >= 200 once ``torch.set_num_threads`` has been called (MKL, CPU;
    tests/ratio/test_ratio.py reproduces it)."""
    return cholesky_solve(jittered_cholesky(A)[0], b.unsqueeze(-1)).squeeze(-1)


def _gauss_kernel(x: torch.Tensor, c: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``[S, N, L]`` Gaussian kernel matrices for each width in ``sigma: [S]``."""
    d2 = torch.cdist(x, c).pow(2)
    return torch.exp(-d2[None] / (2 * sigma[:, None, None] ** 2))


class ULSIF:
    """Unconstrained least-squares importance fitting with k-fold cross-validation.

    ``r(x) = sum_l alpha_l exp(-|x - c_l|^2 / (2 sigma^2))`` with centres ``c_l`` drawn from
    ``x_p``; ``alpha = (H + lambda I)^-1 h``, ``H = K_q^T K_q / N_q``, ``h = K_p^T 1 / N_p``.
    All (sigma, lambda) pairs and folds are solved in one batched call.

    With ``relative_alpha = a > 0`` this is RuLSIF (Yamada et al. 2013): it estimates the
    bounded relative ratio ``p / (a p + (1 - a) q)`` (``H`` mixes both samples), which is
    smoother and easier to estimate; ``a = 0`` is plain uLSIF.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> x_p = 1 + torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(1, 1)
        >>> x_q = 2 * torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(0, 2^2)
        >>> ratio = ULSIF(seed=0).fit(x_p, x_q)
        >>> ratio.log_ratio(torch.tensor([[1.0]], dtype=torch.float64))  # exact: 0.8181
        tensor([0.7679], dtype=torch.float64)
    """

    def __init__(self, sigmas=None, lambdas=(1e-3, 1e-2, 1e-1, 1.0), n_centers: int = 100,
                 folds: int = 5, seed: int = 0, relative_alpha: float = 0.0):
        relative_alpha = as_scalar(relative_alpha, "relative_alpha", low=0.0, high=1.0,
                                   high_open=True)
        self.sigmas, self.lambdas = sigmas, lambdas
        self.n_centers, self.folds, self.seed = n_centers, folds, seed
        self.relative_alpha = relative_alpha

    def fit(self, x_p, x_q) -> ULSIF:
        folds = as_int(self.folds, "folds", low=2)
        as_int(self.n_centers, "n_centers", positive=True)
        as_scalar(self.relative_alpha, "relative_alpha", low=0.0, high=1.0, high_open=True)
        x_p, x_q = check_samples(x_p, x_q, min_samples=folds)
        g = torch.Generator().manual_seed(self.seed)
        self.centers_ = x_p[torch.randperm(len(x_p), generator=g)[:self.n_centers]]
        if self.sigmas is None:  # around the median pairwise distance
            med = torch.cdist(self.centers_, self.centers_).median().clamp_min(1e-6)
            sigmas = med * torch.tensor([0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0], dtype=F64)
        else:
            sigmas = as_tensor(self.sigmas, "sigmas", dtype=F64, ndim=1, min_rows=1)
            if not bool((sigmas > 0).all()):
                raise ArgumentValueError(f"sigmas must be positive, got {sigmas.tolist()}")
        lambdas = as_tensor(self.lambdas, "lambdas", dtype=F64, ndim=1, min_rows=1,
                            nonnegative=True)
        Kp = _gauss_kernel(x_p, self.centers_, sigmas)  # [S, Np, L]
        Kq = _gauss_kernel(x_q, self.centers_, sigmas)
        fp = torch.arange(len(x_p)) % self.folds
        fq = torch.arange(len(x_q)) % self.folds
        fp = fp[torch.randperm(len(fp), generator=g)]
        fq = fq[torch.randperm(len(fq), generator=g)]
        eye = torch.eye(len(self.centers_), dtype=F64)
        a = self.relative_alpha

        def gram(Kp_, Kq_):  # H = a K_p^T K_p / N_p + (1 - a) K_q^T K_q / N_q
            H = (1 - a) * Kq_.mT @ Kq_ / Kq_.shape[-2]
            return H + a * Kp_.mT @ Kp_ / Kp_.shape[-2] if a else H

        scores = torch.zeros(len(sigmas), len(lambdas), dtype=F64)
        for k in range(self.folds):
            tp, tq = fp != k, fq != k
            H = gram(Kp[:, tp], Kq[:, tq])  # [S, L, L]
            h = Kp[:, tp].mean(1)  # [S, L]
            A = H[:, None] + lambdas[None, :, None, None] * eye  # [S, Lam, L, L]
            alpha = _solve_spd(A, h[:, None].expand(-1, len(lambdas), -1))
            rq = torch.einsum("snl,sml->smn", Kq[:, ~tq], alpha)
            rp = torch.einsum("snl,sml->smn", Kp[:, ~tp], alpha)
            # held-out squared loss: (a E_p[r^2] + (1 - a) E_q[r^2]) / 2 - E_p[r]
            scores += 0.5 * ((1 - a) * (rq**2).mean(-1) + a * (rp**2).mean(-1)) - rp.mean(-1)
        i, j = divmod(int(torch.argmin(scores)), len(lambdas))
        self.sigma_, self.lambda_ = float(sigmas[i]), float(lambdas[j])
        self.alpha_ = _solve_spd(gram(Kp[i], Kq[i]) + self.lambda_ * eye, Kp[i].mean(0))
        self.cv_scores_ = scores / self.folds
        return self

    def ratio(self, x) -> torch.Tensor:
        """``r(x)`` (the relative ratio for RuLSIF; may dip below zero, as uLSIF does not
        constrain it)."""
        x = as_inputs(x, "x", dtype=F64, dim=self.centers_.shape[1])
        K = _gauss_kernel(x, self.centers_, torch.tensor([self.sigma_], dtype=F64))[0]
        return K @ self.alpha_

    def log_ratio(self, x) -> torch.Tensor:
        """``log max(r(x), 1e-12)``."""
        return torch.log(self.ratio(x).clamp_min(1e-12))


class KLIEP:
    """Kullback-Leibler importance estimation (Sugiyama et al. 2008).

    ``r(x) = sum_l alpha_l k(x, c_l)`` with ``alpha >= 0`` maximising ``mean_p log r`` subject
    to ``mean_q r = 1``, by projected gradient ascent; the kernel width by k-fold
    cross-validation of the held-out ``mean_p log r``. All widths run as one batch.

    Examples:
        >>> g = torch.Generator().manual_seed(1)
        >>> x_p = torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(0, 1)
        >>> x_q = 1.5 * torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(0, 1.5^2)
        >>> ratio = KLIEP(seed=0).fit(x_p, x_q)
        >>> ratio.log_ratio(torch.zeros(1, 1, dtype=torch.float64))  # exact: log 1.5 = 0.4055
        tensor([0.3833], dtype=torch.float64)
    """

    def __init__(self, sigmas=None, n_centers: int = 100, folds: int = 5, iterations: int = 300,
                 seed: int = 0):
        self.sigmas, self.n_centers, self.folds = sigmas, n_centers, folds
        self.iterations, self.seed = iterations, seed

    def _solve(self, Kp: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Batched over widths: ``Kp: [S, N, L]``, ``b: [S, L]`` (``mean_q k``)."""
        S, _, L = Kp.shape
        alpha = torch.ones(S, L, dtype=F64) / (b.sum(-1, keepdim=True))
        step = 1e-3 * torch.ones(S, 1, dtype=F64)
        for _ in range(self.iterations):
            r = torch.einsum("snl,sl->sn", Kp, alpha).clamp_min(1e-300)
            grad = torch.einsum("snl,sn->sl", Kp, 1 / r) / Kp.shape[1]
            alpha = alpha + step * grad / grad.norm(dim=-1, keepdim=True) * alpha.norm(
                dim=-1, keepdim=True)
            alpha = alpha + (1 - (b * alpha).sum(-1, keepdim=True)) * b / (b * b).sum(
                -1, keepdim=True)
            alpha = alpha.clamp_min(0)
            alpha = alpha / (b * alpha).sum(-1, keepdim=True)
            step = step * 1.02
        return alpha

    def fit(self, x_p, x_q) -> KLIEP:
        x_p, x_q = check_samples(x_p, x_q, min_samples=self.folds)
        g = torch.Generator().manual_seed(self.seed)
        self.centers_ = x_p[torch.randperm(len(x_p), generator=g)[:self.n_centers]]
        if self.sigmas is None:
            med = torch.cdist(self.centers_, self.centers_).median().clamp_min(1e-6)
            sigmas = med * torch.tensor([0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0], dtype=F64)
        else:
            sigmas = torch.as_tensor(self.sigmas, dtype=F64)
        Kp = _gauss_kernel(x_p, self.centers_, sigmas)
        b = _gauss_kernel(x_q, self.centers_, sigmas).mean(1)
        fold = torch.arange(len(x_p)) % self.folds
        fold = fold[torch.randperm(len(fold), generator=g)]
        scores = torch.zeros(len(sigmas), dtype=F64)
        for k in range(self.folds):
            alpha = self._solve(Kp[:, fold != k], b)
            r = torch.einsum("snl,sl->sn", Kp[:, fold == k], alpha)
            scores += torch.log(r.clamp_min(1e-300)).mean(-1)
        i = int(torch.argmax(scores))
        self.sigma_ = float(sigmas[i])
        self.alpha_ = self._solve(Kp[i:i + 1], b[i:i + 1])[0]
        return self

    def ratio(self, x) -> torch.Tensor:
        """``r(x)`` at ``x: [M, D]``."""
        x = as_inputs(x, "x", dtype=F64, dim=self.centers_.shape[1])
        K = _gauss_kernel(x, self.centers_, torch.tensor([self.sigma_], dtype=F64))[0]
        return K @ self.alpha_

    def log_ratio(self, x) -> torch.Tensor:
        return torch.log(self.ratio(x).clamp_min(1e-12))


def estimate_js(x_p, x_q, *, seed: int = 0, **kwargs) -> float:
    """Jensen-Shannon divergence from the classifier's best held-out BCE: ``log 2 - BCE``.

    At the optimum the mean binary cross-entropy over equally many samples of ``p`` and
    ``q`` is ``log 2 - JS[p || q]``; a finite classifier gives a lower bound (in
    expectation).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> x_p = 1 + torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(1, 1)
        >>> x_q = 2 * torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(0, 2^2)
        >>> js = estimate_js(x_p, x_q)  # exact JS 0.1282 (by quadrature)
        >>> round(js, 2)
        0.13
    """
    clf = ClassifierDensityRatio(seed=seed, **kwargs).fit(x_p, x_q)
    return math.log(2) - min(clf.history_["val_bce"])


def nwj_lower_bound(log_ratio_at_p: torch.Tensor, log_ratio_at_q: torch.Tensor
                    ) -> MonteCarloEstimate:
    """Nguyen-Wainwright-Jordan bound ``KL >= E_p[T] - E_q[exp(T - 1)]`` with ``T = 1 + log r``.

    Tight when ``r`` is the true ratio; any estimate ``r`` gives a lower bound (in
    expectation), unlike the plug-in ``E_p[log r]``.

    Examples:
        >>> from torch.distributions import Normal
        >>> g = torch.Generator().manual_seed(0)
        >>> p, q = Normal(1.0, 1.0), Normal(0.0, 2.0)
        >>> log_r = lambda x: p.log_prob(x) - q.log_prob(x)  # the exact ratio: a tight bound
        >>> x_p = 1 + torch.randn(2000, dtype=torch.float64, generator=g)
        >>> x_q = 2 * torch.randn(2000, dtype=torch.float64, generator=g)
        >>> bound = nwj_lower_bound(log_r(x_p), log_r(x_q))
        >>> abs(bound.value - 0.4431) < 4 * bound.standard_error
        True
    """
    tp = 1 + as_tensor(log_ratio_at_p, "log_ratio_at_p", dtype=F64).reshape(-1)
    tq = 1 + as_tensor(log_ratio_at_q, "log_ratio_at_q", dtype=F64).reshape(-1)
    ep = monte_carlo_kl(tp)
    eq = monte_carlo_kl(torch.exp(tq - 1))
    return MonteCarloEstimate(ep.value - eq.value,
                              math.sqrt(ep.standard_error**2 + eq.standard_error**2),
                              min(ep.n, eq.n))


def estimate_kl(x_p, x_q, method: str = "classifier", *, cross_fit: bool = True,
                seed: int = 0, **kwargs) -> MonteCarloEstimate:
    """``KL[p || q]`` from samples only: ``mean log r(x_i)`` over ``x_p``, ``r`` estimated by
    ``method`` (``"classifier"``, ``"ulsif"`` or ``"kliep"``).

    With ``cross_fit`` (default) the samples are split in two halves; the ratio fitted on
    one half is evaluated on the other half's ``x_p`` and vice versa, which removes the
    upward bias of evaluating a flexible estimator on its own training points.

    The returned ``standard_error`` is the Monte Carlo error of that final average *given
    the fitted ratio*; it does not include the error of the ratio estimate itself, which
    dominates at small ``n`` (KL[p || p] with 100 + 100 samples: about -0.17 +- 0.003 on
    one seed while the estimates spread by ~0.1 over seeds). For a total uncertainty, repeat
    with several ``seed`` values (and fresh samples if you can) and use their spread.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> x_p = 1 + torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(1, 1)
        >>> x_q = 2 * torch.randn(1000, 1, dtype=torch.float64, generator=g)  # N(0, 2^2)
        >>> est = estimate_kl(x_p, x_q, method="ulsif")  # exact 0.4431
        >>> round(est.value, 2), round(est.standard_error, 2)
        (0.36, 0.06)
    """
    x_p, x_q = check_samples(x_p, x_q)
    makers = {"classifier": ClassifierDensityRatio, "ulsif": ULSIF, "kliep": KLIEP}
    check_choice(method, "method", sorted(makers))
    make = makers[method]

    def fit(a, b):
        return make(seed=seed, **kwargs).fit(a, b)

    if not cross_fit:
        return monte_carlo_kl(fit(x_p, x_q).log_ratio(x_p))
    g = torch.Generator().manual_seed(seed)
    pp, pq = torch.randperm(len(x_p), generator=g), torch.randperm(len(x_q), generator=g)
    hp, hq = len(x_p) // 2, len(x_q) // 2
    parts = [(pp[:hp], pq[:hq], pp[hp:]), (pp[hp:], pq[hq:], pp[:hp])]
    terms = [fit(x_p[a], x_q[b]).log_ratio(x_p[held]) for a, b, held in parts]
    return monte_carlo_kl(torch.cat(terms))
