"""Tests of gluon_bn.data: IDX reading, the data-root search, verification and the pipelines."""
from __future__ import annotations

import gzip
import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest

from gluon_bn import data as D
from gluon_bn._mxnet import mx

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = D.FASHION_MNIST.files  # train images, train labels, test images, test labels
N_TRAIN, N_TEST, H, W = 50, 20, 8, 7  # small and non-square, so swapped axes would show


# --------------------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array of 1 or 3 dimensions as IDX bytes."""
    assert array.dtype == np.uint8 and array.ndim in (1, 3)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """Write `array` as an IDX file, gzipped or plain; return the path."""
    content = idx_bytes(array)
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def tiny_arrays():
    """Synthetic set: image i has first pixel i, so a batch tells which examples it holds."""
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (N_TRAIN, H, W), dtype=np.uint8)
    test_x = rng.integers(0, 256, (N_TEST, H, W), dtype=np.uint8)
    train_x[:, 0, 0] = np.arange(N_TRAIN)
    test_x[:, 0, 0] = np.arange(N_TEST)
    train_y = rng.integers(0, 10, N_TRAIN).astype(np.uint8)
    test_y = rng.integers(0, 10, N_TEST).astype(np.uint8)
    return train_x, train_y, test_x, test_y


def tiny_spec(arrays) -> D.IdxDataset:
    """An IdxDataset describing `arrays`, with their true SHA-256 sums and no downloads."""
    return D.FASHION_MNIST.replace(
        name="Tiny", namespace="tiny", num_train=N_TRAIN, num_test=N_TEST, image_shape=(H, W),
        sha256=tuple(hashlib.sha256(idx_bytes(a)).hexdigest() for a in arrays),
        mxnet_class=None, system_dirs=(), apt_package=None)


def write_set(directory: Path, arrays, gz=(True, False, True, False)) -> Path:
    """Write the four files of `arrays` into `directory` (created), some gzipped."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array, zipped in zip(FILES, arrays, gz):
        write_idx(directory / (name + ".gz" if zipped else name), array, zipped)
    return directory


@pytest.fixture
def tiny(tmp_path):
    """(spec, data directory, arrays) of a tiny complete data set."""
    arrays = tiny_arrays()
    return tiny_spec(arrays), write_set(tmp_path / "tiny-data", arrays), arrays


def no_env(tmp_path) -> dict:
    """An injected environment whose MXNet home is an empty temporary directory."""
    return {"MXNET_HOME": str(tmp_path / "mxnet-home")}


def pairs(a, b):
    """zip() that insists on equal lengths (zip(strict=True) needs Python 3.10)."""
    assert len(a) == len(b), (len(a), len(b))
    return zip(a, b)


def epochs(it, n=2):
    """`n` passes over an iterator, as lists of (X, y) numpy pairs."""
    return [[(x.asnumpy(), y.asnumpy()) for x, y in it] for _ in range(n)]


# --------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([9, 0, 3, 7], dtype=np.uint8)
    got_images = D.read_idx(write_idx(tmp_path / "img", images, gz))
    got_labels = D.read_idx(write_idx(tmp_path / "lab", labels, gz))
    assert got_images.dtype == np.uint8 and got_images.shape == (3, 4, 5)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] = 1  # returned arrays are writable


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    labels = np.array([1, 2, 3], dtype=np.uint8)
    zipped_without_suffix = tmp_path / "labels-idx1-ubyte"
    zipped_without_suffix.write_bytes(gzip.compress(idx_bytes(labels)))
    plain_with_suffix = tmp_path / "labels-idx1-ubyte.gz"
    plain_with_suffix.write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(D.read_idx(zipped_without_suffix), labels)
    np.testing.assert_array_equal(D.read_idx(plain_with_suffix), labels)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_names_file_and_sizes(tmp_path, gz):
    content = idx_bytes(np.zeros((4, 3, 3), dtype=np.uint8))[:-5]  # 36 data bytes -> 31
    path = tmp_path / "cut-images"
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(D.DataError) as err:
        D.read_idx(path)
    message = str(err.value)
    assert str(path) in message and "truncated" in message
    assert "36" in message and "31" in message


def test_read_idx_corrupt_gzip(tmp_path):
    zipped = gzip.compress(idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(zipped[: len(zipped) // 2])  # EOFError inside gzip
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"\xff" * 40)  # gzip magic, then nonsense
    for path in (cut, garbage):
        with pytest.raises(D.DataError, match="corrupt") as err:
            D.read_idx(path)
        assert str(path) in str(err.value)


def test_read_idx_bad_magic_and_missing_file(tmp_path):
    path = tmp_path / "float-idx"
    path.write_bytes(bytes([0, 0, 0x0D, 1]) + (2).to_bytes(4, "big") + b"\0" * 8)
    with pytest.raises(D.DataError, match="magic number 0x00000d01"):
        D.read_idx(path)
    with pytest.raises(D.DataError, match="cannot read"):
        D.read_idx(tmp_path / "absent")


# --------------------------------------------------------------------------- find_data_root

def test_search_order(tmp_path, tiny):
    spec, _, arrays = tiny
    explicit = write_set(tmp_path / "explicit", arrays)
    from_env = write_set(tmp_path / "env", arrays)
    mxnet_home = tmp_path / "mxnet"
    from_mxnet = write_set(mxnet_home / "datasets" / spec.namespace, arrays)
    system = write_set(tmp_path / "system", arrays)
    env = {"GLUON_BN_DATA": str(from_env), "MXNET_HOME": str(mxnet_home)}

    def find(root=None, environ=env):
        return D.find_data_root(spec, root, env=environ, system_dirs=[system], download=False)

    assert find(explicit) == explicit
    assert find() == from_env
    assert find(environ={"MXNET_HOME": str(mxnet_home)}) == from_mxnet
    assert find(environ={"MXNET_HOME": str(mxnet_home), "GLUON_BN_DATA": ""}) == from_mxnet
    assert find(environ={"MXNET_HOME": str(tmp_path / "empty")}) == system


def test_search_reads_real_environment(tmp_path, tiny, monkeypatch):
    spec, _, arrays = tiny
    mxnet_home = tmp_path / "mxnet"
    from_mxnet = write_set(mxnet_home / "datasets" / spec.namespace, arrays)
    monkeypatch.setenv("MXNET_HOME", str(mxnet_home))
    monkeypatch.delenv("GLUON_BN_DATA", raising=False)
    assert D.find_data_root(spec, system_dirs=[], download=False) == from_mxnet
    # GLUON_BN_DATA may name a parent holding <namespace>/.
    parent = tmp_path / "shared"
    nested = write_set(parent / spec.namespace, arrays)
    monkeypatch.setenv("GLUON_BN_DATA", str(parent))
    assert D.find_data_root(spec, system_dirs=[], download=False) == nested


def test_plain_and_gz_files_both_count(tmp_path, tiny):
    spec, _, arrays = tiny
    directory = write_set(tmp_path / "mixed", arrays, gz=(False, True, False, True))
    assert D.find_data_root(spec, directory, env=no_env(tmp_path), download=False) == directory
    (directory / (FILES[1] + ".gz")).unlink()
    with pytest.raises(D.DataError, match=FILES[1]):
        D.find_data_root(spec, directory, env=no_env(tmp_path), download=False)


def test_explicit_root_without_data_is_an_error_without_fallback(tmp_path):
    arrays = tiny_arrays()
    system = write_set(tmp_path / "system", arrays)  # complete, but must not be used
    empty = tmp_path / "empty-root"
    empty.mkdir()
    with pytest.raises(D.DataError) as err:
        D.find_data_root(D.FASHION_MNIST, empty, env=no_env(tmp_path), system_dirs=[system],
                         download=True)
    message = str(err.value)
    assert str(empty) in message and str(empty / "fashion-mnist") in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "GLUON_BN_DATA" in message and "internet" in message
    assert not (tmp_path / "mxnet-home").exists()  # no download attempted
    assert message.count("\n") >= 4


def test_env_var_without_data_is_an_error_without_fallback(tmp_path):
    system = write_set(tmp_path / "system", tiny_arrays())
    env = dict(no_env(tmp_path), GLUON_BN_DATA=str(tmp_path / "nowhere"))
    with pytest.raises(D.DataError, match=r"\$GLUON_BN_DATA") as err:
        D.find_data_root(D.FASHION_MNIST, env=env, system_dirs=[system], download=False)
    assert "no such directory" in str(err.value)


def test_nothing_found_lists_every_place(tmp_path):
    env = no_env(tmp_path)
    systems = [tmp_path / "sys1", tmp_path / "sys2"]
    with pytest.raises(D.DataError) as err:
        D.find_data_root(D.FASHION_MNIST, env=env, system_dirs=systems, download=False)
    message = str(err.value)
    for place in [Path(env["MXNET_HOME"]) / "datasets" / "fashion-mnist", *systems]:
        assert str(place) in message
    assert "dataset-fashion-mnist" in message


def test_mxnet_sources_are_read_from_mxnet():
    for spec, cls in [(D.FASHION_MNIST, mx.gluon.data.vision.FashionMNIST),
                      (D.MNIST, mx.gluon.data.vision.MNIST)]:
        sources = D.mxnet_sources(spec)
        assert [name for name, _, _ in sources] == [f + ".gz" for f in spec.files]
        for name, url, sha1 in sources:
            assert url.endswith(f"/gluon/dataset/{spec.namespace}/{name}")
            assert len(sha1) == 40
        # The SHA-1s are MXNet's own, e.g. FashionMNIST's train images.
        assert sources[0][2] == ("0cf37b0d40ed5169c6b3aba31069a9770ac9043d"
                                 if cls is mx.gluon.data.vision.FashionMNIST
                                 else "6c95f4b05d2bf285e1bfb0e7960c31bd3b3f8a7d")


def test_download_goes_to_mxnet_dir_with_mxnet_urls(tmp_path, monkeypatch):
    calls = []
    arrays = tiny_arrays()

    def fake_download(url, path=None, overwrite=False, sha1_hash=None, retries=5, **kwargs):
        calls.append((url, path, sha1_hash))
        target = Path(path)
        index = [f + ".gz" for f in FILES].index(target.name)
        write_idx(target, arrays[index], gz=True)
        return str(target)

    monkeypatch.setattr(mx.gluon.utils, "download", fake_download)
    env = no_env(tmp_path)
    target = Path(env["MXNET_HOME"]) / "datasets" / "fashion-mnist"
    target.mkdir(parents=True)
    write_idx(target / FILES[1], arrays[1], gz=False)  # already there: not fetched again
    assert D.find_data_root(D.FASHION_MNIST, env=env, system_dirs=[]) == target
    expected = [s for i, s in enumerate(D.mxnet_sources(D.FASHION_MNIST)) if i != 1]
    assert calls == [(url, str(target / name), sha1) for name, url, sha1 in expected]


def test_failed_download_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(mx.gluon.utils, "download", offline)
    env = no_env(tmp_path)
    with pytest.raises(D.DataError) as err:
        D.find_data_root(D.FASHION_MNIST, env=env, system_dirs=[tmp_path / "sys"])
    message = str(err.value)
    assert "Name or service not known" in message
    assert str(Path(env["MXNET_HOME"]) / "datasets" / "fashion-mnist") in message
    assert str(tmp_path / "sys") in message
    assert "sudo apt-get install dataset-fashion-mnist" in message


def test_real_mxnet_downloader_failure_becomes_data_error(tmp_path, monkeypatch, capsys):
    with socket.socket() as sock:  # a local port with nothing listening: refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MXNET_GLUON_REPO", f"http://127.0.0.1:{port}/")
    with pytest.raises(D.DataError, match="Downloading into .* failed"):
        D.find_data_root(D.MNIST, env=no_env(tmp_path), system_dirs=[], retries=0)


# --------------------------------------------------------------------------- load_arrays

def test_load_arrays_tiny(tiny, tmp_path):
    spec, directory, arrays = tiny
    got = D.load_arrays(spec, directory, env=no_env(tmp_path), download=False)
    for array, want in zip(got, arrays):
        np.testing.assert_array_equal(array, want)
    assert [a.dtype for a in got] == [np.uint8, np.int32, np.uint8, np.int32]


def test_checksum_mismatch(tiny, tmp_path):
    spec, directory, _ = tiny
    wrong = spec.replace(sha256=(spec.sha256[0], "0" * 64, *spec.sha256[2:]))
    with pytest.raises(D.DataError) as err:
        D.load_arrays(wrong, directory, env=no_env(tmp_path), download=False)
    message = str(err.value)
    assert "checksum mismatch" in message and FILES[1] in message and "0" * 64 in message
    assert "delete" in message
    # verify=False skips the content hash but keeps the structural checks.
    D.load_arrays(wrong, directory, verify=False, env=no_env(tmp_path), download=False)


def test_truncated_file_in_data_dir(tiny, tmp_path):
    spec, directory, arrays = tiny
    path = directory / (FILES[2] + ".gz")
    path.write_bytes(gzip.compress(idx_bytes(arrays[2])[:-7]))
    with pytest.raises(D.DataError, match="truncated") as err:
        D.load_arrays(spec, directory, verify=False, env=no_env(tmp_path), download=False)
    assert str(path) in str(err.value)


def test_wrong_count_and_label_range(tiny, tmp_path):
    spec, directory, arrays = tiny
    with pytest.raises(D.DataError, match=r"shape \(50, 8, 7\), expected \(51, 8, 7\)"):
        D.load_arrays(spec.replace(num_train=51), directory, verify=False,
                      env=no_env(tmp_path), download=False)
    bad = arrays[3].copy()
    bad[0] = 12
    write_idx(directory / FILES[3], bad, gz=False)
    with pytest.raises(D.DataError, match="label 12"):
        D.load_arrays(spec, directory, verify=False, env=no_env(tmp_path), download=False)


# --------------------------------------------------------------------------- pipelines

def tiny_iters(tiny, tmp_path, pipeline, **kwargs):
    spec, directory, _ = tiny
    return D.load_data(spec, kwargs.pop("batch_size", 8), kwargs.pop("resize", None), directory,
                       pipeline=pipeline, env=no_env(tmp_path), download=False, **kwargs)


def test_pipelines_give_identical_batches(tiny, tmp_path):
    _, _, (train_x, train_y, test_x, test_y) = tiny
    (d2l_train, d2l_test), (fast_train, fast_test) = (
        tiny_iters(tiny, tmp_path, p, seed=3) for p in D.PIPELINES)
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
                test_x.astype(np.float32) / np.float32(255))


def test_pipelines_agree_with_resize(tiny, tmp_path):
    batches = [epochs(tiny_iters(tiny, tmp_path, p, seed=5, resize=12, batch_size=16)[0], 1)[0]
               for p in D.PIPELINES]
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
        train, test = tiny_iters(tiny, tmp_path, pipeline, seed=0, limit=10, test_limit=5,
                                 batch_size=4)
        assert (train.num_examples, len(train), test.num_examples, len(test)) == (10, 3, 5, 2)
        ids = np.concatenate([np.rint(x.asnumpy()[:, 0, 0, 0] * 255) for x, _ in train])
        assert sorted(ids.astype(int)) == list(range(10))  # the first 10 examples only
        np.testing.assert_array_equal(np.concatenate([y.asnumpy() for _, y in test]),
                                      test_y[:5])
        big, _ = tiny_iters(tiny, tmp_path, pipeline, seed=0, limit=10_000)
        assert big.num_examples == N_TRAIN


def test_d2l_pipeline_with_workers_matches(tiny, tmp_path):
    serial = epochs(tiny_iters(tiny, tmp_path, "d2l", seed=9)[0], 1)[0]
    parallel = epochs(tiny_iters(tiny, tmp_path, "d2l", seed=9, num_workers=2)[0], 1)[0]
    for (xa, ya), (xb, yb) in pairs(serial, parallel):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("kwargs, pattern", [
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
])
def test_argument_validation(tmp_path, kwargs, pattern):
    kwargs = dict({"batch_size": 4}, **kwargs)
    batch_size = kwargs.pop("batch_size")
    # Checked before any file is looked for: the empty root would otherwise be a DataError.
    with pytest.raises(ValueError, match=pattern):
        D.load_data_fashion_mnist(batch_size, root=tmp_path, **kwargs)


# --------------------------------------------------------------------------- real data

needs_debian = pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(),
    reason=f"{DEBIAN_DIR} is absent (sudo apt-get install dataset-fashion-mnist)")


@needs_debian
def test_real_fashion_mnist_verifies():
    train_x, train_y, test_x, test_y = D.load_arrays(D.FASHION_MNIST, DEBIAN_DIR, verify=True,
                                                     download=False)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y.shape == (60000,) and test_y.shape == (10000,)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int32
    for labels in (train_y, test_y):
        assert labels.min() == 0 and labels.max() == 9
    np.testing.assert_array_equal(np.bincount(train_y), [6000] * 10)  # balanced classes


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
    fast, _ = D.load_data_fashion_mnist(256, root=DEBIAN_DIR, limit=1000, seed=0,
                                        pipeline="fast")
    Xf, yf = next(iter(fast))
    np.testing.assert_array_equal(Xf.asnumpy(), x)
    np.testing.assert_array_equal(yf.asnumpy(), y.asnumpy())
