"""The second half of the per-model gradient sweep (see test_gradients_models.py for
what is checked and why the sweep is split over two files)."""

import pytest

from gradient_cases import check_modes_and_finite_differences


@pytest.mark.parametrize("name", ["Izhikevich", "EIF", "custom", "AlphaLIF", "IAF"])
def test_modes_agree_with_each_other_and_finite_differences(name):
    check_modes_and_finite_differences(name)
