"""Shared cases of the gradient tests: a network per shipped model with several spikes
per neuron, a loss over every spike time, and the comparison helpers.

The per-model sweep uses one layer: it differentiates the weights, every neuron
parameter and the input spike times, which is everything a layer's gradient has (in a
deeper network, a layer's input times are the spike times of the layer below, and the
chain rule between layers is JAX's). One layer halves the compiled programs of a
two-layer network, and compiling is the sweep's cost (AdEx, 2026-12-03: autodiff 26
-> 12 s, EventProp 14 -> 6.5 s). One model is also checked through two layers
(`test_gradients_models_2.py`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

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


def spike_loss_of(out):
    """A loss that weighs every kept spike time of both layers differently."""
    total = 0.0
    for layer in out.layers:
        t = jnp.where(jnp.isfinite(layer.times), layer.times, 0.0)
        total = total + jnp.sum(t * jnp.linspace(1.0, 2.0, t.size).reshape(t.shape))
    return total


@eqx.filter_jit
def value_and_grad(net, x):
    """``(loss, spikes, (dL/dnet, dL/dx))`` of `spike_loss_of`, as one compiled
    program (the network, un-jitted, would compile each layer and the loss apart)."""
    def loss(nx):
        out = nx[0](nx[1])
        return spike_loss_of(out), out

    (value, out), grads = eqx.filter_value_and_grad(loss, has_aux=True)((net, x))
    return value, out, grads


def build(name, gradient, sizes=(4,)):
    model, gain = MODELS[name]
    # Reverse mode through an adaptive solver keeps checkpoints for `max_steps` steps
    # per segment: a smaller budget than the default 4096 keeps "autodiff" light.
    solver = None if model.linear and model.state_size <= 2 else es.DiffraxSegments(
        max_steps=256)
    net = es.FeedForward(5, list(sizes), model, jax.random.key(2), t_max=25.0,
                         max_spikes=8, max_events=80, gradient=gradient, solver=solver)
    w_fire = 2.5 if name == "custom" else es._init.firing_weight(model, 25.0)
    keys = jax.random.split(jax.random.key(7), 2)[: len(sizes)]
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


def check_modes_and_finite_differences(name, modes=("eventprop", "autodiff"),
                                       sizes=(4,)):
    """The gradient modes ``modes`` of model ``name`` (layer sizes ``sizes``) agree
    with each other and the first with central finite differences (weights, every
    neuron parameter of the first layer, input times)."""
    nets = {mode: build(name, mode, sizes) for mode in modes}
    net = nets[modes[0]]
    both = {m: value_and_grad(n, X) for m, n in nets.items()}
    out = both[modes[0]][1]
    assert not bool(out.overflow.any()), out.overflow
    assert int(out.layers[0].counts.max()) >= 2, "want several spikes per neuron"
    assert all(int(layer.counts.sum()) > 0 for layer in out.layers), "a silent layer"
    grads = {m: g[2][0] for m, g in both.items()}
    gx = {m: g[2][1] for m, g in both.items()}

    def spike_loss(net, x):
        # EventProp's compiled gradient program serves the finite differences too:
        # one program per mode is compiled, no separate forward pass.
        return value_and_grad(net, x)[0]

    g_ep = grads[modes[0]]
    for other in modes[1:]:
        for a, b in zip(jax.tree.leaves(g_ep), jax.tree.leaves(grads[other])):
            assert_close(a, b, f"{modes[0]} vs {other}")
        assert_close(gx[modes[0]], gx[other], f"input times: {modes[0]} vs {other}")
    # Finite differences: a few weights of each layer, every neuron parameter of
    # layer 0, and every finite input time.
    for layer in range(len(sizes)):
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
