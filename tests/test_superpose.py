"""EventProp's superposition replay for multi-spike linear layers (`_superpose.py`)
against the event-by-event replay it replaces (``ExactSegments(parallel=False)``),
reverse mode through the event loop (``gradient="autodiff"``) and central finite
differences: same gradients of every spike time of every layer."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_grads, assert_same_spikes, cast
from test_first_spike import batch

import eventsnn as es
from eventsnn import _superpose

jax.config.update("jax_enable_x64", True)

MODELS = {
    "LIF": es.LIF(),
    "LIF-subtract": es.LIF(reset_mode="subtract"),
    "LIF-equal-taus": es.LIF(tau_mem=5.0, tau_syn=5.0),
    "IAF-bias-leak": es.IAF(bias=0.2, leak=0.1),  # a constant drive
    # Inputs lift it over threshold at once, and a subtractive reset can leave it
    # there: several spikes at one instant.
    "DeltaLIF-subtract": es.DeltaLIF(bias=0.5, reset_mode="subtract"),
}


def network(model, gradient="eventprop", parallel=True, dtype=jnp.float64,
            max_spikes=4):
    net = es.FeedForward(5, [16, 3], model, jax.random.key(1), t_max=30.0,
                         max_spikes=max_spikes, gradient=gradient,
                         solver=es.ExactSegments(parallel=parallel))
    return cast(net, dtype)


def all_times_loss(net, x):
    """Every spike time of every layer counts, each with its own weight."""
    out = jax.vmap(net)(x)
    total = 0.0
    for i, layer in enumerate(out.layers):
        t = jnp.where(jnp.isfinite(layer.times), layer.times, 0.0)
        total = total + jnp.sum(jnp.sin((0.3 + 0.1 * i) * t))
    return total, out


@eqx.filter_jit
def spikes_and_grads(net, x):
    (_, out), g = eqx.filter_value_and_grad(
        lambda nx: all_times_loss(*nx), has_aux=True)((net, x))
    return out, g


@pytest.mark.parametrize("name", list(MODELS))
def test_superposition_replay_matches_the_event_replay(name):
    x = batch()
    out, g_fast = spikes_and_grads(network(MODELS[name]), x)
    counts = np.concatenate([np.ravel(layer.counts) for layer in out.layers])
    assert np.mean(counts >= 2) > 0.1  # many neurons fire again
    assert np.any(counts > 4)  # and some overflow (max_spikes_reached): also exact
    # Reverse mode through the loop is compiled for one model only (it is slow to
    # compile); the event-by-event replay for all.
    for gradient in ("eventprop", "autodiff") if name == "LIF" else ("eventprop",):
        out_ref, g_ref = spikes_and_grads(network(MODELS[name], gradient, False), x)
        assert_same_spikes(out, out_ref, atol=1e-12)
        assert_same_grads(g_fast, g_ref, rtol=1e-9, what=gradient)


def test_multi_spike_linear_layers_take_it(monkeypatch):
    calls = []
    replay = _superpose.replay_spike_times
    monkeypatch.setattr(_superpose, "replay_spike_times",
                        lambda *a, **k: calls.append(1) or replay(*a, **k))
    net = network(es.LIF())
    jax.make_jaxpr(jax.grad(lambda x: all_times_loss(net, x)[0]))(batch()[:2])
    assert len(calls) == 2  # both layers
    calls.clear()
    loop = network(es.LIF(), parallel=False)
    jax.make_jaxpr(jax.grad(lambda x: all_times_loss(loop, x)[0]))(batch()[:2])
    assert not calls  # parallel=False keeps the event-by-event replay


def test_repeated_spikes_at_one_instant():
    # One input of weight 3.5 at t = 2 lifts a subtractive-reset neuron to 3.5
    # thresholds: it fires three times at that instant, each time moving with it.
    net = es.FeedForward(1, [1], es.DeltaLIF(reset_mode="subtract"), jax.random.key(0),
                         t_max=10.0, max_spikes=4)
    net = eqx.tree_at(lambda m: m.weights[0], net, jnp.array([[3.5]]))
    x = jnp.array([[2.0]])
    (_, times), g = jax.jit(jax.value_and_grad(  # one program
        lambda x: (jnp.sum(net(x).layers[0].times[0, :3]), net(x).layers[0].times[0]),
        has_aux=True))(x)
    np.testing.assert_array_equal(times[:3], [2.0, 2.0, 2.0])
    assert not np.isfinite(times[3])
    np.testing.assert_allclose(g, [[3.0]], rtol=1e-12)


def loss_of_parameters(net, x):
    # Differentiated *outside* the jit, with a neuron parameter traced: the other
    # parameters then reach the replay as typed Python floats, which once made both
    # replays return float0 cotangents for them (a TypeError inside JAX).
    @jax.jit
    def loss(tau_mem, w):
        model = es.LIF(tau_mem=tau_mem)
        m = eqx.tree_at(lambda n: (n.neurons, n.weights[1]), net,
                        ((model, model), w))
        return all_times_loss(m, x)[0]

    return loss


def test_gradient_equals_central_differences():
    net = network(es.LIF(), max_spikes=6)
    x = batch()[:4]
    loss = loss_of_parameters(net, x)  # one compilation for all the differences
    w = net.weights[1]
    g_tau, g_w = jax.grad(loss, argnums=(0, 1))(20.0, w)
    g_loop = jax.grad(loss_of_parameters(network(es.LIF(), max_spikes=6,
                                                 parallel=False), x),
                      argnums=(0, 1))(20.0, w)
    assert_same_grads((g_tau, g_w), g_loop, rtol=1e-9, what="event replay")
    eps = 1e-6
    fd_tau = (loss(20.0 + eps, w) - loss(20.0 - eps, w)) / (2 * eps)
    np.testing.assert_allclose(g_tau, fd_tau, rtol=1e-6)
    for i, j in ((0, 0), (3, 1), (7, 2)):
        step = jnp.zeros_like(w).at[i, j].set(eps)
        fd = (loss(20.0, w + step) - loss(20.0, w - step)) / (2 * eps)
        np.testing.assert_allclose(g_w[i, j], fd, rtol=1e-6, atol=1e-9)


def test_float32():
    x = batch(jnp.float32)
    out32, g32 = spikes_and_grads(network(es.LIF(), dtype=jnp.float32), x)
    assert out32.layers[-1].times.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(g32))
    _, g64 = spikes_and_grads(network(es.LIF()), batch())
    assert_same_grads(g32, g64, rtol=2e-3)


def test_which_models_it_takes():
    assert _superpose.applies(es.LIF())
    assert _superpose.applies(es.IAF())
    assert not _superpose.applies(es.Refractory(es.LIF(), t_ref=2.0))  # kinks
    assert not _superpose.applies(es.EIF())  # (not additive: not declared so)


def test_per_neuron_parameters():
    # One flow per neuron (no shared matrix): a hidden layer whose neurons each have
    # their own time constants, against the event-by-event replay.
    hidden = es.LIF(tau_mem=jnp.linspace(12.0, 28.0, 16),
                    tau_syn=jnp.linspace(3.0, 7.0, 16))
    assert not _superpose._shared_parameters(hidden)
    assert _superpose._shared_parameters(es.LIF())
    x = batch()
    out, g_fast = spikes_and_grads(network([hidden, es.LIF()]), x)
    assert np.mean(np.ravel(out.layers[0].counts) >= 2) > 0.1
    out_ref, g_ref = spikes_and_grads(network([hidden, es.LIF()], parallel=False), x)
    assert_same_spikes(out, out_ref, atol=1e-12)
    assert_same_grads(g_fast, g_ref, rtol=1e-9, what="per-neuron taus")


@pytest.mark.parametrize(
    "model", [es.LIF(), es.LIF(tau_mem=5.0, tau_syn=5.0), es.IAF(leak=0.1)],
    ids=["LIF", "LIF-equal-taus", "IAF"])
def test_flow_matrix_is_the_matrix_exponential(model):
    # AffineFlow.matrix (entry by entry) against expm(A tau), values and d/dtau.
    y0 = model.init_state(2)
    flow = es.AffineFlow.from_vector_field(
        lambda y: model.dynamics(0.0, y, jnp.zeros(2)), y0.shape, y0.dtype)
    taus = jnp.array([0.0, 0.7, 13.0])

    def ours(tau):
        return jax.vmap(lambda t: flow.matrix(jnp.broadcast_to(t, (2,))))(tau)

    def expm(tau):
        return jax.vmap(lambda t: jax.vmap(jax.scipy.linalg.expm)(flow.A * t))(tau)

    np.testing.assert_allclose(ours(taus), expm(taus), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jax.jacfwd(ours)(taus), jax.jacfwd(expm)(taus),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jax.jacrev(ours)(taus), jax.jacfwd(expm)(taus),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m,shared", [(1, False), (2, False), (5, False), (17, False),
                                      (100, False), (17, True)])
def test_linear_recurrence_equals_a_plain_loop(m, shared):
    # The blocked solve (about 2 sqrt(m) sequential steps, padding to whole blocks)
    # and its hand-written adjoint against the recurrence written as a lax.scan and
    # differentiated by JAX; `shared`: one matrix per row for all 3 neurons.
    rng = np.random.default_rng(m)
    phi = jnp.asarray(rng.normal(size=(m, 1 if shared else 3, 2, 2)) * 0.5)
    q = jnp.asarray(rng.normal(size=(m, 3, 2)))
    x0 = jnp.asarray(rng.normal(size=(3, 2)))
    weights = jnp.asarray(rng.normal(size=(m, 3, 2)))

    def plain(phi, q, x0):
        def step(x, row):
            x = (row[0] @ x[..., None])[..., 0] + row[1]
            return x, x
        return jax.lax.scan(step, x0, (phi, q))[1]

    np.testing.assert_allclose(_superpose._linear_recurrence(phi, q, x0),
                               plain(phi, q, x0), rtol=1e-12, atol=1e-12)
    g = jax.grad(lambda *a: jnp.sum(weights * _superpose._linear_recurrence(*a)),
                 argnums=(0, 1, 2))(phi, q, x0)
    g_ref = jax.grad(lambda *a: jnp.sum(weights * plain(*a)), argnums=(0, 1, 2))(
        phi, q, x0)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
