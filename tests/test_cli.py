"""Smoke tests of the ``eventsnn`` command line."""

import json
import re

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

import eventsnn as es
from eventsnn.cli import demo_input, main

# A small network (3 inputs -> 2 outputs, one layer) keeps compilation short; the
# precision of this test process, so that the CLI's network can be rebuilt here.
DTYPE = "float64" if jax.config.jax_enable_x64 else "float32"
SMALL = ["--hidden", "--inputs", "3", "--outputs", "2", "--t-max", "30",
         "--dtype", DTYPE]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_input_is_documented_pattern():
    x = demo_input(3, 30.0)
    expected = [[2.0, 12.0, 22.0, np.inf], [3.0, 13.0, 23.0, np.inf],
                [4.0, 14.0, 24.0, np.inf]]
    np.testing.assert_array_equal(x, expected)


def test_simulate_prints_spikes_and_writes_plots(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path), *SMALL]) == 0
    text = capsys.readouterr().out

    # The printed output spike times are those of the same network run directly.
    net = es.FeedForward(3, [2], es.LIF(), jax.random.key(0), t_max=30.0,
                         max_spikes=64)
    out = es.check(net(jnp.asarray(demo_input(3, 30.0))))
    table = text.split("output spike times (ms)")[1].split("layer")[0]
    printed = [float(t) for t in re.findall(r"\d+\.\d{3}", table)]
    expected = np.sort(np.asarray(out.times)[np.isfinite(out.times)])
    assert len(expected) > 0
    np.testing.assert_allclose(sorted(printed), expected, atol=5e-4)
    assert re.search(rf"output\s+2\s+{int(np.sum(out.counts))}\s+"
                     rf"{int(out.layers[0].num_events)}", text)

    for name in ("raster.png", "membrane.png"):
        path = tmp_path / name
        assert f"wrote {path}" in text
        assert path.stat().st_size > 0
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(path)
        height, width, channels = image.shape
        assert height > 300 and width > 600
        # Not blank: coloured lines/markers of several series were drawn.
        assert len(np.unique(image.reshape(-1, channels), axis=0)) > 20


def test_simulate_fails_loudly_on_overflow(tmp_path, capsys):
    # Output neurons fire ~10 times in 30 ms; keeping 2 spike times must not pass.
    status = main(["simulate", "--out", str(tmp_path), *SMALL, "--max-spikes", "2"])
    assert status == 1
    err = capsys.readouterr().err
    assert "Simulation did not finish cleanly" in err and "--max-spikes" in err
    assert not (tmp_path / "raster.png").exists()


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--neuron", "hodgkin-huxley"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--inputs", "0"])
    assert info.value.code == 2
    assert "--inputs: must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_train_refuses_augmentation_that_does_not_apply(tmp_path, capsys):
    # Checked before any data is loaded or anything compiled.
    assert main(["train", "yin-yang", "--shift", "1", "--out", str(tmp_path)]) == 1
    assert "--shift needs an image dataset" in capsys.readouterr().out
    for bad in ("-0.5", "nan"):
        assert main(["train", "digits", "--jitter", bad, "--out", str(tmp_path)]) == 1
        assert "must be finite and >= 0" in capsys.readouterr().out


def test_train_resume_refuses_other_settings(tmp_path, capsys, monkeypatch):
    """``--resume`` continues a run only with the settings it was started with (they
    are recorded in ``run.json`` before training)."""
    import eventsnn.cli.train as cli_train

    calls = []

    def fit(*args, **kwargs):  # stands in for training: only the check is tested
        calls.append(kwargs["resume"])
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train._train_lib, "fit", fit)
    base = ["train", "yin-yang", "--out", str(tmp_path), "--epochs", "5", "--no-plots"]
    with pytest.raises(KeyboardInterrupt):
        main(base)
    assert json.loads((tmp_path / "run.json").read_text())["epochs"] == 5
    capsys.readouterr()
    assert main([*base, "--resume", "--lr", "0.01", "--jitter", "0.1"]) == 1
    out = capsys.readouterr().out
    assert "--resume with other settings" in out
    assert "jitter 0.1 (was 0.0)" in out and "lr 0.01 (was 0.005)" in out
    assert calls == [False]  # refused before training
    with pytest.raises(KeyboardInterrupt):  # the same settings: training goes on
        main([*base, "--resume"])
    assert calls == [False, True]



def test_train_network_takes_only_the_input_spikes_the_data_has():
    # A sparse code (MNIST-5k: <= 287 spikes in 784 channels) on the loop-free path:
    # the hidden layer takes that many input spikes; the event loop keeps its default.
    from argparse import Namespace

    from eventsnn.cli.train import DEFAULTS, build_network

    settings = dict(DEFAULTS["mnist5k"], hidden=4)
    lif = build_network(Namespace(neuron="lif", seed=0), 784, 10, settings, 287)
    assert lif.max_events == (287, None)
    assert build_network(Namespace(neuron="lif", seed=0), 784, 10, settings,
                         None).max_events is None
    qif = build_network(Namespace(neuron="qif", seed=0), 784, 10, settings, 287)
    assert qif.max_events is None
    # Several spikes per neuron: the hidden layer runs its event loop (default budget).
    multi = build_network(Namespace(neuron="lif", seed=0), 784, 10,
                          dict(settings, max_spikes=3), 287)
    assert multi.max_spikes == (3, 1) and multi.max_events is None


@pytest.fixture
def trained_nets(monkeypatch):
    """The networks `eventsnn train` hands to `fit`, which stops at once."""
    import eventsnn.cli.train as cli_train

    nets = []

    def fit(net, *args, **kwargs):  # stands in for training
        nets.append(net)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train._train_lib, "fit", fit)
    return nets


def test_train_max_spikes_reaches_the_network(tmp_path, capsys, trained_nets):
    nets = trained_nets
    base = ["train", "yin-yang", "--out", str(tmp_path), "--no-plots"]
    with pytest.raises(KeyboardInterrupt):
        main([*base, "--max-spikes", "4"])
    assert nets[-1].max_spikes == (4, 1)
    assert "up to 4 spikes per hidden neuron" in capsys.readouterr().out
    assert json.loads((tmp_path / "run.json").read_text())["max_spikes"] == 4
    with pytest.raises(SystemExit) as info:
        main([*base, "--max-spikes", "0"])
    assert info.value.code == 2


def test_train_several_hidden_layers(tmp_path, capsys, trained_nets):
    """``--hidden 6 4``: two hidden layers of the chosen model; only the first takes
    the data's input-spike budget; one size keeps the single-layer settings."""
    nets = trained_nets
    base = ["train", "yin-yang", "--out", str(tmp_path), "--no-plots"]
    with pytest.raises(KeyboardInterrupt):
        main([*base, "--hidden", "6", "4", "--neuron", "qif", "--max-spikes", "2"])
    net = nets[-1]
    assert [w.shape for w in net.weights] == [(5, 6), (6, 4), (4, 3)]
    assert [type(m).__name__ for m in net.neurons] == ["QIF", "QIF", "LIF"]
    assert net.max_spikes == (2, 2, 1)
    assert "network 5-6-4-3" in capsys.readouterr().out
    assert json.loads((tmp_path / "run.json").read_text())["hidden"] == [6, 4]
    with pytest.raises(KeyboardInterrupt):
        main([*base, "--hidden", "7"])
    assert [w.shape for w in nets[-1].weights] == [(5, 7), (7, 3)]
    assert json.loads((tmp_path / "run.json").read_text())["hidden"] == 7

    from argparse import Namespace

    from eventsnn.cli.train import DEFAULTS, build_network

    settings = dict(DEFAULTS["mnist5k"], hidden=[4, 3])
    lif = build_network(Namespace(neuron="lif", seed=0), 784, 10, settings, 287)
    assert lif.max_events == (287, None, None)


def test_train_yin_yang_uses_its_input_code_and_window(tmp_path, capsys, monkeypatch):
    """The CLI's Yin-Yang code (inputs over 0-30 ms, bias spike at 10 ms) reaches the
    data that training sees, and the network's window leaves room after the last
    input spike."""
    import eventsnn.cli.train as cli_train

    seen = []

    def fit(net, loss, optimizer, train, **kwargs):  # stands in for training
        seen.append((net, train, kwargs["validation"]))
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train._train_lib, "fit", fit)
    with pytest.raises(KeyboardInterrupt):
        main(["train", "yin-yang", "--out", str(tmp_path), "--no-plots"])
    net, train, validation = seen[0]
    code = cli_train.DEFAULTS["yin-yang"]["encoding"]
    for data in (train, validation):
        assert data.encoding == dict(kind="latency", **code)
        times = data.inputs[:, :4, 0]
        np.testing.assert_allclose(times, code["t_late"] * data.features, rtol=1e-6)
        np.testing.assert_array_equal(data.inputs[:, 4, 0], code["t_bias"])
    assert net.t_max == cli_train.DEFAULTS["yin-yang"]["t_max"] >= 2 * code["t_late"]
    assert "tau 0.5 ms, regulariser 0.003 x (exp(t/6.4 ms) - 1)" in capsys.readouterr().out
    assert json.loads((tmp_path / "run.json").read_text())["encoding"] == code
