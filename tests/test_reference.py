"""Numerical reference tests: eventsnn's spike times and trajectories against an
independent scipy simulator (``helpers.reference_layer``) and against closed forms.

All in float64 (see ``conftest.py``). Sizes are small: these tests are about values,
not scale.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ALL_MODELS, reference_layer
from scipy.optimize import brentq

import eventsnn as es

INF = np.inf


def assert_same_spikes(times, counts, expected, atol):
    """``times``/``counts`` (eventsnn, padded) equal ``expected`` (lists): same count
    per neuron, times within ``atol``, ``+inf`` padding after the last spike."""
    times, counts = np.asarray(times), np.asarray(counts)
    assert counts.tolist() == [len(e) for e in expected]
    for j, want in enumerate(expected):
        got = times[j, : len(want)]
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"neuron {j}")
        assert np.all(times[j, len(want):] == INF), f"neuron {j}: padding is not +inf"


# ------------------------------------------------------- 1. every model vs scipy
# Weight scales that make 6 neurons fire a few times each in 60 ms with the inputs
# below (the mean drive differs by orders of magnitude between models).
WEIGHT_SCALE = {
    "LIF": 2.5,
    "LIF-subtract": 2.5,
    "DeltaLIF": 0.7,
    "AlphaLIF": 1.5,
    "IAF": 1.5,
    "IAF-bias-leak": 1.5,
    "QIF": 6.0,
    "EIF": 2.5,
    "AdEx": 3.0,
    "Izhikevich": 40.0,
    "Refractory-LIF": 2.5,
}
T_MAX = 60.0
MAX_SPIKES = 12


def random_inputs(seed, n_in, k, n, scale):
    """Sorted input times in [0, T_MAX) and mixed-sign (mostly excitatory) weights."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, T_MAX, (n_in, k)), axis=1)
    weights = scale * rng.uniform(-0.3, 1.0, (n_in, n))
    return times, weights


@pytest.mark.parametrize("name, make", ALL_MODELS, ids=[m[0] for m in ALL_MODELS])
def test_every_model_matches_scipy_reference(name, make):
    neuron = make()
    n = 6
    times, weights = random_inputs(0, n_in=4, k=5, n=n, scale=WEIGHT_SCALE[name])
    sp, _ = es.simulate(neuron, n, t_max=T_MAX, input_times=times, weights=weights,
                        max_spikes=MAX_SPIKES)
    expected = reference_layer(neuron, weights, times, T_MAX, MAX_SPIKES)

    counts = [len(e) for e in expected]
    # The comparison means something only if neurons fire, several times, and all
    # their spikes fit in the budget.
    assert sum(c > 0 for c in counts) >= n - 1 and max(counts) >= 2, counts
    assert max(counts) <= MAX_SPIKES
    assert sp.result == es.RESULTS.successful, es.RESULTS[sp.result]
    assert_same_spikes(sp.times, sp.counts, expected, atol=1e-6)


# ---------------------------------------------------- 2. closed forms, one input
def lif_kernel(tau_mem, tau_syn):
    """v(s) of a LIF neuron from v = 0, i = 1 at s = 0; and where v peaks."""
    if tau_mem == tau_syn:
        tau = tau_mem
        return (lambda s: s / tau * np.exp(-s / tau)), tau
    a = tau_syn / (tau_mem - tau_syn)
    peak = np.log(tau_mem / tau_syn) * tau_mem * tau_syn / (tau_mem - tau_syn)
    return (lambda s: a * (np.exp(-s / tau_mem) - np.exp(-s / tau_syn))), peak


def lif_crossing(i0, tau_mem, tau_syn, threshold):
    """First time v(s) = i0 * kernel(s) reaches the threshold (brentq on the closed
    form; v rises monotonically up to its single peak), or None."""
    kernel, peak = lif_kernel(tau_mem, tau_syn)
    if i0 * kernel(peak) <= threshold:
        return None
    return brentq(lambda s: i0 * kernel(s) - threshold, 0.0, peak,
                  xtol=1e-15, rtol=4 * np.finfo(float).eps)


def iaf_kernel(tau_mem, tau_syn):
    return lambda s: tau_syn / tau_mem * (1.0 - np.exp(-s / tau_syn))


def iaf_crossing(i0, tau_mem, tau_syn, threshold):
    """v(s) = i0 τs/τm (1 - e^{-s/τs}) = θ  ⇔  s = -τs log(1 - θ τm / (i0 τs))."""
    if i0 * tau_syn / tau_mem <= threshold:
        return None
    return -tau_syn * np.log1p(-threshold * tau_mem / (i0 * tau_syn))


def single_input_closed_form(kind, w, tau_mem, tau_syn, threshold, t_max):
    """One input of weight ``w`` at t = 0 into one neuron with v_reset = 0.

    After each spike the neuron restarts from v = 0 with the synaptic current it
    had, so the whole trajectory is the closed-form kernel, piece by piece.

    **Returns:** spike times, and ``state(ts) -> (v, i)`` (right-continuous).
    """
    kernel = lif_kernel(tau_mem, tau_syn)[0] if kind == "LIF" else iaf_kernel(
        tau_mem, tau_syn)
    crossing = lif_crossing if kind == "LIF" else iaf_crossing
    starts, currents = [0.0], [w]
    while (s := crossing(currents[-1], tau_mem, tau_syn, threshold)) is not None:
        if starts[-1] + s >= t_max:
            break
        starts.append(starts[-1] + s)
        currents.append(currents[-1] * np.exp(-s / tau_syn))

    def state(ts):
        k = np.searchsorted(starts, ts, side="right") - 1
        s = ts - np.asarray(starts)[k]
        i0 = np.asarray(currents)[k]
        return i0 * kernel(s), i0 * np.exp(-s / tau_syn)

    return starts[1:], state


# (id, neuron, weight, expected number of spikes): the counts pin down that the
# piecewise construction really went through resets.
CLOSED_FORM_CASES = [
    ("LIF", es.LIF(tau_mem=20.0, tau_syn=5.0, threshold=1.0), 10.0, 1),
    ("LIF-equal-taus", es.LIF(tau_mem=5.0, tau_syn=5.0, threshold=1.0), 5.0, 2),
    ("IAF", es.IAF(tau_mem=20.0, tau_syn=5.0, threshold=1.0), 12.0, 2),
]


def grid_avoiding(spikes, t_max, num=241):
    """Query times in [0, t_max] that keep away from spike times (where the state
    jumps, so a 1e-12 timing difference would be an O(1) state difference)."""
    ts = np.linspace(0.0, t_max, num)
    for t_spike in spikes:
        ts = ts[np.abs(ts - t_spike) > 1e-6]
    return ts


@pytest.mark.parametrize("name, neuron, w, n_spikes", CLOSED_FORM_CASES,
                         ids=[c[0] for c in CLOSED_FORM_CASES])
def test_single_input_matches_closed_form(name, neuron, w, n_spikes):
    t_max = 40.0
    kind = "IAF" if name == "IAF" else "LIF"
    spikes, state = single_input_closed_form(
        kind, w, neuron.tau_mem, neuron.tau_syn, neuron.threshold, t_max)
    assert len(spikes) == n_spikes
    ts = grid_avoiding(spikes, t_max)
    sp, traj = es.simulate(neuron, 1, t_max=t_max, input_times=[[0.0]], weights=[[w]],
                           ts=jnp.asarray(ts), max_spikes=4)
    assert sp.result == es.RESULTS.successful
    assert_same_spikes(sp.times, sp.counts, [spikes], atol=1e-9)
    v, i = state(ts)
    np.testing.assert_allclose(traj[0, :, 0], v, rtol=0, atol=1e-9)
    np.testing.assert_allclose(traj[0, :, 1], i, rtol=0, atol=1e-9)


def test_lif_state_at_t_matches_closed_form():
    """The LIF case above through ``FeedForward.state_at_t``, against the formula of
    the LIF docstring, v(t) = w τs/(τm - τs) (e^{-t/τm} - e^{-t/τs}), up to the
    spike (brentq on that formula gives the spike time) and the piecewise closed form
    after it; the state must show the reset at that time."""
    tau_mem, tau_syn, w, t_max = 20.0, 5.0, 10.0, T_MAX
    net = es.FeedForward(1, [1], es.LIF(tau_mem=tau_mem, tau_syn=tau_syn),
                         jax.random.key(0), t_max=t_max, max_spikes=4)
    net = eqx.tree_at(lambda m: m.weights, net, [jnp.array([[w]])])

    def docstring_v(t):
        return w * tau_syn / (tau_mem - tau_syn) * (np.exp(-t / tau_mem)
                                                    - np.exp(-t / tau_syn))

    t_spike = brentq(lambda t: docstring_v(t) - 1.0, 0.0, 9.0, xtol=1e-15)
    spikes, state = single_input_closed_form("LIF", w, tau_mem, tau_syn, 1.0, t_max)
    np.testing.assert_allclose(spikes, [t_spike], rtol=0, atol=1e-12)

    ts = grid_avoiding(spikes, t_max)
    traj = net.state_at_t(jnp.array([[0.0]]), jnp.asarray(ts))
    assert traj.shape == (1, ts.size, 2)
    before = ts < t_spike
    assert before.sum() > 10 and (~before).sum() > 10
    np.testing.assert_allclose(traj[0, before, 0], docstring_v(ts[before]), rtol=0,
                               atol=1e-9)
    v, i = state(ts)
    np.testing.assert_allclose(traj[0, :, 0], v, rtol=0, atol=1e-9)
    np.testing.assert_allclose(traj[0, :, 1], i, rtol=0, atol=1e-9)
    np.testing.assert_allclose(traj[0, :, 1], w * np.exp(-ts / tau_syn), rtol=0,
                               atol=1e-9)


# --------------------------------------------- 3. exact flow vs diffrax (LIF net)
def lif_network(solver, max_spikes):
    """A 5 -> 5 -> 5 LIF network with fixed weights, and its input.

    Multi-spike: 5 input spikes per channel, and most neurons of both layers fire
    one to five times. First-spike: one input spike per channel (latency code) and
    stronger weights; one neuron of layer 1 stays silent. (Equal layer sizes and
    input width = ``max_spikes`` let both layers share one compiled event loop.)
    """
    if max_spikes == 1:
        rng = np.random.default_rng(0)
        w1, w2 = 6.0 * rng.uniform(-0.3, 1.0, (2, 5, 5))
        x = rng.uniform(0.0, 20.0, (5, 1))
    else:
        rng = np.random.default_rng(2)
        w1, w2 = 2.5 * rng.uniform(-0.3, 1.0, (2, 5, 5))
        x = np.sort(rng.uniform(0.0, T_MAX, (5, max_spikes)), axis=1)
    net = es.FeedForward(5, [5, 5], es.LIF(), jax.random.key(0), t_max=T_MAX,
                         max_spikes=max_spikes, solver=solver)
    net = eqx.tree_at(lambda m: m.weights, net, [jnp.asarray(w1), jnp.asarray(w2)])
    return net, x, (w1, w2)


def padded(spike_lists, width):
    """Per-neuron spike lists as a ``(n, width)`` array of input times."""
    assert max(map(len, spike_lists)) <= width
    return np.array([s + [INF] * (width - len(s)) for s in spike_lists])


@pytest.mark.parametrize("max_spikes", [5, 1], ids=["multi-spike", "first-spike"])
def test_exact_and_diffrax_paths_agree(max_spikes):
    net_exact, x, (w1, w2) = lif_network(None, max_spikes)
    net_tsit, _, _ = lif_network(diffrax.Tsit5(), max_spikes)
    assert all(isinstance(s, es.ExactSegments) for s in net_exact.segments)
    assert all(isinstance(s, es.DiffraxSegments) for s in net_tsit.segments)
    exact, tsit = net_exact(x), net_tsit(x)
    assert not bool(exact.overflow.any()) and not bool(tsit.overflow.any())

    ref1 = reference_layer(es.LIF(), w1, x, T_MAX, max_spikes)
    ref2 = reference_layer(es.LIF(), w2, padded(ref1, max_spikes), T_MAX, max_spikes)
    counts1, counts2 = list(map(len, ref1)), list(map(len, ref2))
    if max_spikes == 1:
        assert counts1.count(0) == 1 and counts2 == [1] * 5
    else:
        assert sum(counts1) >= 10 and sum(counts2) >= 5 and max(counts2) >= 2
    for layer, ref in enumerate([ref1, ref2]):
        a, b = exact.layers[layer], tsit.layers[layer]
        assert a.times.shape == b.times.shape == (5, max_spikes)
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_allclose(a.times, b.times, rtol=0, atol=1e-6)
        assert_same_spikes(a.times, a.counts, ref, atol=1e-6)
        assert_same_spikes(b.times, b.counts, ref, atol=1e-6)


# --------------------------------------------------------- 4. delta synapses
# (reset_mode, input weight / threshold, spikes at the input time, v after / θ,
# solver). "subtract" conserves charge: a jump to v = kθ + r (0 <= r < θ) fires k
# spikes at the input time and keeps r; "zero" fires once, whatever the overshoot.
# DeltaLIF takes the exact path by default (one clock per neuron); Tsit5 runs the
# population-clock loop, whose "already above threshold" branch is separate code.
DELTA_CASES = [
    ("zero", 1.0, 1, 0.0, None),  # exactly at threshold counts as a crossing
    ("zero", 1.5, 1, 0.0, None),
    ("zero", 2.5, 1, 0.0, None),
    ("subtract", 1.5, 1, 0.5, None),
    ("subtract", 2.5, 2, 0.5, None),
    ("subtract", 2.5, 2, 0.5, diffrax.Tsit5()),
]


@pytest.mark.parametrize(
    "mode, factor, n_spikes, v_after, solver", DELTA_CASES,
    ids=[f"{c[0]}-{c[1]}-{'exact' if c[4] is None else 'tsit5'}" for c in DELTA_CASES],
)
def test_delta_lif_fires_at_the_input_time(mode, factor, n_spikes, v_after, solver):
    theta, tau_mem, t_in = 0.8, 20.0, 3.0
    neuron = es.DeltaLIF(tau_mem=tau_mem, threshold=theta, reset_mode=mode)
    ts = jnp.array([2.0, t_in, 10.0])
    sp, traj = es.simulate(neuron, 1, t_max=20.0, input_times=[[t_in]],
                           weights=[[factor * theta]], ts=ts, max_spikes=4,
                           solver=solver)
    assert sp.result == es.RESULTS.successful
    # Exactly the input time, not a root find's approximation of it.
    padding = [INF] * (4 - n_spikes)
    assert np.asarray(sp.times[0]).tolist() == [t_in] * n_spikes + padding
    assert int(sp.counts[0]) == n_spikes
    # The trajectory is right-continuous: at t_in it is the state after the resets.
    v_expected = [0.0, v_after * theta, v_after * theta * np.exp(-7.0 / tau_mem)]
    atol = 1e-12 if solver is None else 1e-9
    np.testing.assert_allclose(traj[0, :, 0], v_expected, rtol=0, atol=atol)
    assert reference_layer(neuron, [[factor * theta]], [[t_in]], 20.0, 4) == [
        [t_in] * n_spikes]


# ---------------------------------------------------- 5. constant current
CURRENTS = np.array([1.2, 1.5, 3.0])  # threshold 1: all above rheobase


def time_to_threshold(c, tau_mem=20.0, threshold=1.0):
    """LIF from v = 0 under constant current c: c(1 - e^{-t/τm}) = θ."""
    return tau_mem * np.log(c / (c - threshold))


def test_lif_constant_current_is_periodic():
    t_max = 150.0
    sp, _ = es.simulate(es.LIF(), 3, t_max=t_max, current=jnp.asarray(CURRENTS),
                        max_spikes=32)
    assert sp.result == es.RESULTS.successful
    expected = []
    for c in CURRENTS:
        period = time_to_threshold(c)
        expected.append(list(period * np.arange(1, int(t_max / period) + 1)))
    assert [len(e) for e in expected] == [4, 6, 18]
    assert_same_spikes(sp.times, sp.counts, expected, atol=1e-9)


def test_refractory_lif_constant_current_intervals():
    t_ref, t_max = 2.0, 150.0
    neuron = es.Refractory(es.LIF(), t_ref=t_ref)
    sp, _ = es.simulate(neuron, 3, t_max=t_max, current=jnp.asarray(CURRENTS),
                        max_spikes=32)
    assert sp.result == es.RESULTS.successful
    expected = []
    for c in CURRENTS:
        first = time_to_threshold(c)
        k = np.arange(int((t_max - first) / (first + t_ref)) + 1)
        expected.append(list(first + k * (first + t_ref)))
    assert [len(e) for e in expected] == [4, 6, 15]
    assert_same_spikes(sp.times, sp.counts, expected, atol=1e-6)
    counts = np.asarray(sp.counts)
    intervals = np.diff(np.asarray(sp.times[2, : counts[2]]))
    np.testing.assert_allclose(intervals, time_to_threshold(3.0) + t_ref, rtol=0,
                               atol=1e-6)


# ----------------------------------------------------------- 6. step current
# 0 before t_on, the level on [t_on, t_off), 0 after: a LIF from rest fires every
# τm log(c / (c - θ)) from t_on on, never before t_on nor after t_off, and then decays.
@pytest.mark.parametrize(
    "values, levels",
    [([0.0, 1.5, 0.0], [1.5, 1.5]),
     ([[0.0, 0.0], [1.5, 3.0], [0.0, 0.0]], [1.5, 3.0])],
    ids=["shared", "per-neuron"],
)
def test_lif_step_current(values, levels):
    t_on, t_off, t_max, tau_mem = 10.0, 60.0, 100.0, 20.0
    n = len(levels)
    ts = jnp.array([5.0, t_off, 80.0])
    sp, traj = es.simulate(es.LIF(), n, t_max=t_max,
                           current=es.step_current([t_on, t_off], values), ts=ts,
                           max_spikes=16)
    assert sp.result == es.RESULTS.successful
    expected, v_expected = [], []
    for c in levels:
        period = time_to_threshold(c)
        spikes = t_on + period * np.arange(1, int((t_off - t_on) / period) + 1)
        expected.append(list(spikes))
        v_off = c * (1 - np.exp(-(t_off - spikes[-1]) / tau_mem))
        v_expected.append([0.0, v_off, v_off * np.exp(-(80.0 - t_off) / tau_mem)])
    assert [len(e) for e in expected] == [{1.5: 2, 3.0: 6}[c] for c in levels]
    assert_same_spikes(sp.times, sp.counts, expected, atol=1e-6)
    counts = np.asarray(sp.counts)
    for j in range(n):
        fired = np.asarray(sp.times[j, : counts[j]])
        assert np.all((fired > t_on) & (fired < t_off))
    np.testing.assert_allclose(traj[:, :, 0], v_expected, rtol=0, atol=1e-7)
