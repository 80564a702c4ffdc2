"""``gluon-bn bench --layout``: what the layout a BN layer hands on costs the layers after it.

Each of d2l-en's two LeNet stages (convolution, BN, sigmoid, max-pooling) is compiled as one
graph with each BN in turn: none, ``nn.BatchNorm``, and the native scratch layer with its
output plain and in oneDNN's blocked layout (``BatchNorm(..., impl="native",
blocked_output=...)``, :func:`gluon_bn.bn.native.hands_on_blocked`). All of them live in one
process and take turns, a few forward-and-backward steps each, round after round, the order
reversed every other round; the ratios divide by ``nn.BatchNorm``'s steps of the same round.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Optional, TextIO, Tuple

from gluon_bn.harness import ROUNDS, Turn, alternate, markdown_table, span, summarize
from gluon_bn.runtime.loader import mx

nn = mx.gluon.nn

# d2l-en's LeNet: (stage, input channels, input side, output channels), kernel 5, no padding.
STAGES: Tuple[Tuple[str, int, int, int], ...] = (("conv1", 1, 28, 6), ("conv2", 6, 12, 16))
KINDS = ("no BN", "nn.BatchNorm", "native, plain output", "native, blocked output")
REFERENCE = "nn.BatchNorm"


@dataclass(frozen=True)
class LayoutPlan:
    """What ``bench --layout`` times: batch size, steps per turn, rounds, the random seed."""

    batch_size: int = 256
    steps: int = 10
    rounds: int = ROUNDS
    seed: int = 0


def stage_chain(kind: str, in_channels: int, channels: int) -> mx.gluon.Block:
    """Return one LeNet stage with BN of `kind` (one of :data:`KINDS`), compiled as one graph.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    in_channels, channels : int
        The convolution's input and output channels.
    """
    from gluon_bn import BatchNorm
    from gluon_bn.models import hybridize_network

    norm = {
        "no BN": None,
        "nn.BatchNorm": lambda: nn.BatchNorm(in_channels=channels),
        "native, plain output": lambda: BatchNorm(channels, 4, impl="native", blocked_output=False),
        "native, blocked output": lambda: BatchNorm(
            channels, 4, impl="native", blocked_output=True
        ),
    }[kind]
    net = nn.Sequential()
    net.add(nn.Conv2D(channels, kernel_size=5, in_channels=in_channels))
    if norm is not None:
        net.add(norm())
    net.add(nn.Activation("sigmoid"), nn.MaxPool2D(pool_size=2, strides=2))
    net.initialize(mx.init.Xavier())
    return hybridize_network(net, "graph")


def step_seconds(net: mx.gluon.Block, X: mx.nd.NDArray, steps: int) -> float:
    """Return the seconds of one forward and backward pass of `net` on `X`, over `steps`."""
    mx.nd.waitall()
    start = time.perf_counter()
    for _ in range(steps):
        with mx.autograd.record():
            Y = net(X)
        Y.backward()
    mx.nd.waitall()
    return (time.perf_counter() - start) / steps


def run_layout(plan: LayoutPlan, *, file: Optional[TextIO] = None) -> dict:
    """Time every stage with every kind of BN, in alternating rounds; return the record.

    Parameters
    ----------
    plan : LayoutPlan
        What to time.
    file : text stream, optional
        Where each round's progress goes (default stderr).
    """
    from gluon_bn.bn.native import unavailable_reason
    from gluon_bn.report.provenance import environment

    file = file or sys.stderr
    reason = unavailable_reason()
    kinds = KINDS if reason is None else KINDS[:2]
    if reason is not None:
        print(f"bench --layout: leaving out the native layer: {reason}", file=file)
    mx.random.seed(plan.seed)
    stages = {
        stage: time_stage(plan, kinds, stage, in_channels, side, channels, file)
        for stage, in_channels, side, channels in STAGES
    }
    return {
        "plan": vars(plan),
        "kinds": list(kinds),
        "stages": stages,
        "environment": environment(mx.cpu()),
    }


def time_stage(
    plan: LayoutPlan,
    kinds: Tuple[str, ...],
    stage: str,
    in_channels: int,
    side: int,
    channels: int,
    file: TextIO,
) -> dict:
    """Time one stage with every kind of BN in turn, the order reversed every other round.

    Parameters
    ----------
    plan : LayoutPlan
        Batch size, steps per turn and rounds.
    kinds : tuple of str
        Of :data:`KINDS`, :data:`REFERENCE` among them.
    stage, in_channels, side, channels
        A row of :data:`STAGES`.
    file : text stream
        Where each round's times go.

    Returns
    -------
    dict
        The stage's record: ``input``, ``channels``, ``seconds`` of a step per kind and
        round, and their ``ratios`` and ``summary`` (:func:`gluon_bn.harness.summarize`).
    """
    X = mx.nd.random.uniform(shape=(plan.batch_size, in_channels, side, side))
    nets = {kind: stage_chain(kind, in_channels, channels) for kind in kinds}
    for net in nets.values():
        step_seconds(net, X, 2)  # compiles the graph and builds oneDNN's primitives

    def say(turn: Turn) -> None:
        if turn.ends_round:
            print(
                f"{stage} round {turn.round}/{plan.rounds}: "
                + ", ".join(f"{kind} {turn.values[kind][-1] * 1e3:.2f}" for kind in kinds)
                + " ms/step",
                file=file,
                flush=True,
            )

    seconds = alternate(
        kinds,
        lambda kind: step_seconds(nets[kind], X, plan.steps),
        plan.rounds,
        reverse=True,
        report=say,
    ).values
    return {
        "input": [plan.batch_size, in_channels, side, side],
        "channels": channels,
        "seconds": seconds,
        **summarize(seconds, REFERENCE),
    }


def format_layout(result: dict) -> str:
    """Return the Markdown table of :func:`run_layout`'s record, with its notes."""
    rows = []
    for stage, entry in result["stages"].items():
        shape = "x".join(str(n) for n in entry["input"])
        for kind in result["kinds"]:
            s = entry["summary"][kind]
            ms = {k: v * 1e3 for k, v in s["seconds"].items()}
            rows.append([f"{stage} ({shape})", kind, span(ms), span(s["ratio"])])
    lines = markdown_table(
        [
            "stage (input)",
            "BN",
            "ms per step, median (range)",
            "× nn.BatchNorm per round, median (range)",
        ],
        rows,
    )
    plan, runtime = result["plan"], result["environment"].get("threads") or {}
    lines += [
        "",
        f"Convolution (kernel 5), BN, sigmoid, max-pooling: d2l-en's LeNet stages, "
        f"each compiled as one graph; forward and backward, {plan['steps']} steps per "
        f"turn, {plan['rounds']} alternating rounds in one process. OpenMP threads "
        f"{runtime.get('OMP_NUM_THREADS') or 'MXNet default'}, engine "
        f"{runtime.get('MXNET_ENGINE_TYPE') or 'MXNet default'}.",
    ]
    return "\n".join(lines)
