"""The tutorial notebooks run from top to bottom, and the IAF transfer function they
illustrate is a rectified linear function (checked here independently of them)."""

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

import eventsnn as es

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 120


def test_notebooks_are_present():
    assert len(NOTEBOOKS) >= 4, f"expected the tutorial notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, errors


def test_iaf_transfer_is_piecewise_linear():
    """IAF with a constant leak L under a constant current I fires
    floor(max(0, I - L) T / (tau_m theta)) spikes in [0, T): zero up to I = L, then
    linear in I (the ReLU behind ANN-to-SNN conversion)."""
    leak, t_max = 0.5, 500.0
    neuron = es.IAF(leak=leak)
    tau_m, theta = float(neuron.tau_mem), float(neuron.threshold)
    currents = np.linspace(0.0, 3.0, 61)

    spikes, _ = es.simulate(neuron, currents.size, current=jnp.asarray(currents),
                            t_max=t_max, max_spikes=96)
    es.check(spikes)
    counts = np.asarray(spikes.counts)

    below = currents <= leak
    assert np.all(counts[below] == 0), counts[below]

    above = ~below
    expected = np.floor((currents[above] - leak) * t_max / (tau_m * theta))
    np.testing.assert_allclose(counts[above], expected, atol=1.0, rtol=0.0)

    slope, intercept = np.polyfit(currents[above], counts[above], 1)
    fit = slope * currents[above] + intercept
    residual = np.sum((counts[above] - fit) ** 2)
    total = np.sum((counts[above] - counts[above].mean()) ** 2)
    r2 = 1.0 - residual / total
    assert r2 > 0.999, r2
    assert slope == pytest.approx(t_max / (tau_m * theta), rel=0.02)
