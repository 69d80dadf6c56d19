r"""Spike-time losses.

All take one sample (``vmap`` for a batch) and treat ``+inf`` as "no spike" without
ever producing NaN. Their gradients flow through the exact spike times.

| loss | uses | typical task |
| --- | --- | --- |
| [`first_spike_cross_entropy`][] | first spike times | time-to-first-spike classification |
| [`first_spike_regularizer`][] | first spike times | keeps the correct neuron early |
| [`spike_count_cross_entropy`][] | spike counts | rate classification (metric only: see its note) |
| [`spike_time_mse`][] | spike times | hitting target times |
| [`van_rossum_distance`][] | spike trains | matching a target train |
| [`max_membrane_cross_entropy`][] | max over time of a non-spiking membrane | EventProp's MNIST read-out |
"""

import jax
import jax.numpy as jnp

from ._custom_types import Array, Float, Int


def _finite_or(x, fill):
    return jnp.where(jnp.isfinite(x), x, fill)


def first_spike_cross_entropy(
    first: Float[Array, " n_out"], label: Int[Array, ""], tau: float = 1.0
) -> Float[Array, ""]:
    r"""Cross-entropy of a softmax over negative first-spike times,

    $$\mathcal L = -\log \frac{e^{-t_y/\tau}}{\sum_k e^{-t_k/\tau}},$$

    which makes the correct neuron $y$ fire first (Mostafa 2017; Göltz et al. 2021;
    Wunderlich & Pehle 2021). A silent neuron ($t = +\infty$) contributes
    $e^{-\infty} = 0$. If the correct neuron is silent while others fire the loss is
    large but finite: its time is replaced by the latest finite time plus ``10 tau``.
    If every neuron is silent the loss is $\log n_\text{out}$ with zero gradient.

    **Arguments:**

    - `first`: ``Float[Array, "n_out"]`` first spike time of each output neuron
      (``+inf`` = silent).
    - `label`: the correct class (an int).
    - `tau`: the softmax temperature (ms).

    **Returns:** the loss, a scalar.
    """
    finite = jnp.isfinite(first)
    latest = jnp.max(jnp.where(finite, first, -jnp.inf))
    latest = jnp.where(jnp.any(finite), latest, 0.0)
    label_silent = ~finite[label]
    # A silent correct neuron is treated as firing just after everyone else.
    times = jnp.where(finite, first, jnp.inf)
    times = times.at[label].set(jnp.where(label_silent, latest + 10 * tau, times[label]))
    logits = jnp.where(jnp.isfinite(times), -_finite_or(times, 0.0) / tau, -jnp.inf)
    logits = jnp.where(jnp.any(finite), logits, 0.0)
    return -jax.nn.log_softmax(logits)[label]


def first_spike_regularizer(
    first: Float[Array, " n_out"], label: Int[Array, ""], tau: float = 10.0,
    t_silent: float | None = None,
) -> Float[Array, ""]:
    r"""$e^{t_y/\tau} - 1$: pushes the correct neuron to fire early (Göltz et al. 2021
    use it with the cross-entropy).

    **Arguments:**

    - `first`: ``Float[Array, "n_out"]`` first spike time of each output neuron.
    - `label`: the correct class (an int).
    - `tau`: the time scale (ms).
    - `t_silent`: the time a silent correct neuron counts as firing at (pass the
      network's ``t_max``). With the default ``None`` a silent correct neuron counts
      as firing at 0, so it adds nothing to the loss.

    **Returns:** the regulariser, a scalar.
    """
    t = first[label]
    if t_silent is not None:
        t = jnp.where(jnp.isfinite(t), t, t_silent)
    else:
        t = jnp.where(jnp.isfinite(t), t, 0.0)
    return jnp.expm1(t / tau)


def spike_count_cross_entropy(
    counts: Int[Array, " n_out"], label: Int[Array, ""]
) -> Float[Array, ""]:
    r"""Cross-entropy of a softmax over spike counts,
    $-\log(e^{c_y}/\sum_k e^{c_k})$.

    Note: a spike count is piecewise constant in the parameters, so with exact
    gradients this loss has zero gradient almost everywhere (time-stepped libraries
    train it through surrogate gradients). Use it as a metric, or train with a
    spike-time loss.

    **Arguments:**

    - `counts`: ``Int[Array, "n_out"]`` spike count of each output neuron.
    - `label`: the correct class (an int).

    **Returns:** the loss, a scalar.
    """
    logits = jnp.asarray(counts, dtype=float)
    return -jax.nn.log_softmax(logits)[label]


def spike_time_mse(
    times: Float[Array, "n S"], target: Float[Array, "n S"], t_silent: float
) -> Float[Array, ""]:
    r"""Mean squared error between spike times and target times (ms²).

    Missing spikes (``+inf``) on either side are replaced by ``t_silent`` (use the
    network's ``t_max``). That replacement is a constant, so a missing spike adds a
    penalty but no gradient (a spike that does not exist has no time to move):
    combine with a loss or initialisation that makes neurons fire.

    **Arguments:**

    - `times`: ``Float[Array, "n S"]`` spike times (``+inf`` padding).
    - `target`: target times, the same shape.
    - `t_silent`: what a missing spike counts as.

    **Returns:** the mean over all entries, a scalar.
    """
    a = _finite_or(times, t_silent)
    b = _finite_or(target, t_silent)
    return jnp.mean((a - b) ** 2)


def van_rossum_distance(
    times: Float[Array, " S"], target: Float[Array, " S2"], tau: float = 5.0
) -> Float[Array, ""]:
    r"""Squared van Rossum (2001) distance between two spike trains.

    Each train is filtered with a causal exponential kernel $e^{-t/\tau}$ and
    $D^2 = \frac{1}{\tau}\int_0^\infty (f - g)^2\,dt$, which has the closed form

    $$D^2 = \tfrac12\Big[\sum_{ij} e^{-|t_i - t_j|/\tau} + \sum_{ij} e^{-|s_i - s_j|/\tau}
            - 2 \sum_{ij} e^{-|t_i - s_j|/\tau}\Big].$$

    ``+inf`` entries are absent spikes. Differentiable in every finite spike time.

    **Arguments:**

    - `times`: ``Float[Array, "S"]`` one spike train.
    - `target`: ``Float[Array, "S2"]`` the other (its length may differ).
    - `tau`: the kernel's time constant (ms).

    **Returns:** $D^2$, a scalar.
    """

    def kernel_sum(a, b):
        valid = jnp.isfinite(a)[:, None] & jnp.isfinite(b)[None, :]
        diff = _finite_or(a, 0.0)[:, None] - _finite_or(b, 0.0)[None, :]
        # |x| via sqrt(x² + 0) would have a NaN gradient at 0; the i == j terms of a
        # train with itself are constant (e^0), so use a gradient-safe abs.
        dist = jnp.where(diff == 0, 0.0, jnp.abs(jnp.where(diff == 0, 1.0, diff)))
        return jnp.sum(jnp.where(valid, jnp.exp(-dist / tau), 0.0))

    return 0.5 * (kernel_sum(times, times) + kernel_sum(target, target)
                  - 2 * kernel_sum(times, target))


def max_membrane_cross_entropy(
    v_max: Float[Array, " n_out"], label: Int[Array, ""]
) -> Float[Array, ""]:
    r"""Cross-entropy of a softmax over each output neuron's maximum membrane
    potential over the trial, $-\log(e^{V_y}/\sum_k e^{V_k})$ (Wunderlich & Pehle
    2021, MNIST). Get ``v_max`` from [`eventsnn.FeedForward.max_membrane`][] on a
    network whose output layer does not spike; the time of the maximum is where
    $dv/dt = 0$, so its value is differentiable like a spike time.

    **Arguments:**

    - `v_max`: ``Float[Array, "n_out"]`` maximum membrane of each output neuron.
    - `label`: the correct class (an int).

    **Returns:** the loss, a scalar.
    """
    return -jax.nn.log_softmax(v_max)[label]
