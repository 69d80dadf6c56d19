"""Spike-time and gradient agreement between eventsnn and the peers, in float64.

Question: do the three libraries compute the same thing on the benchmark workload, so
that the timings compare equal work? On shared weights and inputs (5-120-3, 32
samples), every engine's hidden and output first-spike times are compared with
eventsnn's (EventProp, first-spike mode), and its loss and weight gradient on 8 samples
(``grad_rel_diff`` = |g - g_eventsnn| / |g_eventsnn|). Float64 throughout, so that the
differences are the methods', not float32 rounding.

Cases:

- LIF, one spike per neuron: eventsnn's default (loop-free) path against its autodiff
  through the event loop; jaxsnn with the Newton solver used in
  the benchmarks, and with its default closed-form solver (which assumes tau_mem /
  tau_syn in {1, 2}: shows what happens at 4); eventax with its defaults (Euler dt =
  0.01 ms, Newton root tolerance 1e-2) and with dt = 1e-3 ms and tolerance 1e-10 (its
  error should shrink ~10x if the only difference is Euler's discretisation);
- LIF, several spikes per neuron (reset to 0): eventsnn ``max_spikes=16`` vs eventax
  with reset 0 (spike times only);
- EIF (every layer), one spike per neuron: eventsnn (Tsit5) vs eventax (Euler, default
  and dt = 1e-3 ms).

Usage: ``python benchmarks/crosscheck.py [--smoke] [--device cpu|gpu] [--no-peers]``
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _peers as P  # noqa: E402

NAME = "crosscheck"


def case(title, w, make_engines, n_grad, dev, grads_for=None) -> dict:
    print(f"\n{title} (5-{w.hidden}-3, {w.batch} samples, {w.dtype}):", flush=True)
    weights = C.make_weights(w)
    x, y = C.make_data(w)
    engines = make_engines(w, weights)
    start = time.perf_counter()
    check = C.cross_check(engines, x)
    print(C.format_check(check))
    grads = {}
    if n_grad:
        ref = None
        for e in engines:
            if grads_for is not None and e.name not in grads_for:
                continue
            args = C.put((e.params, e.inputs(x[:n_grad]), jnp.asarray(y[:n_grad])), dev)
            out = jax.jit(e.loss_grad)(*args)
            ref = ref or out
            grads[e.name] = C.compare_grads(ref, out)
            print(
                f"  gradient {e.name:<32} loss {float(out[0]):.6f}  grad rel. diff "
                f"{grads[e.name]['grad_rel_diff']:.1e}",
                flush=True,
            )
    return {
        "case": title,
        "workload": w.describe(),
        **check,
        "gradients": grads,
        "gradient_samples": n_grad,
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> dict:
    args = C.parser(__doc__.splitlines()[0]).parse_args(argv)
    dev = C.device(args.device)
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        result = _run(args, dev)
    finally:
        jax.config.update("jax_enable_x64", x64)
    return result


def _run(args, dev) -> dict:
    start = time.perf_counter()
    base = C.Workload(
        hidden=8 if args.smoke else 120, batch=4 if args.smoke else 32, dtype="float64"
    )
    n_grad = 2 if args.smoke else 8
    status = (
        P.available()
        if args.peers
        else {"eventax": "--no-peers", "jaxsnn": "--no-peers"}
    )
    for peer, reason in status.items():
        if reason is not None:
            print(f"note: {peer} skipped: {reason}")
    have = {peer for peer, reason in status.items() if reason is None}

    def lif_first(w, weights):
        engines = [
            C.eventsnn_engine(w, weights),
            C.eventsnn_engine(w, weights, gradient="autodiff", loop=True),
        ]
        if "jaxsnn" in have:
            engines += [
                P.jaxsnn_engine(w, weights),
                P.jaxsnn_engine(w, weights, solver="closed-form"),
            ]
        if "eventax" in have:
            engines += [
                P.eventax_engine(w, weights),
                P.eventax_engine(
                    w,
                    weights,
                    solver_stepsize=1e-3,
                    root_tol=1e-10,
                    name="eventax (Euler dt=0.001, tol 1e-10)",
                ),
            ]
        return engines

    def lif_multi(w, weights):
        engines = [C.eventsnn_engine(w, weights, max_spikes=C.MULTI_SPIKES)]
        if "eventax" in have:
            engines.append(
                P.eventax_engine(
                    w, weights, one_spike=False, name="eventax (Euler dt=0.01, reset 0)"
                )
            )
        return engines

    def eif_first(w, weights):
        engine = C.eventsnn_engine(w, weights)
        if C.batch_ok(engine, C.make_data(w)[0]):  # vmap wrong on the diffrax path
            engine = C.eventsnn_engine(w, weights, batching="map")
        engines = [engine]
        if "eventax" in have:
            engines += [
                P.eventax_engine(w, weights),
                P.eventax_engine(
                    w, weights, solver_stepsize=1e-3, name="eventax (Euler dt=0.001)"
                ),
            ]
        return engines

    cases = []
    with jax.default_device(dev):
        cases.append(
            case(
                "LIF, one spike per neuron",
                base,
                lif_first,
                n_grad,
                dev,
                grads_for=None,
            )
        )
        cases.append(
            case("LIF, several spikes per neuron (reset 0)", base, lif_multi, 0, dev)
        )
        if not args.smoke:
            eif = dataclasses.replace(base, neuron="eif")
            cases.append(
                case(
                    "EIF, one spike per neuron",
                    eif,
                    eif_first,
                    n_grad,
                    dev,
                    grads_for=None,
                )
            )
    result = {
        "benchmark": NAME,
        "question": __doc__.splitlines()[0],
        "smoke": args.smoke,
        "machine": C.machine_info(dev),
        "peers": status,
        "cases": cases,
        "seconds": time.perf_counter() - start,
    }
    print("\n" + summary(cases))
    C.write_json(NAME, result, args.out)
    return result


def summary(cases) -> str:
    body = []
    for c in cases:
        for name, v in c["versus"].items():
            g = c["gradients"].get(name)
            body.append(
                [
                    c["case"],
                    c["reference"],
                    name,
                    f"{v['hidden']['max_abs_diff_ms']:.1e}",
                    f"{v['hidden']['fire_mismatch']}/{v['hidden']['neurons']}",
                    f"{v['output']['max_abs_diff_ms']:.1e}",
                    f"{v['output']['fire_mismatch']}/{v['output']['neurons']}",
                    "-" if g is None else f"{g['grad_rel_diff']:.1e}",
                ]
            )
    return C.table(
        [
            "case",
            "reference",
            "engine",
            "hidden max|dt| ms",
            "hidden fire mismatch",
            "output max|dt| ms",
            "output fire mismatch",
            "grad rel. diff",
        ],
        body,
    )


if __name__ == "__main__":
    main()
