"""Gradients of every shipped model (and a custom one): EventProp and autodiff agree
with each other and with central finite differences in float64, with respect to the
weights, every neuron parameter and the input spike times.

A file of its own so that the test runner can give this, the slowest sweep, a worker
process of its own (``-n 2 --dist loadfile``)."""

import equinox as eqx
import jax
import numpy as np
import pytest

from gradient_cases import (
    MODELS,
    X,
    assert_close,
    build,
    central_difference,
    spike_loss,
)

jax.config.update("jax_enable_x64", True)


# EventProp refuses models with kinks (Refractory): only autodiff is checked there.
# Reverse mode through the adaptive solver ("autodiff") compiles a very large program
# for each model; to keep the suite within its time and memory budget it is compared
# on one exact-flow model, two adaptive ones and the custom model. The other models
# check EventProp against finite differences.
KINKED = {"Refractory"}
BOTH_MODES = {"LIF", "IAF", "QIF", "Izhikevich", "custom"}


@pytest.mark.parametrize("name", list(MODELS))
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
