"""Simulation results: padded spike-time arrays (``+inf`` = no spike) and outcomes."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Bool, Float, Int


class RESULTS(eqx.Enumeration):
    """Outcome of simulating one layer for one sample."""

    successful = ""
    max_events_reached = (
        "The event loop stopped at `max_events` before reaching `t_max`: spikes after "
        "that point are missing. Increase `max_events`."
    )
    max_spikes_reached = (
        "A neuron fired more often than `max_spikes`; its later spike times were not "
        "kept (the simulation itself continued correctly). Increase `max_spikes`."
    )
    solver_failed = (
        "The ODE solver failed between two events (step limit reached or the state "
        "became non-finite). Loosen the tolerances, raise `max_steps` or check the model."
    )
    invalid_input = (
        "Some input spike times were NaN or negative (found inside `jit`, where they "
        "cannot raise at call time; outside it they raise ValueError). They were "
        "taken as 'no spike'. Mark 'no spike' with +inf; spike times must be >= 0."
    )


class LayerSpikes(eqx.Module):
    """The spikes of one population.

    **Fields:**

    - `times`: ``Float[Array, "n max_spikes"]`` spike times per neuron in increasing
      order, ``+inf`` where there is no spike.
    - `counts`: ``Int[Array, "n"]`` number of spikes per neuron (may exceed
      ``max_spikes`` if that budget overflowed; see `result`).
    - `num_events`: number of event-loop iterations used.
    - `result`: a [`eventsnn.RESULTS`][] outcome.
    """

    times: Float[Array, "n max_spikes"]
    counts: Int[Array, " n"]
    num_events: Int[Array, ""]
    result: RESULTS

    @property
    def first(self) -> Float[Array, " n"]:
        """First spike time of each neuron (``+inf`` if it never fires)."""
        return self.times[..., 0]

    @property
    def ok(self) -> Bool[Array, ""]:
        """``True`` where the outcome is ``successful``."""
        return self.result == RESULTS.successful


class Spikes(eqx.Module):
    """The result of running a network: the output layer's spikes plus every layer's.

    **Fields:**

    - `layers`: one [`eventsnn.LayerSpikes`][] per layer, input side first (for
      rasters).

    The properties ``times``, ``first`` and ``counts`` are those of the output layer;
    ``overflow`` has one flag per layer, ``True`` where that layer's outcome is not
    ``successful``. Under ``jax.vmap`` every field gains a leading batch axis.
    """

    layers: tuple[LayerSpikes, ...]

    @property
    def times(self) -> Float[Array, "n_out max_spikes"]:
        """The output layer's spike times (``+inf`` padding)."""
        return self.layers[-1].times

    @property
    def first(self) -> Float[Array, " n_out"]:
        """The output layer's first spike times (``+inf`` if a neuron never fires)."""
        return self.layers[-1].first

    @property
    def counts(self) -> Int[Array, " n_out"]:
        """The output layer's spike counts."""
        return self.layers[-1].counts

    @property
    def overflow(self) -> Bool[Array, "... n_layers"]:
        """One flag per layer, ``True`` where its outcome is not ``successful``."""
        return jnp.stack([~layer.ok for layer in self.layers], axis=-1)


def flag_invalid(layer: LayerSpikes, invalid) -> LayerSpikes:
    """``layer`` with its result set to ``invalid_input`` where ``invalid`` (the flag
    of traced input times from `_validate.spike_times`; ``None``: nothing to flag)."""
    if invalid is None:
        return layer
    result = RESULTS.where(invalid, RESULTS.invalid_input, layer.result)
    return eqx.tree_at(lambda s: s.result, layer, result)


def check(result: "Spikes | LayerSpikes") -> "Spikes | LayerSpikes":
    """Raise ``RuntimeError`` if any layer of any sample did not finish cleanly.

    Works on batched results. Must be called outside ``jit``.

    **Arguments:**

    - `result`: a [`eventsnn.Spikes`][] or [`eventsnn.LayerSpikes`][], batched or not.

    **Returns:** ``result`` unchanged, so that it can wrap a call:
    ``out = es.check(jax.vmap(net)(x))``.

    **Raises:** ``RuntimeError`` whose message says which layer, how many samples and
    which knob to turn.
    """
    layers = result.layers if isinstance(result, Spikes) else (result,)
    problems = []
    for index, layer in enumerate(layers):
        codes = np.asarray(layer.result._value).reshape(-1)
        for name in ("invalid_input", "max_events_reached", "max_spikes_reached",
                     "solver_failed"):
            bad = int(np.sum(codes == getattr(RESULTS, name)._value))
            if bad:
                message = RESULTS[getattr(RESULTS, name)]
                problems.append(
                    f"layer {index}: {name} in {bad} of {codes.size} sample(s). {message}"
                )
    if problems:
        raise RuntimeError("Simulation did not finish cleanly:\n  " + "\n  ".join(problems))
    return result
