"""Tests of `eventsnn.plot` on hand-made results (no simulation, so they are fast)."""

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import eventsnn as es  # noqa: E402
from eventsnn import plot  # noqa: E402
from eventsnn.cli import demo_input  # noqa: E402

INF = np.inf


def layer(times) -> es.LayerSpikes:
    times = jnp.asarray(times, dtype=jnp.float32)
    counts = jnp.sum(jnp.isfinite(times), axis=-1).astype(jnp.int32)
    return es.LayerSpikes(times, counts, jnp.asarray(0), es.RESULTS.successful)


HIDDEN = layer([[1.0, 4.0, INF], [INF, INF, INF], [2.5, INF, INF], [3.0, 7.0, 9.0]])
OUTPUT = layer([[5.0, INF], [6.0, 8.0]])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def scatter_points(ax) -> np.ndarray:
    return np.concatenate([c.get_offsets() for c in ax.collections])


def test_raster_layer_plots_every_finite_spike():
    fig, ax = plot.raster(HIDDEN)
    assert fig.axes == [ax]
    points = scatter_points(ax)
    assert len(points) == 6  # the +inf entries are skipped
    assert sorted(map(tuple, points.tolist())) == [
        (1.0, 0.0), (2.5, 2.0), (3.0, 3.0), (4.0, 0.0), (7.0, 3.0), (9.0, 3.0)
    ]
    assert ax.get_xlabel() == "time (ms)"
    assert ax.get_ylabel() == "neuron index"


def test_raster_spikes_stacks_layers_with_separators_and_labels():
    inputs = np.array([[0.5, 1.5], [INF, INF], [0.7, INF]])
    fig, ax = plot.raster(es.Spikes((HIDDEN, OUTPUT)), inputs=inputs, t_max=10.0)
    points = scatter_points(ax)
    assert len(points) == 3 + 6 + 3
    # Blocks are offset: inputs 0-2, hidden 3-6, output 7-8.
    assert set(points[:, 1]) == {0, 2, 3, 5, 6, 7, 8}
    assert [t.get_text() for t in ax.texts] == ["input", "hidden 1", "output"]
    separators = [line.get_ydata()[0] for line in ax.lines]
    assert separators == [2.5, 6.5]
    assert ax.get_ylim() == (-0.5, 8.5)
    assert ax.get_xlim() == (-0.1, 10.1)  # a spike at 0 or t_max is drawn whole


def test_raster_draws_into_given_axes():
    fig, ax = plt.subplots(1, 2)
    out_fig, out_ax = plot.raster(OUTPUT, ax=ax[1])
    assert out_fig is fig and out_ax is ax[1]
    assert len(scatter_points(ax[1])) == 3 and not ax[0].collections


def test_raster_rejects_a_batch():
    batched = layer(np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="one sample"):
        plot.raster(batched)


def make_trajectory(n=3, T=50, state=2):
    ts = np.linspace(0.0, 10.0, T)
    traj = np.stack(
        [np.stack([np.sin(ts + i + k) for k in range(state)], -1) for i in range(n)]
    )
    return ts, traj


def test_membrane_one_subplot_per_state_with_threshold_and_spikes():
    ts, traj = make_trajectory()
    spikes = np.asarray(HIDDEN.times)[:3]  # a plain (n, S) array works too
    fig, axes = plot.membrane(ts, traj, ("v", "i"), threshold=0.8, spikes=spikes)
    assert len(axes) == 2 and len(fig.axes) == 2
    assert [a.get_ylabel() for a in axes] == ["v", "i"]
    assert axes[-1].get_xlabel() == "time (ms)"
    assert len(axes[1].lines) == 3  # one line per neuron
    assert len(axes[0].lines) == 4  # ... plus the dashed threshold
    assert axes[0].lines[-1].get_ydata()[0] == 0.8
    np.testing.assert_allclose(axes[1].lines[2].get_ydata(), traj[2, :, 1])
    markers = scatter_points(axes[0])
    assert len(markers) == 3  # finite spikes of neurons 0-2: 1, 4, 2.5
    np.testing.assert_allclose(sorted(markers[:, 0]), [1.0, 2.5, 4.0])
    np.testing.assert_allclose(markers[:, 1], 0.8)
    assert not axes[1].collections


def test_membrane_selected_neurons_and_variables():
    ts, traj = make_trajectory(n=4, state=3)
    fig, axes = plot.membrane(ts, traj, neurons=[1, 3], variables=[0], spikes=HIDDEN)
    assert len(axes) == 1 and len(fig.axes) == 1
    assert axes[0].get_ylabel() == "state 0"
    assert len(axes[0].lines) == 2
    np.testing.assert_allclose(axes[0].lines[1].get_ydata(), traj[3, :, 0])
    assert len(scatter_points(axes[0])) == 3  # neuron 1: none, neuron 3: 3 spikes
    with pytest.raises(ValueError, match="trajectory"):
        plot.membrane(ts[:-1], traj)


def test_states_takes_names_and_threshold_from_the_neuron():
    neuron = es.Izhikevich()
    ts, traj = make_trajectory(n=2, state=3)
    fig, axes = plot.states(neuron, ts, traj)
    assert [a.get_ylabel() for a in axes] == ["v", "u", "i"]
    assert axes[0].lines[-1].get_ydata()[0] == 30.0  # v_peak
    fig, axes = plot.states(es.Refractory(es.LIF(threshold=0.5)), *make_trajectory(
        n=2, state=3), variables=["v"])
    assert len(axes) == 1 and axes[0].lines[-1].get_ydata()[0] == 0.5


def test_states_of_a_real_network(tmp_path):
    # The network and times of tests/test_cli.py, so compiled code is shared.
    net = es.FeedForward(3, [2], es.LIF(), jax.random.key(0), t_max=30.0,
                         max_spikes=64)
    x = jnp.asarray(demo_input(3, 30.0))
    out = es.check(net(x))
    ts = jnp.linspace(0.0, 30.0, 1000)
    traj = net.state_at_t(x, ts)
    n_spikes = int(np.isfinite(np.asarray(out.times)).sum())
    assert n_spikes > 0
    fig, axes = plot.states(net.neurons[0], ts, traj, spikes=out.layers[0])
    assert [a.get_ylabel() for a in axes] == ["v", "i"]
    assert len(scatter_points(axes[0])) == n_spikes
    v = axes[0].lines[0].get_ydata()
    assert v.max() <= 1.0 + 1e-6 and v.max() > 0.9  # reaches the threshold, resets
    fig.savefig(tmp_path / "states.png")
    assert (tmp_path / "states.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
