"""Pieces shared by the subcommands."""

import argparse

import jax

from .. import neurons as _neurons

NEURONS = {
    "lif": _neurons.LIF,
    "delta-lif": _neurons.DeltaLIF,
    "alpha-lif": _neurons.AlphaLIF,
    "iaf": _neurons.IAF,
    "qif": _neurons.QIF,
    "eif": _neurons.EIF,
    "adex": _neurons.AdEx,
    "izhikevich": _neurons.Izhikevich,
}


def _positive(kind):
    """An argparse type: `kind` (int or float) that must be > 0."""

    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


def precision(dtype: str):
    """A context in which JAX computes in `dtype` (scoped: the global setting stays)."""
    enable_x64 = getattr(jax, "enable_x64", None)
    if enable_x64 is None:  # jax < 0.6
        from jax.experimental import enable_x64
    return enable_x64(dtype == "float64")
