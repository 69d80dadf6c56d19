"""Shape-annotated array aliases used across eventsnn (jaxtyping)."""

from typing import Union

import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

Scalar = Union[float, Float[ArrayLike, ""]]
"""A parameter that is one number (possibly a 0-d array, possibly traced)."""

Param = Union[float, Float[ArrayLike, ""], Float[ArrayLike, " n"]]
"""A neuron parameter: one value shared by a population, or one value per neuron."""

State = Float[Array, "n state"]
"""The state of a population: one row per neuron, one column per state variable."""

Current = Float[Array, " n"]
"""An external current, one value per neuron, at one instant."""

InputTimes = Float[ArrayLike, "in_size K"]
"""Input spike times: one row per input channel, ``+inf`` where there is no spike."""

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "Current",
    "Float",
    "InputTimes",
    "Int",
    "Param",
    "Scalar",
    "State",
    "np",
]
