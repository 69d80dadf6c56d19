"""The event loop of one population (forward pass).

Input spike times are known in advance (feedforward), so they are sorted once; the
loop then alternates between integrating to the next event and applying it:

    repeat (at most max_events times, stop at t_max):
        if a neuron is at/above threshold now        -> it spikes now (delta synapses)
        else integrate to the next input time, stopping at the first crossing
             crossing found                          -> record spike(s), reset
             reached the input time                  -> apply that input spike
             reached t_max                           -> done

Input spikes are applied one per iteration, in (time, channel) order; a neuron is
tested for an immediate spike only once every input at that instant has arrived, so
simultaneous inputs act as their sum, whatever their order.

Two clocks, chosen by the segment solver:

- population clock (adaptive diffrax solvers): all neurons advance together and every
  spike ends the segment for everyone;
- one clock per neuron (exact flow map): neurons of a feedforward layer do not interact,
  so between two input times each neuron runs to its own crossings independently and
  the loop only synchronises at input times. In first-spike mode a layer then needs
  about one iteration per input spike, however many neurons fire.

The loop can record an [`eventsnn._layer.EventLog`][] of what happened at each
iteration, from which `_adjoint.py` replays the events differentiably. No Python runs
per event. The loop knows the neuron contract and the segment solver, nothing of losses
or training.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ._current import AbstractCurrent
from ._custom_types import Array, Bool, Float, Int
from ._neuron import AbstractNeuron
from ._solve import AbstractSegmentSolver, event_function, move_clock
from ._spikes import RESULTS, LayerSpikes

# What a neuron did in one iteration (recorded for the gradient replay).
IDLE, SPIKE_NOW, SPIKE_CROSSING, TO_END = 0, 1, 2, 3


class EventLog(eqx.Module):
    """What each loop iteration did; enough to replay the events differentiably.

    - `deliver`: an input spike was applied (own clock: at the start of the
      iteration; population clock: at its end).
    - `ptr`: index (in sorted order) of that input spike.
    - `end_ptr`: own clock only: index of the next input, whose time ends the segment.
    - `kind`: per neuron, one of IDLE / SPIKE_NOW / SPIKE_CROSSING / TO_END.
    - `t_new`: per neuron, the time reached (a spike time for spiking neurons).
    - `hit`: population clock only: the segment ended at a spike crossing.
    - `brk`: population clock only: the segment ended at a kink of the dynamics
      declared by the model's `discontinuities` (no other action there).
    - `lead`: population clock only: the neuron whose crossing (or kink) ended the
      segment; the replay uses it instead of recomputing a min/argmax, so rounding
      cannot make the replay take a different branch than the forward pass.
    """

    deliver: Bool[Array, " E"]
    ptr: Int[Array, " E"]
    end_ptr: Int[Array, " E"]
    kind: Int[Array, "E n"]
    t_new: Float[Array, "E n"]
    hit: Bool[Array, " E"]
    brk: Bool[Array, " E"]
    lead: Int[Array, " E"]


class SpikeOrigins(eqx.Module):
    """Where each recorded spike of an own-clock layer came from (for the
    superposition replay in `_superpose.py`).

    - `segment`: ``Int[Array, "n max_spikes"]``, the number of input spikes delivered
      before it (the inter-input segment it fell in).
    - `now`: ``Bool[Array, "n max_spikes"]``, whether the neuron fired at once (at or
      above threshold as the segment began or right after a reset) rather than by a
      threshold crossing.
    - `order`: ``Int[Array, " M"]``, the order in which the input spikes were sorted
      (the replay reuses it instead of sorting again).
    """

    segment: Int[Array, "n max_spikes"]
    now: Bool[Array, "n max_spikes"]
    order: Int[Array, " M"]


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
    traj: Array | None
    log: EventLog | None
    origins: SpikeOrigins | None


class Inputs(NamedTuple):
    """Input spikes sorted by (time, channel); ``+inf`` padding at the end."""

    times: Float[Array, " M"]
    channels: Int[Array, " M"]

    @classmethod
    def sort(cls, in_times: Float[Array, "n_in K"], t_max, order=None) -> "Inputs":
        """Sort the flattened ``in_times`` (``order``: a sorting permutation found
        before, e.g. by the forward pass for its replay; sorting is costly)."""
        n_in, k_in = in_times.shape
        flat = in_times.reshape(-1)
        flat = jnp.where(flat < t_max, flat, jnp.inf)  # (NaN too)
        if order is None:
            order = sort_order(in_times, t_max)
        return cls(flat[order], jnp.repeat(jnp.arange(n_in), k_in)[order])

    def time(self, ptr):
        """Time of input ``ptr`` (``+inf`` past the end)."""
        m = self.times.shape[0]
        return jnp.where(ptr < m, self.times[jnp.minimum(ptr, m - 1)], jnp.inf)

    def channel(self, ptr):
        return self.channels[jnp.minimum(ptr, self.channels.shape[0] - 1)]


def sort_order(in_times: Float[Array, "n_in K"], t_max) -> Int[Array, " M"]:
    """The permutation that sorts the flattened input times by (time, channel),
    inputs at or after ``t_max`` last."""
    flat = in_times.reshape(-1)
    flat = jax.lax.stop_gradient(jnp.where(flat < t_max, flat, jnp.inf))
    return _stable_order(flat)


def input_intervals(in_times: Float[Array, "n_in K"], t_max, dtype, order=None):
    """The sorted inputs and the intervals between them, for the first-spike paths.

    **Returns:** ``(inputs, real, times, starts)``: the sorted [`Inputs`][], which of
    them are real (not padding), their times with padding moved to ``t_max`` (so no
    ``+inf`` enters the arithmetic: padding becomes zero-length intervals at
    ``t_max``), and ``starts[k]`` (``k = 0 … M``), the start of the interval that
    input ``k - 1`` opens (``0`` for ``k = 0``). ``order``: as for
    [`Inputs.sort`][].
    """
    inputs = Inputs.sort(in_times.astype(dtype), t_max, order)
    real = jnp.isfinite(inputs.times)
    times = jnp.where(real, inputs.times, t_max)
    starts = jnp.concatenate([jnp.zeros((1,), dtype), times])
    return inputs, real, times, starts


def _stable_order(x: Float[Array, " M"]) -> Int[Array, " M"]:
    """``argsort(x, stable=True)`` for a NaN-free ``x``.

    For short arrays by counting, for each entry, the entries that go before it
    (O(M²) comparisons, no sort): XLA:CPU's sort costs about 100 ns per element, so
    at 120 inputs and batch 256 this is 4-5x faster; past ~150 the quadratic work loses.
    """
    m = x.shape[0]
    if m > 128:
        return jnp.argsort(x, stable=True)
    i = jnp.arange(m)
    goes_before = (x[None, :] < x[:, None]) | (
        (x[None, :] == x[:, None]) & (i[None, :] < i[:, None]))
    rank = jnp.sum(goes_before, axis=1)
    return jnp.zeros(m, i.dtype).at[rank].set(i, unique_indices=True)


def default_max_events(n_inputs: int, n: int, max_spikes: int, clock: str) -> int:
    """Loop iterations that suffice unless a neuron fires more than ``max_spikes``.

    Population clock: one per input spike, one per output spike, one to reach
    ``t_max``. Own clocks: one per input and one more per round of spikes between two
    inputs; the number of rounds is bounded both by the spikes and by the intervals.
    """
    if clock == "neuron":
        return n_inputs + 1 + max_spikes * min(n_inputs + 1, n)
    # A model with kinks (refractory release) stops once more after each spike.
    return n_inputs + 2 * n * max_spikes + 1


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
    ts: Float[Array, " T"] | None = None,
    record: bool = False,
    origins: bool = False,
    differentiable: bool = False,
) -> tuple[LayerSpikes, Float[Array, "n T state"] | None,
           EventLog | SpikeOrigins | None]:
    """Simulate one population driven by input spikes and an external current.

    Compiled once per model structure, shapes and static settings (``filter_jit``);
    new input times, weights or parameter values reuse the compiled loop.

    **Arguments:** as named; ``record`` also returns the [`EventLog`][], ``origins``
    (own clock only) the [`SpikeOrigins`][] of the recorded spikes; with
    ``differentiable`` the loop is a ``lax.scan`` of exactly ``max_events`` iterations
    (reverse-mode differentiable, no early exit) instead of a ``while_loop``.

    **Returns:** the population's [`eventsnn.LayerSpikes`][]; if ``ts`` is given, the
    state at those times (``NaN`` only where the loop stopped early, which the result
    then reports); and the event log if ``record`` (else the spikes' origins if
    ``origins``, else ``None``).
    """
    n = weights.shape[1]
    dtype = weights.dtype
    order = sort_order(in_times.astype(dtype), t_max)
    inputs = Inputs.sort(in_times.astype(dtype), t_max, order)
    t_max = jnp.asarray(t_max, dtype)
    ctx = segments.prepare(neuron, current, n, dtype)
    own_clock = segments.clock == "neuron"
    step = _own_clock_step if own_clock else _population_step
    early_stop = max_spikes == 1 and ts is None
    if origins and not own_clock:
        raise ValueError("Spike origins are recorded by own-clock layers only.")

    def body(c: _Carry) -> _Carry:
        new = step(c, neuron, weights, inputs, current, segments, ctx, t_max,
                   max_spikes, ts, early_stop)
        if c.log is not None:
            new = eqx.tree_at(lambda x: x.log, new, _write_log(c.log, c.k, new.log))
        return new

    def cond(c: _Carry):
        return (~c.done) & (~c.failed) & (c.k < max_events)

    y0 = neuron.init_state(n).astype(dtype)
    traj0 = None
    if ts is not None:
        traj0 = jnp.full((ts.shape[0], n, y0.shape[1]), jnp.nan, dtype)
    log0 = None
    if record:
        log0 = EventLog(
            deliver=jnp.zeros((max_events,), bool),
            ptr=jnp.zeros((max_events,), jnp.int32),
            end_ptr=jnp.zeros((max_events,), jnp.int32),
            kind=jnp.zeros((max_events, n), jnp.int32),
            t_new=jnp.zeros((max_events, n), dtype),
            hit=jnp.zeros((max_events,), bool),
            brk=jnp.zeros((max_events,), bool),
            lead=jnp.zeros((max_events,), jnp.int32),
        )
    origins0 = None
    if origins:
        # (the sort order is attached after the loop: it does not change)
        origins0 = SpikeOrigins(jnp.zeros((n, max_spikes), jnp.int32),
                                jnp.zeros((n, max_spikes), bool), None)
    init = _Carry(
        k=jnp.zeros((), jnp.int32),
        t=jnp.zeros((n,) if own_clock else (), dtype),
        y=y0,
        ptr=jnp.zeros((), jnp.int32),
        times=jnp.full((n, max_spikes), jnp.inf, dtype),
        counts=jnp.zeros((n,), jnp.int32),
        # An input at t = 0 is applied before anyone may fire (simultaneous inputs
        # act as their sum), as with the population clock's `pending`.
        waiting=jnp.full((n,), inputs.time(0) <= 0),
        done=jnp.zeros((), bool),
        failed=jnp.zeros((), bool),
        traj=traj0,
        log=log0,
        origins=origins0,
    )
    if differentiable:
        def scan_body(c, _):
            new = body(c)
            keep = cond(c)
            return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, c), None

        final, _ = jax.lax.scan(scan_body, init, None, length=max_events)
    else:
        final = jax.lax.while_loop(cond, body, init)

    if early_stop:
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
    if record:
        return spikes, traj, final.log
    if origins:
        return spikes, traj, SpikeOrigins(final.origins.segment, final.origins.now,
                                          order)
    return spikes, traj, None


def _write_log(log: EventLog, k, entry: EventLog) -> EventLog:
    """Store the single-iteration ``entry`` (no leading axis) at row ``k``."""
    return jax.tree.map(lambda full, row: full.at[k].set(row), log, entry)


def _record(counts, times, spiked, t_spike, max_spikes):
    """Store the spike times of the neurons in ``spiked``; return (times, counts)."""
    return _store(counts, times, spiked, t_spike, max_spikes), counts + spiked.astype(
        counts.dtype)


def _store(counts, table, spiked, value, max_spikes):
    """``table`` (n, max_spikes) with ``value`` in the next free slot of each neuron in
    ``spiked`` (``counts``: the slots used so far)."""
    rows = jnp.arange(counts.shape[0])
    slot = jnp.minimum(counts, max_spikes - 1)
    keep = spiked & (counts < max_spikes)
    return table.at[rows, slot].set(jnp.where(keep, value, table[rows, slot]))


def _fill(traj, ts, values, t_from, t_to, closed):
    """Write ``values`` into the trajectory for queries in [t_from, t_to) (or
    [t_from, t_to] where ``closed``); times may be per neuron."""
    t_from = jnp.broadcast_to(t_from, traj.shape[1:2])
    t_to = jnp.broadcast_to(t_to, traj.shape[1:2])
    q = ts[:, None]
    inside = (q >= t_from) & ((q < t_to) | (closed & (q <= t_to)))
    return jnp.where(inside[:, :, None], values, traj)


def _active(counts, max_spikes):
    """Neurons that may still fire, and evolve: in first-spike mode a neuron fires
    once and is then switched off (its state held at its post-reset value)."""
    if max_spikes == 1:
        return counts < 1
    return jnp.ones(counts.shape, bool)


def _population_step(c, neuron, weights, inputs, current, segments, ctx, t_max,
                     max_spikes, ts, early_stop):
    """One event with a shared clock: a spike of any neuron, or an input spike."""
    n = c.counts.shape[0]
    active = _active(c.counts, max_spikes)
    t_next = inputs.time(c.ptr)
    pending = t_next == c.t  # more input spikes at this very instant: apply them first
    g = neuron.spike_condition(c.t, c.y, current(c.t))
    above = active & (g >= 0) & ~pending
    now = jnp.any(above)
    t_stop = jnp.minimum(t_next, t_max)
    kinks = neuron.discontinuities(c.t, c.y)
    if kinks is None:
        kinks = jnp.full((n,), jnp.inf, c.t.dtype)
    t_break = jnp.min(kinks)
    breaks = t_break < t_stop  # a kink of the dynamics comes first: stop there
    t_end = jnp.where(now, c.t, jnp.where(breaks, t_break, t_stop))
    seg = segments.advance(neuron, current, ctx, c.t, t_end, c.y, active)
    hit = seg.hit & ~now
    spiked = jnp.where(now, above, seg.spiked & hit)
    is_spike = jnp.any(spiked)
    is_break = ~is_spike & ~now & breaks
    t_new = jnp.where(now, c.t, seg.t)
    y_new = jnp.where(now, c.y, seg.y)
    times, counts = _record(c.counts, c.times, spiked, t_new, max_spikes)
    deliver = ~is_spike & ~is_break & (t_next < t_max)
    y_input = neuron.input_spikes(y_new, weights[inputs.channel(c.ptr)])
    is_end = ~is_spike & ~is_break & ~deliver
    y_next = jnp.where(
        is_spike, neuron.reset(y_new, spiked), jnp.where(deliver, y_input, y_new)
    )
    done = is_end
    if early_stop:
        done = done | jnp.all(counts >= 1)
    traj = c.traj
    if ts is not None:
        values = segments.evaluate(neuron, current, ctx, c.t, t_new, c.y, ts, active)
        traj = _fill(traj, ts, values, c.t, t_new, is_end)
    log = None
    if c.log is not None:
        e = event_function(neuron, current, t_new, y_new, active)
        kind = jnp.where(now, SPIKE_NOW, SPIKE_CROSSING)
        log = EventLog(
            deliver=deliver, ptr=c.ptr, end_ptr=c.ptr,
            kind=jnp.where(spiked, kind, jnp.where(now, IDLE, TO_END)),
            t_new=jnp.broadcast_to(t_new, (n,)), hit=hit, brk=is_break,
            lead=jnp.where(is_break, jnp.argmin(kinks), jnp.argmax(e)).astype(jnp.int32),
        )
    return _Carry(c.k + 1, t_new, y_next, c.ptr + deliver, times, counts,
                  c.waiting, done, c.failed | seg.failed, traj, log, c.origins)


def _own_clock_step(c, neuron, weights, inputs, current, segments, ctx, t_max,
                    max_spikes, ts, early_stop):
    """One round with a clock per neuron.

    If every neuron has reached the next input time, that input spike is applied
    first. Then, unless more input spikes arrive at the same instant, each neuron that
    is not waiting advances on its own: it fires at once if it is at/above threshold,
    else runs to its first crossing (fire, reset, stay in this interval) or to the
    next input time (wait there).
    """
    t_next = inputs.time(c.ptr)
    deliver = jnp.all(c.waiting) & (t_next < t_max)
    # Every neuron waits at t_next. One that got there through an earlier input at
    # the same instant has a clock derived from that input's time: move it to this
    # input's (no change in value; under autodiff, each simultaneous input then
    # carries its own derivative).
    active = _active(c.counts, max_spikes)
    t0 = jnp.where(deliver, t_next, c.t)
    y = move_clock(neuron, current, c.t, c.y, t0 - c.t, active)
    y = jnp.where(deliver, neuron.input_spikes(y, weights[inputs.channel(c.ptr)]), y)
    ptr = c.ptr + deliver
    t_end = jnp.minimum(inputs.time(ptr), t_max)
    hold = deliver & (t_end == t_next)  # another input spike at this very instant
    waiting = (c.waiting & ~deliver) | hold

    g = neuron.spike_condition(t0, y, current(t0))
    above = active & (g >= 0) & ~waiting
    seg = segments.advance(neuron, current, ctx, t0, t_end, y, active & ~waiting)
    hit = seg.hit & ~waiting & ~above
    spiked = above | hit
    moved = ~waiting & ~above
    t_new = jnp.where(moved, seg.t, t0)
    y_new = jnp.where(moved[:, None], seg.y, y)
    times, counts = _record(c.counts, c.times, spiked, t_new, max_spikes)
    y_next = neuron.reset(y_new, spiked)
    waiting = waiting | ~spiked
    done = jnp.all(waiting) & (t_end >= t_max)
    if early_stop:
        done = done | jnp.all(counts >= 1)
    traj = c.traj
    if ts is not None:
        values = segments.evaluate(neuron, current, ctx, t0, t_new, y, ts, active)
        traj = _fill(traj, ts, values, t0, t_new, t_new >= t_max)
    log = None
    if c.log is not None:
        kind = jnp.where(above, SPIKE_NOW, jnp.where(
            hit, SPIKE_CROSSING, jnp.where(moved, TO_END, IDLE)))
        log = EventLog(deliver=deliver, ptr=c.ptr, end_ptr=ptr, kind=kind,
                       t_new=t_new, hit=jnp.any(hit), brk=jnp.zeros((), bool),
                       lead=jnp.zeros((), jnp.int32))
    origins = c.origins
    if origins is not None:
        origins = SpikeOrigins(
            _store(c.counts, origins.segment, spiked, ptr, max_spikes),
            _store(c.counts, origins.now, spiked, above, max_spikes), origins.order)
    return _Carry(c.k + 1, t_new, y_next, ptr, times, counts, waiting, done,
                  c.failed | seg.failed, traj, log, origins)
