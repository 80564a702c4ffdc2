"""Reference timing: the d2l-en LeNet with BatchNorm in PyTorch eager, on this CPU.

Not part of gluon_bn (PyTorch is not a dependency): it answers "how fast is the same
network elsewhere?" for docs/performance.md. Random images of Fashion-MNIST's shape stand
in for the data (the time of these layers does not depend on the values). Run:

    python -m venv /tmp/t && /tmp/t/bin/pip install torch && /tmp/t/bin/python docs/pytorch_reference.py
"""
import time

import torch
from torch import nn


def lenet_bn() -> nn.Sequential:
    """LeNet with BN after each conv/dense layer, sigmoid, max-pool (document 001's network)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, 10))


def epoch_seconds(threads: int, n: int = 60000, batch: int = 256) -> float:
    """Train one epoch of `n` preloaded images after 5 warm-up batches; return its seconds."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    X, y = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))
    net = lenet_bn()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    loss_fn = nn.CrossEntropyLoss()

    def step(i: int) -> None:
        xb, yb = X[i:i + batch], y[i:i + batch]
        opt.zero_grad()
        loss_fn(net(xb), yb).backward()
        opt.step()

    for i in range(0, 5 * batch, batch):
        step(i)
    start = time.perf_counter()
    for i in range(0, n, batch):
        step(i)
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"torch {torch.__version__}")
    for threads in (1, 2):
        print(f"{threads} thread(s): {epoch_seconds(threads):.2f} s per epoch of 60000 images")
