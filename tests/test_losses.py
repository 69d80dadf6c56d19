"""Losses: values on hand-computed examples, gradients against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eventsnn as es
from eventsnn import losses

jax.config.update("jax_enable_x64", True)
INF = jnp.inf


def fd_grad(f, x, eps=1e-6):
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        if not np.isfinite(x[index]):
            continue
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        g[index] = (float(f(jnp.asarray(up))) - float(f(jnp.asarray(down)))) / (2 * eps)
    return g


def test_first_spike_cross_entropy_value():
    t = jnp.array([2.0, 3.0, 5.0])
    # -log(e^{-2} / (e^{-2} + e^{-3} + e^{-5}))
    expected = -np.log(np.exp(-2) / (np.exp(-2) + np.exp(-3) + np.exp(-5)))
    assert float(losses.first_spike_cross_entropy(t, 0, tau=1.0)) == pytest.approx(expected)
    # tau rescales times
    expected2 = -np.log(np.exp(-1.5) / (np.exp(-1) + np.exp(-1.5) + np.exp(-2.5)))
    assert float(losses.first_spike_cross_entropy(t, 1, tau=2.0)) == pytest.approx(expected2)


def test_first_spike_cross_entropy_silent_neurons():
    # a silent wrong neuron contributes nothing
    t = jnp.array([2.0, INF, 3.0])
    expected = -np.log(np.exp(-2) / (np.exp(-2) + np.exp(-3)))
    assert float(losses.first_spike_cross_entropy(t, 0)) == pytest.approx(expected)
    # a silent correct neuron: large, finite, and the gradient pushes the others later
    value, grad = jax.value_and_grad(losses.first_spike_cross_entropy)(t, 1)
    assert np.isfinite(float(value)) and float(value) > 5.0
    assert np.all(np.isfinite(np.asarray(grad)))
    # every neuron silent: uniform, zero gradient
    value, grad = jax.value_and_grad(losses.first_spike_cross_entropy)(
        jnp.full((3,), INF), 2)
    assert float(value) == pytest.approx(np.log(3))
    assert np.all(np.asarray(grad) == 0)


def test_first_spike_cross_entropy_gradient():
    t = jnp.array([2.0, 3.5, 5.0, INF])
    g = jax.grad(losses.first_spike_cross_entropy)(t, 1, 2.0)
    fd = fd_grad(lambda x: losses.first_spike_cross_entropy(x, 1, 2.0), t)
    np.testing.assert_allclose(np.asarray(g), fd, atol=1e-8)
    assert float(g[3]) == 0.0


def test_first_spike_regularizer():
    t = jnp.array([2.0, 3.0])
    assert float(losses.first_spike_regularizer(t, 1, tau=10.0)) == pytest.approx(
        np.expm1(0.3))
    assert float(losses.first_spike_regularizer(jnp.array([INF, 1.0]), 0, tau=10.0,
                                                t_silent=20.0)) == pytest.approx(
        np.expm1(2.0))
    g = jax.grad(losses.first_spike_regularizer)(t, 1, 10.0)
    np.testing.assert_allclose(np.asarray(g), [0.0, np.exp(0.3) / 10.0])


def test_spike_count_cross_entropy():
    counts = jnp.array([3, 1, 0])
    expected = -np.log(np.exp(3) / (np.exp(3) + np.exp(1) + 1))
    assert float(losses.spike_count_cross_entropy(counts, 0)) == pytest.approx(expected)


def test_spike_time_mse():
    times = jnp.array([[1.0, 4.0], [INF, INF]])
    target = jnp.array([[2.0, 4.0], [5.0, INF]])
    # ((1-2)^2 + 0 + (10-5)^2 + 0) / 4 with t_silent = 10
    assert float(losses.spike_time_mse(times, target, 10.0)) == pytest.approx(26 / 4)
    g = jax.grad(losses.spike_time_mse)(times, target, 10.0)
    np.testing.assert_allclose(np.asarray(g), [[-0.5, 0.0], [0.0, 0.0]])


def test_van_rossum_distance_closed_form_and_brute_force():
    tau = 4.0
    a = jnp.array([1.0, 5.0, INF])
    b = jnp.array([2.0, INF])
    # Numerically: (1/τ)∫(f - g)² with f, g the exponentially filtered trains,
    # integrated piecewise between spike times with scipy's adaptive quadrature.
    from scipy.integrate import quad

    def filtered(spikes, t):
        return sum(np.exp(-(t - s) / tau) for s in spikes if np.isfinite(s) and t >= s)

    edges = [0.0, 1.0, 2.0, 5.0, 400.0]
    brute = sum(
        quad(lambda t: (filtered(a, t) - filtered(b, t)) ** 2, lo, hi, epsabs=1e-13)[0]
        for lo, hi in zip(edges[:-1], edges[1:])
    ) / tau
    value = float(losses.van_rossum_distance(a, b, tau))
    assert value == pytest.approx(brute, rel=1e-9)
    assert float(losses.van_rossum_distance(b, b, tau)) == pytest.approx(0.0, abs=1e-12)


def test_van_rossum_gradient():
    a = jnp.array([1.0, 5.0, INF])
    b = jnp.array([2.0, 4.0])
    g = jax.grad(losses.van_rossum_distance)(a, b, 3.0)
    fd = fd_grad(lambda x: losses.van_rossum_distance(x, b, 3.0), a)
    np.testing.assert_allclose(np.asarray(g), fd, atol=1e-8)
    assert np.isfinite(np.asarray(g)).all()


def test_max_membrane_cross_entropy():
    v = jnp.array([0.2, 1.3, 0.7])
    expected = -np.log(np.exp(1.3) / np.exp(np.asarray(v)).sum())
    assert float(losses.max_membrane_cross_entropy(v, 1)) == pytest.approx(expected)
    g = jax.grad(losses.max_membrane_cross_entropy)(v, 1)
    fd = fd_grad(lambda x: losses.max_membrane_cross_entropy(x, 1), v)
    np.testing.assert_allclose(np.asarray(g), fd, atol=1e-8)


def test_losses_batch_with_vmap():
    first = jnp.array([[1.0, 2.0], [INF, 3.0]])
    labels = jnp.array([0, 1])
    batch = jax.vmap(losses.first_spike_cross_entropy)(first, labels)
    assert batch.shape == (2,)
    assert float(batch[1]) == pytest.approx(0.0, abs=1e-12)


def test_public_losses_module():
    assert es.losses.first_spike_cross_entropy is losses.first_spike_cross_entropy
