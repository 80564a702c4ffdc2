"""The ``gluon-bn`` command: list recipes, reproduce one, benchmark, check the installation."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from gluon_bn.bench.bench_command import cmd_bench  # imports nothing heavy until called
from gluon_bn.tuning import ISAS as ISA_NAMES  # pure data (no MXNet)

EXIT_USAGE, EXIT_DATA, EXIT_DIVERGED, EXIT_WRITE, EXIT_INTERRUPTED = 2, 3, 4, 5, 130
EXIT_RUNS_FAILED = 6  # some runs of a study or reproduction raised; the others are kept


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
    from gluon_bn.options import BN_IMPLS  # pure data: no MXNet
    from gluon_bn.recipes import LOOPS  # pure data: no MXNet
    from gluon_bn.study import cli as study_parser  # pure data: no MXNet
    parser = argparse.ArgumentParser(
        prog="gluon-bn", description="Reproduce d2l's Batch Normalization chapter with MXNet Gluon.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the recipes and what each reproduces")

    rep = sub.add_parser("reproduce", help="train a recipe's networks and compare with the document")
    rep.add_argument("recipe", help="recipe name, e.g. d2l-en (see `gluon-bn list`); "
                                    "NAME:ALTERNATIVE for other conventions, e.g. d2l-zh:upstream")
    rep.add_argument("--variant", choices=("scratch", "gluon", "plain", "all"), default=None,
                     help="which network (default: scratch and gluon; all adds plain LeNet)")
    rep.add_argument("--epochs", type=_non_negative_int, help="default: the document's")
    rep.add_argument("--lr", type=_positive_float, help="default: the document's")
    rep.add_argument("--batch-size", type=_positive_int, help="default: the document's")
    rep.add_argument("--seed", type=_int, nargs="+", default=[0], help="one or several seeds")
    rep.add_argument("--device", default="auto",
                     help="auto (a working GPU, else CPU), cpu, gpu, gpu:N, or cpu:0,cpu:1")
    rep.add_argument("--pipeline", choices=("d2l", "fast"), default="d2l")
    rep.add_argument("--bn-impl", choices=BN_IMPLS, default="faithful",
                     help="the scratch layer's implementation: faithful (the documents'), "
                          "fast (the same numbers, quicker), native (a compiled C++ operator, "
                          "CPU only, equal to float32 rounding; needs a C++ compiler)")
    rep.add_argument("--loop", choices=("auto",) + LOOPS, default="auto",
                     help="the training loop: train_ch5 (d2l's nd-API loop, documents 001-004) "
                          "or d2l.Trainer (d2l 1.0's, numpy mode, document 000); auto "
                          "(default): the document's, train_ch5 with --pipeline fast")
    rep.add_argument("--hybridize", nargs="?", const="layers", default="auto",
                     choices=("auto", "none", "layers", "graph"),
                     help="none; layers (each layer compiled, as the documents' "
                          "net.hybridize()); graph (runs of hybridizable layers compiled as "
                          "one static graph); auto (default): graph with --pipeline fast, "
                          "else none. A bare --hybridize means layers")
    rep.add_argument("--sync-every-batch", choices=("yes", "no"), default=None,
                     help="read loss/accuracy back every batch as train_ch5 does "
                          "(default: yes, except no with --pipeline fast)")
    _add_runtime_argument(rep)
    study_parser.add_scale_arguments(rep)
    rep.add_argument("--dataset", choices=("auto", "fashion-mnist", "mnist"), default="auto")
    rep.add_argument("--data-root", help="directory with the four IDX files")
    rep.add_argument("--out", type=Path, default=Path("out"), help="where results go (default ./out)")
    rep.add_argument("--limit", type=_positive_int, help="use only the first N training examples")
    rep.add_argument("--test-limit", type=_positive_int, help="use only the first N test examples")
    rep.add_argument("--quiet", action="store_true",
                     help="no progress bar on stderr (shown only on a terminal anyway); "
                          "stdout keeps d2l's epoch lines")
    rep.add_argument("--checkpoint-dir", type=Path, help="checkpoint after every epoch here")
    rep.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    _add_runtime_argument(study_parser.add_parser(sub))
    doc = sub.add_parser("doctor", help="check MXNet, numpy, threads, data and GPUs; "
                                        "exit 0 when `reproduce` can run")
    doc.add_argument("--data-root", help="also look in this data directory")
    ben = sub.add_parser("bench", help="time training epochs of every BN path, after warm-up")
    ben.add_argument("--recipe", default="d2l-en", help="whose network and batch size (default d2l-en)")
    ben.add_argument("--fraction", type=_positive_float, default=None,
                     help="time this share of an epoch and scale up (default 1, 0.1 for "
                          "--scaling; e.g. 0.05 for a quick look)")
    ben.add_argument("--pipeline", choices=("d2l", "fast", "both"), default="both")
    ben.add_argument("--bn-impl", choices=BN_IMPLS + ("both", "all"), default="all",
                     help="which scratch implementations to time: one, both (faithful and "
                          "fast) or all (native too, where it can be built)")
    ben.add_argument("--device", default="cpu", help="as for reproduce (default cpu)")
    _add_runtime_argument(ben)
    ben.add_argument("--repeat", type=_positive_int, default=1,
                     help="time each path this many times and keep the fastest (default 1)")
    ben.add_argument("--sweep-runtimes", action="store_true",
                     help="run the bench once per engine and OpenMP thread setting, each in "
                          "its own process, and write runtimes.json/.md")
    ben.add_argument("--busy", action="store_true",
                     help="time the runtimes beside other work the bench starts and stops "
                          "itself (idle, one busy core, another MXNet run, two runs at once), "
                          "rounds alternating; write busy.json/.md")
    ben.add_argument("--peer", choices=("torch",),
                     help="time our loops beside the same LeNet in PyTorch eager (same "
                          "weights, batch, data order and threads), each run its own process, "
                          "rounds alternating; write peer.json/.md/.png (needs the peer extra)")
    ben.add_argument("--loops", choices=("fast", "all"), default="fast",
                     help="which of our loops --peer times: fast (default), train_ch5 on the "
                          "fast pipeline as static graphs (gluon, scratch fast, plain); all "
                          "adds the documents' own routes, train_ch5 on d2l's DataLoader, "
                          "imperative (scratch faithful, gluon), and document 000's "
                          "d2l.Trainer (scratch faithful, gluon), which trains recipe "
                          "d2l-1.0's network at batch 128 and validates within its epochs, "
                          "so the table marks its ratio as not like for like")
    ben.add_argument("--scaling", action="store_true",
                     help="time an epoch and its peak memory against batch size and thread "
                          "count (Gluon and fast scratch layers, fast pipeline), each cell its "
                          "own process, rounds alternating, with the FLOP floor; write "
                          "scaling.json/.md/.png")
    ben.add_argument("--scale-out", action="store_true",
                     help="time a study grid serial (--threads CORES) against --jobs CORES, "
                          "runs per hour on local Dask clusters of --workers sizes, and the "
                          "coordinator's cost per task, rounds alternating; write "
                          "scale-out.json/.md (needs the distributed extra)")
    ben.add_argument("--workers", type=_positive_int, nargs="+", default=None, metavar="N",
                     help="local cluster sizes of --scale-out (default 1 2 4; more than the "
                          "cores is labelled oversubscribed)")
    ben.add_argument("--profile", action="store_true",
                     help="run MXNet's profiler over --steps training steps of every path "
                          "(after warm-up) and write the per-operator table of one step, and "
                          "the time outside operators, to profile.json/.md")
    ben.add_argument("--layout", action="store_true",
                     help="time d2l-en's two LeNet stages (convolution, BN, sigmoid, "
                          "max-pooling) with no BN, nn.BatchNorm and the native layer with "
                          "plain and blocked output, forward and backward, in one process, "
                          "--rounds alternating; write layout.json/.md")
    ben.add_argument("--steps", type=_positive_int, default=20,
                     help="training steps profiled per path with --profile, or steps per "
                          "turn with --layout (default 20)")
    ben.add_argument("--batch-sizes", type=_positive_int, nargs="+", default=None,
                     metavar="B", help="batch sizes of --scaling (default 64 128 256 512 1024)")
    ben.add_argument("--rounds", type=_positive_int, default=3,
                     help="rounds of --busy, --peer, --scaling and --layout (default 3)")
    ben.add_argument("--limit", type=_positive_int, default=6400,
                     help="training examples per epoch for --busy (default 6400)")
    ben.add_argument("--data-root", help="directory with the four IDX files")
    ben.add_argument("--out", type=Path, default=Path("out"), help="where bench.json/.md/.png go")
    return parser


def _add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime", choices=("auto", "default", "tuned"), default="auto",
        help="MXNet's engine, set before MXNet loads: default (MXNet's own engine and "
             "thread count), tuned or auto (the default) on the CPU: the engine, threads "
             "and wait policy chosen by a short probe on this machine (cached; --retune "
             "measures again), or for the load when cores are busy at the start; auto on "
             "a GPU: MXNet's default. MXNET_ENGINE_TYPE set in the environment wins")
    parser.add_argument(
        "--threads", type=_positive_int, default=None,
        help="OpenMP threads per operator. The count changes the arithmetic, so a seed's "
             "numbers repeat only with the same count (records keep it as omp_threads). "
             "Default: chosen by the probe on an idle machine, fewer when other processes "
             "keep cores busy at the start (said in one line); OMP_NUM_THREADS in the "
             "environment counts as a request")
    parser.add_argument("--retune", action="store_true",
                        help="measure the runtime probe again instead of using this "
                             "machine's cached choice")
    parser.add_argument(
        "--isa", choices=sorted(ISA_NAMES), default=None,
        help="cap the instruction set MXNet's oneDNN uses (DNNL_MAX_CPU_ISA), which also "
             "decides a seed's numbers: --isa avx2 on an AVX-512 machine prints an AVX2 "
             "machine's numbers. Refused where the CPU lacks it")
    parser.add_argument("--portable", action="store_true",
                        help="--isa avx2 --threads 1: the settings of the committed results, "
                             "which any AVX2 machine repeats digit for digit")


def _only_coordinates(args) -> bool:
    """True when this process trains nothing itself: every run goes to Dask workers (which
    train with one thread), so the runtime probe would measure for nobody."""
    from gluon_bn.runtime import usable_cores
    from gluon_bn.scale.backend import SCHEDULER_VARIABLE
    jobs = getattr(args, "jobs", None)
    if not (getattr(args, "scheduler", None) or os.environ.get(SCHEDULER_VARIABLE)
            or (jobs and jobs > 1 and usable_cores() > 1)):
        return False
    if args.command == "study":  # a timed study (compiled-speed) runs here, serially
        from gluon_bn.study.cli import plan
        return not any(study.timed for study, _ in plan(args))
    return args.command == "reproduce"


def _select_runtime(args, out):
    """Set MXNet's engine, threads and ISA for `args` before MXNet loads, say what runs;
    return the :class:`gluon_bn.runtime.ThreadChoice`."""
    from gluon_bn import runtime, tuning
    notes = []
    if getattr(args, "portable", False):
        if args.threads not in (None, 1) or args.isa not in (None, "avx2"):
            raise ValueError("--portable means --isa avx2 --threads 1; give either it or those")
        args.threads, args.isa = 1, "avx2"
    if getattr(args, "isa", None):
        if "mxnet" in sys.modules:
            raise ValueError("--isa cannot take effect: MXNet is already loaded in this process")
        notes.append(tuning.pin_isa(args.isa))
    requested, more = runtime.requested_threads(args.threads)
    args.requested_threads = requested  # a count asked for is never changed mid-run
    notes += more
    on_cpu = runtime.runs_on_cpu(args.device)
    # a process whose runs all go to workers trains nothing: no load check, no probe
    measure = (requested is None and on_cpu and "mxnet" not in sys.modules
               and not _only_coordinates(args))
    busy = runtime.busy_cores() if measure else None
    probe = measure and args.runtime in ("auto", "tuned")
    cores = runtime.usable_cores()
    measured = []

    def pick(others):
        load = None if busy is None and not others else max(busy or 0, others)
        threads = runtime.choose_threads(cores, load, requested)
        if probe and threads.reason == "idle":
            made = tuning.choose(cores=cores, retune=getattr(args, "retune", False), notes=notes)
            measured.append(made)
            rt = made.candidate.runtime
            return runtime.ThreadChoice(rt.omp_threads or runtime.mxnet_default_threads(cores),
                                        cores, "measured", load)
        return threads

    threads = runtime.claim_threads(pick)
    if measured:
        choice = measured[0].candidate.runtime
        os.environ["GLUON_BN_RUNTIME_CHOICE"] = f"{measured[0].candidate.name} ({measured[0].reason})"
    else:
        choice = runtime.choose(args.runtime, device=args.device, threads=threads,
                                spin=on_cpu and tuning.spinning_preferred())
    notes += runtime.apply(choice)
    if choice.omp_threads == threads.threads and threads.note():
        notes.append(threads.note())
    for note in notes:
        print(note, file=out)
    why = f"; {measured[0].line()}" if measured else ""
    print(f"runtime: {runtime.describe()}{why}", file=out, flush=True)
    return threads


def cmd_list(args, out) -> int:
    from gluon_bn.recipes import RECIPES
    for recipe in RECIPES.values():
        alternatives = "".join(f" [alternative: {recipe.name}:{a}]" for a in recipe.alternatives)
        print(f"{recipe.name:14s} document {recipe.source_file[:3]}  {recipe.title}{alternatives}", file=out)
        c = recipe.conventions
        print(f"{'':14s} momentum {c.momentum} on the {c.momentum_on} statistic, moving_var "
              f"starts at {c.moving_var_init}, {recipe.pool}-pool, init {recipe.initializer}, "
              f"lr {recipe.learning_rate}, batch {recipe.batch_size}, {recipe.num_epochs} epoch(s), "
              f"{recipe.dataset}", file=out)
    return 0


def run_options(args: argparse.Namespace):
    """Return the :class:`gluon_bn.options.RunOptions` that parsed ``reproduce`` arguments ask for.

    Parameters
    ----------
    args : argparse.Namespace
        What :func:`build_parser` parsed from ``reproduce ...``.
    """
    from gluon_bn.options import RunOptions
    variants = {None: ("scratch", "gluon"), "all": ("scratch", "gluon", "plain")}.get(
        args.variant, (args.variant,))
    sync = None if args.sync_every_batch is None else args.sync_every_batch == "yes"
    return RunOptions(variants=variants, seeds=tuple(args.seed), epochs=args.epochs,
                      lr=args.lr, batch_size=args.batch_size, pipeline=args.pipeline,
                      bn_impl=args.bn_impl, hybridize=args.hybridize, sync_every_batch=sync,
                      dataset=args.dataset, data_root=args.data_root, limit=args.limit,
                      test_limit=args.test_limit, loop=args.loop)


def cmd_reproduce(args, out) -> int:
    from gluon_bn.device import parse_device
    from gluon_bn.recipes import get_recipe
    from gluon_bn.run.reproduce import reproduce
    from gluon_bn.run.training import TrainingDiverged

    get_recipe(args.recipe)  # unknown names fail here, before any data is read
    from gluon_bn.study.cli import check_scale_arguments
    check_scale_arguments(args)
    if args.resume and not args.checkpoint_dir:
        raise ValueError("--resume needs --checkpoint-dir (where the checkpoints are)")
    options = run_options(args)
    options.check()
    from gluon_bn.report import prepare_directory  # before any data is read or epoch runs
    prepare_directory(args.out, "--out")
    if args.checkpoint_dir:
        prepare_directory(args.checkpoint_dir, "--checkpoint-dir")
    ctx = parse_device(args.device, file=out)
    factory = None
    if args.checkpoint_dir:
        from gluon_bn.run.checkpoint import Checkpointer
        factory = Checkpointer.factory(args.checkpoint_dir, args.recipe, options,
                                       resume=args.resume, file=out)
    from gluon_bn.scale.backend import open_backend
    try:
        with open_backend(args.jobs, args.scheduler, file=out) as backend:
            if backend.distributed:  # Ctrl-C raises at once here: the workers train
                _, paths = reproduce(args.recipe, options, ctx, out_dir=args.out, file=out,
                                     checkpointer_factory=factory, backend=backend,
                                     device=args.device)
            else:
                with _CtrlC() as ctrl_c:
                    _, paths = reproduce(
                        args.recipe, options, ctx, out_dir=args.out, file=out,
                        checkpointer_factory=factory, stop_requested=ctrl_c.requested,
                        progress=not args.quiet, on_epoch_end=_slowdown_notes(args, out),
                        guard=_collapse_guard(args))
    except TrainingDiverged as err:  # say what is kept: the epochs before it are checkpointed
        if factory is not None:
            err.args = (f"{err.args[0]}\nCheckpoints: {factory.describe()}. A smaller --lr is "
                        f"a new configuration: give it another --checkpoint-dir.",)
        raise
    for kind, path in paths.items():
        print(f"wrote {path}", file=out)
    return 0


def _collapse_guard(args):
    """Return the guard that drops a run to one thread when load collapses it, or None.

    Only on the CPU under NaiveEngine (whose step times are real), with several threads; a
    run given --threads (or OMP_NUM_THREADS) keeps its count and gets a note instead."""
    from gluon_bn.runtime import synchronous_engine, threads_in_effect
    from gluon_bn.tuning import CollapseGuard
    if not synchronous_engine() or threads_in_effect() < 2:
        return None
    return CollapseGuard(threads_in_effect(),
                         allowed=getattr(args, "requested_threads", None) is None)


def _slowdown_notes(args, out):
    """Return an ``on_epoch_end`` callback that says once when the load slowed the run."""
    from gluon_bn.runtime import SlowdownWatch, threads_in_effect
    watch = SlowdownWatch(threads_in_effect())

    def on_epoch_end(stats) -> None:
        note = watch.observe(stats.epoch, stats.seconds)
        if note:
            print(note, file=out, flush=True)
    return on_epoch_end


def cmd_doctor(args, out) -> int:
    """Print the installation report; 0 when `reproduce` can run, else 1."""
    from gluon_bn.doctor import run_doctor
    return run_doctor(file=out, data_root=args.data_root)


def _interrupted_message(args, argv: List[str]) -> str:
    """Say what Ctrl-C left behind and, with checkpoints, the exact command that continues."""
    import shlex
    lines = ["", "gluon-bn: interrupted."]
    if getattr(args, "out", None) is not None:
        lines.append(f"Runs that finished are saved under {args.out}.")
    if getattr(args, "checkpoint_dir", None):
        command = ["gluon-bn", *argv] + ([] if "--resume" in argv else ["--resume"])
        lines.append(f"Every completed epoch is checkpointed in {args.checkpoint_dir}; "
                     f"to continue from the last one, run:")
        lines.append(f"  {shlex.join(command)}")
    elif args.command == "study":
        lines.append("The seeds that finished are in its progress files; the same command "
                     "continues from them:")
        lines.append(f"  {shlex.join(['gluon-bn', *argv])}")
    elif args.command == "reproduce":
        lines.append("The run in progress is lost; add --checkpoint-dir DIR to checkpoint "
                     "every epoch (and --resume to continue).")
    return "\n".join(lines)


def cmd_study(args, out) -> int:
    """Run ``gluon-bn study`` (gluon_bn/study/cli.py) once :func:`main` has checked its input."""
    from gluon_bn.study.cli import main as run_studies
    return run_studies(args, out)


COMMANDS = {"list": cmd_list, "reproduce": cmd_reproduce, "bench": cmd_bench,
            "doctor": cmd_doctor, "study": cmd_study}


# What scripts/reproduce_all.py runs (gluon_bn.published): every record under results/, seeds
# 0 1 2 each, with the package's current defaults for what a run does not name.
_FAST = ["--pipeline", "fast", "--bn-impl", "fast"]
PUBLISHED_RUNS = [
    ("d2l-en", []),  # the documents' own path: d2l's pipeline, the scratch layer as written
    ("d2l-en", _FAST),
    ("d2l-zh", _FAST),
    ("d2l-0.17", _FAST),
    ("straight-dope", [*_FAST, "--dataset", "fashion-mnist"]),
    # document 000's own loop (d2l.Trainer reads the book's pipeline), and train_ch5 beside it
    ("d2l-1.0", ["--variant", "all", "--pipeline", "d2l", "--loop", "d2l.Trainer",
                 "--bn-impl", "fast"]),
    ("d2l-1.0", ["--variant", "all", *_FAST]),
    # the scratch layer as compiled C++: equal to float32 rounding, so a record of its own
    ("d2l-en", ["--variant", "scratch", "--pipeline", "fast", "--bn-impl", "native"]),
]
PUBLISHED_OPTIONS = ["--seed", "0", "1", "2", "--out", "results"]


class _CtrlC:
    """Within ``with``: the first SIGINT is remembered, a second one interrupts at once.

    A KeyboardInterrupt raised by the signal itself can land inside an NDArray's
    ``__del__``, where Python drops it with a printed traceback; so the first Ctrl-C only
    sets a flag, and training raises KeyboardInterrupt at the end of the current batch.
    """

    def __init__(self):
        self.seen = False
        self._previous = None

    def requested(self) -> bool:
        return self.seen

    def _handle(self, signum, frame):
        if self.seen:
            raise KeyboardInterrupt
        self.seen = True

    def __enter__(self) -> "_CtrlC":
        import signal
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal
        signal.signal(signal.SIGINT, self._previous)


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``gluon-bn``; return the exit status. Errors are one clear message, no traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    out = sys.stdout
    if args.command == "study":  # --list, --regenerate and refusals need no MXNet
        from gluon_bn.study.cli import prepare
        status = prepare(args, out)
        if status is not None:
            return status
        _select_runtime(args, out)
    # Without MXNet: the doctor reports a broken one, and recipes are pure data.
    if args.command in ("doctor", "list"):
        try:
            return COMMANDS[args.command](args, out)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `gluon-bn list | head`: the reader left, nothing is wrong
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if args.command == "reproduce" or (args.command == "bench" and not args.sweep_runtimes
                                       and not args.busy and not args.scaling
                                       and not args.scale_out):
        _select_runtime(args, out)  # before anything imports MXNet
    try:
        from gluon_bn.data import DataError
        from gluon_bn.report import WriteError
        from gluon_bn.run.training import TrainingDiverged
        from gluon_bn.bn.native import NativeUnavailable
        from gluon_bn.scale.backend import RunsFailed
    except ImportError as err:  # MXNet missing: the message says how to install it
        print(f"gluon-bn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args, out)
    except DataError as err:
        print(f"gluon-bn: data error: {err}", file=sys.stderr)
        return EXIT_DATA
    except TrainingDiverged as err:
        print(f"gluon-bn: training stopped: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except WriteError as err:
        print(f"gluon-bn: write error: {err}", file=sys.stderr)
        return EXIT_WRITE
    except NativeUnavailable as err:
        print(f"gluon-bn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RunsFailed as err:
        print(f"gluon-bn: {err}", file=sys.stderr)
        return EXIT_RUNS_FAILED
    except (ValueError, KeyError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"gluon-bn: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(_interrupted_message(args, argv), file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
