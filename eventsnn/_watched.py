"""A differentiable solve whose step sizes also resolve the solution's sensitivities.

The replays of the EventProp backward pass (`_adjoint.py`, `_first_spike_ode.py`)
re-solve each stretch between events and differentiate that solve. Two ways were
measured, and both fail on a model with a stable resting state (Izhikevich):

- diffrax's ``BacksolveAdjoint`` integrates the state *backwards* alongside the
  adjoint. A resting state that attracts forwards repels backwards (Izhikevich: at
  ~0.6 per ms), so over a 25 ms stretch float32 rounding grows ~e^15-fold: the
  backward state runs away and the solve spends ``max_steps`` chasing it (one such
  neuron in a batch of 256 made the 5-120-3 gradient step 28 s instead of ~1 s, and
  its gradient wrong), and the float32 gradients of the benchmark batch were 2 %
  off float64's.
- Reverse mode through the steps (``RecursiveCheckpointAdjoint``) is stable, but
  only as accurate as the steps are for the *sensitivities*, which the step-size
  controller never sees: a neuron that sits exactly at rest has a zero vector field,
  so the controller takes one long step, exact for the state, while its derivative
  with respect to a bias (which moves the resting point) follows the linearised
  dynamics through that step far outside the method's stability region (58 % off on
  an output layer's bias, float64).

Here the solve is reverse-mode differentiated, and carries a tangent along: the state
is ``(y, ẏ)`` with ``dẏ/dt = ∂f/∂y(y) ẏ``, started from a fixed generic direction, so
the controller's error estimate also covers the linearised flow, the thing reverse
mode differentiates. The tangent is cut out of the gradient (``stop_gradient``): it
decides the step sizes and nothing else. Any derivative of the solution is a
combination of such linearised solutions, so steps that resolve one generic tangent
resolve them. Cost: a Jacobian–vector product per stage and a state twice the size,
in the replay only (the forward pass does not change).

The solve's times (or, in the rescaled first-spike replay, its lengths) are
differentiated by the callers, by the flow's identity ∂y(t1)/∂t1 = f(y(t1)) rather
than through the steps: the derivative with respect to an input spike's time is the
difference of two such terms (the stretch before it ends, the one after it starts),
and through the steps, in float32, it was 36 % off (an EIF output layer).
"""

import diffrax
import jax
import jax.numpy as jnp

# States kept per solve for reverse mode (diffrax's default is ~sqrt(2 max_steps), 90
# for 4096). A re-solve between two events rarely takes more than 16 steps (the
# Izhikevich benchmark batch: 4.7 on average); beyond that, steps are recomputed
# rather than stored. The first-spike replay keeps them for every input interval of
# every sample until the backward pass, so their number is memory.
_CHECKPOINTS = 16


def _watched_term(field):
    def augmented(t, state, args):
        y, tangent = state
        f, df = jax.jvp(lambda y: field(t, y, args), (y,), (tangent,))
        return f, jax.lax.stop_gradient(df)

    return diffrax.ODETerm(augmented)


def _direction(y0):
    """A fixed direction with no special structure (all entries non-zero, varied
    signs and sizes), scaled like the state so that the controller's relative
    tolerance weighs both alike."""
    pattern = jnp.sin(1.0 + jnp.arange(y0.size, dtype=y0.dtype)).reshape(y0.shape)
    return (0.5 + jnp.abs(pattern)) * jnp.sign(pattern) * (jnp.abs(y0) + 1.0)


def watched_solve(field, solver, controller, t0, t1, dt0, y0, args, *, max_steps):
    """``y(t1)`` of ``dy/dt = field(t, y, args)`` from ``y0`` at ``t0``, to be
    differentiated in reverse mode (with respect to ``y0`` and ``args``; not the
    times), with the steps chosen for the state and a tangent of it (module
    docstring). ``y0`` is an array. Returns ``(y1, result)``: ``result`` is diffrax's
    outcome.

    ``max_steps`` is the forward pass's budget for the same stretch; the re-solve may
    take twice as many (the tangent can make its steps smaller), at no cost in
    memory (a fixed number of checkpoints). A solve that still does not reach ``t1``
    returns ``y1`` *times NaN*: its value and every derivative through it are NaN,
    never a finite but wrong gradient. The layer's backward pass
    (`_adjoint.with_replay_gradient`) then returns NaN for the sample if its spike
    times were used, zeros if not."""
    y0 = jnp.asarray(y0)
    tangent = jax.lax.stop_gradient(_direction(y0))
    sol = diffrax.diffeqsolve(
        _watched_term(field), solver, t0, t1, dt0, (y0, tangent), args,
        stepsize_controller=controller, max_steps=2 * max_steps, throw=False,
        adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=_CHECKPOINTS),
    )
    ok = sol.result == diffrax.RESULTS.successful
    return sol.ys[0][-1] * jnp.where(ok, 1.0, jnp.nan).astype(y0.dtype), sol.result
