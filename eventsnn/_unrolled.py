"""An explicit Runge–Kutta solver with its stages written out at trace time.

diffrax runs the stages of a Runge–Kutta step in a loop (`eqxi.while_loop`) over a
buffer of stage derivatives, which keeps programs small and lets it handle every kind
of tableau. For the tiny states of a layer of neurons on a CPU that loop is where the
time goes: each stage copies the whole buffer and runs a dozen small kernels, and the
cost per kernel, not the arithmetic, sets the pace. [`Unrolled`][] takes the tableau of
any diffrax explicit RK method whose dense output is built from the stage derivatives
(Tsit5, Dopri5, Dopri8, Bosh3, ...) and writes each stage as plain array expressions
that XLA fuses: the same numbers, measured faster (see `DiffraxSegments`).
"""

from typing import ClassVar

import diffrax
import jax
import jax.numpy as jnp


def _combine(coefficients, ks, base=None):
    """``base + sum_j coefficients[j] * ks[j]`` over pytrees (``base`` may be
    ``None``: the sum alone), skipping the zero coefficients (known at trace time)."""
    pairs = [(float(c), k) for c, k in zip(coefficients, ks) if float(c) != 0.0]
    if not pairs and base is None:
        return jax.tree.map(jnp.zeros_like, ks[0])

    def leaf(*leaves):
        rest = iter(leaves)
        total = next(rest) if base is not None else None
        for (c, _), x in zip(pairs, rest):
            total = c * x if total is None else total + c * x
        return total

    trees = ([] if base is None else [base]) + [k for _, k in pairs]
    return jax.tree.map(leaf, *trees)


def unrolled(solver):
    """``Unrolled(solver)`` where it applies (see `unrollable`), else ``solver``."""
    return Unrolled(solver) if unrollable(solver) else solver


def unrollable(solver) -> bool:
    """Whether [`Unrolled`][] can run ``solver``: a diffrax explicit Runge–Kutta
    method with a single Butcher tableau, an error estimate and ``k``-based dense
    output (not ``Euler``-like methods without an embedded error estimate)."""
    return (isinstance(solver, diffrax.AbstractERK)
            and isinstance(solver.tableau, diffrax.ButcherTableau)
            and solver.tableau.b_error is not None)


class Unrolled(diffrax.AbstractAdaptiveSolver):
    """The explicit RK method `solver` (its tableau, order and dense output), with the
    stages of each step unrolled. Stateless: no first-same-as-last reuse, so a step
    costs one more evaluation of the vector field than diffrax's, and pays for it
    many times over on small states (the loop it removes costs more)."""

    solver: diffrax.AbstractERK
    term_structure: ClassVar = diffrax.AbstractTerm

    def __check_init__(self):
        if not unrollable(self.solver):
            raise ValueError(f"Unrolled needs an explicit Runge-Kutta solver with an "
                             f"error estimate; got {self.solver!r}.")

    @property
    def interpolation_cls(self):
        return self.solver.interpolation_cls

    def order(self, terms):
        return self.solver.order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        tableau = self.solver.tableau
        control = terms.contr(t0, t1)
        dt = t1 - t0

        def stage(t, y):
            return terms.vf_prod(t, y, args, control)

        ks = [stage(t0, y0)]
        for c, a_row in zip(tableau.c, tableau.a_lower):
            ks.append(stage(t0 + float(c) * dt, _combine(a_row, ks, base=y0)))
        y1 = _combine(tableau.b_sol, ks, base=y0)
        y_error = _combine(tableau.b_error, ks)
        k = jax.tree.map(lambda *leaves: jnp.stack(leaves), *ks)
        dense_info = dict(y0=y0, y1=y1, k=k)
        return y1, y_error, dense_info, None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
