"""Time training epochs of the scratch and Gluon layers on every path, after warm-up.

Two loops: train_ch5 (:func:`time_config`, every pipeline and compiled form) and document
000's d2l 1.0 ``d2l.Trainer`` (:func:`time_book_loop`).
"""
from __future__ import annotations

import io
import json
import math
import sys
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from gluon_bn._mxnet import mx
from gluon_bn import data as gdata
from gluon_bn.models import build_net, check_hybridize_mode, hybridize_network, make_initializer
from gluon_bn.options import RunOptions
from gluon_bn.recipes import get_recipe
from gluon_bn.report import environment
from gluon_bn.runtime import DEFAULT, Runtime, describe
from gluon_bn.run.reproduce import run_variant
from gluon_bn.bench.child import run_json_child, runtime_environment
from gluon_bn.run.training import seed_everything, train_ch5

TRAIN_SIZE = 60000  # Fashion-MNIST's training set: what "per epoch" scales to
TEST_SIZE = 10000   # and its test set
BOOK_RECIPE = "d2l-1.0"  # the d2l.Trainer loop is document 000's: its network, batch and rate


@dataclass(frozen=True)
class BenchConfig:
    """One path to time: which layer, which implementation, how compiled, which pipeline."""

    variant: str            # "scratch", "gluon" or "plain"
    bn_impl: str = "faithful"
    hybridize: str = "none"  # see gluon_bn.models.hybridize_network
    pipeline: str = "d2l"

    def __post_init__(self):
        check_hybridize_mode(self.hybridize)

    @property
    def label(self) -> str:
        impl = f" {self.bn_impl}" if self.variant == "scratch" else ""
        compiled = {"none": "", "layers": " hybrid", "graph": " graph"}[self.hybridize]
        return f"{self.variant}{impl}{compiled} / {self.pipeline}"


def default_configs(pipelines: Sequence[str] = ("d2l", "fast")) -> List[BenchConfig]:
    """Return every path worth timing: scratch faithful/fast/native, Gluon, plain; how compiled.

    Per pipeline: the documents' ways (imperative, ``net.hybridize()``) and, for the fast
    pipeline, the static graphs of ``--hybridize graph``.
    """
    configs = []
    for pipeline in pipelines:
        configs += [BenchConfig("scratch", "faithful", "none", pipeline),
                    BenchConfig("scratch", "faithful", "layers", pipeline),
                    BenchConfig("scratch", "fast", "none", pipeline),
                    BenchConfig("scratch", "native", "none", pipeline),
                    BenchConfig("gluon", "faithful", "none", pipeline),
                    BenchConfig("gluon", "faithful", "layers", pipeline),
                    BenchConfig("plain", "faithful", "layers", pipeline)]
        if pipeline == "fast":
            configs += [BenchConfig("scratch", "fast", "graph", pipeline),
                        BenchConfig("scratch", "native", "graph", pipeline),
                        BenchConfig("gluon", "faithful", "graph", pipeline),
                        BenchConfig("plain", "faithful", "graph", pipeline)]
    return configs


def timed_examples(fraction: float, batch_size: int) -> int:
    """Return how many training examples a bench times: `fraction` of an epoch in whole batches.

    Parameters
    ----------
    fraction : float
        Share of the 60000 training images (0 < fraction <= 1).
    batch_size : int
        Examples per batch; at least one batch is timed.
    """
    return max(batch_size, int(math.ceil(TRAIN_SIZE * fraction / batch_size)) * batch_size)


def time_config(config: BenchConfig, recipe_name: str = "d2l-en", *, fraction: float = 1.0,
                warmup_batches: int = 5, ctx=None, seed: int = 0, repeat: int = 1,
                data_root: Optional[str] = None,
                batch_size: Optional[int] = None) -> Dict[str, float]:
    """Train one warm-up slice, then time `fraction` of an epoch with train_ch5; scale to an epoch.

    With `repeat` > 1 the timed slice runs that many times (training on) and the fastest
    counts: on a shared machine the minimum is the least disturbed measurement.

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
    repeat : int
        Timed runs; the fastest is reported, all are returned.
    data_root : str, optional
        Explicit Fashion-MNIST directory.
    batch_size : int, optional
        Examples per batch instead of the recipe's (the learning rate stays the recipe's).

    Returns
    -------
    dict
        ``seconds_per_epoch``, ``examples_per_sec``, ``timed_examples``, ``timed_seconds``
        (of the fastest run) and ``all_seconds_per_epoch``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    net, trainer, batch = prepare_bench(config, recipe_name, seed=seed, ctx=ctx,
                                        batch_size=batch_size)
    timed = timed_examples(fraction, batch)
    seconds = [train_slice(net, trainer, slice_data(config, recipe_name, limit=limit, seed=seed,
                                                    data_root=data_root, batch_size=batch),
                           batch, ctx)
               for limit in [warmup_batches * batch] + [timed] * repeat]
    best = min(seconds[1:])
    n = min(timed, TRAIN_SIZE)
    return {"seconds_per_epoch": best * TRAIN_SIZE / n, "examples_per_sec": n / best,
            "timed_examples": n, "timed_seconds": best,
            "all_seconds_per_epoch": [s * TRAIN_SIZE / n for s in seconds[1:]]}


def config_job(config: BenchConfig, recipe_name: str, *, fraction: float, seed: int,
               warmup_batches: int, data_root: Optional[str],
               batch_size: Optional[int] = None) -> dict:
    """Return one :func:`time_config` call as JSON-able settings, for a child process.

    Parameters
    ----------
    config, recipe_name, fraction, seed, warmup_batches, data_root, batch_size
        As for :func:`time_config`.
    """
    return {"config": list(astuple(config)), "recipe": recipe_name, "fraction": fraction,
            "seed": seed, "warmup_batches": warmup_batches, "data_root": data_root,
            "batch_size": batch_size}


def time_config_job(job: dict) -> Dict[str, float]:
    """Run the :func:`time_config` call that :func:`config_job` describes; return its timing."""
    return time_config(BenchConfig(*job["config"]), job["recipe"], fraction=job["fraction"],
                       seed=job["seed"], warmup_batches=job["warmup_batches"],
                       data_root=job["data_root"], batch_size=job["batch_size"])


def time_book_loop(variant: str, bn_impl: str = "faithful", *, train_examples: int,
                   epochs: int = 2, seed: int = 0, ctx=None,
                   data_root: Optional[str] = None) -> Dict[str, float]:
    """Time document 000's loop (d2l.Trainer on d2l 1.0's data module); scale to an epoch.

    The network, batch size (128) and rate are :data:`BOOK_RECIPE`'s, as the book trains
    them. The loop runs ``max(2, epochs)`` epochs on the first `train_examples` images,
    validating on a sixth as many (Fashion-MNIST's test/train ratio); the first epoch is the
    warm-up and the last is timed. A d2l.Trainer epoch includes its validation pass, so the
    time scaled to 60000 training images also stands for 10000 validation images.

    Parameters
    ----------
    variant : {"scratch", "gluon", "plain"}
        Which of the book's networks.
    bn_impl : {"faithful", "fast", "native"}
        The scratch layer's implementation (the document's is "faithful").
    train_examples : int
        Training images per epoch, 1 to 60000.
    epochs : int
        Epochs to run; at least 2 are.
    seed : int
        Seeds the weights and the loader's order.
    ctx : Context, optional
        Default CPU.
    data_root : str, optional
        Explicit Fashion-MNIST directory.

    Returns
    -------
    dict
        ``seconds_per_epoch`` (60000 images), ``examples_per_sec`` and ``timed_examples``.
    """
    if not 1 <= train_examples <= TRAIN_SIZE:
        raise ValueError(f"train_examples must be 1 to {TRAIN_SIZE}, got {train_examples!r}")
    options = RunOptions(variants=(variant,), seeds=(seed,), epochs=max(2, epochs),
                         bn_impl=bn_impl, loop="d2l.Trainer", pipeline="d2l",
                         dataset="fashion-mnist", data_root=data_root, limit=train_examples,
                         test_limit=max(1, train_examples * TEST_SIZE // TRAIN_SIZE))
    run = options.resolve(get_recipe(BOOK_RECIPE), dataset="fashion-mnist")
    record = run_variant(run, variant, seed, ctx or mx.cpu(), file=io.StringIO(), progress=False)
    seconds = record.history[-1].seconds  # the last epoch: training and validation
    return {"seconds_per_epoch": seconds * TRAIN_SIZE / train_examples,
            "examples_per_sec": train_examples / seconds, "timed_examples": train_examples}


def prepare_bench(config: BenchConfig, recipe_name: str = "d2l-en", *, seed: int = 0, ctx=None,
                  batch_size: Optional[int] = None) -> Tuple[mx.gluon.Block, mx.gluon.Trainer, int]:
    """Build, seed and initialise the recipe's network for `config`; return it, its trainer, the batch.

    Parameters
    ----------
    config : BenchConfig
        The path (its variant, BN implementation and compiled form).
    recipe_name : str
        Whose network, initialiser and learning rate.
    seed : int
        Seeds the weights.
    ctx : Context, optional
        Default CPU.
    batch_size : int, optional
        Instead of the recipe's.
    """
    recipe = get_recipe(recipe_name)
    seed_everything(seed)
    net = hybridize_network(build_net(recipe, config.variant, bn_impl=config.bn_impl),
                            config.hybridize)
    net.initialize(make_initializer(recipe.initializer_for(config.variant)), ctx=ctx or mx.cpu())
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd",
                               {"learning_rate": recipe.trainer_learning_rate()})
    return net, trainer, batch_size or recipe.batch_size


def slice_data(config: BenchConfig, recipe_name: str = "d2l-en", *, limit: int, seed: int = 0,
               data_root: Optional[str] = None, batch_size: Optional[int] = None) -> tuple:
    """Return the (train, test) iterators of one slice: the first `limit` training images on
    `config`'s pipeline in the seed's order, and one test batch.

    Parameters
    ----------
    config : BenchConfig
        Whose pipeline feeds the batches.
    recipe_name : str
        Whose batch size (unless `batch_size`).
    limit : int
        Training images of this slice.
    seed, data_root
        As for :func:`time_config`.
    batch_size : int, optional
        Instead of the recipe's.
    """
    batch = batch_size or get_recipe(recipe_name).batch_size
    return gdata.load_data_fashion_mnist(batch, root=data_root, pipeline=config.pipeline,
                                         seed=seed, limit=limit, test_limit=batch)


def train_slice(net: mx.gluon.Block, trainer: mx.gluon.Trainer, data: tuple, batch_size: int,
                ctx=None) -> float:
    """Train one train_ch5 epoch over `data` (:func:`slice_data`); return its training seconds
    (sums read back once; the test batch evaluated after, not timed).

    Parameters
    ----------
    net, trainer
        From :func:`prepare_bench`; training goes on from where they are.
    data : (train_iter, test_iter)
        From :func:`slice_data`, loaded before, so that no file reading is timed.
    batch_size : int
        What ``trainer.step`` divides the summed gradient by.
    ctx : Context, optional
        Default CPU.
    """
    train_iter, test_iter = data
    stats = train_ch5(net, train_iter, test_iter, batch_size, trainer, ctx or mx.cpu(), 1,
                      file=io.StringIO(), sync_every_batch=False, progress=False)[0]
    return stats.train_seconds


def bench(configs: Sequence[BenchConfig], recipe_name: str = "d2l-en", *, fraction: float = 1.0,
          ctx=None, file: Optional[TextIO] = None, data_root: Optional[str] = None,
          repeat: int = 1) -> dict:
    """Time every config and return the result dict (rows plus environment).

    Each row's ratio is to the imperative Gluon layer on the same pipeline.
    """
    file = file or sys.stdout
    rows = []
    for i, config in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {config.label} ...", file=file, flush=True)
        timing = time_config(config, recipe_name, fraction=fraction, ctx=ctx, data_root=data_root,
                             repeat=repeat)
        rows.append({**asdict(config), "label": config.label, **timing})
    reference = {r["pipeline"]: r["seconds_per_epoch"] for r in rows
                 if r["variant"] == "gluon" and r["hybridize"] == "none"}
    for row in rows:
        base = reference.get(row["pipeline"])
        row["ratio_to_builtin"] = row["seconds_per_epoch"] / base if base else None
    return {"recipe": recipe_name, "fraction": fraction, "repeat": repeat, "rows": rows,
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


# What `bench --sweep-runtimes` compares: MXNet's default, engine x OpenMP threads, and with
# two NaiveEngine threads each wait policy (sleeping, libgomp's own spin, ACTIVE); the
# probe's start-up choice is added as a last column (:func:`sweep_plan`).
SWEEP = (DEFAULT, Runtime("threaded", 1), Runtime("threaded", 2), Runtime("naive", 1),
         Runtime("naive", 2), Runtime("naive", 2, "PASSIVE"), Runtime("naive", 2, "ACTIVE"))


def sweep_plan(cores: Optional[int] = None) -> List[Tuple[str, Runtime]]:
    """Return the sweep's (heading, runtime) columns, ending with this machine's start-up choice."""
    from gluon_bn import tuning
    columns = [(_short(rt.variables()), rt) for rt in SWEEP]
    choice = tuning.choose(cores=cores)
    columns.append((f"start-up choice: {choice.candidate.words}", choice.candidate.runtime))
    return columns


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
        return [c for c in default_configs(self.pipelines)
                if c.variant != "scratch" or c.bn_impl in self.impls]


def run_plan(plan: BenchPlan, *, file: Optional[TextIO] = None) -> dict:
    """Time every path of `plan` in this process; return the bench result."""
    from gluon_bn.device import parse_device
    ctx = parse_device(plan.device, file=file or sys.stdout)
    return bench(plan.configs(), plan.recipe, fraction=plan.fraction, ctx=ctx, file=file,
                 data_root=plan.data_root, repeat=plan.repeat)


def sweep_runtimes(plan: BenchPlan, runtimes: Optional[Sequence] = None, *,
                   file: Optional[TextIO] = None) -> dict:
    """Time `plan` once per runtime, each in a fresh process of this module; return every table.

    The engine and threads are read by MXNet when it loads, so each runtime needs its own
    process: ``python -m gluon_bn.bench.bench PLAN_JSON`` with only that runtime's variables
    (any inherited MXNET_ENGINE_TYPE / OMP_NUM_THREADS removed).

    Parameters
    ----------
    plan : BenchPlan
        What each runtime times.
    runtimes : sequence of Runtime, optional
        Default :func:`sweep_plan`: :data:`SWEEP` and this machine's start-up choice.
    file : text stream, optional
        Where progress and tables go (default stdout).

    Returns
    -------
    dict
        ``{"runs": [{"runtime": words, "variables": {...}, "result": bench result}, ...]}``.
    """
    file = file or sys.stdout
    runs = []
    columns = sweep_plan() if runtimes is None else [(_short(r.variables()), r) for r in runtimes]
    for i, (heading, rt) in enumerate(columns, 1):
        words = describe(rt.variables())
        print(f"== runtime {i}/{len(columns)}: {heading}: {words}", file=file, flush=True)
        result = run_json_child("gluon_bn.bench.bench", asdict(plan), what=f"bench under {words}",
                                env=runtime_environment(rt.variables()))
        print(format_table(result), file=file, flush=True)
        runs.append({"runtime": words, "heading": heading, "variables": rt.variables(),
                     "result": result})
    return {"runs": runs}


def _short(variables: Dict[str, str]) -> str:
    """A runtime's table heading, e.g. ``NaiveEngine, OMP 2``."""
    if not variables:
        return "MXNet's default"
    engine = variables.get("MXNET_ENGINE_TYPE", "default engine")
    wait = f", {variables['OMP_WAIT_POLICY']}" if variables.get("OMP_WAIT_POLICY") else ""
    return f"{engine}, OMP {variables.get('OMP_NUM_THREADS', 'default')}{wait}"


def format_sweep(sweep: dict) -> str:
    """Return the Markdown table of a runtime sweep: seconds per epoch, a column per runtime."""
    runs = sweep["runs"]
    labels = [row["label"] for row in runs[0]["result"]["rows"]]
    names = [run.get("heading") or _short(run["variables"]) for run in runs]
    lines = ["| path | " + " | ".join(names) + " |", "|---" * (len(runs) + 1) + "|"]
    for label in labels:
        cells = []
        for run in runs:
            row = next(r for r in run["result"]["rows"] if r["label"] == label)
            cells.append(f"{row['seconds_per_epoch']:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gluon_bn.bench.bench PLAN_JSON``: one runtime of :func:`sweep_runtimes`.

    Reads a :class:`BenchPlan` as JSON, times it in this process, prints the result as JSON
    on stdout (progress on stderr); ``gluon-bn bench`` is the command for people.
    """
    import argparse
    parser = argparse.ArgumentParser(
        prog="python -m gluon_bn.bench.bench",
        description="Time one BenchPlan (JSON) in this process and print the result as JSON; "
                    "the runtime sweep of `gluon-bn bench --sweep-runtimes` starts these.")
    parser.add_argument("plan", help='a BenchPlan as JSON, e.g. \'{"fraction": 0.01}\'')
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
