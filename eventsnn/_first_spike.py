"""First-spike times of a linear layer without an event loop.

In first-spike mode a neuron of a feedforward layer is done once it fires, so what
happens before its spike depends only on the input spikes, which are known in advance.
With an exact flow map (linear dynamics, see `_exact.py`) the whole layer is then a
fixed amount of array work instead of a loop over events:

1. the state of every neuron right after each input spike, by one ``lax.scan`` over the
   sorted inputs (one flow step and one `input_spikes` per input, all neurons at once);
2. for every (inter-input segment, neuron) pair at once, whether the spike condition is
   met at the segment's start or crosses zero inside it (closed-form bracket: the
   condition has at most one extremum per segment);
3. per neuron, the first segment where it fires, and one bracketed Newton root find in
   that segment only.

The spike time carries its derivative through the implicit function theorem
([`eventsnn._solve.implicit_time`][]); reverse mode through the scan keeps one state per
input spike and neuron, the same memory as the EventProp replay. The event loop in
`_layer.py` stays the reference (``ExactSegments(parallel=False)``), and the tests
check that both give the same times and gradients.

The semantics are the loop's: simultaneous inputs act as their sum (a neuron is tested
for an immediate spike only once every input at that instant has arrived), an input
that lifts a neuron over threshold makes it fire at that instant, and inputs at or
after ``t_max`` are ignored.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array, Float
from ._exact import crossing_bracket, matvec, refine_crossing, rowdot
from ._layer import input_intervals
from ._solve import implicit_time
from ._spikes import RESULTS, LayerSpikes


@eqx.filter_jit
def parallel_first_spikes(
    neuron, weights: Float[Array, "n_in n"], in_times: Float[Array, "n_in K"], ctx, *,
    t_max: float, max_iters: int, max_inputs: int | None = None,
) -> LayerSpikes:
    """The first spike of every neuron of a linear layer (see the module docstring).

    **Arguments:**

    - `neuron`: the layer's model (its `input_spikes` and `init_state` are used; its
      dynamics and spike condition enter through `ctx`).
    - `weights`: ``(n_in, n)``, row = presynaptic channel.
    - `in_times`: ``(n_in, K)`` input spike times, ``+inf`` padding.
    - `ctx`: ``(flow, c, g0)`` from [`eventsnn.ExactSegments.prepare`][]: the exact
      flow and the affine spike condition ``c·y + g0``.
    - `t_max`: end of the window.
    - `max_iters`: iterations of the bracketed Newton root find.
    - `max_inputs`: take only the earliest ``max_inputs`` input spikes (the work is
      proportional to the input slots, and a sparse code such as MNIST's leaves most
      of ``n_in × K`` as padding). A dropped input could only change neurons that
      have not fired before it arrives: if there is one, the result is
      ``max_events_reached``, else the spikes are exact.

    **Returns:** [`eventsnn.LayerSpikes`][] with one slot per neuron (``+inf`` where
    silent); the result is ``solver_failed`` if some neuron's dynamics have complex
    eigenvalues or a state is not finite, ``max_events_reached`` if dropping inputs
    beyond `max_inputs` may have changed a spike.
    """
    flow, c, g0 = ctx
    n = weights.shape[1]
    dtype = weights.dtype
    t_max = jnp.asarray(t_max, dtype)
    # Padding (+inf) becomes zero-length segments at t_max that apply no input; no
    # +inf enters the arithmetic, so none can leak NaN into a gradient. Segment k
    # starts at starts[k].
    inputs, real, times, starts = input_intervals(in_times, t_max, dtype)
    t_dropped = jnp.asarray(jnp.inf, dtype)  # the first input left out
    if max_inputs is not None and max_inputs < times.shape[0]:
        t_dropped = jnp.where(real[max_inputs], times[max_inputs], jnp.inf)
        inputs = type(inputs)(*(a[:max_inputs] for a in inputs))
        real, times = real[:max_inputs], times[:max_inputs]
        starts = starts[: max_inputs + 1]

    superpose = neuron.additive_input
    # With additive inputs the derivative comes from the superposition below, and the
    # scan only computes values: keep it out of reverse mode (its transpose is a
    # long sequential loop, far slower than the forward one).
    scan_flow, scan_w, scan_times = (
        jax.lax.stop_gradient((flow, weights, times)) if superpose
        else (flow, weights, times)
    )

    def arrive(before, k):
        return neuron.input_spikes(before, scan_w[inputs.channels[k]])

    # The flow over each inter-input gap (and from the last input to t_max) as an
    # affine map, all at once: inside the scan only a few multiplies per step remain.
    gaps = jnp.diff(scan_times, prepend=0.0, append=t_max)
    maps = jax.vmap(lambda gap: scan_flow.affine(jnp.broadcast_to(gap, (n,))))(gaps)

    def deliver(y, k_map):
        k, (phi, offset) = k_map
        before = matvec(phi, y) + offset
        return jnp.where(real[k], arrive(before, k), before), before

    y0 = neuron.init_state(n).astype(dtype)
    ks = jnp.arange(times.shape[0])
    last, before = jax.lax.scan(
        deliver, y0, (ks, jax.tree.map(lambda a: a[:-1], maps)))
    y_end_last = matvec(maps[0][-1], last) + maps[1][-1]
    # The states after each input again, outside the scan: one stacked output less.
    after = jnp.where(real[:, None, None], jax.vmap(arrive)(before, ks), before)
    y_starts = jnp.concatenate([y0[None], after])  # (M + 1, n, s)

    # Which segments fire, for all segments and neurons at once (values only). A
    # segment ends in the state just before the next input (from the scan).
    lengths = jax.lax.stop_gradient(gaps)  # segment k: from input k - 1 to input k
    flow_c = jax.lax.stop_gradient((flow, c, g0))
    ys, y_ends = jax.lax.stop_gradient(
        (y_starts, jnp.concatenate([before, y_end_last[None]]))
    )
    g_start, crosses, lo, hi = jax.vmap(
        lambda y, y_end, length: fires_in(*flow_c, y, y_end, length)
    )(ys, y_ends, lengths)
    # An input at this very instant is still to come: no immediate spike before it.
    pending = jnp.concatenate([real[1:] & (times[1:] == times[:-1]),
                               jnp.zeros((1,), bool)])
    pending = jnp.concatenate([real[:1] & (times[:1] == 0.0), pending])
    # Segments past the last real input start at t_max and have no length.
    in_window = jnp.concatenate([jnp.ones((1,), bool), real])[:, None]
    now = in_window & (g_start >= 0) & ~pending[:, None]
    # One code per (segment k, neuron): 2k if it fires as segment k starts, 2k + 1 if
    # it crosses inside. The minimum over segments is the first spike, in a single
    # reduction (with several consumers, XLA would recompute the crossing tests).
    n_seg = starts.shape[0]
    segment = jnp.arange(n_seg)[:, None]
    code = jnp.where(now, 2 * segment,
                     jnp.where(in_window & crosses, 2 * segment + 1, 2 * n_seg))
    code = jnp.min(code, axis=0)
    fired = code < 2 * n_seg
    first = jnp.minimum(code // 2, n_seg - 1)  # (the last segment if silent: unused)
    spike_now = fired & (code % 2 == 0)
    rows = jnp.arange(n)
    y_first = y_starts[first, rows]  # (n, s), differentiable
    start, length = starts[first], lengths[first]

    crossing = fired & ~spike_now
    tau = refine_crossing(
        *flow_c, jax.lax.stop_gradient(y_first), crossing, lo[first, rows],
        hi[first, rows], jnp.where(crossing, length, 0.0), max_iters,
    )
    hit = jnp.isfinite(tau)
    tau_safe = jnp.where(hit, tau, 0.0)
    if superpose:
        # y(t*) = Φ(t*) y0 + Σ_j E(t* - t_j) J_j over the inputs j delivered before
        # the segment: every term at once, differentiable in the parameters, the
        # weights (J_j) and the input times, with t* held at its found value.
        t_found = jax.lax.stop_gradient(start + tau_safe)
        zero = jnp.zeros_like(y0)
        jumps = jax.vmap(lambda w: neuron.input_spikes(zero, w))(
            weights[inputs.channels])  # (M, n, s)
        before_seg = real[:, None] & (jnp.arange(times.shape[0])[:, None] < first)
        age = jnp.where(before_seg, t_found - times[:, None], 0.0)
        terms = jax.vmap(flow.homogeneous)(age, jumps)
        y_hit = flow(t_found, y0) + jnp.sum(
            jnp.where(before_seg[..., None], terms, 0.0), axis=0)
        residual = rowdot(c, y_hit) + g0
        rate = rowdot(c, flow.velocity(y_hit))
        t_cross = implicit_time(t_found, residual, rate)
    else:
        y_hit = flow(tau_safe, y_first)
        residual = rowdot(c, y_hit) + g0
        rate = rowdot(c, flow.velocity(y_hit))
        t_cross = start + implicit_time(tau_safe, residual, rate)
    t_spike = jnp.where(spike_now, start, t_cross)
    # Rounding can leave a "crossing" that the root finder does not confirm: silent.
    fired = spike_now | (crossing & hit)
    t_spike = jnp.where(fired, t_spike, jnp.inf)

    ok = jnp.all(flow.real) & jnp.all(jnp.isfinite(y_starts))
    # A left-out input at t_d reaches every neuron that has not fired before t_d
    # (one firing at t_d itself waits for all inputs of that instant).
    truncated = jnp.isfinite(t_dropped) & jnp.any(
        jax.lax.stop_gradient(t_spike) >= t_dropped)
    counts = fired.astype(jnp.int32)
    num_events = jnp.sum(real).astype(jnp.int32) + jnp.sum(counts)
    result = RESULTS.where(
        ok,
        RESULTS.where(truncated, RESULTS.max_events_reached, RESULTS.successful),
        RESULTS.solver_failed)
    return LayerSpikes(t_spike[:, None], counts, num_events, result)


def fires_in(flow, c, g0, y, y_end, length):
    """Per neuron: the condition at the segment start (state ``y``), whether it
    crosses zero upwards within ``(0, length]``, and a bracket ``[lo, hi]`` of that
    crossing; ``y_end`` is the state at the segment's end (from the scan, so no flow
    evaluation is spent on it)."""
    g_start = rowdot(c, y) + g0
    crosses, lo, hi = crossing_bracket(flow, c, g0, y, rowdot(c, y_end) + g0, length)
    return g_start, (g_start < 0) & crosses, lo, hi
