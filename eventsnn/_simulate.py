"""Single-population simulation driven by input spikes and/or an external current."""

import jax.numpy as jnp

from . import _validate
from ._current import as_current
from ._custom_types import Array, Float
from ._layer import default_max_events, run_layer
from ._neuron import AbstractNeuron
from ._solve import segment_solver_for
from ._spikes import LayerSpikes, flag_invalid


def simulate(
    neuron: AbstractNeuron,
    n: int,
    *,
    t_max: float,
    current=None,
    input_times=None,
    weights=None,
    ts=None,
    max_spikes: int = 64,
    max_events: int | None = None,
    solver=None,
) -> tuple[LayerSpikes, Float[Array, "n T state"] | None]:
    """Simulate ``n`` neurons of one model, for single-population studies.

    **Arguments:**

    - `neuron`: the model.
    - `n`: number of neurons.
    - `t_max`: duration (ms).
    - `current`: external current: ``None``, a scalar or ``(n,)`` array (constant),
      [`eventsnn.step_current`][] (square steps), or any function ``t -> (n,)``.
    - `input_times`: optional ``(n_in, K)`` input spike times (``+inf`` padding).
    - `weights`: ``(n_in, n)`` weights of those inputs (required with `input_times`).
    - `ts`: optional times at which to return the state trajectory.
    - `max_spikes`: spike times kept per neuron (default 64).
    - `max_events`: event-loop bound (default: enough for every input spike and
      ``max_spikes`` spikes per neuron).
    - `solver`: as for [`eventsnn.FeedForward`][].

    **Returns:** ``(spikes, trajectory)``: a [`eventsnn.LayerSpikes`][] and, if `ts`
    was given, ``Float[Array, "n len(ts) state"]`` (else ``None``). Input times that
    are NaN or negative raise ``ValueError``; inside ``jit``, where they cannot, the
    result is ``RESULTS.invalid_input`` and the trajectory ``NaN``.

    ```python
    spikes, v = es.simulate(es.LIF(), 1, t_max=100.0, current=1.5,
                            ts=jnp.linspace(0, 100, 1000))
    ```
    """
    n = _validate.positive_int(n, "n")
    t_max = _validate.positive_number(t_max, "t_max")
    max_spikes = _validate.positive_int(max_spikes, "max_spikes")
    neuron.check_state()
    dtype = jnp.zeros(()).dtype
    invalid = None
    if input_times is None:
        if weights is not None:
            raise ValueError("`weights` was given without `input_times`.")
        input_times = jnp.full((1, 1), jnp.inf, dtype)
        weights = jnp.zeros((1, n), dtype)
    else:
        if weights is None:
            raise ValueError("`input_times` needs `weights` of shape (n_in, n).")
        weights = jnp.asarray(weights, dtype)
        if weights.ndim != 2 or weights.shape[1] != n:
            raise ValueError(
                f"`weights` must have shape (n_in, n={n}); got {weights.shape}."
            )
        input_times, invalid = _validate.spike_times(input_times, weights.shape[0])
        input_times = input_times.astype(dtype)
    drive = as_current(current, n, dtype)
    if ts is not None:
        ts = _validate.query_times(ts, t_max).astype(dtype)
    segments = segment_solver_for(neuron, solver, drive.is_constant)
    if max_events is None:
        max_events = default_max_events(input_times.size, n, max_spikes, segments.clock)
    spikes, trajectory, _ = run_layer(
        neuron, weights, input_times, drive, segments,
        t_max=t_max, max_spikes=max_spikes, max_events=max_events, ts=ts,
    )
    trajectory = None if trajectory is None else _validate.nan_if(invalid, trajectory)
    return flag_invalid(spikes, invalid), trajectory
