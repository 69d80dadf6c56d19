"""Exact gradients: against the analytic LIF first-spike formula, NaN-free for silent
and partially silent batches and coincident inputs, and the max-membrane read-out
(the per-model sweep is in test_gradients_models.py and test_gradients_models_2.py)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eventsnn as es
from gradient_cases import X, assert_close, central_difference

jax.config.update("jax_enable_x64", True)


# ------------------------------------------------------------ analytic LIF formula
def psp(t, tau_mem, tau_syn):
    return tau_syn / (tau_mem - tau_syn) * (jnp.exp(-t / tau_mem) - jnp.exp(-t / tau_syn))


@pytest.mark.parametrize("gradient", ["eventprop", "autodiff"])
def test_lif_first_spike_gradient_matches_the_implicit_function_formula(gradient):
    tau_mem, tau_syn, theta, w, t_in = 20.0, 5.0, 1.0, 9.0, 1.5
    net = es.FeedForward(1, [1], es.LIF(tau_mem=tau_mem, tau_syn=tau_syn,
                                        threshold=theta),
                         jax.random.key(0), t_max=30.0, gradient=gradient)
    net = eqx.tree_at(lambda m: m.weights[0], net, jnp.array([[w]]))
    x = jnp.array([[t_in]])

    @eqx.filter_jit
    def first(net, x):
        return net(x).first[0]

    t_spike = float(first(net, x))
    # Closed form: F(s) = w k(s - t_in) - θ = 0 with k the PSP kernel.
    s = t_spike - t_in
    assert abs(w * float(psp(s, tau_mem, tau_syn)) - theta) < 1e-9
    F = lambda s, w, tm, ts, th: w * psp(s, tm, ts) - th  # noqa: E731
    dF = jax.grad(F, argnums=(0, 1, 2, 3, 4))(s, w, tau_mem, tau_syn, theta)
    expected = {
        "w": -dF[1] / dF[0], "tau_mem": -dF[2] / dF[0], "tau_syn": -dF[3] / dF[0],
        "threshold": -dF[4] / dF[0], "t_in": 1.0,
    }
    g, gx = eqx.filter_jit(jax.grad(first, argnums=(0, 1)))(net, x)
    got = {"w": g.weights[0][0, 0], "tau_mem": g.neurons[0].tau_mem,
           "tau_syn": g.neurons[0].tau_syn, "threshold": g.neurons[0].threshold,
           "t_in": gx[0, 0]}
    for key in expected:
        np.testing.assert_allclose(float(got[key]), float(expected[key]), rtol=1e-7,
                                   err_msg=key)


# ----------------------------------------------------------------- never NaN
@pytest.mark.parametrize("gradient", ["eventprop", "autodiff"])
def test_silent_network_has_zero_finite_gradients(gradient):
    net = es.FeedForward(5, [6, 3], es.LIF(), jax.random.key(0), t_max=30.0,
                         gradient=gradient)
    net = eqx.tree_at(lambda m: m.weights, net, [jnp.zeros_like(w) for w in net.weights])

    def loss(net, x):
        out = net(x)
        return es.losses.first_spike_cross_entropy(out.first, 1) + jnp.sum(
            jnp.where(jnp.isfinite(out.layers[0].first), out.layers[0].first, 0.0))

    g = eqx.filter_jit(eqx.filter_grad(loss))(net, X)
    leaves = jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
    assert all(np.isfinite(np.asarray(a)).all() for a in leaves)
    assert all(np.all(np.asarray(a) == 0) for a in leaves)


@pytest.mark.parametrize("gradient", ["eventprop", "autodiff"])
@pytest.mark.parametrize("model", [es.LIF(), es.QIF()], ids=["exact", "diffrax"])
def test_partially_silent_batch_under_vmap_and_jit(gradient, model):
    net = es.FeedForward(5, [6, 3], model, jax.random.key(0), t_max=20.0,
                         gradient=gradient, init_mean=4.0)
    batch = jnp.stack([X, jnp.full_like(X, jnp.inf), X + 0.7,
                       jnp.full_like(X, jnp.inf).at[0, 0].set(19.99)])
    labels = jnp.array([0, 1, 2, 0])

    def loss(net, batch):
        out = jax.vmap(net)(batch)
        value = jax.vmap(es.losses.first_spike_cross_entropy)(out.first, labels)
        return jnp.mean(value), out.counts.sum(axis=-1)

    # The whole step as one program, as in training.
    step = eqx.filter_jit(eqx.filter_value_and_grad(loss, has_aux=True))
    (value, counts), g = step(net, batch)
    assert int(counts[0]) > 0, "the test needs an output spike"
    assert np.isfinite(float(value))
    leaves = jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
    assert all(np.isfinite(np.asarray(a)).all() for a in leaves)
    assert any(np.abs(np.asarray(a)).max() > 0 for a in leaves)


def test_coincident_input_spikes_give_finite_gradients():
    x = jnp.array([[1.0, 2.0], [1.0, jnp.inf], [1.0, 2.0], [3.0, jnp.inf], [0.5, 2.0]])
    net = es.FeedForward(5, [6, 3], es.LIF(), jax.random.key(0), t_max=20.0)
    gx = jax.jit(jax.grad(lambda x: jnp.sum(jnp.where(jnp.isfinite(net(x).first),
                                                      net(x).first, 0.0))))(x)
    assert np.isfinite(np.asarray(gx)).all()


# ------------------------------------------------------------ max-membrane read-out
def test_max_membrane_value_and_gradient():
    net = es.FeedForward(5, [6, 3], es.LIF(), jax.random.key(4), t_max=30.0)
    v_max = net.max_membrane(X)
    ts = jnp.linspace(0.0, 30.0, 30001)
    # Independent check of the value: the largest membrane value on a fine grid of
    # the output layer with its threshold removed.
    silent_out = eqx.tree_at(lambda m: m.neurons[1].threshold, net, jnp.asarray(1e9))
    grid = silent_out.state_at_t(X, ts)[:, :, 0].max(axis=1)
    np.testing.assert_allclose(np.asarray(v_max), np.asarray(grid), atol=1e-6)

    @eqx.filter_jit
    def loss(net):
        return es.losses.max_membrane_cross_entropy(net.max_membrane(X), 2)

    g = eqx.filter_jit(eqx.filter_grad(loss))(net)
    for layer, (i, j) in [(0, (1, 2)), (1, (0, 2)), (1, (3, 1))]:
        def f(v, layer=layer, i=i, j=j):
            w = net.weights[layer].at[i, j].set(v)
            return loss(eqx.tree_at(lambda m: m.weights[layer], net, w))

        assert_close(g.weights[layer][i, j], central_difference(f, net.weights[layer][i, j]),
                     f"max-membrane dL/dW{layer}")


def test_max_membrane_refuses_nonlinear_output():
    net = es.FeedForward(5, [3], es.QIF(), jax.random.key(0), t_max=10.0)
    with pytest.raises(ValueError, match="linear"):
        net.max_membrane(X)
