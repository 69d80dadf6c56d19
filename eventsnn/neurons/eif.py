"""Exponential integrate-and-fire neuron."""

import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_finite, check_positive

# Above v_T + _EXP_CAP * delta_T the exponential is frozen: far beyond any sensible
# v_peak, it only keeps a solver's trial step from overflowing to inf.
_EXP_CAP = 20.0


def exp_term(v, v_thresh, delta_t):
    r"""The exponential term of the EIF and AdEx models.

    **Arguments:**

    - `v`: membrane potentials.
    - `v_thresh`: soft threshold $v_T$.
    - `delta_t`: slope factor $\Delta_T$.

    **Returns:** ``delta_t * exp((v - v_thresh) / delta_t)``, with the exponent capped
    at 20 against overflow (far beyond any sensible ``v_peak``).
    """
    return delta_t * jnp.exp(jnp.minimum((v - v_thresh) / delta_t, _EXP_CAP))


class EIF(AbstractNeuron):
    r"""Exponential integrate-and-fire neuron (Fourcaud-Trocmé et al. 2003), in
    dimensionless units (rest 0, soft threshold 1):

    $$\tau_m \frac{dv}{dt} = -(v - v_\text{rest})
      + \Delta_T e^{(v - v_T)/\Delta_T} + i + b + I_\text{ext}, \qquad
      \tau_s \frac{di}{dt} = -i.$$

    The upstroke diverges; the spike is registered when $v$ crosses ``v_peak`` and
    $v \leftarrow v_\text{reset}$. Input spikes add $w$ to $i$.

    **Arguments:**

    - `tau_mem`, `tau_syn`: time constants $\tau_m$, $\tau_s$ (ms).
    - `v_rest`: resting potential $v_\text{rest}$.
    - `v_thresh`: soft threshold $v_T$ (where the exponential takes over).
    - `delta_t`: slope factor $\Delta_T > 0$.
    - `v_peak`: the level at which the spike is registered.
    - `v_reset`: value of $v$ after a spike.
    - `bias`: constant bias current $b$.
    """

    tau_mem: Param = param(20.0)
    tau_syn: Param = param(5.0)
    v_rest: Param = param(0.0)
    v_thresh: Param = param(1.0)
    delta_t: Param = param(0.2)
    v_peak: Param = param(2.0)
    v_reset: Param = param(0.0)
    bias: Param = param(0.0)

    state_names = ("v", "i")

    def __check_init__(self):
        check_positive(self, tau_mem=self.tau_mem, tau_syn=self.tau_syn,
                       delta_t=self.delta_t)
        check_finite(self, v_thresh=self.v_thresh, v_peak=self.v_peak,
                     v_reset=self.v_reset, v_rest=self.v_rest)

    def init_state(self, n: int) -> State:
        v0 = jnp.broadcast_to(jnp.asarray(self.v_rest, dtype=float), (n,))
        return jnp.stack([v0, jnp.zeros((n,))], axis=-1)

    def dynamics(self, t, y: State, args: Current) -> State:
        v, i = y[:, 0], y[:, 1]
        dv = (-(v - self.v_rest) + exp_term(v, self.v_thresh, self.delta_t)
              + i + self.bias + args) / self.tau_mem
        di = -i / self.tau_syn
        return jnp.stack([dv, di], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - self.v_peak

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 1].add(weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        return y.at[:, 0].set(jnp.where(spiked, self.v_reset, y[:, 0]))
