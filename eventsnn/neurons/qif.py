"""Quadratic integrate-and-fire neuron in its theta (Ermentrout–Kopell) form."""

import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_positive


class QIF(AbstractNeuron):
    r"""Quadratic integrate-and-fire neuron in the theta representation:

    $$\tau_m \frac{d\theta}{dt} = (1 - \cos\theta) + (1 + \cos\theta)\,
      (i + b + I_\text{ext}), \qquad \tau_s \frac{di}{dt} = -i.$$

    This is $\tau_m \dot v = v^2 + I$ under $v = \tan(\theta/2)$, so the spike at
    $v = \infty$ is the finite phase $\theta = \pi$: the neuron fires when $\theta$
    crosses $\pi$ and is reset to $\theta - 2\pi$ (the same point on the circle).
    An input spike of weight $w$ adds $w$ to $i$.

    With $b < 0$ the neuron rests at $\theta_0 = -\arccos\frac{1+b}{1-b}$ (excitable);
    with $b > 0$ it fires periodically. Default $b = -0.1$.

    **Arguments:**

    - `tau_mem`: time constant $\tau_m$ (ms).
    - `tau_syn`: synaptic time constant $\tau_s$ (ms).
    - `bias`: constant bias current $b$.
    """

    tau_mem: Param = param(20.0)
    tau_syn: Param = param(5.0)
    bias: Param = param(-0.1)

    state_names = ("theta", "i")

    def __check_init__(self):
        check_positive(self, tau_mem=self.tau_mem, tau_syn=self.tau_syn)

    def init_state(self, n: int) -> State:
        b = jnp.minimum(jnp.asarray(self.bias, dtype=float), 0.0)
        ratio = jnp.clip((1 + b) / (1 - b), -1.0, 1.0 - 1e-12)
        theta0 = -jnp.arccos(ratio)
        return jnp.stack(
            [jnp.broadcast_to(theta0, (n,)), jnp.zeros((n,))], axis=-1
        )

    def dynamics(self, t, y: State, args: Current) -> State:
        theta, i = y[:, 0], y[:, 1]
        drive = i + self.bias + args
        c = jnp.cos(theta)
        dtheta = ((1 - c) + (1 + c) * drive) / self.tau_mem
        di = -i / self.tau_syn
        return jnp.stack([dtheta, di], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        return y[:, 0] - jnp.pi

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        return y.at[:, 1].add(weighted_input)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        theta = y[:, 0]
        return y.at[:, 0].set(jnp.where(spiked, theta - 2 * jnp.pi, theta))
