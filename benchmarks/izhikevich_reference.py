"""Who is right where eventsnn and eventax disagree on the Izhikevich workload?

The grad-step benchmark's Izhikevich rows (``grad_step.py --neurons izhikevich``)
cross-check hidden spike times between the libraries and find differences of up to
~1 ms. This script settles them against an independent float64 reference: for chosen
hidden neurons of the benchmark's batch, ``scipy.integrate.solve_ivp`` (DOP853,
rtol = atol = 1e-12, a terminal event at v = 30 mV) integrates that neuron alone with
its own input spikes applied as jumps of the synaptic current between solves.

Prints, for the neurons where the libraries disagree most (and where one of them
fires and the other does not), the three times; then the largest and median error of
each library on a random sample of hidden spikes.

Usage: ``python benchmarks/izhikevich_reference.py [--batch 32] [--sample 200]``
(needs eventax: run it with ``benchmarks/.venv-peers/bin/python``).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _peers as P  # noqa: E402

A, B, V_PEAK, TAU_SYN = 0.02, 0.2, 30.0, 5.0  # the benchmark's regular-spiking cell


def reference_time(in_times, w_in, t_max) -> tuple[float, float]:
    """First spike time of one neuron (inf if none before ``t_max``) and the highest
    membrane potential reached before it."""

    def field(t, s):
        v, u, i = s
        return [0.04 * v * v + 5 * v + 140 - u + i, A * (B * v - u), -i / TAU_SYN]

    def spike(t, s):
        return s[0] - V_PEAK

    spike.terminal, spike.direction = True, 1
    state, t0, v_max = np.array([-70.0, -14.0, 0.0]), 0.0, -np.inf
    for k in list(np.argsort(in_times)) + [None]:
        t1 = t_max if k is None else min(in_times[k], t_max)
        if t1 > t0:
            sol = solve_ivp(field, (t0, t1), state, method="DOP853", rtol=1e-12,
                            atol=1e-12, events=spike)
            v_max = max(v_max, float(sol.y[0].max()))
            if sol.t_events[0].size:
                return float(sol.t_events[0][0]), V_PEAK
            state, t0 = sol.y[:, -1], t1
        if k is not None and in_times[k] < t_max:
            state = state + np.array([0.0, 0.0, w_in[k]])
    return np.inf, v_max


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--sample", type=int, default=200)
    args = p.parse_args(argv)
    w = C.Workload(neuron="izhikevich", batch=args.batch)
    weights = C.make_weights(w)
    x, _ = C.make_data(w)
    engines = [C.eventsnn_engine(w, weights), P.eventax_engine(w, weights)]
    hidden = [np.asarray(jax.jit(e.spikes)(e.params, e.inputs(x))[0]).reshape(
        args.batch, -1) for e in engines]
    ours, theirs = hidden

    def ref(b, j):
        return reference_time(x[b, :, 0], weights[0][:, j], w.t_max)

    print(f"Izhikevich 5-{w.hidden}-3, batch {args.batch}, float32 engines vs a "
          f"float64 reference (scipy DOP853, tol 1e-12)")
    for b, j in np.argwhere(np.isfinite(ours) != np.isfinite(theirs)):
        t, v_max = ref(b, j)
        print(f"  fires in one library only: sample {b} neuron {j}: eventsnn "
              f"{ours[b, j]:.5f}, eventax {theirs[b, j]:.5f}, reference {t:.5f} "
              f"(v max {v_max:.3f} mV)")
    both = np.isfinite(ours) & np.isfinite(theirs)
    gap = np.abs(np.where(both, ours - theirs, 0.0))
    for idx in np.argsort(gap.ravel())[::-1][:5]:
        b, j = divmod(int(idx), ours.shape[1])
        print(f"  largest disagreement: sample {b} neuron {j}: eventsnn "
              f"{ours[b, j]:.5f}, eventax {theirs[b, j]:.5f}, reference "
              f"{ref(b, j)[0]:.5f}")
    rng = np.random.default_rng(0)
    fired = np.argwhere(both)
    pick = fired[rng.choice(len(fired), min(args.sample, len(fired)), replace=False)]
    errors = np.array([[abs(h[b, j] - ref(b, j)[0]) for h in hidden] for b, j in pick])
    for name, col in zip(("eventsnn", "eventax"), errors.T):
        print(f"  {len(pick)} random hidden spikes, {name}: max |t - reference| "
              f"{col.max():.2e} ms, median {np.median(col):.2e} ms")


if __name__ == "__main__":
    main()
