"""Document 000's dialect: the book's model classes trained by d2l 1.0's own Trainer, numpy mode."""

import numpy as np
import pytest

d2l = pytest.importorskip("d2l.mxnet")

from gluon_bn import BatchNorm  # noqa: E402
from gluon_bn.models import BNLeNet, BNLeNetScratch, LeNet, find_bn  # noqa: E402
from gluon_bn.run.book import BookEpoch, RecordingTrainer, fit  # noqa: E402
from gluon_bn.run.training import TrainingDiverged, seed_everything  # noqa: E402
from gluon_bn.runtime.loader import mx  # noqa: E402


class RandomImages(d2l.DataModule):
    """A small Fashion-MNIST-shaped data module of random images and labels."""

    def __init__(self, n=96, batch_size=32):
        super().__init__()
        self.save_hyperparameters()
        rng = np.random.default_rng(0)
        self.X = mx.np.array(rng.random((n, 1, 28, 28)).astype("float32"))
        self.y = mx.np.array(rng.integers(0, 10, n).astype("int32"))

    def get_dataloader(self, train):
        return self.get_tensorloader((self.X, self.y), train)


@pytest.mark.parametrize("cls", [LeNet, BNLeNetScratch, BNLeNet])
def test_book_models_are_classifiers_with_the_books_signature(numpy_mode, cls):
    model = cls(lr=0.05, num_classes=7)
    assert isinstance(model, d2l.Classifier)
    assert model.lr == 0.05 and model.num_classes == 7
    assert len(model.parameters().keys()) > 0  # d2l's optimiser gets Gluon's parameters
    out = model(mx.np.zeros((2, 1, 28, 28)))
    assert isinstance(out, mx.np.ndarray) and out.shape == (2, 7)


def test_scratch_model_carries_document_000s_conventions(numpy_mode):
    bn = find_bn(BNLeNetScratch().net)
    assert isinstance(bn, BatchNorm)
    assert bn._conventions["momentum"] == 0.1 and bn._conventions["momentum_on"] == "batch"
    assert bn._conventions["eps"] == 1e-5
    np.testing.assert_array_equal(bn.moving_var.data().asnumpy(), 1.0)


def test_trainer_records_the_board_means_and_scratch_equals_gluon(numpy_mode, capsys):
    """Same seed, same initial weights: the scratch and the built-in layer train alike."""
    histories = []
    for cls in (BNLeNetScratch, BNLeNet):
        seed_everything(1)
        histories.append(fit(cls(lr=0.1), RandomImages(), 2, num_gpus=1))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("epoch 1, train loss ") and "val acc" in printed[0]
    for a, b in zip(*histories):
        assert isinstance(a, BookEpoch) and a.seconds > 0
        np.testing.assert_allclose(
            [a.train_loss, a.val_loss, a.val_acc],
            [b.train_loss, b.val_loss, b.val_acc],
            rtol=1e-4,
            atol=1e-5,
        )
    assert [h.epoch for h in histories[0]] == [1, 2]


def test_recorded_means_are_the_values_handed_to_plot(numpy_mode):
    trainer = RecordingTrainer(1, quiet=True)
    model = BNLeNet()
    seen = []
    original = model.plot
    model.plot = lambda key, value, train: (
        seen.append((key, train, float(value))),
        original(key, value, train),
    )
    trainer.fit(model, RandomImages(n=64))
    train = [v for k, t, v in seen if k == "loss" and t]
    val_acc = [v for k, t, v in seen if k == "acc" and not t]
    assert len(train) == 2 and len(val_acc) == 2  # two batches of 32 each way
    assert trainer.history[0].train_loss == pytest.approx(np.mean(train))
    assert trainer.history[0].val_acc == pytest.approx(np.mean(val_acc))


def test_moving_statistics_follow_the_model_to_another_device(numpy_mode):
    """What d2l.Trainer(num_gpus=1) does to a model: collect_params().reset_ctx(device)."""
    model = BNLeNetScratch()
    model(mx.np.zeros((2, 1, 28, 28)))  # shapes the deferred parameters
    device = mx.cpu(1)
    model.collect_params().reset_ctx(device)
    x = mx.np.array(np.random.default_rng(0).random((4, 1, 28, 28)).astype("float32"), ctx=device)
    with mx.autograd.record():
        model(x)
    bn = find_bn(model.net)
    assert bn.moving_mean.list_ctx() == [device]
    assert np.abs(bn.moving_mean.data(device).asnumpy()).sum() > 0


def test_a_diverging_run_stops_with_training_diverged(numpy_mode):
    seed_everything(0)
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        fit(LeNet(lr=1e30), RandomImages(n=64), 1, quiet=True)


def test_the_book_loop_refuses_what_it_cannot_do():
    from gluon_bn.run.reproduce import RunOptions

    with pytest.raises(
        ValueError,
        match="d2l.Trainer loop reads its data through gluon_bn.FashionMNIST.*--loop train_ch5",
    ):
        RunOptions(loop="d2l.Trainer", pipeline="fast").check()
    with pytest.raises(ValueError, match="loop must be one of"):
        RunOptions(loop="fit").check()


def test_reproduce_with_the_book_loop_writes_a_record_naming_it(tmp_path, fashion_root):
    """End to end through the library on a few hundred images: the record says which loop ran."""
    import json

    from gluon_bn.run.reproduce import RunOptions, reproduce

    options = RunOptions(
        variants=("gluon", "plain"),
        seeds=(0,),
        epochs=1,
        limit=256,
        test_limit=128,
        data_root=str(fashion_root),
    )
    result, paths = reproduce(
        "d2l-1.0", options, mx.cpu(), out_dir=tmp_path, file=open("/dev/null", "w")
    )
    saved = json.loads(paths["json"].read_text())
    assert saved["config"]["loop"] == "d2l.Trainer"
    assert set(saved["runs"][0]["history"][0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_acc",
        "seconds",
    }
    assert "loop `d2l.Trainer`" in paths["md"].read_text()
    assert not mx.util.is_np_array()  # numpy mode was switched off again


def test_the_readme_snippet_for_document_000_runs(tmp_path, fashion_root):
    """The README's numpy-dialect code, as written, on a few hundred images for one epoch."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Using gluon-bn with the book's own code", 1)[1]
    code = re.search(r"```python\n(from d2l import mxnet as d2l.*?)```", section, re.S).group(1)
    assert "d2l.Trainer(max_epochs=10, num_gpus=1)" in code
    code = code.replace("max_epochs=10", "max_epochs=1").replace(
        "gluon_bn.FashionMNIST(batch_size=128)",
        f"gluon_bn.FashionMNIST(batch_size=128, root={str(fashion_root)!r}, limit=256, "
        f"val_limit=128)",
    )
    code += "\nprint('trained', type(model.net[1]).__name__)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained BatchNorm" in proc.stdout
