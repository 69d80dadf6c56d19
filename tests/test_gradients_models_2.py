"""The second half of the per-model gradient sweep (see test_gradients_models.py for
what is checked and why the sweep is split over two files), and one model through two
layers."""

import pytest

from gradient_cases import check_modes_and_finite_differences


@pytest.mark.parametrize("name", ["Izhikevich", "EIF", "custom", "AlphaLIF", "IAF"])
def test_modes_agree_with_each_other_and_finite_differences(name):
    check_modes_and_finite_differences(name)


def test_two_layers_of_a_non_linear_model_match_finite_differences():
    """Izhikevich (non-linear, reset by jumps, adaptive solver), 5-4-2, every spike of
    both layers in the loss: EventProp through two layers, whose second layer takes
    the first's spike times as inputs, against central differences (weights of both
    layers, the first layer's parameters, the input times)."""
    check_modes_and_finite_differences("Izhikevich", modes=("eventprop",), sizes=(4, 2))
