"""Spike-time losses.

Only the first-spike cross-entropy exists so far; the full set (count cross-entropy,
target-time MSE, van Rossum, max-membrane) comes with the gradient work.
"""

import jax
import jax.numpy as jnp

from ._custom_types import Array, Float, Int


def first_spike_cross_entropy(
    first: Float[Array, "... n_out"], label: Int[Array, "..."], tau: float = 1.0
) -> Float[Array, "..."]:
    r"""Cross-entropy of a softmax over negative first-spike times:

    $$\mathcal L = -\log \frac{e^{-t_y/\tau}}{\sum_k e^{-t_k/\tau}}$$

    (Göltz et al. 2021; Wunderlich & Pehle 2021), so the correct neuron is pushed to
    fire first. Silent neurons (``t = +inf``) contribute ``e^{-inf} = 0``; if *every*
    neuron of a sample is silent the loss is ``log n_out`` (uniform), never NaN.
    """
    logits = jnp.where(jnp.isfinite(first), -first / tau, -jnp.inf)
    all_silent = ~jnp.any(jnp.isfinite(first), axis=-1, keepdims=True)
    logits = jnp.where(all_silent, 0.0, logits)
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, jnp.asarray(label)[..., None], axis=-1)[..., 0]
    return -picked
