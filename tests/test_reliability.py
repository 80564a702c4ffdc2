"""Reliability: checkpoints survive kill -9 and Ctrl-C and resume exactly, divergence stops
cleanly, bad input gives one clear message, and ``gluon-bn doctor`` tells what works.

The subprocess tests run the real console script on 512 training / 256 test examples of
the real Fashion-MNIST; see docs/bad-input.md for what each bad-input test backs.
"""
import gzip
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gluon_bn import BatchNorm, cli, doctor
from gluon_bn.run import training as gtraining
from gluon_bn._mxnet import mx
from gluon_bn.run.checkpoint import Checkpointer, CheckpointError, run_config, mxnet_seed
from gluon_bn.data import D2lBatchIterator, FastBatchIterator
from gluon_bn.run.reproduce import RunOptions
from gluon_bn.run.training import TrainingDiverged, seed_everything, train_ch5

nd, autograd, gluon = mx.nd, mx.autograd, mx.gluon

GLUON_BN = str(Path(sys.executable).with_name("gluon-bn"))
EPOCH = re.compile(r"^epoch (\d+), loss (\S+), train acc (\S+), test acc (\S+), time \S+ sec$",
                   re.M)
# 32 batches per epoch: an epoch lasts long enough (~0.1 s) to stop the run between two.
# MXNet's default runtime, so that runs in this process (MXNet already loaded) and in
# subprocesses draw the same initial weights (a parallel sampler's draws depend on the threads).
SMALL = ["reproduce", "d2l-en", "--variant", "gluon", "--limit", "512", "--test-limit", "256",
         "--pipeline", "fast", "--device", "cpu", "--batch-size", "16", "--runtime", "default"]
EPOCHS = 10  # long enough that a signal sent after epoch 1 or 2 lands mid-run, even on a loaded machine
TIMEOUT = 120


def epoch_lines(text):
    """{epoch: (loss, train acc, test acc)} of the epoch lines in `text`, time left out."""
    return {int(m[1]): m.groups()[1:] for m in EPOCH.finditer(text)}


def start(args):
    """Start the console script; SIGINT at its default so Python turns it into KeyboardInterrupt."""
    return subprocess.Popen([GLUON_BN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run(args):
    process = start(args)
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def wait_for(directory, pattern, process, timeout=TIMEOUT):
    """Poll until a file matching `pattern` exists under `directory`; fail if the process ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(directory.glob(pattern))
        if found:
            return found
        assert process.poll() is None, f"the run ended before {pattern} appeared"
        time.sleep(0.002)
    raise AssertionError(f"{pattern} did not appear")


def run_dir(checkpoint_dir):
    return Path(checkpoint_dir) / "d2l-en" / "gluon-seed0"


@pytest.fixture(scope="module")
def reference(fashion_root, tmp_path_factory):
    """The epoch lines of an uninterrupted run without checkpoints."""
    out_dir = tmp_path_factory.mktemp("reference")
    status, out, err = run(SMALL + ["--epochs", str(EPOCHS), "--out", str(out_dir)])
    assert status == 0, err
    lines = epoch_lines(out)
    assert sorted(lines) == list(range(1, EPOCHS + 1))
    return lines


# --------------------------------------------------------------------------- kill, Ctrl-C, resume

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
    command = next(line.strip() for line in err.splitlines() if line.strip().startswith("gluon-bn "))
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
    status, out, err = run(["reproduce", "d2l-en", "--variant", "gluon", "--limit", "512",
                            "--test-limit", "256", "--epochs", "3", "--device", "cpu",
                            "--lr", "1e30", "--checkpoint-dir", str(ckpt),
                            "--out", str(tmp_path / "out")])
    assert status == cli.EXIT_DIVERGED
    assert "Traceback" not in err
    assert re.search(r"training stopped: .* at epoch 1, batch \d+ \(diverged", err)
    assert "no epoch of this run completed" in err
    assert not list(run_dir(ckpt).glob("epoch-*"))  # nothing half-written is left as a checkpoint


def test_divergence_in_a_later_epoch_keeps_the_last_good_checkpoint(reference, tmp_path, capsys,
                                                                    monkeypatch):
    ckpt = tmp_path / "ckpt"
    args = SMALL + ["--epochs", str(EPOCHS), "--checkpoint-dir", str(ckpt),
                    "--out", str(tmp_path / "out"), "--sync-every-batch", "yes"]
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


# --------------------------------------------------------------------------- Checkpointer itself

def tiny_setup(seed=0, pipeline="fast"):
    """A small BN network, its trainer and a shuffled iterator over random data."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(96, 6, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, size=96).astype(np.int32)
    make = FastBatchIterator if pipeline == "fast" else D2lBatchIterator
    train_iter = make(images, labels, 32, shuffle=True, seed=seed)
    test_iter = make(images[:32], labels[:32], 32, shuffle=False)
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(8), BatchNorm(8, 2), gluon.nn.Activation("sigmoid"),
            gluon.nn.Dense(8), gluon.nn.BatchNorm(), gluon.nn.Dense(3))
    net.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9})
    return net, trainer, train_iter, test_iter


def tiny_config(**options):
    return run_config("d2l-en", "gluon", 0, RunOptions(epochs=3, **options))


def train_tiny(directory, epochs, *, resume, keep=2, pipeline="fast", config=None):
    net, trainer, train_iter, test_iter = tiny_setup(pipeline=pipeline)
    checkpointer = Checkpointer(directory, config or tiny_config(), resume=resume, keep=keep,
                                file=io.StringIO())
    history, start_epoch = checkpointer.restore(net, trainer, train_iter, mx.cpu())
    history = history + [s.as_dict() for s in train_ch5(
        net, train_iter, test_iter, 32, trainer, mx.cpu(), epochs, file=io.StringIO(),
        start_epoch=start_epoch, on_epoch_end=checkpointer.saver(net, trainer, train_iter, history))]
    params = {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}
    return history, params, checkpointer


@pytest.mark.parametrize("pipeline", ["fast", "d2l"])
def test_restore_continues_exactly(tmp_path, pipeline):
    straight, params, _ = train_tiny(tmp_path / "a", 3, resume=False, pipeline=pipeline)
    train_tiny(tmp_path / "b", 1, resume=False, pipeline=pipeline)
    resumed, resumed_params, _ = train_tiny(tmp_path / "b", 3, resume=True, pipeline=pipeline)
    for a, b in zip(straight, resumed):
        assert {k: v for k, v in a.items() if "sec" not in k} == \
            {k: v for k, v in b.items() if "sec" not in k}
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
    assert 0 <= mxnet_seed(-5, 1) < 2 ** 31


def test_partial_and_damaged_checkpoints_are_ignored(tmp_path):
    directory = tmp_path / "run"
    train_tiny(directory, 2, resume=False, keep=5)
    (directory / ".epoch-0003.abc.tmp").mkdir()            # killed while writing epoch 3
    (directory / ".epoch-0003.abc.tmp" / "net.params").write_bytes(b"half")
    (directory / "epoch-0004").mkdir()                     # no manifest
    damaged = directory / "epoch-0002" / "net.params"      # bytes changed after the write
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
        "net.params", "trainer.states", "trainer.json", "rng.json", "history.json", "config.json"}
    assert checkpointer.verify(directory / "epoch-0003") is None


def test_other_config_is_refused_and_names_what_differs(tmp_path):
    directory = tmp_path / "run"
    train_tiny(directory, 1, resume=False)
    with pytest.raises(CheckpointError, match=r"different configuration(.|\n)*lr: checkpoint "
                                              r"1\.0, now 0\.1(.|\n)*--checkpoint-dir"):
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
        train_tiny(directory, 2, resume=True, config=run_config(
            "d2l-en", "gluon", 0, RunOptions(epochs=2)))


def fake_checkpoint(root, options):
    """A valid checkpoint of d2l-en / gluon / seed 0 made with `options` (tiny network)."""
    net, trainer, train_iter, _ = tiny_setup()
    net(nd.zeros((2, 1, 6, 6)))
    config = run_config("d2l-en", "gluon", 0, options)
    Checkpointer(run_dir(root), config).save(1, net, trainer, train_iter, [{"epoch": 1}])


@pytest.mark.parametrize("extra,message", [
    (["--resume", "--lr", "0.5"], "different configuration"),
    ([], "Add --resume"),
])
def test_cli_refuses_mismatched_or_existing_checkpoints_before_training(
        tmp_path, capsys, extra, message):
    fake_checkpoint(tmp_path / "ckpt", RunOptions(variants=("gluon",), epochs=3, limit=512))
    status = cli.main(["reproduce", "d2l-en", "--variant", "gluon", "--epochs", "3", "--limit",
                       "512", "--device", "cpu", "--checkpoint-dir", str(tmp_path / "ckpt"),
                       "--out", str(tmp_path / "out"), *extra])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE and message in captured.err
    assert "Traceback" not in captured.err and "training on" not in captured.out


def test_interrupt_without_checkpoints_says_the_run_is_lost(tmp_path, capsys, monkeypatch):
    import gluon_bn.run.reproduce as reproduce_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce_module, "reproduce", interrupted)
    status = cli.main(["reproduce", "d2l-en", "--device", "cpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == cli.EXIT_INTERRUPTED
    assert f"saved under {tmp_path}" in err and "add --checkpoint-dir" in err


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("layer", ["faithful", "fast", "gluon"])
def test_nan_input_to_batchnorm_propagates_without_crashing(layer):
    if layer == "gluon":
        bn = gluon.nn.BatchNorm(in_channels=3)
    else:
        bn = BatchNorm(3, 4, impl=layer)
    bn.initialize()
    x = nd.array(np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype("float32"))
    x[1, 0, 2, 2] = np.nan
    predicted = bn(x).asnumpy()  # prediction: moving statistics, only the NaN element is NaN
    assert np.isnan(predicted).sum() == 1 and np.isnan(predicted[1, 0, 2, 2])
    with autograd.record():
        y = bn(x)
    y.backward()
    y = y.asnumpy()
    # training: channel 0's batch mean and variance are NaN, so all of channel 0 is
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1:]).all()
    if layer != "gluon":  # and channel 0's moving statistics are NaN from now on
        assert np.isnan(bn.moving_mean.data().asnumpy().ravel()[0])
        assert np.isfinite(bn.moving_mean.data().asnumpy().ravel()[1:]).all()


@pytest.mark.parametrize("sync", [True, False])
def test_training_on_nan_data_stops_with_training_diverged(sync):
    net, trainer, _, _ = tiny_setup()
    x = np.random.default_rng(1).random((4, 32, 1, 6, 6)).astype("float32")
    x[1, 5, 0, 3, 3] = np.nan  # batch 2
    y = np.zeros((4, 32), dtype="int32")
    batches = [(nd.array(a), nd.array(b, dtype="int32")) for a, b in zip(x, y)]
    where = r"epoch 1, batch 2"  # the per-epoch read-back names the first bad batch too
    with pytest.raises(TrainingDiverged, match=where + r"(.|\n)*NaN/inf in the input data"):
        train_ch5(net, batches, batches[:1], 32, trainer, mx.cpu(), 2, file=io.StringIO(),
                  sync_every_batch=sync)


@pytest.mark.parametrize("damage,message", [
    ("truncated", "checksum mismatch for {path}"),
    ("corrupt-gzip", "the gzip file {path}.gz is corrupt or incomplete"),
    ("missing", "missing: t10k-labels-idx1-ubyte"),
], ids=["truncated", "corrupt-gzip", "missing"])
def test_bad_data_file_is_exit_3_naming_the_file(fashion_root, tmp_path, capsys, damage,
                                                 message):
    data = tmp_path / "data"
    data.mkdir()
    for path in sorted(fashion_root.glob("*-ubyte*")):
        if not path.name.startswith("t10k-labels"):
            (data / path.name).symlink_to(path)
            continue
        content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        if damage == "truncated":  # e.g. a copy that stopped early
            (data / "t10k-labels-idx1-ubyte").write_bytes(content[:-100])
        elif damage == "corrupt-gzip":  # e.g. a download that stopped early
            (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(content)[:-100])
    status = cli.main(["reproduce", "d2l-en", "--data-root", str(data), "--device", "cpu",
                       "--epochs", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == cli.EXIT_DATA and "Traceback" not in err
    assert err.startswith("gluon-bn: data error: ")
    assert message.format(path=data / "t10k-labels-idx1-ubyte") in err


HOPPER_FAILURE = (False, "gpu(0) cannot run MXNet kernels: CUDA: no kernel image is available "
                         "for execution on the device")


@pytest.mark.parametrize("probe", [None, HOPPER_FAILURE], ids=["no-gpu", "hopper"])
def test_cli_device_gpu_that_cannot_run_is_one_message(tmp_path, capsys, monkeypatch, probe):
    import gluon_bn.device as device
    if probe is not None:
        monkeypatch.setattr(device, "probe_gpu", lambda index=0: probe)
    elif device.probe_gpu(0)[0]:
        pytest.skip("a working GPU is present")
    status = cli.main(["reproduce", "d2l-en", "--device", "gpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == cli.EXIT_USAGE and "Traceback" not in err
    assert "--device gpu" in err and "Use --device cpu" in err
    if probe is not None:
        assert "no kernel image" in err


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("epochs", -1), ("limit", 0),
                                         ("lr", 0.0), ("pipeline", "turbo")])
def test_impossible_run_options_are_value_errors(field, value):
    with pytest.raises(ValueError, match=field):
        RunOptions(**{field: value}).check()


@pytest.mark.parametrize("batch_size,epochs,message", [
    (0, 1, "batch_size must be a positive int, got 0"),
    (32, -1, "num_epochs must be a non-negative int, got -1"),
])
def test_train_ch5_rejects_impossible_arguments(batch_size, epochs, message):
    net, trainer, train_iter, test_iter = tiny_setup()
    with pytest.raises(ValueError, match=message):
        train_ch5(net, train_iter, test_iter, batch_size, trainer, mx.cpu(), epochs,
                  file=io.StringIO())


def test_cli_rejects_zero_limit(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "d2l-en", "--limit", "0"])
    assert exc.value.code == 2 and "must be a positive integer" in capsys.readouterr().err


# --------------------------------------------------------------------------- doctor

def test_doctor_exits_0_here_and_names_the_data_and_no_gpu(fashion_root):
    status, out, err = run(["doctor"])
    assert status == 0, out + err
    assert f"Fashion-MNIST found in {fashion_root}, verified" in out
    assert "mxnet 1.9.1" in out and "numpy 1.23" in out and "work together" in out
    assert "MKLDNN on" in out and "OMP_NUM_THREADS" in out and "os.cpu_count()" in out
    if doctor.check_gpus()[0].message.startswith("no GPU"):
        assert "no GPU" in out
    assert "Ready" in out


def test_doctor_gpu_check_explains_hopper():
    checks = doctor.check_gpus(count=lambda: 1, probe=lambda i: HOPPER_FAILURE,
                               query=lambda: [("NVIDIA H100 80GB HBM3", "9.0")], cuda_build=True)
    assert len(checks) == 1 and checks[0].status == doctor.WARN
    text = doctor.format_checks(checks)
    assert "gpu(0) NVIDIA H100 80GB HBM3, compute capability 9.0: MXNet cannot run" in text
    assert "no kernel image" in text and "sm_50/60/70/80/86 and no PTX" in text
    assert "--device cpu" in text
    assert doctor.ready(checks)  # the CPU still runs the job


def test_doctor_gpu_check_other_cases():
    working = doctor.check_gpus(count=lambda: 2, probe=lambda i: (True, ""),
                                query=lambda: [("A100", "8.0"), ("RTX 4090", "8.9")],
                                cuda_build=True)
    assert [c.status for c in working] == [doctor.OK, doctor.OK]
    assert "RTX 4090, compute capability 8.9: MXNet kernels run" in working[1].message
    cpu_wheel = doctor.check_gpus(count=lambda: 0, probe=lambda i: (False, ""),
                                  query=lambda: [("A100", "8.0")], cuda_build=False)
    assert cpu_wheel[0].status == doctor.WARN and "gluon-bn[cu112]" in cpu_wheel[0].fix
    none = doctor.check_gpus(count=lambda: 0, probe=lambda i: (False, ""), query=lambda: None,
                             cuda_build=False)
    assert none[0].status == doctor.INFO and none[0].message.startswith("no GPU")
    unknown_cap = doctor.check_gpus(count=lambda: 1, probe=lambda i: (False, "cudnn missing"),
                                    query=lambda: None, cuda_build=True)
    assert "compute capability unknown" in unknown_cap[0].message
    assert "CUDA libraries" in unknown_cap[0].fix


@pytest.mark.parametrize("cap,runs", [("5.2", True), ("7.5", True), ("8.0", True),
                                      ("8.9", True), ("9.0", False), ("3.7", False),
                                      ("unknown", None)])
def test_cu112_architectures(cap, runs):
    assert doctor.cu112_runs_on(cap) is runs


def test_doctor_cuda_library_search(tmp_path):
    lib = tmp_path / "nvidia" / "cudnn" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcudnn.so.8").write_bytes(b"")
    ldconfig = "\tlibnccl.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnccl.so.2\n"
    found = doctor.find_cuda_libraries([str(tmp_path)], ldconfig)
    assert found == {"libcudart.so.11": [], "libcudnn.so.8": [str(lib / "libcudnn.so.8")],
                     "libnccl.so.2": ["/usr/lib/x86_64-linux-gnu/libnccl.so.2"]}
    check = doctor.check_cuda_libraries(found, cuda_build=True)[0]
    assert check.status == doctor.WARN and "libcudart.so.11" in check.message
    assert doctor.check_cuda_libraries(found, cuda_build=False)[0].status == doctor.INFO


def test_doctor_fails_without_data_and_with_numpy_too_new(tmp_path, monkeypatch):
    data = doctor.check_data(str(tmp_path), env={})
    assert data[-1].status == doctor.FAIL and str(tmp_path) in "\n".join(data[-1].details)
    assert not doctor.ready(data)
    out = io.StringIO()
    assert doctor.run_doctor(file=out, data_root=str(tmp_path)) == 1
    assert "Not ready" in out.getvalue()
    monkeypatch.setattr(np, "__version__", "1.26.4")
    checks = doctor.check_mxnet_numpy()
    assert checks[0].status == doctor.FAIL and "numpy<1.24" in checks[0].fix
    assert not doctor.ready(checks)


def test_doctor_thread_oversubscription_is_a_warning():
    cores = len(os.sched_getaffinity(0))
    check = doctor.check_threads({"OMP_NUM_THREADS": str(cores * 4)})[0]
    assert check.status == doctor.WARN and "oversubscribe" in check.fix
    assert doctor.check_threads({"OMP_NUM_THREADS": "1"})[0].status == doctor.OK
    naive = {"MXNET_ENGINE_TYPE": "NaiveEngine", "OMP_NUM_THREADS": str(cores),
             "MXNET_CPU_WORKER_NTHREADS": "4"}  # workers are not used by NaiveEngine
    assert doctor.check_threads(naive)[0].status == doctor.OK


def test_doctor_reports_an_mxnet_that_fails_to_import():
    """`import gluon_bn` does not load MXNet, so the doctor can describe a broken one."""
    code = ("import sys; sys.modules['mxnet'] = None; from gluon_bn.cli import main; "
            "sys.exit(main(['doctor']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "[FAIL] mxnet" in proc.stdout and "pip install 'gluon-bn[cpu]'" in proc.stdout
    assert "Traceback" not in proc.stderr
