"""A bisection root finder that works per batch element under ``vmap``.

diffrax locates an event by root-finding a scalar function of time on the step in
which the event function changed sign. Under ``vmap`` that root find also runs for the
batch elements that had *no* event; diffrax then hands them the decreasing function
``t_end - t`` on their last step, whose root is the step's end. ``optx.Bisection``
needs the direction fixed for the whole batch (``flip=True/False``), so the elements
without an event walk to the wrong end and report "not converged" (a failed solve),
or it checks the bracket (``"detect"``) with a runtime error that those same elements
trigger: the value at the step's end is exactly 0, so neither end is negative. This
finder picks the direction per element from the values at the bracket's ends and stops
on the bracket's width alone, which a bisection always reaches.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float


class _State(eqx.Module):
    lower: Float[Array, ""]
    upper: Float[Array, ""]
    decreasing: Bool[Array, ""]


class SignChangeBisection(optx.AbstractRootFinder):
    """Bisection on ``[lower, upper]`` (passed as ``options``) for a scalar function
    with a sign change in the bracket, increasing or decreasing, decided per call.

    The first point tried is the ``y0`` given to the root find (diffrax passes the
    bracket's upper end); if the function is exactly zero there the bracket collapses
    onto it at once, so an element without an event keeps its end time exactly.

    **Arguments:**

    - `rtol`, `atol`: stop once ``upper - lower < atol + rtol |y|``.
    """

    rtol: float
    atol: float | Array
    norm: ClassVar[Callable] = jnp.abs

    def init(self, fn, y, args, options, f_struct, aux_struct, tags) -> _State:
        del aux_struct, tags
        dtype = f_struct.dtype
        lower = jnp.asarray(options["lower"], dtype)
        upper = jnp.asarray(options["upper"], dtype)
        f_lower, _ = fn(lower, args)
        f_upper, _ = fn(upper, args)
        return _State(lower, upper, f_lower > f_upper)

    def step(self, fn, y, args, options, state: _State, tags):
        del options, tags
        value, aux = fn(y, args)
        # "Below the root" is the side where an increasing function is negative.
        below = state.decreasing ^ (value < 0)
        lower = jnp.where(below, y, state.lower)
        upper = jnp.where(below, state.upper, y)
        return lower + 0.5 * (upper - lower), _State(lower, upper, state.decreasing), aux

    def terminate(self, fn, y, args, options, state: _State, tags):
        del fn, args, options, tags
        width = jnp.abs(state.upper - state.lower)
        return width <= self.atol + self.rtol * jnp.abs(y), optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result) -> Any:
        del fn, args, options, state, tags, result
        return y, aux, {}
