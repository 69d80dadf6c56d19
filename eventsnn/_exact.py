"""Exact flow maps of linear neuron models, and a diffrax solver built on them.

A population of neurons with affine, time-invariant dynamics ``dy/dt = A y + b`` (one
small matrix ``A`` per neuron, rows of ``y`` independent) has the exact solution

    y(τ) = exp(Aτ) y0 + τ φ1(Aτ) b,        φ1(z) = (e^z - 1) / z.

For one or two state variables (the LIF family) both matrix functions have a closed
form in the eigenvalues λ1, λ2 of ``A`` (Newton's divided-difference form of a matrix
function), written here so that it stays accurate when λ1 → λ2 (τ_mem = τ_syn) and
when an eigenvalue is 0 (no leak):

    F(A) = F(λ2) I + F[λ1, λ2] (A - λ2 I).

With an affine spike condition ``g = c·y + g0``, the derivative of ``g`` along the flow
has at most one zero per segment, and its location is also closed form; so the first
threshold crossing between two events is always bracketed and found by a safeguarded
Newton iteration to machine precision. Nothing here is approximate.
"""

import functools
import operator
from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array, Bool, Float, State
from ._kernels import together


# ----------------------------------------------------------------------- scalar φ
# Each φ takes ``em1 = expm1(z)`` from the caller, so that one flow evaluation spends
# four exponentials in all (they dominate its cost) however many φ values it needs.
def _phi1(z, em1):
    """(e^z - 1)/z, accurate near 0."""
    small = jnp.abs(z) < 1e-5
    safe = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 + z / 2 + z * z / 6, em1 / safe)


def _phi2(z, em1):
    """(e^z - 1 - z)/z², accurate near 0."""
    small = jnp.abs(z) < 0.1
    safe = jnp.where(small, 1.0, z)
    series = 0.5 + z / 6 + z**2 / 24 + z**3 / 120 + z**4 / 720 + z**5 / 5040
    return jnp.where(small, series, (em1 - safe) / (safe * safe))


def _phi1_divided(z1, z2, em1_1, em1_2):
    """The divided difference (φ1(z1) - φ1(z2)) / (z1 - z2), accurate when z1 ≈ z2."""
    d = z1 - z2
    cut = 4 * jnp.finfo(jnp.result_type(z1)).eps ** (1 / 3)
    close = jnp.abs(d) < cut
    safe = jnp.where(close, 1.0, d)
    # φ1' = φ1 - φ2 at the midpoint; the rule's error is d²/24·φ1''' (≤ d²/96 for
    # z ≤ 0). expm1 there from the one at z2, with e^h - 1 by its series (|h| < cut/2).
    h = jnp.where(close, 0.5 * d, 0.0)
    mid = z2 + h
    em1_mid = em1_2 + (1.0 + em1_2) * (h * (1 + h / 2 * (1 + h / 3 * (1 + h / 4))))
    near = _phi1(mid, em1_mid) - _phi2(mid, em1_mid)
    return jnp.where(close, near, (_phi1(z1, em1_1) - _phi1(z2, em1_2)) / safe)


def _log1p_ratio(x):
    """log(1 + x) / x, accurate near 0."""
    small = jnp.abs(x) < 1e-6
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 - x / 2, jnp.log1p(safe) / safe)


# ------------------------------------------------------------------- the flow map
class AffineFlow(eqx.Module):
    """Exact flow of ``dy/dt = A y + b`` for a population with 1 or 2 state variables.

    Built once per segment sequence (``A`` and ``b`` do not change between events) by
    [`eventsnn.AffineFlow.from_vector_field`][]; evaluating it costs a few scalar
    exponentials per neuron.

    **Fields:**

    - `A`: ``Float[Array, "n s s"]``, one matrix per neuron.
    - `b`: ``Float[Array, "n s"]``, one offset per neuron.
    - `lam1`, `lam2`: the eigenvalues of each ``A``, ``lam1 <= lam2`` (equal for
      ``s = 1``); their real parts where `real` is ``False``.
    - `real`: ``Bool[Array, "n"]``, whether the eigenvalues are real (the closed
      forms here assume they are; [`eventsnn.ExactLinear`][] reports an error
      otherwise).
    """

    A: Float[Array, "n s s"]
    b: Float[Array, "n s"]
    lam1: Float[Array, " n"]
    lam2: Float[Array, " n"]  # the larger eigenvalue; δ = λ1 - λ2 ≤ 0
    real: Bool[Array, " n"]
    # Derived once here rather than in every evaluation: A - λ2 I and (A - λ2 I) b.
    shifted: Float[Array, "n s s"]
    shifted_b: Float[Array, "n s"]

    def __init__(self, A, b, lam1, lam2, real):
        self.A, self.b, self.lam1, self.lam2, self.real = A, b, lam1, lam2, real
        eye = jnp.eye(A.shape[-1], dtype=A.dtype)
        self.shifted = A - lam2[:, None, None] * eye
        self.shifted_b = matvec(self.shifted, b)

    @classmethod
    def from_vector_field(
        cls, vf: Callable[[State], State], shape: tuple[int, int], dtype
    ) -> "AffineFlow":
        """Read ``A`` and ``b`` off an affine vector field ``y -> dy/dt``.

        Uses one evaluation and one forward-mode derivative per state column; neurons
        (rows) are assumed independent, as in every neuron model.

        **Arguments:**

        - `vf`: the vector field, ``State -> State`` (affine in its argument).
        - `shape`: ``(n, s)``, the shape of the state.
        - `dtype`: the dtype of the state.

        **Returns:** an [`eventsnn.AffineFlow`][].

        **Raises:** ``ValueError`` if ``s`` is not 1 or 2.
        """
        n, s = shape
        if s not in (1, 2):
            raise ValueError(
                f"The exact flow map supports models with 1 or 2 state variables; this "
                f"model has {s}. Use an adaptive diffrax solver (e.g. diffrax.Tsit5())."
            )
        zero = jnp.zeros(shape, dtype)
        b = vf(zero)
        columns = []
        for k in range(s):
            tangent = jnp.zeros(shape, dtype).at[:, k].set(1.0)
            columns.append(jax.jvp(vf, (zero,), (tangent,))[1])
        A = jnp.stack(columns, axis=-1)  # A[:, r, k] = ∂(dy_r/dt)/∂y_k
        if s == 1:
            lam = A[:, 0, 0]
            return cls(A, b, lam, lam, jnp.ones((n,), bool))
        tr = A[:, 0, 0] + A[:, 1, 1]
        half_gap_sq = (0.5 * (A[:, 0, 0] - A[:, 1, 1])) ** 2 + A[:, 0, 1] * A[:, 1, 0]
        real = half_gap_sq >= 0
        # √ has an infinite derivative at 0 (equal eigenvalues, e.g. τ_mem = τ_syn).
        # The flow is a smooth, symmetric function of (λ1, λ2), so at that point
        # only d(λ1 + λ2) matters: giving the gap a zero derivative there is exact.
        apart = half_gap_sq > 0
        half_gap = jnp.where(apart, jnp.sqrt(jnp.where(apart, half_gap_sq, 1.0)), 0.0)
        return cls(A, b, *together(0.5 * tr - half_gap, 0.5 * tr + half_gap, real))

    @property
    def size(self) -> int:
        """Number of state variables ``s`` (1 or 2)."""
        return self.A.shape[-1]

    def _coefficients(self, tau, dtype, driven=True):
        """The scalars of the flow over ``tau``: ``y(τ) = decay (y0 + grow S y0) +
        drive b + drive_s S b`` with ``S = A - λ2 I``. ``grow`` and ``drive_s`` are
        ``None`` for one state variable; ``drive`` and ``drive_s`` are ``None`` unless
        `driven`."""
        tau = jnp.broadcast_to(tau, self.lam2.shape).astype(dtype)
        z2 = self.lam2 * tau
        # (e^z itself, not 1 + expm1(z): that loses e^z's relative accuracy for z < -1)
        decay = jnp.exp(z2)
        grow = drive = drive_s = None
        if driven:
            em1_2 = jnp.expm1(z2)
            drive = tau * _phi1(z2, em1_2)  # τ φ1(λ2τ)
        if self.size == 2:
            # exp(Aτ) = e^{λ2τ} [I + τ φ1(δτ) S]
            z = (self.lam1 - self.lam2) * tau
            grow = tau * _phi1(z, jnp.expm1(z))
            if driven:  # τ φ1(Aτ) = τ φ1(λ2τ) + τ² φ1[λ1τ, λ2τ] S
                z1 = self.lam1 * tau
                drive_s = tau**2 * _phi1_divided(z1, z2, jnp.expm1(z1), em1_2)
        # One kernel for all four (they share the exponentials), see `_kernels.py`.
        return together(decay, grow, drive, drive_s)

    def __call__(self, tau: Float[Array, "*n"], y0: State) -> State:
        """Advance the flow.

        **Arguments:**

        - `tau`: elapsed time, a scalar or one value per neuron.
        - `y0`: the state at the start, ``Float[Array, "n s"]``.

        **Returns:** the state after ``tau``, the same shape as ``y0``.
        """
        decay, grow, drive, drive_s = self._coefficients(tau, y0.dtype)
        y = self._apply(decay, grow, y0) + drive[:, None] * self.b
        if drive_s is not None:
            y = y + drive_s[:, None] * self.shifted_b
        return y

    def _apply(self, decay, grow, y0):
        if grow is None:
            return decay[:, None] * y0
        return decay[:, None] * (y0 + grow[:, None] * matvec(self.shifted, y0))

    def homogeneous(self, tau: Float[Array, "*n"], y0: State) -> State:
        """The flow without its constant drive: ``exp(Aτ) y0``.

        **Arguments:** `tau` and `y0` as for ``__call__``.

        **Returns:** ``exp(Aτ) y0``, the same shape as ``y0``.
        """
        decay, grow, _, _ = self._coefficients(tau, y0.dtype, driven=False)
        return self._apply(decay, grow, y0)

    def affine(self, tau: Float[Array, "*n"]) -> tuple[Float[Array, "n s s"], State]:
        """The flow as an affine map ``y0 -> Φ y0 + f``: one matrix ``Φ = exp(Aτ)`` and
        one offset ``f`` (the state reached from 0) per neuron.

        Costs one flow evaluation; applying it to a state is then a few multiplies
        (a loop over events that knows its intervals in advance computes all of these
        at once, outside the loop).

        **Arguments:** `tau` as for ``__call__``.

        **Returns:** ``(Φ, f)``, ``Float[Array, "n s s"]`` and ``Float[Array, "n s"]``.
        """
        decay, grow, drive, drive_s = self._coefficients(tau, self.b.dtype)
        eye = jnp.eye(self.size, dtype=self.b.dtype)
        if grow is None:
            return decay[:, None, None] * eye, drive[:, None] * self.b
        phi = decay[:, None, None] * (eye + grow[:, None, None] * self.shifted)
        return phi, drive[:, None] * self.b + drive_s[:, None] * self.shifted_b

    def matrix(self, tau: Float[Array, "*n"]) -> Float[Array, "n s s"]:
        """The homogeneous flow as a matrix, ``Φ = exp(Aτ)``, one per neuron (a third
        of the cost of [`eventsnn.AffineFlow.affine`][], which adds the drive).

        **Arguments:** `tau` as for ``__call__``.

        **Returns:** ``Float[Array, "n s s"]``.
        """
        decay, grow, _, _ = self._coefficients(tau, self.b.dtype, driven=False)
        if grow is None:
            return decay[:, None, None]
        # Entry by entry: the derivative of a broadcast product is a sum over the
        # (tiny) matrix axes, which XLA:CPU runs ~10x slower than these few adds.
        s, shifted = self.size, self.shifted
        return jnp.stack([jnp.stack([decay * (float(i == j) + grow * shifted[:, i, j])
                                     for j in range(s)], -1) for i in range(s)], -2)

    def velocity(self, y: State) -> State:
        """The vector field.

        **Arguments:**

        - `y`: a state, ``Float[Array, "n s"]``.

        **Returns:** ``dy/dt = A y + b``, the same shape as ``y``.
        """
        return matvec(self.A, y) + self.b

    def peak_time(self, c: Float[Array, "n s"], y0: State) -> Float[Array, " n"]:
        """Time τ ≥ 0 at which ``d/dτ (c · y(τ)) = 0``; ``+inf`` if there is none.

        Along the flow, d/dτ (c·y) = c·exp(Aτ) u with u = A y0 + b. For two state
        variables this vanishes where (e^{δτ} - 1)/δ = -(c·u)/(c·(A - λ2 I)u).

        **Arguments:**

        - `c`: ``Float[Array, "n s"]``, the coefficients of the linear function
          (e.g. of an affine spike condition).
        - `y0`: the state at τ = 0, ``Float[Array, "n s"]``.

        **Returns:** ``Float[Array, "n"]``, the time of the extremum of ``c · y``
        per neuron (``+inf`` with one state variable, complex eigenvalues, or no
        extremum at τ ≥ 0).
        """
        u = self.velocity(y0)
        cu = rowdot(c, u)
        if self.size == 1:
            return jnp.full_like(cu, jnp.inf)
        w = rowdot(c, matvec(self.shifted, u))
        delta = self.lam1 - self.lam2
        safe_w = jnp.where(w == 0, 1.0, w)
        r = -cu / safe_w
        x = delta * r
        tau = r * _log1p_ratio(jnp.where(x > -1, x, 0.0))
        ok = (w != 0) & (x > -1) & (tau >= 0) & self.real
        return jnp.where(ok, tau, jnp.inf)


def matvec(M: Float[Array, "n s s"], y: State) -> State:
    """Row-wise ``M @ y``, spelled out over the (few) state variables (see `rowdot`);
    any leading axes."""
    s = y.shape[-1]
    return jnp.stack([rowdot(M[..., i, :], y) for i in range(s)], axis=-1)


def rowdot(c: Float[Array, "n s"], y: State) -> Float[Array, " n"]:
    """Row-wise dot product ``sum(c * y, -1)`` (any leading axes).

    Spelled out column by column on purpose: on XLA:CPU (jax 0.10.2) the fused
    multiply-and-reduce ``jnp.sum(c * y, -1)`` over a short last axis returns values
    from the wrong rows once a vmapped batch makes the array longer than 2¹⁵ rows (a
    120-neuron layer at batch ≥ 274), and a contraction (einsum) over so short an
    axis is slow. `tests/test_api.py::test_large_vmapped_batch_matches_chunks` guards
    the first.
    """
    return functools.reduce(
        operator.add, [c[..., k] * y[..., k] for k in range(y.shape[-1])])


# ------------------------------------------------------------- first crossing
def crossing_bracket(flow: AffineFlow, c, g0, y0: State, g_end, length):
    """Whether ``c·y(τ) + g0`` (negative at τ = 0) crosses zero upwards within
    ``(0, length]``, and a bracket ``[lo, hi]`` that holds its first crossing.

    The condition has at most one extremum on the segment (closed form): a maximum if
    it was rising at τ = 0. It crosses if it is non-negative at the end, or at an
    inside maximum; the bracket ends at that maximum in the second case and starts at
    an inside minimum.

    **Arguments:**

    - `flow`, `c`, `g0`: the exact flow and the affine condition's coefficients.
    - `y0`: the state at τ = 0, ``Float[Array, "n s"]``.
    - `g_end`: the condition at τ = ``length`` (callers often have the state there).
    - `length`: the segment's length (a scalar or one per neuron).

    **Returns:** ``(crosses, lo, hi)``, one entry per neuron.
    """
    t_peak = flow.peak_time(c, y0)
    inside = t_peak < length
    g_peak = rowdot(c, flow(jnp.where(inside, t_peak, length), y0)) + g0
    rising = rowdot(c, flow.velocity(y0)) > 0
    at_peak = inside & rising & (g_peak >= 0)
    crosses = at_peak | (g_end >= 0)
    lo = jnp.where(inside & ~rising, t_peak, 0.0)
    hi = jnp.where(at_peak, t_peak, length)
    return crosses, lo, hi


def first_crossing(
    flow: AffineFlow,
    c: Float[Array, "n s"],
    g0: Float[Array, " n"],
    y0: State,
    length: Float[Array, ""],
    active: Bool[Array, " n"],
    max_iters: int = 60,
) -> Float[Array, " n"]:
    """Per neuron, the first τ in (0, length] at which ``c·y(τ) + g0`` crosses zero
    upwards, or ``+inf``. Assumes the condition is negative at τ = 0.

    The condition has at most one extremum on the segment (closed form), so a sign
    bracket [lo, hi] that contains exactly the first crossing is known, and a Newton
    iteration kept inside the bracket (bisection when Newton leaves it) converges.
    """
    g_end = rowdot(c, flow(length, y0)) + g0
    crosses, lo, hi = crossing_bracket(flow, c, g0, y0, g_end, length)
    return refine_crossing(flow, c, g0, y0, active & crosses, lo, hi, length, max_iters)


def refine_crossing(
    flow: AffineFlow,
    c: Float[Array, "n s"],
    g0: Float[Array, " n"],
    y0: State,
    crosses: Bool[Array, " n"],
    lo: Float[Array, " n"],
    hi: Float[Array, " n"],
    length: Float[Array, "*n"],
    max_iters: int = 60,
) -> Float[Array, " n"]:
    """The crossing inside a bracket from `crossing_bracket` (the second half of
    `first_crossing`, for callers that have the bracket already):
    Newton kept inside ``[lo, hi]``, bisection when it leaves; ``+inf`` where not
    `crosses`."""
    dtype = y0.dtype
    eps = jnp.finfo(dtype).eps
    abs_c = jnp.abs(c)

    def g_slope_floor(tau):
        # Also whether |g| is within a few rounding errors of the terms it is summed
        # from: no finer root is representable there (in float32, Newton would
        # otherwise wander at that noise level until the bracket closes).
        y = flow(tau, y0)
        g = rowdot(c, y) + g0
        floor = jnp.abs(g) <= 4 * eps * (rowdot(abs_c, jnp.abs(y)) + jnp.abs(g0))
        return g, rowdot(c, flow.velocity(y)), floor

    lo = jnp.where(crosses, lo, 0.0).astype(dtype)
    hi = jnp.where(crosses, hi, 0.0).astype(dtype)
    xtol = 4 * jnp.finfo(dtype).eps * jnp.maximum(length, 1.0)

    # The carry travels as one array (lo, hi, x, done): one kernel writes it and one
    # selects it per sample under vmap, instead of one per piece (`_kernels.py`).
    def cond(carry):
        k, packed = carry
        return (k < max_iters) & ~jnp.all(packed[3] > 0.5)

    def step(carry):
        k, packed = carry
        lo, hi, x, done = packed[0], packed[1], packed[2], packed[3] > 0.5
        g, slope, floor = g_slope_floor(x)
        below = g < 0
        lo = jnp.where(below, x, lo)
        hi = jnp.where(below, hi, x)
        safe_slope = jnp.where(slope > 0, slope, 1.0)
        newton = x - g / safe_slope
        inside = (slope > 0) & (newton > lo) & (newton < hi)
        x_new = jnp.where(inside, newton, 0.5 * (lo + hi))
        exact = (g == 0) | floor
        narrow = hi - lo <= xtol
        still = jnp.abs(x_new - x) <= xtol
        x_next = jnp.where(exact, x, jnp.where(narrow, hi, x_new))
        x = jnp.where(done, x, x_next)
        done = done | exact | narrow | still
        return k + 1, jnp.stack([lo, hi, x, done.astype(dtype)])

    x0 = 0.5 * (lo + hi)
    _, packed = jax.lax.while_loop(
        cond, step, (0, jnp.stack([lo, hi, x0, (~crosses).astype(dtype)])))
    return jnp.where(crosses, packed[2], jnp.inf)


# ------------------------------------------------------------- diffrax solver
class _ExactInterpolation(diffrax.AbstractLocalInterpolation):
    t0: Float[Array, ""]
    t1: Float[Array, ""]
    y0: State
    flow: AffineFlow

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return self.evaluate(t1) - self.evaluate(t0)
        return self.flow(t0 - self.t0, self.y0)


class ExactLinear(diffrax.AbstractSolver):
    """A diffrax solver that takes *exact* steps of linear (affine, time-invariant)
    dynamics of populations with one or two state variables per neuron.

    Every step is exact whatever its length, so one step spans a whole inter-event
    segment, and its dense output is exact too. Use it with any model whose
    ``linear`` attribute is ``True`` (and ``len(state_names) <= 2``); eventsnn picks it
    automatically for such models. It refuses (``ValueError``) models with more state
    variables, and returns an error result if ``A`` has complex eigenvalues.

    It also works in a plain ``diffrax.diffeqsolve`` on an ``ODETerm`` whose state is
    a ``(n, s)`` array of independent rows.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = _ExactInterpolation

    def order(self, terms):
        """The order of the solver (for diffrax's step-size heuristics).

        **Arguments:**

        - `terms`: as for [`diffrax.AbstractSolver.order`][].

        **Returns:** ``100``: an exact step has unbounded order.
        """
        return 100  # exact: the order of an exact step is unbounded

    def init(self, terms, t0, t1, y0, args):
        """The solver state (there is none).

        **Arguments:**

        - `terms`, `t0`, `t1`, `y0`, `args`: as for [`diffrax.diffeqsolve`][].

        **Returns:** ``None``.
        """
        return None

    def flow(self, terms, t0, y0, args) -> AffineFlow:
        """The exact flow of the vector field, read off at ``t0`` (the dynamics must
        not depend on time).

        **Arguments:**

        - `terms`: a diffrax term whose vector field is affine in ``y``.
        - `t0`: the time at which the vector field is read.
        - `y0`: a state, ``Float[Array, "n s"]`` (only its shape and dtype are used).
        - `args`: passed to the vector field.

        **Returns:** an [`eventsnn.AffineFlow`][].
        """
        return AffineFlow.from_vector_field(
            lambda y: terms.vf(t0, y, args), y0.shape, y0.dtype
        )

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        """One exact step from ``t0`` to ``t1``.

        **Arguments:**

        - `terms`, `t0`, `t1`, `y0`, `args`, `solver_state`, `made_jump`: as for
          [`diffrax.AbstractSolver.step`][] (`solver_state` and `made_jump` are
          unused).

        **Returns:** ``(y1, None, dense_info, None, result)``: the state at ``t1``, no
        error estimate (the step is exact), what the exact interpolation needs, no
        solver state, and ``diffrax.RESULTS.nonlinear_divergence`` if some ``A`` has
        complex eigenvalues (else ``successful``).
        """
        del solver_state, made_jump
        flow = self.flow(terms, t0, y0, args)
        y1 = flow(t1 - t0, y0)
        result = diffrax.RESULTS.where(
            jnp.all(flow.real), diffrax.RESULTS.successful,
            diffrax.RESULTS.nonlinear_divergence,
        )
        dense_info = dict(y0=y0, flow=flow)
        return y1, None, dense_info, None, result

    def func(self, terms, t0, y0, args):
        """Evaluate the vector field.

        **Arguments:**

        - `terms`, `t0`, `y0`, `args`: as for [`diffrax.AbstractSolver.func`][].

        **Returns:** the vector field at ``(t0, y0)``.
        """
        return terms.vf(t0, y0, args)
