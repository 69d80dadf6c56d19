"""The first-spike path of non-linear layers (`_first_spike_ode.py`: one solve per
input interval, a clock per neuron) against the event loop it replaces
(``DiffraxSegments(parallel=False)``) and against central finite differences: same
spike times, same gradients; and when it must not be used."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    SinCos,
    assert_same_grads,
    assert_same_spikes,
    cast,
    first_spike_loss_of,
    spikes_and_grads,
)
from helpers import run_batch as run

import eventsnn as es
from eventsnn import _first_spike_ode
from eventsnn._current import as_current
from eventsnn.cli._common import precision

jax.config.update("jax_enable_x64", True)

# (model, scale of the hidden weights): each layer's neurons fire on some samples
# and stay silent on others.
MODELS = {
    "QIF": (es.QIF(), 1.0),
    "EIF": (es.EIF(), 1.0),
    "AdEx": (es.AdEx(), 1.0),
    "Izhikevich": (es.Izhikevich(), 1.0),
    "Refractory-QIF": (es.Refractory(es.QIF(), t_ref=2.0), 1.0),
    "custom": (SinCos(tau_mem=1.0, threshold=0.5), 2.0),
}


def batch(dtype=jnp.float64):
    """Inputs with the awkward cases: two spikes per channel, simultaneous spikes, a
    spike at t = 0, padding, and a spike past t_max (ignored)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 15.0, (8, 5, 2))
    x[:, :, 1] = np.where(rng.uniform(size=(8, 5)) < 0.5, np.inf, x[:, :, 1] + 5.0)
    x[:3, 1, 0] = x[:3, 0, 0]
    x[3:5, 2, 0] = 0.0
    x[5:7, 3, 1] = 31.0
    return jnp.asarray(x, dtype)


def network(name, parallel, gradient="eventprop", dtype=jnp.float64):
    model, scale = MODELS[name]
    tol = 1e-10 if dtype == jnp.float64 else None
    net = es.FeedForward(
        5, [10, 3], model, jax.random.key(3), t_max=30.0, gradient=gradient,
        solver=es.DiffraxSegments(parallel=parallel, rtol=tol, atol=tol,
                                  max_steps=512))
    w0 = scale * net.weights[0]
    net = eqx.tree_at(lambda n: n.weights[0], net, w0)
    return cast(net, dtype)


def test_the_path_applies_to_the_shipped_non_linear_models_only_where_it_may():
    current = as_current(None, 2, jnp.float64)
    for name, (model, _) in MODELS.items():
        assert _first_spike_ode.applies(model, current, jnp.float64), name

    class Clocked(SinCos):  # dynamics that read t: one solve cannot serve all clocks
        def dynamics(self, t, y, args):
            return super().dynamics(t, y, args) * (1.0 + 0.1 * jnp.sin(t))

    class Kinked(SinCos):  # a declared kink before any spike
        def discontinuities(self, t, y):
            return jnp.full(y.shape[:1], jnp.where(t < 5.0, 5.0, jnp.inf))

    assert not _first_spike_ode.applies(Clocked(), current, jnp.float64)
    assert not _first_spike_ode.applies(Kinked(), current, jnp.float64)
    varying = as_current(lambda t: jnp.full((2,), 0.1 * t), 2, jnp.float64)
    assert not _first_spike_ode.applies(es.QIF(), varying, jnp.float64)
    # Refractory's kink only follows a spike: first-spike mode uses its inner model.
    assert isinstance(es.Refractory(es.QIF()).first_spike_model(), es.QIF)
    # Models it refuses still run (event loop), as with parallel=False.
    x = batch()[:2]
    for model in (Clocked(tau_mem=1.0, threshold=0.5),
                  Kinked(tau_mem=1.0, threshold=0.5)):
        nets = [es.FeedForward(5, [4], model, jax.random.key(0), t_max=30.0,
                               solver=es.DiffraxSegments(parallel=p))
                for p in (True, False)]
        nets = [eqx.tree_at(lambda n: n.weights[0], n, 2 * n.weights[0]) for n in nets]
        a, b = run(nets[0], x), run(nets[1], x)
        np.testing.assert_array_equal(a.first, b.first)


def check_same_spikes(fast, loop):
    assert all(bool(jnp.all(layer.ok)) for layer in fast.layers)
    assert_same_spikes(fast, loop, atol=1e-7)
    fired = float(jnp.mean(jnp.isfinite(fast.layers[0].first)))
    assert 0.2 < fired < 1.0, f"want some silent and some firing neurons, got {fired}"


# (The other three models: spike times together with gradients, below.)
@pytest.mark.parametrize("name", ["QIF", "EIF", "AdEx"])
def test_same_spike_times_as_the_event_loop(name):
    x = batch()
    check_same_spikes(run(network(name, True), x), run(network(name, False), x))


@pytest.mark.parametrize("name", ["Izhikevich", "Refractory-QIF", "custom"])
def test_same_spike_times_and_gradients_as_the_event_loop(name):
    # (QIF: gradients against finite differences below.) Spikes and gradients come
    # from one compiled program per path.
    x = batch()
    fast, g_fast = spikes_and_grads(network(name, True), x)
    loop, g_loop = spikes_and_grads(network(name, False), x)
    check_same_spikes(fast, loop)
    assert_same_grads(g_fast, g_loop, 1e-5, f"{name}: fast vs event loop")


def test_gradients_match_finite_differences():
    """QIF, float64: weights of both layers, every neuron parameter and the input
    times, against central differences of the fast path's own spike times."""
    x = batch()[:4]
    net = network("QIF", True)
    _, (g_net, g_x) = spikes_and_grads(net, x)

    def f(net, x):  # the same compiled program as the gradient's
        return first_spike_loss_of(spikes_and_grads(net, x)[0])

    eps = 1e-6

    def central(perturb):
        return (f(*perturb(eps)) - f(*perturb(-eps))) / (2 * eps)

    for layer, (i, j) in [(0, (0, 0)), (0, (2, 5)), (1, (1, 0)), (1, (7, 2))]:
        def moved(e, layer=layer, i=i, j=j):
            w = net.weights[layer].at[i, j].add(e)
            return eqx.tree_at(lambda n: n.weights[layer], net, w), x

        np.testing.assert_allclose(g_net.weights[layer][i, j], central(moved),
                                   rtol=1e-5, atol=1e-7)
    for index, leaf in enumerate(jax.tree.leaves(net.neurons[0])):
        def moved(e, index=index, leaf=leaf):
            def where(n):
                return jax.tree.leaves(n.neurons[0])[index]
            return eqx.tree_at(where, net, leaf + e), x

        np.testing.assert_allclose(jax.tree.leaves(g_net.neurons[0])[index],
                                   central(moved), rtol=1e-5, atol=1e-7)
    for b, i, k in [(0, 0, 0), (1, 2, 0), (3, 4, 1)]:
        assert np.isfinite(x[b, i, k])
        np.testing.assert_allclose(
            g_x[b, i, k], central(lambda e, b=b, i=i, k=k: (net, x.at[b, i, k].add(e))),
            rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("parallel", [True, False])
def test_gradients_of_some_arguments_only_are_the_same(parallel):
    """The replays differentiate only what is differentiated (the layer's backward
    pass and `_scan.scan_prefix` hold the rest constant), and their re-solves carry
    sensitivities only for that (`_watched.sensitivity_solve`; training the weights
    alone needs the state columns only). The weight gradients alone, and the
    neuron-parameter gradients alone (no state direction at all in the first layer
    of the first-spike path), equal those of the gradient with respect to
    everything (same solver steps, so to rounding): for the first-spike path and
    for the event loop's event-by-event replay."""
    x = batch()
    net = network("EIF", parallel)  # (QIF's outputs stay silent on this batch)
    _, (g_all, _) = spikes_and_grads(net, x)

    @jax.jit
    def partial_grads(weights, neurons):
        def loss(weights, neurons):
            moved = eqx.tree_at(lambda n: (n.weights, n.neurons), net,
                                (weights, neurons))
            return first_spike_loss_of(jax.vmap(moved)(x))

        return (jax.grad(loss, argnums=0)(weights, neurons),
                jax.grad(loss, argnums=1)(weights, neurons))

    g_weights, g_neurons = partial_grads(net.weights, net.neurons)
    assert all(np.any(np.asarray(g) != 0) for g in g_all.weights)
    leaves = jax.tree.leaves(g_all.neurons)
    assert sum(bool(np.any(np.asarray(g) != 0)) for g in leaves) >= 6
    for a, b in [*zip(g_weights, g_all.weights),
                 *zip(jax.tree.leaves(g_neurons), leaves)]:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_float32():
    """The user default: float32 runs, agrees with float64 to float32 accuracy (a
    crossing at a shallow slope turns rounding into time) and gives finite
    gradients."""
    x = batch(jnp.float32)
    fast, g = spikes_and_grads(network("QIF", True, dtype=jnp.float32), x)
    exact = run(network("QIF", True), x.astype(jnp.float64))
    assert fast.first.dtype == jnp.float32
    assert_same_spikes(fast, exact, atol=2e-3)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))


@pytest.mark.parametrize("parallel", [True, False])
def test_float32_gradients_across_a_long_rest(parallel):
    """Izhikevich neurons lifted slightly off rest at t = 1 and fired by an input at
    t = 29: the replay re-solves the 28 ms in between. Integrating the state
    backwards there (diffrax's BacksolveAdjoint, used until 2026-11-30) amplifies
    float32 rounding ~e^17-fold (rest attracts forwards, so it repels backwards):
    the gradient with respect to the early input's weights was 50-76 % off. Now
    float32 agrees with float64 to a few percent (0.2-2 %, depending on how XLA
    compiled it: the early input's effect is small after 28 ms, and float32
    rounding shows)."""
    def net(dtype, parallel):
        net = es.FeedForward(2, [4], es.Izhikevich(), jax.random.key(0), t_max=40.0,
                             solver=es.DiffraxSegments(parallel=parallel))
        w = jnp.array([[3.0, 4.0, 5.0, 6.0], [40.0, 40.0, 40.0, 40.0]], dtype)
        net = eqx.tree_at(lambda n: n.weights[0], net, w)
        return cast(net, dtype)

    x = jnp.array([[1.0], [29.0]])

    @eqx.filter_jit
    def grad(net, x):
        return eqx.filter_grad(lambda net: jnp.sum(net(x).first))(net).weights[0]

    g64 = grad(net(jnp.float64, True), x.astype(jnp.float64))
    g32 = grad(net(jnp.float32, parallel), x.astype(jnp.float32))
    assert g32.dtype == jnp.float32
    assert np.all(np.abs(g64[0]) > 1e-3)  # the early input matters
    np.testing.assert_allclose(g32, g64, rtol=5e-2, atol=1e-7)


def test_float32_gradients_with_respect_to_input_times():
    """float32 gradients of the EIF benchmark workload (5-120-3, 32 samples, output
    weights scaled so that most outputs fire) agree with float64. An input time's
    derivative is the difference of two terms (the interval before it ends, the one
    after it starts); taken through the replay's solver steps, the benchmark's
    float32 gradients were 19 % off (2026-11-30), hence the flow's identity
    dy(L)/dL = f(y(L)) now.

    The bound allows for conditioning. A hidden neuron driven just past its
    rheobase fires late, at a time that is very sensitive to its input: here one
    weight gradient is ~940 ms per unit weight (sample 21, hidden neuron 84, spike
    at 29.2 ms), and in float64 a relative change of 1e-6 in the weights (float32's
    solver tolerance) moves it by 6e-4 of the largest entry; float32's error there
    was 4.5e-5 (2026-11-30) and 5.5e-4 (2026-12-01). So each entry may differ by
    2e-3 of the largest entry plus 100 times its own float64 change under that
    perturbation: well-conditioned entries are held to 2e-3, and a 1 % systematic
    error fails. It caught one (2026-12-01): a backward pass that selected the
    gradients on a reduction over themselves ran wrong under XLA:CPU on two
    threads (right on one), output weight gradients 3 % off in nearly every row,
    relative errors 7.6e-3 and 3.0e-2 (see `_adjoint.with_replay_gradient`)."""
    def net(dtype):
        model = es.EIF(v_reset=-1000.0)
        key = jax.random.key(0)
        net = es.FeedForward(5, [120, 3], model, key, t_max=30.0)
        out = es.FeedForward(5, [120, 3], model, key, t_max=30.0, init_mean=3.0)
        net = eqx.tree_at(lambda n: n.weights[1], net, out.weights[1])
        return cast(net, dtype)

    x = np.random.default_rng(1).uniform(0.0, 15.0, (32, 5, 1))
    net64 = net(jnp.float64)
    _, (g64, _) = spikes_and_grads(net64, jnp.asarray(x, jnp.float64))
    rng = np.random.default_rng(2)
    moved = eqx.tree_at(lambda n: n.weights, net64, [
        w * (1 + 1e-6 * rng.standard_normal(w.shape)) for w in net64.weights])
    _, (g_moved, _) = spikes_and_grads(moved, jnp.asarray(x, jnp.float64))
    net32 = net(jnp.float32)  # the same weights, rounded
    with precision("float32"):  # as a user runs it: x64 off
        out, (g32, _) = spikes_and_grads(net32, jnp.asarray(x, jnp.float32))
    assert int(jnp.sum(jnp.isfinite(out.first))) > 48  # most outputs fire
    for a, b, c in zip(g32.weights, g64.weights, g_moved.weights):
        a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
        assert np.all(np.isfinite(a))
        scale = np.max(np.abs(b))
        spread = np.abs(c - b)
        excess = np.abs(a - b) - (2e-3 * scale + 100 * spread)
        worst = np.unravel_index(np.argmax(excess), a.shape)
        assert excess[worst] <= 0, (
            f"EIF float32 weights: entry {worst} off by "
            f"{abs(a - b)[worst] / scale:.1e} of the largest entry; its float64 "
            f"change under 1e-6 weight noise: {spread[worst] / scale:.1e}")


def test_an_input_over_threshold_fires_at_its_arrival_unless_cancelled():
    """Delta-like inputs: a weight that lifts the membrane over the spike level
    fires at the input's time exactly; simultaneous inputs act as their sum, so an
    inhibitory spike at the same instant cancels it."""

    class Jump(es.QIF):  # an input spike moves the phase itself
        def input_spikes(self, y, w):
            return y.at[:, 0].add(w)

    net = es.FeedForward(2, [2], Jump(), jax.random.key(0), t_max=30.0)
    net = eqx.tree_at(lambda n: n.weights[0], net,
                      jnp.array([[4.0, 4.0], [0.0, -3.0]]))
    # Spike times and dt*_0/dx from one program, for both inputs below.
    first_and_grad = jax.jit(jax.value_and_grad(
        lambda x: (net(x).first[0], net(x).first), has_aux=True))
    x = jnp.array([[5.0], [5.0]])
    (_, first), _ = first_and_grad(x)
    assert float(first[0]) == 5.0  # fired at the input
    assert float(first[1]) > 5.0  # cancelled, fires later (or never)
    loop = eqx.tree_at(lambda n: n.segments, net,
                       (es.DiffraxSegments(parallel=False),))
    np.testing.assert_allclose(loop(x).first, first, rtol=0, atol=1e-6)
    # Alone, the first input fires neuron 0 at its own time: dt*/dx = 1.
    (_, first), g = first_and_grad(jnp.array([[5.0], [7.0]]))
    assert float(first[0]) == 5.0
    np.testing.assert_allclose(g, [[1.0], [0.0]])


def test_a_sample_that_runs_out_of_steps_is_flagged_alone():
    """A step budget too small for one sample fails that sample (solver_failed,
    reported by es.check), not the batch, and no time is NaN."""
    net = es.FeedForward(5, [6], es.EIF(), jax.random.key(0), t_max=30.0,
                         solver=es.DiffraxSegments(max_steps=12))
    x = jnp.stack([jnp.full((5, 1), jnp.inf), jnp.full((5, 1), 2.0)])
    net = eqx.tree_at(lambda n: n.weights[0], net, 3 * net.weights[0])
    out = run(net, x)
    result = out.layers[0].result
    np.testing.assert_array_equal(result == es.RESULTS.successful, [True, False])
    np.testing.assert_array_equal(result == es.RESULTS.solver_failed, [False, True])
    assert not bool(jnp.any(jnp.isnan(out.first)))
    with pytest.raises(RuntimeError, match="solver"):
        es.check(out)
