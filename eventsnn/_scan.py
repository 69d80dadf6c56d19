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
    - `consts`: a pytree the steps read (differentiated: its inexact arrays get
      cotangents; other leaves are held fixed).
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

    def forward(arrays, init, xs, length):
        consts = eqx.combine(arrays, static)
        _, y_shape = jax.eval_shape(lambda c, x: step(consts, c, x), init, row(xs, 0))
        ys = jax.tree.map(lambda s: jnp.zeros((rows, *s.shape), s.dtype), y_shape)
        carries = jax.tree.map(lambda a: jnp.zeros((rows, *a.shape), a.dtype), init)

        def body(state):
            k, carry, ys, carries = state
            new, y = step(consts, carry, row(xs, k))
            return k + 1, new, put(ys, k, y), put(carries, k, carry)

        _, final, ys, carries = jax.lax.while_loop(
            lambda s: s[0] < length, body,
            (jnp.zeros((), jnp.int32), init, ys, carries))
        return final, ys, carries

    @jax.custom_vjp
    def run(arrays, init, xs, length):
        final, ys, _ = forward(arrays, init, xs, length)
        return final, ys

    def run_fwd(arrays, init, xs, length):
        final, ys, carries = forward(arrays, init, xs, length)
        return (final, ys), (arrays, xs, length, carries)

    def run_bwd(residuals, cotangents):
        arrays, xs, length, carries = residuals
        ct_final, ct_ys = cotangents
        diff, fixed = eqx.partition(arrays, _is_float)

        def pull(state):
            k, ct_carry, ct_diff = state
            k = k - 1
            carry = row(carries, k)
            carry_diff, carry_fixed = eqx.partition(carry, _is_float)

            def f(diff, carry_diff):
                consts = eqx.combine(diff, fixed, static)
                new, y = step(consts, eqx.combine(carry_diff, carry_fixed), row(xs, k))
                return _inexact(new), _inexact(y)

            _, vjp = jax.vjp(f, diff, carry_diff)
            d_diff, d_carry = vjp((ct_carry, row(_inexact(ct_ys), k)))
            return k, d_carry, jax.tree.map(jnp.add, ct_diff, d_diff)

        zeros = jax.tree.map(jnp.zeros_like, diff)
        _, ct_init, ct_diff = jax.lax.while_loop(
            lambda s: s[0] > 0, pull, (length, _inexact(ct_final), zeros))
        init_like = row(carries, 0)
        return (_with_float0(eqx.combine(ct_diff, fixed)),
                _with_float0(eqx.combine(ct_init, eqx.filter(init_like, _not_inexact))),
                jax.tree.map(_zero_cotangent, xs),
                _zero_cotangent(length))

    run.defvjp(run_fwd, run_bwd)
    return run(arrays, init, xs, jnp.asarray(length, jnp.int32))


def _is_float(leaf) -> bool:
    """Whether a leaf carries a cotangent: inexact arrays, and also floating-point
    scalars that are not arrays (under ``jit``, a constant model parameter can reach
    the steps as a typed Python float, and JAX still expects its cotangent)."""
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        return bool(jnp.issubdtype(leaf.dtype, jnp.inexact))
    return isinstance(leaf, (float, complex))


def _inexact(tree):
    """The leaves of ``tree`` that carry cotangents (``None`` elsewhere)."""
    return eqx.filter(tree, _is_float)


def _not_inexact(leaf) -> bool:
    return not _is_float(leaf)


def _zero_cotangent(a):
    if _is_float(a):
        return jnp.zeros_like(a)
    return np.zeros(np.shape(a), jax.dtypes.float0)


def _with_float0(tree):
    """Cotangents for a tree whose non-inexact leaves carried none: ``float0`` zeros
    for integer and boolean arrays."""
    return jax.tree.map(lambda a: a if _is_float(a) else _zero_cotangent(a), tree)
