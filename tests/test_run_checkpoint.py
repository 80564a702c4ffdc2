"""`gluon_bn.run.checkpoint`: save, restore and resume exactly, skip partial and damaged
checkpoints, prune, refuse other configurations (also at the CLI, before any training).
"""

import io
import json

import numpy as np
import pytest
from _run_helpers import run_dir, run_with_file_size_limit, tiny_setup

from gluon_bn import cli
from gluon_bn.run.checkpoint import Checkpointer, CheckpointError, mxnet_seed, run_config
from gluon_bn.run.reproduce import RunOptions
from gluon_bn.run.training import train_ch5
from gluon_bn.runtime.loader import mx

nd = mx.nd


def tiny_config(**options):
    return run_config("d2l-en", "gluon", 0, RunOptions(epochs=3, **options))


def train_tiny(directory, epochs, *, resume, keep=2, pipeline="fast", config=None):
    net, trainer, train_iter, test_iter = tiny_setup(pipeline=pipeline)
    checkpointer = Checkpointer(
        directory, config or tiny_config(), resume=resume, keep=keep, file=io.StringIO()
    )
    history, start_epoch = checkpointer.restore(net, trainer, train_iter, mx.cpu())
    history = history + [
        s.as_dict()
        for s in train_ch5(
            net,
            train_iter,
            test_iter,
            32,
            trainer,
            mx.cpu(),
            epochs,
            file=io.StringIO(),
            start_epoch=start_epoch,
            on_epoch_end=checkpointer.saver(net, trainer, train_iter, history),
        )
    ]
    params = {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}
    return history, params, checkpointer


@pytest.mark.parametrize("pipeline", ["fast", "d2l"])
def test_restore_continues_exactly(tmp_path, pipeline):
    straight, params, _ = train_tiny(tmp_path / "a", 3, resume=False, pipeline=pipeline)
    train_tiny(tmp_path / "b", 1, resume=False, pipeline=pipeline)
    resumed, resumed_params, _ = train_tiny(tmp_path / "b", 3, resume=True, pipeline=pipeline)
    for a, b in zip(straight, resumed):
        assert {k: v for k, v in a.items() if "sec" not in k} == {
            k: v for k, v in b.items() if "sec" not in k
        }
    for name, value in params.items():  # weights, momentum-driven updates, moving statistics
        np.testing.assert_array_equal(value, resumed_params[name], err_msg=name)


def test_shuffle_generator_of_each_pipeline_is_found():
    """Through the public state: one generator shuffles the training set, none the test set."""
    for pipeline in ("fast", "d2l"):
        _, _, train_iter, test_iter = tiny_setup(pipeline=pipeline)
        train_state, test_state = train_iter.state_dict(), test_iter.state_dict()
        assert train_state["shuffle"] and train_state["bit_generator"]["bit_generator"] == "PCG64"
        assert not test_state["shuffle"] and test_state["bit_generator"] is None


def test_mxnet_seed_is_deterministic_per_seed_and_epoch():
    assert mxnet_seed(0, 2) == mxnet_seed(0, 2)
    assert len({mxnet_seed(s, e) for s in range(3) for e in range(1, 4)}) == 9
    assert 0 <= mxnet_seed(-5, 1) < 2**31


def test_partial_and_damaged_checkpoints_are_ignored(tmp_path):
    directory = tmp_path / "run"
    train_tiny(directory, 2, resume=False, keep=5)
    (directory / ".epoch-0003.abc.tmp").mkdir()  # killed while writing epoch 3
    (directory / ".epoch-0003.abc.tmp" / "net.params").write_bytes(b"half")
    (directory / "epoch-0004").mkdir()  # no manifest
    damaged = directory / "epoch-0002" / "net.params"  # bytes changed after the write
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0" * 10)
    notes = io.StringIO()
    checkpointer = Checkpointer(directory, tiny_config(), resume=True, file=notes)
    net, trainer, train_iter, _ = tiny_setup()
    history, start_epoch = checkpointer.restore(net, trainer, train_iter, mx.cpu())
    assert start_epoch == 1 and len(history) == 1
    assert "epoch-0004: no manifest" in notes.getvalue()
    assert "epoch-0002: net.params does not match its SHA-256" in notes.getvalue()
    assert not (directory / ".epoch-0003.abc.tmp").exists()


def test_old_checkpoints_are_pruned_and_saves_are_atomic(tmp_path):
    directory = tmp_path / "run"
    _, _, checkpointer = train_tiny(directory, 3, resume=False, keep=2)
    assert sorted(p.name for p in directory.iterdir()) == ["epoch-0002", "epoch-0003"]
    manifest = json.loads((directory / "epoch-0003" / "manifest.json").read_text())
    assert manifest["epoch"] == 3 and set(manifest["files"]) == {
        "net.params",
        "trainer.params",
        "trainer.json",
        "rng.json",
        "history.json",
        "config.json",
    }
    assert checkpointer.verify(directory / "epoch-0003") is None


def test_other_config_is_refused_and_names_what_differs(tmp_path):
    directory = tmp_path / "run"
    train_tiny(directory, 1, resume=False)
    with pytest.raises(
        CheckpointError,
        match=r"different configuration(.|\n)*lr: checkpoint "
        r"1\.0, now 0\.1(.|\n)*--checkpoint-dir",
    ):
        train_tiny(directory, 3, resume=True, config=tiny_config(lr=0.1))
    other_seed = run_config("d2l-en", "gluon", 7, RunOptions(epochs=3))
    with pytest.raises(CheckpointError, match="seed: checkpoint 0, now 7"):
        train_tiny(directory, 3, resume=True, config=other_seed)
    with pytest.raises(CheckpointError, match="already holds a checkpoint.*--resume"):
        train_tiny(directory, 3, resume=False)


def test_finished_run_resumes_to_its_history_and_fewer_epochs_are_refused(tmp_path):
    directory = tmp_path / "run"
    history, params, _ = train_tiny(directory, 3, resume=False)
    again, again_params, _ = train_tiny(directory, 3, resume=True)
    assert again == history
    for name, value in params.items():
        np.testing.assert_array_equal(value, again_params[name])
    with pytest.raises(CheckpointError, match="already holds 3 epochs.*--epochs 3"):
        train_tiny(
            directory, 2, resume=True, config=run_config("d2l-en", "gluon", 0, RunOptions(epochs=2))
        )


def fake_checkpoint(root, options):
    """A valid checkpoint of d2l-en / gluon / seed 0 made with `options` (tiny network)."""
    net, trainer, train_iter, _ = tiny_setup()
    net(nd.zeros((2, 1, 6, 6)))
    config = run_config("d2l-en", "gluon", 0, options)
    Checkpointer(run_dir(root), config).save(1, net, trainer, train_iter, [{"epoch": 1}])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--resume", "--lr", "0.5"], "different configuration"),
        ([], "Add --resume"),
    ],
)
def test_cli_refuses_mismatched_or_existing_checkpoints_before_training(
    tmp_path, capsys, extra, message
):
    fake_checkpoint(tmp_path / "ckpt", RunOptions(variants=("gluon",), epochs=3, limit=512))
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
            str(tmp_path / "ckpt"),
            "--out",
            str(tmp_path / "out"),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE and message in captured.err
    assert "Traceback" not in captured.err and "training on" not in captured.out


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    """ENOSPC while writing epoch 2's history: epoch 1's checkpoint stays whole, no debris;
    resuming from it then ends exactly like the uninterrupted run."""
    import errno

    from gluon_bn.report import WriteError
    from gluon_bn.run import checkpoint_files

    straight, _, _ = train_tiny(tmp_path / "straight", 3, resume=False)
    directory = tmp_path / "ckpt"
    train_tiny(directory, 1, resume=False)
    real_write_json = checkpoint_files._write_json

    def full_disk(path, data):
        if path.name == "history.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_json(path, data)

    monkeypatch.setattr(checkpoint_files, "_write_json", full_disk)
    with pytest.raises(WriteError) as caught:
        train_tiny(directory, 2, resume=True)
    message = str(caught.value)
    assert (
        f"could not write the checkpoint file {directory / 'epoch-0002' / 'history.json'}"
        in message
    )
    assert "No space left on device (ENOSPC)" in message
    assert f"the last complete checkpoint is intact: {directory / 'epoch-0001'}" in message
    assert sorted(p.name for p in directory.iterdir()) == ["epoch-0001"]
    monkeypatch.setattr(checkpoint_files, "_write_json", real_write_json)  # space freed
    resumed, _, _ = train_tiny(directory, 3, resume=True)
    numbers = ("epoch", "loss", "train_acc", "test_acc")
    assert [[h[k] for k in numbers] for h in resumed] == [[h[k] for k in numbers] for h in straight]


def test_a_real_file_size_limit_on_a_checkpoint_is_exit_5_without_debris(tmp_path, fashion_root):
    root = tmp_path / "C"
    proc = run_with_file_size_limit(
        65536, fashion_root, "--checkpoint-dir", str(root), "--out", str(tmp_path / "out")
    )
    assert proc.returncode == 5, proc.stderr
    run = root / "d2l-en" / "gluon-seed0"
    assert proc.stderr.startswith(
        f"gluon-bn: write error: could not write the checkpoint file "
        f"{run / 'epoch-0001' / 'net.params'}: MXNet could not write the whole file"
    )
    assert "--resume" in proc.stderr and "Traceback" not in proc.stderr
    assert list(run.iterdir()) == []  # no partial directory is left to be taken for a checkpoint
