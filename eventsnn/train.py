"""Training loop: optax optimiser, jitted steps, data parallel over devices, progress
bar, per-epoch evaluation, metrics log, checkpoints and resume.

```python
net = es.FeedForward(5, [120, 3], es.LIF(), key, t_max=30.0)
result = es.train.fit(
    net, es.train.first_spike_loss(tau=1.0), optax.adam(3e-3),
    es.datasets.yin_yang("train"), validation=es.datasets.yin_yang("validation"),
    epochs=20, batch_size=64, log_dir="runs/yy",
)
result.net, result.history
```

**Silent neurons.** A neuron that never fires has no spike time, hence no gradient:
a network that starts (or becomes) silent cannot learn its way out by gradient descent
alone. After each step, every hidden neuron that was silent in *all* samples of the
batch gets each incoming weight raised by ``silent_bump · w_fire / n_in`` (``w_fire``:
the weight with which one input spike makes the model fire, `eventsnn._init`), and
each output neuron by that times the fraction of its own class's samples on which it
stayed silent (the "weight bumping" of Göltz et al. 2021, used for Yin-Yang
first-spike training). ``silent_bump=0`` turns it off. Bumped neurons are counted in
the log.

A silent *correct* output neuron is also pushed directly: with ``silent_penalty``
(default 1 where the output layer uses the exact flow map), the loss of such a sample
gains ``silent_penalty · (threshold − max_t v_y(t))``, the gap between the neuron's
highest membrane potential over the trial and its threshold. That maximum is
differentiable (as in Wunderlich & Pehle's max-membrane read-out), so the gradient
raises exactly the inputs that bring the neuron closest to firing.

**Overflow.** A sample whose simulation overflowed (`es.RESULTS`) is left out of the
loss and counted; it does not fail the batch. If more than ``max_overflow`` (fraction)
of an epoch's samples overflowed, training stops with the knob to turn.

**Skipped steps.** A step whose gradient is not finite changes nothing (weights,
optimiser state, bumping) and is counted (``skipped`` in the log). The engine's
gradients are exact or NaN, never silently wrong: a sample whose backward replay
cannot finish (a re-solve that runs out of ``max_steps``) makes the batch gradient
NaN; a NaN loss does too. If more than ``max_skipped`` (fraction) of an epoch's steps
were skipped, training stops.
"""

import csv
import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _validate, losses
from ._init import firing_weight
from ._network import FeedForward
from ._readout import max_membrane
from ._solve import ExactSegments
from ._spikes import Spikes
from .datasets import Dataset

__all__ = ["fit", "evaluate", "first_spike_loss", "first_spike_prediction",
           "TrainResult", "load_checkpoint"]


# ----------------------------------------------------------------- losses / metrics
def first_spike_loss(tau: float = 1.0, alpha: float = 0.0, tau_reg: float = 10.0,
                     t_silent: float | None = None) -> Callable:
    r"""The per-sample loss used for time-to-first-spike classification:

    $$\mathcal L = \text{CE}\big(\text{softmax}(-t/\tau), y\big)
                  + \alpha\,(e^{t_y/\tau_\text{reg}} - 1),$$

    the cross-entropy of Göltz et al. 2021 / Wunderlich & Pehle 2021 plus their
    regulariser that makes the correct neuron fire early (off when ``alpha = 0``).

    **Arguments:**

    - `tau`: softmax temperature τ (ms).
    - `alpha`: weight α of the early-spike regulariser (0: off).
    - `tau_reg`: its time scale τ_reg (ms).
    - `t_silent`: the time a silent correct neuron counts as in the regulariser
      (see [`eventsnn.losses.first_spike_regularizer`][]).

    **Returns:** ``loss(spikes, label)``, a scalar per sample.
    """

    def loss(spikes: Spikes, label):
        value = losses.first_spike_cross_entropy(spikes.first, label, tau)
        if alpha:
            value = value + alpha * losses.first_spike_regularizer(
                spikes.first, label, tau_reg, t_silent
            )
        return value

    return loss


def first_spike_prediction(spikes: Spikes):
    """The class whose output neuron fires first.

    **Arguments:**

    - `spikes`: one sample's [`eventsnn.Spikes`][].

    **Returns:** the class index, or ``-1`` (never correct) if every output neuron is
    silent.
    """
    first = spikes.first
    return jnp.where(jnp.isfinite(first).any(), jnp.argmin(first), -1)


# ----------------------------------------------------------------- results / logging
@dataclasses.dataclass
class TrainResult:
    """What [`fit`][] returns.

    **Fields:**

    - `net`: the trained network: with validation data and ``keep_best`` (the
      default) the one of the epoch with the best validation accuracy, else the last.
    - `opt_state`: the final optimiser state.
    - `history`: one dict of metrics per epoch (also written to
      ``log_dir/metrics.csv``).
    - `best_epoch`: the epoch (from 1) whose network is `net`; ``None`` when `net`
      is simply the last one (no validation data, or ``keep_best=False``).
    - `last_net`: the network after the last epoch.
    """

    net: FeedForward
    opt_state: optax.OptState
    history: list[dict]
    best_epoch: int | None = None
    last_net: FeedForward | None = None


def _trainable(net: FeedForward, train: str):
    """Boolean filter spec: which leaves the optimiser updates."""
    if train not in ("weights", "all"):
        raise ValueError(f"`train` must be 'weights' or 'all'; got {train!r}.")
    spec = jax.tree.map(lambda _: False, net)
    spec = eqx.tree_at(lambda n: n.weights, spec, replace=[True] * len(net.weights))
    if train == "all":
        neurons = jax.tree.map(eqx.is_inexact_array, net.neurons)
        spec = eqx.tree_at(lambda n: n.neurons, spec, replace=neurons)
    return spec


def _sharding():
    """Batch axis split over all devices, everything else replicated."""
    # A plain Mesh: automatic (GSPMD) axis types, so the engine's code needs no
    # sharding annotations of its own.
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


def _batches(n: int, batch_size: int, rng):
    """Index batches of fixed size (the last one padded with index 0 and masked), so
    every step has the same shapes and compiles once; no sample is dropped."""
    order = np.arange(n) if rng is None else rng.permutation(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        mask = np.ones(batch_size, bool)
        mask[len(index):] = False
        yield np.pad(index, (0, batch_size - len(index))), mask


def _strong(net: FeedForward) -> FeedForward:
    """``net`` with every weakly typed float leaf of a layer's neuron model (a
    parameter built from a Python float) cast to that layer's weight dtype.

    Weak types are part of a compiled program's signature, and an optimiser update or
    a checkpoint load returns strong ones: without this, a fresh network and a
    resumed (or already updated) one compile the step twice. A weak scalar takes the
    dtype of the arrays it meets, so the layer computes in its weights' dtype either
    way; only sub-expressions of parameters alone (e.g. ``tau_syn / (tau_mem -
    tau_syn)``), which were in the default float dtype, are now in the weights'."""

    def strong(dtype):
        def cast(leaf):
            weak = getattr(leaf, "weak_type", False)
            if weak and jnp.issubdtype(leaf.dtype, jnp.inexact):
                return jnp.asarray(leaf, dtype)
            return leaf
        return cast

    neurons = [jax.tree.map(strong(w.dtype), m, is_leaf=eqx.is_array)
               for m, w in zip(net.neurons, net.weights)]
    return eqx.tree_at(lambda n: n.neurons, net, tuple(neurons))


def _arrays(net: FeedForward):
    """``eqx.partition(_strong(net), eqx.is_array)``."""
    return eqx.partition(_strong(net), eqx.is_array)


def _as_dataset(data) -> Dataset:
    """``data`` as a Dataset, its spike times checked here (NaN or negative:
    ``ValueError``), since inside the compiled steps they could only be flagged."""
    if isinstance(data, Dataset):
        _validate.spike_time_values(data.inputs, f"{data.name}.inputs")
        return data
    try:
        inputs, labels = data
    except (TypeError, ValueError):
        raise TypeError(
            "`data` must be an eventsnn.datasets.Dataset or a pair (inputs, labels)."
        ) from None
    inputs, labels = np.asarray(inputs), np.asarray(labels)
    _validate.spike_time_values(inputs, "inputs")
    return Dataset(inputs=inputs, labels=labels, features=np.zeros((len(labels), 0)),
                   classes=tuple(str(k) for k in range(int(labels.max()) + 1)),
                   name="data")


# ----------------------------------------------------------------- jitted pieces
def _label_penalty(net: FeedForward, out: Spikes, y):
    """Per sample: how far below firing the correct output neuron stayed, if it was
    silent (0 otherwise). Its membrane maximum over the trial is differentiable
    (`eventsnn._readout.max_membrane`), so this gives a silent correct neuron the
    gradient that its missing spike time cannot."""
    neuron = net.neurons[-1]

    def one(hidden_times, first, label):
        v_max = max_membrane(neuron, net.weights[-1], hidden_times, net.t_max)
        y0 = neuron.init_state(v_max.shape[0]).astype(v_max.dtype)
        g = neuron.spike_condition(net.t_max, y0.at[:, 0].set(v_max), jnp.zeros_like(v_max))
        silent = ~jnp.isfinite(first[label])
        return jnp.where(silent, jax.nn.relu(-g[label]), 0.0)

    return jax.vmap(one)(out.layers[-2].times, out.first, y)


def _batch_loss(params, static, loss, predict, penalty, x, y, mask):
    net = eqx.combine(params, static)
    out = jax.vmap(net)(x)
    ok = ~jnp.any(out.overflow, axis=-1)
    use = mask & ok
    per = jax.vmap(loss)(out, y)
    if penalty is not None:
        per = per + penalty * _label_penalty(net, out, y)
    per = jnp.where(use, per, 0.0)
    total = jnp.sum(per) / jnp.maximum(jnp.sum(use), 1)
    correct = jnp.sum(use & (jax.vmap(predict)(out) == y))
    # Neurons to bump: hidden neurons silent on the whole batch, and each output
    # neuron in proportion to how often it stayed silent on samples of its own class.
    silent = [jnp.all(~jnp.isfinite(layer.first) | ~use[:, None], axis=0)
              .astype(per.dtype) for layer in out.layers[:-1]]
    own = (jax.nn.one_hot(y, out.first.shape[-1], dtype=bool) & use[:, None])
    missing = own & ~jnp.isfinite(out.first)
    silent.append(jnp.sum(missing, 0) / jnp.maximum(jnp.sum(own, 0), 1))
    stats = dict(loss_sum=jnp.sum(per), correct=correct, used=jnp.sum(use),
                 overflow=jnp.sum(mask & ~ok), label_silent=jnp.sum(missing))
    return total, (stats, silent)


@eqx.filter_jit
def _train_step(spec, params, static, opt_state, optimizer, loss, predict, penalty,
                bump, augment, key, x, y, mask):
    if augment is not None:
        x = jax.vmap(augment)(jax.random.split(key, x.shape[0]), x)
    # Only the trained leaves are differentiated: the replays then carry no
    # derivative for the rest (training the weights alone, a non-linear layer's
    # re-solves carry the state's sensitivities and none for the model's parameters).
    trainable, frozen = eqx.partition(params, spec)

    def batch_loss(trainable):
        return _batch_loss(eqx.combine(trainable, frozen), static, loss, predict,
                           penalty, x, y, mask)

    (_, (stats, silent)), grads = jax.value_and_grad(batch_loss, has_aux=True)(
        trainable)
    updates, new_opt_state = optimizer.update(grads, opt_state, trainable)
    new_params = eqx.apply_updates(params, updates)
    # Weight bumping: raise the input weights of neurons silent on the whole batch.
    new_weights = []
    for w, amount, unit in zip(new_params.weights, silent, bump):
        new_weights.append(w + unit * amount[None, :])
    new_params = eqx.tree_at(lambda p: p.weights, new_params, new_weights)
    # A gradient that is not finite (a replay that could not finish, or a loss that
    # is NaN) skips the step: nothing changes, and the step is counted.
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g))
                                for g in jax.tree.leaves(grads)]))
    params, opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                     (new_params, new_opt_state), (params, opt_state))
    stats["bumped"] = jnp.where(
        finite, sum(jnp.sum((a > 0) & (u > 0)) for a, u in zip(silent, bump)), 0)
    stats["skipped"] = ~finite
    # The epoch's mean training loss is over the steps taken.
    stats["loss_sum"] = jnp.where(finite, stats["loss_sum"], 0.0)
    stats["used"] = jnp.where(finite, stats["used"], 0)
    return params, opt_state, stats


@eqx.filter_jit
def _eval_step(params, static, loss, predict, x, y, mask):
    _, (stats, _) = _batch_loss(params, static, loss, predict, None, x, y, mask)
    return stats


def evaluate(net: FeedForward, data, loss: Callable | None = None,
             predict: Callable = first_spike_prediction, batch_size: int = 64) -> dict:
    """Accuracy (and mean loss, if ``loss`` is given) of ``net`` on ``data``.

    **Arguments:**

    - `net`: the network.
    - `data`: a [`eventsnn.datasets.Dataset`][] or a tuple ``(inputs, labels)``.
    - `loss`: per-sample ``loss(spikes, label)`` (default: `first_spike_loss()`).
    - `predict`: ``predict(spikes) -> class`` (default: the first output to fire).
    - `batch_size`: samples per compiled call (default 64; rounded up to a multiple
      of the number of devices).

    **Returns:** ``{"accuracy", "loss", "overflow"}``; ``overflow`` counts samples whose
    simulation did not finish cleanly (they count as wrong).
    """
    data = _as_dataset(data)
    loss = loss or first_spike_loss()
    params, static = _arrays(net)
    batch_size = min(batch_size, len(data))
    data_sharding, replicated = _sharding()
    n_dev = len(jax.devices())
    batch_size = math.ceil(batch_size / n_dev) * n_dev
    params = jax.device_put(params, replicated)
    totals = dict(loss_sum=0.0, correct=0, used=0, overflow=0)
    for index, mask in _batches(len(data), batch_size, None):
        x, y, m = jax.device_put(
            (data.inputs[index], data.labels[index], mask), data_sharding
        )
        stats = _eval_step(params, static, loss, predict, x, y, m)
        for k in totals:
            totals[k] += float(stats[k])
    return dict(accuracy=totals["correct"] / len(data),
                loss=totals["loss_sum"] / max(totals["used"], 1),
                overflow=int(totals["overflow"]))


def _penalty_weight(net: FeedForward, silent_penalty):
    exact = len(net.sizes) > 1 and isinstance(net.segments[-1], ExactSegments)
    if silent_penalty is None:
        return 1.0 if exact else None
    if silent_penalty == 0:
        return None
    if not exact:
        raise ValueError(
            "`silent_penalty` needs a network with a hidden layer and an output layer "
            "on the exact flow map (a linear model such as LIF); pass "
            "silent_penalty=0 for this network."
        )
    return float(silent_penalty)


# ----------------------------------------------------------------- checkpoints
def _save_leaves(path: pathlib.Path, tree):
    """Serialise ``tree`` to ``path`` atomically (a crash leaves the old file)."""
    tmp = path.with_name(path.name + ".tmp")
    eqx.tree_serialise_leaves(tmp, tree)
    tmp.replace(path)


def _save_checkpoint(folder: pathlib.Path, net, opt_state, history, seed, train):
    _save_leaves(folder / "checkpoint.eqx", (net, opt_state))
    (folder / "checkpoint.json").write_text(
        json.dumps(dict(epoch=len(history), seed=seed, train=train, history=history),
                   indent=1)
    )


def _check_same_run(folder: pathlib.Path, **settings):
    """Refuse to resume a checkpoint written with other ``settings`` (the shuffling
    seed, what is trained): the continued run would be neither the old one nor a new
    one."""
    meta = json.loads((folder / "checkpoint.json").read_text())
    differ = {k: (meta[k], v) for k, v in settings.items()
              if k in meta and meta[k] != v}
    if differ:
        said = ", ".join(f"{k}={new!r} (checkpoint: {old!r})"
                         for k, (old, new) in differ.items())
        raise ValueError(f"cannot resume the run in {folder} with other settings: "
                         f"{said}. Use the same settings, or another `log_dir`.")


def load_checkpoint(folder, net: FeedForward, optimizer=None):
    """Load ``(net, opt_state, history)`` saved by [`fit`][] in ``folder``.

    ``net`` (and ``optimizer``, whose state is restored) must be built as for the
    run that wrote the checkpoint: they give the structure that the saved leaves are
    read into.

    **Arguments:**

    - `folder`: the ``log_dir`` of the run.
    - `net`: a network of the same structure.
    - `optimizer`: the run's optax optimiser, to restore its state (optional).

    **Returns:** ``(net, opt_state, history)``: the saved network, the optimiser state
    (``None`` without `optimizer`) and the per-epoch metrics. Raises
    ``FileNotFoundError`` if ``folder`` holds no checkpoint.
    """
    folder = pathlib.Path(folder)
    if not (folder / "checkpoint.eqx").exists():
        raise FileNotFoundError(f"no checkpoint in {folder}")
    meta = json.loads((folder / "checkpoint.json").read_text())
    spec = _trainable(net, meta.get("train", "weights"))
    opt_state = None
    if optimizer is not None:
        opt_state = optimizer.init(eqx.filter(net, spec))
    net, opt_state = eqx.tree_deserialise_leaves(folder / "checkpoint.eqx",
                                                 (net, opt_state))
    return net, opt_state, meta["history"]


def _write_metrics(folder: pathlib.Path, history: list[dict]):
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


# ----------------------------------------------------------------- the loop
def fit(
    net: FeedForward,
    loss: Callable,
    optimizer: optax.GradientTransformation,
    data,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    validation=None,
    predict: Callable = first_spike_prediction,
    train: str = "weights",
    silent_bump: float = 0.05,
    silent_penalty: float | None = None,
    max_overflow: float = 0.01,
    max_skipped: float = 0.1,
    keep_best: bool = True,
    augment: Callable | None = None,
    log_dir=None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable | None = None,
) -> TrainResult:
    """Train ``net`` with an optax optimiser on minibatches.

    **Arguments:**

    - `net`: a [`eventsnn.FeedForward`][].
    - `loss`: per-sample loss ``loss(spikes, label) -> scalar`` (e.g.
      [`first_spike_loss`][]); averaged over the batch.
    - `optimizer`: any ``optax.GradientTransformation``.
    - `data`: a [`eventsnn.datasets.Dataset`][] or a pair ``(inputs, labels)`` with
      inputs ``(N, in_size, K)``.
    - `epochs`, `batch_size`: the schedule. Batches have a fixed size (the last is
      padded and masked), so the step compiles once.
    - `seed`: shuffling order (reproducible: same seed, same run).
    - `validation`: data evaluated after every epoch (accuracy and loss logged).
    - `predict`: ``predict(spikes) -> class`` for the accuracy.
    - `train`: ``"weights"`` or ``"all"`` (also every neuron parameter: τ's,
      thresholds, biases).
    - `silent_bump`, `silent_penalty`, `max_overflow`: see the module docstring.
    - `max_skipped`: the fraction of an epoch's steps that may be skipped because
      their gradient was not finite (logged as ``skipped``; see the module
      docstring) before training stops.
    - `keep_best`: with `validation`, return the network of the epoch with the best
      validation accuracy (the first of equals) rather than the last. Spike-time
      training is noisy from epoch to epoch (an output neuron that falls silent costs
      several percent until it is bumped back), so the last epoch is often not the
      best; the test set plays no part in the choice.
    - `augment`: per-sample ``augment(key, input_times) -> input_times`` applied to
      every training batch inside the jitted step (e.g. `eventsnn.augment.jitter`);
      the key is derived from ``seed``, the epoch and the step, so runs stay
      reproducible and resume exactly. Validation and test data are not augmented.
    - `log_dir`: folder for ``metrics.csv``, ``checkpoint.eqx``/``.json`` (written
      after every epoch) and ``best.eqx`` (the best network so far).
    - `resume`: continue from the checkpoint in ``log_dir`` (the epochs already done
      count towards ``epochs``); ``ValueError`` if it was written with another `seed`
      or `train`.
    - `progress`: show a tqdm progress bar with the running loss and accuracy.
    - `callback`: called as ``callback(epoch, net, row)`` after each epoch.

    The step is one jitted function; on several devices (``jax.devices()``) the batch
    is split over them (``jax.sharding``), the network replicated, so the update is the
    same as on one device. ``batch_size`` is rounded up to a multiple of the device
    count.

    **Returns:** a [`TrainResult`][].

    **Raises:** ``RuntimeError`` if more than ``max_overflow`` of an epoch's samples
    overflowed their event budget, or more than ``max_skipped`` of its steps had a
    gradient that was not finite.
    """
    from tqdm import tqdm

    data = _as_dataset(data)
    if data.in_size != net.in_size:
        raise ValueError(
            f"data has {data.in_size} input channels but the network expects "
            f"in_size={net.in_size}."
        )
    if int(data.labels.max()) >= net.sizes[-1]:
        raise ValueError(
            f"labels go up to {int(data.labels.max())} but the output layer has "
            f"{net.sizes[-1]} neurons."
        )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    for name, value in (("max_overflow", max_overflow), ("max_skipped", max_skipped)):
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"`{name}` must be a fraction in [0, 1]; got {value!r}.")
    validation = None if validation is None else _as_dataset(validation)
    n_dev = len(jax.devices())
    batch_size = math.ceil(min(batch_size, len(data)) / n_dev) * n_dev
    net = _strong(net)  # before the optimiser state: its moments copy the dtypes
    spec = _trainable(net, train)
    opt_state = optimizer.init(eqx.filter(net, spec))
    history: list[dict] = []
    folder = None if log_dir is None else pathlib.Path(log_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if resume and (folder / "checkpoint.eqx").exists():
            _check_same_run(folder, seed=seed, train=train)
            net, opt_state, history = load_checkpoint(folder, net, optimizer)
    elif resume:
        raise ValueError("`resume=True` needs `log_dir`.")

    keep_best = keep_best and validation is not None
    best_net, best_epoch = None, None
    if keep_best and history and (folder / "best.eqx").exists():
        # Resumed: the best of the epochs already done.
        best_epoch = _best_epoch(history)
        best_net = eqx.tree_deserialise_leaves(folder / "best.eqx", net)

    data_sharding, replicated = _sharding()
    params, static = _arrays(net)
    params, opt_state = jax.device_put((params, opt_state), replicated)
    # Bump unit per layer: silent_bump × (weight of one input spike that fires the
    # neuron) / fan-in; 1 / silent_bump bumps add one firing weight over all inputs.
    fan_in = (net.in_size, *net.sizes[:-1])
    bump = [jnp.asarray(silent_bump * firing_weight(m, net.t_max) / k, w.dtype)
            for m, k, w in zip(net.neurons, fan_in, params.weights)]
    penalty = _penalty_weight(net, silent_penalty)
    steps = math.ceil(len(data) / batch_size)
    for epoch in range(len(history), epochs):
        rng = np.random.default_rng([seed, epoch])
        totals = dict(loss_sum=0.0, correct=0, used=0, overflow=0, bumped=0,
                      label_silent=0, skipped=0)
        start = time.perf_counter()
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for step, (index, mask) in enumerate(_batches(len(data), batch_size, rng)):
            x, y, m = jax.device_put(
                (data.inputs[index], data.labels[index], mask), data_sharding
            )
            key = None
            if augment is not None:
                key = jax.random.fold_in(jax.random.key(seed), epoch * steps + step)
            params, opt_state, stats = _train_step(
                spec, params, static, opt_state, optimizer, loss, predict, penalty,
                bump, augment, key, x, y, m
            )
            stats = jax.device_get(stats)
            for k in totals:
                totals[k] += float(stats[k])
            bar.update()
            bar.set_postfix(loss=f"{totals['loss_sum'] / max(totals['used'], 1):.3f}",
                            acc=f"{totals['correct'] / max(totals['used'], 1):.3f}")
        bar.close()
        net = eqx.combine(params, static)
        row = dict(
            epoch=epoch + 1,
            train_loss=totals["loss_sum"] / max(totals["used"], 1),
            train_accuracy=totals["correct"] / len(data),
            overflow=int(totals["overflow"]),
            bumped=int(totals["bumped"]),
            label_silent=int(totals["label_silent"]),
            skipped=int(totals["skipped"]),
            seconds=round(time.perf_counter() - start, 3),
        )
        if validation is not None:
            val = evaluate(net, validation, loss, predict)
            row.update(val_loss=val["loss"], val_accuracy=val["accuracy"],
                       val_overflow=val["overflow"])
        history.append(row)
        if keep_best and _best_epoch(history) == epoch + 1:
            best_net, best_epoch = net, epoch + 1
            if folder is not None:
                _save_leaves(folder / "best.eqx", best_net)
        if progress:
            shown = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in row.items()
            )
            tqdm.write(shown)
        if folder is not None:
            _write_metrics(folder, history)
            _save_checkpoint(folder, net, jax.device_get(opt_state), history, seed,
                             train)
        if callback is not None:
            callback(epoch, net, row)
        if totals["overflow"] > max_overflow * len(data):
            raise RuntimeError(
                f"{int(totals['overflow'])} of {len(data)} samples overflowed their "
                "event budget in this epoch (see es.RESULTS); raise the network's "
                "`max_events` (or `max_spikes`), or pass a larger `max_overflow`."
            )
        if totals["skipped"] > max_skipped * steps:
            raise RuntimeError(
                f"{int(totals['skipped'])} of {steps} steps in this epoch had a "
                "gradient that was not finite and were skipped: a NaN loss, or a "
                "replay that ran out of solver steps (raise the segment solver's "
                "`max_steps`); pass a larger `max_skipped` to go on regardless."
            )
    last = eqx.combine(params, static)
    if best_net is None:
        best_epoch = None
    return TrainResult(net=last if best_net is None else best_net,
                       opt_state=opt_state, history=history, best_epoch=best_epoch,
                       last_net=last)


def _best_epoch(history: list[dict]) -> int:
    """The epoch (from 1) with the highest validation accuracy, the first of equals."""
    accuracies = [row.get("val_accuracy", -1.0) for row in history]
    return int(np.argmax(accuracies)) + 1
