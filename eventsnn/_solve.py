"""Advance a population from one event to the next, stopping at the first spike.

Two strategies share one interface, so the event loop does not care which runs:

- [`eventsnn.DiffraxSegments`][]: any diffrax solver with adaptive steps; the spike is
  located by diffrax's event handling (root find on the dense output).
- [`eventsnn.ExactSegments`][]: linear models with 1–2 state variables; one exact step
  per segment ([`eventsnn.ExactLinear`][]) and a bracketed Newton root find.
"""

import abc
from typing import Any, ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._current import AbstractCurrent
from ._custom_types import Array, Bool, Float, State
from ._exact import AffineFlow, first_crossing, rowdot
from ._neuron import AbstractNeuron
from ._root import SignChangeBisection
from ._unrolled import unrolled
from ._watched import sensitivity_solve


class Segment(NamedTuple):
    """Where a segment ended: at the first crossing (``hit``) or at its end time.

    With a population clock ``t`` and ``hit`` are scalars; with one clock per neuron
    they have one entry per neuron.
    """

    t: Float[Array, "*n"]
    y: State
    hit: Bool[Array, "*n"]
    spiked: Bool[Array, " n"]
    failed: Bool[Array, ""]


def default_tolerance(dtype) -> float:
    """Tight solver tolerances that the dtype can still honour."""
    return 1e-10 if jnp.finfo(dtype).bits >= 64 else 1e-6


class AbstractSegmentSolver(eqx.Module):
    """How the event loop integrates between events.

    ``clock`` is ``"population"`` if all neurons advance together (``t0`` a scalar;
    ``advance`` stops at the first crossing of any neuron) or ``"neuron"`` if each
    neuron keeps its own time (``t0`` one per neuron; ``advance`` stops each neuron at
    its own crossing).
    """

    clock: ClassVar[str]

    @abc.abstractmethod
    def prepare(self, neuron: AbstractNeuron, current: AbstractCurrent, n: int, dtype) -> Any:
        """Per-simulation constants, computed once outside the event loop.

        **Arguments:**

        - `neuron`: the population's model.
        - `current`: its external current.
        - `n`: number of neurons.
        - `dtype`: floating dtype of the simulation.

        **Returns:** the context ``ctx`` passed back to the other methods (or
        ``None``). Raises ``ValueError`` if this strategy cannot simulate the model.
        """

    @abc.abstractmethod
    def advance(self, neuron, current, ctx, t0, t1, y0: State, active) -> Segment:
        """Integrate towards ``t1``, stopping at the first upward crossing of the spike
        condition by an ``active`` neuron.

        **Arguments:**

        - `neuron`, `current`, `ctx`: as in `prepare` (``ctx`` its result).
        - `t0`: start time (a scalar, or one per neuron with ``clock = "neuron"``).
        - `t1`: time to stop at if nothing crosses.
        - `y0`: state at ``t0``, shape ``(n, state_size)``.
        - `active`: one bool per neuron: the neurons that may fire. The others keep
          their state (see ``moving`` in `state_at`).

        **Returns:** a ``Segment``: where and in which state the segment ended, which
        neurons crossed, and whether the solver failed.
        """

    @abc.abstractmethod
    def state_at(self, neuron, current, ctx, t0, t1, y0: State, adjoint=None,
                 moving=None) -> State:
        """The state at ``t1`` from ``y0`` at ``t0`` with no event in between;
        differentiable in all arguments (used to replay recorded events for
        gradients).

        **Arguments:**

        - `neuron`, `current`, `ctx`: as in `advance`.
        - `t0`, `t1`: start and end time.
        - `y0`: state at ``t0``.
        - `adjoint`: a diffrax adjoint for the solve; default: forward
          sensitivities on steps that also resolve the linearised flow
          (`eventsnn._watched`). Ignored by exact flows.
        - `moving`: one bool per neuron (default: all), the neurons that evolve; the
          others keep their state. In first-spike mode a neuron that has fired is
          switched off this way, so that a model whose membrane runs away without a
          reset (EIF, QIF) cannot overflow after its one spike.

        **Returns:** the state at ``t1``, shape ``(n, state_size)``.
        """

    @abc.abstractmethod
    def evaluate(self, neuron, current, ctx, t0, t1, y0: State, ts,
                 moving=None) -> Float[Array, "T n s"]:
        """The state at several times within one segment (no event inside).

        **Arguments:**

        - `neuron`, `current`, `ctx`, `t0`, `t1`, `y0`, `moving`: as in `state_at`.
        - `ts`: query times, clipped into ``[t0, t1]``.

        **Returns:** the states, shape ``(len(ts), n, state_size)``.
        """


class ExactSegments(AbstractSegmentSolver):
    """Exact flow map + closed-form bracket + Newton: for linear models only.

    Refuses (``ValueError``) a model that is not marked ``linear``, has more than two
    state variables, or is driven by a time-varying current.

    **Arguments:**

    - `max_iters`: iterations of the bracketed Newton root find (default 60; it
      converges in a handful).
    - `parallel`: in first-spike mode (``max_spikes=1``), compute a layer's first
      spikes without an event loop (`_first_spike.py`: one scan over the inputs, then
      every segment tested at once); in multi-spike mode with EventProp, replay the
      events by superposition (`_superpose.py`) instead of one by one, for models
      with additive inputs and no kinks. Default ``True``. ``False`` runs the event
      loop and its event-by-event replay, which give the same times and gradients,
      more slowly.
    """

    max_iters: int = eqx.field(static=True, default=60)
    parallel: bool = eqx.field(static=True, default=True)

    def prepare(self, neuron, current, n, dtype):
        name = type(neuron).__name__
        if not getattr(neuron, "linear", False):
            raise ValueError(
                f"The exact solver needs linear dynamics, but {name} is not marked "
                "`linear = True`. Use an adaptive solver such as diffrax.Tsit5()."
            )
        if not current.is_constant:
            raise ValueError(
                "The exact solver needs a constant external current; this one varies "
                "in time. Use an adaptive solver such as diffrax.Tsit5()."
            )
        if neuron.state_size > 2:
            raise ValueError(
                f"The exact solver handles 1 or 2 state variables; {name} has "
                f"{neuron.state_size} ({neuron.state_names}), and its membrane can rise "
                "and fall more than once between events. Use diffrax.Tsit5()."
            )
        args = current(jnp.zeros((), dtype))
        t = jnp.zeros((), dtype)
        flow = AffineFlow.from_vector_field(
            lambda y: neuron.dynamics(t, y, args), (n, neuron.state_size), dtype
        )
        zero = jnp.zeros((n, neuron.state_size), dtype)
        cond = lambda y: neuron.spike_condition(t, y, args)  # noqa: E731
        g0 = cond(zero)
        cols = [
            jax.jvp(cond, (zero,), (zero.at[:, k].set(1.0),))[1]
            for k in range(neuron.state_size)
        ]
        return flow, jnp.stack(cols, -1), g0

    clock = "neuron"

    def advance(self, neuron, current, ctx, t0, t1, y0, active):
        """Each neuron from its own time ``t0[j]`` to ``t1`` or its first crossing.

        Neurons of a feedforward layer do not interact, so each keeps its own clock:
        a spike of one neuron does not interrupt the others.

        **Arguments:** as in [`eventsnn.AbstractSegmentSolver.advance`][], with one
        `t0` per neuron; `neuron` and `current` are already folded into `ctx`, `t1`
        is the time every neuron runs to unless it crosses first, `y0` the state at
        `t0`, and neurons not `active` keep their state.

        **Returns:** a ``Segment`` with one end time and one ``hit`` per neuron.
        """
        flow, c, g0 = ctx
        length = jnp.where(t1 >= t0, t1 - t0, 0.0)  # no max(): a tie would halve d/dt
        # The root find itself is not differentiated: its result is corrected by one
        # implicit-function-theorem step below, which carries the exact derivative.
        tau = first_crossing(
            *jax.lax.stop_gradient((flow, c, g0, y0, length)), active, self.max_iters
        )
        hit = jnp.isfinite(tau)
        tau_safe = jnp.where(hit, tau, 0.0)
        y_hit = flow(tau_safe, y0)
        residual = rowdot(c, y_hit) + g0
        rate = rowdot(c, flow.velocity(y_hit))
        tau_end = jnp.where(hit, implicit_time(tau_safe, residual, rate), length)
        y = hold(flow(tau_end, y0), y0, active)
        failed = ~jnp.all(flow.real) | ~jnp.all(jnp.isfinite(y))
        return Segment(t0 + tau_end, y, hit, hit, failed)

    def state_at(self, neuron, current, ctx, t0, t1, y0, adjoint=None, moving=None):
        return hold(ctx[0](t1 - t0, y0), y0, moving)

    def evaluate(self, neuron, current, ctx, t0, t1, y0, ts, moving=None):
        flow = ctx[0]
        tau = jnp.clip(ts[:, None], t0, t1) - t0  # (T, n): each neuron's own clock
        return jax.vmap(lambda s: hold(flow(s, y0), y0, moving))(tau)


class DiffraxSegments(AbstractSegmentSolver):
    """Any diffrax solver with an adaptive step-size controller.

    **Arguments:**

    - `solver`: a diffrax solver (default ``diffrax.Tsit5()``). Explicit Runge–Kutta
      methods run with their stages written out (`eventsnn._unrolled.Unrolled`:
      the same values, far fewer small kernels per step; the EIF event loop of
      the benchmark ran 1.9x faster on a CPU).
    - `rtol`, `atol`: step-size controller tolerances (default: 1e-10 in float64,
      1e-6 in float32).
    - `root_tol`: tolerance of the spike-time root find (default: 1e-12 / 1e-6).
    - `max_steps`: solver steps allowed between two events; exceeding it is reported
      as ``solver_failed``, never silently truncated.
    - `dtmax`: largest step, so that a brief threshold excursion cannot be stepped
      over (default: no limit).
    - `parallel`: in first-spike mode (``max_spikes=1``) with
      ``gradient="eventprop"``, integrate each layer once from input spike to input
      spike, every neuron to its own first spike, instead of restarting the solve
      at every spike (`_first_spike_ode.py`); default
      ``True``. Used for models whose dynamics and spike condition do not read ``t``
      and that have no `discontinuities` before their first spike, with a constant
      current; other models run the event loop. ``False`` always runs the event
      loop, which gives the same times and gradients (to solver tolerance), more
      slowly.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    root_tol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=4096)
    dtmax: float | None = eqx.field(static=True, default=None)
    parallel: bool = eqx.field(static=True, default=True)

    def _controller(self, current, dtype):
        tol = default_tolerance(dtype)
        return diffrax.PIDController(
            rtol=self.rtol or tol,
            atol=self.atol or tol,
            dtmax=self.dtmax,
            jump_ts=current.jump_ts,
        )

    clock = "population"

    def prepare(self, neuron, current, n, dtype):
        return None

    @staticmethod
    def _field(t, y, args):
        # The model and current travel as diffrax `args` (not closed over), so that
        # an adjoint can differentiate with respect to their parameters; the third
        # entry is the 0/1 `moving` mask, one per neuron.
        return layer_dynamics(args[0], args[1], t, y, args[2])

    @classmethod
    def _term(cls):
        return diffrax.ODETerm(cls._field)

    def advance(self, neuron, current, ctx, t0, t1, y0, active):
        dtype = y0.dtype
        root_tol = self.root_tol or (1e-12 if jnp.finfo(dtype).bits >= 64 else 1e-6)

        def cond_fn(t, y, args, **kwargs):
            # Each neuron's event function divided by its rate of change, so that
            # the root finder's tolerance on the function is a tolerance on time
            # (a fast upstroke, e.g. Izhikevich at v_peak, moves g by more than 1e-12
            # per representable time step).
            e, rate = event_function_and_rate(neuron, current, t, y, active)
            # In JAX's default float dtype: diffrax pairs this value with a Python
            # 0.0 in a `lax.cond`, which is float64 once x64 is enabled, so a float32
            # layer would not trace there.
            return jnp.max(e / (jnp.abs(rate) + 1.0)).astype(jnp.result_type(float))

        # Bisection inside the step where the sign changed: always converges, even
        # when the condition turns back down within that step (Newton started from
        # the step end then walks away from the crossing). `SignChangeBisection`, not
        # `optx.Bisection`: under vmap the latter reports a failure for every batch
        # element that had no event (see `_root.py`). The tolerance cannot be finer
        # than the spacing of representable times near t1 (float32 at t = 300 ms:
        # 3e-5 ms).
        atol = root_tol + 8 * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(t1), 1.0)
        event = diffrax.Event(
            cond_fn, root_finder=SignChangeBisection(rtol=root_tol, atol=atol),
            direction=True,
        )
        sol = diffrax.diffeqsolve(
            self._term(), unrolled(self.solver), t0, t1, None, y0,
            (neuron, current, moving_mask(active, y0)),
            stepsize_controller=self._controller(current, dtype),
            event=event, max_steps=self.max_steps, throw=False,
        )
        hit = sol.result == diffrax.RESULTS.event_occurred
        t_end = jnp.where(hit, sol.ts[-1], t1)
        y = sol.ys[-1]
        ok = hit | (sol.result == diffrax.RESULTS.successful)
        g = event_function(neuron, current, t_end, y, active)
        spiked = active & hit & ((g >= jnp.max(g)) | (g >= 0))
        failed = ~ok | ~jnp.all(jnp.isfinite(y))
        return Segment(t_end, y, hit, spiked, failed)

    def state_at(self, neuron, current, ctx, t0, t1, y0, adjoint=None, moving=None):
        # Differentiate with respect to t0 and t1 by the exact first-order identities
        # ∂y(t1)/∂t0 = -(∂y(t1)/∂y0) f(t0, y0) and ∂y(t1)/∂t1 = f(t1, y(t1)), so the
        # solve itself only sees constant times (`sensitivity_solve` expects that).
        s0, s1 = jax.lax.stop_gradient((t0, t1))
        mask = moving_mask(moving, y0)
        y0 = y0 - layer_dynamics(neuron, current, s0, y0, mask) * (t0 - s0)
        solver = unrolled(self.solver)
        controller = self._controller(current, y0.dtype)
        args = (neuron, current, mask)
        if adjoint is None:
            y1 = sensitivity_solve(self._field, solver, controller, s0, s1, None, y0,
                                   args, max_steps=self.max_steps, constant=(2,))
        else:
            sol = diffrax.diffeqsolve(
                self._term(), solver, s0, s1, None, y0, args,
                stepsize_controller=controller, max_steps=self.max_steps,
                throw=False, adjoint=adjoint)
            ok = sol.result == diffrax.RESULTS.successful  # else NaN, as above
            y1 = sol.ys[-1] * jnp.where(ok, 1.0, jnp.nan).astype(y0.dtype)
        return y1 + layer_dynamics(neuron, current, s1, y1, mask) * (t1 - s1)

    def evaluate(self, neuron, current, ctx, t0, t1, y0, ts, moving=None):
        order = jnp.argsort(ts)
        clipped = jnp.clip(ts[order], t0, t1)
        sol = diffrax.diffeqsolve(
            self._term(), unrolled(self.solver), t0, t1, None, y0,
            (neuron, current, moving_mask(moving, y0)),
            saveat=diffrax.SaveAt(ts=clipped),
            stepsize_controller=self._controller(current, y0.dtype),
            max_steps=self.max_steps, throw=False,
        )
        return jnp.zeros_like(sol.ys).at[order].set(sol.ys)


def moving_mask(moving, y) -> Float[Array, " n"]:
    """``moving`` (bool per neuron, or ``None`` for all) as a 0/1 float mask."""
    if moving is None:
        return jnp.ones(y.shape[:1], y.dtype)
    return jax.lax.stop_gradient(moving.astype(y.dtype))


def layer_dynamics(neuron, current, t, y, mask) -> State:
    """The model's vector field with the neurons outside ``mask`` (0/1) held still."""
    return neuron.dynamics(t, y, current(t)) * mask[:, None]


def move_clock(neuron, current, t, y, gap, moving) -> State:
    """The state after moving each neuron's clock by ``gap`` along the flow, where
    ``gap`` is zero in value: ``y`` unchanged, with the derivative ``f(t, y)·d(gap)``.

    Used where a clock is re-based onto another, value-equal time (an input spike
    simultaneous with the one the clock came from), so that the derivative follows
    the new time. ``gap`` has one entry per neuron; neurons not ``moving`` stay put.
    """
    f = layer_dynamics(neuron, current, t, y, moving_mask(moving, y))
    return y + f * (gap - jax.lax.stop_gradient(gap))[:, None]


def hold(y, y0, moving):
    """``y`` for the ``moving`` neurons, ``y0`` (unchanged) for the others."""
    if moving is None:
        return y
    return jnp.where(moving[:, None], y, y0)


_FLOOR = -1e6  # event-function value of neurons that cannot fire any more


def event_function(neuron, current, t, y, active) -> Float[Array, " n"]:
    """Per neuron, its spike condition if it may still fire, else a large negative."""
    return jnp.where(active, neuron.spike_condition(t, y, current(t)), _FLOOR)


def event_function_and_rate(neuron, current, t, y, active):
    """``event_function`` and its time derivative along the flow."""
    f = neuron.dynamics(t, y, current(t))
    return jax.jvp(lambda t, y: event_function(neuron, current, t, y, active),
                   (t, y), (jnp.ones_like(t), f))


def condition_rate(neuron, current, t, y) -> Float[Array, " n"]:
    """d/dt of each neuron's spike condition along the flow at ``(t, y)``."""
    def g(t, y):
        return neuron.spike_condition(t, y, current(t))

    f = neuron.dynamics(t, y, current(t))
    return jax.jvp(g, (t, y), (jnp.ones_like(t), f))[1]


def implicit_time(t_found, residual, rate):
    """A crossing time with the derivative of the implicit function theorem.

    ``t_found`` is where a root finder put the crossing and ``residual`` is the spike
    condition there (zero up to tolerance), computed *differentiably* from the state
    and parameters; ``rate`` is the condition's time derivative there. The value is
    ``t_found`` itself; the derivative is ``-d(residual)/rate``, i.e. exactly
    d t*/d(anything) from g(t*, y(t*)) = 0.

    The value is deliberately not Newton-corrected: at a grazing crossing (rate → 0,
    the membrane just touching threshold) ``residual / rate`` is rounding noise
    divided by almost nothing and would throw the time arbitrarily far (in float32 it
    moved spike times by 10⁶ ms). The root finders already converge to a few ulps.
    ``rate`` is floored so that the derivative of a grazing crossing stays finite.
    """
    rate = jax.lax.stop_gradient(rate)
    tiny = jnp.finfo(jnp.result_type(rate)).eps
    safe = jnp.where(jnp.abs(rate) > tiny, rate, tiny)
    return jax.lax.stop_gradient(t_found) - (residual - jax.lax.stop_gradient(residual)) / safe


def is_loop_free(segments: "AbstractSegmentSolver", max_spikes: int) -> bool:
    """Whether a layer's spikes are computed without the event loop (first-spike mode
    on the exact path, `_first_spike.py`); its ``max_events`` is then a budget of
    input spikes, not of loop iterations."""
    return max_spikes == 1 and isinstance(segments, ExactSegments) and segments.parallel


def segment_solver_for(neuron: AbstractNeuron, solver, current_is_constant: bool):
    """Pick the segment strategy for a ``solver=`` argument.

    ``None`` means automatic: exact for linear models with ≤ 2 state variables and a
    constant current, otherwise ``diffrax.Tsit5()`` with tight tolerances.
    """
    from ._exact import ExactLinear

    if isinstance(solver, AbstractSegmentSolver):
        return solver
    if isinstance(solver, ExactLinear):
        return ExactSegments()
    if solver is None:
        exact_ok = (
            getattr(neuron, "linear", False)
            and neuron.state_size <= 2
            and current_is_constant
        )
        return ExactSegments() if exact_ok else DiffraxSegments()
    if isinstance(solver, diffrax.AbstractSolver):
        return DiffraxSegments(solver)
    raise TypeError(
        "`solver` must be None (automatic), es.ExactLinear(), a diffrax solver or an "
        f"eventsnn segment solver; got {type(solver).__name__}."
    )
