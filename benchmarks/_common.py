"""Shared pieces of the benchmark scripts: the workload, the engines, timing, JSON.

The workload (the issue's question): a 5-H-3 network, LIF neurons with
tau_mem = 20 ms, tau_syn = 5 ms, threshold 1, window t_max = 30 ms, one input spike per
channel drawn uniformly in [0, 15) ms, first-spike cross-entropy loss (tau = 5 ms) on
the output first-spike times, float32. Every library gets the *same* weights, inputs
and labels, and the same loss function (eventsnn's, applied to each library's output
first-spike times); only the weights are differentiated.

An *engine* is one library configured for the workload. It exposes pure functions of
arrays, so that every library is timed the same way (`measure`):

- ``loss_grad(params, x, y) -> (loss, grad_weights)``: one gradient step;
- ``forward(params, x) -> first``: output first-spike times ``(batch, n_out)``;
- ``spikes(params, x) -> (hidden_first, out_first[, codes])``: for the spike-time
  cross-check (eventsnn also returns each layer's outcome code, 0 = successful).

The peers (eventax, jaxsnn) are in ``_peers.py``; they are optional.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eventsnn as es

HERE = pathlib.Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
EIF_RESET = -1000.0
# Output-layer weight scale per model (measured, batch 32 of the workload's inputs:
# 70-86 % of the output neurons fire; QIF needs more, its outputs fire late).
OUT_INIT_MEAN = {"lif": 3.0, "eif": 3.0, "qif": 12.0, "izhikevich": 4.0}
MULTI_SPIKES = 16  # spike budget of the multi-spike rows (outputs fire up to ~15 times)


# --------------------------------------------------------------------------- workload
@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark configuration (all libraries run exactly this)."""

    hidden: int = 120
    batch: int = 32
    in_size: int = 5
    n_out: int = 3
    neuron: str = "lif"  # "lif", "eif", "qif" or "izhikevich" (every layer)
    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    t_max: float = 30.0
    t_in: float = 15.0  # input spike times ~ U[0, t_in)
    loss_tau: float = 5.0
    # Output-layer weight scale, so that most output neurons fire; None: the model's
    # entry in OUT_INIT_MEAN.
    out_init_mean: float | None = None
    seed: int = 0
    dtype: str = "float32"

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def _es_neuron(w: Workload):
    if w.neuron == "lif":
        return es.LIF(tau_mem=w.tau_mem, tau_syn=w.tau_syn, threshold=w.threshold)
    if w.neuron == "eif":
        # eventsnn's EIF defaults (v_rest 0, v_T 1, delta_T 0.2, v_peak 2) with the
        # reset the peers use for one spike per neuron (see README: with reset 0 a
        # fired, still-driven EIF neuron diverges again and float32 steps fail).
        return es.EIF(tau_mem=w.tau_mem, tau_syn=w.tau_syn, v_reset=EIF_RESET)
    if w.neuron == "qif":
        # eventax's QIF (phase form) is tau dV/dt = V^2 - V + c + i, spike at V = +inf;
        # with v = V - 1/2 that is eventsnn's tau dv/dt = v^2 + b + i with b = c - 1/4.
        # eventax's bias c = 0 gives b = -1/4, resting at v = -1/2: eventax's initial
        # state (phase 1/2, V = 0), so both start at rest.
        return es.QIF(tau_mem=w.tau_mem, tau_syn=w.tau_syn, bias=-0.25)
    if w.neuron == "izhikevich":
        # Regular spiking (a 0.02, b 0.2), spike at 30 mV, starting at rest (-70 mV,
        # u = -14); tau_mem is not a parameter of this model. In first-spike mode the
        # reset (c, d) is never applied.
        return es.Izhikevich(tau_syn=w.tau_syn)
    raise ValueError(f"unknown neuron {w.neuron!r}")


def make_weights(w: Workload) -> list[np.ndarray]:
    """The shared weights, as float64 numpy arrays (row = presynaptic).

    eventsnn's initialisation (scaled to the model's firing weight): the hidden layer
    with its default scale, the output layer with ``out_init_mean`` so that most output
    neurons fire (the default leaves most of them silent at this size, which would make
    a first-spike loss benchmark mostly measure silent neurons).
    """
    key = jax.random.key(w.seed)
    neuron = _es_neuron(w)
    hidden = es.FeedForward(w.in_size, [w.hidden, w.n_out], neuron, key, t_max=w.t_max)
    out = es.FeedForward(
        w.in_size,
        [w.hidden, w.n_out],
        neuron,
        key,
        t_max=w.t_max,
        init_mean=w.out_init_mean or OUT_INIT_MEAN[w.neuron],
    )
    return [
        np.asarray(hidden.weights[0], np.float64),
        np.asarray(out.weights[1], np.float64),
    ]


def make_data(w: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Input spike times ``(batch, in_size, 1)`` and labels ``(batch,)``."""
    rng = np.random.default_rng(w.seed + 1)
    x = rng.uniform(0.0, w.t_in, size=(w.batch, w.in_size, 1))
    y = rng.integers(0, w.n_out, size=(w.batch,))
    return x, y.astype(np.int32)


def loss_from_first(first, labels, tau):
    """Mean first-spike cross-entropy; the same function for every library."""
    per = jax.vmap(lambda f, k: es.losses.first_spike_cross_entropy(f, k, tau=tau))
    return jnp.mean(per(first, labels))


# ---------------------------------------------------------------------------- engines
@dataclasses.dataclass
class Engine:
    """One library configured for a workload (see module docstring)."""

    name: str
    params: Any
    loss_grad: Callable
    forward: Callable
    spikes: Callable
    to_input: Callable  # numpy (batch, in, K) spike times -> the library's input
    library: str = "eventsnn"
    results: Callable | None = None  # eventsnn only: per-layer outcome codes
    batching: str = "vmap"

    def inputs(self, x):
        return self.to_input(x)


def eventsnn_engine(
    w: Workload,
    weights,
    *,
    gradient="eventprop",
    max_spikes=1,
    batching="vmap",
    name=None,
    loop=False,
) -> Engine:
    """eventsnn with the given gradient mode and spike budget.

    ``batching``: ``"vmap"`` (the normal way) or ``"map"`` (``jax.lax.map``, one sample
    after another; a fallback, see `batch_ok`). ``loop``: ``parallel=False`` (LIF:
    ``es.ExactSegments(parallel=False)``, EIF: ``es.DiffraxSegments(parallel=False)``):
    first-spike mode through the event loop instead of the default first-spike path
    (`_first_spike.py`, `_first_spike_ode.py`), and multi-spike EventProp with the
    event-by-event replay instead of the superposition replay (`_superpose.py`), so
    that both can be timed in one run.
    """
    if loop:
        solver = (es.ExactSegments(parallel=False) if w.neuron == "lif"
                  else es.DiffraxSegments(parallel=False))
    else:
        solver = None
    dtype = jnp.dtype(w.dtype)
    net = es.FeedForward(
        w.in_size,
        [w.hidden, w.n_out],
        _es_neuron(w),
        jax.random.key(w.seed),
        t_max=w.t_max,
        gradient=gradient,
        max_spikes=max_spikes,
        solver=solver,
    )
    net = eqx.tree_at(
        lambda n: n.weights, net, [jnp.asarray(a, dtype) for a in weights]
    )
    params, static = eqx.partition(net, eqx.is_array)

    def build(p):
        return eqx.combine(p, static)

    def batched(net, x):
        if batching == "vmap":
            return jax.vmap(net)(x)
        return jax.lax.map(net, x)

    def loss_grad(p, x, y):
        net = build(p)

        def loss(weights):
            out = batched(eqx.tree_at(lambda n: n.weights, net, weights), x)
            return loss_from_first(out.first, y, w.loss_tau)

        return jax.value_and_grad(loss)(net.weights)

    def forward(p, x):
        return batched(build(p), x).first

    def spikes(p, x):
        out = batched(build(p), x)
        codes = jnp.stack([layer.result._value for layer in out.layers])
        return out.layers[0].first, out.first, codes  # codes: 0 = successful

    def results(p, x):
        return spikes(p, x)[2]

    label = name or f"eventsnn {gradient}" + (
        " first-spike" if max_spikes == 1 else f" multi-spike ({max_spikes})"
    )
    if loop:
        # Multi-spike layers always run the event loop; what `loop` changes there is
        # EventProp's replay (event by event instead of by superposition).
        label += " [event loop]" if max_spikes == 1 else " [event-by-event replay]"
    if batching == "map":
        label += " [map]"
    return Engine(
        label,
        params,
        loss_grad,
        forward,
        spikes,
        lambda x: jnp.asarray(x, dtype),
        "eventsnn",
        results,
        "lax.map" if batching == "map" else "vmap",
    )


def batch_ok(engine: Engine, x) -> int:
    """Number of (layer, sample) results of an eventsnn engine that are not
    ``successful`` on inputs ``x`` (0 = every layer of every sample finished)."""
    codes = np.asarray(jax.jit(engine.results)(engine.params, engine.inputs(x)))
    return int((codes != 0).sum())


# ----------------------------------------------------------------------------- timing
_CACHE_DIR: str | None = None


def use_compile_cache() -> str | None:
    """Turn on JAX's persistent compilation cache in a fresh temporary folder, so that
    `measure` also times a compile served from it. Call before anything compiles
    (JAX decides once per process); a folder already configured is left alone and
    not timed. Returns the folder, or ``None``."""
    global _CACHE_DIR
    if jax.config.jax_compilation_cache_dir:
        return None
    _CACHE_DIR = tempfile.mkdtemp(prefix="eventsnn-bench-xla-")
    jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return _CACHE_DIR


def _cache_entries() -> int | None:
    if _CACHE_DIR is None:
        return None
    return len(os.listdir(_CACHE_DIR))


def measure(fn: Callable, args: tuple, repeats: int = 5, *,
            cached: bool = True) -> tuple[dict, Any]:
    """Compile time and steady-state time of ``fn(*args)``; also its output.

    ``compile_s``: ahead-of-time ``jax.jit(fn).lower(*args).compile()`` (tracing,
    lowering and XLA compilation), separate from any run. ``cached_compile_s``: the
    same again after ``jax.clear_caches()``, served by JAX's persistent compilation
    cache (`use_compile_cache`); ``None`` where the program was not stored (it has
    host callbacks, which JAX does not store). The key is absent where this was not
    measured: the cache is off, or `cached` is false (the smoke runs time it for one
    program only, since it costs another tracing). Then one warm-up call, then
    ``repeats`` (>= 5) timed calls, each synchronised with ``block_until_ready``;
    ``median_s`` is the steady-state time.
    """
    repeats = max(int(repeats), 5)
    stored = _cache_entries() if cached else None
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    extra = {}
    if stored is not None:
        extra["cached_compile_s"] = None
        if _cache_entries() > stored:
            # The program went into the persistent cache: time what a second run of
            # the same script pays (tracing and lowering again, then a load from disk).
            jax.clear_caches()
            start = time.perf_counter()
            jax.jit(fn).lower(*args).compile()
            extra["cached_compile_s"] = time.perf_counter() - start
    start = time.perf_counter()
    output = jax.block_until_ready(compiled(*args))
    first_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    stats = {
        "compile_s": compile_s,
        **extra,
        "first_call_s": first_s,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": repeats,
        "times_s": times,
    }
    return stats, output


def put(tree, dev):
    return jax.device_put(tree, dev)


# ----------------------------------------------------------------------- cross-check
def compare_times(a, b) -> dict:
    """Agreement of two spike-time arrays (``+inf`` = no spike).

    ``max_abs_diff_ms``: largest |t_a - t_b| over neurons that fire in both;
    ``fire_mismatch``: neurons that fire in one and not the other.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a[both] - b[both])
    return {
        "neurons": int(a.size),
        "fired_both": int(both.sum()),
        "fire_mismatch": int((np.isfinite(a) != np.isfinite(b)).sum()),
        "max_abs_diff_ms": float(diff.max()) if diff.size else 0.0,
        "median_abs_diff_ms": float(np.median(diff)) if diff.size else 0.0,
    }


def compare_spikes(ref: tuple, other: tuple) -> dict:
    """`compare_times` for (hidden_first, out_first) pairs."""
    return {
        name: compare_times(a, b)
        for name, a, b in zip(("hidden", "output"), ref, other)
    }


def compare_grads(ref, other) -> dict:
    """Loss difference and relative L2 difference of the weight gradients."""
    (l0, g0), (l1, g1) = ref, other
    g0 = np.concatenate([np.ravel(np.asarray(g, np.float64)) for g in g0])
    g1 = np.concatenate([np.ravel(np.asarray(g, np.float64)) for g in g1])
    return {
        "loss_abs_diff": float(abs(float(l0) - float(l1))),
        "grad_rel_diff": float(
            np.linalg.norm(g1 - g0) / max(np.linalg.norm(g0), 1e-30)
        ),
    }


def cross_check(engines: list[Engine], x: np.ndarray) -> dict:
    """Forward spike times (hidden and output first spikes) of every engine against
    the first one, on inputs ``x``; and, per eventsnn engine, how many (layer, sample)
    outcomes were not ``successful`` (``eventsnn_failures``, should be 0)."""
    outs = {e.name: jax.jit(e.spikes)(e.params, e.inputs(x)) for e in engines}
    ref = engines[0].name
    checks = {
        name: compare_spikes(outs[ref][:2], out[:2])
        for name, out in outs.items()
        if name != ref
    }
    failures = {
        name: int((np.asarray(out[2]) != 0).sum())
        for name, out in outs.items()
        if len(out) > 2
    }
    return {
        "reference": ref,
        "samples": int(x.shape[0]),
        "versus": checks,
        "eventsnn_failures": failures,
    }


def format_check(check: dict) -> str:
    lines = [
        f"spike-time cross-check against {check['reference']} "
        f"({check['samples']} samples):"
    ]
    for name, c in check["versus"].items():
        h, o = c["hidden"], c["output"]
        lines.append(
            f"  {name:<34} hidden max|dt| {h['max_abs_diff_ms']:.1e} ms "
            f"({h['fire_mismatch']}/{h['neurons']} fire mismatches), output max|dt| "
            f"{o['max_abs_diff_ms']:.1e} ms ({o['fire_mismatch']}/{o['neurons']})"
        )
    bad = {k: v for k, v in check.get("eventsnn_failures", {}).items() if v}
    if bad:
        lines.append(f"  WARNING: eventsnn layers that did not finish cleanly: {bad}")
    return "\n".join(lines)


# ------------------------------------------------------------------- CLI, device, JSON
def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes that run in seconds (what CI runs)",
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run eventax and jaxsnn (skipped with a note when they "
        "are not importable)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed steady-state calls per measurement (at least 5)",
    )
    p.add_argument(
        "--out", default=None, help="JSON path (default results/<name>.json)"
    )
    return p


def device(name: str):
    try:
        return jax.devices(name)[0]
    except RuntimeError as error:
        raise SystemExit(
            f"--device {name}: no such JAX backend here ({error})"
        ) from None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git_commit() -> str | None:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "eventsnn"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info(dev) -> dict:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "time": time.strftime("%H:%M:%S %Z"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": str(dev),
        "python": platform.python_version(),
        "versions": {
            p: _version(p)
            for p in (
                "eventsnn",
                "jax",
                "jaxlib",
                "equinox",
                "diffrax",
                "eventax",
                "jaxsnn",
            )
        },
        "eventsnn_commit": _git_commit(),
    }


def write_json(name: str, result: dict, out: str | None) -> pathlib.Path:
    path = pathlib.Path(out) if out else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"\nwrote {path}")
    return path


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]
    line = " | ".join(str(h).ljust(wd) for h, wd in zip(headers, widths))
    sep = "-+-".join("-" * wd for wd in widths)
    body = [" | ".join(str(c).ljust(wd) for c, wd in zip(r, widths)) for r in rows]
    return "\n".join([line, sep, *body])
