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

import jax
import jax.numpy as jnp
import numpy as np

from ._current import as_current
from ._layer import run_layer
from ._neuron import AbstractNeuron
from ._solve import segment_solver_for

_PROBES = np.logspace(-4, 4, 161)  # 20 probes per decade: w_fire to within 12 %


def firing_weight(neuron: AbstractNeuron, t_max: float) -> float:
    """The smallest weight of a single input spike at t = 0 that makes a resting
    neuron fire before ``t_max`` (``1.0`` if no probe weight does)."""
    dtype = jnp.zeros(()).dtype
    n = _PROBES.size
    spikes, _ = run_layer(
        neuron,
        jnp.asarray(_PROBES, dtype)[None, :],
        jnp.zeros((1, 1), dtype),
        as_current(None, n, dtype),
        segment_solver_for(neuron, None, True),
        t_max=t_max, max_spikes=1, max_events=n + 2,
    )
    fired = np.isfinite(np.asarray(spikes.first))
    return float(_PROBES[np.argmax(fired)]) if fired.any() else 1.0


def init_weights(
    key, n_in: int, n_out: int, neuron: AbstractNeuron, t_max: float,
    mean: float = 1.5, std: float = 1.0, dtype=None,
) -> jax.Array:
    """Draw an ``(n_in, n_out)`` weight matrix for ``neuron`` (see module docstring)."""
    scale = firing_weight(neuron, t_max)
    mu = mean * scale / n_in
    sigma = std * scale / np.sqrt(n_in)
    return mu + sigma * jax.random.normal(key, (n_in, n_out), dtype=dtype)
