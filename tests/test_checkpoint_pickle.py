"""Checkpoints hold no pickle and never unpickle one (issue 16, item 3).

The optimizer state is arrays (``trainer.params``, mx.nd.save's format) plus JSON; a
checkpoint of the old format, whose ``trainer.states`` is a pickle, is refused unread.
"""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _run_helpers import run_dir, tiny_setup

from gluon_bn import cli
from gluon_bn.run import checkpoint, checkpoint_files, checkpoint_optimizer
from gluon_bn.run.checkpoint import Checkpointer, CheckpointError, run_config
from gluon_bn.run.checkpoint_files import FORMAT, verify_checkpoint
from gluon_bn.run.checkpoint_optimizer import _load_trainer_state, _param_keys, _save_trainer_state
from gluon_bn.run.reproduce import RunOptions
from gluon_bn.runtime.loader import mx

gluon, nd = mx.gluon, mx.nd
REFUSAL = (
    r"stores the optimizer state as a pickle(.|\n)*no longer loads pickles(.|\n)*run "
    r"arbitrary code(.|\n)*another --checkpoint-dir"
)


def is_pickle(data: bytes) -> bool:
    """A pickle of protocol 2 or later starts with PROTO (0x80) and the protocol number."""
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def make_checkpoint(root, epochs=2):
    """Train the tiny network `epochs` epochs with checkpoints; return the run's directory."""
    from test_run_checkpoint import train_tiny

    directory = run_dir(root)
    train_tiny(
        directory,
        epochs,
        resume=False,
        config=run_config("d2l-en", "gluon", 0, RunOptions(epochs=3)),
    )
    return directory


class Payload:
    """Unpickling this creates `marker` (through os.system), as a malicious pickle would."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def plant_old_format(checkpoint_dir: Path, marker: Path, *, manifest_format=1) -> None:
    """Turn a checkpoint into a consistent one of format 1 whose trainer.states is malicious."""
    states = checkpoint_dir / "trainer.states"
    states.write_bytes(pickle.dumps(({0: Payload(marker)}, Payload(marker)), protocol=2))
    manifest = json.loads((checkpoint_dir / "manifest.json").read_text())
    manifest["format"] = manifest_format
    manifest["files"]["trainer.states"] = {
        "bytes": states.stat().st_size,
        "sha256": hashlib.sha256(states.read_bytes()).hexdigest(),
    }
    (checkpoint_dir / "manifest.json").write_text(json.dumps(manifest))


def test_the_planted_payload_is_live(tmp_path):
    """The test pickle really runs code when unpickled (in another process)."""
    marker = tmp_path / "ran"
    payload = tmp_path / "payload.pickle"
    payload.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())",
            str(payload),
        ],
        check=True,
    )
    assert marker.exists()


def test_new_checkpoint_holds_no_pickle(tmp_path):
    directory = make_checkpoint(tmp_path / "ckpt")
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"trainer.params", "trainer.json", "net.params"}
    assert not any(p.name == "trainer.states" for p in files)
    assert not [p for p in files if is_pickle(p.read_bytes()[:2])]
    manifest = json.loads((directory / "epoch-0002" / "manifest.json").read_text())
    assert manifest["format"] == FORMAT == 2 and "trainer.states" not in manifest["files"]
    assert verify_checkpoint(directory / "epoch-0002") is None


@pytest.mark.parametrize("module", [checkpoint, checkpoint_files, checkpoint_optimizer])
def test_checkpoint_modules_do_not_use_pickle(module):
    source = Path(module.__file__).read_text()
    assert "import pickle" not in source and "pickle.load" not in source
    assert ".load_states(" not in source and ".save_states(" not in source
    assert ".set_states(" not in source and ".get_states(" not in source


@pytest.mark.parametrize("manifest_format", [1, FORMAT])
def test_old_format_with_malicious_pickle_is_refused_unread(tmp_path, manifest_format):
    directory = make_checkpoint(tmp_path / "ckpt")
    marker = tmp_path / "pwned"
    plant_old_format(directory / "epoch-0002", marker, manifest_format=manifest_format)
    net, trainer, train_iter, _ = tiny_setup()
    checkpointer = Checkpointer(
        directory,
        run_config("d2l-en", "gluon", 0, RunOptions(epochs=3)),
        resume=True,
        file=io.StringIO(),
    )
    with pytest.raises(CheckpointError, match=REFUSAL) as caught:
        checkpointer.restore(net, trainer, train_iter, mx.cpu())
    assert "epoch-0002" in str(caught.value) and "trainer.states" in str(caught.value)
    with pytest.raises(CheckpointError, match=REFUSAL):  # without --resume as well
        Checkpointer(directory, checkpointer.config, file=io.StringIO()).restore(
            net, trainer, train_iter, mx.cpu()
        )
    with pytest.raises(CheckpointError, match=REFUSAL):  # read directly
        checkpoint_files.read_checkpoint(
            directory / "epoch-0002", net, trainer, train_iter, mx.cpu()
        )
    assert not marker.exists()
    assert (directory / "epoch-0002" / "trainer.states").exists()  # left as it was


def test_old_manifest_without_the_pickle_is_refused_too(tmp_path):
    """A format-1 checkpoint whose trainer.states is gone is not silently skipped."""
    directory = make_checkpoint(tmp_path / "ckpt")
    path = directory / "epoch-0002" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(dict(manifest, format=1)))
    net, trainer, train_iter, _ = tiny_setup()
    with pytest.raises(CheckpointError, match=REFUSAL):
        Checkpointer(directory, {}, resume=True, file=io.StringIO()).restore(
            net, trainer, train_iter, mx.cpu()
        )
    assert "no epoch of this run completed" in Checkpointer(directory, {}).describe()


def test_cli_refuses_the_old_format_before_training(tmp_path, capsys):
    root = tmp_path / "ckpt"
    net, trainer, train_iter, _ = tiny_setup()
    net(nd.zeros((2, 1, 6, 6)))
    config = run_config("d2l-en", "gluon", 0, RunOptions(variants=("gluon",), epochs=3, limit=512))
    saved = Checkpointer(run_dir(root), config).save(1, net, trainer, train_iter, [{"epoch": 1}])
    marker = tmp_path / "pwned"
    plant_old_format(saved, marker)
    status = cli.main(
        [
            "reproduce",
            "d2l-en",
            "--variant",
            "gluon",
            "--epochs",
            "3",
            "--limit",
            "512",
            "--device",
            "cpu",
            "--checkpoint-dir",
            str(root),
            "--out",
            str(tmp_path / "out"),
            "--resume",
        ]
    )
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE and "no longer loads pickles" in captured.err
    assert "Traceback" not in captured.err and "training on" not in captured.out
    assert not marker.exists()


def momentum_setup(momentum):
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(5, activation="relu"), gluon.nn.BatchNorm(), gluon.nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net(nd.zeros((2, 4)))
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": momentum}
    )
    return net, trainer


def step(net, trainer, x, y):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with mx.autograd.record():
        loss = loss_fn(net(x), y)
    loss.backward()
    trainer.step(x.shape[0])


def params_of(net):
    return {k: p.data().asnumpy() for k, p in net._collect_params_with_prefix().items()}


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_sgd_state_round_trips_exactly(tmp_path, momentum):
    rng = np.random.default_rng(1)
    batches = [
        (nd.array(rng.normal(size=(8, 4))), nd.array(rng.integers(0, 3, 8))) for _ in range(4)
    ]
    net, trainer = momentum_setup(momentum)
    for x, y in batches[:3]:
        step(net, trainer, x, y)
    data = _save_trainer_state(tmp_path, net, trainer)  # the arrays; trainer.json's data back
    assert not is_pickle((tmp_path / "trainer.params").read_bytes()[:2])
    data = json.loads(json.dumps(data))  # as checkpoint_files stores it

    fresh_net, fresh_trainer = momentum_setup(0.9 if momentum else 0.0)  # other global names
    for key, p in fresh_net._collect_params_with_prefix().items():
        p.set_data(net._collect_params_with_prefix()[key].data())
    _load_trainer_state(tmp_path, data, fresh_net, fresh_trainer)

    optimizer, restored = trainer.optimizer, fresh_trainer.optimizer
    assert restored.num_update == optimizer.num_update == 3
    saved = {
        key: trainer._updaters[0].states[i]
        for i, key in enumerate(_param_keys(net, trainer))
        if i in trainer._updaters[0].states
    }
    loaded = {
        key: fresh_trainer._updaters[0].states[i]
        for i, key in enumerate(_param_keys(fresh_net, fresh_trainer))
        if i in fresh_trainer._updaters[0].states
    }
    assert set(saved) == set(loaded) and "0.weight" in saved  # the trained parameters
    for key, a in saved.items():  # same momentum (or None) per structural name, bit for bit
        b = loaded[key]
        if momentum:
            np.testing.assert_array_equal(a.asnumpy(), b.asnumpy(), err_msg=key)
            assert np.abs(a.asnumpy()).sum() > 0
        else:
            assert a is None and b is None
    x, y = batches[3]
    step(net, trainer, x, y)
    step(fresh_net, fresh_trainer, x, y)
    after, fresh_after = params_of(net), params_of(fresh_net)
    for key, value in after.items():
        np.testing.assert_array_equal(value, fresh_after[key], err_msg=key)
    assert fresh_trainer.optimizer.num_update == 4


def test_state_of_another_optimizer_setup_is_refused(tmp_path):
    net, trainer = momentum_setup(0.9)
    step(net, trainer, nd.ones((2, 4)), nd.array([0, 1]))
    data = json.loads(json.dumps(_save_trainer_state(tmp_path, net, trainer)))
    other_net, other_trainer = momentum_setup(0.5)
    with pytest.raises(CheckpointError, match="momentum: checkpoint 0.9, now 0.5"):
        _load_trainer_state(tmp_path, data, other_net, other_trainer)
