"""A scan over a prefix of traced length whose reverse mode costs that prefix only.

The EventProp replay (`_adjoint.py`) walks a layer's event log, which is allocated for
``max_events`` rows (a static bound) while a sample uses only its ``num_events``. With
``lax.scan`` both directions pay for every row: measured on a 5-120-3 LIF network in
multi-spike mode, the output layer's log has 1,969 rows and its busiest sample of a
batch of 32 used 189. Here the forward pass is a ``while_loop`` that stops after the
prefix (under ``vmap``: after the batch's longest), and the backward pass is a second
``while_loop`` that walks the same rows back, pulling the cotangent through each step
with ``jax.vjp``. The carry before every step is kept (one row per step, as the log
itself), so nothing is recomputed.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def scan_prefix(step: Callable, consts, init, xs, length):
    """``lax.scan(lambda c, x: step(consts, c, x), init, xs)`` over the first
    ``length`` rows of ``xs`` only.

    **Arguments:**

    - `step`: ``step(consts, carry, x) -> (carry, y)``, as for ``lax.scan``.
    - `consts`: a pytree the steps read. Its inexact arrays that are differentiated
      get cotangents, and the steps are differentiated with respect to those only;
      other leaves are held fixed.
    - `init`: the initial carry.
    - `xs`: a pytree of arrays with a leading axis of length ``E`` (not
      differentiated).
    - `length`: the number of rows to process, an integer ``≤ E`` (may be traced).

    **Returns:** ``(carry, ys)``: the carry after ``length`` steps, and the stacked
    ``y`` with rows from ``length`` on equal to zero.
    """
    arrays, static = eqx.partition(consts, eqx.is_array)
    rows = jax.tree.leaves(xs)[0].shape[0]

    def row(tree, k):
        return jax.tree.map(lambda a: a[k], tree)

    def put(buffers, k, values):
        return jax.tree.map(lambda buf, v: buf.at[k].set(v), buffers, values)

    # The stacked outputs' shapes, for the forward buffers and the backward pass's
    # zero cotangents (one abstract trace of a step, shared by both).
    _, y_shape = jax.eval_shape(
        lambda a, c, x: step(eqx.combine(a, static), c, x), arrays, init, row(xs, 0))
    ys_shape = jax.tree.map(lambda s: jax.ShapeDtypeStruct((rows, *s.shape), s.dtype),
                            y_shape)

    def forward(arrays, init, xs, length):
        consts = eqx.combine(arrays, static)
        ys = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), ys_shape)
        carries = jax.tree.map(lambda a: jnp.zeros((rows, *a.shape), a.dtype), init)

        def body(state):
            k, carry, ys, carries = state
            new, y = step(consts, carry, row(xs, k))
            return k + 1, new, put(ys, k, y), put(carries, k, carry)

        _, final, ys, carries = jax.lax.while_loop(
            lambda s: s[0] < length, body,
            (jnp.zeros((), jnp.int32), init, ys, carries))
        return final, ys, carries

    @eqx.filter_custom_vjp
    def run(vjp_arg, xs, length):
        arrays, init = vjp_arg
        final, ys, _ = forward(arrays, init, xs, length)
        return final, ys

    @run.def_fwd
    def run_fwd(perturbed, vjp_arg, xs, length):
        arrays, init = vjp_arg
        final, ys, carries = forward(arrays, init, xs, length)
        return (final, ys), carries

    @run.def_bwd
    def run_bwd(carries, cotangents, perturbed, vjp_arg, xs, length):
        arrays, init = vjp_arg
        # Only the differentiated constants are differentiated in the steps (the
        # rest is held fixed: a non-linear model's re-solves carry a sensitivity per
        # differentiated parameter, `_watched.sensitivity_solve`).
        diff, fixed = eqx.partition(arrays, perturbed[0])
        consts_fixed = eqx.combine(fixed, static)
        ct_final = _cotangent(init, cotangents[0])
        ct_ys = _cotangent(ys_shape, cotangents[1])

        def pull(state):
            k, ct_carry, ct_diff = state
            k = k - 1
            carry = row(carries, k)
            carry_diff, carry_fixed = eqx.partition(carry, _is_float)

            def f(diff, carry_diff):
                consts = eqx.combine(diff, consts_fixed)
                new, y = step(consts, eqx.combine(carry_diff, carry_fixed), row(xs, k))
                return _inexact(new), _inexact(y)

            _, vjp = jax.vjp(f, diff, carry_diff)
            d_diff, d_carry = vjp((ct_carry, row(ct_ys, k)))
            return k, d_carry, jax.tree.map(jnp.add, ct_diff, d_diff)

        zeros = jax.tree.map(jnp.zeros_like, diff)
        _, ct_init, ct_diff = jax.lax.while_loop(
            lambda s: s[0] > 0, pull, (length, ct_final, zeros))
        ct_init = jax.tree.map(lambda p, c: c if p else None, perturbed[1], ct_init)
        return ct_diff, ct_init

    return run((arrays, init), xs, jnp.asarray(length, jnp.int32))


def _cotangent(like, ct):
    """The cotangent ``ct`` of a tree shaped like ``like`` for the steps' `vjp`: the
    floating-point leaves (zeros where ``ct`` has ``None``, i.e. that output was not
    differentiated), ``None`` elsewhere."""
    refs, treedef = jax.tree.flatten(like)
    cts = [None] * len(refs) if ct is None else treedef.flatten_up_to(ct)

    def one(ref, c):
        if not jnp.issubdtype(ref.dtype, jnp.inexact):
            return None
        return jnp.zeros(ref.shape, ref.dtype) if c is None else c

    return jax.tree.unflatten(treedef, [one(r, c) for r, c in zip(refs, cts)])


def _is_float(leaf) -> bool:
    """Whether a leaf of a carry or a step's output carries a cotangent: inexact
    arrays, and also floating-point scalars that are not arrays (a step may produce
    a typed Python float)."""
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        return bool(jnp.issubdtype(leaf.dtype, jnp.inexact))
    return isinstance(leaf, (float, complex))


def _inexact(tree):
    """The leaves of ``tree`` that carry cotangents (``None`` elsewhere)."""
    return eqx.filter(tree, _is_float)
