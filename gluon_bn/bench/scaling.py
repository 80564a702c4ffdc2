"""``gluon-bn bench --scaling``: time and peak memory per epoch as the batch and the threads grow.

Every cell (path, batch size, thread count) runs in its own process, started with the tuned
runtime for that many threads (:func:`gluon_bn.runtime.tuned`), because MXNet reads the
engine and the OpenMP thread count once, when it loads; a fresh process also makes the
peak resident memory (``ru_maxrss``) that cell's own. The cells run in the same order every
round and the rounds repeat it (A B C ... A B C ...), so slow spells of a shared machine
spread over all cells instead of landing on one.

The FLOP floor of a cell is the multiply-adds of the network's convolutions and dense layers
for 60000 images, three times over (forward, and the two products of the backward: input
and weight gradients), divided by the rate of one large float32 matrix product (1024 x 1024),
the median over every process that ran with the same thread count: what the epoch would
take if every product ran at MXNet's best matrix speed and nothing else cost anything.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.harness import (
    ROUNDS,
    Turn,
    alternate,
    json_child_main,
    markdown_table,
    run_json_child,
    runtime_environment,
    span,
    spread,
)
from gluon_bn.recipes import TRAIN_SIZE

MODULE = "gluon_bn.bench.scaling"  # what every cell starts: python -m MODULE JOB
BATCH_SIZES = (64, 128, 256, 512, 1024)
# The BN paths of the fast pipeline, as BenchConfig(variant, bn_impl, hybridize, pipeline).
PATHS = (
    ("gluon", "faithful", "graph", "fast"),
    ("scratch", "fast", "graph", "fast"),
    ("scratch", "native", "graph", "fast"),
)
GEMM_SIZE = 1024
TRAIN_PASSES = 3  # forward, input gradient, weight gradient: each one product per layer


@dataclass(frozen=True)
class ScalingPlan:
    """What ``bench --scaling`` measures.

    Attributes
    ----------
    threads : tuple of int
        OpenMP thread counts (default in the CLI: 1 to the usable cores).
    batch_sizes : tuple of int
        Examples per batch (the learning rate stays the recipe's).
    recipe : str
        Whose network.
    fraction : float
        Share of an epoch timed after the warm-up, scaled to 60000 images.
    rounds : int
        Every cell runs once per round.
    seed, warmup_batches, data_root
        As for :func:`gluon_bn.run.timing.time_config`.
    native : bool
        Time the scratch layer's ``impl="native"`` too (it needs a C++ compiler).
    """

    threads: Tuple[int, ...]
    batch_sizes: Tuple[int, ...] = BATCH_SIZES
    recipe: str = "d2l-en"
    fraction: float = 0.1
    rounds: int = ROUNDS
    seed: int = 0
    warmup_batches: int = 5
    data_root: Optional[str] = None
    native: bool = True

    def __post_init__(self):
        for name in ("threads", "batch_sizes"):
            values = getattr(self, name)
            if not values or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
            ):
                raise ValueError(f"{name} must be positive integers, got {list(values)}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {self.fraction!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds must be a positive integer, got {self.rounds!r}")

    def cells(self) -> List[Tuple[Tuple[str, str, str, str], int, int]]:
        """Return every (path, batch size, threads) in running order."""
        return [
            (path, batch, threads)
            for threads in self.threads
            for batch in self.batch_sizes
            for path in PATHS
            if self.native or path[1] != "native"
        ]


def matmul_flops_per_example(net, shape: Sequence[int]) -> float:
    """Return the multiply-adds x 2 of `net`'s convolutions and dense layers for one example.

    Parameters
    ----------
    net : gluon.nn.Sequential
        Uninitialised; initialised here on the CPU to follow one example through it.
    shape : sequence of int
        One example's shape, e.g. (1, 28, 28).
    """
    from gluon_bn.runtime.loader import mx

    nn = mx.gluon.nn
    net.initialize(ctx=mx.cpu())
    x = mx.nd.zeros((1, *shape))
    macs = 0
    for layer in net:
        y = layer(x)
        if isinstance(layer, nn.Conv2D):
            # each output value (channel, row, column) sums in_channels x kh x kw products
            kernel = layer.weight.shape  # (out, in, kh, kw)
            macs += y.size * kernel[1] * kernel[2] * kernel[3]
        elif isinstance(layer, nn.Dense):
            macs += layer.weight.shape[0] * layer.weight.shape[1]  # (units, in_units)
        x = y
    return 2.0 * macs


def gemm_gflops(size: int = GEMM_SIZE, repeat: int = 10) -> float:
    """Return this process's float32 matrix-product rate in GFLOP/s (best of `repeat`)."""
    from gluon_bn.runtime.loader import mx

    a = mx.nd.random.uniform(shape=(size, size))
    b = mx.nd.random.uniform(shape=(size, size))
    mx.nd.dot(a, b).wait_to_read()  # warm-up: first call allocates
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        mx.nd.dot(a, b).wait_to_read()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def measure_cell(job: dict) -> dict:
    """Time one cell in this process; return seconds per epoch, peak memory and the GEMM rate."""
    from gluon_bn.bench.bench import time_config_job

    timing = time_config_job(job)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "seconds_per_epoch": timing["seconds_per_epoch"],
        "peak_mib": peak_kib / 1024,
        "gemm_gflops": gemm_gflops(),
    }


def cell_label(path: Sequence[str]) -> str:
    """Return a path's label as the other bench tables write it."""
    from gluon_bn.run.timing import BenchConfig

    return BenchConfig(*path).label


def run_scaling(plan: ScalingPlan, *, file: Optional[TextIO] = None) -> dict:
    """Measure every cell of `plan` once per round, in the same order each round.

    Returns
    -------
    dict
        ``plan``, ``flops_per_epoch`` (matrix-product FLOPs of a 60000-image training
        epoch), ``cells`` (one per path, batch and threads: the rounds' seconds, peak MiB
        and GEMM rates, their medians, and the floor), load averages and environment.
    """
    from gluon_bn.models import build_net
    from gluon_bn.recipes import get_recipe
    from gluon_bn.report.provenance import environment

    file = file or sys.stdout
    flops = (
        TRAIN_PASSES
        * TRAIN_SIZE
        * matmul_flops_per_example(build_net(get_recipe(plan.recipe), "plain"), (1, 28, 28))
    )
    load_before = os.getloadavg()
    runs = time_cells(plan, file)
    gemm = {
        t: statistics.median(
            a["gemm_gflops"]
            for (_, _, threads), answers in runs.items()
            if threads == t
            for a in answers
        )
        for t in plan.threads
    }
    cells = [
        summarize_cell(path, batch, threads, answers, flops / (gemm[threads] * 1e9))
        for (path, batch, threads), answers in runs.items()
    ]
    return {
        "plan": asdict(plan),
        "flops_per_epoch": flops,
        "cells": cells,
        "gemm_gflops": {str(t): rate for t, rate in gemm.items()},
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "environment": environment(),
    }


def time_cells(plan: ScalingPlan, file: TextIO) -> Dict[Tuple, List[dict]]:
    """Time every cell once per round in a fresh process; return each cell's answers.

    Each run is ``python -m MODULE JOB`` with the tuned runtime for the cell's threads, the
    same order every round.

    Parameters
    ----------
    plan : ScalingPlan
        The cells and rounds.
    file : text stream
        Where each run is said.
    """
    from gluon_bn.bench.bench import config_job
    from gluon_bn.run.timing import BenchConfig
    from gluon_bn.runtime import tuned

    def time_cell(cell: Tuple) -> dict:
        path, batch, threads = cell
        job = config_job(
            BenchConfig(*path),
            plan.recipe,
            fraction=plan.fraction,
            seed=plan.seed,
            warmup_batches=plan.warmup_batches,
            data_root=plan.data_root,
            batch_size=batch,
        )
        return run_json_child(
            MODULE,
            job,
            what=f"bench --scaling: the cell {job}",
            env=runtime_environment(tuned(threads).variables()),
        )

    def say(turn: Turn) -> None:
        (path, batch, threads), answer = turn.cell, turn.value
        print(
            f"round {turn.round}/{turn.rounds}, cell {turn.index}/{turn.count}: "
            f"{cell_label(path)}, batch {batch}, {threads} thread(s): "
            f"{answer['seconds_per_epoch']:.2f} s/epoch, peak {answer['peak_mib']:.0f} MiB",
            file=file,
            flush=True,
        )

    return alternate(plan.cells(), time_cell, plan.rounds, report=say).values


def summarize_cell(
    path: Sequence[str], batch: int, threads: int, answers: Sequence[dict], floor_seconds: float
) -> dict:
    """Return one cell's rounds, their median and range, its peak memory and its FLOP floor.

    Parameters
    ----------
    path : sequence of str
        The cell's BenchConfig fields.
    batch, threads : int
        The cell's batch size and OpenMP threads.
    answers : sequence of dict
        The cell's runs (:func:`measure_cell`), one per round.
    floor_seconds : float
        The epoch's matrix-product FLOPs at the median GEMM rate of `threads` threads.
    """
    seconds = [a["seconds_per_epoch"] for a in answers]
    return {
        "label": cell_label(path),
        "path": list(path),
        "batch_size": batch,
        "threads": threads,
        "seconds": seconds,
        **{f"seconds_{k}": v for k, v in spread(seconds).items()},
        "peak_mib": max(a["peak_mib"] for a in answers),
        "floor_seconds": floor_seconds,
    }


def format_scaling(result: dict) -> str:
    """Return the Markdown table: s/epoch median (range), × the FLOP floor, peak memory."""
    plan = result["plan"]
    rows = [
        [
            c["label"],
            c["threads"],
            c["batch_size"],
            span({k: c[f"seconds_{k}"] for k in ("median", "min", "max")}),
            f"{c['seconds_median'] / c['floor_seconds']:.1f}",
            f"{c['floor_seconds']:.2f}",
            f"{c['peak_mib']:.0f}",
        ]
        for c in sorted(result["cells"], key=lambda c: (c["label"], c["threads"], c["batch_size"]))
    ]
    lines = markdown_table(
        [
            "path",
            "threads",
            "batch",
            "s/epoch, median (range)",
            "× FLOP floor",
            "floor s",
            "peak MiB",
        ],
        rows,
        align="lrrlrrr",
    )
    lines += [
        "",
        f"{plan['rounds']} rounds, {plan['fraction']:g} of an epoch timed after "
        f"{plan['warmup_batches']} warm-up batches, scaled to 60 000 images; the "
        f"{plan['recipe']} network, learning rate unchanged. FLOP floor: "
        f"{result['flops_per_epoch'] / 1e9:.0f} GFLOP of matrix products per epoch at the "
        "median 1024 x 1024 float32 GEMM rate its processes measured with that many "
        "threads ("
        + ", ".join(f"{t}: {r:.0f} GFLOP/s" for t, r in result["gemm_gflops"].items())
        + "). Peak MiB: the process's peak resident "
        "memory (MXNet, the preloaded images, the network).",
    ]
    return "\n".join(lines)


def plot_scaling(result: dict, path: Path) -> None:
    """Draw s/epoch (with the FLOP floor) and peak memory against batch size, a line per
    path and thread count; save to `path`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups: Dict[Tuple[str, int], List[dict]] = {}
    for c in result["cells"]:
        groups.setdefault((c["label"], c["threads"]), []).append(c)
    floors: Dict[int, List[dict]] = {}  # one floor line per thread count
    for (label, threads), cells in sorted(groups.items()):
        cells.sort(key=lambda c: c["batch_size"])
        x = [c["batch_size"] for c in cells]
        y = [c["seconds_median"] for c in cells]
        err = [
            [c["seconds_median"] - c["seconds_min"] for c in cells],
            [c["seconds_max"] - c["seconds_median"] for c in cells],
        ]
        ax_t.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{label}, {threads} thr")
        ax_m.plot(x, [c["peak_mib"] for c in cells], marker="o", label=f"{label}, {threads} thr")
        floors.setdefault(threads, cells)
    for i, (threads, cells) in enumerate(sorted(floors.items())):
        ax_t.plot(
            [c["batch_size"] for c in cells],
            [c["floor_seconds"] for c in cells],
            linestyle=("--", ":", "-.")[i % 3],
            color="gray",
            label=f"FLOP floor, {threads} thr",
        )
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.grid(True, alpha=0.3)
    ax_t.set_yscale("log")
    ax_t.set_ylabel("seconds per 60 000-image epoch")
    ax_m.set_ylabel("peak resident memory (MiB)")
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gluon_bn.bench.scaling JOB``: one cell of :func:`run_scaling`, answered as JSON."""
    return json_child_main(
        argv,
        prog=f"python -m {MODULE}",
        answer=measure_cell,
        description="One cell of `gluon-bn bench --scaling` (started by "
        "the bench, one process per cell).",
    )


if __name__ == "__main__":
    raise SystemExit(main())
