"""The neuron-model contract.

A neuron model is an :class:`equinox.Module` that describes a *population* of identical
neurons. Everything is vectorised over the population: the state is a
``Float[Array, "n state"]`` array with one row per neuron and one column per entry of
``state_names``. The model knows nothing about networks, weights or losses.
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Bool, Current, Float, State


class AbstractNeuron(eqx.Module):
    """Base class of every neuron model.

    A subclass must define the class attribute ``state_names`` and implement the five
    methods below. Forgetting one fails when the model is *constructed*, with Python's
    message naming the missing method.

    Conventions:

    - Column 0 of the state is the membrane variable (used by plots and by
      [`eventsnn.Refractory`][], which clamps it).
    - ``args`` is the external current injected into each neuron at time ``t``,
      a ``Float[Array, "n"]`` (zeros when the population is driven by spikes only).
    - A spike is an *upward zero crossing* of ``spike_condition``.

    Class attributes:

    - ``state_names``: names of the state columns, e.g. ``("v", "i")``.
    - ``linear``: set to ``True`` only if ``dynamics`` is affine in ``y``, does not
      depend on ``t`` (other than through a constant ``args``) and ``spike_condition``
      is affine in ``y``. Such models can use the exact flow map
      ([`eventsnn.ExactLinear`][]) instead of a numerical solver. A model that claims to
      be linear and is not gets wrong results, so leave it ``False`` when unsure.
    - ``additive_input``: set to ``True`` only if ``input_spikes(y, w)`` is
      ``y + J(w)`` with a jump ``J`` that does not depend on ``y`` (current- or
      voltage-based synapses, not conductance jumps). A linear model with additive
      inputs obeys superposition, which first-spike mode uses to differentiate
      without a sequential loop; ``False`` (the safe default) is always correct.
    """

    state_names: eqx.AbstractClassVar[tuple[str, ...]]
    linear: ClassVar[bool] = False
    additive_input: ClassVar[bool] = False

    @abc.abstractmethod
    def init_state(self, n: int) -> State:
        """The resting state of a population.

        **Arguments:**

        - `n`: number of neurons.

        **Returns:** ``Float[Array, "n state"]``, one row per neuron, one column per
        entry of ``state_names``.
        """

    @abc.abstractmethod
    def dynamics(self, t: Float[Array, ""], y: State, args: Current) -> State:
        """The vector field between events.

        **Arguments:**

        - `t`: the time (a scalar).
        - `y`: the state, ``Float[Array, "n state"]``.
        - `args`: the external current at ``t``, ``Float[Array, "n"]``.

        **Returns:** ``dy/dt``, the same shape as ``y``.
        """

    @abc.abstractmethod
    def spike_condition(
        self, t: Float[Array, ""], y: State, args: Current
    ) -> Float[Array, " n"]:
        """The spike condition: a neuron spikes when its value crosses zero upwards.

        **Arguments:**

        - `t`: the time (a scalar).
        - `y`: the state, ``Float[Array, "n state"]``.
        - `args`: the external current at ``t``, ``Float[Array, "n"]``.

        **Returns:** ``Float[Array, "n"]``, one value per neuron (negative below
        threshold).
        """

    @abc.abstractmethod
    def input_spikes(self, y: State, weighted_input: Float[Array, " n"]) -> State:
        """The state just after input spikes arrive.

        **Arguments:**

        - `y`: the state just before, ``Float[Array, "n state"]``.
        - `weighted_input`: ``weighted_input[j]`` is the summed weight of all
          presynaptic spikes that arrive at neuron ``j`` at this instant (zero for
          neurons that receive none).

        **Returns:** the new state, the same shape as ``y``.
        """

    @abc.abstractmethod
    def reset(self, y: State, spiked: Bool[Array, " n"]) -> State:
        """The state just after some neurons fire.

        **Arguments:**

        - `y`: the state just before, ``Float[Array, "n state"]``.
        - `spiked`: ``Bool[Array, "n"]``, ``True`` for the neurons that fire now.

        **Returns:** the new state, the same shape as ``y``; rows of neurons that did
        not fire must be unchanged.
        """

    def discontinuities(self, t, y: State) -> Float[Array, " n"] | None:
        """Optional: for each neuron, the next time after ``t`` at which its
        ``dynamics`` change abruptly, if the state already determines it (e.g. the end
        of a refractory period is the spike time plus ``t_ref``), else ``+inf``.

        Adaptive solvers lose accuracy when they step across such a kink, so the
        engine ends the segment exactly at the earliest one and restarts (nothing else
        happens at that instant). Computed from ``t`` and ``y``, it is differentiable.

        **Arguments:**

        - `t`: the current time (a scalar).
        - `y`: the state, ``Float[Array, "n state"]``.

        **Returns:** ``Float[Array, "n"]`` times (``+inf`` where none is ahead), or
        ``None`` (the default), meaning the dynamics are smooth between events.
        """
        return None

    def first_spike_model(self) -> "AbstractNeuron":
        """Optional: a model whose first spike is the same as this one's for every
        input, if that one is simpler to integrate. First-spike mode
        (``max_spikes=1``) switches a neuron off after its first spike, so what a
        model does only after a spike never matters there.

        Default: ``self``. [`eventsnn.Refractory`][] returns its wrapped model (its
        refractory kink can only follow a spike), so that first-spike mode can
        integrate a layer without stopping at kinks.

        **Returns:** a neuron model (its state may have other columns than this
        one's; only the spike times are compared).
        """
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def state_size(self) -> int:
        """Number of state variables, ``len(state_names)``."""
        return len(self.state_names)

    def check_state(self, n: int = 3) -> None:
        """Check that ``init_state`` agrees with ``state_names``, without running it
        (``jax.eval_shape``).

        **Arguments:**

        - `n`: the population size to try.

        **Raises:** ``ValueError`` if ``init_state(n)`` does not have shape
        ``(n, len(state_names))``.
        """
        y = jax.eval_shape(lambda: self.init_state(n))
        expected = (n, len(self.state_names))
        if y.shape != expected:
            raise ValueError(
                f"{type(self).__name__}.init_state({n}) returned shape {y.shape}, but "
                f"state_names={self.state_names!r} asks for shape {expected} "
                "(one row per neuron, one column per state variable)."
            )


def declares_kinks(neuron: AbstractNeuron) -> bool:
    """Whether ``neuron`` declares kinks at all (`discontinuities` returns an array,
    not ``None``): decided from the model's code, not its values."""
    y = jnp.zeros((1, neuron.state_size))
    return neuron.discontinuities(jnp.zeros(()), y) is not None


def _as_float_array(value):
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.inexact):
        array = array.astype(float)
    return array


def param(default):
    """A trainable neuron parameter: stored as a JAX array (so ``jit`` does not
    recompile when its value changes, and ``eqx.filter_grad`` differentiates it),
    scalar or one value per neuron."""
    return eqx.field(default=default, converter=_as_float_array)


def check_positive(owner: object, **values) -> None:
    """Raise ``ValueError`` if a concrete parameter is not strictly positive and finite.

    Traced values (inside ``jit``/``grad``) cannot be inspected and are skipped.
    """
    for name, value in values.items():
        arr = _concrete(value)
        if arr is not None and not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
            raise ValueError(
                f"{type(owner).__name__}: `{name}` must be positive and finite, "
                f"got {value!r}."
            )


def check_finite(owner: object, **values) -> None:
    """Raise ``ValueError`` if a concrete parameter is NaN or infinite."""
    for name, value in values.items():
        arr = _concrete(value)
        if arr is not None and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{type(owner).__name__}: `{name}` must be finite, got {value!r}."
            )


def _concrete(value) -> np.ndarray | None:
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value, dtype=float)
    except Exception:  # not numeric (e.g. an abstract placeholder)
        return None


def column(y: State, k: int) -> Float[Array, " n"]:
    """Column ``k`` of a state array (a readable alias for ``y[:, k]``)."""
    return y[:, k]


def where_spiked(spiked: Bool[Array, " n"], new: Array, old: Array) -> Array:
    """``new`` for neurons that spiked, ``old`` for the others."""
    return jnp.where(spiked, new, old)
