"""Tests of gluon_bn.data.idx: reading IDX files and loading a verified set (load_arrays)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from _data_helpers import (
    DEBIAN_DIR,
    FILES,
    idx_bytes,
    needs_debian,
    no_env,
    tiny,  # noqa: F401  (a fixture: pytest finds it in this module)
    write_idx,
)

from gluon_bn import data as D

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
        D.load_arrays(
            spec.replace(num_train=51),
            directory,
            verify=False,
            env=no_env(tmp_path),
            download=False,
        )
    bad = arrays[3].copy()
    bad[0] = 12
    write_idx(directory / FILES[3], bad, gz=False)
    with pytest.raises(D.DataError, match="label 12"):
        D.load_arrays(spec, directory, verify=False, env=no_env(tmp_path), download=False)


# --------------------------------------------------------------------------- real data


@needs_debian
def test_real_fashion_mnist_verifies():
    train_x, train_y, test_x, test_y = D.load_arrays(
        D.FASHION_MNIST, DEBIAN_DIR, verify=True, download=False
    )
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y.shape == (60000,) and test_y.shape == (10000,)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int32
    for labels in (train_y, test_y):
        assert labels.min() == 0 and labels.max() == 9
    np.testing.assert_array_equal(np.bincount(train_y), [6000] * 10)  # balanced classes
