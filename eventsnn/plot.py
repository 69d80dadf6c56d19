"""Plots of simulation results: spike rasters and state (membrane) trajectories.

Every function draws one *unbatched* sample, takes an optional `ax` to draw into and
returns ``(figure, axes)``. New figures come from ``matplotlib.pyplot`` (so they show
in notebooks); nothing else about matplotlib's global state is changed, in particular
not the backend.
"""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._neuron import AbstractNeuron
from ._spikes import LayerSpikes, Spikes


def _spike_array(spikes, name: str = "spikes") -> np.ndarray:
    times = np.asarray(spikes.times if hasattr(spikes, "times") else spikes, dtype=float)
    if times.ndim == 1:
        times = times[:, None]
    if times.ndim != 2:
        raise ValueError(
            f"`{name}` must hold one sample, spike times of shape (n, max_spikes); got "
            f"shape {times.shape}. For a batch, select a sample first, e.g. "
            "`jax.tree.map(lambda x: x[0], out)`."
        )
    return times


def raster(
    spikes: "Spikes | LayerSpikes",
    ax=None,
    *,
    inputs=None,
    names: Sequence[str] | None = None,
    t_max: float | None = None,
    markersize: float = 60.0,
):
    """Raster plot of the spike times of one sample (``+inf`` entries are skipped).

    **Arguments:**

    - `spikes`: a [`eventsnn.LayerSpikes`][] (one population), or a
      [`eventsnn.Spikes`][]: then all layers are stacked bottom to top, separated by
      dashed lines and labelled on the right.
    - `ax`: the axes to draw into; a new figure is made if omitted.
    - `inputs`: optional ``(in_size, K)`` input spike times, drawn as the lowest block.
    - `names`: one label per block (default ``"input"``, ``"layer 1"``, …, ``"output"``).
    - `t_max`: if given, the time axis spans ``[0, t_max]``.
    - `markersize`: size of the tick markers (points²).

    **Returns:** ``(figure, axes)``.
    """
    layers = list(spikes.layers) if isinstance(spikes, Spikes) else [spikes]
    blocks = [_spike_array(layer) for layer in layers]
    default = [f"layer {i + 1}" for i in range(len(blocks))]
    if len(blocks) > 1:
        default[-1] = "output"
    if inputs is not None:
        blocks.insert(0, _spike_array(inputs, "inputs"))
        default.insert(0, "input")
    names = default if names is None else list(names)
    if len(names) != len(blocks):
        raise ValueError(f"`names` needs {len(blocks)} labels; got {len(names)}.")
    fig, ax = plt.subplots(figsize=(7, 4)) if ax is None else (ax.figure, ax)
    offset = 0
    for k, (times, name) in enumerate(zip(blocks, names)):
        neuron, slot = np.nonzero(np.isfinite(times))
        ax.scatter(times[neuron, slot], neuron + offset, marker="|", s=markersize,
                   color=f"C{k}", linewidths=1.5)
        if len(blocks) > 1:
            ax.text(1.01, offset + (times.shape[0] - 1) / 2, name, color=f"C{k}",
                    transform=ax.get_yaxis_transform(), va="center", ha="left")
            if k > 0:
                ax.axhline(offset - 0.5, color="0.6", linestyle="--", linewidth=0.8)
        offset += times.shape[0]
    ax.set_ylim(-0.5, offset - 0.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if t_max is not None:
        ax.set_xlim(0.0, t_max)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron index" + (" (stacked by layer)" if len(blocks) > 1 else ""))
    return fig, ax


def membrane(
    ts,
    trajectory,
    state_names: Sequence[str] | None = None,
    neurons: Sequence[int] | None = None,
    threshold: float | None = None,
    spikes=None,
    ax=None,
    *,
    variables: Sequence[int | str] | None = None,
):
    """Plot state trajectories, one subplot per state variable, one line per neuron.

    **Arguments:**

    - `ts`: ``Float[Array, "T"]`` the times (ms) of the trajectory.
    - `trajectory`: ``Float[Array, "n T state"]``, as returned by
      ``FeedForward.state_at_t`` or ``es.simulate(..., ts=ts)``.
    - `state_names`: names of the state columns (default ``"state 0"``, …).
    - `neurons`: indices of the neurons to draw (default: all).
    - `threshold`: if given, a dashed line at this level on the column-0 subplot.
    - `spikes`: optional [`eventsnn.LayerSpikes`][] (or ``(n, S)`` times) of the same
      population; spikes are marked with triangles on the column-0 subplot, at
      `threshold` if given, else at the top of the subplot.
    - `ax`: an axes, or a sequence with one axes per plotted variable.
    - `variables`: which state columns to plot, by index or name (default: all);
      ``variables=[0]`` plots only the membrane.

    **Returns:** ``(figure, list of axes)``.
    """
    ts = np.asarray(ts, dtype=float)
    traj = np.asarray(trajectory, dtype=float)
    if traj.ndim != 3 or traj.shape[1] != ts.shape[0]:
        raise ValueError(
            f"`trajectory` must have shape (n, len(ts)={ts.shape[0]}, state); got "
            f"{traj.shape}."
        )
    n, _, size = traj.shape
    names = [f"state {k}" for k in range(size)] if state_names is None else list(state_names)
    if len(names) != size:
        raise ValueError(f"`state_names` needs {size} names; got {names!r}.")
    columns = range(size) if variables is None else [
        names.index(v) if isinstance(v, str) else int(v) for v in variables
    ]
    neurons = list(range(n)) if neurons is None else [int(i) for i in neurons]
    if ax is None:
        fig, axes = plt.subplots(len(columns), 1, sharex=True, squeeze=False,
                                 figsize=(7, 1.2 + 1.8 * len(columns)))
        axes = list(axes[:, 0])
    else:
        axes = list(ax) if isinstance(ax, (Sequence, np.ndarray)) else [ax]
        fig = axes[0].figure
        if len(axes) != len(columns):
            raise ValueError(f"`ax` needs {len(columns)} axes; got {len(axes)}.")
    times = None if spikes is None else _spike_array(spikes)
    for a, col in zip(axes, columns):
        for k, i in enumerate(neurons):
            a.plot(ts, traj[i, :, col], color=f"C{k % 10}", linewidth=1.2,
                   label=f"neuron {i}")
        if col == 0 and threshold is not None:
            a.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                      label="threshold")
        if col == 0 and times is not None:
            for k, i in enumerate(neurons):
                t = times[i][np.isfinite(times[i])]
                y = np.full(t.shape, threshold if threshold is not None else 1.0)
                transform = a.transData if threshold is not None else a.get_xaxis_transform()
                a.scatter(t, y, marker="v", s=40, color=f"C{k % 10}", zorder=3,
                          transform=transform, clip_on=False)
        a.set_ylabel(names[col])
    axes[-1].set_xlabel("time (ms)")
    if len(neurons) <= 10:
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                       frameon=False)
    return fig, axes


def _threshold_of(neuron: AbstractNeuron) -> float | None:
    """The spike-detection level of the membrane, for models that name one."""
    while hasattr(neuron, "model"):  # wrappers such as `Refractory`
        neuron = neuron.model
    for field in ("threshold", "v_peak"):
        value = getattr(neuron, field, None)
        if value is not None and np.size(value) == 1:
            return float(np.asarray(value))
    return None


def states(neuron: AbstractNeuron, ts, trajectory, *, neurons=None, spikes=None,
           variables=None, ax=None):
    """[`eventsnn.plot.membrane`][] with the names from ``neuron.state_names`` and
    the threshold line from its ``threshold`` (or ``v_peak``) parameter, if any.

    **Returns:** ``(figure, list of axes)``.
    """
    return membrane(ts, trajectory, neuron.state_names, neurons, _threshold_of(neuron),
                    spikes, ax, variables=variables)
