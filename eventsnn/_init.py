"""Weight initialisation that makes a fresh network fire, for any neuron model.

How far one input spike of unit weight moves a resting neuron towards threshold
(``gain``) depends on the model and its time constants. It is measured once per model
by simulating a single neuron that receives one small input spike, then weights are
drawn so that the summed input of a layer brings a typical neuron past threshold:

    W ~ Normal(mean · d / (gain · n_in),  (std · d / (gain · √n_in))²)

with ``d`` the distance from rest to threshold (``-spike_condition`` at rest). This is
the scaling used for first-spike networks (Göltz et al. 2021; Wunderlich & Pehle 2021),
made model-agnostic by measuring ``gain`` instead of deriving it.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ._current import as_current
from ._layer import run_layer
from ._neuron import AbstractNeuron
from ._solve import segment_solver_for

_PROBE = 1e-3  # small enough to stay in the linear regime of every shipped model


def response_gain(neuron: AbstractNeuron, t_max: float) -> tuple[float, float]:
    """``(gain, distance)`` of one neuron: threshold distance at rest and the largest
    rise of the spike condition per unit input weight within ``t_max``."""
    dtype = jnp.zeros(()).dtype
    ts = jnp.linspace(0.0, t_max, 400, dtype=dtype)
    current = as_current(None, 1, dtype)
    segments = segment_solver_for(neuron, None, True)
    _, traj = run_layer(
        neuron, jnp.full((1, 1), _PROBE, dtype), jnp.zeros((1, 1), dtype), current,
        segments, t_max=t_max, max_spikes=1, max_events=4, ts=ts,
    )
    g = jax.vmap(lambda t, y: neuron.spike_condition(t, y, current(t)), (0, 1))(
        ts, traj
    )[:, 0]
    g = np.asarray(g)
    distance = float(-neuron.spike_condition(0.0, neuron.init_state(1), current(0.0))[0])
    gain = float(np.nanmax(g) - g[0]) / _PROBE
    if not (np.isfinite(gain) and gain > 0 and np.isfinite(distance) and distance > 0):
        return 1.0, 1.0
    return gain, distance


def init_weights(
    key, n_in: int, n_out: int, neuron: AbstractNeuron, t_max: float,
    mean: float = 1.5, std: float = 1.0, dtype=None,
) -> jax.Array:
    """Draw an ``(n_in, n_out)`` weight matrix for ``neuron`` (see module docstring)."""
    gain, distance = response_gain(neuron, t_max)
    scale = distance / gain
    mu = mean * scale / n_in
    sigma = std * scale / np.sqrt(n_in)
    return mu + sigma * jax.random.normal(key, (n_in, n_out), dtype=dtype)
