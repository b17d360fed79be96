"""Data sets that ship with the library's dependencies (no downloads) and loaders of
standard files the user already has."""

from bayeskit.data.co2 import load_co2
from bayeskit.data.digits import load_digits_split
from bayeskit.data.mnist import dynamic_binarize, load_mnist, read_idx, static_binarize

__all__ = ["load_co2", "load_digits_split", "load_mnist", "read_idx", "dynamic_binarize",
           "static_binarize"]
