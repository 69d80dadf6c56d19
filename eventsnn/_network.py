"""Feedforward networks of event-driven layers."""

from collections.abc import Sequence
from typing import Literal

import diffrax
import equinox as eqx
import jax
import numpy as np

from . import _validate
from ._current import as_current
from ._custom_types import Array, Float, InputTimes
from ._init import init_weights
from ._adjoint import layer_spikes
from ._layer import default_max_events, run_layer
from ._readout import max_membrane
from ._neuron import AbstractNeuron
from ._solve import AbstractSegmentSolver, is_loop_free, segment_solver_for
from ._spikes import RESULTS, Spikes, check, flag_invalid

GRADIENT_MODES = ("eventprop", "autodiff")


class FeedForward(eqx.Module):
    """A feedforward spiking network simulated event by event in continuous time.

    Layer ``l`` receives the spike times of layer ``l - 1`` (layer 0 receives the
    input); each layer runs its own exact event loop, so layers are simulated one after
    another.

    **Arguments:**

    - `in_size`: number of input channels.
    - `layers`: sizes of the layers, e.g. ``[120, 3]``.
    - `neuron`: a neuron model for every layer, or a sequence with one per layer.
    - `key`: a ``jax.random.key`` for the weight initialisation. The draw depends
      on the default float dtype: the same key gives other weights with float64
      enabled than without (to compare the two precisions on one network, build it
      once and cast it).
    - `t_max`: end of the simulation window (ms).
    - `max_events`: static bound on event-loop iterations per layer (an int for all
      layers or one per layer). Default: enough for every input spike plus
      ``max_spikes`` spikes per neuron. Exceeding it is reported, never silent.
      Linear layers in first-spike mode need no event loop: for them it is the
      number of input spikes taken (the earliest), which skips the padding of a
      sparse code (MNIST-5k's 784 channels carry at most 287 spikes: ``[320, None]``
      made its 784-200-10 gradient step 2.4x faster, measured); a sample whose
      dropped inputs could have changed a spike is reported as overflowing
      (`state_at_t`, which runs the event loop, adds the iterations it needs).
      ``None`` in the list: the default for that layer.
    - `max_spikes`: spike times kept per neuron, an int for all layers or one per
      layer (e.g. ``[8, 1]``: hidden neurons fire up to 8 times, the output layer
      in first-spike mode, which is all a first-spike loss reads). ``1`` (default)
      is first-spike mode:
      a neuron that has fired is done, which is what spike-time losses need and the
      fastest mode (linear layers on the exact flow map then skip the event loop
      altogether, see `eventsnn.ExactSegments`; non-linear layers with EventProp
      integrate once per input interval, see `eventsnn.DiffraxSegments`). A neuron
      that has fired is switched off: its state stays at the post-reset value
      (`state_at_t` shows it flat), so models whose membrane runs away without a
      reset (EIF, QIF) cannot overflow after their one spike.
    - `solver`: ``None`` (automatic: exact flow map for linear models with ≤ 2 state
      variables, else ``diffrax.Tsit5()`` at tight tolerances), ``es.ExactLinear()``,
      any diffrax solver, or a configured segment solver
      (``es.DiffraxSegments(diffrax.Dopri8(), rtol=..., atol=...)``).
    - `gradient`: ``"eventprop"`` or ``"autodiff"``.
    - `init_mean`, `init_std`: scale of the weight initialisation (see
      ``eventsnn._init``); defaults make a fresh network fire on typical inputs.

    **Fields:** `weights` (list of ``(n_in, n_out)`` arrays, row = presynaptic) and
    `neurons` (one model per layer) are trainable pytrees.
    """

    weights: list[Float[Array, "n_in n_out"]]
    neurons: tuple[AbstractNeuron, ...]
    in_size: int = eqx.field(static=True)
    sizes: tuple[int, ...] = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    max_events: tuple[int | None, ...] | None = eqx.field(static=True)
    max_spikes: tuple[int, ...] = eqx.field(static=True)
    segments: tuple[AbstractSegmentSolver, ...]
    gradient: Literal["eventprop", "autodiff"] = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        layers: Sequence[int],
        neuron: AbstractNeuron | Sequence[AbstractNeuron],
        key,
        *,
        t_max: float,
        max_events: int | Sequence[int | None] | None = None,
        max_spikes: int | Sequence[int] = 1,
        solver=None,
        gradient: Literal["eventprop", "autodiff"] = "eventprop",
        init_mean: float = 1.5,
        init_std: float = 1.0,
    ):
        self.in_size = _validate.positive_int(in_size, "in_size")
        if isinstance(layers, int) or len(layers) == 0:
            raise ValueError(f"`layers` must be a non-empty list of sizes; got {layers!r}.")
        self.sizes = tuple(_validate.positive_int(s, "layers[i]") for s in layers)
        self.t_max = _validate.positive_number(t_max, "t_max")
        self.max_spikes = _per_layer(max_spikes, "max_spikes", len(self.sizes))
        if gradient not in GRADIENT_MODES:
            raise ValueError(
                f"`gradient` must be one of {GRADIENT_MODES}; got {gradient!r}."
            )
        self.gradient = gradient
        if isinstance(neuron, AbstractNeuron):
            neurons = (neuron,) * len(self.sizes)
        else:
            neurons = tuple(neuron)
            if len(neurons) != len(self.sizes) or not all(
                isinstance(m, AbstractNeuron) for m in neurons
            ):
                raise ValueError(
                    f"`neuron` must be one neuron model or one per layer "
                    f"({len(self.sizes)}); got {neuron!r}."
                )
        for model in neurons:
            model.check_state()
        self.neurons = neurons
        self.max_events = (None if max_events is None else
                           _per_layer(max_events, "max_events", len(self.sizes),
                                      allow_none=True))
        self.segments = tuple(segment_solver_for(m, solver, True) for m in neurons)
        keys = jax.random.split(key, len(self.sizes))
        fan_in = (self.in_size, *self.sizes[:-1])
        self.weights = [
            init_weights(k, a, b, m, self.t_max, init_mean, init_std)
            for k, a, b, m in zip(keys, fan_in, self.sizes, neurons)
        ]

    # ------------------------------------------------------------------ running
    def _layer_max_events(self, index: int, n_inputs: int) -> int:
        if self.max_events is not None and self.max_events[index] is not None:
            return self.max_events[index]
        return default_max_events(n_inputs, self.sizes[index], self.max_spikes[index],
                                  self.segments[index].clock)

    def _inputs(self, input_times):
        """Validated input times in the weights' dtype, and the traced-input flag
        (`_validate.spike_times`)."""
        x, invalid = _validate.spike_times(input_times, self.in_size)
        return x.astype(self.weights[0].dtype), invalid

    def _run(self, index, in_times, ts=None):
        """Layer ``index`` on ``in_times``; with ``ts`` also its trajectory."""
        weights = self.weights[index]
        args = (self.neurons[index], weights, in_times,
                as_current(None, self.sizes[index], weights.dtype), self.segments[index])
        options = dict(t_max=self.t_max, max_spikes=self.max_spikes[index],
                       max_events=self._layer_max_events(index, in_times.size))
        if ts is not None:
            # Trajectories always come from the event loop. Where `max_events` is a
            # loop-free layer's input budget, the loop needs one iteration per
            # input taken plus one per round of spikes.
            segments = self.segments[index]
            budget = self.max_events is not None and self.max_events[index] is not None
            if budget and is_loop_free(segments, self.max_spikes[index]):
                options["max_events"] = default_max_events(
                    options["max_events"], self.sizes[index], 1, segments.clock)
            spikes, traj, _ = run_layer(*args, ts=ts, **options)
            return spikes, traj
        return layer_spikes(*args, gradient=self.gradient, **options), None

    def __call__(self, input_times: InputTimes) -> Spikes:
        """Simulate one sample.

        **Arguments:** `input_times`: ``Float[Array, "in_size K"]`` spike times per
        input channel, ``+inf`` padding (a 1-D array means one spike per channel).

        **Returns:** a [`eventsnn.Spikes`][]. Batch with ``jax.vmap(net)(batch)``.

        **Raises:** ``ValueError`` for input times of the wrong shape or dtype, or (when
        concrete) NaN or negative. Inside ``jit`` the last two cannot raise: such a
        sample's first layer reports ``RESULTS.invalid_input`` (``es.check`` raises
        on it) and its bad times count as no spike.
        """
        x, invalid = self._inputs(input_times)
        layers = []
        for index in range(len(self.sizes)):
            spikes, _ = self._run(index, x)
            layers.append(spikes)
            x = spikes.times
        layers[0] = flag_invalid(layers[0], invalid)
        return Spikes(tuple(layers))

    def max_membrane(self, input_times: InputTimes) -> Float[Array, " n_out"]:
        """Maximum over ``[0, t_max]`` of each output neuron's membrane (state column
        0), with the output layer treated as non-spiking: the read-out of Wunderlich &
        Pehle's MNIST network, used with `es.losses.max_membrane_cross_entropy`.

        Differentiable (the hidden layers with the network's gradient mode).

        **Arguments:**

        - `input_times`: as for ``__call__``.

        **Returns:** ``Float[Array, "n_out"]``, the maximum of each output neuron's
        membrane over the trial (threshold and reset ignored); ``NaN`` for a sample
        whose input times are NaN or negative (under ``jit``; outside it, a
        ``ValueError``).

        **Raises:** ``ValueError`` if the output layer's model cannot use the exact
        flow map (it must be linear with ≤ 2 state variables).
        """
        x, invalid = self._inputs(input_times)
        for index in range(len(self.sizes) - 1):
            x = self._run(index, x)[0].times
        peak = max_membrane(self.neurons[-1], self.weights[-1], x, self.t_max)
        return _validate.nan_if(invalid, peak)

    def state_at_t(
        self, input_times: InputTimes, ts: Float[Array, " T"], layer: int = -1
    ) -> Float[Array, "n T state"]:
        """The exact state trajectory of one layer at the times ``ts``.

        Between events this is the solver's dense output (exact for the exact flow
        map); at a spike time the post-reset state, at an input time the state just
        after the input (the trajectory is right-continuous).

        **Arguments:**

        - `input_times`: as for ``__call__``.
        - `ts`: times in ``[0, t_max]``.
        - `layer`: which layer (default: the output layer).

        **Returns:** ``Float[Array, "n len(ts) state"]``; column names are
        ``net.neurons[layer].state_names``.

        **Raises:** ``RuntimeError`` (outside ``jit``) if a layer up to this one
        overflowed its event budget, since the trajectory would be incomplete; under
        ``jit`` the missing part is ``NaN``, and so is the whole trajectory of a sample
        whose input times are NaN or negative.
        """
        n_layers = len(self.sizes)
        if not -n_layers <= layer < n_layers:
            raise ValueError(f"`layer` must be in [-{n_layers}, {n_layers}); got {layer}.")
        layer %= n_layers
        x, invalid = self._inputs(input_times)
        ts = _validate.query_times(ts, self.t_max).astype(x.dtype)
        layers = []
        for index in range(layer):
            spikes, _ = self._run(index, x)
            layers.append(spikes)
            x = spikes.times
        spikes, traj = self._run(layer, x, ts=ts)
        if not _validate.is_traced(traj):
            # Outside jit an incomplete trajectory is an error, not silent NaN. Spike
            # times dropped by `max_spikes` only matter in the layers feeding this one.
            if spikes.result == RESULTS.max_spikes_reached:
                spikes = eqx.tree_at(lambda s: s.result, spikes, RESULTS.successful)
            check(Spikes((*layers, spikes)))
        return _validate.nan_if(invalid, traj)


def _per_layer(value, name: str, n_layers: int, allow_none: bool = False) -> tuple:
    """``value`` (an int for every layer, or one per layer) as a tuple of positive
    ints, one per layer (``None`` entries kept where ``allow_none``)."""
    if isinstance(value, str) or np.ndim(value) == 0:
        return (_validate.positive_int(value, name),) * n_layers
    values = tuple(value)
    if len(values) != n_layers:
        raise ValueError(f"`{name}` needs one value per layer ({n_layers}); got "
                         f"{value!r}.")
    return tuple(None if v is None and allow_none
                 else _validate.positive_int(v, f"{name}[{i}]")
                 for i, v in enumerate(values))


def default_solver_name(net: FeedForward) -> list[str]:
    """Human-readable name of the integration strategy of each layer."""
    names = []
    for seg in net.segments:
        if isinstance(getattr(seg, "solver", None), diffrax.AbstractSolver):
            names.append(type(seg.solver).__name__)
        else:
            names.append("ExactLinear")
    return names
