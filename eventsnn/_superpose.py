"""EventProp's replay for linear layers with additive inputs, by superposition.

The general replay (`_adjoint.replay`) walks a layer's events one by one and pulls
the cotangent back through each; with many events (a multi-spike layer receives one per
presynaptic spike) that walk is most of a gradient step. A linear model whose input
spikes add a jump ``J(w)`` that does not depend on the state obeys superposition, and
its spike times can then be recomputed without walking the events. The trajectory
splits into two parts:

    y(t) = F(t) + D(t)

- ``F``, the *free response*: the trajectory from the initial state with every input
  spike and no reset. It does not depend on what the neuron does. Its input-driven
  part at every input time is one linear recurrence over the sorted inputs (the
  homogeneous flow over each gap as a matrix), solved in about ``2 √M`` sequential
  steps with a hand-written adjoint (`_linear_recurrence`); the part from the initial
  state under the constant drive is the flow itself, evaluated at the spikes only.
- ``D``, the *reset offset*: zero until the first spike; each spike adds the jump its
  reset makes, ``reset(y⁻) - y⁻``, and between spikes it follows the homogeneous flow,
  ``D(t) = exp(A(t - t_s)) D(t_s)``.

Given where each spike fell (the [`eventsnn._layer.SpikeOrigins`][] that the forward
event loop records) and its time, ``F`` is evaluated at every spike at once, and the
times are recomputed one spike slot at a time, all neurons at once (as many steps as
the busiest neuron has spikes, `_scan.scan_prefix`): ``D`` carried from the previous
spike, and the implicit function theorem on the spike condition
([`eventsnn._solve.implicit_time`][]). The values equal the forward pass's; reverse
mode through these steps and the recurrence gives the exact gradient with no
per-event work. The replay reuses the forward pass's sorting of the inputs (XLA's
sort is slow on CPU). The general replay stays the reference
(``ExactSegments(parallel=False)``), and the tests check that both agree.
"""

import math

import jax
import jax.numpy as jnp

from ._custom_types import Array, Float
from ._exact import matvec, rowdot
from ._layer import SpikeOrigins, input_intervals
from ._neuron import declares_kinks
from ._scan import scan_prefix
from ._solve import implicit_time


def applies(neuron) -> bool:
    """Whether a linear layer of this model can take this replay: its inputs must be
    additive (superposition) and its dynamics free of kinks."""
    if not getattr(neuron, "additive_input", False):
        return False
    return not declares_kinks(neuron)


def replay_spike_times(
    neuron, weights: Float[Array, "n_in n"], in_times: Float[Array, "n_in K"], ctx,
    origins: SpikeOrigins, times: Float[Array, "n max_spikes"], counts, *, t_max,
) -> Float[Array, "n max_spikes"]:
    """A layer's spike times from the forward pass, recomputed differentiably.

    **Arguments:**

    - `neuron`: the layer's model (`input_spikes`, `reset`, `init_state`).
    - `weights`, `in_times`: as for the layer.
    - `ctx`: ``(flow, c, g0)`` from [`eventsnn.ExactSegments.prepare`][].
    - `origins`, `times`, `counts`: what the forward event loop found.
    - `t_max`: end of the window.

    **Returns:** the same times (``+inf`` where there is no spike), now carrying the
    exact derivatives with respect to the model's parameters, the weights and the
    input times.
    """
    flow, c, g0 = ctx
    n = weights.shape[1]
    dtype = weights.dtype
    t_max = jnp.asarray(t_max, dtype)
    inputs, real, input_times, starts = input_intervals(in_times, t_max, dtype,
                                                        origins.order)
    ends = jnp.concatenate([input_times, t_max[None]])
    y0 = neuron.init_state(n).astype(dtype)
    f_inputs = _free_response(neuron, flow, weights, inputs, real, starts, ends)
    return _spike_times(neuron, flow, c, g0, y0, f_inputs, starts, origins, times,
                        counts)


# ------------------------------------------------------------ the free response
def _free_response(neuron, flow, weights, inputs, real, starts, ends):
    """The part of the free response that the input spikes make, at the start of
    every segment (just after its input): ``(M + 1, n, s)``, differentiable in
    everything. (The rest, the flow from the initial state under the constant drive,
    is evaluated only where it is needed.)"""
    n = weights.shape[1]
    zero = jnp.zeros((n, neuron.state_size), weights.dtype)
    jumps = jax.vmap(lambda w: neuron.input_spikes(zero, w))(weights[inputs.channels])
    jumps = jnp.where(real[:, None, None], jumps, 0.0)  # (M, n, s)
    gaps = ends[:-1] - starts[:-1]  # from the previous input to this one
    if _shared_parameters(neuron):
        # Every neuron has the same flow: one matrix per gap, (M, 1, s, s), which the
        # recurrence broadcasts over the neurons (a layer of n neurons: n times fewer
        # matrices to form, compose and differentiate).
        one = jax.tree.map(lambda a: a[:1], flow)
        phi = jax.vmap(lambda gap: one.matrix(gap[None]))(gaps)
    else:
        phi = jax.vmap(lambda gap: flow.matrix(jnp.broadcast_to(gap, (n,))))(gaps)
    after = _linear_recurrence(phi, jumps, zero)
    return jnp.concatenate([zero[None], after])


def _shared_parameters(neuron) -> bool:
    """Whether every neuron of the population has the same parameters (each array in
    the model a scalar), so that all share one flow: a model describes a population
    of identical neurons whose parameters are scalars or one value per neuron."""
    return all(jnp.ndim(leaf) == 0 for leaf in jax.tree.leaves(neuron))


@jax.custom_vjp
def _linear_recurrence(phi, q, x0):
    """``x[k] = phi[k] @ x[k-1] + q[k]`` for every row ``k`` (``x[-1] = x0``);
    ``phi`` is ``(M, n, s, s)``, or ``(M, 1, s, s)`` for one matrix shared by the
    ``n`` neurons of ``q`` and ``x0`` (``(M, n, s)``, ``(n, s)``).

    The derivative is the adjoint recurrence, solved the same way; the cotangent of
    ``phi`` is then formed for all rows at once.
    """
    return _solve(phi, q, x0)


def _solve(phi, q, x0):
    """The recurrence in about ``2 √M`` sequential steps instead of ``M``.

    The rows are cut into blocks of ``R ≈ √M``. One scan of ``R`` steps composes the
    maps within every block at once (each block's prefix maps), one scan over the
    blocks carries the state from block to block, and the states inside the blocks
    then follow at once. On a CPU each sequential step costs far more in overhead
    than its few multiplies, so it is the number of steps that counts.
    """
    m = phi.shape[0]
    r = max(1, int(math.isqrt(m)))
    blocks = -(-m // r)
    pad = blocks * r - m
    eye = jnp.broadcast_to(jnp.eye(phi.shape[-1], dtype=phi.dtype), phi.shape[1:])
    phi = jnp.concatenate([phi, jnp.broadcast_to(eye, (pad, *eye.shape))])
    q = jnp.concatenate([q, jnp.zeros((pad, *q.shape[1:]), q.dtype)])
    # (r, blocks, ...): row i of every block at once
    phi = jnp.swapaxes(phi.reshape(blocks, r, *phi.shape[1:]), 0, 1)
    q = jnp.swapaxes(q.reshape(blocks, r, *q.shape[1:]), 0, 1)

    def compose(carry, row):  # the maps from a block's start through row i
        (big_p, big_q), (p, qk) = carry, row
        carry = _matmul(p, big_p), matvec(p, big_q) + qk
        return carry, carry

    start = (jnp.broadcast_to(eye, phi.shape[1:]), jnp.zeros_like(q[0]))
    _, (big_p, big_q) = jax.lax.scan(compose, start, (phi, q))

    def across(x, block):  # the state entering each block
        p_all, q_all = block
        return matvec(p_all, x) + q_all, x

    _, entering = jax.lax.scan(across, x0, (big_p[-1], big_q[-1]))
    xs = matvec(big_p, entering[None]) + big_q  # (r, blocks, n, s)
    return jnp.swapaxes(xs, 0, 1).reshape(blocks * r, *xs.shape[2:])[:m]


def _recurrence_fwd(phi, q, x0):
    xs = _solve(phi, q, x0)
    return xs, (phi, x0, xs)


def _recurrence_bwd(residuals, ct):
    phi, x0, xs = residuals
    # lam[k] = ct[k] + phi[k+1]^T lam[k+1]: the same recurrence, rows reversed.
    phi_t_next = jnp.swapaxes(jnp.concatenate([phi[1:], jnp.zeros_like(phi[:1])]),
                              -1, -2)
    lams = _solve(phi_t_next[::-1], ct[::-1], jnp.zeros_like(x0))[::-1]
    before = jnp.concatenate([x0[None], xs[:-1]])  # x[k-1]
    if phi.shape[1] == 1 and lams.shape[1] != 1:  # one matrix shared by the neurons
        # (a contraction: `jnp.sum` over this short middle axis of the outer products
        # ran ~25x slower on XLA:CPU, 64 vs 2.5 ms at batch 256)
        ct_phi = jnp.einsum("kni,knj->kij", lams, before)[:, None]
    else:
        ct_phi = lams[..., :, None] * before[..., None, :]
    ct_x0 = matvec(jnp.swapaxes(phi[0], -1, -2), lams[0])
    return ct_phi, lams, ct_x0


_linear_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def _matmul(a, b):
    """``a @ b`` over the last two (tiny) axes, spelled out (see `_exact.rowdot`)."""
    s = a.shape[-1]
    return jnp.stack([jnp.stack([sum(a[..., i, k] * b[..., k, j] for k in range(s))
                                 for j in range(s)], -1) for i in range(s)], -2)


# ------------------------------------------------------- differentiable times
def _spike_times(neuron, flow, c, g0, y0, f_inputs, starts, origins, t_found,
                 counts):
    """The found spike times again, now carrying their exact derivatives: one step
    per spike slot, all neurons at once, and only as many steps as the busiest
    neuron has spikes (`_scan.scan_prefix`). Returns ``(n, max_spikes)``, ``+inf``
    where a neuron fired fewer times."""
    seg = origins.segment.T  # (max_spikes, n): slot r of every neuron
    max_spikes, n = seg.shape
    rows = jnp.arange(n)
    t_found = jax.lax.stop_gradient(t_found.T)
    exists = jnp.arange(max_spikes)[:, None] < jnp.minimum(counts, max_spikes)
    t_found = jnp.where(exists, t_found, 0.0)
    # A spike "at once" in the segment of the previous one, at its very time: the
    # reset left the neuron above threshold. Any other comes as its segment starts.
    repeat = jnp.concatenate([jnp.zeros((1, n), bool),
                              (seg[1:] == seg[:-1]) & (t_found[1:] == t_found[:-1])])
    slots = dict(t=t_found, exists=exists, now=origins.now.T, repeat=repeat,
                 r=jnp.arange(max_spikes))
    # F at every spike, outside the loop (it does not depend on the other spikes),
    # differentiable: the inputs' part from its value at the segment's start, and
    # the flow from the initial state under the drive.
    start_seg = starts[seg]
    f_spike = (jax.vmap(flow.homogeneous)(t_found - start_seg, f_inputs[seg, rows])
               + jax.vmap(lambda t: flow(t, y0))(t_found))
    consts = (neuron, flow, c, g0, f_spike, start_seg)

    def step(consts, carry, slot):
        neuron, flow, c, g0, f_spike, start_seg = consts
        t_prev, d_prev = carry  # the previous spike's time and D just after it
        exists, t_f = slot["exists"], slot["t"]
        f = f_spike[slot["r"]]
        # (no negative elapsed time where there is no spike: it could overflow)
        y = f + flow.homogeneous(jnp.where(exists, t_f - t_prev, 0.0), d_prev)
        residual = rowdot(c, y) + g0
        rate = rowdot(c, flow.velocity(y))
        crossed = implicit_time(t_f, residual, rate)
        at_once = jnp.where(slot["repeat"], t_prev, start_seg[slot["r"]])
        t_r = jnp.where(slot["now"], at_once, crossed)
        # y and F at t_r: equal in value to those at t_f, first order in t_r - t_f
        # (zero in value), so the derivative with respect to the spike time is exact.
        delta = (t_r - jax.lax.stop_gradient(t_r))[:, None]
        y_r = y + flow.velocity(y) * delta
        f_r = f + flow.velocity(f) * delta
        d_r = neuron.reset(y_r, exists) - f_r
        t_prev = jnp.where(exists, t_r, t_prev)
        d_prev = jnp.where(exists[:, None], d_r, d_prev)
        return (t_prev, d_prev), t_r

    init = (jnp.zeros((n,), y0.dtype), jnp.zeros_like(y0))
    busiest = jnp.max(jnp.minimum(counts, max_spikes))
    _, times = scan_prefix(step, consts, init, slots, busiest)
    return jnp.where(exists, times, jnp.inf).T
