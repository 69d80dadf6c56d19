"""The container every dataset loader returns."""

import dataclasses

import numpy as np

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A labelled, spike-encoded dataset held in host memory (numpy).

    **Fields:**

    - `inputs`: ``(N, in_size, K)`` input spike times (``+inf`` = no spike), ready for
      ``jax.vmap(net)``.
    - `labels`: ``(N,)`` integer class labels.
    - `features`: ``(N, F)`` the real values before encoding (for plots, e.g. the
      Yin-Yang decision map).
    - `classes`: class names.
    - `name`: dataset and split, e.g. ``"yin-yang/train"``.
    - `encoding`: the encoder settings used (a dict), so a plot or a new point can be
      encoded the same way.
    """

    inputs: np.ndarray
    labels: np.ndarray
    features: np.ndarray
    classes: tuple[str, ...]
    name: str
    encoding: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        n = len(self.labels)
        if self.inputs.ndim != 3 or len(self.inputs) != n or len(self.features) != n:
            raise ValueError(
                f"inconsistent dataset {self.name}: inputs {self.inputs.shape}, "
                f"labels {self.labels.shape}, features {self.features.shape}."
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_size(self) -> int:
        """Number of input channels."""
        return self.inputs.shape[1]

    @property
    def n_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def max_input_spikes(self) -> int:
        """The most input spikes (finite times) that one sample has: for a sparse
        code far fewer than ``in_size × K`` (see ``max_events`` of
        [`eventsnn.FeedForward`][])."""
        return int(np.isfinite(self.inputs).sum(axis=(1, 2)).max(initial=0))

    def subset(self, n: int) -> "Dataset":
        """The first ``n`` samples (classes stay interleaved in every loader here).

        **Arguments:**

        - `n`: number of samples to keep (all of them if ``n >= len(self)``).

        **Returns:** a new [`eventsnn.datasets.Dataset`][] named ``"<name>[:n]"``.
        """
        n = min(int(n), len(self))
        return dataclasses.replace(
            self, inputs=self.inputs[:n], labels=self.labels[:n],
            features=self.features[:n], name=f"{self.name}[:{n}]",
        )


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}; got {split!r}.")
    return split


def split_indices(n: int, split: str, seed: int, fractions=(0.7, 0.1, 0.2)):
    """Indices of ``split`` in a fixed, seeded permutation of ``range(n)``: the splits
    are disjoint and the same on every machine."""
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val),
              "test": (n_train + n_val, n)}
    lo, hi = bounds[split]
    return order[lo:hi]
