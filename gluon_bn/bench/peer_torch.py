"""The PyTorch side of ``bench --peer torch``: the kit's network, trained and timed.

Runs only in a child process of :func:`gluon_bn.bench.peer.run_peer` (PyTorch bundles its own
libgomp, so it never shares a process with MXNet); imports PyTorch only inside functions.
A kit (:func:`gluon_bn.bench.peer.write_kit`) holds the layers and initial weights of the
Gluon network, the uint8 images and labels, and the warm-up and timed epoch orders.
"""

from __future__ import annotations

import json
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np

from gluon_bn.recipes import TRAIN_SIZE


def preloaded(images: np.ndarray) -> np.ndarray:
    """Return images as FastBatchIterator preloads them.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 (N, H, W).

    Returns
    -------
    numpy.ndarray
        float32 (N, 1, H, W): ``x / 255`` in float32, as ``ToTensor`` computes.
    """
    return images[:, np.newaxis].astype(np.float32) / 255


def torch_net(layers: Sequence[dict], arrays: Dict[str, np.ndarray]):
    """Return the PyTorch ``nn.Sequential`` a kit describes, its parameters set.

    Parameters
    ----------
    layers : sequence of dict
        From :func:`gluon_bn.bench.peer.gluon_layers`: ``op`` and its settings per layer.
    arrays : dict of str to numpy.ndarray
        ``"{layer index}.{weight|bias|gamma|beta|running_mean|running_var}"``. Gluon's
        momentum ``m`` weighs the moving statistic, PyTorch's the batch's: ``1 - m``.
    """
    from torch import from_numpy, nn

    modules = []
    for at, layer in enumerate(layers):
        p = {
            k.split(".", 1)[1]: from_numpy(v.copy())
            for k, v in arrays.items()
            if k.split(".", 1)[0] == str(at)
        }
        op = layer["op"]
        if op == "conv":
            out, inp, kh, kw = p["weight"].shape
            m = nn.Conv2d(inp, out, (kh, kw), layer["stride"], layer["pad"], bias="bias" in p)
        elif op == "dense":
            m = nn.Linear(p["weight"].shape[1], p["weight"].shape[0], bias="bias" in p)
        elif op == "bn":
            m = (nn.BatchNorm2d if layer["rank"] == 4 else nn.BatchNorm1d)(
                len(p["gamma"]), eps=layer["eps"], momentum=1 - layer["momentum"]
            )
            p["weight"], p["bias"] = p.pop("gamma"), p.pop("beta")
        elif op in ("maxpool", "avgpool"):
            m = (nn.MaxPool2d if op == "maxpool" else nn.AvgPool2d)(
                layer["kernel"], layer["stride"], layer["pad"]
            )
        else:
            m = {"flatten": nn.Flatten, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[
                op
            ]()
        if p and m.load_state_dict(p, strict=False).unexpected_keys:
            raise ValueError(f"layer {at} ({op}) has no parameters named {sorted(p)}")
        modules.append(m)
    return nn.Sequential(*modules)


def train_torch(net, optimizer, kit: dict, order, *, record: bool = False) -> List[float]:
    """Train `net` on the kit's images in `order`, stepping as ``train_ch5`` does.

    Each batch: summed cross-entropy, its gradient divided by the batch size, one step.

    Parameters
    ----------
    net : torch.nn.Module
        In training mode.
    optimizer : torch.optim.Optimizer
        Plain SGD over `net`'s parameters.
    kit : dict
        From :func:`load_torch_kit`.
    order : torch.Tensor
        int64 indices into the kit's images, the epoch order.
    record : bool
        Read back each batch's mean loss (before its step) and return them; otherwise the
        loss and accuracy sums are read back once, at the end (``sync_every_batch=False``).
    """
    import torch
    import torch.nn.functional as F

    batch, losses = kit["batch_size"], []
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
    for start in range(0, len(order), batch):
        index = order[start : start + batch]
        x, y = kit["x"].index_select(0, index), kit["y"].index_select(0, index)
        y_hat = net(x)
        loss = F.cross_entropy(y_hat, y, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        (loss / batch).backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum += loss
            correct += (y_hat.argmax(dim=1) == y).sum()
        if record:
            losses.append(loss.item() / len(index))
    _ = loss_sum.item(), correct.item()
    return losses


def load_torch_kit(path: str, threads: int) -> Tuple[dict, object, object]:
    """Set PyTorch's thread count and read a kit; return (kit, net, optimizer).

    Parameters
    ----------
    path : str
        The ``.npz`` written by :func:`gluon_bn.bench.peer.write_kit`.
    threads : int
        ``torch.set_num_threads``: the OpenMP threads of every configuration.
    """
    import torch

    torch.set_num_threads(threads)
    data = np.load(path)
    setup = json.loads(str(data["setup"]))
    kit = {
        "batch_size": setup["batch_size"],
        "x": torch.from_numpy(preloaded(data["images"])),
        "y": torch.from_numpy(data["labels"].astype(np.int64)),
        "warmup": torch.from_numpy(data["warmup"]),
        "timed": torch.from_numpy(data["timed"]),
    }
    net = torch_net(setup["layers"], {k[6:]: data[k] for k in data.files if k.startswith("param:")})
    return kit, net, torch.optim.SGD(net.parameters(), lr=setup["lr"])


def time_torch(job: dict) -> dict:
    """Train the warm-up batches, then time the timed slice; or record the warm-up losses.

    Parameters
    ----------
    job : dict
        ``kit`` (path), ``threads`` and, to return per-batch losses instead of a time,
        ``record: true``.

    Returns
    -------
    dict
        ``seconds_per_epoch`` (scaled to 60000 images), ``torch`` (version) and
        ``torch_threads``; or ``losses``.
    """
    import torch

    kit, net, optimizer = load_torch_kit(job["kit"], job["threads"])
    if job.get("record"):
        return {"losses": train_torch(net, optimizer, kit, kit["warmup"], record=True)}
    train_torch(net, optimizer, kit, kit["warmup"])
    start = time.perf_counter()
    train_torch(net, optimizer, kit, kit["timed"])
    seconds = time.perf_counter() - start
    return {
        "seconds_per_epoch": seconds * TRAIN_SIZE / len(kit["timed"]),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
