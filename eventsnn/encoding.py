r"""Encoders that turn real-valued data into input spike times for a network.

Every encoder returns spike times shaped ``(..., channels, K)`` with ``+inf`` padding,
the layout `eventsnn.FeedForward` takes, so the output can go straight into
``jax.vmap(net)``.

| encoder | spikes per channel | idea |
| --- | --- | --- |
| [`latency`][] | one (or none) | larger value → earlier (or later) spike |
| [`poisson`][] | Poisson count | value is a firing rate |
| [`decode_latency`][] | — | inverse of `latency` |
"""

import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Float


def _check_window(t_early, t_late):
    if not (np.isfinite(t_early) and np.isfinite(t_late) and 0 <= t_early < t_late):
        raise ValueError(
            f"need 0 <= t_early < t_late (finite); got t_early={t_early}, "
            f"t_late={t_late}."
        )


def latency(
    x: Float[Array, "... channels"],
    t_early: float,
    t_late: float,
    *,
    x_min: float = 0.0,
    x_max: float = 1.0,
    larger_first: bool = False,
    silent_below: float | None = None,
) -> Float[Array, "... channels 1"]:
    r"""Linear latency code: one spike per channel at

    $$t = t_\text{early} + \frac{x - x_\min}{x_\max - x_\min}(t_\text{late} - t_\text{early}),$$

    so $x_\min$ fires at ``t_early`` and $x_\max$ at ``t_late`` (Göltz et al. 2021 code
    Yin-Yang coordinates this way). With ``larger_first=True`` the order is reversed
    (bright pixels fire first, the usual image code).

    **Arguments:**

    - `x`: values, last axis = channels. Values outside ``[x_min, x_max]`` raise
      ``ValueError`` (outside ``jit``); under ``jit`` they are clipped.
    - `t_early`, `t_late`: the coding window (ms), ``0 <= t_early < t_late``.
    - `x_min`, `x_max`: the value range mapped onto the window.
    - `larger_first`: map ``x_max`` to ``t_early`` instead.
    - `silent_below`: channels whose value is below this do not spike (``+inf``);
      e.g. background pixels of an image.

    **Returns:** ``Float[Array, "... channels 1"]`` spike times.
    """
    _check_window(t_early, t_late)
    if not x_max > x_min:
        raise ValueError(f"need x_max > x_min; got x_min={x_min}, x_max={x_max}.")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    if not isinstance(x, jax.core.Tracer):
        values = np.asarray(x)
        if not np.isfinite(values).all():
            raise ValueError("`x` contains NaN or inf.")
        if values.size and (values.min() < x_min or values.max() > x_max):
            raise ValueError(
                f"`x` must lie in [x_min={x_min}, x_max={x_max}]; got values in "
                f"[{values.min()}, {values.max()}]. Pass the data's range as "
                "x_min/x_max."
            )
    u = jnp.clip((x - x_min) / (x_max - x_min), 0.0, 1.0)
    if larger_first:
        u = 1.0 - u
    t = t_early + u * (t_late - t_early)
    if silent_below is not None:
        t = jnp.where(x < silent_below, jnp.inf, t)
    return t[..., None]


def decode_latency(
    times: Float[Array, "... channels 1"],
    t_early: float,
    t_late: float,
    *,
    x_min: float = 0.0,
    x_max: float = 1.0,
    larger_first: bool = False,
) -> Float[Array, "... channels"]:
    """The inverse of [`latency`][].

    **Arguments:**

    - `times`: ``Float[Array, "... channels 1"]`` spike times, as [`latency`][]
      returns them.
    - `t_early`, `t_late`, `x_min`, `x_max`, `larger_first`: the settings the times
      were encoded with.

    **Returns:** ``Float[Array, "... channels"]`` values, ``NaN`` where a channel is
    silent (``+inf``).
    """
    _check_window(t_early, t_late)
    t = jnp.asarray(times)[..., 0]
    u = (t - t_early) / (t_late - t_early)
    if larger_first:
        u = 1.0 - u
    return jnp.where(jnp.isfinite(t), x_min + u * (x_max - x_min), jnp.nan)


def poisson(
    key,
    rates: Float[Array, "... channels"],
    t_max: float,
    max_spikes: int | None = None,
) -> Float[Array, "... channels K"]:
    r"""Homogeneous Poisson spike trains on $[0, t_\max)$, one per channel.

    Inter-spike intervals are exponential with mean ``1 / rate`` (rates in spikes per
    time unit, e.g. per ms: 20 Hz = 0.02 / ms).

    **Arguments:**

    - `key`: a ``jax.random.key``.
    - `rates`: non-negative rates, last axis = channels.
    - `t_max`: end of the window.
    - `max_spikes`: the padded length ``K``. Default: large enough that a train
      longer than ``K`` has probability below 1e-9 per channel (needs concrete
      rates). A train that does not fit is an error (outside ``jit``), never
      silently cut.

    **Returns:** ``Float[Array, "... channels K"]`` sorted spike times, ``+inf``
    padding.

    **Raises:** ``ValueError`` for negative/NaN rates, or if some train has more than
    ``max_spikes`` spikes.
    """
    if not (np.isfinite(t_max) and t_max > 0):
        raise ValueError(f"`t_max` must be positive and finite; got {t_max}.")
    rates = jnp.asarray(rates, dtype=float)
    concrete = not isinstance(rates, jax.core.Tracer)
    if concrete:
        values = np.asarray(rates)
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError("`rates` must be finite and non-negative.")
    if max_spikes is None:
        if not concrete:
            raise ValueError("under jit, pass `max_spikes` explicitly.")
        mean = float(np.max(values, initial=0.0)) * t_max
        # Poisson tail bound: mean + 6 sd + 10 keeps P(count > K) far below 1e-9.
        max_spikes = int(np.ceil(mean + 6.0 * np.sqrt(mean) + 10))
    if not isinstance(max_spikes, int) or max_spikes < 1:
        raise ValueError(f"`max_spikes` must be a positive int; got {max_spikes!r}.")
    gaps = jax.random.exponential(key, (*rates.shape, max_spikes + 1), dtype=rates.dtype)
    safe = jnp.where(rates > 0, rates, 1.0)[..., None]
    times = jnp.cumsum(gaps / safe, axis=-1)
    times = jnp.where((rates > 0)[..., None] & (times < t_max), times, jnp.inf)
    if concrete and np.isfinite(np.asarray(times[..., -1])).any():
        raise ValueError(
            f"some Poisson train has more than max_spikes={max_spikes} spikes in "
            f"[0, {t_max}); raise `max_spikes` (or leave it None)."
        )
    return times[..., :max_spikes]
