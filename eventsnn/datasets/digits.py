"""scikit-learn's bundled 8×8 handwritten digits (1797 images, shipped with
scikit-learn: nothing to download), latency-coded."""

from ._dataset import Dataset
from ._images import image_dataset


def digits(
    split: str = "train",
    *,
    t_early: float = 0.0,
    t_late: float = 10.0,
    silent_below: float = 0.05,
    size: int | None = None,
    seed: int = 0,
) -> Dataset:
    """The 8×8 digits, one input channel per pixel (64), brighter pixels spiking
    earlier: intensity 1 at ``t_early``, near-black pixels (below ``silent_below``)
    silent.

    **Arguments:**

    - `split`: ``"train"``, ``"validation"`` or ``"test"``: a fixed seeded
      permutation, 70 % train, 10 % validation, 20 % test.
    - `t_early`, `t_late`: the coding window (ms): full intensity spikes at
      ``t_early``, zero intensity would spike at ``t_late``.
    - `silent_below`: pixels below this fraction of full intensity do not spike.
    - `size`: keep only the first ``size`` samples of the split.
    - `seed`: seed of the split permutation.

    **Returns:** a [`eventsnn.datasets.Dataset`][] with ``(N, 64, 1)`` inputs.

    **Raises:** ``ImportError`` with the install command if scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits dataset ships with scikit-learn: "
            "pip install 'eventsnn[datasets]' (or pip install scikit-learn)"
        ) from err
    data = load_digits()
    return image_dataset(data.data, data.target, "digits", split, t_early=t_early,
                         t_late=t_late, silent_below=silent_below, size=size,
                         seed=seed)
