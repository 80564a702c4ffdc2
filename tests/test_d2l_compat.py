"""d2l compatibility: the offline ``FashionMNIST`` data module and ``import gluon_bn as d2l``.

Numpy mode (``npx.set_np()``) is process-wide, so every check that turns it on runs in a
subprocess; the in-process checks stay in MXNet's legacy ``mx.nd`` mode.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gluon_bn import data as D

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, data_root: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with GLUON_BN_DATA set; fail with its stderr on error."""
    env = dict(os.environ, GLUON_BN_DATA=str(data_root))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def last_json(stdout: str) -> dict:
    """The JSON object printed on the last line of `stdout`."""
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def d2l_data():
    """gluon_bn.data.book, imported (with d2l) only by the tests that need it."""
    from gluon_bn.data import book as d2l_data

    return d2l_data


@pytest.fixture(scope="module")
def real_arrays(fashion_root):
    """(train_x, train_y, val_x, val_y) of the real Fashion-MNIST, as numpy arrays."""
    return D.load_arrays(D.FASHION_MNIST, fashion_root)


# --------------------------------------------------------------------------- FashionMNIST

NUMPY_MODE_CHECKS = """
    import json, math
    from mxnet import npx
    npx.set_np()
    import gluon_bn
    from gluon_bn.runtime.loader import mx
    from d2l import mxnet as d2l

    data = gluon_bn.FashionMNIST(batch_size=32)
    X, y = next(iter(data.train_dataloader()))
    Xv, yv = next(iter(data.val_dataloader()))
    big = gluon_bn.FashionMNIST(batch_size=8, resize=(32, 32), limit=64, val_limit=16)
    Xb, yb = next(iter(big.train_dataloader()))
    # Batches that worker processes built come back through shared memory.
    forked = gluon_bn.FashionMNIST(batch_size=8, limit=16, val_limit=8, num_workers=2)
    Xw, yw = next(iter(forked.train_dataloader()))
    print(json.dumps({
        "is_data_module": isinstance(data, d2l.DataModule),
        "sizes": [len(data.train), len(data.val)],
        "batches": [len(data.train_dataloader()), len(data.val_dataloader())],
        "types": [isinstance(a, mx.np.ndarray) for a in (X, y, Xv, yv, Xb, Xw, yw)],
        "X": [list(X.shape), str(X.dtype), float(X.min()), float(X.max())],
        "y": [list(y.shape), str(y.dtype), int(y.min()), int(y.max())],
        "resized": [list(Xb.shape), len(big.train), len(big.val)],
        "text_labels": data.text_labels(yv[:3]),
        "val_labels": [int(v) for v in yv[:3]],
    }))
"""


def test_fashion_mnist_in_numpy_mode(fashion_root):
    out = last_json(run_python(NUMPY_MODE_CHECKS, fashion_root).stdout)
    assert out["is_data_module"]
    assert out["sizes"] == [60000, 10000]
    assert out["batches"] == [math.ceil(60000 / 32), math.ceil(10000 / 32)]
    assert all(out["types"]), out["types"]  # every batch above is of mx.np arrays
    shape, dtype, low, high = out["X"]
    assert shape == [32, 1, 28, 28] and dtype == "float32" and 0.0 <= low < high <= 1.0
    shape, dtype, low, high = out["y"]
    assert shape == [32] and dtype == "int32" and 0 <= low <= high <= 9
    assert out["resized"] == [[8, 1, 32, 32], 64, 16]
    # The first test images are an ankle boot, a pullover and a trouser.
    assert out["val_labels"] == [9, 2, 1]
    assert out["text_labels"] == ["ankle boot", "pullover", "trouser"]


def test_fashion_mnist_in_legacy_mode(d2l_data, fashion_root, real_arrays):
    from d2l import mxnet as d2l

    from gluon_bn.runtime.loader import mx

    assert not mx.util.is_np_array(), "numpy mode leaked into this test process"
    data = d2l_data.FashionMNIST(batch_size=50, root=fashion_root)
    assert isinstance(data, d2l.DataModule)
    assert (len(data.train), len(data.val)) == (60000, 10000)
    X, y = next(iter(data.val_dataloader()))
    assert type(X) is mx.nd.NDArray and type(y) is mx.nd.NDArray
    assert X.shape == (50, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int32
    # Validation batches are the file's first images, scaled to [0, 1] by ToTensor.
    _, _, val_x, val_y = real_arrays
    np.testing.assert_allclose(X.asnumpy()[:, 0], val_x[:50] / np.float32(255), rtol=1e-6)
    np.testing.assert_array_equal(y.asnumpy(), val_y[:50])
    assert data.text_labels(y[:2]) == ["ankle boot", "pullover"]


def test_hyperparameters_are_saved(d2l_data, fashion_root):
    data = d2l_data.FashionMNIST(16, (32, 32), fashion_root, 0, limit=40, val_limit=20)
    expected = {
        "batch_size": 16,
        "resize": (32, 32),
        "root": fashion_root,
        "num_workers": 0,
        "limit": 40,
        "val_limit": 20,
    }
    assert data.hparams == expected
    assert {k: getattr(data, k) for k in expected} == expected
    assert (len(data.train), len(data.val)) == (40, 20)
    X, _ = next(iter(data.train_dataloader()))
    assert X.shape == (16, 1, 32, 32)
    assert len(data.train_dataloader()) == 3  # 16 + 16 + 8, the last batch kept


def test_default_arguments_are_d2ls(d2l_data):
    params = inspect.signature(d2l_data.FashionMNIST).parameters
    assert list(params)[:4] == ["batch_size", "resize", "root", "num_workers"]
    assert params["batch_size"].default == 64 and params["resize"].default == (28, 28)
    assert params["limit"].kind is inspect.Parameter.KEYWORD_ONLY


def test_training_order_comes_from_numpys_global_rng(d2l_data, fashion_root, real_arrays):
    data = d2l_data.FashionMNIST(batch_size=20, root=fashion_root, limit=100)
    _, train_y, _, _ = real_arrays
    np.random.seed(7)
    first = next(iter(data.train_dataloader()))[1].asnumpy()
    # Gluon's RandomSampler: np.random.shuffle of arange(n), drawn when the pass starts.
    np.random.seed(7)
    order = np.arange(100)
    np.random.shuffle(order)
    np.testing.assert_array_equal(first, train_y[order[:20]])
    np.random.seed(7)
    again = next(iter(data.train_dataloader()))[1].asnumpy()
    np.testing.assert_array_equal(first, again)


def test_visualize_titles_each_image(d2l_data, fashion_root):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data = d2l_data.FashionMNIST(batch_size=8, root=fashion_root, val_limit=8)
    batch = next(iter(data.val_dataloader()))
    try:
        data.visualize(batch, 2, 4)
        titles = [ax.get_title() for ax in plt.gcf().axes]
        assert titles == data.text_labels(batch[1])
        data.visualize(batch, 1, 2, labels=["a", "b"])
        assert [ax.get_title() for ax in plt.gcf().axes] == ["a", "b"]
    finally:
        plt.close("all")


@pytest.fixture
def no_download(monkeypatch):
    """Make any download attempt fail the test instead of touching the network."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    from gluon_bn.data import sources  # where find_data_root looks the downloader up

    monkeypatch.setattr(sources, "_download", refuse)


def test_missing_root_is_a_clear_data_error(d2l_data, tmp_path, no_download):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DataError) as info:
        d2l_data.FashionMNIST(root=empty)
    message = str(info.value)
    assert "the root argument" in message and str(empty) in message
    assert "train-images-idx3-ubyte" in message and "apt-get install" in message


def test_empty_env_directory_is_a_clear_data_error(d2l_data, tmp_path, monkeypatch, no_download):
    empty = tmp_path / "env-data"
    empty.mkdir()
    monkeypatch.setenv(D.ENV_VAR, str(empty))
    with pytest.raises(D.DataError, match=r"\$GLUON_BN_DATA") as info:
        d2l_data.FashionMNIST()
    assert str(empty) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"resize": (0, 28)}, "resize"),
        ({"num_workers": -1}, "num_workers"),
        ({"limit": 2.5}, "limit"),
    ],
)
def test_invalid_arguments_fail_before_loading(d2l_data, kwargs, name, no_download):
    with pytest.raises(ValueError, match=name):
        d2l_data.FashionMNIST(**kwargs)


# --------------------------------------------------------------------------- import gluon_bn as d2l


def test_import_stays_light():
    code = "import sys, gluon_bn; assert 'mxnet' not in sys.modules and 'd2l' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    # The legacy names need MXNet but not d2l; only gluon_bn.FashionMNIST imports d2l.
    code = (
        "import sys, gluon_bn; gluon_bn.train_ch5, gluon_bn.evaluate_accuracy, "
        "gluon_bn.load_data_fashion_mnist, gluon_bn.try_gpu, gluon_bn.try_all_gpus; "
        "assert 'mxnet' in sys.modules and 'd2l' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_top_level_names_have_d2ls_positional_signatures():
    import gluon_bn

    expected = {  # the legacy d2l / d2lzh signatures the documents call
        "load_data_fashion_mnist": ["batch_size", "resize", "root"],
        "train_ch5": [
            "net",
            "train_iter",
            "test_iter",
            "batch_size",
            "trainer",
            "ctx",
            "num_epochs",
        ],
        "evaluate_accuracy": ["data_iter", "net", "ctx"],
        "try_gpu": [],
        "try_all_gpus": [],
    }
    for name, positional in expected.items():
        params = inspect.signature(getattr(gluon_bn, name)).parameters.values()
        required = [
            p.name
            for p in params
            if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        names = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert names[: len(positional)] == positional, name
        assert set(required) <= set(positional), name


# Document 001's Gluon variant ("Batch Norm in Gluon", then "Training"), as written except
# for the data: the full loaders are built as the document builds them, but trained on the
# first 512 / 256 examples for 2 epochs so that the test takes seconds.
DOCUMENT_001 = """
    import json
    import gluon_bn as d2l
    from mxnet import autograd, gluon, init, nd
    from mxnet.gluon import nn

    net = nn.Sequential()
    net.add(nn.Conv2D(6, kernel_size=5),
            nn.BatchNorm(),
            nn.Activation('sigmoid'),
            nn.MaxPool2D(pool_size=2, strides=2),
            nn.Conv2D(16, kernel_size=5),
            nn.BatchNorm(),
            nn.Activation('sigmoid'),
            nn.MaxPool2D(pool_size=2, strides=2),
            nn.Dense(120),
            nn.BatchNorm(),
            nn.Activation('sigmoid'),
            nn.Dense(84),
            nn.BatchNorm(),
            nn.Activation('sigmoid'),
            nn.Dense(10))

    lr, num_epochs, batch_size, ctx = 1.0, 2, 256, d2l.try_gpu()
    net.initialize(ctx=ctx, init=init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
    full = [len(train_iter), len(test_iter)]
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size, limit=512, test_limit=256)
    d2l.train_ch5(net, train_iter, test_iter, batch_size, trainer, ctx, num_epochs)

    acc = d2l.evaluate_accuracy(test_iter, net, ctx)
    print(json.dumps({"full": full, "acc": acc, "acc_is_float": isinstance(acc, float),
                      "all_gpus": [str(c) for c in d2l.try_all_gpus()]}))
"""

EPOCH_LINE = re.compile(
    r"^epoch (\d+), loss (\d+\.\d{4}), train acc (\d\.\d{3}), "
    r"test acc (\d\.\d{3}), time \d+\.\d sec$"
)


def test_document_001_runs_with_gluon_bn_as_d2l(fashion_root):
    proc = run_python(DOCUMENT_001, fashion_root)
    lines = proc.stdout.strip().splitlines()
    assert re.match(r"^training on (cpu|gpu)\(0\)$", lines[0]), lines[0]
    epochs = [EPOCH_LINE.match(line) for line in lines[1:3]]
    assert all(epochs), lines[1:3]
    assert [int(m.group(1)) for m in epochs] == [1, 2]
    out = last_json(proc.stdout)
    assert out["full"] == [math.ceil(60000 / 256), math.ceil(10000 / 256)]
    assert out["acc_is_float"] and 0.0 <= out["acc"] <= 1.0
    # The network is unchanged after the last epoch's test evaluation: same accuracy.
    assert f"{out['acc']:.3f}" == epochs[-1].group(4)
    assert out["all_gpus"]
