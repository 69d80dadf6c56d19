"""Shared test helpers: every shipped neuron model, and an independent reference
simulator built on ``scipy.integrate.solve_ivp``."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import eventsnn as es
from eventsnn._neuron import param

# XLA's own defaults for the compiler settings that conftest.py lowers to compile
# faster. A test that checks bit-level agreement between two compiled programs
# compiles both with these (``jax.jit(..., compiler_options=USER_COMPILE)``), as
# users' programs are compiled: how XLA vectorises decides the last bit.
USER_COMPILE = {
    "xla_backend_optimization_level": 3,
    "xla_llvm_disable_expensive_passes": False,
    "xla_cpu_use_fusion_emitters": True,
}

# (id, factory) for every shipped model. Factories, so that each test builds its own.
ALL_MODELS = [
    ("LIF", lambda: es.LIF()),
    ("LIF-subtract", lambda: es.LIF(reset_mode="subtract")),
    ("DeltaLIF", lambda: es.DeltaLIF()),
    ("AlphaLIF", lambda: es.AlphaLIF()),
    ("IAF", lambda: es.IAF()),
    ("IAF-bias-leak", lambda: es.IAF(bias=0.2, leak=0.1)),
    ("QIF", lambda: es.QIF()),
    ("EIF", lambda: es.EIF()),
    ("AdEx", lambda: es.AdEx()),
    ("Izhikevich", lambda: es.Izhikevich()),
    ("Refractory-LIF", lambda: es.Refractory(es.LIF(), t_ref=2.0)),
]


def reference_layer(neuron, weights, input_times, t_max, max_spikes, *,
                    rtol=1e-11, atol=1e-11, max_step=1.0):
    """Simulate one population of ``neuron`` driven by input spikes, with scipy.

    Only the model's *definition* comes from eventsnn: ``init_state``, ``dynamics``
    (the right-hand side), ``spike_condition``, ``input_spikes`` and ``reset``. The
    integration (DOP853), the location of threshold crossings (one terminal event
    per neuron, ``direction=+1``) and the event loop are scipy's and this file's.

    Semantics, as documented in ``eventsnn/_layer.py``:

    - input spikes at times ``>= t_max`` are ignored; spikes arriving at the same
      instant are summed before they are applied;
    - a neuron whose spike condition is ``>= 0`` (e.g. just after a delta-synapse
      input) fires at once, at the current time, and again while it stays there;
    - ``max_spikes == 1`` is first-spike mode: a neuron that fired is no longer
      watched. Otherwise every spike is returned, so a list may be longer than
      ``max_spikes`` (the caller checks).
    - [`eventsnn.Refractory`][]: the right-hand side jumps when a countdown reaches
      0 (at ``t_spike + t_ref``); integration stops there and restarts with that
      countdown exactly 0, so scipy never steps across the discontinuity.

    **Returns:** one sorted list of spike times per neuron.
    """
    weights = np.asarray(weights, dtype=float)
    input_times = np.atleast_2d(np.asarray(input_times, dtype=float))
    n_in, n = weights.shape
    assert input_times.shape[0] == n_in
    no_current = jnp.zeros(n)
    rhs = jax.jit(lambda t, y: neuron.dynamics(t, y, no_current))
    cond = jax.jit(lambda t, y: neuron.spike_condition(t, y, no_current))
    reset = jax.jit(lambda y, spiked: neuron.reset(y, spiked))
    add_input = jax.jit(lambda y, w: neuron.input_spikes(y, w))

    t_ref = float(neuron.t_ref) if isinstance(neuron, es.Refractory) else None
    refractory_end = np.full(n, np.inf)  # finite while a neuron is refractory

    def f(t, flat):
        y = flat.reshape(n, -1)
        if t_ref is not None:
            # A segment ends where a countdown reaches 0, so the set of refractory
            # neurons is fixed within it. Evaluate the right-hand side as the limit
            # from inside the segment, also at its very end, where the integrated
            # countdown may be an ulp below 0 (that derivative would otherwise leak
            # into DOP853's dense output, hence into event states).
            y = y.copy()
            y[:, -1] = np.where(np.isfinite(refractory_end),
                                np.maximum(y[:, -1], 1e-12), 0.0)
        return np.asarray(rhs(t, jnp.asarray(y))).reshape(-1)

    cache = {}  # the n event functions all ask for g at the same (t, y)

    def g(t, flat):
        key = (t, flat.tobytes())
        if key not in cache:
            cache.clear()
            cache[key] = np.asarray(cond(t, jnp.asarray(flat.reshape(n, -1))))
        return cache[key]

    def crossing_of(j):
        def event(t, flat):
            return float(g(t, flat)[j])

        event.terminal = True
        event.direction = 1
        return event

    # Input events: the distinct input times below t_max, each with summed weights.
    flat_t = input_times.reshape(-1)
    flat_channel = np.repeat(np.arange(n_in), input_times.shape[1])
    arrivals = [
        (t_in, weights[flat_channel[flat_t == t_in]].sum(axis=0))
        for t_in in np.unique(flat_t[flat_t < t_max])
    ]

    y = np.array(neuron.init_state(n), dtype=float)
    t = 0.0
    spikes = [[] for _ in range(n)]
    watched = np.ones(n, bool)
    next_input = 0

    def fire(j, t_spike):
        nonlocal y
        spikes[j].append(t_spike)
        y = np.array(reset(jnp.asarray(y), jnp.arange(n) == j))
        if t_ref is not None:
            refractory_end[j] = t_spike + t_ref
        if max_spikes == 1:
            watched[j] = False

    while True:
        # Whoever is at/above threshold now fires now (delta synapses).
        for _ in range(1000):
            above = np.flatnonzero(watched & (g(t, y.reshape(-1)) >= 0))
            if above.size == 0:
                break
            for j in above:
                fire(j, t)
        else:
            raise RuntimeError("a neuron stays above threshold after its resets")

        t_input = arrivals[next_input][0] if next_input < len(arrivals) else np.inf
        t_refractory = refractory_end.min()
        t_end = min(t_input, t_refractory, t_max)
        if t_end > t:
            candidates = np.flatnonzero(watched)
            sol = solve_ivp(
                f, (t, t_end), y.reshape(-1), method="DOP853", rtol=rtol, atol=atol,
                max_step=max_step, events=[crossing_of(j) for j in candidates],
            )
            assert sol.status >= 0, sol.message
            if sol.status == 1:  # a threshold crossing ended the segment
                firsts = [te[0] if te.size else np.inf for te in sol.t_events]
                k = int(np.argmin(firsts))
                t = firsts[k]
                y = np.array(sol.y_events[k][0]).reshape(n, -1)
                fire(candidates[k], t)
                continue
            y = np.array(sol.y[:, -1]).reshape(n, -1)
        t = t_end
        if t >= t_max:
            return [sorted(s) for s in spikes]
        if t == t_refractory:
            ended = refractory_end == t
            y[ended, -1] = 0.0
            refractory_end[ended] = np.inf
        if t == t_input:
            weighted = jnp.asarray(arrivals[next_input][1])
            y = np.array(add_input(jnp.asarray(y), weighted))
            next_input += 1


class SinCos(es.AbstractNeuron):
    """The seed custom model: dA/dt = -(sin A + cos B)/tau_mem, tau_syn dB/dt = -B;
    fires when A crosses `threshold` (A can never pass π/2), reset A to 0."""

    tau_mem: jax.Array = param(10.0)
    tau_syn: jax.Array = param(5.0)
    threshold: jax.Array = param(1.0)
    state_names = ("A", "B")

    def init_state(self, n):
        return jnp.zeros((n, 2))

    def dynamics(self, t, y, args):
        a, b = y[:, 0], y[:, 1]
        return jnp.stack([-(jnp.sin(a) + jnp.cos(b)) / self.tau_mem,
                          -b / self.tau_syn], axis=-1)

    def spike_condition(self, t, y, args):
        return y[:, 0] - self.threshold

    def input_spikes(self, y, w):
        return y.at[:, 1].add(w)

    def reset(self, y, spiked):
        return y.at[:, 0].set(jnp.where(spiked, 0.0, y[:, 0]))


def cast(net, dtype):
    """``net`` with every floating-point array (weights, model parameters) in
    ``dtype``."""
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a,
                        net)


# ------------------------------------------------------- first-spike path comparisons
@eqx.filter_jit
def run_batch(net, x):
    """The batch as one compiled program (un-jitted, each layer compiles apart)."""
    return jax.vmap(net)(x)


def first_spike_loss(net, x):
    """A loss that weighs every layer's first spike times differently."""
    return first_spike_loss_of(jax.vmap(net)(x))


def first_spike_loss_of(out):
    total = 0.0
    for layer in out.layers:
        t = layer.times[..., 0]
        total = total + jnp.sum(jnp.where(jnp.isfinite(t), t, 0.0)
                                * jnp.linspace(1.0, 2.0, t.shape[-1]))
    return total


@eqx.filter_jit
def first_spike_grads(net, x):
    """Gradient of `first_spike_loss` with respect to the network and the inputs."""
    return eqx.filter_grad(lambda nx: first_spike_loss(*nx))((net, x))


@eqx.filter_jit
def spikes_and_grads(net, x):
    """The batch's spikes and the gradient of `first_spike_loss` (network and
    inputs), from one compiled program: a test that needs both compiles the layers
    once instead of twice (the suite's cost is compilation)."""
    def loss(nx):
        out = jax.vmap(nx[0])(nx[1])
        return first_spike_loss_of(out), out

    (_, out), g = eqx.filter_value_and_grad(loss, has_aux=True)((net, x))
    return out, g


def assert_same_spikes(a, b, atol):
    """Same counts, same fired neurons, same times (to ``atol``), same outcomes."""
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.counts, lb.counts)
        np.testing.assert_array_equal(np.isfinite(la.times), np.isfinite(lb.times))
        np.testing.assert_allclose(np.where(np.isfinite(la.times), la.times, 0.0),
                                   np.where(np.isfinite(lb.times), lb.times, 0.0),
                                   rtol=0, atol=atol)
        assert bool(jnp.all(la.result == lb.result))


def assert_same_grads(a, b, rtol, what=""):
    """Every leaf finite and within ``rtol`` of ``b``'s, relative to its largest."""
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        u, v = np.asarray(u), np.asarray(v)
        assert np.all(np.isfinite(u)), what
        scale = max(np.max(np.abs(v)), 1e-6)
        err = np.max(np.abs(u - v)) / scale
        assert err <= rtol, f"{what}: relative error {err:.1e}"


@jax.custom_jvp
def undifferentiable(x):
    """``x``, for tests: differentiating through it raises ``AssertionError``. A
    replay that must hold a constant fixed (one the caller does not differentiate)
    passes it through this, and the test fails if the replay differentiates it."""
    return x


def _refuse(primals, tangents):
    (x,), (t,) = primals, tangents
    if not isinstance(t, jax.custom_derivatives.SymbolicZero):
        raise AssertionError("a value that is not differentiated was differentiated")
    return x, jnp.zeros_like(x)


undifferentiable.defjvp(_refuse, symbolic_zeros=True)
