"""Adaptive exponential integrate-and-fire neuron."""

import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_finite, check_positive
from .eif import exp_term


class AdEx(AbstractNeuron):
    r"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005), in
    dimensionless units (rest 0, soft threshold 1):

    $$\begin{aligned}
    \tau_m \dot v &= -(v - v_\text{rest}) + \Delta_T e^{(v - v_T)/\Delta_T} - w + i + b
                     + I_\text{ext},\\
    \tau_w \dot w &= a (v - v_\text{rest}) - w, \qquad \tau_s \dot i = -i.
    \end{aligned}$$

    Fires when $v$ crosses ``v_peak``; then $v \leftarrow v_\text{reset}$ and
    $w \leftarrow w + $ ``b_adapt`` (spike-triggered adaptation). An input spike of
    weight $w_\text{in}$ adds $w_\text{in}$ to $i$.

    **Arguments:**

    - `tau_mem`, `tau_syn`, `tau_adapt`: time constants $\tau_m$, $\tau_s$, $\tau_w$
      (ms).
    - `a`: subthreshold adaptation $a$.
    - `b_adapt`: the jump of $w$ at each spike.
    - `v_rest`: resting potential $v_\text{rest}$.
    - `v_thresh`: soft threshold $v_T$ (where the exponential takes over).
    - `delta_t`: slope factor $\Delta_T > 0$.
    - `v_peak`: the level at which the spike is registered.
    - `v_reset`: value of $v$ after a spike.
    - `bias`: constant bias current $b$.
    """

    tau_mem: Param = param(20.0)
    tau_syn: Param = param(5.0)
    tau_adapt: Param = param(100.0)
    a: Param = param(0.1)
    b_adapt: Param = param(0.1)
    v_rest: Param = param(0.0)
    v_thresh: Param = param(1.0)
    delta_t: Param = param(0.2)
    v_peak: Param = param(2.0)
    v_reset: Param = param(0.0)
    bias: Param = param(0.0)

    state_names = ("v", "w", "i")

    def __check_init__(self):
        check_positive(self, tau_mem=self.tau_mem, tau_syn=self.tau_syn,
                       tau_adapt=self.tau_adapt, delta_t=self.delta_t)
        check_finite(self, v_thresh=self.v_thresh, v_peak=self.v_peak,
                     v_reset=self.v_reset, a=self.a, b_adapt=self.b_adapt)

    def init_state(self, n: int) -> State:
        v0 = jnp.broadcast_to(jnp.asarray(self.v_rest, dtype=float), (n,))
        return jnp.stack([v0, jnp.zeros((n,)), jnp.zeros((n,))], axis=-1)

    def dynamics(self, t, y: State, args: Current) -> State:
        v, w, i = y[:, 0], y[:, 1], y[:, 2]
        dv = (-(v - self.v_rest) + exp_term(v, self.v_thresh, self.delta_t)
              - w + i + self.bias + args) / self.tau_mem
        dw = (self.a * (v - self.v_rest) - w) / self.tau_adapt
        di = -i / self.tau_syn
        return jnp.stack([dv, dw, di], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - self.v_peak

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 2].add(weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        v = jnp.where(spiked, self.v_reset, y[:, 0])
        w = jnp.where(spiked, y[:, 1] + self.b_adapt, y[:, 1])
        return y.at[:, 0].set(v).at[:, 1].set(w)
