"""First-spike times of a non-linear layer: one population solve per input interval.

In first-spike mode a neuron of a feedforward layer is done once it fires, and the
neurons of a layer do not interact, so a spike changes nothing for the others. The
event loop's population clock (`_layer.py`) still ends the solve at every spike of
every neuron and restarts it (a 120-neuron QIF layer on Yin-Yang: ~85 restarts per
sample). Here the population is integrated once from input spike to input spike:

1. **forward**: diffrax's solver step and PID controller, driven by a loop of our own
   (one accepted or rejected step per iteration, batched by ``vmap`` without Python
   per event). After each accepted step, every neuron whose spike condition went from
   negative to non-negative fired inside that step: its vector field is masked to zero
   from then on (models that run away after the spike, EIF or QIF, cannot overflow)
   and the step is recorded. At each input time the input is applied and a neuron
   lifted over threshold fires at once, as in the loop.
2. **crossing times**: a safeguarded Newton iteration per recorded step. Trying a
   time inside the step costs one solver step of that length from the step's start,
   for every neuron at once, each with its own length: the dynamics do not depend on
   ``t``, so one step of the rescaled system ``dy/ds = L_j f(y)`` over ``s ∈ [0, 1]``
   is a step of length ``L_j`` for neuron ``j``.
3. **gradient** (``gradient="eventprop"``; the ``custom_vjp`` is
   `_adjoint.with_replay_gradient`, shared with the event loop): the backward pass
   replays the layer differentiably, one solve of the rescaled population per input
   interval, each neuron integrated to the interval's end, to its own spike, or not
   at all (done). Those solves are differentiated by forward sensitivities on
   steps that resolve a tangent of the solution as well as the solution
   (`_watched.py`, which says why neither diffrax's ``BacksolveAdjoint`` nor reverse
   mode through the steps will do), and each spike time carries the
   implicit-function-theorem derivative ([`eventsnn._solve.implicit_time`][]).
   ``gradient="autodiff"`` keeps the event loop, as the independent reference.

Both passes run an explicit Runge–Kutta solver (Tsit5 by default) with its stages
written out (`_unrolled.Unrolled`: the same numbers; on a CPU the stage loop of
diffrax's implementation cost more than the arithmetic, and the Izhikevich 5-120-3
gradient step at batch 32 went from 378 to 157 ms).

The semantics are the event loop's (`DiffraxSegments(parallel=False)`), to solver
tolerance: simultaneous inputs act as their sum, an input that lifts a neuron over
threshold fires it at that instant, inputs at or after ``t_max`` are ignored, a fired
neuron is switched off, and a crossing is seen where the condition changes sign
between two accepted steps (as with diffrax's event handling). The tests compare
both paths' times and gradients.

Used when it applies (`applies`): the model's dynamics and spike condition do not
read ``t`` (checked by tracing), the external current is constant, and the model
declares no `discontinuities` up to its first spike (see
[`eventsnn.AbstractNeuron.first_spike_model`][]). Otherwise the event loop runs.
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array, Bool, Float, Int
from ._layer import Inputs, input_intervals
from ._neuron import AbstractNeuron, declares_kinks
from ._solve import condition_rate, default_tolerance, implicit_time
from ._spikes import RESULTS, LayerSpikes
from ._unrolled import unrolled
from ._watched import sensitivity_solve


def applies(neuron, current, dtype) -> bool:
    """Whether the first-spike path can run ``neuron`` driven by ``current``
    (decided at trace time, from the model's code, not its values)."""
    if not current.is_constant:
        return False
    model = neuron.first_spike_model()
    n = 2
    y = jnp.zeros((n, model.state_size), dtype)
    t = jnp.zeros((), dtype)
    args = jnp.zeros((n,), dtype)
    if declares_kinks(model):
        return False
    return not (_reads_time(model.dynamics, t, y, args)
                or _reads_time(model.spike_condition, t, y, args))


def _reads_time(fn, t, y, args) -> bool:
    """Whether ``fn(t, y, args)`` uses ``t`` at all (conservative: any use counts)."""
    jaxpr = jax.make_jaxpr(fn)(t, y, args).jaxpr
    time = jaxpr.invars[0]
    uses = (v for eqn in jaxpr.eqns for v in eqn.invars)
    return any(v is time for v in uses) or any(v is time for v in jaxpr.outvars)


class _Record(eqx.Module):
    """What the forward pass found, per neuron: enough to replay it differentiably."""

    now: Bool[Array, " n"]  # fired as an input arrived (no crossing)
    segment: Int[Array, " n"]  # input interval in which it fired
    t_spike: Float[Array, " n"]  # +inf where silent


class _Carry(eqx.Module):
    t: Array  # per neuron: its own clock within the current input interval
    y: Array
    k: Array  # current input interval: from input k - 1 (or 0) to input k (or t_max)
    dt: Array  # per neuron: its step size
    controller_state: object  # per neuron
    active: Array
    now: Array
    segment: Array
    t_spike: Array
    step_t0: Array  # per neuron: the accepted step in which it crossed
    step_h: Array
    step_y0: Array
    g_hi: Array  # the condition at that step's end
    steps_here: Array
    iterations: Array
    done: Array
    failed: Array


def _field(s, y, args):
    # args = (model, external current value, length per neuron): the rescaled field
    # dy/ds = L f(y); L = 1 is the plain field, L = 0 holds a neuron still.
    return _scale_rows(args[0].dynamics(s, y, args[1]), args[2])


def _term():
    return diffrax.ODETerm(_field)


def _scale_rows(f: Float[Array, "n s"], length: Float[Array, " n"]
                ) -> Float[Array, "n s"]:
    """``f * length[:, None]``, one state column at a time. The same values; what
    differs is the transpose: that of a broadcast over the short state axis is a
    reduction over it, which XLA:CPU runs slowly (the replay's adjoint solve of an
    EIF layer, batch 32: 75 of its 164 ms went to that one reduction, profiled),
    while per column it is a few multiply-adds."""
    return jnp.stack([f[:, c] * length for c in range(f.shape[1])], axis=-1)


class _Layer(NamedTuple):
    """One layer's constants, shared by the forward pass and the replay."""

    model: AbstractNeuron  # the model's `first_spike_model()`
    weights: Float[Array, "n_in n"]
    inputs: Inputs
    real: Bool[Array, " M"]
    times: Float[Array, " M"]  # padding at t_max
    starts: Float[Array, " M+1"]  # interval k: from starts[k] to ends[k]
    ends: Float[Array, " M+1"]
    drive: Float[Array, " n"]  # the (constant) external current
    t_max: Float[Array, ""]

    @classmethod
    def build(cls, neuron, weights, in_times, current, t_max) -> "_Layer":
        dtype = weights.dtype
        t_max = jnp.asarray(t_max, dtype)
        inputs, real, times, starts = input_intervals(in_times, t_max, dtype)
        ends = jnp.concatenate([times, jnp.full((1,), t_max, dtype)])
        return cls(neuron.first_spike_model(), weights, inputs, real, times, starts,
                   ends, current(jnp.zeros((), dtype)), t_max)

    @property
    def m(self) -> int:
        """Number of input slots (real or padding)."""
        return self.times.shape[0]

    def condition(self, y):
        # Autonomous dynamics (see `applies`): any time will do.
        return self.model.spike_condition(jnp.zeros((), y.dtype), y, self.drive)

    def arrive(self, y, k):
        """``y`` after input ``k`` if it is real (else unchanged)."""
        last = jnp.minimum(k, self.m - 1)
        jumped = self.model.input_spikes(
            y, self.weights[self.inputs.channels[last]])
        return jnp.where((k < self.m) & self.real[last], jumped, y)


def _stepper(model, drive, solver, dtype):
    """One solver step of length ``h[j]`` for each neuron ``j`` at once (the rescaled
    system over ``s ∈ [0, 1]``): ``(y1, y_error, ok)``."""
    term = _term()
    zero, one = jnp.zeros((), dtype), jnp.ones((), dtype)

    def step(y, h):
        args = (model, drive, h)
        # A new length changes the rescaled field: no first-same-as-last reuse.
        state = solver.init(term, zero, one, y, args)
        y1, y_error, _, _, result = solver.step(term, zero, one, y, args, state,
                                                jnp.ones((), bool))
        return y1, y_error, result == diffrax.RESULTS.successful

    return step


def forward(neuron, weights, in_times, current, segments, *, t_max):
    """The first spike of every neuron (values only) and the record for the replay.

    Every neuron keeps its own clock and step size between two input spikes (the
    step-size controller runs per neuron): a neuron in its upstroke takes small
    steps without holding back the others, and the loop runs as many iterations per
    interval as its busiest neuron needs, not the union of everyone's steps.
    """
    layer = _Layer.build(neuron, weights, in_times, current, t_max)
    model, drive, times, ends, t_max, m = (
        layer.model, layer.drive, layer.times, layer.ends, layer.t_max, layer.m)
    n = weights.shape[1]
    dtype = weights.dtype
    solver = unrolled(segments.solver)
    controller = segments._controller(current, dtype)
    term = _term()
    error_order = solver.error_order(term)
    tol = segments.root_tol or default_tolerance(dtype) * 1e-2
    step = _stepper(model, drive, solver, dtype)
    eps = jnp.finfo(dtype).eps

    def adapt(t0, t1, y0, y1, y_error, state):
        keep, _, next_t1, _, state, result = controller.adapt_step_size(
            t0, t1, y0, y1, None, y_error, error_order, state)
        return keep, next_t1 - jnp.where(keep, t1, t0), state, result

    adapt = jax.vmap(adapt)

    cond = layer.condition

    def fire_now(t, y, k, active):
        """Neurons at/above threshold at the start of interval ``k`` (time ``t``),
        unless another input arrives at this very instant (they act as a sum)."""
        nxt = jnp.minimum(k, m - 1)
        pending = (k < m) & layer.real[nxt] & (times[nxt] == t)
        return active & (cond(y) >= 0) & ~pending & (t < t_max)

    y0 = model.init_state(n).astype(dtype)
    t0 = jnp.zeros((), dtype)
    now0 = fire_now(t0, y0, jnp.zeros((), jnp.int32), jnp.ones((n,), bool))
    t1, state0 = controller.init(term, t0, ends[0], y0, None,
                                 (model, drive, jnp.ones((n,), dtype)), solver.func,
                                 error_order)
    per_neuron = lambda a: jnp.broadcast_to(jnp.asarray(a), (n,))  # noqa: E731
    init = _Carry(
        t=jnp.zeros((n,), dtype), y=y0, k=jnp.zeros((), jnp.int32),
        dt=per_neuron(jnp.maximum(t1 - t0, 0.0)).astype(dtype),
        controller_state=jax.tree.map(per_neuron, state0), active=~now0, now=now0,
        segment=jnp.zeros((n,), jnp.int32),
        t_spike=jnp.where(now0, 0.0, jnp.inf).astype(dtype),
        step_t0=jnp.zeros((n,), dtype), step_h=jnp.zeros((n,), dtype),
        step_y0=y0, g_hi=jnp.ones((n,), dtype),
        steps_here=jnp.zeros((), jnp.int32), iterations=jnp.zeros((), jnp.int32),
        done=jnp.all(now0), failed=jnp.zeros((), bool),
    )
    max_iterations = (m + 1) * (segments.max_steps + 1)

    def body(c: _Carry) -> _Carry:
        end = ends[c.k]
        moving = c.active & (c.t < end)
        left = end - c.t
        # Within rounding of the interval's end: go to the end (no sliver step).
        to_end = c.dt >= left - 16 * eps * jnp.maximum(end, 1.0)
        h = jnp.where(moving, jnp.where(to_end, left, c.dt), 0.0)
        y1, y_error, ok = step(c.y, h)
        keep, dt, state, result = adapt(c.t, c.t + h, c.y, y1, y_error,
                                        c.controller_state)
        keep = moving & keep & ok
        # A step cut short by the interval's end says little about the step size the
        # dynamics allow: keep the longer proposal (a rejection shrinks it again).
        dt = jnp.where(keep & to_end, jnp.maximum(dt, c.dt), dt)
        dt = jnp.where(moving, dt, c.dt)
        state = jax.tree.map(lambda a, b: jnp.where(moving, a, b), state,
                             c.controller_state)
        g0, g1 = cond(c.y), cond(y1)
        crossed = keep & (g0 < 0) & (g1 >= 0)
        step_t0 = jnp.where(crossed, c.t, c.step_t0)
        step_h = jnp.where(crossed, h, c.step_h)
        step_y0 = jnp.where(crossed[:, None], c.y, c.step_y0)
        g_hi = jnp.where(crossed, g1, c.g_hi)
        segment = jnp.where(crossed, c.k, c.segment)
        active = c.active & ~crossed
        t = jnp.where(keep, jnp.where(to_end, end, c.t + h), c.t)
        y = jnp.where(keep[:, None], y1, c.y)
        # Every neuron still running has reached the interval's end: apply input k,
        # then fire whoever it lifts over threshold.
        reached = jnp.all(~active | (t >= end))
        last = c.k >= m
        y = jnp.where(reached, layer.arrive(y, c.k), y)
        k = c.k + reached
        now = reached & ~last & fire_now(end, y, k, active)
        segment = jnp.where(now, k, segment)
        active = active & ~now
        t_spike = jnp.where(now, end, c.t_spike)
        t = jnp.where(reached, end, t)
        steps_here = jnp.where(reached, 0, c.steps_here + 1)
        failed = (
            c.failed
            | (steps_here > segments.max_steps)
            | jnp.any(moving & (result != diffrax.RESULTS.successful))
            | ~jnp.all(jnp.isfinite(y))
        )
        return _Carry(
            t=t, y=y, k=k, dt=dt, controller_state=state, active=active,
            now=c.now | now, segment=segment, t_spike=t_spike,
            step_t0=step_t0, step_h=step_h, step_y0=step_y0, g_hi=g_hi,
            steps_here=steps_here, iterations=c.iterations + 1,
            done=(reached & (last | (end >= t_max))) | ~jnp.any(active),
            failed=failed,
        )

    def keep_going(c: _Carry):
        return ~c.done & ~c.failed & (c.iterations < max_iterations)

    final = jax.lax.while_loop(keep_going, body, init)
    crossing = ~final.active & ~final.now
    tau = _refine(layer, step, final, crossing, tol)
    t_cross = final.step_t0 + tau * final.step_h
    t_spike = jnp.where(crossing, t_cross, final.t_spike)
    fired = crossing | final.now
    t_spike = jnp.where(fired, t_spike, jnp.inf)
    ok = ~final.failed & final.done
    counts = fired.astype(jnp.int32)
    spikes = LayerSpikes(
        t_spike[:, None], counts,
        jnp.sum(layer.real).astype(jnp.int32) + jnp.sum(counts),
        RESULTS.where(ok, RESULTS.successful, RESULTS.solver_failed),
    )
    record = _Record(final.now, final.segment, t_spike)
    return spikes, record


def _refine(layer: _Layer, step, final: _Carry, crossing, tol):
    """Per crossing neuron, where in its recorded step (fraction ``τ ∈ (0, 1]``) the
    spike condition crosses zero: safeguarded Newton on ``τ``, each trial one solver
    step of length ``τ h`` from the step's start (all neurons at once)."""
    dtype = final.y.dtype
    h = jnp.where(crossing, final.step_h, 0.0)
    zero = jnp.zeros((), dtype)
    # Secant guess from the condition at the step's ends, then Newton in the bracket.
    g_lo, g_hi = layer.condition(final.step_y0), final.g_hi
    guess = jnp.clip(g_lo / (g_lo - g_hi), 0.0, 1.0)
    guess = jnp.where(jnp.isfinite(guess), guess, 0.5)
    eps = jnp.finfo(dtype).eps
    time_tol = tol + 8 * eps * jnp.maximum(jnp.abs(final.step_t0), 1.0)

    def body(carry):
        tau, lo, hi, _, i = carry
        y, _, _ = step(final.step_y0, tau * h)
        g = layer.condition(y)
        rate = condition_rate(layer.model, lambda t: layer.drive, zero, y) * h
        below = g < 0
        lo = jnp.where(below, tau, lo)
        hi = jnp.where(below, hi, tau)
        newton = tau - g / rate
        # Inclusive: at the root Newton stays where it is, which may be a bracket end.
        inside = jnp.isfinite(newton) & (newton >= lo) & (newton <= hi)
        new = jnp.where(inside, newton, 0.5 * (lo + hi))
        moved = jnp.minimum(jnp.abs(new - tau), hi - lo) * h
        # A condition within rounding of zero is as close as the state can tell (a
        # value of the order of eps * |y| is noise, and its sign is no guide).
        floor = jnp.abs(g) <= 8 * eps * jnp.max(jnp.abs(y), axis=-1)
        converged = ~crossing | (moved <= time_tol) | (g == 0) | floor
        return jnp.where(converged, tau, new), lo, hi, jnp.all(converged), i + 1

    def more(carry):
        return ~carry[3] & (carry[4] < 64)

    zeros = jnp.zeros_like(guess)
    tau, _, _, _, _ = jax.lax.while_loop(
        more, body, (guess, zeros, jnp.ones_like(guess), jnp.zeros((), bool), 0))
    return jnp.where(crossing, tau, 0.0)


def replay(neuron, weights, in_times, record: _Record, current, segments, *,
           t_max) -> Float[Array, "n 1"]:
    """The first spike times recomputed differentiably from the forward record: one
    solve per input interval (see the module docstring). Values equal the forward
    pass's; derivatives by the implicit function theorem at each spike."""
    layer = _Layer.build(neuron, weights, in_times, current, t_max)
    model, drive, starts, ends, m = (
        layer.model, layer.drive, layer.starts, layer.ends, layer.m)
    n = weights.shape[1]
    dtype = weights.dtype
    now, segment, t_found = jax.lax.stop_gradient(
        (record.now, record.segment, record.t_spike))
    fired = jnp.isfinite(t_found)
    crossing = fired & ~now
    controller = segments._controller(current, dtype)
    solver = unrolled(segments.solver)
    t_safe = jnp.where(crossing, t_found, 0.0)
    zero = jnp.zeros((), dtype)

    def interval(y, k):
        firing = crossing & (segment == k)
        going = fired & (segment > k)  # silent neurons need no replay: held
        length = jnp.where(firing, t_safe - starts[k],
                           jnp.where(going, ends[k] - starts[k], 0.0))
        # The solve sees each neuron's length as a constant; its derivative is the
        # flow's own, ∂y(L)/∂L = f(y(L)), exactly (not that of the solver's steps,
        # which in float32 was off enough to spoil the derivative with respect to an
        # input time, a difference of two such terms).
        fixed = jax.lax.stop_gradient(length)
        # Constant times and no dt0: no run-time check in the program
        # (`sensitivity_solve`).
        y_end = sensitivity_solve(_field, solver, controller, 0.0, 1.0, None, y,
                                  (model, drive, fixed), max_steps=segments.max_steps,
                                  constant=(2,))
        f_end = model.dynamics(zero, y_end, drive)
        y_end = y_end + _scale_rows(f_end, length - fixed)
        return layer.arrive(jnp.where(going[:, None], y_end, y), k), y_end

    y0 = model.init_state(n).astype(dtype)
    _, ends_states = jax.lax.scan(interval, y0, jnp.arange(m + 1))
    rows = jnp.arange(n)
    y_hit = ends_states[jnp.minimum(segment, m), rows]  # (n, s)
    residual = layer.condition(y_hit)
    rate = condition_rate(model, lambda t: drive, zero, y_hit)
    t_cross = implicit_time(t_safe, jnp.where(crossing, residual, 0.0),
                            jnp.where(crossing, rate, 1.0))
    t_now = starts[jnp.minimum(segment, m)]
    times = jnp.where(crossing, t_cross, jnp.where(now, t_now, jnp.inf))
    return times[:, None]
