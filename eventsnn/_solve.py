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
import optimistix as optx

from ._current import AbstractCurrent
from ._custom_types import Array, Bool, Float, State
from ._exact import AffineFlow, first_crossing
from ._neuron import AbstractNeuron


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
    return 1e-9 if jnp.finfo(dtype).bits >= 64 else 1e-6


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
        """Per-simulation constants (computed once, outside the event loop)."""

    @abc.abstractmethod
    def advance(self, neuron, current, ctx, t0, t1, y0: State, active) -> Segment:
        """Integrate from ``t0`` towards ``t1``; stop at the first upward crossing of
        the spike condition by an ``active`` neuron."""

    @abc.abstractmethod
    def evaluate(self, neuron, current, ctx, t0, t1, y0: State, ts) -> Float[Array, "T n s"]:
        """The state at each of ``ts`` (clipped into ``[t0, t1]``), with no event
        between ``t0`` and ``t1``."""


class ExactSegments(AbstractSegmentSolver):
    """Exact flow map + closed-form bracket + Newton: for linear models only.

    Refuses (``ValueError``) a model that is not marked ``linear``, has more than two
    state variables, or is driven by a time-varying current.
    """

    max_iters: int = eqx.field(static=True, default=60)

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
        """
        flow, c, g0 = ctx
        length = jnp.maximum(t1 - t0, 0.0)
        tau = first_crossing(flow, c, g0, y0, length, active, self.max_iters)
        hit = jnp.isfinite(tau)
        tau_end = jnp.where(hit, tau, length)
        y = flow(tau_end, y0)
        failed = ~jnp.all(flow.real) | ~jnp.all(jnp.isfinite(y))
        return Segment(t0 + tau_end, y, hit, hit, failed)

    def evaluate(self, neuron, current, ctx, t0, t1, y0, ts):
        flow = ctx[0]
        tau = jnp.clip(ts[:, None], t0, t1) - t0  # (T, n): each neuron's own clock
        return jax.vmap(lambda s: flow(s, y0))(tau)


class DiffraxSegments(AbstractSegmentSolver):
    """Any diffrax solver with an adaptive step-size controller.

    **Arguments:**

    - `solver`: a diffrax solver (default ``diffrax.Tsit5()``).
    - `rtol`, `atol`: step-size controller tolerances (default: 1e-9 in float64,
      1e-6 in float32).
    - `root_tol`: tolerance of the spike-time root find (default: 1e-12 / 1e-6).
    - `max_steps`: solver steps allowed between two events; exceeding it is reported
      as ``solver_failed``, never silently truncated.
    - `dtmax`: largest step, so that a brief threshold excursion cannot be stepped
      over (default: no limit).
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    root_tol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=4096)
    dtmax: float | None = eqx.field(static=True, default=None)

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

    def _term(self, neuron, current):
        return diffrax.ODETerm(lambda t, y, _: neuron.dynamics(t, y, current(t)))

    def advance(self, neuron, current, ctx, t0, t1, y0, active):
        dtype = y0.dtype
        root_tol = self.root_tol or (1e-12 if jnp.finfo(dtype).bits >= 64 else 1e-6)
        floor = jnp.asarray(-1e6, dtype)

        def cond_fn(t, y, args, **kwargs):
            g = neuron.spike_condition(t, y, current(t))
            return jnp.max(jnp.where(active, g, floor))

        event = diffrax.Event(
            cond_fn, root_finder=optx.Newton(rtol=root_tol, atol=root_tol),
            direction=True,
        )
        sol = diffrax.diffeqsolve(
            self._term(neuron, current), self.solver, t0, t1, None, y0,
            stepsize_controller=self._controller(current, dtype),
            event=event, max_steps=self.max_steps, throw=False,
        )
        t_end, y = sol.ts[-1], sol.ys[-1]
        hit = sol.result == diffrax.RESULTS.event_occurred
        ok = hit | (sol.result == diffrax.RESULTS.successful)
        g = jnp.where(active, neuron.spike_condition(t_end, y, current(t_end)), floor)
        spiked = active & hit & ((g >= jnp.max(g)) | (g >= 0))
        failed = ~ok | ~jnp.all(jnp.isfinite(y))
        return Segment(t_end, y, hit, spiked, failed)

    def evaluate(self, neuron, current, ctx, t0, t1, y0, ts):
        order = jnp.argsort(ts)
        clipped = jnp.clip(ts[order], t0, t1)
        sol = diffrax.diffeqsolve(
            self._term(neuron, current), self.solver, t0, t1, None, y0,
            saveat=diffrax.SaveAt(ts=clipped),
            stepsize_controller=self._controller(current, y0.dtype),
            max_steps=self.max_steps, throw=False,
        )
        return jnp.zeros_like(sol.ys).at[order].set(sol.ys)


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
