"""Data augmentation of input spike times (`eventsnn.augment`), checked against
direct numpy versions of the same transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eventsnn as es

INF = np.inf


def test_jitter_moves_finite_times_only():
    times = jnp.asarray(np.where(np.arange(4000) % 4 == 0, INF, 5.0).reshape(2000, 2))
    out = np.asarray(es.augment.jitter(0.3)(jax.random.key(0), times))
    padding = ~np.isfinite(np.asarray(times))
    assert np.all(np.isinf(out[padding]))
    moved = out[~padding] - 5.0
    assert abs(moved.mean()) < 0.03 and abs(moved.std() - 0.3) < 0.02
    # Below zero is clipped to zero; same key, same noise; sigma 0 is the identity.
    early = es.augment.jitter(10.0)(jax.random.key(1), jnp.full((500, 1), 0.5))
    assert float(early.min()) == 0.0 and float(early.max()) > 0.5
    again = es.augment.jitter(0.3)(jax.random.key(0), times)
    np.testing.assert_array_equal(out, np.asarray(again))
    same = es.augment.jitter(0.0)(jax.random.key(0), times)
    np.testing.assert_array_equal(same, times)
    with pytest.raises(ValueError, match="sigma"):
        es.augment.jitter(-1.0)


def numpy_shift(image, dy, dx):
    """Move ``image`` by (dy, dx) pixels, filling with +inf (silent)."""
    out = np.full_like(image, INF)
    h, w = image.shape[:2]
    for r in range(h):
        for c in range(w):
            if 0 <= r - dy < h and 0 <= c - dx < w:
                out[r, c] = image[r - dy, c - dx]
    return out


def test_shift_image_is_a_translation_with_silent_border():
    h, w = 4, 5
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 10, (h, w, 2))
    times = jnp.asarray(image.reshape(h * w, 2))
    shift = es.augment.shift_image(h, w, max_shift=1)
    seen = set()
    for k in range(60):
        out = np.asarray(shift(jax.random.key(k), times)).reshape(h, w, 2)
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if np.array_equal(out, numpy_shift(image, dy, dx))]
        assert len(matches) == 1, k
        seen.add(matches[0])
    assert len(seen) == 9  # every allowed shift occurs
    np.testing.assert_array_equal(
        es.augment.shift_image(h, w, max_shift=0)(jax.random.key(3), times), times)
    with pytest.raises(ValueError, match="20 channels"):
        shift(jax.random.key(0), jnp.zeros((19, 1)))
    with pytest.raises(ValueError, match="max_shift"):
        es.augment.shift_image(h, w, max_shift=-1)


def test_chain_applies_each_with_its_own_key():
    times = jnp.arange(20.0).reshape(20, 1)
    a, b = es.augment.shift_image(4, 5), es.augment.jitter(0.5)
    key = jax.random.key(7)
    k1, k2 = jax.random.split(key)
    expected = b(k2, a(k1, times))
    np.testing.assert_array_equal(es.augment.chain(a, b)(key, times), expected)
    # Under jit and vmap over a batch, as `fit` uses it.
    batch = jnp.stack([times, times + 1.0])
    keys = jax.random.split(key, 2)
    out = jax.jit(jax.vmap(es.augment.chain(a, b)))(keys, batch)
    np.testing.assert_allclose(out[0], es.augment.chain(a, b)(keys[0], batch[0]))
