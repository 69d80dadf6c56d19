"""Leaky integrate-and-fire neuron with a current-based exponential synapse."""

from typing import Literal

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_finite, check_positive


class LIF(AbstractNeuron):
    r"""Leaky integrate-and-fire neuron with an exponential synaptic current.

    $$\tau_m \frac{dv}{dt} = -v + i + b + I_\text{ext}(t), \qquad
      \tau_s \frac{di}{dt} = -i$$

    An input spike of weight $w$ adds $w$ to $i$. The neuron fires when $v$ crosses
    ``threshold`` upwards; then $v \leftarrow v_\text{reset}$
    (``reset_mode="zero"``) or $v \leftarrow v - \vartheta$
    (``reset_mode="subtract"``).

    With one input spike of weight $w$ at $t=0$ and $\tau_m \ne \tau_s$ the membrane is
    $v(t) = w\frac{\tau_s}{\tau_m - \tau_s}(e^{-t/\tau_m} - e^{-t/\tau_s})$.

    **Arguments:**

    - `tau_mem`: membrane time constant $\tau_m$ (ms).
    - `tau_syn`: synaptic time constant $\tau_s$ (ms).
    - `threshold`: firing threshold $\vartheta$.
    - `v_reset`: value of $v$ after a spike (for ``reset_mode="zero"``).
    - `bias`: constant bias current $b$; a scalar or one value per neuron.
    - `reset_mode`: ``"zero"`` or ``"subtract"``.

    The dynamics are linear, so the exact flow map is used by default.
    """

    tau_mem: Param = param(20.0)
    tau_syn: Param = param(5.0)
    threshold: Param = param(1.0)
    v_reset: Param = param(0.0)
    bias: Param = param(0.0)
    reset_mode: Literal["zero", "subtract"] = eqx.field(static=True, default="zero")

    state_names = ("v", "i")
    linear = True
    additive_input = True

    def __check_init__(self):
        check_positive(self, tau_mem=self.tau_mem, tau_syn=self.tau_syn)
        check_finite(self, threshold=self.threshold, v_reset=self.v_reset)
        if self.reset_mode not in ("zero", "subtract"):
            raise ValueError(
                f"LIF: `reset_mode` must be 'zero' or 'subtract', got {self.reset_mode!r}."
            )

    def init_state(self, n: int) -> State:
        return jnp.zeros((n, 2))

    def dynamics(self, t, y: State, args: Current) -> State:
        v, i = y[:, 0], y[:, 1]
        dv = (-v + i + self.bias + args) / self.tau_mem
        di = -i / self.tau_syn
        return jnp.stack([dv, di], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - self.threshold

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 1].add(weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        v = y[:, 0]
        v_after = v - self.threshold if self.reset_mode == "subtract" else self.v_reset
        return y.at[:, 0].set(jnp.where(spiked, v_after, v))
