"""The loop-free first-spike path of linear layers (`_first_spike.py`) against the
event loop it replaces (``ExactSegments(parallel=False)``, both gradient modes) and
against the general diffrax path: same spike times, same gradients."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_grads, assert_same_spikes, cast, spikes_and_grads
from helpers import first_spike_grads as grads
from helpers import run_batch as run

import eventsnn as es

jax.config.update("jax_enable_x64", True)

MODELS = {
    "LIF": es.LIF(),
    "LIF-equal-taus": es.LIF(tau_mem=5.0, tau_syn=5.0),
    "IAF": es.IAF(),
    "DeltaLIF": es.DeltaLIF(bias=0.5),  # inputs lift it over threshold at once
}


def batch(dtype=jnp.float64):
    """Inputs with the awkward cases: two spikes per channel, simultaneous spikes, a
    spike at t = 0, padding, and a spike past t_max (ignored)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 15.0, (12, 5, 2))
    x[:, :, 1] = np.where(rng.uniform(size=(12, 5)) < 0.5, np.inf, x[:, :, 1] + 5.0)
    x[:4, 1, 0] = x[:4, 0, 0]
    x[4:7, 2, 0] = 0.0
    x[7:9, 3, 1] = 31.0
    return jnp.asarray(x, dtype)


def network(model, solver, gradient="eventprop", dtype=jnp.float64):
    net = es.FeedForward(5, [16, 3], model, jax.random.key(1), t_max=30.0,
                         solver=solver, gradient=gradient)
    return cast(net, dtype)


@pytest.mark.parametrize("name", list(MODELS))
def test_parallel_path_matches_the_event_loop(name):
    x = batch()
    out, g_fast = spikes_and_grads(network(MODELS[name], es.ExactSegments()), x)
    fired = [float(np.isfinite(layer.times).mean()) for layer in out.layers]
    assert all(0.2 < f < 1.0 for f in fired), fired  # some fire, some stay silent
    # Reverse mode through the loop is compiled for one model only (it is slow to
    # compile); EventProp's replay for all.
    for gradient in ("eventprop", "autodiff") if name == "LIF" else ("eventprop",):
        loop = network(MODELS[name], es.ExactSegments(parallel=False), gradient)
        out_loop, g_loop = spikes_and_grads(loop, x)
        assert_same_spikes(out, out_loop, atol=1e-12)
        assert_same_grads(g_fast, g_loop, rtol=1e-9)


def test_parallel_path_matches_the_diffrax_path():
    x = batch()[:6]
    fast = network(es.LIF(), None)
    tsit = network(es.LIF(), diffrax.Tsit5())
    assert isinstance(fast.segments[0], es.ExactSegments)
    assert isinstance(tsit.segments[0], es.DiffraxSegments)
    (out_fast, g_fast), (out_tsit, g_tsit) = (spikes_and_grads(fast, x),
                                              spikes_and_grads(tsit, x))
    assert_same_spikes(out_fast, out_tsit, atol=1e-8)
    assert_same_grads(g_fast, g_tsit, rtol=1e-6)


def test_parallel_path_in_float32():
    # Spike times as the float32 event loop's; gradients as float64's (compiling the
    # loop's float32 gradient as well would double this test's time).
    x = batch(jnp.float32)
    fast = network(es.LIF(), es.ExactSegments(), dtype=jnp.float32)
    loop = network(es.LIF(), es.ExactSegments(parallel=False), dtype=jnp.float32)
    a, g32 = spikes_and_grads(fast, x)
    b = run(loop, x)
    assert a.layers[-1].times.dtype == jnp.float32
    assert_same_spikes(a, b, atol=1e-4)
    g64 = grads(network(es.LIF(), es.ExactSegments()), batch())
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(g32))
    assert_same_grads(g32, g64, rtol=1e-3)


def test_equal_time_constants_have_exact_gradients():
    # tau_mem = tau_syn is where the flow's two eigenvalues meet (and where a square
    # root in them has an infinite derivative): the gradient must be finite and equal
    # to central differences, which step off the degenerate point.
    x = jnp.array([[1.0], [2.5], [4.0]])
    net = es.FeedForward(3, [1], es.LIF(tau_mem=5.0, tau_syn=5.0), jax.random.key(0),
                         t_max=30.0)
    net = eqx.tree_at(lambda m: m.weights[0], net, jnp.array([[2.0], [1.5], [1.0]]))

    def first(tau_mem, tau_syn):
        model = es.LIF(tau_mem=tau_mem, tau_syn=tau_syn)
        return eqx.tree_at(lambda m: m.neurons, net, (model,))(x).first[0]

    assert np.isfinite(first(5.0, 5.0))
    g = jax.grad(first, argnums=(0, 1))(5.0, 5.0)
    eps = 1e-5
    fd = [(first(5.0 + eps, 5.0) - first(5.0 - eps, 5.0)) / (2 * eps),
          (first(5.0, 5.0 + eps) - first(5.0, 5.0 - eps)) / (2 * eps)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_immediate_spike_waits_for_simultaneous_inputs():
    # An excitatory and an inhibitory spike at the same instant act as their sum:
    # the neuron must not fire on the first one alone, whatever their order.
    neuron = es.DeltaLIF(threshold=1.0)
    for solver in (es.ExactSegments(), es.ExactSegments(parallel=False)):
        net = es.FeedForward(2, [1], neuron, jax.random.key(0), t_max=10.0,
                             solver=solver)
        for w in ([[1.5], [-1.0]], [[-1.0], [1.5]]):
            net = eqx.tree_at(lambda m: m.weights[0], net, jnp.array(w))
            for t in (0.0, 2.0):
                assert not np.isfinite(net(jnp.array([[t], [t]])).first[0])
        # The excitatory spike alone fires it at exactly its arrival time.
        assert float(net(jnp.array([[jnp.inf], [2.0]])).first[0]) == 2.0


def test_max_events_takes_the_earliest_inputs_and_flags_what_it_drops():
    """Linear first-spike layers take the earliest ``max_events`` input spikes: exact
    (same spikes and gradients) when the rest is padding or arrives after every
    neuron fired; flagged ``max_events_reached`` when a dropped input could have
    changed a spike."""
    w = jnp.zeros((8, 3)).at[0, 0].set(12.0).at[1, 1].set(12.0).at[2, 2].set(12.0)
    w = w.at[3:6].set(1.0)  # late, weak inputs to everyone

    def net(max_events):
        n = es.FeedForward(8, [3], es.LIF(), jax.random.key(0), t_max=30.0,
                           max_events=max_events)
        return eqx.tree_at(lambda m: m.weights[0], n, w)

    pad = jnp.full((8, 2), jnp.inf)  # 16 input slots, at most 6 spikes
    early = pad.at[:6, 0].set(jnp.array([1.0, 2.0, 0.5, 20.0, 22.0, 24.0]))
    late = early.at[2, 0].set(21.0)  # neuron 2 has not fired when input 3 arrives
    x = jnp.stack([early, late])
    full, g_full = spikes_and_grads(net(None), x)
    assert bool(jnp.all(full.layers[0].ok))
    # Only padding dropped: bit-equal spikes and gradients.
    kept, g_kept = spikes_and_grads(net(6), x)
    assert bool(jnp.all(kept.layers[0].ok))
    assert_same_spikes(kept, full, atol=0.0)
    assert_same_grads(g_kept, g_full, rtol=0.0)
    # Three inputs kept: the first sample's dropped inputs come after every spike.
    out = run(net(3), x)
    ok = np.asarray(out.layers[0].ok)
    np.testing.assert_array_equal(ok, [True, False])
    np.testing.assert_array_equal(out.first[0], full.first[0])
    np.testing.assert_array_equal(
        out.layers[0].result == es.RESULTS.max_events_reached, [False, True])
    with pytest.raises(RuntimeError, match="max_events"):
        es.check(out)
    # Trajectories come from the event loop, which needs an iteration per spike as
    # well as per input: the input budget must not make it overflow (it did, and
    # the CLI's membrane plot raised after a whole digits run).
    ts = jnp.linspace(0.0, 30.0, 7)
    np.testing.assert_array_equal(net(6).state_at_t(early, ts, layer=0),
                                  net(None).state_at_t(early, ts, layer=0))
    # One value per layer, None for the default.
    assert net([None]).max_events == (None,)
