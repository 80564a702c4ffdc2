"""``gluon-bn bench --peer torch``: our loops beside the same LeNet in PyTorch eager.

Which of ours (:attr:`PeerPlan.loops`): "fast", train_ch5 on the fast pipeline as static
graphs (:data:`GLUON_CONFIGS`); "all" adds the documents' own routes, train_ch5 on d2l's
DataLoader, imperative (:data:`DOCUMENT_CONFIGS`), and document 000's ``d2l.Trainer``
(:data:`BOOK_ROUTES`, timed by :func:`gluon_bn.run.timing.time_book_loop`). The book's loop
trains recipe d2l-1.0's network at its batch size and validates within its epochs, so those
rows do not do PyTorch's work: each row records how it differs (:func:`differences`).

Fair by construction: **weights**: the recipe's Gluon network, seeded and initialised as
:func:`gluon_bn.run.timing.time_config` does, is translated layer by layer into PyTorch with
its parameters copied (conv weights (out, in, kh, kw) and dense weights (out, in) in both).
Gluon's BN momentum ``m`` weighs the moving statistic, PyTorch's the batch's, so PyTorch gets
``1 - m``; eps is the same (PyTorch keeps the unbiased running variance, MXNet the biased
one: only the moving statistics differ, by n / (n - 1)). **Data**: the images as
:class:`gluon_bn.data.FastBatchIterator` preloads them, in its sampler's order for the seed,
warm-up batches then the timed share of an epoch. **Step**: summed cross-entropy, gradient
divided by the batch size, plain SGD at the recipe's rate (``train_ch5``); loss and accuracy
sums read back once. **Threads**: each run is its own process (PyTorch bundles its own
libgomp) with the same environment and ``OMP_NUM_THREADS``; PyTorch calls
``torch.set_num_threads`` with it. The parent writes weights, images and orders once to a
kit (``.npz``); every round runs each configuration as ``python -m gluon_bn.bench.peer JOB``
in the same order (A B C A B C ...). Only the children import a framework each; the
PyTorch side is :mod:`gluon_bn.bench.peer_torch`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from gluon_bn.harness import (
    ROUNDS,
    Turn,
    alternate,
    json_child_main,
    run_json_child,
    runtime_environment,
    summarize,
)

MODULE = "gluon_bn.bench.peer"  # what every run starts: python -m MODULE JOB
HINT = (
    "bench --peer torch needs PyTorch, which is not installed: pip install 'gluon-bn[peer]' "
    "(CPU-only wheel: add --index-url https://download.pytorch.org/whl/cpu)"
)
TORCH_LABEL = "torch eager / preloaded"
# Our paths beside PyTorch, as BenchConfig(variant, bn_impl, hybridize, pipeline): the fast
# ones, then (loops "all") the documents' train_ch5 route, d2l's DataLoader and no compiling.
GLUON_CONFIGS = (
    ("gluon", "faithful", "graph", "fast"),
    ("scratch", "fast", "graph", "fast"),
    ("scratch", "native", "graph", "fast"),
    ("plain", "faithful", "graph", "fast"),
)
DOCUMENT_CONFIGS = (("scratch", "faithful", "none", "d2l"), ("gluon", "faithful", "none", "d2l"))
# Document 000's d2l.Trainer route (loops "all"), as (variant, bn_impl): the book's own layers.
BOOK_ROUTES = (("scratch", "faithful"), ("gluon", "faithful"))
LOOP_SETS = ("fast", "all")
TORCH_LOOP = "PyTorch eager, train_ch5's step"


def require_torch() -> None:
    """Raise ValueError saying how to install PyTorch unless it can be imported."""
    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # sys.modules["torch"] is None, or a broken install
        found = False
    if not found:
        raise ValueError(HINT)


@dataclass(frozen=True)
class PeerPlan:
    """What ``bench --peer torch`` times.

    Attributes
    ----------
    threads : int
        OpenMP threads of every run (``torch.set_num_threads`` for PyTorch).
    recipe, fraction, seed, warmup_batches, data_root
        As for :func:`gluon_bn.run.timing.time_config`.
    rounds : int
        Alternating rounds; every configuration runs once per round.
    loops : {"fast", "all"}
        Our rows: the fast paths only, or also the documents' train_ch5 and d2l.Trainer
        routes (see the module's docstring).
    native : bool
        Time the scratch layer's ``impl="native"`` too (it needs a C++ compiler).
    """

    threads: int
    recipe: str = "d2l-en"
    fraction: float = 0.25
    rounds: int = ROUNDS
    seed: int = 0
    warmup_batches: int = 5
    data_root: Optional[str] = None
    loops: str = "fast"
    native: bool = True

    def __post_init__(self):
        if self.loops not in LOOP_SETS:
            raise ValueError(f"loops must be one of {LOOP_SETS}, got {self.loops!r}")


def differences(recipe_name: str, reference: str, loop: str) -> List[str]:
    """Return how a row's work differs from PyTorch's, in words; empty when like for like.

    Parameters
    ----------
    recipe_name : str
        The recipe whose network and batch size the row trains.
    reference : str
        The recipe PyTorch's network and batch size copy (:attr:`PeerPlan.recipe`).
    loop : str
        The row's loop; a d2l.Trainer epoch includes its validation pass.
    """
    from gluon_bn.recipes import get_recipe

    mine, theirs = get_recipe(recipe_name), get_recipe(reference)
    words = []
    if (mine.network, mine.pool) != (theirs.network, theirs.pool):
        words.append(f"{mine.name}'s network ({mine.network}, {mine.pool}-pool)")
    if mine.batch_size != theirs.batch_size:
        words.append(f"batch {mine.batch_size}")
    if loop == "d2l.Trainer":
        words.append("epoch includes validation")
    return words


def _row(label: str, job: dict, *, loop: str, pipeline: str, recipe: str, reference: str) -> dict:
    """Return one row of :func:`plan_rows`."""
    from gluon_bn.recipes import get_recipe

    return {
        "label": label,
        "loop": loop,
        "pipeline": pipeline,
        "recipe": recipe,
        "batch_size": get_recipe(recipe).batch_size,
        "differences": differences(recipe, reference, loop),
        "job": job,
    }


def plan_rows(plan: PeerPlan) -> List[dict]:
    """Return what `plan` times, a row per configuration in each round's order, PyTorch last.

    Parameters
    ----------
    plan : PeerPlan
        What to time; nothing runs here.

    Returns
    -------
    list of dict
        ``label``; ``loop``, ``pipeline`` and ``recipe`` (whose network, batch size and rate)
        with its ``batch_size``; ``differences`` from PyTorch's work (:func:`differences`);
        ``job``, what the row's child process runs (:func:`run_peer` adds PyTorch's kit).
    """
    from gluon_bn.bench.bench import config_job
    from gluon_bn.recipes import get_recipe
    from gluon_bn.run.timing import BOOK_RECIPE, BenchConfig, timed_examples

    where = {"recipe": plan.recipe, "reference": plan.recipe}
    configs = [
        BenchConfig(*c)
        for c in GLUON_CONFIGS + (DOCUMENT_CONFIGS if plan.loops == "all" else ())
        if plan.native or c[1] != "native"
    ]
    rows = [
        _row(
            c.label,
            {
                **config_job(
                    c,
                    plan.recipe,
                    fraction=plan.fraction,
                    seed=plan.seed,
                    warmup_batches=plan.warmup_batches,
                    data_root=plan.data_root,
                ),
                "framework": "gluon",
                "loop": "train_ch5",
            },
            loop="train_ch5",
            pipeline=c.pipeline,
            **where,
        )
        for c in configs
    ]
    if plan.loops == "all":
        examples = timed_examples(plan.fraction, get_recipe(BOOK_RECIPE).batch_size)
        for variant, impl in BOOK_ROUTES:
            job = {
                "framework": "gluon",
                "loop": "d2l.Trainer",
                "variant": variant,
                "bn_impl": impl,
                "train_examples": examples,
                "seed": plan.seed,
                "data_root": plan.data_root,
            }
            name = f"{variant} {impl}" if variant == "scratch" else variant
            rows.append(
                _row(
                    f"{name} / d2l.Trainer",
                    job,
                    loop="d2l.Trainer",
                    pipeline="d2l",
                    recipe=BOOK_RECIPE,
                    reference=plan.recipe,
                )
            )
    rows.append(
        _row(
            TORCH_LABEL,
            {"framework": "torch", "threads": plan.threads},
            loop=TORCH_LOOP,
            pipeline="preloaded",
            **where,
        )
    )
    return rows


def gluon_layers(net) -> Tuple[List[dict], Dict[str, np.ndarray]]:
    """Describe an initialised Gluon ``Sequential`` layer by layer; return (layers, arrays).

    Parameters
    ----------
    net : gluon.nn.Sequential
        Of Conv2D, BatchNorm, Activation, Max/AvgPool2D, Flatten and Dense, shapes known.
        The layers are dicts (``op`` and settings; a flatten before the first Dense on 4-D
        input, as Gluon's Dense flattens), the arrays ``"{layer index}.{parameter}"``.
    """
    layers, arrays, rank = [], {}, 4
    for block in net._children.values():
        kind, kw = type(block).__name__, getattr(block, "_kwargs", {})
        if kind == "Dense" and rank == 4:
            layers.append({"op": "flatten"})
        rank = 2 if kind in ("Dense", "Flatten") else rank
        for name, param in block.params.items():
            arrays[f"{len(layers)}.{name[len(block.prefix) :]}"] = param.data().asnumpy()
        if kind == "Conv2D" and kw["dilate"] == (1, 1) and kw["num_group"] == 1:
            layers.append({"op": "conv", "pad": kw["pad"], "stride": kw["stride"]})
        elif kind == "BatchNorm" and not kw["fix_gamma"] and not kw["use_global_stats"]:
            layers.append({"op": "bn", "rank": rank, "eps": kw["eps"], "momentum": kw["momentum"]})
        elif kind == "Activation":
            layers.append({"op": block._act_type})
        elif kind in ("MaxPool2D", "AvgPool2D") and kw["pooling_convention"] == "valid":
            layers.append(
                {
                    "op": kw["pool_type"] + "pool",
                    "kernel": kw["kernel"],
                    "stride": kw["stride"],
                    "pad": kw["pad"],
                }
            )
        elif kind in ("Dense", "Flatten"):
            layers.append({"op": kind.lower()})
        else:
            raise ValueError(f"no PyTorch translation for Gluon's {kind} {kw}")
    return layers, arrays


def write_kit(plan: PeerPlan, path: Path) -> Path:
    """Write the Gluon network's initial weights, the images and the epoch orders to `path`.

    Parameters
    ----------
    plan : PeerPlan
        Recipe, seed, warm-up batches, fraction and data directory, as ``time_config`` uses
        them: the orders are the fast pipeline's for the seed, warm-up then timed slice.
    path : Path
        The ``.npz`` to write (read by :func:`gluon_bn.bench.peer_torch.load_torch_kit`).
    """
    from gluon_bn.data import FASHION_MNIST, EpochShuffleSampler, load_arrays
    from gluon_bn.models import build_net, make_initializer
    from gluon_bn.recipes import get_recipe
    from gluon_bn.run.timing import timed_examples
    from gluon_bn.run.training import seed_everything
    from gluon_bn.runtime.loader import mx

    recipe = get_recipe(plan.recipe)
    seed_everything(plan.seed)
    net = build_net(recipe, "gluon")
    net.initialize(make_initializer(recipe.initializer_for("gluon")), ctx=mx.cpu())
    net(mx.nd.zeros((1, 1, 28, 28)))  # deferred initialisation draws the weights, layer by layer
    layers, arrays = gluon_layers(net)
    images, labels = load_arrays(FASHION_MNIST, plan.data_root)[:2]
    limits = (
        plan.warmup_batches * recipe.batch_size,
        timed_examples(plan.fraction, recipe.batch_size),
    )
    orders = [EpochShuffleSampler(min(n, len(labels)), plan.seed).epoch_order() for n in limits]
    n = max(map(len, orders))
    setup = {
        "layers": layers,
        "batch_size": recipe.batch_size,
        "lr": recipe.trainer_learning_rate(),
    }
    np.savez(
        path,
        setup=json.dumps(setup),
        images=images[:n],
        labels=labels[:n],
        warmup=orders[0],
        timed=orders[1],
        **{f"param:{k}": v for k, v in arrays.items()},
    )
    return path


def _time_gluon(job: dict) -> dict:
    from gluon_bn.bench.bench import time_config_job
    from gluon_bn.run.timing import time_book_loop

    if job["loop"] == "d2l.Trainer":
        timing = time_book_loop(
            job["variant"],
            job["bn_impl"],
            seed=job["seed"],
            train_examples=job["train_examples"],
            data_root=job["data_root"],
        )
    else:
        timing = time_config_job(job)
    return {"seconds_per_epoch": timing["seconds_per_epoch"]}


def run_peer(plan: PeerPlan, *, file: Optional[TextIO] = None) -> dict:
    """Time the rows of :func:`plan_rows`, one process each, in alternating rounds.

    Parameters
    ----------
    plan : PeerPlan
        What to time.
    file : text stream, optional
        Where each run's time is said (default stdout).

    Returns
    -------
    dict
        ``plan``, ``rows`` (:func:`plan_rows` without the jobs), ``seconds`` and ``ratios``
        per configuration and round, their ``summary``
        (:func:`gluon_bn.harness.summarize`), PyTorch's version and threads, load averages,
        environment.
    """
    from gluon_bn.report.provenance import environment

    require_torch()
    file = file or sys.stdout
    rows = plan_rows(plan)
    jobs = {row["label"]: row.pop("job") for row in rows}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gluon-bn-peer-") as tmp:
        jobs[TORCH_LABEL]["kit"] = str(write_kit(plan, Path(tmp) / "kit.npz"))
        seconds, torch_info = time_rows(plan, jobs, file)
    return {
        "plan": asdict(plan),
        "rows": rows,
        "reference": TORCH_LABEL,
        "torch": torch_info,
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "seconds": seconds,
        **summarize(seconds, TORCH_LABEL),
        "environment": environment(),
    }


def time_rows(
    plan: PeerPlan, jobs: Dict[str, dict], file: TextIO
) -> Tuple[Dict[str, List[float]], dict]:
    """Time every job once per round in a fresh process; return seconds and PyTorch's details.

    Each run is ``python -m MODULE JOB``, the same order every round. The seconds per epoch
    come back by label and round; PyTorch's runs also say its version and threads.

    Parameters
    ----------
    plan : PeerPlan
        Its threads (every child's ``OMP_NUM_THREADS``) and rounds.
    jobs : dict of str to dict
        Label to job, in round order (:func:`plan_rows`, PyTorch's kit added).
    file : text stream
        Where each run's time is said.
    """
    env = runtime_environment({"OMP_NUM_THREADS": str(plan.threads)}, drop=())
    torch_info: dict = {}

    def time_row(label: str) -> float:
        job = jobs[label]
        answer = run_json_child(
            MODULE, job, what=f"bench --peer: a {job['framework']} run", env=env
        )
        seconds = answer.pop("seconds_per_epoch")
        torch_info.update(answer)  # PyTorch's version and threads; nothing else from ours
        return seconds

    def say(turn: Turn) -> None:
        print(
            f"round {turn.round}/{turn.rounds}, {turn.key}: {turn.value:.2f} s/epoch",
            file=file,
            flush=True,
        )

    return alternate(list(jobs), time_row, plan.rounds, report=say).values, torch_info


def _answer(job: dict) -> dict:
    """Time one job of :func:`run_peer` in this process: PyTorch's or one of our rows."""
    if job["framework"] == "torch":
        from gluon_bn.bench.peer_torch import time_torch

        return time_torch(job)
    return _time_gluon(job)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gluon_bn.bench.peer JOB``: one run of ``bench --peer``, answered as JSON."""
    return json_child_main(
        argv,
        prog=f"python -m {MODULE}",
        answer=_answer,
        description="One timed run of `gluon-bn bench --peer torch` "
        "(started by the bench, one process per run).",
    )


if __name__ == "__main__":
    raise SystemExit(main())
