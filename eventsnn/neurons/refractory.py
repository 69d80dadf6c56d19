"""A wrapper that adds an absolute refractory period to any neuron model."""

import jax.numpy as jnp

from .._custom_types import Array, Bool, Current, Float, Param, State
from .._neuron import AbstractNeuron, param, check_positive


class Refractory(AbstractNeuron):
    r"""Wraps a model so that, for ``t_ref`` after each spike, its membrane (state
    column 0) is clamped at its post-reset value and the neuron cannot fire. The other
    state variables (synaptic currents, adaptation) keep evolving, and input spikes
    still reach them.

    The state gains a last column ``refractory``: the time left in the refractory
    period, counting down at rate 1 (negative once the period is over). The release
    time is declared through `discontinuities`, so solvers stop exactly where the
    membrane is released instead of stepping across the kink.

    **Arguments:**

    - `model`: the neuron model to wrap.
    - `t_ref`: the refractory period (ms).

    ```python
    neuron = es.Refractory(es.LIF(), t_ref=2.0)
    ```
    """

    model: AbstractNeuron
    t_ref: Param = param(2.0)

    def __check_init__(self):
        check_positive(self, t_ref=self.t_ref)

    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        """The wrapped model's state names plus ``"refractory"``."""
        return (*self.model.state_names, "refractory")

    def init_state(self, n: int) -> State:
        y = self.model.init_state(n)
        # As if the last spike were long ago: not refractory, and no release ahead.
        left = jnp.full((n, 1), -1.0, y.dtype) * self.t_ref
        return jnp.concatenate([y, left], axis=-1)

    def dynamics(self, t, y: State, args: Current) -> State:
        inner, left = y[:, :-1], y[:, -1]
        refractory = _refractory(t, y)
        d_inner = self.model.dynamics(t, inner, args)
        d_inner = d_inner.at[:, 0].set(jnp.where(refractory, 0.0, d_inner[:, 0]))
        d_left = -jnp.ones_like(left)
        return jnp.concatenate([d_inner, d_left[:, None]], axis=-1)

    def spike_condition(self, t, y: State, args: Current) -> Float[Array, " n"]:
        inner, left = y[:, :-1], y[:, -1]
        g = self.model.spike_condition(t, inner, args)
        # While refractory the condition is held negative (it cannot cross zero).
        return jnp.where(left > 0, jnp.minimum(g, -left), g)

    def discontinuities(self, t, y: State) -> Float[Array, " n"]:
        return jnp.where(_refractory(t, y), t + y[:, -1], jnp.inf)

    def first_spike_model(self) -> AbstractNeuron:
        """Before its first spike a neuron is never refractory, so its first spike is
        the wrapped model's.

        **Returns:** the wrapped model's `first_spike_model()`.
        """
        return self.model.first_spike_model()

    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        inner, left = y[:, :-1], y[:, -1]
        new = self.model.input_spikes(inner, weighted_input)
        new = new.at[:, 0].set(jnp.where(left > 0, inner[:, 0], new[:, 0]))
        return jnp.concatenate([new, left[:, None]], axis=-1)

    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        inner, left = y[:, :-1], y[:, -1]
        new = self.model.reset(inner, spiked)
        left = jnp.where(spiked, self.t_ref, left)
        return jnp.concatenate([new, left[:, None]], axis=-1)


def _refractory(t, y: State):
    """Neurons still in their refractory period. One whose period ends within a few
    rounding errors of ``t`` (64·eps·max(1, |t|)) has ended: the countdown is integrated
    numerically, and restarting right at the release time must not leave it clamped
    for a rounding error's worth of time (nor schedule a second, spurious release).
    The allowance is kept at rounding size: a looser one releases the membrane early
    and every later spike drifts earlier by the same amount."""
    tol = 64 * jnp.finfo(y.dtype).eps * jnp.maximum(jnp.abs(t), 1.0)
    return y[:, -1] > tol
