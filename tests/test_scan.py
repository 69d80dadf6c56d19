"""`_scan.scan_prefix`: a scan over a traced-length prefix, the EventProp replay's
loop. Same values and gradients as ``lax.scan`` over that prefix, under ``vmap`` with
a different length per sample, and its steps past the prefix are never run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import undifferentiable

from eventsnn._scan import scan_prefix

jax.config.update("jax_enable_x64", True)


def step(consts, carry, x):
    # A non-linear recurrence with an integer carry and a boolean output, as the
    # replay has (counts, spiked).
    a, b, offsets = consts
    y, count = carry
    value, flag = x
    new = jnp.tanh(a * y + b * value) + offsets[count % 2]
    fired = flag & (new > 0)
    return (new, count + fired), (fired, new * value)


def loss_of(carry, ys):
    (y, count), (fired, out) = carry, ys
    return jnp.sum(y ** 2) + jnp.sum(jnp.where(fired, out, 0.0) * 0.3) + jnp.sum(count)


def reference(consts, init, xs, length):
    """lax.scan over exactly the prefix (length known here: a Python int)."""
    prefix = jax.tree.map(lambda a: a[:length], xs)
    carry, ys = jax.lax.scan(lambda c, x: step(consts, c, x), init, prefix)
    return loss_of(carry, ys)


def test_values_and_gradients_match_a_scan_over_the_prefix_under_vmap():
    # Gradients with respect to the constants and the initial carry (the rows of xs
    # are data: the replay's log).
    rng = np.random.default_rng(0)
    rows, batch = 12, 3
    consts = (jnp.asarray(0.7), jnp.asarray(1.3), jnp.asarray([0.1, -0.2]))
    values = jnp.asarray(rng.normal(size=(batch, rows, 2)))
    flags = jnp.asarray(rng.uniform(size=(batch, rows)) < 0.6)
    lengths = jnp.array([0, 5, 12])
    y0 = jnp.asarray([0.3, -0.4])

    def ours(consts, y0, values, flags, length):
        carry, ys = scan_prefix(step, consts, (y0, jnp.zeros(2, int)),
                                (values, flags), length)
        # Rows past the prefix are zero: the loss may read them.
        return loss_of(carry, ys)

    args = (consts, y0, values, flags, lengths)
    axes = (None, None, 0, 0, 0)
    got = jax.jit(jax.vmap(ours, axes))(*args)
    grads = jax.jit(jax.vmap(jax.grad(ours, argnums=(0, 1)), axes))(*args)
    for b, length in enumerate(np.asarray(lengths)):
        xs = (values[b], flags[b])

        def want(consts, y0, xs=xs, length=int(length)):
            return reference(consts, (y0, jnp.zeros(2, int)), xs, length)

        np.testing.assert_allclose(got[b], want(consts, y0), rtol=1e-13)
        expected = jax.grad(want, argnums=(0, 1))(consts, y0)
        assert any(np.any(np.asarray(w) != 0) for w in jax.tree.leaves(expected))
        for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
            np.testing.assert_allclose(g[b], w, rtol=1e-12, atol=1e-14)


def test_steps_past_the_prefix_are_not_run():
    calls = []

    def counting(consts, carry, x):
        jax.debug.callback(lambda: calls.append(1))
        return carry + consts * x, carry

    xs = jnp.arange(10.0)
    carry, ys = scan_prefix(counting, jnp.asarray(2.0), jnp.asarray(0.0), xs, 4)
    jax.effects_barrier()
    assert float(carry) == 2.0 * (0 + 1 + 2 + 3)
    np.testing.assert_array_equal(ys[4:], 0.0)
    assert len(calls) == 4


def test_constants_the_caller_does_not_differentiate_are_held_fixed():
    """The backward pass differentiates the steps with respect to the differentiated
    constants only (a non-linear replay's re-solves carry a sensitivity per
    differentiated parameter): here ``b`` passes through `undifferentiable`, and
    the gradient with respect to ``a`` alone is the reference's, while one with
    respect to ``b`` does differentiate it (so the check can fail)."""
    rng = np.random.default_rng(1)
    values = jnp.asarray(rng.normal(size=(8, 2)))
    flags = jnp.asarray(rng.uniform(size=8) < 0.6)
    a, b, offsets = jnp.asarray(0.7), jnp.asarray(1.3), jnp.asarray([0.1, -0.2])
    init = (jnp.asarray([0.3, -0.4]), jnp.zeros(2, int))

    def guarded(consts, carry, x):
        a, b, offsets = consts
        return step((a, undifferentiable(b), offsets), carry, x)

    def loss(a, b):
        return loss_of(*scan_prefix(guarded, (a, b, offsets), init, (values, flags), 6))

    got = jax.jit(jax.grad(loss))(a, b)
    want = jax.grad(lambda a: reference((a, b, offsets), init, (values, flags), 6))(a)
    assert float(want) != 0.0
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(AssertionError, match="was differentiated"):
        jax.grad(loss, argnums=1)(a, b)
