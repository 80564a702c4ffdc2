"""train_ch5 on a slice of the real Fashion-MNIST, the devices, and the CLI end to end."""

import io
import json
import re

import numpy as np
import pytest

from gluon_bn import cli, get_recipe
from gluon_bn.data import load_data_fashion_mnist
from gluon_bn.device import parse_device, probe_gpu, try_all_gpus, try_gpu
from gluon_bn.models import build_net, make_initializer
from gluon_bn.run.training import TrainingDiverged, seed_everything, train_ch5
from gluon_bn.runtime.loader import mx

LINE = re.compile(
    r"^epoch (\d+), loss (\d+\.\d{4}), train acc (\d\.\d{3}), "
    r"test acc (\d\.\d{3}), time (\d+\.\d) sec$"
)


def train_small(
    root, seed=0, epochs=2, ctx=mx.cpu(), variant="scratch", lr=None, sync=True, pipeline="d2l"
):
    recipe = get_recipe("d2l-en")
    seed_everything(seed)
    train_iter, test_iter = load_data_fashion_mnist(
        64, root=root, seed=seed, limit=1024, test_limit=512, pipeline=pipeline
    )
    net = build_net(recipe, variant)
    net.initialize(make_initializer(recipe.initializer), ctx=ctx)
    trainer = mx.gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": lr or recipe.learning_rate}
    )
    out = io.StringIO()
    history = train_ch5(
        net, train_iter, test_iter, 64, trainer, ctx, epochs, file=out, sync_every_batch=sync
    )
    return history, out.getvalue()


def test_train_ch5_prints_the_documents_lines_and_returns_them(fashion_root):
    history, text = train_small(fashion_root)
    lines = text.splitlines()
    assert lines[0] == "training on cpu(0)"
    assert len(lines) == 3 and "\r" not in text  # no progress counter in captured output
    for stats, line in zip(history, lines[1:]):
        m = LINE.match(line)
        assert m, line
        assert int(m[1]) == stats.epoch
        assert float(m[2]) == pytest.approx(stats.loss, abs=5e-5)
        assert float(m[3]) == pytest.approx(stats.train_acc, abs=5e-4)
        assert float(m[4]) == pytest.approx(stats.test_acc, abs=5e-4)
        assert float(m[5]) == pytest.approx(stats.seconds, abs=0.05)
        assert stats.examples_per_sec == pytest.approx(1024 / stats.train_seconds)
    assert history[1].loss < history[0].loss
    assert history[1].train_acc > 0.3


def test_same_seed_same_numbers_other_seed_other_numbers(fashion_root):
    a, _ = train_small(fashion_root, seed=3, epochs=1)
    b, _ = train_small(fashion_root, seed=3, epochs=1)
    c, _ = train_small(fashion_root, seed=4, epochs=1)
    key = lambda h: [(s.loss, s.train_acc, s.test_acc) for s in h]
    assert key(a) == key(b)
    assert key(a) != key(c)


def test_per_epoch_sync_and_fast_pipeline_give_the_same_numbers(fashion_root):
    a, _ = train_small(fashion_root, seed=5, epochs=1)
    b, _ = train_small(fashion_root, seed=5, epochs=1, sync=False, pipeline="fast")
    assert b[0].loss == pytest.approx(a[0].loss, rel=1e-5)
    assert (b[0].train_acc, b[0].test_acc) == (a[0].train_acc, a[0].test_acc)


def test_data_parallel_on_two_cpu_contexts(fashion_root):
    history, text = train_small(fashion_root, epochs=1, ctx=[mx.cpu(0), mx.cpu(1)])
    assert text.splitlines()[0] == "training on [cpu(0), cpu(1)]"
    assert np.isfinite(history[0].loss) and history[0].train_acc > 0.1


def test_divergence_names_epoch_and_batch(fashion_root):
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch \d+.*learning rate"):
        train_small(fashion_root, lr=1e30, variant="plain")


def test_per_epoch_sync_names_the_batch_that_diverged_first(fashion_root):
    errors = {}
    for sync in (True, False):
        with pytest.raises(TrainingDiverged) as exc:
            train_small(fashion_root, seed=0, lr=1e30, variant="plain", sync=sync)
        errors[sync] = exc.value
    # Same seed, data and arithmetic up to that batch, and one device: the same batch and value.
    assert isinstance(errors[False].batch, int) and errors[False].batch >= 1
    assert (errors[False].epoch, errors[False].batch) == (errors[True].epoch, errors[True].batch)
    assert errors[False].value == errors[True].value
    assert f"epoch 1, batch {errors[True].batch} (" in str(errors[False])


def test_try_gpu_falls_back_to_cpu_with_a_reason():
    err = io.StringIO()
    assert try_gpu(file=err) == mx.cpu()
    if not probe_gpu(0)[0]:
        assert err.getvalue().startswith("using cpu(0): ")
        assert try_all_gpus(file=io.StringIO()) == [mx.cpu()]
        with pytest.raises(ValueError, match="--device cpu"):
            parse_device("gpu")
    assert parse_device("cpu:0,cpu:1") == [mx.cpu(0), mx.cpu(1)]
    with pytest.raises(ValueError, match="cannot read device"):
        parse_device("tpu")


def test_cli_reproduce_end_to_end(fashion_root, tmp_path, capsys):
    status = cli.main(
        [
            "reproduce",
            "d2l-en",
            "--limit",
            "512",
            "--test-limit",
            "256",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--seed",
            "0",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    result = json.loads((tmp_path / "d2l-en_limit512.json").read_text())
    md = (tmp_path / "d2l-en_limit512.md").read_text()
    png = (tmp_path / "d2l-en_limit512.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert result["recipe"] == "d2l-en" and result["config"]["limit"] == 512
    assert [(r["variant"], r["seed"]) for r in result["runs"]] == [
        ("scratch", 0),
        ("gluon", 0),
        ("scratch", 1),
        ("gluon", 1),
    ]
    assert result["environment"]["mxnet"] == "1.9.1"
    # every printed epoch line is in the JSON, and the Markdown holds the mean over seeds
    printed = [LINE.match(l) for l in out.splitlines() if LINE.match(l)]
    assert len(printed) == 4
    for m, run in zip(printed, result["runs"]):
        assert float(m[2]) == pytest.approx(run["history"][0]["loss"], abs=5e-5)
    scratch = [r["history"][0]["loss"] for r in result["runs"] if r["variant"] == "scratch"]
    mean, sd = np.mean(scratch), np.std(scratch, ddof=1)
    assert f"| 1 | 0.6847 | {mean:.4f} ± {sd:.4f} |" in md
    assert "gpu(0)" in md  # where the document ran


@pytest.mark.parametrize(
    "argv,message",
    [
        (["reproduce", "d2l-fr"], "unknown recipe"),
        (["reproduce", "d2l-en", "--data-root", "/nonexistent"], "dataset-fashion-mnist"),
        (["reproduce", "d2l-en", "--resume"], "--checkpoint-dir"),
    ],
)
def test_cli_errors_are_one_message_without_traceback(argv, message, capsys, tmp_path):
    status = cli.main(argv + ["--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status != 0
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["reproduce", "d2l-en", "--batch-size", "0"],
        ["reproduce", "d2l-en", "--epochs", "-2"],
        ["reproduce", "d2l-en", "--lr", "abc"],
    ],
)
def test_cli_rejects_impossible_options(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err


# --- the progress bar (tqdm, on stderr) -------------------------------------------------


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, and keeps what is written to it."""

    def isatty(self):
        return True


def _without_times(text):
    return re.sub(r"time \d+\.\d sec", "time T sec", text)


def test_epoch_bar_needs_a_terminal_and_progress(monkeypatch):
    from gluon_bn.run.training import _EpochBar

    for stderr, enabled, shown in [
        (io.StringIO(), True, False),
        (_Terminal(), False, False),
        (_Terminal(), True, True),
    ]:
        monkeypatch.setattr("sys.stderr", stderr)
        bar = _EpochBar(3, 1, enabled)
        for batch in range(3):
            bar.update(64, lambda: 0.5)
        bar.close()
        assert bar.enabled is shown
        assert bool(stderr.getvalue()) is shown, (stderr, enabled)


def test_progress_bar_goes_to_a_terminal_stderr_only_and_stdout_lines_stay(
    fashion_root, monkeypatch
):
    from gluon_bn.run.training import _EpochBar

    monkeypatch.setattr(_EpochBar, "REFRESH_SECONDS", 0.0)
    monkeypatch.setattr(_EpochBar, "MIN_INTERVAL", 0.0)
    outputs = {}
    # sync=False: the bar reads the running loss from the device sums (the other path).
    for name, stderr in [("terminal", _Terminal()), ("captured", io.StringIO())]:
        monkeypatch.setattr("sys.stderr", stderr)
        history, out = train_small(fashion_root, seed=7, epochs=1, sync=False)
        outputs[name] = (history, out, stderr.getvalue())
    for history, out, _ in outputs.values():
        lines = out.splitlines()
        assert lines[0] == "training on cpu(0)" and len(lines) == 2 and "\r" not in out
        assert LINE.match(lines[1]) and lines[1] == history[0].line()
    # Same seed, same numbers: the bar changes nothing on stdout but the measured times.
    assert _without_times(outputs["terminal"][1]) == _without_times(outputs["captured"][1])
    assert outputs["captured"][2] == ""  # stderr not a terminal: no bar
    bar = outputs["terminal"][2]
    assert "epoch 1" in bar and "16/16" in bar and "examples/s" in bar
    loss = re.findall(r"loss (\d+\.\d{4})", bar)[-1]  # the running loss at the last batch
    assert float(loss) == pytest.approx(outputs["terminal"][0][0].loss, abs=1e-4)
    assert bar.endswith("\r")  # erased when the epoch ends (tqdm's leave=False)


def test_train_ch5_progress_false_writes_nothing_to_a_terminal(fashion_root, monkeypatch):
    recipe = get_recipe("d2l-en")
    seed_everything(0)
    train_iter, test_iter = load_data_fashion_mnist(
        64, root=fashion_root, seed=0, limit=128, test_limit=64
    )
    net = build_net(recipe, "plain")
    net.initialize(make_initializer(recipe.initializer), ctx=mx.cpu())
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    stderr, out = _Terminal(), io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    history = train_ch5(
        net, train_iter, test_iter, 64, trainer, mx.cpu(), 1, file=out, progress=False
    )
    assert stderr.getvalue() == ""
    assert out.getvalue().splitlines() == ["training on cpu(0)", history[0].line()]
