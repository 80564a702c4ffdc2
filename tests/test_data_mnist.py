"""Document 004's MNIST: which checks apply, the "auto" choice, and the stand-in's labels.

The real MNIST is not on this machine. The end-to-end tests put a tiny synthetic set in
MNIST's place through the registry the code looks specs up in (``gluon_bn.data.SPECS``),
with that set's own SHA-256 sums: the real ``MNIST`` spec, its counts and its sums are
never changed, and a test without the swap shows the real spec refusing the tiny files.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings

import numpy as np
import pytest
from _data_helpers import DEBIAN_DIR, FILES, idx_bytes, needs_debian, write_idx, write_set

from gluon_bn import data as D
from gluon_bn.options import RunOptions
from gluon_bn.recipes import get_recipe
from gluon_bn.report import markdown_report
from gluon_bn.run.reproduce import make_result, reproduce, resolve, resolve_dataset
from gluon_bn.runtime.loader import mx

RECIPE = get_recipe("straight-dope")
STAND_IN = "run on Fashion-MNIST as a stand-in for MNIST"


def digits(seed: int, n_train: int = 40, n_test: int = 16):
    """Four arrays shaped like MNIST's (28x28 images, labels 0..9), a few examples each."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )


def stand_in_spec(arrays, **changes) -> D.IdxDataset:
    """MNIST's spec with the counts and SHA-256 sums of `arrays` (a test's own set)."""
    return D.MNIST.replace(
        num_train=len(arrays[0]),
        num_test=len(arrays[2]),
        system_dirs=(),
        sha256=tuple(hashlib.sha256(idx_bytes(a)).hexdigest() for a in arrays),
        **changes,
    )


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data of this machine is found: empty MXNet home, no GLUON_BN_DATA, offline."""

    def offline(*args, **kwargs):
        raise ConnectionError("offline (a test)")

    monkeypatch.setattr(mx.gluon.utils, "download", offline)
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "mxnet-home"))
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setitem(D.SPECS, "mnist", D.MNIST.replace(system_dirs=()))
    return tmp_path


# --------------------------------------------------------------------------- the real spec


def test_mnist_spec_has_content_sums_for_three_files_and_mxnet_sha1_for_the_fourth():
    assert D.spec_for("mnist") is D.MNIST and D.spec_for("fashion-mnist") is D.FASHION_MNIST
    assert D.MNIST.sha256[0] is None  # training images: checked as MXNet's original .gz
    assert all(len(s) == 64 for s in D.MNIST.sha256[1:])
    assert not set(D.MNIST.sha256[1:]) & set(D.FASHION_MNIST.sha256)
    assert len(D.mxnet_sources(D.MNIST)[0][2]) == 40  # read from MXNet at run time
    with pytest.raises(ValueError, match="unknown data set 'kmnist'"):
        D.spec_for("kmnist")


def test_the_real_spec_refuses_a_synthetic_set(tmp_path):
    root = write_set(tmp_path / "fake", digits(0))
    with pytest.raises(D.DataError, match=r"checksum mismatch .*\(MNIST\)"):
        D.verify_files(D.MNIST, root)
    with pytest.raises(D.DataError, match="checksum mismatch"):
        resolve_dataset(RECIPE, RunOptions(data_root=str(root)), io.StringIO())


# --------------------------------------------------------------------------- the file without a sum


def test_training_images_pass_as_the_original_gz_or_on_structure_with_a_warning(
    tmp_path, monkeypatch
):
    arrays = digits(1)
    spec = stand_in_spec(arrays)
    spec = spec.replace(sha256=(None, *spec.sha256[1:]))
    root = write_set(tmp_path / "d", arrays, gz=(True, False, False, False))
    gz = (root / (FILES[0] + ".gz")).read_bytes()
    real = D.mxnet_sources(spec)
    original = ((real[0][0], real[0][1], hashlib.sha1(gz).hexdigest()),) + real[1:]
    monkeypatch.setattr(D.sources, "mxnet_sources", lambda s: original)
    monkeypatch.setattr(D.idx, "mxnet_sources", lambda s: original)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the original .gz: no warning
        D.verify_files(spec, root)
    monkeypatch.setattr(D.idx, "mxnet_sources", lambda s: real)
    with pytest.warns(D.DataWarning, match="other than the original.*only its structure"):
        D.verify_files(spec, root)
    (root / (FILES[0] + ".gz")).unlink()
    write_idx(root / FILES[0], arrays[0], gz=False)
    with pytest.warns(D.DataWarning, match="a plain file"):
        got = D.load_arrays(spec, root, download=False)
    np.testing.assert_array_equal(got[0], arrays[0])


# --------------------------------------------------------------------------- telling the sets apart


def test_another_sets_file_is_named_and_identified(tmp_path, monkeypatch):
    mnist, fashion = digits(2), digits(3)
    monkeypatch.setitem(D.SPECS, "mnist", stand_in_spec(mnist))
    monkeypatch.setitem(
        D.SPECS,
        "fashion-mnist",
        stand_in_spec(fashion, name="Fashion-MNIST", namespace="fashion-mnist"),
    )
    root = write_set(tmp_path / "fashion", fashion)
    assert D.identify(root) == "fashion-mnist"
    assert D.identify(write_set(tmp_path / "mnist", mnist)) == "mnist"
    assert D.identify(tmp_path) is None
    with pytest.raises(D.DataError, match="This is Fashion-MNIST's train-[a-z0-9-]+, not MNIST's"):
        D.verify_files(D.SPECS["mnist"], root)
    note = io.StringIO()  # "auto" with --data-root on Fashion-MNIST: the stand-in, said so
    assert resolve_dataset(RECIPE, RunOptions(data_root=str(root)), note) == "fashion-mnist"
    assert "holds Fashion-MNIST, not MNIST" in note.getvalue()
    # The file without a content sum (MNIST's training images) is still not another set's.
    without_sum = D.SPECS["mnist"].replace(sha256=(None, *D.SPECS["mnist"].sha256[1:]))
    mixed = write_set(tmp_path / "mixed", (fashion[0], *mnist[1:]))
    with pytest.raises(D.DataError, match="not MNIST's:\n  This is Fashion-MNIST's train-images"):
        D.verify_files(without_sum, mixed)


@needs_debian
def test_debians_fashion_mnist_is_not_taken_for_mnist():
    assert D.identify(DEBIAN_DIR) == "fashion-mnist"
    with pytest.raises(D.DataError, match="This is Fashion-MNIST's"):
        D.verify_files(D.MNIST, DEBIAN_DIR)
    note = io.StringIO()
    options = RunOptions(data_root=str(DEBIAN_DIR))
    assert resolve_dataset(RECIPE, options, note) == "fashion-mnist"
    assert STAND_IN.replace("run on", "runs on") in note.getvalue()


# ------------------------------------------------------------------ auto: MNIST or the stand-in


def test_auto_without_mnist_falls_back_with_a_note_and_labelled_records(isolated):
    note = io.StringIO()
    run = resolve("straight-dope", RunOptions(), file=note)
    assert run.dataset == "fashion-mnist"
    message = note.getvalue()
    assert message.startswith("note: straight-dope trained on MNIST digits, which are not in ")
    assert str(isolated / "mxnet-home" / "datasets" / "mnist") in message
    assert "could not be downloaded" in message and STAND_IN.replace("run on", "runs on") in message
    assert resolve_dataset(RECIPE, RunOptions(), io.StringIO(), download=False) == "fashion-mnist"
    record = make_result(run, mx.cpu())
    assert record.to_json()["dataset"] == "fashion-mnist"
    assert record.to_json()["dataset_note"].startswith(STAND_IN)
    assert STAND_IN in markdown_report(record)


def test_reproduce_straight_dope_trains_on_a_synthetic_mnist(isolated, monkeypatch):
    arrays = digits(4)
    monkeypatch.setitem(D.SPECS, "mnist", stand_in_spec(arrays))
    root = write_set(isolated / "digits", arrays)
    out, log = isolated / "out", io.StringIO()
    options = RunOptions(variants=("gluon",), epochs=1, data_root=str(root))
    result, paths = reproduce(
        "straight-dope", options, mx.cpu(), out_dir=out, file=log, progress=False
    )
    assert "note:" not in log.getvalue()
    assert result.run.dataset == "mnist" and len(result.runs[0].history) == 1
    stored = json.loads(paths["json"].read_text())
    assert stored["dataset"] == "mnist" and stored["dataset_note"] == "run on MNIST"
    assert "Ours: run on MNIST, " in paths["md"].read_text()
    # A file changed after the sums were taken: a clear error, no fallback.
    labels = arrays[3].copy()
    labels[0] = (labels[0] + 1) % 10
    write_idx(root / FILES[3], labels, gz=False)
    with pytest.raises(
        D.DataError,
        match=r"checksum mismatch for .*t10k-labels-idx1-ubyte "
        r"\(MNIST\)",
    ):
        reproduce("straight-dope", options, mx.cpu(), file=io.StringIO(), progress=False)
