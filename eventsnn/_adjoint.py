"""Exact gradients of a layer's spike times: the EventProp-style adjoint.

The forward pass is the fast event loop (``while_loop``, early exit), which records
only *what happened* at each event (an [`eventsnn._layer.EventLog`][]: which input was
applied, which neurons fired, the times reached). The backward pass replays that event
sequence differentiably, over the events that happened only (`_scan.scan_prefix`: the
log has ``max_events`` rows, a sample uses ``num_events``), and pulls the cotangents
back through it:

- between events, through the segment map ``y(t1) = Φ(t1 - t0) y(t0)``: the exact
  flow map's vector–Jacobian product for linear models, or, on the general solver
  path, a re-solve that carries the derivatives of the state forward on its own
  steps, chosen to resolve the linearised flow as well as the state (`_watched.py`:
  diffrax's ``BacksolveAdjoint`` re-integrates the state backwards, which is
  unstable for a model with a stable resting state, and reverse mode through the
  steps can, in float32, take a step the solve never took);
- at a spike, through the implicit function theorem on g(t*, y(t*)) = 0:
  dt* = -(∂g/∂y dy + ∂g/∂θ dθ) / (dg/dt), via [`eventsnn._solve.implicit_time`][];
- at resets and input spikes, through ``jax.vjp`` of the model's own ``reset`` and
  ``input_spikes``.

Multi-spike layers of linear models with additive inputs take a shortcut
(`_superpose.py`): the loop records only where each spike fell, and the replay
recomputes the spike times by superposition, one step per spike slot instead of one
per event.

This is the jump-condition adjoint of Wunderlich & Pehle (2021) for any model that
implements the neuron contract, written as reverse-mode differentiation of the event
sequence rather than by hand. Memory grows with the number of events (one state per
event is kept), not with solver steps (a re-solve keeps none).

The alternative, ``gradient="autodiff"``, differentiates the event loop itself
(unrolled to ``max_events`` iterations with ``lax.scan``, diffrax differentiating its
event times): an independent code path that the tests compare against.

??? cite "Reference"

    ```bibtex
    @article{wunderlich2021event,
      title={Event-based backpropagation can compute exact gradients for spiking
             neural networks},
      author={Wunderlich, Timo C. and Pehle, Christian},
      journal={Scientific Reports}, volume={11}, pages={12829}, year={2021}
    }
    ```
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from . import _first_spike_ode, _superpose
from ._custom_types import Array, Bool, Float
from ._first_spike import parallel_first_spikes
from ._layer import (
    SPIKE_CROSSING,
    SPIKE_NOW,
    TO_END,
    EventLog,
    Inputs,
    _active,
    run_layer,
)
from ._scan import scan_prefix
from ._solve import (
    DiffraxSegments,
    ExactSegments,
    condition_rate,
    event_function_and_rate,
    implicit_time,
    is_loop_free,
    layer_dynamics,
    move_clock,
    moving_mask,
)
from ._spikes import LayerSpikes


def layer_spikes(neuron, weights, in_times, current, segments, *, t_max, max_spikes,
                 max_events, gradient) -> LayerSpikes:
    """Run one layer with the requested gradient mode (same forward values)."""
    options = dict(t_max=t_max, max_spikes=max_spikes, max_events=max_events)

    def run(model, weights, in_times, current):  # the event loop, nothing recorded
        return run_layer(model, weights, in_times, current, segments, **options)[0]

    if is_loop_free(segments, max_spikes):
        # No event loop at all: both gradient modes differentiate this fixed array
        # computation by reverse mode (one state per input spike is kept, as here).
        ctx = segments.prepare(neuron, current, weights.shape[1], weights.dtype)
        return parallel_first_spikes(neuron, weights, in_times, ctx, t_max=t_max,
                                     max_iters=segments.max_iters,
                                     max_inputs=max_events)
    if (gradient == "eventprop" and isinstance(segments, ExactSegments)
            and segments.parallel and _superpose.applies(neuron)):
        # Many spikes: the forward event loop records where each spike fell, and the
        # replay recomputes the times by superposition instead of event by event.
        def run_origins(model, weights, in_times, current):
            spikes, _, origins = run_layer(model, weights, in_times, current, segments,
                                           origins=True, **options)
            return spikes, (origins, spikes.times, spikes.counts)

        def replay_superposed(model, weights, in_times, current, record):
            ctx = segments.prepare(model, current, weights.shape[1], weights.dtype)
            return _superpose.replay_spike_times(model, weights, in_times, ctx, *record,
                                                 t_max=t_max)

        return with_replay_gradient(neuron, weights, in_times, current, run,
                                    run_origins, replay_superposed)
    if (gradient == "eventprop" and max_spikes == 1
            and isinstance(segments, DiffraxSegments) and segments.parallel
            and _first_spike_ode.applies(neuron, current, weights.dtype)):
        # One solve per input interval instead of one per event ("autodiff" keeps
        # the event loop as the reference; see `_first_spike_ode.py`).
        def solve(model, weights, in_times, current):
            return _first_spike_ode.forward(model, weights, in_times, current,
                                            segments, t_max=t_max)

        def replay_solves(model, weights, in_times, current, record):
            return _first_spike_ode.replay(model, weights, in_times, record, current,
                                           segments, t_max=t_max)

        return with_replay_gradient(neuron, weights, in_times, current,
                                    lambda *a: solve(*a)[0], solve, replay_solves)
    if gradient == "autodiff":
        spikes, _, _ = run_layer(neuron, weights, in_times, current, segments,
                                 differentiable=True, **options)
        return spikes

    def run_recorded(model, weights, in_times, current):
        spikes, _, log = run_layer(model, weights, in_times, current, segments,
                                   record=True, **options)
        return spikes, (log, spikes.num_events)

    def replay_log(model, weights, in_times, current, record):
        log, num_events = record
        return replay(model, weights, in_times, log, num_events, current, segments,
                      t_max=t_max, max_spikes=max_spikes)

    return with_replay_gradient(neuron, weights, in_times, current, run,
                                run_recorded, replay_log)


def with_replay_gradient(neuron, weights, in_times, current, run, run_recorded,
                         replay_times) -> LayerSpikes:
    """A layer's spikes whose derivative is that of a differentiable replay.

    **Arguments:**

    - `neuron`, `weights`, `in_times`, `current`: the layer's inputs.
    - `run`: ``run(model, weights, in_times, current) -> LayerSpikes``, the forward
      pass when no derivative is taken (need not record anything).
    - `run_recorded`: the same, returning ``(spikes, record)``: what the replay needs.
    - `replay_times`: ``replay_times(model, weights, in_times, current, record)``,
      the spike times (same shape as ``spikes.times``) recomputed differentiably.

    **Returns:** the [`eventsnn.LayerSpikes`][] of `run`; reverse mode pulls the
    cotangents of its times back through the replay (``+inf`` times: none).

    A sample whose replayed times are NaN (a re-solve that ran out of ``max_steps``
    returns NaN, `_watched.sensitivity_solve`) gets NaN cotangents if any of its spike
    times has a non-zero cotangent, and zeros if none has (a sample that the loss
    leaves out, e.g. one flagged as failed in the forward pass, must not spoil the
    batch's gradient); a cotangent that is NaN at a spike (a NaN loss) gives NaN
    too, and so may a failed re-solve that no spike time depends on (0 × NaN in
    the chain). So a gradient is exact or NaN, never silently wrong;
    `eventsnn.train.fit` skips and counts a step whose gradient is not finite.
    """
    params, static = eqx.partition(neuron, eqx.is_array)

    # `current` is an argument, not a closure: under jit it is a tracer, and a
    # custom_vjp may not close over tracers. It is not differentiated (a network's
    # current is a constant; `filter_custom_vjp` refuses a perturbed one).
    @eqx.filter_custom_vjp
    def spikes(vjp_arg, current):
        params, weights, in_times = vjp_arg
        return run(eqx.combine(params, static), weights, in_times, current)

    @spikes.def_fwd
    def spikes_fwd(perturbed, vjp_arg, current):
        params, weights, in_times = vjp_arg
        out, record = run_recorded(eqx.combine(params, static), weights, in_times,
                                   current)
        return out, (record, out.times)

    @spikes.def_bwd
    def spikes_bwd(residuals, cotangent, perturbed, vjp_arg, current):
        record, out_times = residuals
        if cotangent.times is None:  # the spike times do not reach the loss
            return jax.tree.map(lambda _: None, vjp_arg)
        # Only what is differentiated is replayed differentiably: the rest is held
        # constant, so that the replay computes no derivative nobody asked for (a
        # non-linear layer's re-solves carry one sensitivity per differentiated
        # parameter, `_watched.sensitivity_solve`: training the weights alone needs
        # none for the model's parameters).
        diff, fixed = eqx.partition(vjp_arg, perturbed)

        def times(diff):
            params, weights, in_times = eqx.combine(diff, fixed)
            return replay_times(eqx.combine(params, static), weights, in_times,
                                current, record)

        replayed, vjp = jax.vjp(times, diff)
        # Times that are +inf (no spike) have no derivative; at a spike, a cotangent
        # that is not finite (a NaN loss) is kept, so that it is not taken for zero.
        ct_times = jnp.where(jnp.isfinite(out_times), cotangent.times, 0.0)
        (grads,) = vjp(ct_times)
        # A failed re-solve shows as a NaN replayed time. The flag is read from the
        # times, not from the gradients: selecting the gradients on a reduction over
        # themselves made XLA:CPU (jax 0.10.2) compute a wrong float32 gradient when
        # it ran on two threads (right on one): output weight gradients 3 % off in
        # nearly every row (`test_float32_gradients_with_respect_to_input_times`).
        failed = jnp.any(jnp.isnan(replayed))
        used = jnp.any(ct_times != 0)
        fill = jnp.where(used, jnp.nan, 0.0)
        return jax.tree.map(lambda g: jnp.where(failed, fill.astype(g.dtype), g),
                            grads)

    return spikes((params, weights, in_times), current)


def replay(neuron, weights, in_times, log: EventLog, num_events, current, segments, *,
           t_max, max_spikes):
    """Recompute a layer's spike times from its event log, differentiably.

    The values equal the forward pass's (up to one Newton correction of each spike
    time); the derivatives are exact. Only the log's first ``num_events`` rows are
    walked, forward and backward (`_scan.scan_prefix`), and on a shared clock the
    last stretch, to ``t_max``, is not re-solved (no spike time depends on it).
    Returns
    ``Float[Array, "n max_spikes"]``.
    """
    n = weights.shape[1]
    dtype = weights.dtype
    inputs = Inputs.sort(in_times.astype(dtype), t_max)
    # Unused entries are +inf; keep them out of arithmetic so no NaN leaks into the
    # gradient through an unselected branch.
    finite = jnp.isfinite(inputs.times)
    inputs = Inputs(jnp.where(finite, inputs.times, 0.0), inputs.channels)
    t_max = jnp.asarray(t_max, dtype)
    ctx = segments.prepare(neuron, current, n, dtype)
    own_clock = segments.clock == "neuron"
    # What the steps read and what is differentiated (`scan_prefix` takes it apart).
    consts = (neuron, weights, inputs, finite, current, ctx, t_max)

    def time_of(inputs, finite, t_max, ptr):
        last = finite.shape[0] - 1
        ok = (ptr < inputs.times.shape[0]) & finite[jnp.minimum(ptr, last)]
        return jnp.where(ok, inputs.time(ptr), t_max)

    def shift(neuron, current, t_rec, y_at, target, moving, left_limit=None):
        """y at ``target`` from y at the (value-equal) ``t_rec``: first order in the
        zero-valued difference, so the value is ``y_at`` and the derivative exact.

        Where a neuron's own kink ends the segment (``left_limit``, one bool per
        neuron), its vector field must be the one *before* the kink: it is evaluated
        a step h back along the flow, h = 1024·eps·max(1, |t|), which lands on the
        pre-kink branch of any model whose kink test allows at most a few hundred
        rounding errors (`Refractory` allows 64). The derivative is then exact up to
        O(h) (relative 1e-13 in float64, 1e-4 in float32). Neurons that are not
        ``moving`` (fired, in first-spike mode) stay put."""
        mask = moving_mask(moving, y_at)
        f = layer_dynamics(neuron, current, t_rec, y_at, mask)
        if left_limit is not None:
            h = 1024 * jnp.finfo(y_at.dtype).eps * jnp.maximum(1.0, jnp.abs(t_rec))
            f_left = layer_dynamics(neuron, current, t_rec - h, y_at - h * f, mask)
            f = jnp.where(left_limit[:, None], f_left, f)
        delta = target - jax.lax.stop_gradient(target)
        return y_at + f * jnp.reshape(delta, delta.shape + (1,) * (f.ndim - delta.ndim))

    # Each step: carry (t, y, counts) -> the next, and (spiked, t_new) per neuron.
    def step_own(consts, carry, rec):
        neuron, weights, inputs, finite, current, ctx, t_max = consts
        t, y, counts = carry
        # Every neuron waits at this input's time; where it got there by an earlier
        # input at the same instant (simultaneous spikes), its clock carries that
        # input's time: move it to this one's (zero in value, exact in derivative).
        active = _active(counts, max_spikes)
        t_in = jnp.where(rec.deliver, time_of(inputs, finite, t_max, rec.ptr), t)
        y = move_clock(neuron, current, t, y, t_in - t, active)
        t = t_in
        jump = neuron.input_spikes(y, weights[inputs.channel(rec.ptr)])
        y = jnp.where(rec.deliver, jump, y)
        kind = rec.kind
        moves = (kind == SPIKE_CROSSING) | (kind == TO_END)
        t_rec = jax.lax.stop_gradient(jnp.where(moves, rec.t_new, t))
        y_at = segments.state_at(neuron, current, ctx, t, t_rec, y, moving=active)
        g = neuron.spike_condition(t_rec, y_at, current(t_rec))
        crossing = implicit_time(t_rec, g, condition_rate(neuron, current, t_rec, y_at))
        t_end = jnp.minimum(time_of(inputs, finite, t_max, rec.end_ptr), t_max)
        target = jnp.where(kind == SPIKE_CROSSING, crossing,
                           jnp.where(kind == TO_END, t_end, t))
        y_new = jnp.where(moves[:, None],
                          shift(neuron, current, t_rec, y_at, target, active), y)
        t_new = jnp.where(moves, target, t)
        spiked = (kind == SPIKE_NOW) | (kind == SPIKE_CROSSING)
        counts = counts + spiked.astype(counts.dtype)
        return (t_new, neuron.reset(y_new, spiked), counts), (spiked, t_new)

    def step_population(consts, carry, rec):
        neuron, weights, inputs, finite, current, ctx, t_max = consts
        t, y, counts = carry
        kind = rec.kind
        spiked = (kind == SPIKE_NOW) | (kind == SPIKE_CROSSING)
        now = jnp.any(kind == SPIKE_NOW)
        deliver = rec.deliver
        # The last stretch, to t_max (no spike, input or kink ends it), feeds no spike
        # time: it is not re-solved (a re-solve there could only cost time, or fail
        # and make the sample's gradient NaN for nothing).
        to_end = ~jnp.any(spiked) & ~deliver & ~rec.hit & ~rec.brk
        moves = ~now & ~to_end
        t_rec = jax.lax.stop_gradient(jnp.where(moves, rec.t_new[0], t))
        active = _active(counts, max_spikes)
        y_at = segments.state_at(neuron, current, ctx, t, t_rec, y, moving=active)
        # A segment ends at a spike crossing (implicit function theorem on the lead
        # neuron's condition), an input time, a kink of the dynamics, or t_max.
        e, rate = event_function_and_rate(neuron, current, t_rec, y_at, active)
        target = jnp.where(deliver, time_of(inputs, finite, t_max, rec.ptr), t_rec)
        target = jnp.where(rec.hit, implicit_time(t_rec, e[rec.lead], rate[rec.lead]),
                           target)
        kinks = neuron.discontinuities(t, y)
        left_limit = None
        if kinks is not None:
            kink = jnp.where(rec.brk, kinks[rec.lead], t_rec)
            target = jnp.where(rec.brk, jnp.where(jnp.isfinite(kink), kink, t_rec),
                               target)
            # Every neuron released at this very time (the lead and any that fired
            # together with it) takes its pre-kink vector field.
            left_limit = rec.brk & (kinks == kinks[rec.lead])
        target = jnp.where(moves, target, t)
        y_new = jnp.where(
            moves, shift(neuron, current, t_rec, y_at, target, active, left_limit), y)
        counts = counts + spiked.astype(counts.dtype)
        y_new = neuron.reset(y_new, spiked)
        y_new = jnp.where(
            deliver, neuron.input_spikes(y_new, weights[inputs.channel(rec.ptr)]), y_new
        )
        return (target, y_new, counts), (spiked, jnp.broadcast_to(target, (n,)))

    init = (
        jnp.zeros((n,) if own_clock else (), dtype),
        neuron.init_state(n).astype(dtype),
        jnp.zeros((n,), jnp.int32),
    )
    _, (spiked, t_new) = scan_prefix(step_own if own_clock else step_population,
                                     consts, init, log, num_events)
    return _spike_table(spiked, t_new, max_spikes)


def _spike_table(spiked: Bool[Array, "E n"], t_new: Float[Array, "E n"],
                 max_spikes: int) -> Float[Array, "n max_spikes"]:
    """Each neuron's first ``max_spikes`` spike times, in order, from the per-step
    record (``+inf`` where fewer)."""
    n = spiked.shape[1]
    slot = jnp.cumsum(spiked, axis=0) - 1  # the spike's index for its neuron
    keep = spiked & (slot < max_spikes)
    column = jnp.where(keep, slot, max_spikes)  # the rest into a column dropped below
    rows = jnp.broadcast_to(jnp.arange(n), spiked.shape)
    table = jnp.full((n, max_spikes + 1), jnp.inf, t_new.dtype)
    table = table.at[rows, column].set(jnp.where(keep, t_new, jnp.inf))
    return table[:, :max_spikes]
