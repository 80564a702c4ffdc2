"""The arguments of ``gluon-bn``: every subcommand, flag and its help, and nothing else."""

from __future__ import annotations

import argparse
from pathlib import Path

from gluon_bn.harness import ROUNDS
from gluon_bn.options import BN_IMPLS, RunOptions  # pure data: no MXNet
from gluon_bn.recipes import LOOPS
from gluon_bn.runtime.machine import ISAS as ISA_NAMES  # pure data (no MXNet)


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``gluon-bn``."""
    parser = argparse.ArgumentParser(
        prog="gluon-bn", description="Reproduce d2l's Batch Normalization chapter with MXNet Gluon."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the recipes and what each reproduces")

    rep = sub.add_parser(
        "reproduce", help="train a recipe's networks and compare with the document"
    )
    rep.add_argument(
        "recipe",
        help="recipe name, e.g. d2l-en (see `gluon-bn list`); "
        "NAME:ALTERNATIVE for other conventions, e.g. d2l-zh:upstream",
    )
    rep.add_argument(
        "--variant",
        choices=("scratch", "gluon", "plain", "all"),
        default=None,
        help="which network (default: scratch and gluon; all adds plain LeNet)",
    )
    rep.add_argument("--epochs", type=_non_negative_int, help="default: the document's")
    rep.add_argument("--lr", type=_positive_float, help="default: the document's")
    rep.add_argument("--batch-size", type=_positive_int, help="default: the document's")
    rep.add_argument("--seed", type=_int, nargs="+", default=[0], help="one or several seeds")
    rep.add_argument(
        "--device",
        default="auto",
        help="auto (a working GPU, else CPU), cpu, gpu, gpu:N, or cpu:0,cpu:1",
    )
    rep.add_argument("--pipeline", choices=("d2l", "fast"), default="d2l")
    rep.add_argument(
        "--bn-impl",
        choices=BN_IMPLS,
        default="faithful",
        help="the scratch layer's implementation: faithful (the documents'), "
        "fast (the same numbers, quicker), native (a compiled C++ operator, "
        "CPU only, equal to float32 rounding; needs a C++ compiler)",
    )
    rep.add_argument(
        "--loop",
        choices=("auto",) + LOOPS,
        default="auto",
        help="the training loop: train_ch5 (d2l's nd-API loop, documents 001-004) "
        "or d2l.Trainer (d2l 1.0's, numpy mode, document 000); auto "
        "(default): the document's, train_ch5 with --pipeline fast",
    )
    rep.add_argument(
        "--hybridize",
        nargs="?",
        const="layers",
        default="auto",
        choices=("auto", "none", "layers", "graph"),
        help="none; layers (each layer compiled, as the documents' "
        "net.hybridize()); graph (runs of hybridizable layers compiled as "
        "one static graph); auto (default): graph with --pipeline fast, "
        "else none. A bare --hybridize means layers",
    )
    rep.add_argument(
        "--sync-every-batch",
        choices=("yes", "no"),
        default=None,
        help="read loss/accuracy back every batch as train_ch5 does "
        "(default: yes, except no with --pipeline fast)",
    )
    _add_runtime_argument(rep)
    _add_scale_arguments(rep)
    rep.add_argument("--dataset", choices=("auto", "fashion-mnist", "mnist"), default="auto")
    rep.add_argument("--data-root", help="directory with the four IDX files")
    rep.add_argument(
        "--out", type=Path, default=Path("out"), help="where results go (default ./out)"
    )
    rep.add_argument("--limit", type=_positive_int, help="use only the first N training examples")
    rep.add_argument("--test-limit", type=_positive_int, help="use only the first N test examples")
    rep.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar on stderr (shown only on a terminal anyway); "
        "stdout keeps d2l's epoch lines",
    )
    rep.add_argument("--checkpoint-dir", type=Path, help="checkpoint after every epoch here")
    rep.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    _add_runtime_argument(_add_study_parser(sub))
    doc = sub.add_parser(
        "doctor", help="check MXNet, numpy, threads, data and GPUs; exit 0 when `reproduce` can run"
    )
    doc.add_argument("--data-root", help="also look in this data directory")
    _add_bench_parser(sub)
    return parser


def _add_bench_parser(sub) -> argparse.ArgumentParser:
    """Add ``bench`` to `sub` and return its parser."""
    ben = sub.add_parser("bench", help="time training epochs of every BN path, after warm-up")
    ben.add_argument(
        "--recipe", default="d2l-en", help="whose network and batch size (default d2l-en)"
    )
    ben.add_argument(
        "--fraction",
        type=_positive_float,
        default=None,
        help="time this share of an epoch and scale up (default 1, 0.1 for "
        "--scaling; e.g. 0.05 for a quick look)",
    )
    ben.add_argument("--pipeline", choices=("d2l", "fast", "both"), default="both")
    ben.add_argument(
        "--bn-impl",
        choices=BN_IMPLS + ("both", "all"),
        default="all",
        help="which scratch implementations to time: one, both (faithful and "
        "fast) or all (native too, where it can be built)",
    )
    ben.add_argument("--device", default="cpu", help="as for reproduce (default cpu)")
    _add_runtime_argument(ben)
    ben.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        help="time each path this many times and keep the fastest (default 1)",
    )
    ben.add_argument(
        "--sweep-runtimes",
        action="store_true",
        help="run the bench once per engine and OpenMP thread setting, each in "
        "its own process, and write runtimes.json/.md",
    )
    ben.add_argument(
        "--busy",
        action="store_true",
        help="time the runtimes beside other work the bench starts and stops "
        "itself (idle, one busy core, another MXNet run, two runs at once), "
        "rounds alternating; write busy.json/.md",
    )
    ben.add_argument(
        "--peer",
        choices=("torch",),
        help="time our loops beside the same LeNet in PyTorch eager (same "
        "weights, batch, data order and threads), each run its own process, "
        "rounds alternating; write peer.json/.md/.png (needs the peer extra)",
    )
    ben.add_argument(
        "--loops",
        choices=("fast", "all"),
        default="fast",
        help="which of our loops --peer times: fast (default), train_ch5 on the "
        "fast pipeline as static graphs (gluon, scratch fast, plain); all "
        "adds the documents' own routes, train_ch5 on d2l's DataLoader, "
        "imperative (scratch faithful, gluon), and document 000's "
        "d2l.Trainer (scratch faithful, gluon), which trains recipe "
        "d2l-1.0's network at batch 128 and validates within its epochs, "
        "so the table marks its ratio as not like for like",
    )
    ben.add_argument(
        "--scaling",
        action="store_true",
        help="time an epoch and its peak memory against batch size and thread "
        "count (Gluon and fast scratch layers, fast pipeline), each cell its "
        "own process, rounds alternating, with the FLOP floor; write "
        "scaling.json/.md/.png",
    )
    ben.add_argument(
        "--scale-out",
        action="store_true",
        help="time a study grid serial (--threads CORES) against --jobs CORES, "
        "runs per hour on local Dask clusters of --workers sizes, and the "
        "coordinator's cost per task, rounds alternating; write "
        "scale-out.json/.md (needs the distributed extra)",
    )
    ben.add_argument(
        "--workers",
        type=_positive_int,
        nargs="+",
        default=None,
        metavar="N",
        help="local cluster sizes of --scale-out (default 1 2 4; more than the "
        "cores is labelled oversubscribed)",
    )
    ben.add_argument(
        "--profile",
        action="store_true",
        help="run MXNet's profiler over --steps training steps of every path "
        "(after warm-up) and write the per-operator table of one step, and "
        "the time outside operators, to profile.json/.md",
    )
    ben.add_argument(
        "--layout",
        action="store_true",
        help="time d2l-en's two LeNet stages (convolution, BN, sigmoid, "
        "max-pooling) with no BN, nn.BatchNorm and the native layer with "
        "plain and blocked output, forward and backward, in one process, "
        "--rounds alternating; write layout.json/.md",
    )
    ben.add_argument(
        "--steps",
        type=_positive_int,
        default=20,
        help="training steps profiled per path with --profile, or steps per "
        "turn with --layout (default 20)",
    )
    ben.add_argument(
        "--batch-sizes",
        type=_positive_int,
        nargs="+",
        default=None,
        metavar="B",
        help="batch sizes of --scaling (default 64 128 256 512 1024)",
    )
    ben.add_argument(
        "--rounds",
        type=_positive_int,
        default=ROUNDS,
        help="rounds of --busy, --peer, --scaling and --layout (default 3)",
    )
    ben.add_argument(
        "--limit",
        type=_positive_int,
        default=6400,
        help="training examples per epoch for --busy (default 6400)",
    )
    ben.add_argument("--data-root", help="directory with the four IDX files")
    ben.add_argument("--out", type=Path, default=Path("out"), help="where bench.json/.md/.png go")
    return ben


def _add_study_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``study`` to `subparsers` and return its parser (the runtime arguments come after)."""
    parser = subparsers.add_parser(
        "study",
        help="measure a claim of the documents; the verdict is computed from the numbers",
        description="Run one study per claim about batch normalization (or all of them): "
        "each states its measurement and criterion, trains or times every "
        "configuration with every seed, and computes its verdict (holds, does not "
        "hold, inconclusive). Running it again with the same --out resumes.",
    )
    parser.add_argument("name", nargs="?", help="a study (see --list), or all")
    parser.add_argument(
        "--list", action="store_true", help="name the studies, their claims and sources"
    )
    parser.add_argument(
        "--seeds", type=int, help="seeds per configuration (rounds, for compiled-speed)"
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        help="the first seed (default the study's: 0, or past a pilot's seeds)",
    )
    parser.add_argument("--epochs", type=int, help="training epochs per run")
    parser.add_argument(
        "--fraction",
        type=float,
        help="share of the 60000 training images (compiled-speed: of an epoch timed)",
    )
    parser.add_argument("--batch-size", type=int, help="training batch size")
    parser.add_argument(
        "--grid",
        type=float,
        nargs="+",
        help="the swept values: learning rates (learning-rate) or batch sizes (batch-noise)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings (one seed, so the verdict is inconclusive): minutes at most",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/studies"),
        help="where NAME.json/.md/.png, README.md and the progress files go "
        "(default out/studies; the published ones are in results/studies)",
    )
    parser.add_argument("--device", default="cpu", help="as for reproduce (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    _add_scale_arguments(parser)
    parser.add_argument(
        "--regenerate",
        action="store_true",
        help="re-judge every JSON record in --out from its runs with the "
        "current criteria and rewrite it, its report, its figures and the "
        "summary; nothing is trained and the runs are kept as they are",
    )
    parser.add_argument(
        "--allow-smaller",
        action="store_true",
        help="replace a record (or progress file) in --out made with more "
        "seeds or epochs or a larger share of the data; without it such a "
        "run is refused before anything trains",
    )
    return parser


def _add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--jobs`` and ``--scheduler`` (shared by ``study`` and ``reproduce``)."""
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="train the runs on a local Dask cluster of N worker processes, one run per "
        "worker at a time, each with one OpenMP thread (same numbers as a serial "
        "--threads 1 run); default 1: one after another in this process",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="send the runs to the Dask scheduler at ADDRESS (e.g. tcp://10.0.0.5:8786; "
        "default $GLUON_BN_SCHEDULER); its workers need this gluon-bn version and the data",
    )


def _add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        choices=("auto", "default", "tuned"),
        default="auto",
        help="MXNet's engine, set before MXNet loads: default (MXNet's own engine and "
        "thread count), tuned or auto (the default) on the CPU: the engine, threads "
        "and wait policy chosen by a short probe on this machine (cached; --retune "
        "measures again), or for the load when cores are busy at the start; auto on "
        "a GPU: MXNet's default. MXNET_ENGINE_TYPE set in the environment wins",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="OpenMP threads per operator. The count changes the arithmetic, so a seed's "
        "numbers repeat only with the same count (records keep it as omp_threads). "
        "Default: chosen by the probe on an idle machine, fewer when other processes "
        "keep cores busy at the start (said in one line); OMP_NUM_THREADS in the "
        "environment counts as a request",
    )
    parser.add_argument(
        "--retune",
        action="store_true",
        help="measure the runtime probe again instead of using this machine's cached choice",
    )
    parser.add_argument(
        "--isa",
        choices=sorted(ISA_NAMES),
        default=None,
        help="cap the instruction set MXNet's oneDNN uses (DNNL_MAX_CPU_ISA), which also "
        "decides a seed's numbers: --isa avx2 on an AVX-512 machine prints an AVX2 "
        "machine's numbers. Refused where the CPU lacks it",
    )
    parser.add_argument(
        "--portable",
        action="store_true",
        help="--isa avx2 --threads 1: the settings of the committed results, "
        "which any AVX2 machine repeats digit for digit",
    )


def run_options(args: argparse.Namespace) -> RunOptions:
    """Return the :class:`gluon_bn.options.RunOptions` that parsed ``reproduce`` arguments ask for.

    Parameters
    ----------
    args : argparse.Namespace
        What :func:`build_parser` parsed from ``reproduce ...``.
    """
    variants = {None: ("scratch", "gluon"), "all": ("scratch", "gluon", "plain")}.get(
        args.variant, (args.variant,)
    )
    sync = None if args.sync_every_batch is None else args.sync_every_batch == "yes"
    return RunOptions(
        variants=variants,
        seeds=tuple(args.seed),
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        pipeline=args.pipeline,
        bn_impl=args.bn_impl,
        hybridize=args.hybridize,
        sync_every_batch=sync,
        dataset=args.dataset,
        data_root=args.data_root,
        limit=args.limit,
        test_limit=args.test_limit,
        loop=args.loop,
    )
