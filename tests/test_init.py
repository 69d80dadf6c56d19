"""Weight initialisation: the measured firing weight (`eventsnn._init.firing_weight`)
against the LIF's closed form, and its cost: one compiled probe per model structure."""

import logging

import jax
import numpy as np
import pytest

import eventsnn as es
from eventsnn import _init
from eventsnn._neuron import declares_kinks

jax.config.update("jax_enable_x64", True)


def lif_weight_needed(tau_mem, tau_syn, threshold, t_max):
    """The weight of one input spike at t = 0 whose membrane response
    ``w τs/(τm - τs) (e^{-t/τm} - e^{-t/τs})`` just reaches `threshold` before `t_max`
    (at its peak, or at `t_max` if the peak comes later)."""
    t_peak = tau_mem * tau_syn / (tau_mem - tau_syn) * np.log(tau_mem / tau_syn)
    t = min(t_peak, t_max)
    decay = np.exp(-t / tau_mem) - np.exp(-t / tau_syn)
    kernel = tau_syn / (tau_mem - tau_syn) * decay
    return threshold / kernel


@pytest.mark.parametrize("tau_syn, threshold, t_max", [
    (5.0, 1.0, 25.0),  # the peak (at 9.2 ms) inside the window
    (5.0, 1.0, 3.0),  # the window ends before the peak: a larger weight
    (4.0, 0.5, 30.0),
])
def test_lif_firing_weight_is_the_closed_form_one_on_the_probe_grid(
        tau_syn, threshold, t_max):
    w = _init.firing_weight(es.LIF(tau_syn=tau_syn, threshold=threshold), t_max)
    needed = lif_weight_needed(20.0, tau_syn, threshold, t_max)
    assert w == _init._PROBES[np.searchsorted(_init._PROBES, needed)]


def test_probe_compiles_once_per_model_structure(caplog):
    """A repeated question, another ``t_max`` or other parameter values reuse the
    compiled probe (they are data)."""
    _init.firing_weight(es.EIF(), 25.0)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        again = _init.firing_weight(es.EIF(), 25.0)
        other = _init.firing_weight(es.EIF(v_thresh=1.5), 12.0)
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiled == []
    assert again == _init.firing_weight(es.EIF(), 25.0)
    assert other > again  # a higher threshold and a shorter window: a larger weight


def test_one_segment_probe_is_the_event_loop_probe():
    """Models without kinks before their first spike are probed with one segment
    solve per weight; the event loop (the simulation itself) gives the same spike
    times: exact flow (LIF), an input that fires at once (DeltaLIF), and diffrax
    (QIF). A declared kink sends the probe through the event loop."""
    t_max = jax.numpy.asarray(30.0)
    for neuron in (es.LIF(), es.DeltaLIF(), es.QIF()):
        assert not declares_kinks(neuron)
        first, ok = _init._probe(neuron, t_max)
        first_loop, ok_loop = _init._probe(neuron, t_max, loop=True)
        np.testing.assert_array_equal(ok, ok_loop)
        assert bool(ok.all())
        np.testing.assert_array_equal(np.isfinite(first), np.isfinite(first_loop))
        assert 0 < int(np.isfinite(first).sum()) < first.size  # some fire, some not
        np.testing.assert_allclose(first, first_loop, rtol=0, atol=1e-9)
    assert float(_init._probe(es.DeltaLIF(), t_max)[0][-1]) == 0.0  # at once

    class Kinked(es.LIF):
        def discontinuities(self, t, y):
            return jax.numpy.full(y.shape[:1], jax.numpy.inf)

    assert declares_kinks(Kinked())
    # Refractory's kink only follows a spike: its inner model is probed.
    assert not declares_kinks(es.Refractory(es.LIF()).first_spike_model())
