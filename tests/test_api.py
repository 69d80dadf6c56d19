"""The public API: construction, bad input, batching, compilation, custom models."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eventsnn as es
from helpers import USER_COMPILE, SinCos

jax.config.update("jax_enable_x64", True)

X = jnp.array([[0.0, 6.0], [1.0, jnp.inf], [2.0, 8.0], [3.0, jnp.inf], [0.5, 4.0]])


def small_net(**kwargs):
    options = dict(t_max=30.0, max_spikes=1)
    options.update(kwargs)
    return es.FeedForward(5, [12, 3], es.LIF(), jax.random.key(0), **options)


# ----------------------------------------------------------------- neuron contract
def test_missing_method_fails_at_construction_naming_it():
    class Incomplete(es.AbstractNeuron):
        state_names = ("v",)

        def init_state(self, n):
            return jnp.zeros((n, 1))

        def dynamics(self, t, y, args):
            return -y

        def spike_condition(self, t, y, args):
            return y[:, 0] - 1

        def input_spikes(self, y, w):
            return y.at[:, 0].add(w)

    with pytest.raises(TypeError, match="reset"):
        Incomplete()


def test_init_state_must_match_state_names():
    class Mismatch(es.LIF):
        def init_state(self, n):
            return jnp.zeros((n, 3))

    with pytest.raises(ValueError, match="state_names"):
        es.FeedForward(5, [3], Mismatch(), jax.random.key(0), t_max=10.0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: es.LIF(tau_mem=-1.0), "tau_mem"),
        (lambda: es.LIF(tau_syn=0.0), "tau_syn"),
        (lambda: es.LIF(threshold=float("nan")), "threshold"),
        (lambda: es.QIF(tau_mem=float("inf")), "tau_mem"),
        (lambda: es.Refractory(es.LIF(), t_ref=-2.0), "t_ref"),
        (lambda: es.LIF(reset_mode="half"), "reset_mode"),
    ],
)
def test_invariants_checked_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_parameters_are_trainable_leaves():
    leaves = jax.tree_util.tree_leaves(eqx.filter(es.LIF(), eqx.is_inexact_array_like))
    assert len(leaves) == 5  # tau_mem, tau_syn, threshold, v_reset, bias


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "bad, match",
    [
        (X.at[0, 0].set(jnp.nan), "NaN"),
        (X.at[1, 0].set(-1.0), "negative"),
        (X[:4], "in_size=5"),
        (X[None], "in_size=5"),
        (jnp.zeros((5, 2), jnp.int32), "floating-point"),
    ],
)
def test_bad_input_times_raise_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        small_net()(bad)


@pytest.mark.parametrize("bad_value", [jnp.nan, -1.0])
def test_bad_input_inside_jit_is_flagged_per_sample(bad_value):
    # Inside jit the times cannot raise at call time: the sample is flagged (no
    # run-time error, which would put a host callback into the compiled program).
    net = small_net()
    bad = X.at[0, 0].set(bad_value)
    out = jax.jit(jax.vmap(net))(jnp.stack([X, bad]))
    codes = np.asarray(out.layers[0].result._value)
    assert codes[0] == es.RESULTS.successful._value
    assert codes[1] == es.RESULTS.invalid_input._value
    assert np.asarray(out.overflow)[:, 0].tolist() == [False, True]
    # The good sample is untouched; the bad one ran with that input as 'no spike'.
    np.testing.assert_array_equal(out.first[0], net(X).first)
    np.testing.assert_array_equal(out.first[1], net(X.at[0, 0].set(jnp.inf)).first)
    assert not np.isnan(np.asarray(out.first)).any()
    with pytest.raises(RuntimeError, match="invalid_input in 1 of 2 sample"):
        es.check(out)
    # Functions without a result field give NaN for that sample instead.
    ts = jnp.linspace(0.0, 30.0, 4)
    traj = jax.jit(jax.vmap(lambda x: net.state_at_t(x, ts)))(jnp.stack([X, bad]))
    traj = np.asarray(traj)
    assert np.isfinite(traj[0]).all() and np.isnan(traj[1]).all()
    peak = jax.jit(jax.vmap(net.max_membrane))(jnp.stack([X, bad]))
    peak = np.asarray(peak)
    assert np.isfinite(peak[0]).all() and np.isnan(peak[1]).all()
    spikes, _ = jax.jit(lambda x: es.simulate(es.LIF(), 3, t_max=30.0, input_times=x,
                                              weights=jnp.ones((5, 3))))(bad)
    assert spikes.result == es.RESULTS.invalid_input


def _callbacks(jaxpr, found):
    """Names of the host-callback primitives anywhere in ``jaxpr``."""
    for eqn in jaxpr.eqns:
        if "callback" in eqn.primitive.name:
            found.append(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _callbacks(inner, found)
    return found


@pytest.mark.parametrize(
    "make, kwargs",
    [(es.LIF, dict()), (es.LIF, dict(max_spikes=4)),
     (es.LIF, dict(gradient="autodiff")),
     (es.EIF, dict()), (es.EIF, dict(max_spikes=2))],
    ids=["lif-first-spike", "lif-multi-spike", "lif-autodiff", "eif-first-spike",
         "eif-multi-spike"],
)
def test_gradient_step_has_no_host_callbacks(make, kwargs):
    # A host callback (eqx.error_if, a traced diffrax check) keeps a compiled program
    # out of JAX's persistent compilation cache and syncs an accelerator with the
    # host at every call; the network's programs have none.
    options = dict(t_max=30.0, max_spikes=1)
    options.update(kwargs)
    net = es.FeedForward(5, [6, 3], make(), jax.random.key(0), **options)

    def loss(net, x):
        return jnp.sum(jnp.where(jnp.isfinite(out := jax.vmap(net)(x).first), out, 0.0))

    batch = jnp.stack([X, X + 1.0])
    jaxpr = jax.make_jaxpr(eqx.filter_value_and_grad(loss))(net, batch)
    assert _callbacks(jaxpr.jaxpr, []) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t_max=0.0), "t_max"),
        (dict(t_max=-5.0), "t_max"),
        (dict(max_spikes=0), "max_spikes"),
        (dict(gradient="finite-differences"), "gradient"),
        (dict(max_events=[10]), "max_events"),
        (dict(max_spikes=[4]), "one value per layer"),
        (dict(max_spikes=[4, 0]), r"max_spikes\[1\]"),
        (dict(max_spikes=2.0), "max_spikes"),
        (dict(solver="rk4"), "solver"),
    ],
)
def test_bad_network_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        small_net(**kwargs)


def test_bad_query_times():
    net = small_net()
    with pytest.raises(ValueError, match="t_max"):
        net.state_at_t(X, jnp.array([0.0, 31.0]))
    with pytest.raises(ValueError, match="layer"):
        net.state_at_t(X, jnp.array([1.0]), layer=5)


def test_exact_solver_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="linear"):
        es.FeedForward(5, [3], es.QIF(), jax.random.key(0), t_max=10.0,
                       solver=es.ExactLinear())(X)
    with pytest.raises(ValueError, match="2 state"):
        es.FeedForward(5, [3], es.AlphaLIF(), jax.random.key(0), t_max=10.0,
                       solver=es.ExactLinear())(X)
    with pytest.raises(ValueError, match="constant"):
        es.simulate(es.LIF(), 1, t_max=10.0, current=lambda t: 1.0 + 0 * t,
                    solver=es.ExactLinear())


# ------------------------------------------------------------------------- results
def test_result_structure():
    out = small_net()(X)
    assert out.times.shape == (3, 1)
    assert out.first.shape == (3,)
    assert out.counts.shape == (3,)
    assert len(out.layers) == 2
    assert out.layers[0].times.shape == (12, 1)
    assert out.overflow.shape == (2,)
    assert not bool(out.overflow.any())
    # a fresh network fires
    assert int((out.layers[0].counts > 0).sum()) >= 3
    assert es.check(out) is out


def test_times_sorted_and_padded_with_inf():
    net = small_net(max_spikes=6)
    out = net(X)
    times = np.asarray(out.layers[0].times)
    counts = np.asarray(out.layers[0].counts)
    for row, count in zip(times, counts):
        assert np.all(np.isfinite(row[:count]))
        assert np.all(np.isinf(row[count:]))
        assert np.all(np.diff(row[:count]) > 0)
    assert not np.isnan(times).any()


def test_overflow_is_flagged_and_check_raises_with_the_knob():
    net = small_net(max_spikes=6, max_events=3)
    out = net(X)
    assert bool(out.overflow[0])
    with pytest.raises(RuntimeError, match="max_events"):
        es.check(out)


def test_max_spikes_overflow_is_flagged():
    net = es.FeedForward(1, [1], es.LIF(bias=2.0), jax.random.key(0), t_max=200.0,
                         max_spikes=2, max_events=100)
    out = net(jnp.array([[jnp.inf]]))
    assert int(out.counts[0]) > 2
    assert out.layers[0].result == es.RESULTS.max_spikes_reached
    with pytest.raises(RuntimeError, match="max_spikes"):
        es.check(out)


def test_max_spikes_per_layer():
    """``max_spikes=[4, 1]``: the hidden layer keeps several spikes, the output layer
    only its first, which is what ``max_spikes=4`` gives as its first spikes; the
    gradient of a first-spike loss is the same."""
    x = jnp.tile(jnp.array([[0.0], [1.0], [2.0], [3.0], [0.5]]), (1, 3)) + jnp.array(
        [0.0, 5.0, 10.0])
    both = small_net(max_spikes=[4, 1], init_mean=3.0)
    every = small_net(max_spikes=4, init_mean=3.0)
    assert both.max_spikes == (4, 1) and every.max_spikes == (4, 4)

    @eqx.filter_jit
    def spikes_and_grad(net):  # one program per network
        def loss(net):
            out = net(x)
            return es.losses.first_spike_cross_entropy(out.first, 1, tau=5.0), out

        (_, out), g = eqx.filter_value_and_grad(loss, has_aux=True)(net)
        return out, g

    (out, g), (ref, g_ref) = spikes_and_grad(both), spikes_and_grad(every)
    assert out.layers[0].times.shape == (12, 4) and out.layers[1].times.shape == (3, 1)
    assert int(jnp.max(out.layers[0].counts)) > 1  # the hidden layer fires again
    np.testing.assert_allclose(out.layers[0].times, ref.layers[0].times, rtol=1e-12)
    np.testing.assert_allclose(out.first, ref.first, rtol=1e-12)
    assert np.isfinite(np.asarray(out.first)).sum() >= 2
    for a, b in zip(g.weights, g_ref.weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_one_sample_overflowing_does_not_fail_the_batch():
    net = small_net(max_spikes=4, max_events=12)
    quiet = jnp.full((5, 2), jnp.inf).at[0, 0].set(1.0)
    busy = jnp.tile(jnp.linspace(0.0, 10.0, 2), (5, 1))
    out = jax.vmap(net)(jnp.stack([quiet, busy]))
    flags = np.asarray(out.overflow)
    assert flags.shape == (2, 2)
    assert not flags[0].any() and flags[1].any()
    with pytest.raises(RuntimeError, match="1 of 2 sample"):
        es.check(out)


def test_silent_network_gives_inf_not_nan():
    net = small_net()
    net = eqx.tree_at(lambda m: m.weights, net, [jnp.zeros_like(w) for w in net.weights])
    out = net(X)
    assert np.all(np.isinf(np.asarray(out.first)))
    assert int(out.counts.sum()) == 0
    traj = net.state_at_t(X, jnp.linspace(0, 30, 7))
    assert np.allclose(np.asarray(traj), 0.0)


# ---------------------------------------------------------------- batching and jit
def test_vmap_equals_python_loop():
    # Bit for bit, compiled as users' programs are (the suite's faster compiler
    # settings vectorise differently and move the last bit of a few times).
    net = small_net(max_spikes=3)
    batch = jax.random.uniform(jax.random.key(3), (6, 5, 2), maxval=10.0)
    batch = batch.at[2, 1, 1].set(jnp.inf)
    batched = jax.jit(lambda n, x: jax.vmap(n)(x), compiler_options=USER_COMPILE)
    one = jax.jit(lambda n, x: n(x), compiler_options=USER_COMPILE)
    out = batched(net, batch)
    for b in range(batch.shape[0]):
        single = one(net, batch[b])
        for layer_b, layer_1 in zip(out.layers, single.layers):
            np.testing.assert_array_equal(layer_b.times[b], layer_1.times)
            np.testing.assert_array_equal(layer_b.counts[b], layer_1.counts)


def test_jit_compiles_once_for_new_data_and_parameters():
    traces = []

    @eqx.filter_jit
    def run(net, x):
        traces.append(1)
        return net(x).first

    net = small_net()
    run(net, X)
    run(net, X + 0.25)
    net2 = eqx.tree_at(lambda m: m.weights[0], net, net.weights[0] * 1.1)
    net2 = eqx.tree_at(lambda m: m.neurons, net2, tuple(
        eqx.tree_at(lambda n: n.tau_mem, n, jnp.asarray(15.0)) for n in net2.neurons))
    run(net2, X)
    assert len(traces) == 1


def test_float32_default_works():
    with jax.enable_x64(False):
        net = es.FeedForward(5, [12, 3], es.LIF(), jax.random.key(0), t_max=30.0)
        out = net(X.astype(jnp.float32))
        assert out.times.dtype == jnp.float32
        assert int((out.layers[0].counts > 0).sum()) >= 3
    net64 = es.FeedForward(5, [12, 3], es.LIF(), jax.random.key(0), t_max=30.0)
    net64 = eqx.tree_at(lambda m: m.weights, net64,
                        [w.astype(jnp.float64) for w in net.weights])
    ref = net64(X)
    np.testing.assert_allclose(np.asarray(out.layers[0].first),
                               np.asarray(ref.layers[0].first), rtol=1e-4)


def test_float32_network_runs_the_event_loop_with_x64_enabled():
    # Regression: diffrax's event root find pairs the spike condition with a Python
    # 0.0 (float64 under x64) in a lax.cond, so a float32 layer on the diffrax event
    # loop did not trace once x64 was on (as it is in this suite).
    net64 = es.FeedForward(5, [6, 2], es.QIF(), jax.random.key(0), t_max=30.0,
                           max_spikes=3)
    net64 = eqx.tree_at(lambda m: m.weights[0], net64, 3 * net64.weights[0])
    net32 = jax.tree.map(
        lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, net64)
    out, ref = net32(X.astype(jnp.float32)), net64(X)
    assert out.times.dtype == jnp.float32
    assert int(ref.layers[0].counts.sum()) >= 4  # the loop found several spikes
    for a, b in zip(out.layers, ref.layers):
        np.testing.assert_array_equal(a.counts, b.counts)
        finite = np.isfinite(np.asarray(b.times))
        np.testing.assert_array_equal(np.isfinite(np.asarray(a.times)), finite)
        np.testing.assert_allclose(np.asarray(a.times)[finite],
                                   np.asarray(b.times)[finite], rtol=0, atol=2e-3)


def test_per_layer_neuron_models_and_solvers():
    net = es.FeedForward(5, [8, 2], [es.QIF(), es.LIF()], jax.random.key(1),
                         t_max=40.0, max_spikes=10)
    assert es._network.default_solver_name(net) == ["Tsit5", "ExactLinear"]
    out = net(X)
    assert not bool(out.overflow.any())
    net_dopri = es.FeedForward(5, [8, 2], [es.QIF(), es.LIF()], jax.random.key(1),
                               t_max=40.0, max_spikes=10, solver=diffrax.Dopri8())
    out2 = net_dopri(X)
    np.testing.assert_allclose(np.asarray(out2.layers[0].times),
                               np.asarray(out.layers[0].times), atol=1e-6)


# -------------------------------------------------------------------- custom model
def test_custom_model_runs_spikes_and_has_finite_trajectories():
    x = jnp.array([[0.0, 1.0, 2.0], [0.5, 1.5, jnp.inf]])
    net = es.FeedForward(2, [4], SinCos(tau_mem=1.0, threshold=0.5), jax.random.key(0),
                         t_max=40.0,
                         max_spikes=5)
    net = eqx.tree_at(lambda m: m.weights[0], net, jnp.full((2, 4), 2.5))
    out = es.check(net(x))
    assert int(out.counts.min()) >= 1
    traj = net.state_at_t(x, jnp.linspace(0.0, 40.0, 81))
    assert traj.shape == (4, 81, 2)
    assert np.isfinite(np.asarray(traj)).all()
    # After each spike the trajectory restarts from A = 0.
    first = float(out.first[0])
    after = net.state_at_t(x, jnp.array([first]))
    assert abs(float(after[0, 0, 0])) < 1e-9


def test_large_vmapped_batch_matches_chunks():
    # Regression: XLA:CPU miscompiled a fused multiply-reduce once a vmapped batch
    # made the hidden layer's arrays longer than 2**15 rows (120 neurons x >= 274
    # samples), giving wrong spike times from sample 273 on (see `_exact.rowdot`).
    # float32 and XLA's default compiler settings, as users run it.
    data = es.datasets.yin_yang("validation", size=300)
    with jax.enable_x64(False):
        net = es.FeedForward(5, [120, 3], es.LIF(), jax.random.key(3), t_max=30.0,
                             init_mean=2.0, init_std=0.5)
        x = jnp.asarray(data.inputs, jnp.float32)
        batched = jax.jit(lambda n, x: jax.vmap(n)(x), compiler_options=USER_COMPILE)

        def run(x):
            return batched(net, x)

        whole = run(x).layers[0].first
        chunks = jnp.concatenate([run(x[i : i + 50]).layers[0].first
                                  for i in range(0, 300, 50)])
    whole, chunks = np.asarray(whole), np.asarray(chunks)
    np.testing.assert_array_equal(np.isfinite(whole), np.isfinite(chunks))
    finite = np.isfinite(whole)
    np.testing.assert_allclose(whole[finite], chunks[finite], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("make, x64", [(es.QIF, True), (es.EIF, False)],
                         ids=["QIF-float64", "EIF-float32"])
def test_vmapped_adaptive_layer_matches_single_samples(make, x64):
    # Regressions: under vmap, optx.Bisection (diffrax's event root find) reported a
    # failure for the samples without a crossing in their last step, so a batch ended
    # `solver_failed` (seen in float64); and in float32 an EIF neuron that had fired
    # kept integrating its runaway upstroke. One sample here is silent.
    with jax.enable_x64(x64):
        net = es.FeedForward(5, [10, 3], [make(), es.LIF()], jax.random.key(1),
                             t_max=30.0, init_mean=2.0, init_std=0.5)
        x = jax.random.uniform(jax.random.key(2), (5, 5, 1), maxval=10.0)
        x = x.at[3].set(jnp.inf)
        batch = es.check(jax.jit(jax.vmap(net))(x))
        run = jax.jit(lambda xb: net(xb))
        for b in range(x.shape[0]):
            single = es.check(run(x[b]))
            for layer_b, layer_1 in zip(batch.layers, single.layers):
                np.testing.assert_allclose(np.asarray(layer_b.times[b]),
                                           np.asarray(layer_1.times), rtol=1e-5)
    hidden = batch.layers[0].counts
    assert int((hidden[3] > 0).sum()) == 0
    assert int((hidden > 0).sum()) >= 20


def test_first_spike_mode_holds_a_fired_neuron():
    # EIF runs away after threshold unless reset; in first-spike mode a fired neuron
    # is switched off at its post-reset state, on the adaptive path as on the exact.
    x = jnp.array([[1.0], [2.0]])
    for neuron in (es.EIF(), es.LIF()):
        net = es.FeedForward(2, [1], neuron, jax.random.key(0), t_max=40.0)
        net = eqx.tree_at(lambda m: m.weights[0], net, jnp.full((2, 1), 40.0))
        t_spike = float(es.check(net(x)).first[0])
        assert 1.0 <= t_spike < 10.0
        # (`state_at_t` runs the event loop, whose spike time agrees with the
        # first-spike path's to solver tolerance, not to the last bit.)
        ts = jnp.linspace(t_spike + 1e-6, 40.0, 9)
        v = np.asarray(net.state_at_t(x, ts)[0, :, 0])
        np.testing.assert_allclose(v, v[0], rtol=0, atol=1e-12)
        assert np.isfinite(v).all()
