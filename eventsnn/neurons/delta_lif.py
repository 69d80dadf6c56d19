"""Lapicque's leaky integrate-and-fire neuron: input spikes jump the membrane."""

from typing import Literal

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_finite, check_positive


class DeltaLIF(AbstractNeuron):
    r"""Leaky integrate-and-fire neuron with delta synapses (Lapicque).

    $$\tau_m \frac{dv}{dt} = -v + b + I_\text{ext}(t)$$

    An input spike of weight $w$ adds $w$ to $v$ at once, so a strong input makes the
    neuron fire *at the input time*. Reset as in [`eventsnn.LIF`][].

    **Arguments:** `tau_mem`, `threshold`, `v_reset`, `bias`, `reset_mode` as for LIF.
    """

    tau_mem: Param = param(20.0)
    threshold: Param = param(1.0)
    v_reset: Param = param(0.0)
    bias: Param = param(0.0)
    reset_mode: Literal["zero", "subtract"] = eqx.field(static=True, default="zero")

    state_names = ("v",)
    linear = True
    additive_input = True

    def __check_init__(self):
        check_positive(self, tau_mem=self.tau_mem)
        check_finite(self, threshold=self.threshold, v_reset=self.v_reset)
        if self.reset_mode not in ("zero", "subtract"):
            raise ValueError(
                "DeltaLIF: `reset_mode` must be 'zero' or 'subtract', "
                f"got {self.reset_mode!r}."
            )

    def init_state(self, n: int) -> State:
        return jnp.zeros((n, 1))

    def dynamics(self, t, y: State, args: Current) -> State:
        return ((-y[:, 0] + self.bias + args) / self.tau_mem)[:, None]

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - self.threshold

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 0].add(weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        v = y[:, 0]
        v_after = v - self.threshold if self.reset_mode == "subtract" else self.v_reset
        return y.at[:, 0].set(jnp.where(spiked, v_after, v))
