"""Gradients of every shipped model (and a custom one), part 1 of 2: on a layer with
several spikes per neuron, EventProp and autodiff agree with each other and with
central finite differences in float64, with respect to the weights, every neuron
parameter and the input spike times (`gradient_cases.check_modes_and_finite_differences`).

Reverse mode through the adaptive solver compiles a large program per model, so the
sweep is the slowest part of the suite; it is split over two files so that the test
runner's two workers (``-n 2 --dist loadfile``) share it."""

import pytest

from gradient_cases import check_modes_and_finite_differences


@pytest.mark.parametrize("name", ["Refractory", "AdEx", "QIF", "LIF", "LIF-subtract", "DeltaLIF"])
def test_modes_agree_with_each_other_and_finite_differences(name):
    check_modes_and_finite_differences(name)
