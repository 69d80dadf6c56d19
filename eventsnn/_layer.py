"""The event loop of one population (forward pass).

Input spike times are known in advance (feedforward), so they are sorted once; the
loop then alternates between integrating to the next event and applying it:

    repeat (at most max_events times, stop at t_max):
        if a neuron is at/above threshold now        -> it spikes now (delta synapses)
        else integrate to the next input time, stopping at the first crossing
             crossing found                          -> record spike(s), reset
             reached the input time                  -> apply every input at that time
             reached t_max                           -> done

All neurons of the population are advanced together; no Python runs per event. The
loop knows the neuron contract and the segment solver, nothing of losses or training.
"""

from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from ._current import AbstractCurrent
from ._custom_types import Array, Float
from ._neuron import AbstractNeuron
from ._solve import AbstractSegmentSolver
from ._spikes import RESULTS, LayerSpikes


class _Carry(eqx.Module):
    k: Array
    t: Array
    y: Array
    ptr: Array
    times: Array
    counts: Array
    done: Array
    failed: Array
    traj: Optional[Array]


def default_max_events(n_inputs: int, n: int, max_spikes: int) -> int:
    """Enough loop iterations for every input, every kept spike and the last segment."""
    return n_inputs + n * max_spikes + 1


def run_layer(
    neuron: AbstractNeuron,
    weights: Float[Array, "n_in n"],
    in_times: Float[Array, "n_in K"],
    current: AbstractCurrent,
    segments: AbstractSegmentSolver,
    *,
    t_max: float,
    max_spikes: int,
    max_events: int,
    ts: Optional[Float[Array, " T"]] = None,
) -> tuple[LayerSpikes, Optional[Float[Array, "n T state"]]]:
    """Simulate one population driven by input spikes and an external current.

    **Returns:** the population's [`eventsnn.LayerSpikes`][], and if ``ts`` is given,
    the state at those times (``NaN`` only where the loop stopped early, which the
    result then reports).
    """
    n_in, k_in = in_times.shape
    n = weights.shape[1]
    dtype = weights.dtype
    big_m = n_in * k_in
    flat = in_times.reshape(-1).astype(dtype)
    flat = jnp.where(flat < t_max, flat, jnp.inf)
    order = jnp.argsort(flat, stable=True)
    t_in = flat[order]
    ch_in = jnp.repeat(jnp.arange(n_in), k_in)[order]
    t_max = jnp.asarray(t_max, dtype)
    first_spike_mode = max_spikes == 1
    ctx = segments.prepare(neuron, current, n, dtype)
    rows = jnp.arange(n)

    def body(c: _Carry) -> _Carry:
        active = c.counts < 1 if first_spike_mode else jnp.ones((n,), bool)
        g = neuron.spike_condition(c.t, c.y, current(c.t))
        above = active & (g >= 0)
        now = jnp.any(above)
        t_next = jnp.where(c.ptr < big_m, t_in[jnp.minimum(c.ptr, big_m - 1)], jnp.inf)
        t_end = jnp.where(now, c.t, jnp.minimum(t_next, t_max))
        seg = segments.advance(neuron, current, ctx, c.t, t_end, c.y, active)
        is_spike = now | seg.hit
        spiked = jnp.where(now, above, seg.spiked)
        t_new = jnp.where(now, c.t, seg.t)
        y_new = jnp.where(now, c.y, seg.y)
        # --- a spike: record it and reset
        slot = jnp.minimum(c.counts, max_spikes - 1)
        keep = spiked & (c.counts < max_spikes)
        times = c.times.at[rows, slot].set(jnp.where(keep, t_new, c.times[rows, slot]))
        counts = c.counts + spiked.astype(c.counts.dtype)
        y_spiked = neuron.reset(y_new, spiked)
        # --- an input time: every input spike at exactly this time, summed per neuron
        is_input = ~is_spike & (t_next < t_max)
        arriving = is_input & (t_in == t_next)
        per_channel = jnp.zeros((n_in,), dtype).at[ch_in].add(arriving.astype(dtype))
        y_input = neuron.input_spikes(y_new, per_channel @ weights)
        ptr = c.ptr + jnp.sum(arriving, dtype=c.ptr.dtype)
        is_end = ~is_spike & ~is_input
        y_next = jnp.where(is_spike, y_spiked, jnp.where(is_input, y_input, y_new))
        done = is_end
        if first_spike_mode and ts is None:
            done = done | jnp.all(counts >= 1)
        traj = c.traj
        if ts is not None:
            # State on [t, t_new) (closed at t_max): right-continuous trajectory.
            inside = (ts >= c.t) & ((ts < t_new) | (is_end & (ts <= t_new)))
            values = segments.evaluate(neuron, current, ctx, c.t, t_new, c.y, ts)
            traj = jnp.where(inside[:, None, None], values, traj)
        return _Carry(
            c.k + 1, t_new, y_next, ptr, times, counts, done,
            c.failed | seg.failed, traj,
        )

    def cond(c: _Carry):
        return (~c.done) & (~c.failed) & (c.k < max_events)

    y0 = neuron.init_state(n).astype(dtype)
    traj0 = None
    if ts is not None:
        traj0 = jnp.full((ts.shape[0], n, y0.shape[1]), jnp.nan, dtype)
    init = _Carry(
        k=jnp.zeros((), jnp.int32),
        t=jnp.zeros((), dtype),
        y=y0,
        ptr=jnp.zeros((), jnp.int32),
        times=jnp.full((n, max_spikes), jnp.inf, dtype),
        counts=jnp.zeros((n,), jnp.int32),
        done=jnp.zeros((), bool),
        failed=jnp.zeros((), bool),
        traj=traj0,
    )
    final = jax.lax.while_loop(cond, body, init)
    result = RESULTS.where(
        final.failed,
        RESULTS.solver_failed,
        RESULTS.where(
            ~final.done,
            RESULTS.max_events_reached,
            RESULTS.where(
                jnp.any(final.counts > max_spikes),
                RESULTS.max_spikes_reached,
                RESULTS.successful,
            ),
        ),
    )
    spikes = LayerSpikes(final.times, final.counts, final.k, result)
    traj = None if final.traj is None else jnp.transpose(final.traj, (1, 0, 2))
    return spikes, traj
