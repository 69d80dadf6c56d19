"""Leaky integrate-and-fire neuron with an alpha-shaped synaptic current (SRM0)."""

import math

import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_finite, check_positive


class AlphaLIF(AbstractNeuron):
    r"""LIF neuron whose synaptic current has the alpha shape $w\,\frac{t}{\tau_s}
    e^{1 - t/\tau_s}$ (the SRM0 kernel), written as two cascaded filters:

    $$\tau_m \frac{dv}{dt} = -v + i + b + I_\text{ext}, \quad
      \tau_s \frac{di}{dt} = -i + x, \quad \tau_s \frac{dx}{dt} = -x.$$

    An input spike of weight $w$ adds $e\,w$ to $x$, so the current it causes peaks at
    $w$ after $\tau_s$. Reset $v \leftarrow v_\text{reset}$.

    The dynamics are linear, but the membrane can rise and fall twice between two
    events, so spikes are located by the adaptive diffrax solver rather than the
    exact-flow fast path (which would need at most one extremum per segment).

    **Arguments:**

    - `tau_mem`: membrane time constant $\tau_m$ (ms).
    - `tau_syn`: synaptic time constant $\tau_s$ (ms), also the time of the
      current's peak.
    - `threshold`: firing threshold.
    - `v_reset`: value of $v$ after a spike.
    - `bias`: constant bias current $b$.
    """

    tau_mem: Param = param(20.0)
    tau_syn: Param = param(5.0)
    threshold: Param = param(1.0)
    v_reset: Param = param(0.0)
    bias: Param = param(0.0)

    state_names = ("v", "i", "x")
    linear = True
    additive_input = True

    def __check_init__(self):
        check_positive(self, tau_mem=self.tau_mem, tau_syn=self.tau_syn)
        check_finite(self, threshold=self.threshold, v_reset=self.v_reset)

    def init_state(self, n: int) -> State:
        return jnp.zeros((n, 3))

    def dynamics(self, t, y: State, args: Current) -> State:
        v, i, x = y[:, 0], y[:, 1], y[:, 2]
        dv = (-v + i + self.bias + args) / self.tau_mem
        di = (-i + x) / self.tau_syn
        dx = -x / self.tau_syn
        return jnp.stack([dv, di, dx], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - self.threshold

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 2].add(math.e * weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        return y.at[:, 0].set(jnp.where(spiked, self.v_reset, y[:, 0]))
