"""Pieces shared by the subcommands."""

import argparse
import os
from pathlib import Path

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


def default_cache_dir() -> Path:
    """Where the command keeps compiled programs: ``$XDG_CACHE_HOME/eventsnn/xla``
    (``~/.cache/eventsnn/xla``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eventsnn" / "xla"


def compile_cache_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--compile-cache", type=Path, default=None, metavar="DIR",
        help="keep compiled programs in DIR (JAX's persistent compilation cache), so "
             "that a later run with the same network shapes and settings skips most "
             f"of the compile time (default: {default_cache_dir()}; "
             "JAX_COMPILATION_CACHE_DIR, if set, wins)")
    group.add_argument("--no-compile-cache", action="store_true",
                       help="compile everything anew and store nothing")


# Programs that compile faster than this are not worth a file. (No size limit: JAX's
# eviction needs the `filelock` package; the folder can be deleted at any time.)
CACHE_MIN_COMPILE_S = 0.5


def use_compile_cache(args: argparse.Namespace) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process, as the arguments
    say; a folder the user configured for JAX already is left alone. Call before
    anything compiles (JAX decides once per process). Returns the folder in use."""
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    if getattr(args, "no_compile_cache", False):
        return None
    folder = getattr(args, "compile_cache", None) or default_cache_dir()
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S)
    return folder
