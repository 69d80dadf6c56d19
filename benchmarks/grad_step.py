"""Time of one gradient step (steady state) and its compile time, eventsnn vs peers.

Question: how long does one training step (forward + gradient of the first-spike
cross-entropy with respect to all weights) take on a 5-120-3 LIF network (tau_mem
20 ms, tau_syn 5 ms, float32) at batch 32 and 256, in eventsnn and in eventax 0.1.0 and
jaxsnn 0.3.0 on identical weights, inputs and labels?

Rows (per batch size):

- eventsnn first-spike mode (``max_spikes=1``), default settings: LIF layers take the
  loop-free path (``_first_spike.py``); the reference every ratio is taken against;
- the same through the event loop (``es.ExactSegments(parallel=False)``), with
  ``gradient="eventprop"`` and with ``gradient="autodiff"``: the path the first row
  replaced, timed in the same run;
- eventsnn EventProp, multi-spike mode (``max_spikes=16``, reset to 0, so neurons fire
  again: more events than the first-spike rows, not the same work), with the
  superposition replay (`_superpose.py`, the default) and with the event-by-event
  replay it replaced (``es.ExactSegments(parallel=False)``);
- jaxsnn (EventProp; its Newton spike-time solver, see ``_peers.py``);
- eventax (its defaults: Euler dt = 0.01 ms, reverse mode through diffrax);
- non-linear models on the general (diffrax) path, every layer the same model: EIF,
  QIF (theta form) and Izhikevich (``--neurons eif,qif,izhikevich``): eventsnn
  (Tsit5, EventProp, first-spike path ``_first_spike_ode.py``; for EIF also the
  event loop ``es.DiffraxSegments(parallel=False)`` it replaced) vs eventax (Euler)
  on the same model (parameters matched in ``_common._es_neuron`` and
  ``_peers.eventax_engine``). Ratio against the eventsnn first-spike row.

Compile time is reported twice: a first compile (tracing, lowering, XLA), and what a
second run of the same program pays with JAX's persistent compilation cache on (the
script points it at a temporary folder: tracing and lowering again, then a load from
disk). Programs with host callbacks are not stored by JAX ("not cacheable").

Equal work is checked in the same run: every library's loss and gradient on the timed
batch are compared with the reference row (``loss_abs_diff``, ``grad_rel_diff``), and
the hidden and output first-spike times on the first 32 samples (``cross_check``).

Usage: ``python benchmarks/grad_step.py [--smoke] [--device cpu|gpu] [--no-peers]
[--neurons lif,eif,qif,izhikevich] [--batches 32,256]``
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _peers as P  # noqa: E402
from report import cached  # noqa: E402

NAME = "grad_step"


def engines_for(w: C.Workload, weights, args, smoke: bool):
    """(engines, reference name, skipped-peer notes) for one workload."""
    if w.neuron == "lif":
        engines = [
            C.eventsnn_engine(w, weights),
            C.eventsnn_engine(w, weights, loop=True),
            C.eventsnn_engine(w, weights, gradient="autodiff", loop=True),
            C.eventsnn_engine(w, weights, max_spikes=C.MULTI_SPIKES),
            C.eventsnn_engine(w, weights, max_spikes=C.MULTI_SPIKES, loop=True),
        ]
    else:
        # A fallback kept from an earlier version, in which vmap over a diffrax-path
        # layer reported false failures: batch with lax.map if vmap reports any.
        engine = C.eventsnn_engine(w, weights)
        x, _ = C.make_data(w)
        if C.batch_ok(engine, x[: min(len(x), 8)]):
            engine = C.eventsnn_engine(w, weights, batching="map")
        # The event loop that the first-spike path replaced, timed in the same run
        # (EIF only: the other models' rows are there to compare with eventax).
        engines = [engine]
        if w.neuron == "eif":
            engines.append(C.eventsnn_engine(w, weights, loop=True))
    peers, skipped = P.peer_engines(w, weights, args.peers)
    return engines + peers, engines[0].name, skipped


def run(w: C.Workload, args, smoke: bool, dev) -> tuple[list[dict], dict, dict]:
    weights = C.make_weights(w)
    x, y = C.make_data(w)
    engines, ref_name, skipped = engines_for(w, weights, args, smoke)
    rows, outputs = [], {}
    for engine in engines:
        inputs = C.put((engine.params, engine.inputs(x), jnp.asarray(y)), dev)
        stats, out = C.measure(engine.loss_grad, inputs, args.repeats,
                               cached=not smoke or engine.name == ref_name)
        outputs[engine.name] = out
        rows.append(
            {
                "engine": engine.name,
                "library": engine.library,
                "neuron": w.neuron,
                "hidden": w.hidden,
                "batch": w.batch,
                "batching": engine.batching,
                "loss": float(out[0]),
                **stats,
            }
        )
        print(
            f"  {engine.name:<40} compile {C.fmt_s(stats['compile_s']):>9} "
            f"(2nd run {cached(stats)})  step {C.fmt_s(stats['median_s']):>9}",
            flush=True,
        )
    ref = next(r for r in rows if r["engine"] == ref_name)
    for row in rows:
        row["ratio_to_eventsnn"] = row["median_s"] / ref["median_s"]
        row["compile_ratio_to_eventsnn"] = row["compile_s"] / ref["compile_s"]
        row["reference"] = ref_name
        row.update(C.compare_grads(outputs[ref_name], outputs[row["engine"]]))
    n_check = min(w.batch, 32)
    check = C.cross_check(engines, x[:n_check])
    print(C.format_check(check))
    return rows, check, {"skipped": skipped}


def main(argv=None) -> dict:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--neurons", default="lif,eif,qif,izhikevich",
                   help="comma-separated workloads to run (default: all four)")
    p.add_argument("--batches", default="32,256",
                   help="comma-separated batch sizes (default: 32,256)")
    args = p.parse_args(argv)
    C.use_compile_cache()  # before anything compiles: times a second run's compile
    dev = C.device(args.device)
    if args.smoke:
        configs = [C.Workload(hidden=8, batch=2)]
    else:
        configs = [
            C.Workload(hidden=120, batch=int(b), neuron=n)
            for n in args.neurons.split(",")
            for b in args.batches.split(",")
        ]
    start = time.perf_counter()
    result = {
        "benchmark": NAME,
        "question": __doc__.splitlines()[0],
        "smoke": args.smoke,
        "machine": C.machine_info(dev),
        "workload": C.Workload().describe(),
        "rows": [],
        "cross_checks": [],
        "notes": [],
    }
    with jax.default_device(dev):
        for w in configs:
            print(f"\n{w.neuron.upper()} 5-{w.hidden}-3, batch {w.batch}, {dev}:")
            rows, check, notes = run(w, args, args.smoke, dev)
            result["rows"] += rows
            result["cross_checks"].append(
                {"neuron": w.neuron, "batch": w.batch, **check}
            )
            result["notes"].append({"neuron": w.neuron, "batch": w.batch, **notes})
    result["seconds"] = time.perf_counter() - start
    print("\n" + summary(result["rows"]))
    C.write_json(NAME, result, args.out)
    return result


def summary(rows: list[dict]) -> str:
    body = [
        [
            r["neuron"].upper(),
            r["batch"],
            r["engine"],
            C.fmt_s(r["median_s"]),
            f"{r['ratio_to_eventsnn']:.2f}x",
            C.fmt_s(r["compile_s"]),
            cached(r),
            f"{r['grad_rel_diff']:.1e}",
        ]
        for r in rows
    ]
    return C.table(
        [
            "model",
            "batch",
            "engine",
            "grad step",
            "vs eventsnn",
            "compile",
            "compile, 2nd run",
            "grad rel. diff",
        ],
        body,
    )


if __name__ == "__main__":
    main()
