"""Weight initialisation that makes a fresh network fire, for any neuron model.

How strong one input spike must be to make a resting neuron fire depends on the model
and its parameters. It is measured once per model: a population of probe neurons, each
receiving one input spike of a different weight (log-spaced), is simulated, and the
smallest weight that makes a probe fire within ``t_max`` is ``w_fire``. Weights are
then drawn so that the summed input of a layer brings a typical neuron past threshold:

    W ~ Normal(mean · w_fire / n_in,  (std · w_fire / √n_in)²)

This is the scaling used for first-spike networks (Göltz et al. 2021; Wunderlich &
Pehle 2021), made model-agnostic (and correct for non-linear models, whose effective
threshold is not the spike-detection level) by measuring instead of deriving it.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._current import as_current
from ._layer import run_layer
from ._neuron import AbstractNeuron, declares_kinks
from ._solve import event_function, segment_solver_for
from ._spikes import RESULTS

_PROBES = np.logspace(-3, 3, 121)  # 20 probes per decade: w_fire to within 12 %


def firing_weight(neuron: AbstractNeuron, t_max: float) -> float:
    """The smallest weight of a single input spike at t = 0 that makes a resting
    neuron fire before ``t_max``.

    Each probe weight is simulated as its own sample (``vmap``), so a probe whose
    solve fails (huge weights can make a stiff model fail) cannot spoil the others;
    failed probes count as unknown, not as silent. Warns and returns ``1.0`` if no
    probe fires. A model with one value per neuron of a parameter is probed with
    the mean of those values (a typical neuron of the population).

    The probe is compiled once per model structure and dtype: ``t_max`` and the
    parameter values are data, so building further layers or networks of a model
    only runs it (milliseconds). A model without kinks before its first spike (see
    `discontinuities`) is probed with one segment solve per weight instead of the
    event loop: same spike times, less to compile (half as much for exact flows).
    """
    dtype = jnp.zeros(()).dtype
    neuron = jax.tree.map(lambda a: jnp.mean(a) if jnp.ndim(a) else a, neuron)
    # Only the first spike matters: probe the model that is simplest to integrate
    # up to it (Refractory: its inner model, which then shares the inner model's
    # compiled probe).
    first, ok = _probe(neuron.first_spike_model(), jnp.asarray(t_max, dtype))
    fired = np.isfinite(np.asarray(first)) & np.asarray(ok)
    if not fired.any():
        warnings.warn(
            f"No single input spike of weight up to {_PROBES[-1]:g} makes "
            f"{type(neuron).__name__} fire within t_max={t_max}; weights are "
            "initialised on the scale 1.0. Pass init_mean/init_std or set the "
            "weights yourself.",
            stacklevel=3,
        )
        return 1.0
    return float(_PROBES[np.argmax(fired)])


@eqx.filter_jit
def _probe(neuron, t_max, loop: bool = False):
    """First spike time and success of each probe weight (one sample each); through
    the event loop if ``loop`` or if the model needs it."""
    dtype = t_max.dtype
    current = as_current(None, 1, dtype)
    segments = segment_solver_for(neuron, None, True)
    zero = jnp.zeros((), dtype)

    def probe_loop(weight):
        spikes, _, _ = run_layer(
            neuron, jnp.reshape(weight, (1, 1)), jnp.zeros((1, 1), dtype), current,
            segments, t_max=t_max, max_spikes=1, max_events=4,
        )
        return spikes.first[0], spikes.result == RESULTS.successful

    def probe_segment(weight):
        # What the event loop does with this input, without the loop: the input at
        # t = 0, firing at once if it lifts the condition to >= 0 (delta synapses),
        # else one segment to t_max, which ends at the crossing if there is one.
        # Less to trace and compile (network construction waits for it).
        y = neuron.input_spikes(neuron.init_state(1).astype(dtype),
                                jnp.reshape(weight, (1,)))
        active = jnp.ones((1,), bool)
        now = event_function(neuron, current, zero, y, active)[0] >= 0
        t0 = zero if segments.clock == "population" else jnp.zeros((1,), dtype)
        seg = segments.advance(neuron, current, ctx, t0, t_max, y, active)
        t = jnp.ravel(seg.t)[0]
        crossed = jnp.ravel(seg.spiked)[0] & (t < t_max)
        first = jnp.where(now, zero, jnp.where(crossed, t, jnp.inf))
        return first, now | ~seg.failed

    # (`firing_weight` passes `first_spike_model()`: a kink it declares can come
    # before the first spike, and a segment solve would step across it.)
    if loop or declares_kinks(neuron):
        probe = probe_loop
    else:
        ctx = segments.prepare(neuron, current, 1, dtype)  # one for every weight
        probe = probe_segment
    return jax.vmap(probe)(jnp.asarray(_PROBES, dtype))


def init_weights(
    key, n_in: int, n_out: int, neuron: AbstractNeuron, t_max: float,
    mean: float = 1.5, std: float = 1.0, dtype=None,
) -> jax.Array:
    """Draw an ``(n_in, n_out)`` weight matrix for ``neuron`` (see module docstring)."""
    scale = firing_weight(neuron, t_max)
    mu = mean * scale / n_in
    sigma = std * scale / np.sqrt(n_in)
    return mu + sigma * jax.random.normal(key, (n_in, n_out), dtype=dtype)
