"""The benchmark scripts run in a smoke size, so they cannot rot."""

import importlib.util
import json
import math
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_benchmark_smoke(tmp_path):
    out = tmp_path / "memory.json"
    result = load("memory").main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text())["versus_steps"] == result["versus_steps"]
    steps = result["versus_steps"]
    # The adjoint's memory does not depend on the solver's step budget; reverse mode
    # through the solver does.
    assert steps[0]["eventprop"] == steps[-1]["eventprop"]
    assert steps[-1]["autodiff"] > steps[0]["autodiff"]
    assert all(r["eventprop"] < r["autodiff"] for r in steps)
    events = result["versus_events"]
    assert events[-1]["eventprop"] > events[0]["eventprop"]  # grows with events


# --- side-by-side benchmarks (benchmarks/README.md) ----------------------------------
# Each script runs at its smoke size without the peers (CI has no eventax/jaxsnn), so
# the eventsnn rows, the timing, the cross-check and the JSON cannot rot. The cost is
# XLA compilation (10-20 s per gradient program), not the simulations.

TIMES = ("compile_s", "median_s", "min_s", "max_s", "first_call_s")


def _timed(row):
    assert all(math.isfinite(row[k]) and row[k] > 0 for k in TIMES), row
    assert row["repeats"] >= 5 and len(row["times_s"]) == row["repeats"]
    assert min(row["times_s"]) == row["min_s"] <= row["median_s"] <= row["max_s"]


def _common_keys(result, name):
    assert result["benchmark"] == name and result["smoke"] is True
    machine = result["machine"]
    for key in ("date", "platform", "cpu", "device", "versions"):
        assert machine[key]
    assert machine["versions"]["eventsnn"] and machine["versions"]["jax"]


def _run(name, tmp_path):
    out = tmp_path / f"{name}.json"
    result = load(name).main(["--smoke", "--no-peers", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result, default=float))
    _common_keys(result, name)
    return result


def test_grad_step_benchmark_smoke(tmp_path):
    result = _run("grad_step", tmp_path)
    rows = result["rows"]
    assert {r["engine"] for r in rows} == {
        "eventsnn eventprop first-spike", "eventsnn eventprop first-spike [event loop]",
        "eventsnn autodiff first-spike [event loop]",
        "eventsnn eventprop multi-spike (16)",
        "eventsnn eventprop multi-spike (16) [event-by-event replay]"}
    for row in rows:
        _timed(row)
        assert row["library"] == "eventsnn" and math.isfinite(row["loss"])
        assert row["ratio_to_eventsnn"] > 0
    ref = next(r for r in rows if r["engine"] == r["reference"])
    assert ref["ratio_to_eventsnn"] == 1.0 and ref["grad_rel_diff"] == 0.0
    # The default step has no host callbacks: JAX's persistent cache stored it, and
    # a second compile was served from there (timed for that program only).
    assert ref["cached_compile_s"] > 0
    assert all("cached_compile_s" not in r for r in rows if r is not ref)
    for name in ("eventsnn eventprop first-spike [event loop]",
                 "eventsnn autodiff first-spike [event loop]"):
        row = next(r for r in rows if r["engine"] == name)
        assert row["grad_rel_diff"] < 1e-4  # same gradient, other code path
    # Both multi-spike replays run the same forward pass.
    multi = [r["loss"] for r in rows if "multi-spike" in r["engine"]]
    assert len(multi) == 2 and multi[0] == multi[1]
    check = result["cross_checks"][0]
    assert all(v == 0 for v in check["eventsnn_failures"].values())
    autodiff_check = check["versus"]["eventsnn autodiff first-spike [event loop]"]
    # Same spikes up to float32 rounding: the loop-free scan composes precomputed
    # affine maps, the loop evaluates the flow directly (float64 agreement to 1e-12 ms
    # is checked in tests/test_first_spike.py).
    assert autodiff_check["output"]["max_abs_diff_ms"] <= 1e-4
    assert autodiff_check["output"]["fire_mismatch"] == 0
    no_peers = {"eventax": "--no-peers", "jaxsnn": "--no-peers"}
    assert result["notes"][0]["skipped"] == no_peers


def _sweep_rows(result):
    rows = result["rows"]
    assert {r["library"] for r in rows} == {"eventsnn"}
    for row in rows:
        _timed(row)
        assert row["samples_per_s"] == row["batch"] / row["median_s"]
    hidden = sorted(r["hidden"] for r in rows if "hidden" in r["sweeps"])
    batch = sorted(r["batch"] for r in rows if "batch" in r["sweeps"])
    assert len(hidden) >= 2 and len(batch) >= 2
    return rows


def test_scaling_benchmark_smoke(tmp_path):
    rows = _sweep_rows(_run("scaling", tmp_path))
    assert all(r["grad_rel_diff"] == 0.0 for r in rows)  # eventsnn is the reference


def test_forward_benchmark_smoke(tmp_path):
    rows = _sweep_rows(_run("forward", tmp_path))
    assert all(r["output_check"]["max_abs_diff_ms"] == 0.0 for r in rows)


def test_crosscheck_benchmark_smoke(tmp_path):
    result = _run("crosscheck", tmp_path)
    first = result["cases"][0]
    loop = "eventsnn autodiff first-spike [event loop]"
    assert first["eventsnn_failures"] == {"eventsnn eventprop first-spike": 0, loop: 0}
    versus = first["versus"][loop]
    assert versus["hidden"]["fire_mismatch"] == versus["output"]["fire_mismatch"] == 0
    assert versus["hidden"]["max_abs_diff_ms"] < 1e-9
    assert first["gradients"][loop]["grad_rel_diff"] < 1e-9


def test_benchmark_models_start_where_eventax_starts(monkeypatch):
    """`_common._es_neuron` matches eventax's models (`_peers.eventax_engine`) by a
    change of variables; both must start at rest, where eventax starts. eventax's QIF
    (phase form, bias 0) starts at V = 0, i.e. v = V - 1/2 = -1/2 in eventsnn's
    variable v = tan(theta / 2); its Izhikevich starts at (c, b c) = (-70, -14)."""
    import importlib

    import jax.numpy as jnp
    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as the scripts import it
    common = importlib.import_module("_common")
    qif = common._es_neuron(common.Workload(neuron="qif"))
    theta0 = float(qif.init_state(1)[0, 0])
    np.testing.assert_allclose(np.tan(theta0 / 2), -0.5, rtol=1e-6)
    rest = qif.dynamics(0.0, qif.init_state(1), jnp.zeros(1))
    np.testing.assert_allclose(rest, 0.0, atol=1e-7)
    izh = common._es_neuron(common.Workload(neuron="izhikevich"))
    np.testing.assert_allclose(izh.init_state(1)[0, :2], [-70.0, -14.0], rtol=1e-6)
    assert common.OUT_INIT_MEAN.keys() >= {"lif", "eif", "qif", "izhikevich"}
