"""Datasets (Yin-Yang, digits, MNIST-5k) and encoders: definitions, balance, ranges,
determinism, round trips, and errors."""

import jax
import numpy as np
import pytest

import eventsnn as es
from eventsnn.datasets.yin_yang import yin_yang_class


# ------------------------------------------------------------------ Yin-Yang
def test_yin_yang_class_of_landmarks():
    # Independent of the implementation's formulas: points whose class follows from
    # the picture. Centre of the left dot, centre of the right dot, the left half's
    # big lobe (yang below the left small circle? no: the left dot sits in yang's
    # head), and outside the circle.
    r = 0.5
    assert yin_yang_class(0.5 * r, r) == 2  # left dot
    assert yin_yang_class(1.5 * r, r) == 2  # right dot
    assert yin_yang_class(0.5, 0.95) == 0  # top of the disc: yin
    assert yin_yang_class(0.5, 0.05) == 1  # bottom of the disc: yang
    assert yin_yang_class(0.02, 0.02) == -1  # corner: outside the disc
    # Point symmetry through the centre swaps yin and yang, keeps dots.
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (2000, 2))
    a, b = yin_yang_class(xy[:, 0], xy[:, 1]), yin_yang_class(1 - xy[:, 0], 1 - xy[:, 1])
    swap = np.array([1, 0, 2])
    inside = a >= 0
    assert (b[inside] == swap[a[inside]]).mean() > 0.99  # up to boundary points


def test_yin_yang_splits_balance_ranges_and_determinism():
    sizes = {"train": 5000, "validation": 1000, "test": 1000}
    seen = []
    for split, n in sizes.items():
        ds = es.datasets.yin_yang(split)
        assert len(ds) == n and ds.inputs.shape == (n, 5, 1) and ds.in_size == 5
        counts = np.bincount(ds.labels, minlength=3)
        assert counts.sum() == n and counts.min() > 0.28 * n  # balanced by rejection
        x, y = ds.features[:, 0], ds.features[:, 1]
        np.testing.assert_allclose(ds.features[:, 2:], 1 - ds.features[:, :2])
        assert (np.hypot(x - 0.5, y - 0.5) <= 0.5).all()
        np.testing.assert_array_equal(yin_yang_class(x, y), ds.labels)
        # Latency code: t = t_early + v (t_late - t_early), bias channel at t_bias.
        np.testing.assert_allclose(ds.inputs[:, :4, 0], 10.0 * ds.features)
        np.testing.assert_array_equal(ds.inputs[:, 4, 0], 0.0)
        again = es.datasets.yin_yang(split)
        np.testing.assert_array_equal(again.inputs, ds.inputs)
        seen.append(ds.features[:50])
    # The splits come from different seeds.
    assert not np.allclose(seen[0], seen[1]) and not np.allclose(seen[1], seen[2])
    other = es.datasets.yin_yang("train", size=50, seed=7)
    assert not np.allclose(other.features, seen[0])


def test_yin_yang_custom_coding_and_errors():
    ds = es.datasets.yin_yang("test", size=20, t_early=1.0, t_late=3.0, t_bias=None)
    assert ds.inputs.shape == (20, 4, 1)
    assert ds.inputs.min() >= 1.0 and ds.inputs.max() <= 3.0
    with pytest.raises(ValueError, match="split"):
        es.datasets.yin_yang("dev")
    with pytest.raises(ValueError, match="t_bias"):
        es.datasets.yin_yang("test", size=5, t_bias=-1.0)
    with pytest.raises(ValueError, match="unknown dataset"):
        es.datasets.load("cifar")


# ------------------------------------------------------------------ images
@pytest.mark.parametrize("name, n_total, in_size", [("digits", 1797, 64),
                                                    ("mnist5k", 5000, 784)])
def test_image_datasets(name, n_total, in_size):
    splits = {s: es.datasets.load(name, s) for s in ("train", "validation", "test")}
    assert sum(len(d) for d in splits.values()) == n_total
    for ds in splits.values():
        assert ds.inputs.shape[1:] == (in_size, 1) and ds.n_classes == 10
        assert set(np.unique(ds.labels)) == set(range(10))
        t = ds.inputs[np.isfinite(ds.inputs)]
        assert t.min() >= 0.0 and t.max() <= 10.0
        # Brightest pixel first, dark pixels silent.
        bright = ds.features >= 0.999
        np.testing.assert_allclose(ds.inputs[..., 0][bright], 0.0, atol=1e-9)
        assert np.isinf(ds.inputs[..., 0][ds.features < 0.05]).all()
        # The most spikes a sample has: counted per sample, it bounds them all.
        spikes = np.isfinite(ds.inputs).sum(axis=(1, 2))
        assert ds.max_input_spikes == spikes.max() < in_size
        assert ds.subset(3).max_input_spikes == spikes[:3].max()
    # Disjoint splits: no image appears in two of them (compare raw pixels).
    rows = {s: {d.features[i].tobytes() for i in range(len(d))} for s, d in splits.items()}
    assert not rows["train"] & rows["test"] and not rows["train"] & rows["validation"]


# ------------------------------------------------------------------ encoders
def test_latency_round_trip_and_order():
    x = np.array([[0.0, 0.25, 1.0], [0.5, 0.75, 0.1]])
    t = es.encoding.latency(x, 2.0, 6.0)
    np.testing.assert_allclose(t[..., 0], 2.0 + 4.0 * x)
    np.testing.assert_allclose(es.encoding.decode_latency(t, 2.0, 6.0), x, atol=1e-12)
    t2 = es.encoding.latency(x, 2.0, 6.0, larger_first=True, silent_below=0.2)
    np.testing.assert_allclose(t2[0, 1:, 0], [5.0, 2.0])
    assert np.isinf(t2[0, 0, 0]) and np.isinf(t2[1, 2, 0])
    back = es.encoding.decode_latency(t2, 2.0, 6.0, larger_first=True)
    np.testing.assert_allclose(back[0, 1:], x[0, 1:], atol=1e-12)
    assert np.isnan(back[0, 0])
    # Range in other units, and errors naming the argument.
    np.testing.assert_allclose(es.encoding.latency([16.0], 0, 1, x_max=16.0)[..., 0], [1])
    with pytest.raises(ValueError, match="x_min"):
        es.encoding.latency([1.5], 0.0, 1.0)
    with pytest.raises(ValueError, match="t_early"):
        es.encoding.latency([0.5], 3.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        es.encoding.latency([np.nan], 0.0, 1.0)


def test_latency_under_jit_matches_eager():
    x = np.linspace(0, 1, 7)
    eager = es.encoding.latency(x, 1.0, 9.0)
    jitted = jax.jit(lambda v: es.encoding.latency(v, 1.0, 9.0))(x)
    np.testing.assert_allclose(jitted, eager)


def test_poisson_statistics_and_layout():
    rates = np.array([0.0, 0.02, 0.2])  # per ms
    t_max = 1000.0
    times = np.asarray(es.encoding.poisson(jax.random.key(0), np.tile(rates, (200, 1)),
                                           t_max))
    assert times.shape[:2] == (200, 3)
    finite = np.isfinite(times)
    assert not finite[:, 0].any()  # rate 0: silent
    # Sorted, inside the window, padding only at the end of each train.
    assert (np.diff(np.where(finite, times, 2 * t_max), axis=-1) >= 0).all()
    assert (np.diff(finite.astype(int), axis=-1) <= 0).all()
    assert times[finite].min() >= 0 and times[finite].max() < t_max
    counts = finite.sum(-1)
    for j, rate in enumerate(rates[1:], start=1):
        mean = rate * t_max
        assert abs(counts[:, j].mean() - mean) < 4 * np.sqrt(mean / 200)
        assert abs(counts[:, j].var() - mean) < 0.35 * mean  # Poisson: var = mean
    with pytest.raises(ValueError, match="max_spikes"):
        es.encoding.poisson(jax.random.key(1), np.array([1.0]), 100.0, max_spikes=5)
    with pytest.raises(ValueError, match="non-negative"):
        es.encoding.poisson(jax.random.key(1), np.array([-1.0]), 100.0)
