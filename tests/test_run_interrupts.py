"""Runs that stop early: kill -9 and Ctrl-C keep the checkpoints and resume exactly,
divergence stops cleanly naming epoch and batch, and Ctrl-C says what is kept.

The subprocess tests run the real console script on 512 training / 256 test examples of
the real Fashion-MNIST; see docs/bad-input.md for what each test backs.
"""

import json
import os
import re
import shlex
import signal

import pytest
from _run_helpers import EPOCHS, SMALL, TIMEOUT, epoch_lines, run, run_dir, start, wait_for

from gluon_bn import cli
from gluon_bn.run import training as gtraining
from gluon_bn.run.checkpoint import Checkpointer


@pytest.fixture(scope="module")
def reference(fashion_root, tmp_path_factory):
    """The epoch lines of an uninterrupted run without checkpoints."""
    out_dir = tmp_path_factory.mktemp("reference")
    status, out, err = run(SMALL + ["--epochs", str(EPOCHS), "--out", str(out_dir)])
    assert status == 0, err
    lines = epoch_lines(out)
    assert sorted(lines) == list(range(1, EPOCHS + 1))
    return lines


def test_sigkill_then_resume_ends_exactly_like_the_uninterrupted_run(reference, tmp_path):
    ckpt, out_dir = tmp_path / "ckpt", tmp_path / "out"
    args = SMALL + ["--epochs", str(EPOCHS), "--checkpoint-dir", str(ckpt), "--out", str(out_dir)]
    process = start(args)
    wait_for(run_dir(ckpt), "epoch-000[12]/manifest.json", process)
    os.kill(process.pid, signal.SIGKILL)
    out, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    done = sorted(p.name for p in run_dir(ckpt).glob("epoch-*"))
    assert done and f"epoch-{EPOCHS:04d}" not in done  # killed mid-run
    # what was printed before the kill is the reference's
    assert all(reference[e] == v for e, v in epoch_lines(out).items())

    status, out, err = run(args + ["--resume"])
    assert status == 0, err
    resumed = epoch_lines(out)
    first = int(done[-1][-4:]) + 1
    assert "resuming at epoch" in out and sorted(resumed) == list(range(first, EPOCHS + 1))
    assert resumed[EPOCHS] == reference[EPOCHS]  # loss, train acc, test acc of the last epoch
    assert all(reference[e] == v for e, v in resumed.items())
    history = json.loads((out_dir / "d2l-en_fast_limit512.json").read_text())["runs"][0]["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))  # restored + new epochs
    assert f"{history[-1]['loss']:.4f}" == reference[EPOCHS][0]
    # resuming a finished run trains nothing and returns the whole history
    status, out, err = run(args + ["--resume"])
    assert status == 0 and "finished" in out and not epoch_lines(out)


def test_ctrl_c_exits_130_keeps_the_checkpoint_and_prints_the_resume_command(reference, tmp_path):
    ckpt, out_dir = tmp_path / "ckpt", tmp_path / "out"
    args = SMALL + ["--epochs", str(EPOCHS), "--checkpoint-dir", str(ckpt), "--out", str(out_dir)]
    process = start(args)
    wait_for(run_dir(ckpt), "epoch-0001/manifest.json", process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == cli.EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "interrupted" in err
    command = next(
        line.strip() for line in err.splitlines() if line.strip().startswith("gluon-bn ")
    )
    assert shlex.split(command) == ["gluon-bn", *args, "--resume"]
    checkpointer = Checkpointer(run_dir(ckpt), {}, resume=True)
    latest = checkpointer.latest()
    assert latest is not None and latest[0] < EPOCHS
    # the printed command continues the run to the reference's end
    status, out, err = run(shlex.split(command)[1:])
    assert status == 0, err
    assert epoch_lines(out)[EPOCHS] == reference[EPOCHS]


def test_divergence_exits_4_naming_epoch_and_batch(fashion_root, tmp_path):
    ckpt = tmp_path / "ckpt"
    status, out, err = run(
        [
            "reproduce",
            "d2l-en",
            "--variant",
            "gluon",
            "--limit",
            "512",
            "--test-limit",
            "256",
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--lr",
            "1e30",
            "--checkpoint-dir",
            str(ckpt),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert status == cli.EXIT_DIVERGED
    assert "Traceback" not in err
    assert re.search(r"training stopped: .* at epoch 1, batch \d+ \(diverged", err)
    assert "no epoch of this run completed" in err
    assert not list(run_dir(ckpt).glob("epoch-*"))  # nothing half-written is left as a checkpoint


def test_divergence_in_a_later_epoch_keeps_the_last_good_checkpoint(
    reference, tmp_path, capsys, monkeypatch
):
    ckpt = tmp_path / "ckpt"
    args = SMALL + [
        "--epochs",
        str(EPOCHS),
        "--checkpoint-dir",
        str(ckpt),
        "--out",
        str(tmp_path / "out"),
        "--sync-every-batch",
        "yes",
    ]
    original = gtraining._check_loss

    def diverge_in_epoch_2(mean_loss, epoch, batch):
        if epoch == 2 and batch == 3:
            mean_loss = float("nan")
        original(mean_loss, epoch, batch)

    monkeypatch.setattr(gtraining, "_check_loss", diverge_in_epoch_2)
    assert cli.main(args) == cli.EXIT_DIVERGED
    err = capsys.readouterr().err
    assert "became nan per example at epoch 2, batch 3" in err
    assert f"{run_dir(ckpt) / 'epoch-0001'} (epoch 1)" in err
    checkpointer = Checkpointer(run_dir(ckpt), {}, resume=True)
    assert checkpointer.latest() == (1, run_dir(ckpt) / "epoch-0001")

    monkeypatch.setattr(gtraining, "_check_loss", original)
    assert cli.main(args + ["--resume"]) == 0  # --sync-every-batch may change on resume
    assert epoch_lines(capsys.readouterr().out)[EPOCHS] == reference[EPOCHS]


def test_interrupt_without_checkpoints_says_the_run_is_lost(tmp_path, capsys, monkeypatch):
    import gluon_bn.run.reproduce as reproduce_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce_module, "reproduce", interrupted)
    status = cli.main(["reproduce", "d2l-en", "--device", "cpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == cli.EXIT_INTERRUPTED
    assert f"saved under {tmp_path}" in err and "add --checkpoint-dir" in err
