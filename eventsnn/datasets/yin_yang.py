r"""The Yin-Yang dataset (Kriener, Göltz & Petrovici 2022, "The Yin-Yang dataset"),
generated procedurally: nothing to download.

A point $(x, y)$ in the unit square inside the big circle (radius $r_\text{big} = 0.5$)
belongs to *yin*, *yang* or the two *dots* (radius $r_\text{small} = 0.1$). Each sample
is $(x, y, 1 - x, 1 - y)$ so that every input carries the same total information, and
classes are balanced by drawing a target class first and rejecting points until one of
that class comes. A shallow classifier gets ~64 %, so it tests that a network uses its
hidden layer.
"""

import numpy as np

from ..encoding import latency
from ._dataset import Dataset, check_split

R_SMALL = 0.1
R_BIG = 0.5
CLASSES = ("yin", "yang", "dot")
SIZES = {"train": 5000, "validation": 1000, "test": 1000}
SEEDS = {"train": 42, "validation": 41, "test": 40}


def yin_yang_class(x, y, r_small: float = R_SMALL, r_big: float = R_BIG):
    """The class of points of the plane.

    **Arguments:**

    - `x`, `y`: coordinates (arrays of the same shape) in ``[0, 2 r_big]²``.
    - `r_small`: radius of the dots.
    - `r_big`: radius of the big circle, centred at ``(r_big, r_big)``.

    **Returns:** an int array of the same shape: 0 yin, 1 yang, 2 dot, -1 outside the
    big circle.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    yin = (
        (d_right <= r_small)
        | ((d_left > r_small) & (d_left <= 0.5 * r_big))
        | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    dot = (d_right < r_small) | (d_left < r_small)
    inside = np.hypot(x - r_big, y - r_big) <= r_big
    cls = np.where(dot, 2, np.where(yin, 0, 1))
    return np.where(inside, cls, -1)


def yin_yang_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced random points of the Yin-Yang figure.

    **Arguments:**

    - `n`: number of points.
    - `seed`: seed of the random generator (the same seed gives the same points).

    **Returns:** ``(features, labels)``: ``(n, 4)`` features ``(x, y, 1-x, 1-y)`` and
    ``(n,)`` class labels.
    """
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, len(CLASSES), size=n)
    points = np.empty((n, 2))
    for k in range(len(CLASSES)):
        want = np.flatnonzero(targets == k)
        found = []
        while sum(len(f) for f in found) < len(want):
            xy = rng.uniform(0.0, 2 * R_BIG, size=(4 * len(want) + 64, 2))
            found.append(xy[yin_yang_class(xy[:, 0], xy[:, 1]) == k])
        points[want] = np.concatenate(found)[: len(want)]
    features = np.concatenate([points, 1.0 - points], axis=1)
    return features, targets


def yin_yang(
    split: str = "train",
    *,
    size: int | None = None,
    t_early: float = 0.0,
    t_late: float = 10.0,
    t_bias: float | None = 0.0,
    seed: int | None = None,
) -> Dataset:
    """The Yin-Yang dataset, latency-coded.

    Each of the four features becomes one spike at
    ``t_early + feature * (t_late - t_early)``; a fifth *bias* channel spikes at
    ``t_bias`` in every sample (``None`` drops it), giving 5 inputs.

    **Arguments:**

    - `split`: ``"train"`` (5000), ``"validation"`` (1000) or ``"test"`` (1000), each
      from its own fixed seed, as in the published definition.
    - `size`: number of samples instead of the default for the split.
    - `t_early`, `t_late`, `t_bias`: the code (ms). Defaults suit ``tau_syn = 5``.
    - `seed`: override the split's seed.

    **Returns:** a [`eventsnn.datasets.Dataset`][].
    """
    check_split(split)
    n = SIZES[split] if size is None else int(size)
    if n < 1:
        raise ValueError(f"`size` must be positive; got {size!r}.")
    features, labels = yin_yang_points(n, SEEDS[split] if seed is None else seed)
    encoding = dict(kind="latency", t_early=t_early, t_late=t_late, t_bias=t_bias)
    return Dataset(
        inputs=yin_yang_inputs(features[:, :2], **encoding),
        labels=labels.astype(np.int32), features=features, classes=CLASSES,
        name=f"yin-yang/{split}", encoding=encoding,
    )


def yin_yang_inputs(
    points, *, t_early: float = 0.0, t_late: float = 10.0,
    t_bias: float | None = 0.0, kind: str = "latency",
) -> np.ndarray:
    """Spike-encode points of the plane as the Yin-Yang loader does;
    ``dataset.encoding`` holds the keyword arguments to pass for a given dataset.

    **Arguments:**

    - `points`: ``(m, 2)`` coordinates ``(x, y)`` in ``[0, 1]``.
    - `t_early`, `t_late`, `t_bias`: as for [`yin_yang`][].
    - `kind`: the encoding; only ``"latency"`` exists.

    **Returns:** ``(m, 5, 1)`` spike times with the bias channel last, ``(m, 4, 1)`` if
    ``t_bias`` is ``None``.
    """
    if kind != "latency":
        raise ValueError(f"unknown Yin-Yang encoding {kind!r}.")
    points = np.asarray(points, float)
    features = np.concatenate([points, 1.0 - points], axis=1)
    inputs = np.asarray(latency(features, t_early, t_late))
    if t_bias is None:
        return inputs
    if not (np.isfinite(t_bias) and t_bias >= 0):
        raise ValueError(f"`t_bias` must be a finite time >= 0; got {t_bias}.")
    return np.concatenate([inputs, np.full((len(points), 1, 1), float(t_bias))], axis=1)
