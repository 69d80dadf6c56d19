"""Shared latency code for the bundled image datasets."""

import numpy as np

from ..encoding import latency
from ._dataset import Dataset, check_split, split_indices


def image_dataset(images, labels, name, split, *, t_early, t_late, silent_below,
                  size, seed) -> Dataset:
    """Scale ``images`` (N, pixels) to [0, 1], split, and latency-code them: brighter
    pixels fire earlier, pixels darker than ``silent_below`` stay silent."""
    check_split(split)
    images = np.asarray(images, float)
    images = images / images.max()
    index = split_indices(len(labels), split, seed)
    if size is not None:
        if int(size) < 1:
            raise ValueError(f"`size` must be positive; got {size!r}.")
        index = index[: int(size)]
    features = images[index]
    inputs = np.asarray(latency(features, t_early, t_late, larger_first=True,
                                silent_below=silent_below))
    classes = tuple(str(k) for k in range(10))
    return Dataset(
        inputs=inputs, labels=np.asarray(labels)[index].astype(np.int32),
        features=features, classes=classes, name=f"{name}/{split}",
        encoding=dict(kind="latency", t_early=t_early, t_late=t_late,
                      larger_first=True, silent_below=silent_below),
    )
