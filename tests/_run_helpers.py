"""Helpers shared by the tests of runs, checkpoints, interrupts, CLI errors and the doctor.

The subprocess helpers run the real console script on 512 training / 256 test examples of
the real Fashion-MNIST; `tiny_setup` builds a small BN network over random data.
"""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gluon_bn import BatchNorm
from gluon_bn.data import D2lBatchIterator, FastBatchIterator
from gluon_bn.run.training import seed_everything
from gluon_bn.runtime.loader import mx

gluon = mx.gluon

GLUON_BN = str(Path(sys.executable).with_name("gluon-bn"))
EPOCH = re.compile(
    r"^epoch (\d+), loss (\S+), train acc (\S+), test acc (\S+), time \S+ sec$", re.M
)
# 32 batches per epoch: an epoch lasts long enough (~0.1 s) to stop the run between two.
# MXNet's default runtime, so that runs in this process (MXNet already loaded) and in
# subprocesses use the same OpenMP thread count, which the arithmetic depends on.
SMALL = [
    "reproduce",
    "d2l-en",
    "--variant",
    "gluon",
    "--limit",
    "512",
    "--test-limit",
    "256",
    "--pipeline",
    "fast",
    "--device",
    "cpu",
    "--batch-size",
    "16",
    "--runtime",
    "default",
]
EPOCHS = (
    10  # long enough that a signal sent after epoch 1 or 2 lands mid-run, even on a loaded machine
)
TIMEOUT = 120


def epoch_lines(text):
    """{epoch: (loss, train acc, test acc)} of the epoch lines in `text`, time left out."""
    return {int(m[1]): m.groups()[1:] for m in EPOCH.finditer(text)}


def start(args):
    """Start the console script; SIGINT at its default so Python turns it into KeyboardInterrupt."""
    return subprocess.Popen(
        [GLUON_BN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run(args):
    process = start(args)
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def run_with_file_size_limit(limit_bytes, data_root, *args):
    """A one-epoch Gluon run of 256 images whose every file may hold `limit_bytes` at most
    (RLIMIT_FSIZE, as a full quota or ``ulimit -f`` makes it); returns the CompletedProcess."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gluon_bn.cli",
            "reproduce",
            "d2l-en",
            "--variant",
            "gluon",
            "--limit",
            "256",
            "--test-limit",
            "128",
            "--epochs",
            "1",
            "--quiet",
            "--data-root",
            str(data_root),
            *args,
        ],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    proc.stderr = without_mxnet_log(proc.stderr)
    return proc


def without_mxnet_log(text):
    """`text` without MXNet's own log lines (``[HH:MM:SS] src/...: ...``, e.g. the engine it
    starts when MXNET_ENGINE_TYPE is set): what is left is what gluon-bn said."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not re.match(r"^\[\d\d:\d\d:\d\d\] \S+\.(cc|h):\d+: ", line)
    )


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
    net.add(
        gluon.nn.Dense(8),
        BatchNorm(8, 2),
        gluon.nn.Activation("sigmoid"),
        gluon.nn.Dense(8),
        gluon.nn.BatchNorm(),
        gluon.nn.Dense(3),
    )
    net.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9})
    return net, trainer, train_iter, test_iter


HOPPER_FAILURE = (
    False,
    "gpu(0) cannot run MXNet kernels: CUDA: no kernel image is available "
    "for execution on the device",
)
