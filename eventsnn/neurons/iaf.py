"""Integrate-and-fire neuron without leak (perfect integrator)."""

import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_finite, check_positive


class IAF(AbstractNeuron):
    r"""Non-leaky integrate-and-fire neuron with an exponential synaptic current and an
    optional constant leak:

    $$\tau_m \frac{dv}{dt} = i + b + I_\text{ext}(t) - \ell, \qquad
      \tau_s \frac{di}{dt} = -i.$$

    With a constant drive $I$ and $v_\text{reset}=0$ it fires at the rate
    $\max(0, I - \ell) / (\tau_m \vartheta)$: a rectified linear transfer function.

    **Arguments:** `tau_mem` (integration time scale), `tau_syn`, `threshold`,
    `v_reset`, `bias` ($b$), `leak` ($\ell \ge 0$, a constant current drained).
    """

    tau_mem: Param = param(20.0)
    tau_syn: Param = param(5.0)
    threshold: Param = param(1.0)
    v_reset: Param = param(0.0)
    bias: Param = param(0.0)
    leak: Param = param(0.0)

    state_names = ("v", "i")
    linear = True
    additive_input = True

    def __check_init__(self):
        check_positive(self, tau_mem=self.tau_mem, tau_syn=self.tau_syn)
        check_finite(self, threshold=self.threshold, v_reset=self.v_reset,
                     leak=self.leak)

    def init_state(self, n: int) -> State:
        return jnp.zeros((n, 2))

    def dynamics(self, t, y: State, args: Current) -> State:
        i = y[:, 1]
        dv = (i + self.bias + args - self.leak) / self.tau_mem
        di = -i / self.tau_syn
        return jnp.stack([dv, di], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - self.threshold

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 1].add(weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        return y.at[:, 0].set(jnp.where(spiked, self.v_reset, y[:, 0]))
