"""Mauna Loa weekly CO2 (1958-2001), bundled (public domain; see CO2_LICENSE.md)."""

from __future__ import annotations

import csv
import datetime as dt
from importlib import resources

import torch

from bayeskit.validation import as_scalar

__all__ = ["load_co2"]


def load_co2(train_fraction: float = 0.8, dtype: torch.dtype = torch.float64):
    """``(t_train, y_train, t_test, y_test)``: time in decimal years ``[N, 1]`` and CO2 in
    ppmv ``[N]``, weeks without a measurement dropped (2225 remain), split by time: the
    first ``train_fraction`` for training, the rest (the later years) for testing.

    Examples:
        >>> t_train, y_train, t_test, y_test = load_co2()  # bundled, no download
        >>> t_train.shape, y_train.shape, t_test.shape
        (torch.Size([1780, 1]), torch.Size([1780]), torch.Size([445, 1]))
    """
    train_fraction = as_scalar(train_fraction, "train_fraction", low=0.0, high=1.0,
                               low_open=True, high_open=True)
    t, y = [], []
    with resources.files("bayeskit.data").joinpath("co2.csv").open() as fh:
        for row in csv.DictReader(fh):
            if not row["co2"]:
                continue
            d = dt.datetime.strptime(row["date"], "%Y%m%d")
            start = dt.datetime(d.year, 1, 1)
            length = (dt.datetime(d.year + 1, 1, 1) - start).total_seconds()
            t.append(d.year + (d - start).total_seconds() / length)
            y.append(float(row["co2"]))
    t_all = torch.tensor(t, dtype=dtype)[:, None]
    y_all = torch.tensor(y, dtype=dtype)
    n = int(round(train_fraction * len(y)))
    return t_all[:n], y_all[:n], t_all[n:], y_all[n:]
