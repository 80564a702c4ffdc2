"""Tests of gluon_bn.data.pipelines: the d2l and fast pipelines, load_data, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from _data_helpers import (
    DEBIAN_DIR,
    N_TEST,
    N_TRAIN,
    H,
    W,
    epochs,
    needs_debian,
    no_env,
    pairs,
    tiny,  # noqa: F401  (a fixture: pytest finds it in this module)
)

from gluon_bn import data as D
from gluon_bn.runtime.loader import mx

# --------------------------------------------------------------------------- pipelines


def tiny_iters(tiny, tmp_path, pipeline, **kwargs):
    spec, directory, _ = tiny
    return D.load_data(
        spec,
        kwargs.pop("batch_size", 8),
        kwargs.pop("resize", None),
        directory,
        pipeline=pipeline,
        env=no_env(tmp_path),
        download=False,
        **kwargs,
    )


def test_pipelines_give_identical_batches(tiny, tmp_path):
    _, _, (train_x, train_y, test_x, test_y) = tiny
    (d2l_train, d2l_test), (fast_train, fast_test) = (
        tiny_iters(tiny, tmp_path, p, seed=3) for p in D.PIPELINES
    )
    assert isinstance(d2l_train, D.D2lBatchIterator) and isinstance(fast_train, D.FastBatchIterator)
    for it in (d2l_train, fast_train):
        assert len(it) == 7 and it.num_examples == N_TRAIN  # 6 full batches of 8, then 2
    for it in (d2l_test, fast_test):
        assert len(it) == 3 and it.num_examples == N_TEST

    d2l_epochs, fast_epochs = epochs(d2l_train), epochs(fast_train)
    rng = np.random.default_rng(3)  # the documented stream: one permutation per epoch
    for d2l_epoch, fast_epoch in zip(d2l_epochs, fast_epochs):
        order = rng.permutation(N_TRAIN)
        assert [len(y) for _, y in d2l_epoch] == [8] * 6 + [2]
        for (xa, ya), (xb, yb) in pairs(d2l_epoch, fast_epoch):
            assert xa.dtype == xb.dtype == np.float32 and ya.dtype == yb.dtype == np.int32
            assert xa.shape[1:] == (1, H, W)
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
        seen = np.concatenate([np.rint(x[:, 0, 0, 0] * 255) for x, _ in d2l_epoch]).astype(int)
        np.testing.assert_array_equal(seen, order)
        np.testing.assert_array_equal(np.concatenate([y for _, y in d2l_epoch]), train_y[order])
        want_x = train_x[order][:, np.newaxis].astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(np.concatenate([x for x, _ in fast_epoch]), want_x)
    first = np.concatenate([y for _, y in d2l_epochs[0]])
    second = np.concatenate([y for _, y in d2l_epochs[1]])
    seen = [np.concatenate([np.rint(x[:, 0, 0, 0] * 255) for x, _ in e]) for e in d2l_epochs]
    assert not np.array_equal(seen[0], seen[1]), "two epochs were shuffled alike"
    assert sorted(first) == sorted(second)

    # Test batches: file order, the same on every pass, the same in both pipelines.
    for it in (d2l_test, fast_test):
        for passes in epochs(it):
            np.testing.assert_array_equal(np.concatenate([y for _, y in passes]), test_y)
            np.testing.assert_array_equal(
                np.concatenate([x for x, _ in passes])[:, 0],
                test_x.astype(np.float32) / np.float32(255),
            )


def test_pipelines_agree_with_resize(tiny, tmp_path):
    batches = [
        epochs(tiny_iters(tiny, tmp_path, p, seed=5, resize=12, batch_size=16)[0], 1)[0]
        for p in D.PIPELINES
    ]
    for (xa, ya), (xb, yb) in pairs(*batches):
        assert xa.shape[1:] == (1, 12, 12)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_seed_none_follows_numpy_global_seed(tiny, tmp_path):
    runs = []
    for _ in range(2):
        np.random.seed(123)
        runs.append(epochs(tiny_iters(tiny, tmp_path, "fast")[0], 1)[0])
    for (xa, ya), (xb, yb) in pairs(*runs):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    np.random.seed(124)
    other = epochs(tiny_iters(tiny, tmp_path, "fast")[0], 1)[0]
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(runs[0], other))


def test_limits(tiny, tmp_path):
    _, _, (_, _, _, test_y) = tiny
    for pipeline in D.PIPELINES:
        train, test = tiny_iters(
            tiny, tmp_path, pipeline, seed=0, limit=10, test_limit=5, batch_size=4
        )
        assert (train.num_examples, len(train), test.num_examples, len(test)) == (10, 3, 5, 2)
        ids = np.concatenate([np.rint(x.asnumpy()[:, 0, 0, 0] * 255) for x, _ in train])
        assert sorted(ids.astype(int)) == list(range(10))  # the first 10 examples only
        np.testing.assert_array_equal(np.concatenate([y.asnumpy() for _, y in test]), test_y[:5])
        big, _ = tiny_iters(tiny, tmp_path, pipeline, seed=0, limit=10_000)
        assert big.num_examples == N_TRAIN


def test_d2l_pipeline_with_workers_matches(tiny, tmp_path):
    serial = epochs(tiny_iters(tiny, tmp_path, "d2l", seed=9)[0], 1)[0]
    parallel = epochs(tiny_iters(tiny, tmp_path, "d2l", seed=9, num_workers=2)[0], 1)[0]
    for (xa, ya), (xb, yb) in pairs(serial, parallel):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
        ({"batch_size": -3}, "batch_size must be a positive int"),
        ({"batch_size": 2.5}, "batch_size must be a positive int, got 2.5"),
        ({"batch_size": True}, "batch_size must be a positive int"),
        ({"pipeline": "torch"}, r"pipeline must be one of \('d2l', 'fast'\), got 'torch'"),
        ({"limit": 0}, "limit must be a positive int or None, got 0"),
        ({"test_limit": -1}, "test_limit must be a positive int or None"),
        ({"num_workers": -1}, "num_workers must be a non-negative int"),
        ({"pipeline": "fast", "num_workers": 2}, "only used by the d2l pipeline"),
        ({"resize": 0}, "resize must be a positive int"),
        ({"seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_argument_validation(tmp_path, kwargs, pattern):
    kwargs = dict({"batch_size": 4}, **kwargs)
    batch_size = kwargs.pop("batch_size")
    # Checked before any file is looked for: the empty root would otherwise be a DataError.
    with pytest.raises(ValueError, match=pattern):
        D.load_data_fashion_mnist(batch_size, root=tmp_path, **kwargs)


# --------------------------------------------------------------------------- real data


@needs_debian
def test_real_fashion_mnist_batches():
    train, test = D.load_data_fashion_mnist(256, root=DEBIAN_DIR, limit=1000, seed=0)
    assert train.num_examples == 1000 and len(train) == 4 and test.num_examples == 10000
    X, y = next(iter(train))
    assert X.shape == (256, 1, 28, 28) and X.dtype == np.float32
    assert y.shape == (256,) and y.dtype == np.int32
    x = X.asnumpy()
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert X.context == mx.cpu()
    fast, _ = D.load_data_fashion_mnist(256, root=DEBIAN_DIR, limit=1000, seed=0, pipeline="fast")
    Xf, yf = next(iter(fast))
    np.testing.assert_array_equal(Xf.asnumpy(), x)
    np.testing.assert_array_equal(yf.asnumpy(), y.asnumpy())
