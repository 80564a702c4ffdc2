"""Tests of gluon_bn.data.sources: the data-root search, its messages and the download."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from _data_helpers import (
    FILES,
    no_env,
    tiny,  # noqa: F401  (a fixture: pytest finds it in this module)
    tiny_arrays,
    write_idx,
    write_set,
)

from gluon_bn import data as D
from gluon_bn.runtime.loader import mx

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
        D.find_data_root(
            D.FASHION_MNIST, empty, env=no_env(tmp_path), system_dirs=[system], download=True
        )
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
    for spec, cls in [
        (D.FASHION_MNIST, mx.gluon.data.vision.FashionMNIST),
        (D.MNIST, mx.gluon.data.vision.MNIST),
    ]:
        sources = D.mxnet_sources(spec)
        assert [name for name, _, _ in sources] == [f + ".gz" for f in spec.files]
        for name, url, sha1 in sources:
            assert url.endswith(f"/gluon/dataset/{spec.namespace}/{name}")
            assert len(sha1) == 40
        # The SHA-1s are MXNet's own, e.g. FashionMNIST's train images.
        assert sources[0][2] == (
            "0cf37b0d40ed5169c6b3aba31069a9770ac9043d"
            if cls is mx.gluon.data.vision.FashionMNIST
            else "6c95f4b05d2bf285e1bfb0e7960c31bd3b3f8a7d"
        )


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
