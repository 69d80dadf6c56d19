"""The event loop of one population (forward pass).

Input spike times are known in advance (feedforward), so they are sorted once; the
loop then alternates between integrating to the next event and applying it:

    repeat (at most max_events times, stop at t_max):
        if a neuron is at/above threshold now        -> it spikes now (delta synapses)
        else integrate to the next input time, stopping at the first crossing
             crossing found                          -> record spike(s), reset
             reached the input time                  -> apply every input at that time
             reached t_max                           -> done

Two clocks, chosen by the segment solver:

- population clock (adaptive diffrax solvers): all neurons advance together and every
  spike ends the segment for everyone;
- one clock per neuron (exact flow map): neurons of a feedforward layer do not interact,
  so between two input times each neuron runs to its own crossings independently and
  the loop only synchronises at input times. In first-spike mode a layer then needs
  about one iteration per distinct input time, however many neurons fire.

No Python runs per event. The loop knows the neuron contract and the segment solver,
nothing of losses or training.
"""

from typing import NamedTuple, Optional

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
    waiting: Array
    done: Array
    failed: Array
    traj: Optional[Array]


def default_max_events(n_inputs: int, n: int, max_spikes: int) -> int:
    """Enough loop iterations for every input, every kept spike and the last segment."""
    return n_inputs + n * max_spikes + 1


@eqx.filter_jit
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

    Compiled once per model structure, shapes and static settings (``filter_jit``);
    new input times, weights or parameter values reuse the compiled loop.

    **Returns:** the population's [`eventsnn.LayerSpikes`][], and if ``ts`` is given,
    the state at those times (``NaN`` only where the loop stopped early, which the
    result then reports).
    """
    n_in, k_in = in_times.shape
    n = weights.shape[1]
    dtype = weights.dtype
    flat = in_times.reshape(-1).astype(dtype)
    flat = jnp.where(flat < t_max, flat, jnp.inf)
    order = jnp.argsort(flat, stable=True)
    inputs = _Inputs(flat[order], jnp.repeat(jnp.arange(n_in), k_in)[order], n_in)
    t_max = jnp.asarray(t_max, dtype)
    ctx = segments.prepare(neuron, current, n, dtype)
    step = _own_clock_step if segments.clock == "neuron" else _population_step
    first_spike_mode = max_spikes == 1

    def body(c: _Carry) -> _Carry:
        return step(c, neuron, weights, inputs, current, segments, ctx, t_max,
                    max_spikes, ts)

    def cond(c: _Carry):
        return (~c.done) & (~c.failed) & (c.k < max_events)

    y0 = neuron.init_state(n).astype(dtype)
    clock_shape = (n,) if segments.clock == "neuron" else ()
    traj0 = None
    if ts is not None:
        traj0 = jnp.full((ts.shape[0], n, y0.shape[1]), jnp.nan, dtype)
    init = _Carry(
        k=jnp.zeros((), jnp.int32),
        t=jnp.zeros(clock_shape, dtype),
        y=y0,
        ptr=jnp.zeros((), jnp.int32),
        times=jnp.full((n, max_spikes), jnp.inf, dtype),
        counts=jnp.zeros((n,), jnp.int32),
        waiting=jnp.zeros((n,), bool),
        done=jnp.zeros((), bool),
        failed=jnp.zeros((), bool),
        traj=traj0,
    )
    final = jax.lax.while_loop(cond, body, init)
    if first_spike_mode and ts is None:
        # Stopping once every neuron has fired is a success, not an overflow.
        finished = final.done | jnp.all(final.counts >= 1)
    else:
        finished = final.done
    result = RESULTS.where(
        final.failed,
        RESULTS.solver_failed,
        RESULTS.where(
            ~finished,
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


class _Inputs(NamedTuple):
    times: Float[Array, " M"]  # sorted, +inf padded
    channels: Array
    n_in: int

    def next_time(self, ptr):
        m = self.times.shape[0]
        return jnp.where(ptr < m, self.times[jnp.minimum(ptr, m - 1)], jnp.inf)

    def arriving(self, t, weights, dtype):
        """Summed weights per neuron of every input spike at exactly ``t``, and how
        many spikes that is."""
        mask = self.times == t
        per_channel = jnp.zeros((self.n_in,), dtype).at[self.channels].add(
            mask.astype(dtype)
        )
        return per_channel @ weights, jnp.sum(mask, dtype=jnp.int32)


def _record(c: _Carry, spiked, t_spike, max_spikes):
    """Store the spike times of the neurons in ``spiked``; return (times, counts)."""
    rows = jnp.arange(c.counts.shape[0])
    slot = jnp.minimum(c.counts, max_spikes - 1)
    keep = spiked & (c.counts < max_spikes)
    old = c.times[rows, slot]
    times = c.times.at[rows, slot].set(jnp.where(keep, t_spike, old))
    return times, c.counts + spiked.astype(c.counts.dtype)


def _fill(traj, ts, values, t_from, t_to, closed):
    """Write ``values`` into the trajectory for queries in [t_from, t_to) (or
    [t_from, t_to] where ``closed``); times may be per neuron."""
    t_from = jnp.broadcast_to(t_from, traj.shape[1:2])
    t_to = jnp.broadcast_to(t_to, traj.shape[1:2])
    q = ts[:, None]
    inside = (q >= t_from) & ((q < t_to) | (closed & (q <= t_to)))
    return jnp.where(inside[:, :, None], values, traj)


def _population_step(c, neuron, weights, inputs, current, segments, ctx, t_max,
                     max_spikes, ts):
    """One event with a shared clock: a spike of any neuron, or an input time."""
    first_spike_mode = max_spikes == 1
    n = c.counts.shape[0]
    active = c.counts < 1 if first_spike_mode else jnp.ones((n,), bool)
    g = neuron.spike_condition(c.t, c.y, current(c.t))
    above = active & (g >= 0)
    now = jnp.any(above)
    t_next = inputs.next_time(c.ptr)
    t_end = jnp.where(now, c.t, jnp.minimum(t_next, t_max))
    seg = segments.advance(neuron, current, ctx, c.t, t_end, c.y, active)
    is_spike = now | seg.hit
    spiked = jnp.where(now, above, seg.spiked)
    t_new = jnp.where(now, c.t, seg.t)
    y_new = jnp.where(now, c.y, seg.y)
    times, counts = _record(c, spiked, t_new, max_spikes)
    is_input = ~is_spike & (t_next < t_max)
    weighted, arrived = inputs.arriving(t_next, weights, y_new.dtype)
    y_input = neuron.input_spikes(y_new, weighted)
    ptr = c.ptr + jnp.where(is_input, arrived, 0)
    is_end = ~is_spike & ~is_input
    y_next = jnp.where(
        is_spike, neuron.reset(y_new, spiked), jnp.where(is_input, y_input, y_new)
    )
    done = is_end
    if first_spike_mode and ts is None:
        done = done | jnp.all(counts >= 1)
    traj = c.traj
    if ts is not None:
        values = segments.evaluate(neuron, current, ctx, c.t, t_new, c.y, ts)
        traj = _fill(traj, ts, values, c.t, t_new, is_end)
    return _Carry(c.k + 1, t_new, y_next, ptr, times, counts, c.waiting, done,
                  c.failed | seg.failed, traj)


def _own_clock_step(c, neuron, weights, inputs, current, segments, ctx, t_max,
                    max_spikes, ts):
    """One round with a clock per neuron.

    If every neuron has reached the next input time, the inputs at that time are
    applied first. Then each neuron that is not waiting advances on its own: it fires
    at once if it is at/above threshold, else runs to its first crossing (fire, reset,
    stay in this interval) or to the input time (wait there).
    """
    first_spike_mode = max_spikes == 1
    n = c.counts.shape[0]
    t_next = inputs.next_time(c.ptr)
    deliver = jnp.all(c.waiting) & (t_next < t_max)
    weighted, arrived = inputs.arriving(t_next, weights, c.y.dtype)
    y = jnp.where(deliver, neuron.input_spikes(c.y, weighted), c.y)
    ptr = c.ptr + jnp.where(deliver, arrived, 0)
    waiting = c.waiting & ~deliver
    t_end = jnp.minimum(inputs.next_time(ptr), t_max)

    active = c.counts < 1 if first_spike_mode else jnp.ones((n,), bool)
    g = neuron.spike_condition(c.t, y, current(c.t))
    above = active & (g >= 0) & ~waiting
    seg = segments.advance(neuron, current, ctx, c.t, t_end, y, active & ~waiting)
    hit = seg.hit & ~waiting & ~above
    spiked = above | hit
    t_new = jnp.where(above | waiting, c.t, seg.t)
    y_new = jnp.where((above | waiting)[:, None], y, seg.y)
    times, counts = _record(c, spiked, t_new, max_spikes)
    y_next = neuron.reset(y_new, spiked)
    waiting = waiting | ~spiked
    done = jnp.all(waiting) & (t_end >= t_max)
    if first_spike_mode and ts is None:
        done = done | jnp.all(counts >= 1)
    traj = c.traj
    if ts is not None:
        values = segments.evaluate(neuron, current, ctx, c.t, t_new, y, ts)
        traj = _fill(traj, ts, values, c.t, t_new, t_new >= t_max)
    return _Carry(c.k + 1, t_new, y_next, ptr, times, counts, waiting, done,
                  c.failed | seg.failed, traj)
