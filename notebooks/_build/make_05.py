"""Builds notebooks/05_train_yin_yang.ipynb (run from the repo root, then execute it
with `jupyter nbconvert --execute --inplace` or nbclient to save the figures)."""

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("""# 5 · Training on Yin-Yang with exact gradients

The Yin-Yang dataset (Kriener et al. 2022) is a small 2-D problem that a linear
classifier cannot solve (~64 %), so a network has to use its hidden layer. Each point
$(x, y)$ becomes four input spikes at times proportional to $(x, y, 1-x, 1-y)$, plus a
bias spike. The network is read out by **time to first spike**: the output neuron that
fires first is the class. Gradients are exact (EventProp): they flow through the spike
times themselves.

This notebook trains a small network for a few epochs so that it runs in about a minute;
`eventsnn train yin-yang` runs the full-size version from the command line."""),
    code("""import jax, jax.numpy as jnp, numpy as np, optax
import matplotlib.pyplot as plt
import eventsnn as es

train = es.datasets.yin_yang("train", size=1000)
val = es.datasets.yin_yang("validation", size=500)
print(train.inputs.shape, "input spike times;", np.bincount(train.labels), "per class")
fig, ax = plt.subplots(figsize=(4, 4))
for k, name in enumerate(train.classes):
    sel = train.labels == k
    ax.scatter(*train.features[sel, :2].T, s=4, label=name)
ax.set_aspect("equal"); ax.legend(); ax.set_title("Yin-Yang training points");"""),
    md("""A 5-40-3 network of LIF neurons ($\\tau_m$ = 20 ms, $\\tau_s$ = 5 ms). The loss is
the cross-entropy of a softmax over negative first-spike times (temperature 2.5 ms).
`fit` jits the whole step, shows a progress bar, evaluates on the validation set after
every epoch, and bumps the weights of neurons that stay silent (they would get no
gradient). It returns the network of the epoch with the best validation accuracy
(`result.best_epoch`; `result.last_net` is the last one)."""),
    code("""net = es.FeedForward(5, [40, 3], es.LIF(), jax.random.key(0), t_max=30.0,
                     init_mean=2.0, init_std=0.5)
result = es.train.fit(net, es.train.first_spike_loss(tau=2.5), optax.lamb(2e-2), train,
                      validation=val, epochs=6, batch_size=50, progress=False)
for row in result.history:
    print(row["epoch"], f"train acc {row['train_accuracy']:.3f}",
          f"val acc {row['val_accuracy']:.3f}")
print("kept epoch", result.best_epoch)
es.plot.training_curves(result.history);"""),
    md("""**Decision map.** Encode a grid of points the way the dataset does and colour each
by the class whose output neuron fires first."""),
    code("""from eventsnn.datasets.yin_yang import yin_yang_inputs

side = 60
u = (np.arange(side) + 0.5) / side
gx, gy = np.meshgrid(u, u)
grid = yin_yang_inputs(np.stack([gx.ravel(), gy.ravel()], -1), **val.encoding)
run = jax.jit(jax.vmap(result.net))
first = np.concatenate([np.asarray(run(jnp.asarray(grid[i:i + 60], jnp.float32)).first)
                        for i in range(0, len(grid), 60)])
pred = np.where(np.isfinite(first).any(-1), first.argmin(-1), -1).reshape(side, side)
pred = np.where((gx - 0.5) ** 2 + (gy - 0.5) ** 2 <= 0.25, pred, -1)
es.plot.decision_map(pred, points=val.features[:, :2], labels=val.labels,
                     class_names=val.classes);"""),
    md("""**A trained network at work.** For the first validation sample that the network
classifies correctly, the raster shows the five input spikes (the bias spike at $t = 0$
included), the hidden layer's first spikes and the output spikes; below, the output
neurons' membranes (`state_at_t`; output neuron $k$ stands for class $k$) — the correct
one crosses threshold first. The network runs in first-spike mode (`max_spikes=1`, the
default): a neuron that has fired is switched off, so its membrane stays at the reset
value after its spike."""),
    code("""first_val = np.asarray(run(jnp.asarray(val.inputs[:60], jnp.float32)).first)
pred_val = np.where(np.isfinite(first_val).any(-1), first_val.argmin(-1), -1)
k = int(np.flatnonzero(pred_val == val.labels[:60])[0])   # first correctly classified
x = jnp.asarray(val.inputs[k], jnp.float32)
out = result.net(x)
fig, axes = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
es.plot.raster(out, axes[0], inputs=val.inputs[k], t_max=30.0)
axes[0].set_xlim(-0.5, 30.0)   # so that the bias spike at t = 0 is not cut in half
axes[0].set_title(f"validation sample {k}: class {val.classes[val.labels[k]]}")
ts = jnp.linspace(0.0, 30.0, 500)
traj = result.net.state_at_t(x, ts)
es.plot.states(result.net.neurons[-1], ts, traj, spikes=out.layers[-1], variables=[0],
               ax=[axes[1]]);"""),
    md("""The full-size run (`eventsnn train yin-yang`: 120 hidden neurons, 5000 samples,
30 epochs, a cosine learning-rate schedule) and its measured accuracy are in the
README."""),
]
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                             "language": "python"}
nbf.write(nb, "notebooks/05_train_yin_yang.ipynb")
