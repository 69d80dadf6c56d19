"""Peak memory of one gradient step versus events and versus solver steps.

Question: does the memory of a gradient step grow with the number of *events* only
(EventProp) or also with the number of *solver steps* (autodiff through the solver)?

Memory is XLA's own accounting of the compiled `value_and_grad` step
(`compiled.memory_analysis()`): the temporary buffers it allocates, plus arguments and
outputs. That is the device memory the step needs, exact and repeatable, on any backend.

- versus events: a 5-H-3 LIF network (exact flow) with K input spikes per channel,
  K = 1, 4, 16, 64 (the event budget grows with K);
- versus solver steps: a 5-H-3 QIF network (adaptive Tsit5) with the per-segment step
  budget `max_steps` = 64 … 4096. Reverse mode through the solver must be able to store
  (checkpoints of) up to that many steps; the EventProp replay keeps none: its
  re-solves carry their derivatives forward (`eventsnn._watched`; before 2026-11-30
  it solved the adjoint ODE, and until 2026-12-02 it kept up to 16 checkpoints per
  re-solve).

``--smoke`` (the test suite's size) uses a one-layer 5-3 network, batch 2, and leaves
reverse mode through the event loop out of the versus-events table (the compilations,
one per row and mode, are what take the time).

Usage: ``python benchmarks/memory.py [--smoke] [--out results/memory.json]``
"""

import argparse
import json
import pathlib
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp

import eventsnn as es


def step_memory(net, batch, labels) -> dict:
    def loss(net, batch):
        out = jax.vmap(net)(batch)
        return jnp.mean(jax.vmap(es.losses.first_spike_cross_entropy)(out.first, labels))

    params, static = eqx.partition(net, eqx.is_array)

    def step(params, batch):
        return eqx.filter_value_and_grad(
            lambda p, b: loss(eqx.combine(p, static), b))(params, batch)

    compiled = jax.jit(step).lower(params, batch).compile()
    analysis = compiled.memory_analysis()
    mib = 1 / 2**20
    return {
        "temp_MiB": analysis.temp_size_in_bytes * mib,
        "total_MiB": (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
                      + analysis.output_size_in_bytes) * mib,
    }


def inputs(key, batch, channels, k, t_max):
    times = jax.random.uniform(key, (batch, channels, k), minval=0.0, maxval=0.6 * t_max)
    return jnp.sort(times, axis=-1)


def sizes(hidden):
    """Layer sizes: 5-H-3, or 5-3 (one layer) for ``hidden=None`` (the smoke size)."""
    return [3] if hidden is None else [hidden, 3]


def versus_events(ks, hidden, batch, modes=("eventprop", "autodiff", "loop-free")):
    rows = []
    for k in ks:
        x = inputs(jax.random.key(1), batch, 5, k, 30.0)
        labels = jnp.zeros((batch,), jnp.int32)
        row = {"K": k, "events": 5 * k}
        # The two modes through the event loop, and the default loop-free first-spike
        # path (`_first_spike.py`), which both modes share.
        for mode in modes:
            solver = None if mode == "loop-free" else es.ExactSegments(parallel=False)
            net = es.FeedForward(5, sizes(hidden), es.LIF(), jax.random.key(0),
                                 t_max=30.0,
                                 gradient="eventprop" if mode == "loop-free" else mode,
                                 solver=solver)
            row[mode] = step_memory(net, x, labels)["total_MiB"]
        rows.append(row)
    return rows


def versus_steps(budgets, hidden, batch):
    rows = []
    x = inputs(jax.random.key(1), batch, 5, 1, 30.0)
    labels = jnp.zeros((batch,), jnp.int32)
    for max_steps in budgets:
        row = {"max_steps": max_steps}
        for mode in ("eventprop", "autodiff"):
            net = es.FeedForward(5, sizes(hidden), es.QIF(), jax.random.key(0),
                                 t_max=30.0,
                                 gradient=mode,
                                 solver=es.DiffraxSegments(max_steps=max_steps))
            row[mode] = step_memory(net, x, labels)["total_MiB"]
        rows.append(row)
    return rows


def table(rows, key):
    modes = [m for m in ("eventprop", "autodiff", "loop-free") if m in rows[0]]
    lines = [f"{key:>10} | " + " | ".join(f"{m + ' (MiB)':>15}" for m in modes)]
    for r in rows:
        lines.append(f"{r[key]:>10} | " + " | ".join(f"{r[m]:>15.2f}" for m in modes))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--out", default="benchmarks/results/memory.json")
    args = parser.parse_args(argv)
    if args.smoke:
        # One layer, and no reverse mode through the event loop: the smoke run is
        # compile-bound (one gradient program per row and mode).
        # Budgets from 256 up: below that the replay's re-solve keeps fewer states
        # (diffrax sizes its checkpoint buffers by a small budget; measured at
        # this size: 0.021 / 0.034 / 0.035 MiB at 16 / 64 / 256 and up).
        ks, budgets, hidden, batch = [1, 4], [256, 1024], None, 2
        modes = ("eventprop", "loop-free")
    else:
        ks, budgets, hidden, batch = [1, 4, 16, 64], [64, 256, 1024, 4096], 120, 32
        modes = ("eventprop", "autodiff", "loop-free")
    start = time.perf_counter()
    events = versus_events(ks, hidden, batch, modes)
    steps = versus_steps(budgets, hidden, batch)
    result = {
        "machine": platform.platform(), "processor": platform.processor(),
        "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
        "eventsnn": es.__version__, "date": time.strftime("%Y-%m-%d"),
        "hidden": hidden, "batch": batch, "versus_events": events,
        "versus_steps": steps, "seconds": time.perf_counter() - start,
    }
    shape = "-".join(str(n) for n in [5, *sizes(hidden)])
    print(f"gradient-step memory, {shape}, batch {batch}, {jax.devices()[0]}")
    print("\nLIF (exact flow), K input spikes per channel:")
    print(table(events, "K"))
    print("\nQIF (Tsit5), per-segment solver step budget:")
    print(table(steps, "max_steps"))
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {path}")
    return result


if __name__ == "__main__":
    main()
