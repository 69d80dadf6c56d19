"""Hidden-size and batch-size sweeps, shared by scaling.py (gradient steps) and
forward.py (forward simulation only)."""

from __future__ import annotations

import time

import _common as C
import _peers as P
import jax
import jax.numpy as jnp

HIDDEN = [30, 60, 120, 250, 500, 1000]  # at batch 32
BATCH = [1, 8, 32, 256, 1024, 4096]  # at hidden 120
SMOKE_HIDDEN = [4, 8]  # at batch 2
SMOKE_BATCH = [1, 2]  # at hidden 8


def configs(smoke: bool) -> list[tuple[int, int, list[str]]]:
    """Unique (hidden, batch, sweeps it belongs to), smallest work first."""
    hidden, batch = (SMOKE_HIDDEN, SMOKE_BATCH) if smoke else (HIDDEN, BATCH)
    h0, b0 = (8, 2) if smoke else (120, 32)
    found: dict[tuple[int, int], list[str]] = {}
    for h in hidden:
        found.setdefault((h, b0), []).append("hidden")
    for b in batch:
        found.setdefault((h0, b), []).append("batch")
    return [
        (h, b, s)
        for (h, b), s in sorted(found.items(), key=lambda i: i[0][0] * i[0][1])
    ]


def add_cap_args(p, eventax: tuple[int, int], jaxsnn: tuple[int, int]):
    p.add_argument("--eventax-max-hidden", type=int, default=eventax[0])
    p.add_argument("--eventax-max-batch", type=int, default=eventax[1])
    p.add_argument("--jaxsnn-max-hidden", type=int, default=jaxsnn[0])
    p.add_argument("--jaxsnn-max-batch", type=int, default=jaxsnn[1])


def _capped(args, peer: str, w: C.Workload) -> bool:
    return w.hidden > getattr(args, f"{peer}_max_hidden") or w.batch > getattr(
        args, f"{peer}_max_batch"
    )


def sweep(args, dev, kind: str) -> dict:
    """Run every configuration; ``kind`` is ``"grad"`` or ``"forward"``."""
    rows, skipped = [], {}
    available = P.available() if args.peers else {}
    for peer, reason in available.items():
        if reason is not None:
            skipped[peer] = f"not importable ({reason})"
            print(f"note: {peer} skipped: {skipped[peer]}")
    if not args.peers:
        skipped = {"eventax": "--no-peers", "jaxsnn": "--no-peers"}
    start = time.perf_counter()
    for hidden, batch, sweeps in configs(args.smoke):
        w = C.Workload(hidden=hidden, batch=batch)
        weights = C.make_weights(w)
        x, y = C.make_data(w)
        engines = [C.eventsnn_engine(w, weights)]
        for peer in ("jaxsnn", "eventax"):
            if peer not in available or available[peer] is not None:
                continue
            if _capped(args, peer, w):
                rows.append(
                    {
                        "engine": P.LABELS[peer],
                        "library": peer,
                        "hidden": hidden,
                        "batch": batch,
                        "sweeps": sweeps,
                        "skipped": "above this script's size cap for " + peer,
                    }
                )
                continue
            make = P.jaxsnn_engine if peer == "jaxsnn" else P.eventax_engine
            engines.append(make(w, weights))
        print(f"\n5-{hidden}-3, batch {batch} ({' and '.join(sweeps)} sweep):")
        ref = None
        for engine in engines:
            if kind == "grad":
                fn, args_ = (
                    engine.loss_grad,
                    (engine.params, engine.inputs(x), jnp.asarray(y)),
                )
            else:
                fn, args_ = engine.forward, (engine.params, engine.inputs(x))
            stats, out = C.measure(fn, C.put(args_, dev), args.repeats)
            row = {
                "engine": engine.name,
                "library": engine.library,
                "hidden": hidden,
                "batch": batch,
                "sweeps": sweeps,
                "batching": engine.batching,
                **stats,
                "samples_per_s": batch / stats["median_s"],
            }
            if ref is None:
                ref = (row, out)
            row["ratio_to_eventsnn"] = stats["median_s"] / ref[0]["median_s"]
            if kind == "grad":
                row.update(C.compare_grads(ref[1], out))
            else:
                row["output_check"] = C.compare_times(ref[1], out)
            rows.append(row)
            extra = (
                f"grad rel. diff {row['grad_rel_diff']:.1e}"
                if kind == "grad"
                else f"output max|dt| {row['output_check']['max_abs_diff_ms']:.1e} ms, "
                f"{row['output_check']['fire_mismatch']} fire mismatches"
            )
            if engine.batching != "vmap":
                extra += f"  [{engine.batching}]"
            print(
                f"  {engine.name:<32} compile {C.fmt_s(stats['compile_s']):>9}  "
                f"median {C.fmt_s(stats['median_s']):>9}  "
                f"{row['samples_per_s']:>10.0f} samples/s  {extra}",
                flush=True,
            )
    return {
        "rows": rows,
        "peers_skipped": skipped,
        "sweep_seconds": time.perf_counter() - start,
    }


def summary(rows: list[dict], sweep_name: str, value: str) -> str:
    """One line per size: eventsnn, then each peer with its ratio to eventsnn."""
    key = "hidden" if sweep_name == "hidden" else "batch"
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    sizes = sorted({r[key] for r in rows if sweep_name in r["sweeps"]})
    body = []
    for size in sizes:
        line = [size]
        for name in engines:
            match = [
                r
                for r in rows
                if sweep_name in r["sweeps"]
                and r[key] == size
                and r["engine"] == name
                and "skipped" not in r
            ]
            if not match:
                line.append("(capped)")
                continue
            r = match[0]
            shown = (
                C.fmt_s(r["median_s"])
                if value == "time"
                else f"{r['samples_per_s']:.0f}/s"
            )
            if r["library"] != "eventsnn":
                shown += f" ({r['ratio_to_eventsnn']:.2f}x)"
            line.append(shown + f" [{C.fmt_s(r['compile_s'])}]")
        body.append(line)
    return C.table([key, *engines], body)


def main(name: str, doc: str, kind: str, caps: dict, argv=None) -> dict:
    p = C.parser(doc.splitlines()[0])
    add_cap_args(p, caps["eventax"], caps["jaxsnn"])
    args = p.parse_args(argv)
    dev = C.device(args.device)
    start = time.perf_counter()
    result = {
        "benchmark": name,
        "question": doc.splitlines()[0],
        "smoke": args.smoke,
        "machine": C.machine_info(dev),
        "workload": C.Workload().describe(),
        "caps": {
            k: getattr(args, k) for k in vars(args) if k.endswith(("hidden", "batch"))
        },
    }
    with jax.default_device(dev):
        result.update(sweep(args, dev, kind))
    result["seconds"] = time.perf_counter() - start
    value = "time" if kind == "grad" else "throughput"
    for sweep_name in ("hidden", "batch"):
        print(
            f"\n{sweep_name} sweep ({'grad step' if kind == 'grad' else 'samples/s'}, "
            "ratio to eventsnn, [compile]):"
        )
        print(summary(result["rows"], sweep_name, value))
    C.write_json(name, result, args.out)
    return result
