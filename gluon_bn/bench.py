"""Time training epochs of the scratch and Gluon layers on every path, after warm-up."""
from __future__ import annotations

import io
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO

from ._mxnet import mx
from . import data as gdata
from .recipes import build_net, get_recipe, make_initializer
from .report import environment
from .training import seed_everything, train_ch5

TRAIN_SIZE = 60000  # Fashion-MNIST's training set: what "per epoch" scales to


@dataclass(frozen=True)
class BenchConfig:
    """One path to time: which layer, which implementation, hybridized or not, which pipeline."""

    variant: str            # "scratch", "gluon" or "plain"
    bn_impl: str = "faithful"
    hybridize: bool = False
    pipeline: str = "d2l"

    @property
    def label(self) -> str:
        impl = f" {self.bn_impl}" if self.variant == "scratch" else ""
        return f"{self.variant}{impl}{' hybrid' if self.hybridize else ''} / {self.pipeline}"


def default_configs(pipelines: Sequence[str] = ("d2l", "fast")) -> List[BenchConfig]:
    """Return every path worth timing: scratch faithful/fast, Gluon, plain; (non-)hybridized."""
    configs = []
    for pipeline in pipelines:
        configs += [BenchConfig("scratch", "faithful", False, pipeline),
                    BenchConfig("scratch", "faithful", True, pipeline),
                    BenchConfig("scratch", "fast", False, pipeline),
                    BenchConfig("gluon", "faithful", False, pipeline),
                    BenchConfig("gluon", "faithful", True, pipeline),
                    BenchConfig("plain", "faithful", True, pipeline)]
    return configs


def time_config(config: BenchConfig, recipe_name: str = "d2l-en", *, fraction: float = 1.0,
                warmup_batches: int = 5, ctx=None, seed: int = 0,
                data_root: Optional[str] = None) -> Dict[str, float]:
    """Train one warm-up slice, then time `fraction` of an epoch with train_ch5; scale to an epoch.

    Parameters
    ----------
    config : BenchConfig
        The path.
    recipe_name : str
        Whose network, batch size and learning rate.
    fraction : float
        Share of the 60000 training images timed (0 < fraction <= 1).
    warmup_batches : int
        Batches run before timing (graph building, memory pools).
    ctx : Context, optional
        Default CPU.
    seed : int
        Seeds the weights and the shuffling.
    data_root : str, optional
        Explicit Fashion-MNIST directory.

    Returns
    -------
    dict
        ``seconds_per_epoch``, ``examples_per_sec``, ``timed_examples``, ``timed_seconds``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    ctx = ctx or mx.cpu()
    recipe = get_recipe(recipe_name)
    batch = recipe.batch_size
    seed_everything(seed)
    net = build_net(recipe, config.variant, bn_impl=config.bn_impl)
    net.initialize(make_initializer(recipe.initializer_for(config.variant)), ctx=ctx)
    if config.hybridize:
        net.hybridize()
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd",
                               {"learning_rate": recipe.trainer_learning_rate()})
    timed = max(batch, int(math.ceil(TRAIN_SIZE * fraction / batch)) * batch)
    quiet = io.StringIO()
    runs = {}
    for name, limit in (("warmup", warmup_batches * batch), ("timed", timed)):
        train_iter, test_iter = gdata.load_data_fashion_mnist(
            batch, root=data_root, pipeline=config.pipeline, seed=seed, limit=limit,
            test_limit=batch)
        runs[name] = train_ch5(net, train_iter, test_iter, batch, trainer, ctx, 1, file=quiet,
                               sync_every_batch=False)[0]
    stats = runs["timed"]
    n = min(timed, TRAIN_SIZE)
    return {"seconds_per_epoch": stats.train_seconds * TRAIN_SIZE / n,
            "examples_per_sec": n / stats.train_seconds,
            "timed_examples": n, "timed_seconds": stats.train_seconds}


def bench(configs: Sequence[BenchConfig], recipe_name: str = "d2l-en", *, fraction: float = 1.0,
          ctx=None, file: Optional[TextIO] = None, data_root: Optional[str] = None) -> dict:
    """Time every config and return the result dict (rows plus environment)."""
    file = file or sys.stdout
    rows = []
    for i, config in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {config.label} ...", file=file, flush=True)
        timing = time_config(config, recipe_name, fraction=fraction, ctx=ctx, data_root=data_root)
        rows.append({**asdict(config), "label": config.label, **timing})
    reference = {r["pipeline"]: r["seconds_per_epoch"] for r in rows
                 if r["variant"] == "gluon" and not r["hybridize"]}
    for row in rows:
        base = reference.get(row["pipeline"])
        row["ratio_to_builtin"] = row["seconds_per_epoch"] / base if base else None
    return {"recipe": recipe_name, "fraction": fraction, "rows": rows,
            "environment": environment(ctx or mx.cpu())}


def format_table(result: dict) -> str:
    """Return the Markdown table of a bench result."""
    lines = ["| path | s/epoch | examples/s | × built-in (same pipeline) |", "|---|---|---|---|"]
    for row in result["rows"]:
        ratio = f"{row['ratio_to_builtin']:.2f}" if row["ratio_to_builtin"] else ""
        lines.append(f"| {row['label']} | {row['seconds_per_epoch']:.1f} | "
                     f"{row['examples_per_sec']:.0f} | {ratio} |")
    return "\n".join(lines)


def plot_bars(result: dict, path: Path) -> None:
    """Draw seconds per epoch of every path as horizontal bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    colors = {"scratch": "tab:blue", "gluon": "tab:orange", "plain": "tab:green"}
    ax.barh([r["label"] for r in rows], [r["seconds_per_epoch"] for r in rows],
            color=[colors[r["variant"]] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds per epoch (60k images, after warm-up)")
    ax.set_title(f"{result['recipe']} LeNet, {result['environment']['cpu_count']} CPU(s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
