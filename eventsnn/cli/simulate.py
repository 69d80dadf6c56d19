"""``eventsnn simulate``: a small network on a built-in input; prints and plots its
spikes."""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import plot
from .._network import FeedForward
from .._spikes import RESULTS, check
from ._common import NEURONS, _positive, precision

# --------------------------------------------------------------------------- simulate
INPUT_PERIOD = 10.0  # ms between two volleys of the built-in input


def demo_input(in_size: int, t_max: float, period: float = INPUT_PERIOD) -> np.ndarray:
    """The built-in input of ``eventsnn simulate``: channel ``c`` spikes at
    ``2 + c + period * k`` ms for ``k = 0, 1, …`` while that is below ``t_max``, so
    every ``period`` ms a volley sweeps across the channels, one ms apart.

    **Returns:** ``(in_size, K)`` spike times (ms), ``+inf`` padding.
    """
    rounds = np.arange(int(t_max // period) + 1)
    times = 2.0 + np.arange(in_size)[:, None] + period * rounds
    return np.where(times < t_max, times, np.inf)


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--neuron", choices=list(NEURONS), default="lif",
                        help="neuron model of every layer (default: %(default)s)")
    parser.add_argument("--inputs", type=_positive(int), default=5, metavar="N",
                        help="number of input channels (default: %(default)s)")
    parser.add_argument("--hidden", type=_positive(int), nargs="*", default=[20],
                        metavar="N", help="hidden layer sizes, e.g. '--hidden 20 "
                        "10'; none for a single layer (default: 20)")
    parser.add_argument("--outputs", type=_positive(int), default=3, metavar="N",
                        help="number of output neurons (default: %(default)s)")
    parser.add_argument("--t-max", type=_positive(float), default=50.0, metavar="MS",
                        help="simulation window in ms (default: %(default)s)")
    parser.add_argument("--max-spikes", type=_positive(int), default=64, metavar="S",
                        help="spike times kept per neuron (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weight initialisation (default: %(default)s)")
    parser.add_argument("--traces", type=_positive(int), default=3, metavar="N",
                        help="neurons of the first layer whose states are plotted, "
                        "from the quietest to the busiest (default: %(default)s)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="floating-point precision (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("runs/simulate"),
                        metavar="DIR", help="output directory (default: %(default)s)")


def _format_times(times: np.ndarray, indent: int, per_line: int = 8) -> str:
    """Finite spike times, `per_line` to a line, continuation lines indented."""
    finite = times[np.isfinite(times)]
    if finite.size == 0:
        return f"{'-':>9}"
    lines = [
        "".join(f"{t:9.3f}" for t in finite[k : k + per_line])
        for k in range(0, finite.size, per_line)
    ]
    return ("\n" + " " * indent).join(lines)


def _simulate(args: argparse.Namespace) -> int:
    with precision(args.dtype):
        return _run_simulate(args)


def _run_simulate(args: argparse.Namespace) -> int:
    neuron = NEURONS[args.neuron]()
    sizes = [*args.hidden, args.outputs]
    net = FeedForward(args.inputs, sizes, neuron, jax.random.key(args.seed),
                      t_max=args.t_max, max_spikes=args.max_spikes)
    x = demo_input(args.inputs, args.t_max)
    shape = " -> ".join(map(str, [args.inputs, *sizes]))
    print(f"{type(neuron).__name__} network {shape}, t_max = {args.t_max:g} ms, "
          f"seed {args.seed}, {args.dtype}")
    print(f"input: channel c spikes at 2 + c + {INPUT_PERIOD:g} k ms, k = 0, 1, … "
          f"({int(np.isfinite(x).sum())} spikes)\n")
    out = net(jnp.asarray(x))
    try:
        check(out)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        # The default event budget follows `max_spikes`: one knob fixes both.
        budget = (RESULTS.max_events_reached, RESULTS.max_spikes_reached)
        if any(bool(layer.result == r) for layer in out.layers for r in budget):
            print("On the command line, raise --max-spikes.", file=sys.stderr)
        return 1

    print("output spike times (ms)")
    print(f"{'neuron':>6}  {'count':>5}  {'times':>9}")
    counts = np.asarray(out.counts)
    for i, (times, count) in enumerate(zip(np.asarray(out.times), counts)):
        print(f"{i:>6}  {count:>5}{_format_times(times, 13)}")
    print(f"\n{'layer':<8}  {'neurons':>7}  {'spikes':>6}  {'events':>6}")
    print(f"{'input':<8}  {args.inputs:>7}  {int(np.isfinite(x).sum()):>6}  {'-':>6}")
    for index, layer in enumerate(out.layers):
        name = "output" if index == len(sizes) - 1 else f"hidden {index + 1}"
        print(f"{name:<8}  {sizes[index]:>7}  {int(np.sum(layer.counts)):>6}  "
              f"{int(layer.num_events):>6}")
    print("(events: iterations of the layer's event loop)\n")

    args.out.mkdir(parents=True, exist_ok=True)
    from matplotlib.figure import Figure  # no pyplot: no backend, no global figures

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    plot.raster(out, fig.subplots(), inputs=x, t_max=args.t_max)
    fig.suptitle(f"{type(neuron).__name__} network, built-in input")
    paths = [args.out / "raster.png"]
    fig.savefig(paths[-1], dpi=120)

    # States of the first layer: the quietest, the busiest and neurons in between.
    layer = 0
    by_count = np.argsort(np.asarray(out.layers[layer].counts), stable=True)
    picks = np.linspace(0, by_count.size - 1, min(args.traces, by_count.size))
    shown = by_count[np.unique(picks.round().astype(int))]
    ts = jnp.linspace(0.0, args.t_max, 1000)
    trajectory = np.asarray(net.state_at_t(jnp.asarray(x), ts, layer=layer))
    fig = Figure(figsize=(7.5, 1.2 + 1.8 * neuron.state_size), layout="constrained")
    axes = fig.subplots(neuron.state_size, 1, sharex=True, squeeze=False)[:, 0]
    plot.states(neuron, ts, trajectory, neurons=shown, spikes=out.layers[layer],
                ax=axes)
    name = "output" if len(sizes) == 1 else "hidden layer 1"
    fig.suptitle(f"{type(neuron).__name__}: states of {len(shown)} neurons, {name}")
    paths.append(args.out / "membrane.png")
    fig.savefig(paths[-1], dpi=120)
    for path in paths:
        print(f"wrote {path}")
    return 0


