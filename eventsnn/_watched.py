"""The replays' differentiated re-solve: forward sensitivities on the solve's own steps.

The replays of the EventProp backward pass (`_adjoint.py` through `_solve.py`, and
`_first_spike_ode.py`) re-solve each stretch between events of a non-linear layer and
differentiate that solve. Three ways were measured before this one, and each failed:

- diffrax's ``BacksolveAdjoint`` integrates the state *backwards* alongside the
  adjoint. A resting state that attracts forwards repels backwards (Izhikevich: at
  ~0.6 per ms), so over a 25 ms stretch float32 rounding grows ~e^15-fold: the
  backward state ran away and the solve spent ``max_steps`` chasing it (one such
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
- The same reverse mode with a *watched tangent* in the state (below), so that the
  steps resolve the linearised flow too, was right in float64. But its backward pass
  recomputes the steps between checkpoints and decides again whether each trial
  step is accepted; in float32 at the tolerances used here that decision is rounding
  noise (a 1-ulp change of the state moves the proposed step by ~1 %), and XLA does
  not promise the same rounding for the forward loop and its recomputation (they are
  compiled apart). Under the test suite's compiler flags a trial step the forward
  pass had rejected was accepted on recomputation, and its Jacobian (1.36 in an EIF
  upstroke) entered the gradient (hidden layer, 36 % off). Its backward pass also
  traced the solver step several times: about 40 % of the tracing of an EIF
  gradient program, and 25-45 % more compile time than the way below.

[`sensitivity_solve`][] keeps the watched tangent and takes each step once: the state
is ``(y, ẏ, S)``. ``ẏ`` follows ``dẏ/dt = ∂f/∂y(y) ẏ`` from a fixed generic direction,
and the controller's error estimate covers ``y`` and ``ẏ`` (not ``S``), so the steps
resolve the linearised flow; any derivative of the solution is a combination of such
linearised solutions, so steps that resolve one generic tangent resolve them all.
``S`` holds the derivatives of ``y`` with respect to what is differentiated, carried
on the same steps (Runge-Kutta steps commute with linearisation: the derivative of
the discrete solution), and the reverse pass only contracts them with the cotangent.
Cost: one linearisation of the vector field per stage, applied to the tangent and to
each direction (a few per model: one per state variable and per parameter, since
neurons do not interact), and no states kept for the backward pass.

The solve's times (or, in the rescaled first-spike replay, its lengths) are
differentiated by the callers, by the flow's identity ∂y(t1)/∂t1 = f(y(t1)) rather
than through the steps: the derivative with respect to an input spike's time is the
difference of two such terms (the stretch before it ends, the one after it starts),
and through the steps, in float32, it was 36 % off (an EIF output layer).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._exact import rowdot


def _direction(y0):
    """A fixed direction with no special structure (all entries non-zero, varied
    signs and sizes), scaled like the state so that the controller's relative
    tolerance weighs both alike."""
    pattern = jnp.sin(1.0 + jnp.arange(y0.size, dtype=y0.dtype)).reshape(y0.shape)
    return (0.5 + jnp.abs(pattern)) * jnp.sign(pattern) * (jnp.abs(y0) + 1.0)


def _solve_to_end(term, solver, controller, t0, t1, dt0, state0, args, max_steps):
    """The re-solve's diffrax call: up to twice the forward pass's `max_steps` (the
    tangent can make the steps smaller), and a final state *times NaN* (every leaf)
    where the solve did not finish. Nothing differentiates through the loop
    (`sensitivity_solve` carries its derivatives), so it is a plain ``while_loop``
    (``ForwardMode``: no checkpoints). Returns ``state1``."""
    sol = diffrax.diffeqsolve(
        term, solver, t0, t1, dt0, state0, args, stepsize_controller=controller,
        max_steps=2 * max_steps, throw=False, adjoint=diffrax.ForwardMode(),
    )
    ok = sol.result == diffrax.RESULTS.successful
    return jax.tree.map(
        lambda ys: ys[-1] * jnp.where(ok, 1.0, jnp.nan).astype(ys.dtype), sol.ys)


def sensitivity_solve(field, solver, controller, t0, t1, dt0, y0, args, *,
                      max_steps, constant=()):
    """``y(t1)`` of ``dy/dt = field(t, y, args)`` from ``y0`` at ``t0``, for reverse
    mode with respect to ``y0`` and ``args`` (not the times), by forward
    sensitivities on the solve's own steps (module docstring).

    ``y0`` is ``(rows, state columns)``: one row per neuron, and rows do not interact
    in the field. The solve carries, besides the state and the watched tangent
    (which alone steer the step size), the derivatives of the state with respect to
    each state column of ``y0`` and to each floating-point leaf of ``args``, for
    those of them that are differentiated (training only the weights needs the state
    columns alone); the reverse pass contracts them with the cotangent. Without a
    derivative the solve carries only the state and the tangent, and takes the same
    steps. One direction per state column serves all rows, and so does one per leaf
    that is a scalar or has one value per row (`param`: "scalar or one value per
    neuron"); any other leaf takes one direction per element.

    ``max_steps`` is the forward pass's budget for the same stretch; the re-solve may
    take twice as many. A solve that still does not reach ``t1`` returns ``y1``
    *times NaN*: its value and every derivative through it are NaN, never a finite
    but wrong gradient. The layer's backward pass (`_adjoint.with_replay_gradient`)
    then returns NaN for the sample if its spike times were used, zeros if not.

    ``t0`` and ``t1`` may be Python floats (constants of the compiled program, in the
    state's dtype). Pass ``dt0=None`` (the controller picks the first step): a given
    ``dt0`` makes diffrax check the sign of ``(t1 - t0) * dt0`` by a run-time error,
    a host callback, which keeps the program out of JAX's persistent compilation
    cache. ``args`` is a tuple; the entries at the positions in ``constant`` are held
    constant (no sensitivities: they must not need a derivative). Returns ``y1``; a
    failed solve shows as NaN in it and in its derivatives.
    """
    y0 = jnp.asarray(y0)
    n, s = y0.shape
    spec = tuple(False if i in constant else eqx.is_inexact_array
                 for i in range(len(args)))
    diff, static = eqx.partition(args, spec)
    leaves, treedef = jax.tree.flatten(diff)

    # Directions: ("y", state column) or ("leaf", leaf index, element; None: all).
    # Only what is differentiated gets one (`perturbed`): training the weights alone
    # needs the state columns and nothing else.
    def per_row(leaf):
        return leaf.ndim == 0 or leaf.shape == (n,)

    def directions(perturbed):
        y_perturbed, leaf_perturbed = perturbed
        dirs = [("y", c) for c in range(s)] if y_perturbed else []
        for i, leaf in enumerate(leaves):
            if not leaf_perturbed[i]:
                continue
            if per_row(leaf):
                dirs.append(("leaf", i, None))
            else:
                dirs.extend(("leaf", i, e) for e in range(leaf.size))
        return dirs

    def unit(d, i, leaf):  # direction d's tangent of leaf i
        if d[0] != "leaf" or d[1] != i:
            return jnp.zeros_like(leaf)
        if d[2] is None:
            return jnp.ones_like(leaf)
        return jnp.zeros(leaf.size, leaf.dtype).at[d[2]].set(1.0).reshape(leaf.shape)

    def run(y0, leaves_, t0, t1, dt0, controller, static, dirs):
        """The solve; with `dirs`, also the sensitivities in those directions (else
        only the state and the watched tangent, for the same steps)."""
        a = eqx.combine(jax.tree.unflatten(treedef, leaves_), static)
        if dirs:
            # Per leaf, its tangent in every direction (stacked: vmapped below).
            arg_ts = [jnp.stack([unit(d, i, leaf) for d in dirs])
                      for i, leaf in enumerate(leaves_)]
            S0 = jnp.stack([jnp.zeros_like(y0).at[:, d[1]].set(1.0) if d[0] == "y"
                            else jnp.zeros_like(y0) for d in dirs])

        def augmented(t, state, a):
            y, tangent = state[:2]
            lv, st = eqx.partition(a, spec)
            lv = jax.tree.leaves(lv)

            def g(y, lv):
                return field(t, y, eqx.combine(jax.tree.unflatten(treedef, lv), st))

            # One linearisation per stage, applied to the watched tangent and to
            # every sensitivity direction.
            f, lin = jax.linearize(g, y, lv)
            df = lin(tangent, [jnp.zeros_like(leaf) for leaf in lv])
            if not dirs:
                return f, df
            return f, df, jax.vmap(lin)(state[2], arg_ts)

        base_norm = controller.norm

        def norm(state):  # the steps follow the state and the watched tangent only
            return base_norm((state[0], state[1]))

        ctrl = eqx.tree_at(lambda c: c.norm, controller, norm)
        t0, t1 = (np.asarray(t, y0.dtype) if isinstance(t, float) else t
                  for t in (t0, t1))
        state0 = (y0, _direction(y0)) + ((S0,) if dirs else ())
        state1 = _solve_to_end(diffrax.ODETerm(augmented), solver, ctrl, t0, t1, dt0,
                               state0, a, max_steps)
        return state1[0], (state1[2] if dirs else None)

    @eqx.filter_custom_vjp
    def solve(vjp_arg, t0, t1, dt0, controller, static):
        y0, leaves_ = vjp_arg
        return run(y0, leaves_, t0, t1, dt0, controller, static, None)[0]

    @solve.def_fwd
    def solve_fwd(perturbed, vjp_arg, t0, t1, dt0, controller, static):
        y0, leaves_ = vjp_arg
        return run(y0, leaves_, t0, t1, dt0, controller, static, directions(perturbed))

    @solve.def_bwd
    def solve_bwd(S, ct, perturbed, vjp_arg, *_):
        _, leaves_ = vjp_arg
        dirs = directions(perturbed)
        proj = rowdot(S, ct)  # (directions, rows)
        ct_y0 = None
        if perturbed[0]:
            ct_y0 = jnp.stack([proj[j] for j, d in enumerate(dirs) if d[0] == "y"],
                              axis=-1)
        ct_leaves = [jnp.zeros_like(leaf) if p else None
                     for leaf, p in zip(leaves_, perturbed[1])]
        for j, d in enumerate(dirs):
            if d[0] != "leaf":
                continue
            i, e = d[1], d[2]
            leaf = leaves_[i]
            if e is None:
                v = jnp.sum(proj[j]) if leaf.ndim == 0 else proj[j]
                ct_leaves[i] = ct_leaves[i] + v.astype(leaf.dtype)
            else:
                flat = ct_leaves[i].reshape(-1).at[e].add(jnp.sum(proj[j]))
                ct_leaves[i] = flat.reshape(leaf.shape)
        return ct_y0, ct_leaves

    return solve((y0, leaves), t0, t1, dt0, controller, static)
