"""Render the Markdown tables of benchmarks/README.md from benchmarks/results/*.json.

Usage: ``python benchmarks/report.py [results-dir]`` (prints Markdown).
"""

from __future__ import annotations

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


def fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def md(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def machine_line(result) -> str:
    m = result["machine"]
    v = m["versions"]
    peers = ", ".join(f"{p} {v[p]}" for p in ("eventax", "jaxsnn") if v.get(p))
    load = m.get("load_average")
    load = f"; load average at start {load[0]:.1f}" if load else ""
    return (
        f"*{m['date']}, {m['cpu']} ({m['cpu_count']} cores), {m['device']}; "
        f"eventsnn {v['eventsnn']} ({m.get('eventsnn_commit')}), jax {v['jax']}, "
        f"{peers or 'no peers'}{load}; total {result.get('seconds', 0) / 60:.1f} min.*"
    )


def cached(row) -> str:
    """The compile time served by JAX's persistent cache (a second run of the same
    program), or why there is none."""
    if "cached_compile_s" not in row:
        return "(not measured)"
    if row["cached_compile_s"] is None:
        return "not cacheable"
    return fmt_s(row["cached_compile_s"])


def grad_step(result) -> str:
    rows = [
        [
            r["neuron"].upper(),
            r["batch"],
            r["engine"],
            fmt_s(r["median_s"]),
            f"{r['ratio_to_eventsnn']:.2f}×",
            fmt_s(r["compile_s"]),
            cached(r),
            f"{r['grad_rel_diff']:.1e}",
        ]
        for r in result["rows"]
    ]
    return md(
        [
            "model",
            "batch",
            "engine",
            "grad step (median)",
            "time / eventsnn",
            "compile",
            "compile, 2nd run",
            "grad rel. diff",
        ],
        rows,
    )


def sweep(result, name: str, value: str) -> str:
    key = "hidden" if name == "hidden" else "batch"
    rows = [r for r in result["rows"] if name in r["sweeps"]]
    engines = list(dict.fromkeys(r["engine"] for r in result["rows"]))
    body = []
    for size in sorted({r[key] for r in rows}):
        line = [size]
        for engine in engines:
            match = [r for r in rows if r[key] == size and r["engine"] == engine]
            if not match or "skipped" in match[0]:
                line.append("(not run: size cap)")
                continue
            r = match[0]
            cell = (
                fmt_s(r["median_s"])
                if value == "time"
                else f"{r['samples_per_s']:,.0f}/s"
            )
            if r["library"] != "eventsnn":
                cell += f" ({r['ratio_to_eventsnn']:.2f}×)"
            line.append(cell + f" [{fmt_s(r['compile_s'])}]")
        body.append(line)
    return md([key, *engines], body)


def crosscheck(result) -> str:
    body = []
    for c in result["cases"]:
        for engine, v in c["versus"].items():
            g = c["gradients"].get(engine)
            body.append(
                [
                    c["case"],
                    engine,
                    f"{v['hidden']['max_abs_diff_ms']:.1e}",
                    f"{v['hidden']['fire_mismatch']}/{v['hidden']['neurons']}",
                    f"{v['output']['max_abs_diff_ms']:.1e}",
                    f"{v['output']['fire_mismatch']}/{v['output']['neurons']}",
                    "–" if g is None else f"{g['grad_rel_diff']:.1e}",
                ]
            )
    return md(
        [
            "case",
            "engine (vs eventsnn)",
            "hidden max |Δt| (ms)",
            "hidden fire mismatch",
            "output max |Δt| (ms)",
            "output fire mismatch",
            "grad rel. diff",
        ],
        body,
    )


def main(argv=None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    folder = pathlib.Path(argv[0]) if argv else HERE / "results"
    parts = []

    def load(name):
        path = folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    if r := load("grad_step"):
        parts += [
            "### Gradient step (`grad_step.py`)",
            machine_line(r),
            "",
            grad_step(r),
        ]
    if r := load("scaling"):
        for name in ("hidden", "batch"):
            parts += [
                "",
                f"### Gradient step vs {name} size (`scaling.py`): median "
                "[compile], peers as time / eventsnn",
                machine_line(r),
                "",
                sweep(r, name, "time"),
            ]
    if r := load("forward"):
        for name in ("hidden", "batch"):
            parts += [
                "",
                f"### Forward throughput vs {name} size (`forward.py`): "
                "samples/s [compile], peers as time / eventsnn",
                machine_line(r),
                "",
                sweep(r, name, "throughput"),
            ]
    if r := load("crosscheck"):
        parts += [
            "",
            "### Agreement in float64 (`crosscheck.py`)",
            machine_line(r),
            "",
            crosscheck(r),
        ]
    text = "\n".join(parts)
    print(text)
    return text


if __name__ == "__main__":
    main()
