"""Time training epochs of the scratch and Gluon layers on every path, after warm-up.

Two loops: train_ch5 (:func:`time_config`, every pipeline and compiled form) and document
000's d2l 1.0 ``d2l.Trainer`` (:func:`time_book_loop`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn.harness import markdown_table
from gluon_bn.report import environment
from gluon_bn.run.timing import BenchConfig, time_config
from gluon_bn.runtime.loader import mx


def default_configs(pipelines: Sequence[str] = ("d2l", "fast")) -> List[BenchConfig]:
    """Return every path worth timing: scratch faithful/fast/native, Gluon, plain; how compiled.

    Per pipeline: the documents' ways (imperative, ``net.hybridize()``) and, for the fast
    pipeline, the static graphs of ``--hybridize graph``.
    """
    configs = []
    for pipeline in pipelines:
        configs += [
            BenchConfig("scratch", "faithful", "none", pipeline),
            BenchConfig("scratch", "faithful", "layers", pipeline),
            BenchConfig("scratch", "fast", "none", pipeline),
            BenchConfig("scratch", "native", "none", pipeline),
            BenchConfig("gluon", "faithful", "none", pipeline),
            BenchConfig("gluon", "faithful", "layers", pipeline),
            BenchConfig("plain", "faithful", "layers", pipeline),
        ]
        if pipeline == "fast":
            configs += [
                BenchConfig("scratch", "fast", "graph", pipeline),
                BenchConfig("scratch", "native", "graph", pipeline),
                BenchConfig("gluon", "faithful", "graph", pipeline),
                BenchConfig("plain", "faithful", "graph", pipeline),
            ]
    return configs


def config_job(
    config: BenchConfig,
    recipe_name: str,
    *,
    fraction: float,
    seed: int,
    warmup_batches: int,
    data_root: Optional[str],
    batch_size: Optional[int] = None,
) -> dict:
    """Return one :func:`time_config` call as JSON-able settings, for a child process.

    Parameters
    ----------
    config, recipe_name, fraction, seed, warmup_batches, data_root, batch_size
        As for :func:`time_config`.
    """
    return {
        "config": list(astuple(config)),
        "recipe": recipe_name,
        "fraction": fraction,
        "seed": seed,
        "warmup_batches": warmup_batches,
        "data_root": data_root,
        "batch_size": batch_size,
    }


def time_config_job(job: dict) -> Dict[str, float]:
    """Run the :func:`time_config` call that :func:`config_job` describes; return its timing."""
    return time_config(
        BenchConfig(*job["config"]),
        job["recipe"],
        fraction=job["fraction"],
        seed=job["seed"],
        warmup_batches=job["warmup_batches"],
        data_root=job["data_root"],
        batch_size=job["batch_size"],
    )


def bench(
    configs: Sequence[BenchConfig],
    recipe_name: str = "d2l-en",
    *,
    fraction: float = 1.0,
    ctx=None,
    file: Optional[TextIO] = None,
    data_root: Optional[str] = None,
    repeat: int = 1,
) -> dict:
    """Time every config and return the result dict (rows plus environment).

    Each row's ratio is to the imperative Gluon layer on the same pipeline.
    """
    file = file or sys.stdout
    rows = []
    for i, config in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {config.label} ...", file=file, flush=True)
        timing = time_config(
            config, recipe_name, fraction=fraction, ctx=ctx, data_root=data_root, repeat=repeat
        )
        rows.append({**asdict(config), "label": config.label, **timing})
    reference = {
        r["pipeline"]: r["seconds_per_epoch"]
        for r in rows
        if r["variant"] == "gluon" and r["hybridize"] == "none"
    }
    for row in rows:
        base = reference.get(row["pipeline"])
        row["ratio_to_builtin"] = row["seconds_per_epoch"] / base if base else None
    return {
        "recipe": recipe_name,
        "fraction": fraction,
        "repeat": repeat,
        "rows": rows,
        "environment": environment(ctx or mx.cpu()),
    }


def format_table(result: dict) -> str:
    """Return the Markdown table of a bench result."""
    rows = [
        [
            row["label"],
            f"{row['seconds_per_epoch']:.1f}",
            f"{row['examples_per_sec']:.0f}",
            f"{row['ratio_to_builtin']:.2f}" if row["ratio_to_builtin"] else "",
        ]
        for row in result["rows"]
    ]
    header = ["path", "s/epoch", "examples/s", "× built-in (same pipeline)"]
    return "\n".join(markdown_table(header, rows))


def plot_bars(result: dict, path: Path) -> None:
    """Draw seconds per epoch of every path as horizontal bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    colors = {"scratch": "tab:blue", "gluon": "tab:orange", "plain": "tab:green"}
    ax.barh(
        [r["label"] for r in rows],
        [r["seconds_per_epoch"] for r in rows],
        color=[colors[r["variant"]] for r in rows],
    )
    ax.invert_yaxis()
    ax.set_xlabel("seconds per epoch (60k images, after warm-up)")
    ax.set_title(
        f"{result['recipe']} LeNet, {result['environment']['cpu_count']} CPU(s)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass(frozen=True)
class BenchPlan:
    """What ``gluon-bn bench`` times: whose network, how much of an epoch, which paths, where.

    Attributes
    ----------
    recipe : str
        Whose network and batch size.
    fraction : float
        Share of an epoch timed (scaled up to a whole epoch).
    pipelines, impls : tuple of str
        Input pipelines and scratch implementations to include.
    device : str
        As ``--device``.
    repeat : int
        Time each path this many times and keep the fastest.
    data_root : str, optional
        Where the data is.
    """

    recipe: str = "d2l-en"
    fraction: float = 1.0
    pipelines: Tuple[str, ...] = ("d2l", "fast")
    impls: Tuple[str, ...] = ("faithful", "fast")
    device: str = "cpu"
    repeat: int = 1
    data_root: Optional[str] = None

    def configs(self) -> List[BenchConfig]:
        """Return the paths this plan times."""
        return [
            c
            for c in default_configs(self.pipelines)
            if c.variant != "scratch" or c.bn_impl in self.impls
        ]


def run_plan(plan: BenchPlan, *, file: Optional[TextIO] = None) -> dict:
    """Time every path of `plan` in this process; return the bench result."""
    from gluon_bn.device import parse_device

    ctx = parse_device(plan.device, file=file or sys.stdout)
    return bench(
        plan.configs(),
        plan.recipe,
        fraction=plan.fraction,
        ctx=ctx,
        file=file,
        data_root=plan.data_root,
        repeat=plan.repeat,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gluon_bn.bench.bench PLAN_JSON``: one runtime of the runtime sweep.

    Started by :func:`gluon_bn.bench.sweep.sweep_runtimes`. Reads a :class:`BenchPlan` as
    JSON, times it in this process, prints the result as JSON on stdout (progress on stderr);
    ``gluon-bn bench`` is the command for people.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m gluon_bn.bench.bench",
        description="Time one BenchPlan (JSON) in this process and print the result as JSON; "
        "the runtime sweep of `gluon-bn bench --sweep-runtimes` starts these.",
    )
    parser.add_argument("plan", help="a BenchPlan as JSON, e.g. '{\"fraction\": 0.01}'")
    args = parser.parse_args(argv)
    try:
        fields = json.loads(args.plan)
        for name in ("pipelines", "impls"):
            if name in fields:
                fields[name] = tuple(fields[name])
        plan = BenchPlan(**fields)
    except (ValueError, TypeError) as err:
        parser.error(f"not a BenchPlan: {err}")
    print(json.dumps(run_plan(plan, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
