"""Plots of simulation results: spike rasters and state (membrane) trajectories.

Every function draws one *unbatched* sample, takes an optional `ax` to draw into and
returns ``(figure, axes)``. New figures come from ``matplotlib.pyplot`` (so they show
in notebooks); nothing else of matplotlib's global state is touched (not the backend).
"""

from collections.abc import Sequence

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from ._neuron import AbstractNeuron
from ._spikes import LayerSpikes, Spikes


def _spike_array(spikes, name: str = "spikes") -> np.ndarray:
    times = np.asarray(getattr(spikes, "times", spikes), dtype=float)
    times = times[:, None] if times.ndim == 1 else times
    if times.ndim != 2:
        raise ValueError(
            f"`{name}` must hold one sample, spike times of shape (n, max_spikes); got "
            f"shape {times.shape}. For a batch, select a sample first, e.g. "
            "`jax.tree.map(lambda x: x[0], out)`."
        )
    return times


def raster(spikes: "Spikes | LayerSpikes", ax=None, *, inputs=None, names=None,
           t_max: float | None = None, markersize: float = 60.0):
    """Raster plot of the spike times of one sample (``+inf`` entries are skipped).

    **Arguments:**

    - `spikes`: a [`eventsnn.LayerSpikes`][] (one population), or a
      [`eventsnn.Spikes`][]: then all layers are stacked bottom to top, separated by
      dashed lines and labelled on the right.
    - `ax`: the axes to draw into; a new figure is made if omitted.
    - `inputs`: optional ``(in_size, K)`` input spike times, drawn as the lowest block.
    - `names`: one label per block (default ``"input"``, ``"hidden 1"``, …,
      ``"output"``).
    - `t_max`: if given, the time axis spans ``[0, t_max]`` (plus a 1 % margin).
    - `markersize`: size of the tick markers (points²).

    **Returns:** ``(figure, axes)``.
    """
    if isinstance(spikes, Spikes):
        blocks = [_spike_array(layer) for layer in spikes.layers]
        default = [f"hidden {i + 1}" for i in range(len(blocks) - 1)] + ["output"]
    else:
        blocks, default = [_spike_array(spikes)], ["population"]
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
                   color=f"C{k % 10}", linewidths=1.5)
        if len(blocks) > 1:
            ax.text(1.01, offset + (len(times) - 1) / 2, name, color=f"C{k % 10}",
                    transform=ax.get_yaxis_transform(), va="center")
            if k > 0:
                ax.axhline(offset - 0.5, color="0.6", linestyle="--", linewidth=0.8)
        offset += len(times)
    ax.set_ylim(-0.5, offset - 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if t_max is not None:
        # A small margin, so that a spike at exactly 0 or t_max is drawn whole.
        margin = 0.01 * t_max
        ax.set_xlim(-margin, t_max + margin)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron index" + (" (stacked by layer)" if len(blocks) > 1 else ""))
    return fig, ax


def membrane(ts, trajectory, state_names: Sequence[str] | None = None,
             neurons: Sequence[int] | None = None, threshold: float | None = None,
             spikes=None, ax=None, *, variables: Sequence[int | str] | None = None):
    """Plot state trajectories: one subplot per state variable, one line per neuron.

    **Arguments:**

    - `ts`: ``Float[Array, "T"]`` the times (ms) of the trajectory.
    - `trajectory`: ``Float[Array, "n T state"]``, as returned by
      ``FeedForward.state_at_t`` or ``es.simulate(..., ts=ts)``.
    - `state_names`: names of the state columns (default ``"state 0"``, …).
    - `neurons`: indices of the neurons to draw (default: all).
    - `threshold`: if given, a dashed line at this level on the column-0 subplot.
    - `spikes`: optional [`eventsnn.LayerSpikes`][] (or ``(n, S)`` times) of the same
      population, marked with triangles on the column-0 subplot: at `threshold` if
      given, else at the top of the subplot.
    - `ax`: an axes, or a sequence with one axes per plotted variable.
    - `variables`: the state columns to plot, by index or name (default: all);
      ``variables=[0]`` plots only the membrane.

    **Returns:** ``(figure, list of axes)``.
    """
    ts, traj = np.asarray(ts, dtype=float), np.asarray(trajectory, dtype=float)
    if traj.ndim != 3 or traj.shape[1] != len(ts):
        raise ValueError(f"`trajectory` must have shape (n, len(ts)={len(ts)}, "
                         f"state); got {traj.shape}.")
    n, _, size = traj.shape
    names = list(state_names or [f"state {k}" for k in range(size)])
    if len(names) != size:
        raise ValueError(f"`state_names` needs {size} names; got {names!r}.")
    columns = range(size) if variables is None else [
        names.index(v) if isinstance(v, str) else int(v) for v in variables]
    neurons = range(n) if neurons is None else [int(i) for i in neurons]
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
            a.plot(ts, traj[i, :, col], color=f"C{k % 10}", label=f"neuron {i}")
        if col == 0 and threshold is not None:
            a.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                      label="threshold")
        for k, i in enumerate(neurons if col == 0 and times is not None else []):
            t = times[i][np.isfinite(times[i])]
            at_top = threshold is None  # then y is in axes coordinates
            a.scatter(t, np.full(t.shape, 1.0 if at_top else threshold), marker="v",
                      s=40, color=f"C{k % 10}", zorder=3, clip_on=False,
                      transform=a.get_xaxis_transform() if at_top else a.transData)
        a.set_ylabel(names[col])
    axes[-1].set_xlabel("time (ms)")
    if len(neurons) <= 10:
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                       fontsize="small")
    return fig, axes


def _threshold_of(neuron: AbstractNeuron) -> float | None:
    """The level ``θ`` of the membrane (column 0) at which the neuron fires, if its
    spike condition is ``y[:, 0] - θ`` (probed at three values), else ``None``."""
    y = np.repeat(np.asarray(neuron.init_state(1)), 3, axis=0)
    y[:, 0] = [0.0, 1.0, 2.0]
    try:
        g = np.asarray(neuron.spike_condition(0.0, jnp.asarray(y), jnp.zeros(3)))
    except (TypeError, ValueError):  # e.g. one parameter value per neuron
        return None
    return float(-g[0]) if g.shape == (3,) and np.allclose(np.diff(g), 1.0) else None


def states(neuron: AbstractNeuron, ts, trajectory, *, neurons=None, spikes=None,
           variables=None, ax=None):
    """[`eventsnn.plot.membrane`][] with the names from ``neuron.state_names`` and a
    threshold line where the model fires at a fixed membrane level (e.g.
    ``LIF.threshold``, ``Izhikevich.v_peak``, ``θ = π`` for ``QIF``).

    **Arguments:**

    - `neuron`: the model that produced the trajectory.
    - `ts`: ``Float[Array, "T"]`` the times (ms) of the trajectory.
    - `trajectory`: ``Float[Array, "n T state"]``.
    - `neurons`, `spikes`, `variables`, `ax`: as for [`eventsnn.plot.membrane`][].

    **Returns:** ``(figure, list of axes)``.
    """
    return membrane(ts, trajectory, neuron.state_names, neurons, _threshold_of(neuron),
                    spikes, ax, variables=variables)


def training_curves(history: Sequence[dict], ax=None):
    """Loss and accuracy per epoch from [`eventsnn.train.fit`][]'s history (or the
    rows of its ``metrics.csv``): training and, where logged, validation.

    **Arguments:** `history`: one dict per epoch; `ax`: two axes (loss, accuracy).

    **Returns:** ``(figure, [loss axes, accuracy axes])``.
    """
    if len(history) == 0:
        raise ValueError("`history` is empty: nothing to plot.")
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        axes = list(axes)
    else:
        axes = list(ax)
        fig = axes[0].figure
    epoch = [int(row["epoch"]) for row in history]
    for a, metric in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{metric}"
            if all(key in row for row in history):
                label = "train" if split == "train" else "validation"
                a.plot(epoch, [float(row[key]) for row in history], style, marker="o",
                       markersize=3, label=label)
        a.set_xlabel("epoch")
        a.set_ylabel(metric)
        a.legend(frameon=False)
    axes[1].set_ylim(top=1.0)
    axes[1].yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f} %")
    return fig, axes


def decision_map(grid_classes, extent=(0.0, 1.0, 0.0, 1.0), *, points=None,
                 labels=None, class_names=None, ax=None):
    """A classifier's decision over a 2-D input plane (e.g. Yin-Yang's (x, y)).

    **Arguments:**

    - `grid_classes`: ``Int[Array, "ny nx"]`` predicted class on a grid (row 0 at the
      bottom, ``y`` increasing); ``-1`` (no output spike) is drawn white.
    - `extent`: ``(x0, x1, y0, y1)`` of the grid.
    - `points`, `labels`: optional ``(m, 2)`` samples and their true classes, drawn on
      top in the colour of their true class (with a legend).
    - `class_names`: legend labels.
    - `ax`: the axes to draw into; a new figure is made if omitted.

    **Returns:** ``(figure, axes)``.
    """
    from matplotlib.colors import ListedColormap

    grid = np.asarray(grid_classes)
    if grid.ndim != 2:
        raise ValueError(f"`grid_classes` must be 2-D (ny, nx); got {grid.shape}.")
    n_classes = int(max(grid.max(), -1 if labels is None else np.max(labels))) + 1
    colors = [f"C{k % 10}" for k in range(n_classes)]
    fig, ax = plt.subplots(figsize=(5, 4.6)) if ax is None else (ax.figure, ax)
    masked = np.ma.masked_less(grid, 0)
    ax.imshow(masked, origin="lower", extent=extent, cmap=ListedColormap(colors),
              vmin=-0.5, vmax=n_classes - 0.5, alpha=0.35, interpolation="nearest")
    if points is not None:
        points, labels = np.asarray(points), np.asarray(labels)
        for k in range(n_classes):
            sel = labels == k
            name = class_names[k] if class_names is not None else f"class {k}"
            ax.scatter(points[sel, 0], points[sel, 1], s=6, color=colors[k], label=name)
        ax.legend(loc="upper right", fontsize="small", markerscale=2)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_aspect("equal")
    return fig, ax
