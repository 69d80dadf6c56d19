"""The replays' differentiated re-solve (`eventsnn._watched`): exact on a problem with
a closed form, and NaN (value and derivatives), never wrong, when it cannot finish;
and how the layer's backward pass treats a failed or NaN replay."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from eventsnn._watched import sensitivity_solve


def _lif_layer():
    """A 5-4 LIF layer through the event loop (first spikes), for the layer's
    backward pass: ``(segments, neuron, weights, current, run, run_recorded)``, the
    last two as `_adjoint.with_replay_gradient` takes them."""
    import eventsnn as es
    from eventsnn._current import as_current
    from eventsnn._layer import run_layer

    segments = es.ExactSegments(parallel=False)
    options = dict(t_max=30.0, max_spikes=1, max_events=24)
    weights = 3.0 * jnp.ones((5, 4)) + 0.5 * jnp.arange(4.0)
    current = as_current(None, 4, weights.dtype)

    def run(model, w, x, c):
        return run_layer(model, w, x, c, segments, **options)[0]

    def run_recorded(model, w, x, c):
        spikes, _, log = run_layer(model, w, x, c, segments, record=True, **options)
        return spikes, (log, spikes.num_events)

    return segments, es.LIF(), weights, current, run, run_recorded


def test_a_failed_replay_spoils_only_the_samples_whose_spikes_are_used():
    """The layer's backward pass (`_adjoint.with_replay_gradient`) with a replay that
    is NaN for one sample of two (as a re-solve that ran out of steps is): a loss
    that uses that sample gets a NaN gradient; a loss that leaves it out (as `fit`
    leaves out a sample flagged in the forward pass) gets exactly the gradient of the
    other sample, not NaN."""
    from eventsnn._adjoint import replay, with_replay_gradient

    segments, neuron, weights, current, run, run_recorded = _lif_layer()
    x = jnp.stack([jnp.linspace(0.0, 4.0, 5)[:, None],
                   jnp.linspace(1.0, 6.0, 5)[:, None]])

    def replay_times(poison):
        def times(model, w, x, c, record):
            t = replay(model, w, x, *record, c, segments, t_max=30.0, max_spikes=1)
            return t * jnp.where(poison & (x[0, 0] > 0.5), jnp.nan, 1.0)
        return times

    def loss(w, use, poison):
        def one(x):
            return with_replay_gradient(neuron, w, x, current, run, run_recorded,
                                        replay_times(poison)).times
        times = jax.vmap(one)(x)
        assert bool(jnp.all(jnp.isfinite(times)))  # forward values are untouched
        return jnp.sum(jnp.where(use[:, None, None], times, 0.0))

    both, first = jnp.array([True, True]), jnp.array([True, False])
    assert np.isfinite(np.asarray(jax.grad(loss)(weights, both, False))).all()
    assert np.isnan(np.asarray(jax.grad(loss)(weights, both, True))).all()
    np.testing.assert_array_equal(jax.grad(loss)(weights, first, True),
                                  jax.grad(loss)(weights, first, False))
    assert np.abs(np.asarray(jax.grad(loss)(weights, first, True))).sum() > 0


def test_the_layer_replays_only_what_is_differentiated():
    """The layer's backward pass (`_adjoint.with_replay_gradient`) replays
    differentiably only what the caller differentiates (a non-linear layer's
    re-solves carry a sensitivity per differentiated parameter): with the model's
    parameters and the input times passed through `undifferentiable` in the replay,
    the gradient with respect to the weights alone is that of the plain replay, and
    one with respect to the input times does differentiate them (so the check can
    fail)."""
    import equinox as eqx
    import pytest
    from helpers import undifferentiable

    from eventsnn._adjoint import replay, with_replay_gradient

    segments, neuron, weights, current, run, run_recorded = _lif_layer()
    x = jnp.linspace(0.0, 4.0, 5)[:, None]

    def plain(model, w, x, c, record):
        return replay(model, w, x, *record, c, segments, t_max=30.0, max_spikes=1)

    def guarded(model, w, x, c, record):
        model = jax.tree.map(
            lambda leaf: undifferentiable(leaf) if eqx.is_inexact_array(leaf) else leaf,
            model)
        return plain(model, w, undifferentiable(x), c, record)

    def loss(w, x, replay_times):
        times = with_replay_gradient(neuron, w, x, current, run, run_recorded,
                                     replay_times).times
        return jnp.sum(jnp.where(jnp.isfinite(times), times, 0.0))

    got = jax.grad(loss)(weights, x, guarded)
    want = jax.grad(loss)(weights, x, plain)
    assert np.abs(np.asarray(want)).sum() > 0
    np.testing.assert_array_equal(got, want)
    with pytest.raises(AssertionError, match="was differentiated"):
        jax.grad(loss, argnums=1)(weights, x, guarded)


def test_a_nan_loss_gives_a_nan_gradient_on_the_replay_paths():
    """On a layer whose gradient comes from a replay (here multi-spike LIF, replayed
    by superposition), a loss that is NaN at a spike time gives a NaN gradient, not
    zero: `fit` must see it to skip the step."""
    import equinox as eqx

    import eventsnn as es

    net = es.FeedForward(5, [6, 3], es.LIF(), jax.random.key(0), t_max=30.0,
                         max_spikes=[2, 1], init_mean=3.0)
    x = jnp.linspace(0.0, 8.0, 5)[:, None]

    @eqx.filter_jit  # one program for both scales
    def spikes_and_grad(net, scale):
        def loss(net):
            first = net(x).first
            return jnp.sum(jnp.where(jnp.isfinite(first), first, 0.0)) * scale, first

        (_, first), g = eqx.filter_value_and_grad(loss, has_aux=True)(net)
        return first, g.weights

    first, good = spikes_and_grad(net, jnp.asarray(1.0))
    assert bool(jnp.isfinite(first).any())
    assert all(np.isfinite(np.asarray(g)).all() for g in good)
    assert np.abs(np.asarray(good[0])).sum() > 0
    _, bad = spikes_and_grad(net, jnp.asarray(jnp.nan))
    assert all(np.isnan(np.asarray(g)).any() for g in bad)


def test_the_stretch_after_the_last_event_is_not_replayed():
    """The event-log replay does not re-solve the last stretch (to t_max): it feeds
    no spike time. Here that stretch needs ~530 steps (dtmax 0.05 ms) and the
    budget is 100: the forward pass flags the sample (its spikes before it are
    exact), and the gradient of those spikes is still exact, not NaN (it was NaN
    while the replay re-solved that stretch too)."""
    import equinox as eqx

    import eventsnn as es

    def net(max_steps):
        solver = es.DiffraxSegments(parallel=False, dtmax=0.05, max_steps=max_steps)
        net = es.FeedForward(2, [2], es.EIF(), jax.random.key(0), t_max=30.0,
                             solver=solver)
        # Neuron 0 fires after the second input, neuron 1 stays silent to t_max.
        return eqx.tree_at(lambda n: n.weights[0], net,
                           jnp.array([[12.0, 0.5], [12.0, 0.5]]))

    x = jnp.array([[1.0], [2.0]])

    @eqx.filter_jit  # spikes and gradient from one program per network
    def spikes_and_grad(net):
        def loss(net):
            out = net(x)
            return jnp.sum(jnp.where(jnp.isfinite(out.first), out.first, 0.0)), out

        (_, out), g = eqx.filter_value_and_grad(loss, has_aux=True)(net)
        return out, g.weights[0]

    (out, g_short), (ref, g_full) = spikes_and_grad(net(100)), spikes_and_grad(net(4096))
    assert out.layers[0].result == es.RESULTS.solver_failed
    assert ref.layers[0].result == es.RESULTS.successful
    np.testing.assert_array_equal(out.first, ref.first)
    assert np.isfinite(float(out.first[0])) and np.isinf(float(out.first[1]))
    assert np.abs(np.asarray(g_full)).sum() > 0
    np.testing.assert_allclose(g_short, g_full, rtol=1e-10, atol=0)


def _affine_decay(a, c, scale, y0, max_steps):
    """y(1) of dy/dt = scale * (-a y + c) per row, by `sensitivity_solve` (``scale``
    held constant): closed form y0 e^{-a s} + c/a (1 - e^{-a s}) with s = scale."""
    def field(t, y, args):
        a, c, scale = args
        return scale * (-a * y + c[:, None])

    controller = diffrax.PIDController(rtol=1e-10, atol=1e-12)
    return sensitivity_solve(field, diffrax.Tsit5(), controller, 0.0, 1.0, 0.1, y0,
                             (a, c, scale), max_steps=max_steps, constant=(2,))


def test_sensitivity_solve_matches_the_closed_form_and_reverse_mode():
    """Forward sensitivities (one direction per state column and per parameter: a
    scalar rate, one drive per row) give the closed form's value and derivatives,
    and the same derivatives as plain reverse mode through diffrax's solve."""
    with jax.enable_x64(True):
        a, scale = jnp.array(0.7), jnp.array(1.5)
        c = jnp.array([0.2, -1.0, 3.0])
        y0 = jnp.array([[0.5, -3.0], [1.0, 0.0], [2.0, 4.0]])

        def loss(a, c, y0, solve):
            w = jnp.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])
            return jnp.sum(w * solve(a, c, y0))

        sens = lambda a, c, y0: _affine_decay(a, c, scale, y0, 4096)  # noqa: E731

        def reverse(a, c, y0):
            field = lambda t, y, args: args[2] * (-args[0] * y + args[1][:, None])  # noqa: E731
            controller = diffrax.PIDController(rtol=1e-10, atol=1e-12)
            sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, 1.0,
                                      0.1, y0, (a, c, scale),
                                      stepsize_controller=controller)
            return sol.ys[-1]

        decay = np.exp(-0.7 * 1.5)
        closed = y0 * decay + (c / a)[:, None] * (1 - decay)
        np.testing.assert_allclose(sens(a, c, y0), closed, rtol=1e-9)
        g_sens = jax.grad(loss, (0, 1, 2))(a, c, y0, sens)
        g_rev = jax.grad(loss, (0, 1, 2))(a, c, y0, reverse)
        g_closed = jax.grad(
            lambda a, c, y0: loss(a, c, y0, lambda a, c, y0: y0 * jnp.exp(-a * scale)
                                  + (c / a)[:, None] * (1 - jnp.exp(-a * scale))),
            (0, 1, 2))(a, c, y0)
        for got, ref, want in zip(g_sens, g_rev, g_closed):
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)


def test_sensitivity_solve_out_of_steps_is_nan_not_wrong():
    a, scale, c = jnp.array(2.0), jnp.array(1.0), jnp.array([0.5, 1.0])
    y0 = jnp.array([[0.5, -3.0], [1.0, 2.0]])
    assert np.isnan(np.asarray(_affine_decay(a, c, scale, y0, 2))).all()
    grads = jax.grad(lambda a, c, y0: jnp.sum(_affine_decay(a, c, scale, y0, 2)),
                     (0, 1, 2))(a, c, y0)
    assert all(np.isnan(np.asarray(g)).all() for g in grads)


def test_segment_state_and_its_derivatives_with_either_adjoint():
    """`DiffraxSegments.state_at`, the replays' re-solve, with its default (forward
    sensitivities, `sensitivity_solve`) and with a diffrax adjoint passed in
    (reverse mode through diffrax's checkpointed loop): both give the LIF's exact
    flow (`ExactSegments.state_at`, closed form) and its derivatives with respect to
    the start state, both times and a model parameter, and hold a neuron that does
    not move (``moving``) where it is."""
    import eventsnn as es
    from eventsnn._current import as_current

    y0 = jnp.array([[0.2, 1.5], [0.7, 0.4], [-0.1, 2.0]])
    moving = jnp.array([True, True, False])
    current = as_current(None, 3, jnp.float64)
    exact = es.ExactSegments()
    tight = es.DiffraxSegments(rtol=1e-12, atol=1e-12)

    def end_state(segments, adjoint=None):
        def f(y0, t0, t1, tau_mem):
            neuron = es.LIF(tau_mem=tau_mem, tau_syn=5.0)
            ctx = segments.prepare(neuron, current, 3, jnp.float64)
            kw = {} if adjoint is None else {"adjoint": adjoint}
            return segments.state_at(neuron, current, ctx, t0, t1, y0, moving=moving,
                                     **kw)
        return jax.jit(lambda *a: (f(*a), jax.jacrev(f, argnums=(0, 1, 2, 3))(*a)))

    args = (y0, jnp.asarray(1.0), jnp.asarray(7.5), jnp.asarray(20.0))
    ref, d_ref = end_state(exact)(*args)
    np.testing.assert_array_equal(ref[2], y0[2])  # held
    assert np.all(np.abs(np.asarray(ref[:2] - y0[:2])) > 1e-2)  # the others moved
    for adjoint in (None, diffrax.RecursiveCheckpointAdjoint()):
        y1, d = end_state(tight, adjoint)(*args)
        np.testing.assert_allclose(y1, ref, rtol=0, atol=1e-10)
        for a, b in zip(d, d_ref):
            assert np.any(np.asarray(b) != 0)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
