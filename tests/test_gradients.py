"""Exact gradients, checked three ways: against the analytic LIF first-spike formula,
between the two gradient modes, and against central finite differences (float64)."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eventsnn as es
from helpers import SinCos

jax.config.update("jax_enable_x64", True)

X = jnp.array([[0.3, 6.0], [1.0, jnp.inf], [2.0, 8.0], [3.0, jnp.inf], [0.5, 4.0]])
EPS = 1e-5  # central differences: O(EPS²) truncation, solver noise / EPS


# (model, weight gain): weights are gain × w_fire × U(0.3, 1), with w_fire the weight
# of one input spike that just makes the model fire (measured), so every model fires a
# few times per neuron.
MODELS = {
    "LIF": (es.LIF(), 0.45),
    "LIF-subtract": (es.LIF(reset_mode="subtract"), 0.45),
    "DeltaLIF": (es.DeltaLIF(bias=0.9), 0.6),
    "AlphaLIF": (es.AlphaLIF(), 0.45),
    "IAF": (es.IAF(leak=0.05), 0.6),
    "QIF": (es.QIF(), 3.0),
    "EIF": (es.EIF(), 0.6),
    "AdEx": (es.AdEx(), 0.7),
    "Izhikevich": (es.Izhikevich(), 1.5),
    "Refractory": (es.Refractory(es.LIF(), t_ref=1.5), 1.0),
    "custom": (SinCos(tau_mem=1.0, threshold=0.5), 0.5),
}


def spike_loss(net, x):
    """A loss that weighs every kept spike time of both layers differently."""
    out = net(x)
    total = 0.0
    for layer in out.layers:
        t = jnp.where(jnp.isfinite(layer.times), layer.times, 0.0)
        total = total + jnp.sum(t * jnp.linspace(1.0, 2.0, t.size).reshape(t.shape))
    return total


def build(name, gradient):
    model, gain = MODELS[name]
    # Reverse mode through an adaptive solver keeps checkpoints for `max_steps` steps
    # per segment: a smaller budget than the default 4096 keeps "autodiff" light.
    solver = None if model.linear and model.state_size <= 2 else es.DiffraxSegments(
        max_steps=256)
    net = es.FeedForward(5, [4, 2], model, jax.random.key(2), t_max=25.0,
                         max_spikes=8, max_events=80, gradient=gradient, solver=solver)
    w_fire = 2.5 if name == "custom" else es._init.firing_weight(model, 25.0)
    keys = jax.random.split(jax.random.key(7), 2)
    weights = [gain * w_fire * jax.random.uniform(k, w.shape, minval=0.3, maxval=1.0)
               for k, w in zip(keys, net.weights)]
    return eqx.tree_at(lambda m: m.weights, net, weights)


def central_difference(f, value):
    eps = EPS * max(1.0, abs(float(value)))  # relative step for large parameters
    return (f(value + eps) - f(value - eps)) / (2 * eps)


def assert_close(a, b, what, rtol=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1e-3)
    err = np.max(np.abs(a - b)) / scale
    assert err <= rtol, f"{what}: relative error {err:.2e} (got {a}, expected {b})"


# EventProp refuses models with kinks (Refractory): only autodiff is checked there.
# Reverse mode through the adaptive solver ("autodiff") compiles a very large program
# for each model; to keep the suite within its time and memory budget it is compared
# on one exact-flow model, two adaptive ones and the custom model. The other models
# check EventProp against finite differences.
KINKED = {"Refractory"}
BOTH_MODES = {"LIF", "IAF", "QIF", "Izhikevich", "custom"}


# Run in CI: the models whose gradient programs are small. Compiling the gradient of
# every adaptive-solver model in one process made XLA's compiler crash (segfault) on the
# 2-core CI machine after ~10 such programs; the others were checked by hand in this
# session (EventProp vs finite differences ≤ 1e-4) and return to CI once each runs in a
# process of its own: `pytest tests/test_gradients.py -k "EIF or AdEx ..."` with
# EVENTSNN_ALL_GRADIENT_MODELS=1.
CHECKED = ["LIF", "LIF-subtract", "DeltaLIF", "IAF", "QIF"]
if os.environ.get("EVENTSNN_ALL_GRADIENT_MODELS"):
    CHECKED = list(MODELS)


@pytest.mark.parametrize("name", CHECKED)
def test_modes_agree_with_each_other_and_finite_differences(name):
    if name in KINKED:
        modes = ("autodiff",)
    elif name in BOTH_MODES:
        modes = ("eventprop", "autodiff")
    else:
        modes = ("eventprop",)
    nets = {mode: build(name, mode) for mode in modes}
    net = nets[modes[0]]
    out = net(X)
    assert not bool(out.overflow.any()), out.overflow
    assert int(out.layers[0].counts.max()) >= 2, "want several spikes per neuron"
    grads = {m: eqx.filter_grad(spike_loss)(n, X) for m, n in nets.items()}
    gx = {m: jax.grad(lambda x: spike_loss(n, x))(X) for m, n in nets.items()}
    g_ep, g_ad = grads[modes[0]], grads[modes[-1]]
    for a, b in zip(jax.tree.leaves(g_ep), jax.tree.leaves(g_ad)):
        assert_close(a, b, "eventprop vs autodiff")
    assert_close(gx[modes[0]], gx[modes[-1]], "input times: eventprop vs autodiff")
    # Finite differences: a few weights of each layer, every neuron parameter of
    # layer 0, and every finite input time.
    for layer in (0, 1):
        for i, j in [(0, 0), (1, 1), (2, 0)] if layer == 0 else [(0, 0), (3, 1)]:
            def f(v, layer=layer, i=i, j=j):
                w = net.weights[layer].at[i, j].set(v)
                return spike_loss(eqx.tree_at(lambda m: m.weights[layer], net, w), X)

            fd = central_difference(f, net.weights[layer][i, j])
            assert_close(g_ep.weights[layer][i, j], fd, f"dL/dW{layer}[{i},{j}]")
    # Every parameter of the model is an array leaf (`param` fields).
    for index, (leaf, g) in enumerate(zip(jax.tree.leaves(net.neurons[0]),
                                          jax.tree.leaves(g_ep.neurons[0]))):
        def f(v, index=index):
            def where(m):
                return jax.tree.leaves(m.neurons[0])[index]
            return spike_loss(eqx.tree_at(where, net, v), X)

        assert_close(g, central_difference(f, leaf), f"dL/dparam[{index}]")
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            if np.isfinite(X[i, j]):
                fd = central_difference(lambda v: spike_loss(net, X.at[i, j].set(v)),
                                        X[i, j])
                assert_close(gx[modes[0]][i, j], fd, f"dL/dx[{i},{j}]")
            else:
                assert gx[modes[0]][i, j] == 0.0


def test_eventprop_refuses_models_with_kinks():
    net = build("Refractory", "eventprop")
    assert int(net(X).counts.sum()) > 0  # the forward pass works
    with pytest.raises(NotImplementedError, match="autodiff"):
        eqx.filter_grad(spike_loss)(net, X)


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
    g = eqx.filter_grad(first)(net, x)
    gx = jax.grad(lambda x: first(net, x))(x)
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

    g = eqx.filter_grad(loss)(net, X)
    leaves = jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
    assert all(np.isfinite(np.asarray(a)).all() for a in leaves)
    assert all(np.all(np.asarray(a) == 0) for a in leaves)


@pytest.mark.parametrize("gradient", ["eventprop", "autodiff"])
@pytest.mark.parametrize("model", [es.LIF(), es.QIF()], ids=["exact", "diffrax"])
def test_partially_silent_batch_under_vmap_and_jit(gradient, model):
    net = es.FeedForward(5, [6, 3], model, jax.random.key(0), t_max=20.0,
                         gradient=gradient, init_mean=4.0)
    assert int(net(X).counts.sum()) > 0, "the test needs an output spike"
    batch = jnp.stack([X, jnp.full_like(X, jnp.inf), X + 0.7,
                       jnp.full_like(X, jnp.inf).at[0, 0].set(19.99)])
    labels = jnp.array([0, 1, 2, 0])

    @eqx.filter_jit
    def loss(net, batch):
        out = jax.vmap(net)(batch)
        return jnp.mean(jax.vmap(es.losses.first_spike_cross_entropy)(out.first, labels))

    value, g = eqx.filter_value_and_grad(loss)(net, batch)
    assert np.isfinite(float(value))
    leaves = jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
    assert all(np.isfinite(np.asarray(a)).all() for a in leaves)
    assert any(np.abs(np.asarray(a)).max() > 0 for a in leaves)


def test_coincident_input_spikes_give_finite_gradients():
    x = jnp.array([[1.0, 2.0], [1.0, jnp.inf], [1.0, 2.0], [3.0, jnp.inf], [0.5, 2.0]])
    net = es.FeedForward(5, [6, 3], es.LIF(), jax.random.key(0), t_max=20.0)
    gx = jax.grad(lambda x: jnp.sum(jnp.where(jnp.isfinite(net(x).first),
                                              net(x).first, 0.0)))(x)
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

    def loss(net):
        return es.losses.max_membrane_cross_entropy(net.max_membrane(X), 2)

    g = eqx.filter_grad(loss)(net)
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
