r"""Data augmentation: random transformations of one sample's input spike times,
applied afresh to every training batch (``es.train.fit(..., augment=...)``).

Each augmentation is a function ``augment(key, times) -> times`` of one sample,
``times: Float[Array, "channels K"]`` with ``+inf`` padding; `fit` splits a fresh key
per step (derived from its ``seed``, so a run stays reproducible and resumable) and
``vmap``s the function over the batch inside the jitted step.

```python
augment = es.augment.chain(es.augment.shift_image(8, 8), es.augment.jitter(0.2))
es.train.fit(net, loss, optimizer, es.datasets.digits(), augment=augment)
```

| augmentation | what it does |
| --- | --- |
| [`jitter`][] | Gaussian noise on every spike time (clipped at 0) |
| [`shift_image`][] | moves an image code by whole pixels; pixels moved in are silent |
| [`chain`][] | applies several, each with its own key |
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._custom_types import Array, Float

_Times = Float[Array, "channels K"]
Augmentation = Callable[[jax.Array, _Times], _Times]


def jitter(sigma: float) -> Augmentation:
    """Add independent Gaussian noise of standard deviation ``sigma`` (ms) to every
    finite spike time; times pushed below 0 become 0, padding (``+inf``) stays. With
    several spikes per channel the noise can swap their order (the network sorts its
    inputs, so that is harmless); a time pushed to ``t_max`` or beyond is ignored by
    the network like any late input.

    **Arguments:** `sigma`: the noise's standard deviation (ms), finite and ``>= 0``.

    **Returns:** the augmentation ``(key, times) -> times``.

    **Raises:** ``ValueError`` for a negative or non-finite ``sigma``.
    """
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"`sigma` must be finite and >= 0; got {sigma!r}.")

    def apply(key, times):
        noise = sigma * jax.random.normal(key, times.shape, times.dtype)
        return jnp.where(jnp.isfinite(times), jnp.maximum(times + noise, 0.0), times)

    return apply


def shift_image(height: int, width: int, max_shift: int = 1) -> Augmentation:
    """Translate an image code (channel ``r * width + c`` is pixel ``(r, c)``, as
    `eventsnn.datasets.digits` and ``mnist5k`` lay them out) by a random whole number
    of pixels in ``[-max_shift, max_shift]`` along each axis. Pixels that move in from
    outside the frame are silent (``+inf``), like the background.

    **Arguments:**

    - `height`, `width`: the pixel grid (8 × 8 for digits, 28 × 28 for MNIST).
    - `max_shift`: the largest shift in pixels along each axis (0: the identity).

    **Returns:** the augmentation ``(key, times) -> times``.

    **Raises:** ``ValueError`` for non-positive sizes or a negative shift; at call
    time, if the sample does not have ``height * width`` channels.
    """
    if not (height >= 1 and width >= 1 and max_shift >= 0):
        raise ValueError(
            f"need height, width >= 1 and max_shift >= 0; got {height}, {width}, "
            f"{max_shift}."
        )

    def apply(key, times):
        if times.shape[0] != height * width:
            raise ValueError(
                f"shift_image({height}, {width}) needs {height * width} channels; the "
                f"sample has {times.shape[0]}."
            )
        image = times.reshape(height, width, -1)
        dy, dx = jax.random.randint(key, (2,), -max_shift, max_shift + 1)
        moved = jnp.roll(image, (dy, dx), axis=(0, 1))
        rows = jnp.arange(height)[:, None] - dy
        cols = jnp.arange(width)[None, :] - dx
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        return jnp.where(inside[..., None], moved, jnp.inf).reshape(times.shape)

    return apply


def chain(*augmentations: Augmentation) -> Augmentation:
    """Apply several augmentations in order, each with its own key.

    **Arguments:** `augmentations`: the augmentations, first applied first.

    **Returns:** the combined augmentation ``(key, times) -> times``.
    """

    def apply(key, times):
        for augmentation, k in zip(augmentations,
                                   jax.random.split(key, len(augmentations))):
            times = augmentation(k, times)
        return times

    return apply
