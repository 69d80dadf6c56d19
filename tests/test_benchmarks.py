"""The benchmark scripts run in a smoke size, so they cannot rot."""

import importlib.util
import json
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
