"""Read-outs of a layer that does not spike: the maximum of its membrane over time.

For a linear model between two input spikes the membrane has at most one extremum,
at a closed-form time (see ``AffineFlow.peak_time``), so the maximum over the trial is
the largest of: the value at each input time, at ``t_max``, and at each interior
peak. Its derivative needs no implicit-function step: at an interior maximum
dv/dt = 0, so moving the peak time does not change the value to first order (the
envelope theorem) and the derivative of v(t_peak) at fixed t_peak is exact.
"""

import jax
import jax.numpy as jnp

from ._current import as_current
from ._custom_types import Array, Float
from ._layer import Inputs
from ._neuron import AbstractNeuron
from ._solve import ExactSegments


def max_membrane(
    neuron: AbstractNeuron,
    weights: Float[Array, "n_in n"],
    in_times: Float[Array, "n_in K"],
    t_max: float,
) -> Float[Array, " n"]:
    """Maximum over ``[0, t_max]`` of state column 0 of a population that receives
    ``in_times`` through ``weights`` and never spikes (threshold and reset ignored).

    Exact-flow models only (linear, ≤ 2 state variables); others raise ``ValueError``.
    """
    n = weights.shape[1]
    dtype = weights.dtype
    flow, _, _ = ExactSegments().prepare(neuron, as_current(None, n, dtype), n, dtype)
    inputs = Inputs.sort(in_times.astype(dtype), t_max)
    finite = jnp.isfinite(inputs.times)
    arrival = jnp.where(finite, inputs.times, t_max)
    membrane = jnp.zeros((n, flow.size), dtype).at[:, 0].set(1.0)

    def segment(carry, k):
        t, y, best = carry
        t_end = arrival[k] if k is not None else jnp.asarray(t_max, dtype)
        length = jnp.where(t_end >= t, t_end - t, 0.0)
        peak = flow.peak_time(membrane, y)
        rising = flow.velocity(y)[:, 0] > 0
        interior = rising & (peak < length)
        v_peak = flow(jnp.where(interior, peak, 0.0), y)[:, 0]
        y_end = flow(length, y)
        best = jnp.maximum(best, jnp.where(interior, v_peak, -jnp.inf))
        best = jnp.maximum(best, y_end[:, 0])
        return t_end, y_end, best

    def step(carry, k):
        t_end, y_end, best = segment(carry, k)
        arrived = finite[k]
        y_next = jnp.where(
            arrived, neuron.input_spikes(y_end, weights[inputs.channels[k]]), y_end
        )
        best = jnp.maximum(best, jnp.where(arrived, y_next[:, 0], -jnp.inf))
        return (jnp.where(arrived, t_end, carry[0]), jnp.where(arrived, y_next, carry[1]),
                best), None

    y0 = neuron.init_state(n).astype(dtype)
    init = (jnp.zeros((), dtype), y0, y0[:, 0])
    carry, _ = jax.lax.scan(step, init, jnp.arange(inputs.times.shape[0]))
    _, _, best = segment(carry, None)
    return best
