"""External currents injected into a population: constant, piecewise constant, or any
function of time. The engine evaluates one at time ``t`` and passes it to the model as
``args``."""

import abc
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

from ._custom_types import Array, ArrayLike, Float


class AbstractCurrent(eqx.Module):
    """A current ``I(t)`` with one value per neuron."""

    @abc.abstractmethod
    def __call__(self, t: Float[Array, ""]) -> Float[Array, " n"]: ...

    @property
    def is_constant(self) -> bool:
        return False

    @property
    def jump_ts(self) -> Float[Array, " k"] | None:
        """Times where the current is discontinuous (the solver steps to them)."""
        return None


class ConstantCurrent(AbstractCurrent):
    """The same current at all times."""

    value: Float[Array, " n"]

    def __call__(self, t):
        return self.value

    @property
    def is_constant(self) -> bool:
        return True


class StepCurrent(AbstractCurrent):
    """A piecewise-constant current: ``values[k]`` on ``[times[k-1], times[k])``.

    ``values`` has one more row than ``times`` (the value before the first step).
    Build it with [`eventsnn.step_current`][].
    """

    times: Float[Array, " k"]
    values: Float[Array, "k+1 n"]

    def __call__(self, t):
        index = jnp.searchsorted(self.times, t, side="right")
        return self.values[index]

    @property
    def jump_ts(self):
        return self.times


class FunctionCurrent(AbstractCurrent):
    """Any function of time, ``fn(t) -> Float[Array, "n"]`` (or a scalar)."""

    fn: Callable
    n: int = eqx.field(static=True)

    def __call__(self, t):
        return jnp.broadcast_to(jnp.asarray(self.fn(t), dtype=float), (self.n,))


def step_current(
    times: Float[ArrayLike, " k"], values: Float[ArrayLike, " k+1"] | Float[ArrayLike, "k+1 n"]
) -> tuple:
    """Describe a piecewise-constant current for [`eventsnn.simulate`][].

    **Arguments:**

    - `times`: the ``k`` increasing times at which the current changes.
    - `values`: ``k + 1`` levels (the first applies before ``times[0]``), each a scalar
      or one value per neuron.

    **Returns:** a description that `simulate(..., current=...)` accepts.

    ```python
    # 0 before t=10, 1.5 on [10, 60), 0 afterwards
    es.step_current([10.0, 60.0], [0.0, 1.5, 0.0])
    ```
    """
    return ("step", times, values)


def as_current(current, n: int, dtype) -> AbstractCurrent:
    """Normalise the ``current=`` argument accepted by the public API."""
    if current is None:
        return ConstantCurrent(jnp.zeros((n,), dtype))
    if isinstance(current, AbstractCurrent):
        return current
    if isinstance(current, tuple) and len(current) == 3 and current[0] == "step":
        times = jnp.asarray(current[1], dtype)
        values = jnp.asarray(current[2], dtype)
        if times.ndim != 1 or values.shape[0] != times.shape[0] + 1:
            raise ValueError(
                "step_current: `values` must have one more entry than `times` "
                f"(got times {times.shape}, values {values.shape})."
            )
        values = jnp.broadcast_to(
            values.reshape(values.shape[0], -1), (values.shape[0], n)
        )
        return StepCurrent(times, values)
    if callable(current):
        return FunctionCurrent(current, n)
    value = jnp.asarray(current, dtype)
    if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != n):
        raise ValueError(
            f"`current` must be a scalar, one value per neuron (shape ({n},)), a "
            f"function of time or es.step_current(...); got shape {value.shape}."
        )
    return ConstantCurrent(jnp.broadcast_to(value, (n,)))
