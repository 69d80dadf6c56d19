"""Izhikevich's simple model of spiking neurons."""

import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_finite, check_positive


class Izhikevich(AbstractNeuron):
    r"""Izhikevich (2003) neuron, in its published units (mV, ms), with an exponential
    synaptic current:

    $$\dot v = 0.04 v^2 + 5 v + 140 - u + i + b + I_\text{ext}, \quad
      \dot u = a (b_u v - u), \quad \tau_s \dot i = -i.$$

    Fires when $v$ crosses ``v_peak`` (30 mV); then $v \leftarrow c$, $u \leftarrow
    u + d$. Defaults are the regular-spiking cell (a=0.02, b=0.2, c=-65, d=8), which
    rests at v = -70 mV, u = -14. Input spikes add $w$ to $i$ (in mV/ms).

    **Arguments:**

    - `a`: rate of the recovery variable $u$ (1/ms).
    - `b`: sensitivity $b_u$ of $u$ to $v$.
    - `c`: value of $v$ after a spike (mV).
    - `d`: jump of $u$ at each spike.
    - `v_peak`: the level at which the spike is registered (mV).
    - `tau_syn`: synaptic time constant $\tau_s$ (ms).
    - `bias`: constant bias current $b$ (mV/ms).
    """

    a: Param = param(0.02)
    b: Param = param(0.2)
    c: Param = param(-65.0)
    d: Param = param(8.0)
    v_peak: Param = param(30.0)
    tau_syn: Param = param(5.0)
    bias: Param = param(0.0)

    state_names = ("v", "u", "i")

    def __check_init__(self):
        check_positive(self, tau_syn=self.tau_syn, a=self.a)
        check_finite(self, b=self.b, c=self.c, d=self.d, v_peak=self.v_peak)

    def init_state(self, n: int) -> State:
        # Resting point of 0.04 v^2 + (5 - b) v + 140 = 0 (the lower, stable root).
        p = 5.0 - jnp.asarray(self.b, dtype=float)
        disc = jnp.maximum(p**2 - 4 * 0.04 * 140.0, 0.0)
        v0 = (-p - jnp.sqrt(disc)) / (2 * 0.04)
        u0 = self.b * v0
        ones = jnp.ones((n,))
        return jnp.stack([v0 * ones, u0 * ones, jnp.zeros((n,))], axis=-1)

    def dynamics(self, t, y: State, args: Current) -> State:
        v, u, i = y[:, 0], y[:, 1], y[:, 2]
        dv = 0.04 * v**2 + 5.0 * v + 140.0 - u + i + self.bias + args
        du = self.a * (self.b * v - u)
        di = -i / self.tau_syn
        return jnp.stack([dv, du, di], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - self.v_peak

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 2].add(weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        v = jnp.where(spiked, self.c, y[:, 0])
        u = jnp.where(spiked, y[:, 1] + self.d, y[:, 1])
        return y.at[:, 0].set(v).at[:, 1].set(u)
