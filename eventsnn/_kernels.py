"""Keeping XLA:CPU's kernel count down, which is what compile time is made of.

XLA compiles every fused kernel separately (LLVM code generation, 20-35 ms each on the
development CPU), so a program's compile time grows with its number of kernels more
than with its arithmetic. XLA's fusion does not recompute an expensive operation
(``exp``, a division) for two consumers, and XLA:CPU does not fuse siblings: values
that share expensive intermediates but leave as *separate* arrays (a flow map's four
coefficients, a root finder's bracket and iterate) cost one kernel per shared value
and one per output. [`together`][] makes such values one array, written by one
kernel, and hands them back unchanged.
"""

import jax
import jax.numpy as jnp


def together(*arrays):
    """Return `arrays` unchanged (values, dtypes, derivatives), computed by one XLA
    kernel with one output instead of a kernel per array and per shared intermediate.

    The arrays are stacked behind an optimisation barrier (without it XLA folds the
    stack apart again) and taken back out; ``None`` entries pass through and boolean
    arrays travel as 0/1 in the floating dtype. It costs one write of the outputs;
    measured on the 5-120-3 LIF gradient step it took 50 of 310 kernels away.

    **Arguments:** arrays of one shape and one floating dtype (booleans allowed), or
    ``None``.

    **Returns:** a tuple of the same arrays.
    """
    present = [a for a in arrays if a is not None]
    floats = {a.dtype for a in present if a.dtype != jnp.bool_}
    if len(floats) != 1 or not jnp.issubdtype(next(iter(floats)), jnp.floating):
        raise TypeError(f"together() needs one floating dtype, got {sorted(map(str, floats))}")
    if len({a.shape for a in present}) != 1:
        raise ValueError(f"together() needs one shape, got {[a.shape for a in present]}")
    (dtype,) = floats
    packed = jax.lax.optimization_barrier(jnp.stack([a.astype(dtype) for a in present]))
    pieces = iter(packed)
    out = []
    for a in arrays:
        piece = None if a is None else next(pieces)
        out.append(piece > 0.5 if a is not None and a.dtype == jnp.bool_ else piece)
    return tuple(out)
