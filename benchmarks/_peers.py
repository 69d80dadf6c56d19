"""The peer libraries, eventax 0.1.0 and jaxsnn 0.3.0, configured for the workload.

Both are optional (``benchmarks/requirements-peers.txt``); `available()` says which
import. What is done to make their work equal to eventsnn's (see README.md):

eventax (``FFEvNN``): one recurrent population of ``H + n_out`` neurons with a
feedforward mask; its weight matrix is ``(H + n_out + in_size, H + n_out)`` with the
inputs as the last rows, so the shared weights are placed in the two off-diagonal
blocks. Its LIF/EIF equations and the "input spike adds w to i" convention are
eventsnn's. It lets a neuron fire again after a reset; for first-spike semantics
(a neuron fires at most once, as in eventsnn's ``max_spikes=1`` and jaxsnn) the reset
potential is -1000 (the trick jaxsnn's own examples use), so a neuron that fired cannot
reach threshold again within ``t_max``. Its defaults are kept: explicit Euler with
dt = 0.01 ms between events, ``optx.Newton(rtol=atol=1e-2)`` to locate spikes, reverse
mode through ``diffrax`` (``RecursiveCheckpointAdjoint``). Output first-spike times come
from ``EvNN.ttfs`` (stops once every output fired), hidden ones from ``EvNN.record``.

jaxsnn (``event`` API, ``backprop_method="eventprop"``): layers ``Source -> Linear ->
LIF -> Linear -> LIF``, ``v_reset = -1000`` (one spike per neuron, as in its examples),
the event scan sized to exactly the events that can occur (inputs + one spike per
neuron). Its LIF layer hard-wires the closed-form spike-time solver
``jaxsnn.event.solver.ttfs_solver``, which only covers tau_mem = tau_syn and
tau_mem = 2 tau_syn and silently falls through to the second formula otherwise (here
tau_mem / tau_syn = 4). The layer is therefore built with that solver replaced by
jaxsnn's own Newton solver ``jaxsnn.event.solver.newton_solver`` applied to the exact
LIF membrane ``v(t) - threshold`` (initial guess 0, its 6 iterations). The replacement
is done only while the layers are built (`_newton_lif_solver`).
"""

from __future__ import annotations

import contextlib
import importlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import Engine, Workload, loss_from_first

ONE_SPIKE_RESET = -1000.0
LABELS = {"eventax": "eventax (Euler dt=0.01)", "jaxsnn": "jaxsnn (EventProp, Newton)"}


def available() -> dict[str, str | None]:
    """``{peer: None if importable else the reason}``."""
    status = {}
    for name in ("eventax", "jaxsnn"):
        try:
            importlib.import_module(name)
            status[name] = None
        except Exception as error:  # noqa: BLE001 - any failure means "skip it"
            status[name] = f"{type(error).__name__}: {error}"
    return status


# ---------------------------------------------------------------------------- eventax
def eventax_engine(
    w: Workload,
    weights,
    *,
    one_spike=True,
    solver_stepsize=0.01,
    root_tol=1e-2,
    name=None,
) -> Engine:
    import optimistix as optx
    from eventax.evnn import FFEvNN
    from eventax.neuron_models import EIF, LIF, QIF, Izhikevich

    dtype = jnp.dtype(w.dtype)
    h, n_out, n_in = w.hidden, w.n_out, w.in_size
    n = h + n_out
    full = np.zeros((n + n_in, n))
    full[n:, :h] = weights[0]  # input rows come after the neurons
    full[:h, h:] = weights[1]
    reset = ONE_SPIKE_RESET if one_spike else 0.0
    if w.neuron == "lif":
        model, kwargs = (
            LIF,
            dict(thresh=w.threshold, tsyn=w.tau_syn, tmem=w.tau_mem, vreset=reset),
        )
    elif w.neuron == "eif":
        # eventsnn's EIF: v_rest 0, v_T 1, delta_T 0.2, spike at v_peak 2.
        model, kwargs = (
            EIF,
            dict(
                tsyn=w.tau_syn,
                tmem=w.tau_mem,
                vT=1.0,
                deltaT=0.2,
                EL=0.0,
                v_peak=2.0,
                spike_time_tol=None,
                vreset=reset,
            ),
        )
    elif w.neuron == "qif":
        # eventsnn's QIF with bias -1/4 (see `_common._es_neuron`); eventax fixes the
        # reset at phase 0 (V = -inf), from where a neuron needs > 20 ms (tau_mem
        # ln 3) to come back near rest: the cross-check counts any second spike that
        # changes a first spike downstream.
        model, kwargs = QIF, dict(tsyn=w.tau_syn, tmem=w.tau_mem)
    elif w.neuron == "izhikevich":
        # eventax starts a neuron at (c, b c): c = -70 mV is the rest point of
        # eventsnn's regular-spiking default, where eventsnn starts. One spike per
        # neuron: a jump of u by d = 1000 after a spike holds v far below threshold
        # for the rest of the window (u decays at a = 0.02 per ms).
        model, kwargs = (
            Izhikevich,
            dict(a=0.02, b=0.2, c=-70.0, d=1000.0 if one_spike else 8.0,
                 v_thresh=30.0, tau_syn=w.tau_syn),
        )
    else:
        raise ValueError(w.neuron)
    root_finder = None
    if root_tol != 1e-2:
        root_finder = optx.Newton(root_tol, root_tol, optx.rms_norm)
    # Event-loop iterations: start, every input spike, every spike (+ slack).
    steps = 1 + n_in + n * (1 if one_spike else 16) + 4
    net = FFEvNN(
        layers=[h, n_out],
        in_size=n_in,
        neuron_model=model,
        max_solver_time=w.t_max,
        key=jax.random.key(w.seed),
        solver_stepsize=solver_stepsize,
        max_event_steps=steps,
        root_finder=root_finder,
        dtype=dtype,
        init_weights=jnp.asarray(full, dtype),
        init_bias=0.0,
        **kwargs,
    )
    params, static = eqx.partition(net, eqx.is_array)

    def get_w(net):
        return net.neuron_model.weights

    def loss_grad(p, x, y):
        net = eqx.combine(p, static)

        def loss(weights):
            first = jax.vmap(eqx.tree_at(get_w, net, weights).ttfs)(x)
            return loss_from_first(first, y, w.loss_tau)

        value, grad = jax.value_and_grad(loss)(get_w(net))
        return value, [grad[n:, :h], grad[:h, h:]]  # the two blocks that are used

    def forward(p, x):
        return jax.vmap(eqx.combine(p, static).ttfs)(x)

    def spikes(p, x):
        net = eqx.combine(p, static)

        def one(xi):
            times, ids, _ = net.record(xi)
            hit = (ids[:, None] == jnp.arange(n)[None, :]) & jnp.isfinite(times)[
                :, None
            ]
            first = jnp.min(jnp.where(hit, times[:, None], jnp.inf), axis=0)
            return first[:h], first[h:]

        return jax.vmap(one)(x)

    label = name or f"eventax (Euler dt={solver_stepsize:g})"
    return Engine(
        label,
        params,
        loss_grad,
        forward,
        spikes,
        lambda x: jnp.asarray(x, dtype),
        "eventax",
    )


# ----------------------------------------------------------------------------- jaxsnn
def _lif_membrane_minus_threshold(tau_mem, tau_syn, v_th):
    """``f(state, t) = v(t) - v_th`` of the LIF from ``state`` (tau_m != tau_s)."""

    def f(state, t):
        a = state.I * tau_syn / (tau_syn - tau_mem)  # particular solution amplitude
        return (state.V - a) * jnp.exp(-t / tau_mem) + a * jnp.exp(-t / tau_syn) - v_th

    return f


def _newton_spike_time(tau_mem, tau_syn, v_th, state, t_max):
    """Same signature as ``jaxsnn.event.solver.ttfs_solver``, any tau ratio."""
    from jaxsnn.event.solver import newton_solver

    f = _lif_membrane_minus_threshold(tau_mem, tau_syn, v_th)
    return newton_solver(f, jnp.zeros((), jnp.result_type(state.V)), state, t_max)


@contextlib.contextmanager
def _newton_lif_solver():
    import jaxsnn.event.modules.lif.lif as lif_module

    original = lif_module.ttfs_solver
    lif_module.ttfs_solver = _newton_spike_time
    try:
        yield
    finally:
        lif_module.ttfs_solver = original


def jaxsnn_engine(w: Workload, weights, *, solver="newton", name=None) -> Engine:
    """jaxsnn's event-based LIF network. ``solver="newton"`` (see module docstring) or
    ``"closed-form"`` (jaxsnn's default, only valid for tau_mem/tau_syn in {1, 2}; kept
    to show what it does otherwise)."""
    from jaxsnn.event.modules import LIF, Linear, Source
    from jaxsnn.event.modules.lif.parameters import LIFParameters
    from jaxsnn.event.topology import Topology
    from jaxsnn.event.types import Spike

    if w.neuron != "lif":
        raise ValueError("jaxsnn simulates LIF neurons only")
    dtype = jnp.dtype(w.dtype)
    h, n_out, n_in = w.hidden, w.n_out, w.in_size
    lif = LIFParameters(
        tau_syn=w.tau_syn, tau_mem=w.tau_mem, v_th=w.threshold, v_reset=ONE_SPIKE_RESET
    )
    lif = LIFParameters(**{k: jnp.asarray(v, dtype) for k, v in lif.as_dict().items()})

    def build(k_in):
        topology = Topology(t_max=w.t_max, backprop_method="eventprop")
        topology.add(
            {
                "inp": Source(n_in),
                "syn1": Linear(),
                "lif1": LIF(h, n_in * k_in + h, lif),  # inputs + one spike per neuron
                "syn2": Linear(),
                "lif2": LIF(n_out, h + n_out, lif),
            }
        )
        topology.connect(
            [("inp", "syn1"), ("syn1", "lif1"), ("lif1", "syn2"), ("syn2", "lif2")]
        )
        patch = _newton_lif_solver() if solver == "newton" else contextlib.nullcontext()
        with patch:
            init_fn, apply_fn = topology.done()
        params = init_fn(jax.random.key(w.seed))
        params["syn1"] = jnp.asarray(weights[0], dtype)
        params["syn2"] = jnp.asarray(weights[1], dtype)
        return params, apply_fn

    params, apply_fn = build(1)

    def to_input(x):
        x = np.asarray(x)
        batch, _, k_in = x.shape
        if k_in != 1:
            raise ValueError("the jaxsnn engine is built for one spike per channel")
        times = x.reshape(batch, -1)
        channel = np.tile(np.repeat(np.arange(n_in), k_in), (batch, 1))
        order = np.argsort(times, axis=1, kind="stable")
        times = np.take_along_axis(times, order, 1)
        channel = np.take_along_axis(channel, order, 1)
        return {
            "inp": Spike(
                time=jnp.asarray(times, dtype),
                idx=jnp.asarray(channel, jnp.int32),
                current=jnp.zeros(times.shape, dtype),
                layer_idx=jnp.zeros(times.shape, jnp.int32),
                internal=jnp.asarray(np.isfinite(times)),
            )
        }

    def first_times(events, n):
        hit = (events.idx[..., None] == jnp.arange(n)) & events.internal[..., None]
        return jnp.min(jnp.where(hit, events.time[..., None], jnp.inf), axis=-2)

    def forward(p, x):
        return first_times(apply_fn(x, p)["lif2"], n_out)

    def loss_grad(p, x, y):
        def loss(p):
            return loss_from_first(forward(p, x), y, w.loss_tau)

        value, grads = jax.value_and_grad(loss)(p)
        return value, [grads["syn1"], grads["syn2"]]

    def spikes(p, x):
        events = apply_fn(x, p)
        return first_times(events["lif1"], h), first_times(events["lif2"], n_out)

    label = "jaxsnn (EventProp, %s)" % (
        "Newton" if solver == "newton" else "closed-form solver"
    )
    return Engine(name or label, params, loss_grad, forward, spikes, to_input, "jaxsnn")


def peer_engines(
    w: Workload, weights, use_peers: bool, *, eventax=True, jaxsnn=True
) -> tuple[list[Engine], dict]:
    """The peer engines that can run ``w``; and a note per peer that was skipped."""
    engines, skipped = [], {}
    if not use_peers:
        return engines, {"eventax": "--no-peers", "jaxsnn": "--no-peers"}
    status = available()
    wanted = {"eventax": eventax, "jaxsnn": jaxsnn and w.neuron == "lif"}
    for peer, reason in status.items():
        if not wanted[peer]:
            continue
        if reason is not None:
            skipped[peer] = f"not importable ({reason}); see benchmarks/README.md"
            print(f"note: {peer} skipped: {skipped[peer]}")
            continue
        make = eventax_engine if peer == "eventax" else jaxsnn_engine
        engines.append(make(w, weights))
    return engines, skipped
