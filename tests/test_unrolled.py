"""`eventsnn._unrolled.Unrolled`: the same numbers as the diffrax solver whose tableau
it takes (one step, a whole adaptive solve with dense output, a pytree state), and a
clear refusal of what it cannot run."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eventsnn._unrolled import Unrolled, unrollable, unrolled

jax.config.update("jax_enable_x64", True)


def _field(t, y, args):
    a, b = y["a"], y["b"]
    return {"a": -b * jnp.sin(a) + args * t, "b": a**2 - 0.3 * b}


@pytest.mark.parametrize("solver", [diffrax.Tsit5(), diffrax.Dopri5(),
                                    diffrax.Dopri8(), diffrax.Bosh3()])
def test_same_step_and_same_solve_as_diffrax(solver):
    term = diffrax.ODETerm(_field)
    y0 = {"a": jnp.array([0.3, -1.2]), "b": jnp.array([-0.7, 0.4])}
    fast = Unrolled(solver)
    steps = []
    for s in (solver, fast):
        state = s.init(term, 0.0, 0.4, y0, 0.5)
        steps.append(s.step(term, 0.0, 0.4, y0, 0.5, state, False))
    (y1, err, dense, _, _), (y1u, erru, denseu, _, _) = steps
    for a, b in [(y1, y1u), (err, erru), (dense["k"], denseu["k"])]:
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)
    ts = jnp.linspace(0.0, 4.0, 9)  # dense output between steps
    sols = [
        diffrax.diffeqsolve(term, s, 0.0, 4.0, 0.1, y0, 0.5,
                            stepsize_controller=diffrax.PIDController(rtol=1e-9,
                                                                      atol=1e-9),
                            saveat=diffrax.SaveAt(ts=ts))
        for s in (solver, fast)
    ]
    assert int(sols[0].stats["num_steps"]) == int(sols[1].stats["num_steps"]) > 5
    for u, v in zip(jax.tree.leaves(sols[0].ys), jax.tree.leaves(sols[1].ys)):
        np.testing.assert_allclose(u, v, rtol=1e-11, atol=1e-12)


def test_refuses_what_it_cannot_run():
    # Euler: no error estimate to control steps with; Kvaerno5: implicit.
    for solver in (diffrax.Euler(), diffrax.Kvaerno5()):
        assert not unrollable(solver)
        assert unrolled(solver) is solver  # left to diffrax
        with pytest.raises(ValueError, match="explicit Runge-Kutta"):
            Unrolled(solver)
    assert isinstance(unrolled(diffrax.Tsit5()), Unrolled)
