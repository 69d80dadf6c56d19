"""Checks of user input, with messages that name the argument, what was expected and
what came. Concrete values are checked eagerly (``ValueError``). Traced spike times
(inside ``jit``) cannot raise at call time; they come back with a flag per sample that
the caller turns into the result ``RESULTS.invalid_input``. A flag rather than
``eqx.error_if``: a run-time error is a host callback, and a compiled program with a
callback can neither go into JAX's persistent compilation cache nor run on an
accelerator without a round trip to the host."""

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def spike_times(x, in_size: int, name: str = "input_times"):
    """Validate input spike times. Returns ``(times, invalid)``: the times as a
    ``(in_size, K)`` float array and, for traced times, a boolean scalar that is true
    where some time is NaN or negative (those entries become ``+inf``, no spike); for
    concrete times, which are checked here, ``invalid`` is ``None``.

    A 1-D array of length ``in_size`` is taken as one spike per channel.
    """
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"`{name}` must be a floating-point array of spike times; got dtype "
            f"{x.dtype}. Use +inf (not -1 or 0) to mark 'no spike'."
        )
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != in_size:
        raise ValueError(
            f"`{name}` must have shape (in_size={in_size}, K) (one row per input "
            f"channel, +inf padding); got shape {tuple(x.shape)}. For a batch, use "
            "jax.vmap(net)(batch)."
        )
    if not is_traced(x):
        spike_time_values(x, name)
        return jnp.asarray(x), None
    bad = jnp.isnan(x) | (x < 0)
    return jnp.where(bad, jnp.inf, x), jnp.any(bad)


def nan_if(invalid, x):
    """``x``, or ``NaN`` of its shape where ``invalid`` (the traced-input flag of
    `spike_times`; ``None``: unchanged)."""
    if invalid is None:
        return x
    return jnp.where(invalid, jnp.nan, x)


def spike_time_values(values, name: str) -> None:
    """``ValueError`` if concrete spike times (any shape) hold NaN or negative
    values."""
    values = np.asarray(values)
    if np.isnan(values).any():
        raise ValueError(f"`{name}` contains NaN; use +inf to mark 'no spike'.")
    if (values < 0).any():
        raise ValueError(
            f"`{name}` contains negative times (min {values.min()}); spike times "
            "must be >= 0 (the simulation starts at t = 0)."
        )


def query_times(ts, t_max: float, name: str = "ts") -> jax.Array:
    """Validate the times at which a trajectory is requested."""
    if not hasattr(ts, "dtype"):
        ts = np.asarray(ts, dtype=float)
    if ts.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of times; got shape {ts.shape}.")
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        ts = jnp.asarray(ts, dtype=float)
    if not is_traced(ts):
        values = np.asarray(ts)
        if not np.isfinite(values).all() or (values < 0).any() or (values > t_max).any():
            raise ValueError(
                f"`{name}` must be finite times in [0, t_max={t_max}]; got values in "
                f"[{values.min()}, {values.max()}]."
            )
    return jnp.asarray(ts)


def positive_number(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number; got {value!r}.") from None
    if not (np.isfinite(number) and number > 0):
        raise ValueError(f"`{name}` must be positive and finite; got {value!r}.")
    return number


def positive_int(value, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    return int(value)
